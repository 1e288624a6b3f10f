"""The backbones' linear layer."""
import torch.nn as nn

from tnt_backbone.ops import linear


class Linear(nn.Linear):
    """:class:`torch.nn.Linear` through oneDNN on the CPU, in inference and training
    (:func:`tnt_backbone.ops.linear`); the same parameters, initialisation and state-dict keys.
    """

    def forward(self, x):
        return linear(x, self.weight, self.bias)
