"""Top-k classification accuracy."""
import torch
from mmengine.evaluator import BaseMetric

from ..registry import METRICS


def topk_accuracy(scores, labels, topk=(1, )):
    """Percent of samples whose label is among their ``k`` highest scores, for each ``k``.

    Args:
        scores (Tensor): (N, C) class scores.
        labels (Tensor): (N,) integer labels.
        topk (Sequence[int]): The k values, each at most C.

    Returns:
        list[float]: One accuracy in percent per k.
    """
    num_classes = scores.shape[1]
    if max(topk) > num_classes:
        raise ValueError(f'top-{max(topk)} accuracy needs more than {num_classes} classes; '
                         f'lower topk')
    ranked = scores.topk(max(topk), dim=1).indices
    hits = ranked == labels.view(-1, 1)
    return [hits[:, :k].any(dim=1).float().mean().item() * 100 for k in topk]


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy (percent) of ``pred_score`` against ``gt_label``: keys ``accuracy/top{k}``.

    Args:
        topk (int | Sequence[int]): Defaults to (1, ).
        collect_device (str): Where results are gathered across ranks. Defaults to 'cpu'.
        prefix (str | None): Key prefix. Defaults to 'accuracy'.
    """
    default_prefix = 'accuracy'

    def __init__(self, topk=(1, ), collect_device='cpu', prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = (topk, ) if isinstance(topk, int) else tuple(topk)

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            self.results.append((sample['pred_score'].cpu(), int(sample['gt_label'])))

    def compute_metrics(self, results):
        scores = torch.stack([score for score, _ in results])
        labels = torch.tensor([label for _, label in results])
        return {f'top{k}': acc for k, acc in
                zip(self.topk, topk_accuracy(scores, labels, self.topk))}
