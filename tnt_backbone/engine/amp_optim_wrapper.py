"""Mixed-precision training on a GPU or a CPU (``tools/train.py --amp``)."""
import torch
from mmengine.device import get_device
from mmengine.optim import AmpOptimWrapper as MMEngineAmpOptimWrapper
from mmengine.optim import OptimWrapper

from ..registry import OPTIM_WRAPPERS

CPU_DTYPES = (None, 'bfloat16', torch.bfloat16)


@OPTIM_WRAPPERS.register_module()
class AmpOptimWrapper(MMEngineAmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper``, which also trains on a CPU.

    On a GPU (or NPU/MLU) it is mmengine's: autocast to ``dtype`` (default fp16) with the
    ``loss_scale`` of a ``GradScaler`` (default ``'dynamic'``); ``dtype='bfloat16'`` selects bf16
    there. mmengine 0.10.7 refuses to build it without one, so on a CPU this class sets it up
    itself: bf16 autocast (the only dtype mmengine's ``autocast`` takes on a CPU) and no loss
    scaling, which bf16 does not need: its exponent range is fp32's, so small gradients do not
    underflow as in fp16. ``loss_scale`` and ``use_fsdp`` are unused there.

    Args:
        loss_scale (float | str | dict): As mmengine's. Defaults to ``'dynamic'``.
        dtype (str | torch.dtype | None): As mmengine's; on a CPU ``None`` or bf16.
            Defaults to None.
        use_fsdp (bool): As mmengine's. Defaults to False.
        **kwargs: Arguments of mmengine's ``OptimWrapper``.
    """

    def __init__(self, loss_scale='dynamic', dtype=None, use_fsdp=False, **kwargs):
        if get_device() != 'cpu':
            super().__init__(loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
            return
        if dtype not in CPU_DTYPES:
            raise ValueError(f'AmpOptimWrapper on a CPU autocasts to bfloat16 only, got dtype '
                             f'{dtype!r}: leave dtype unset (or bfloat16), or train on a GPU')
        OptimWrapper.__init__(self, **kwargs)
        # what mmengine's backward/step/state_dict read: a pass-through scaler, no update
        # argument, and the dtype its optim_context autocasts to
        self.loss_scaler = torch.amp.GradScaler('cpu', enabled=False)
        self._scale_update_param = None
        self.cast_dtype = torch.bfloat16
