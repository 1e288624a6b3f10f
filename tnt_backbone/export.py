"""ONNX export of the networks of this project's configs (``tools/deployment/pytorch2onnx.py``).

What is exported: for detection and segmentation configs the backbone and the neck (their
feature maps), for classification configs the whole classifier (logits). The input is the
normalised image, (B, 3, H, W) float, RGB for the released weights (the config's
``data_preprocessor`` mean/std, as the model sees it after preprocessing). Detection heads and
their post-processing (NMS, RoI ops) are mmdeploy's domain; segmentation heads are not exported
either. With ``dynamic=True`` batch, height and width are free: the padding to a multiple of 16
and the resizing of the sentence position grid are computed from the input's size in the graph.
"""
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import load_checkpoint


class FeatureNetwork(nn.Module):
    """Backbone (+ neck) of a detector or segmentor: image -> tuple of feature maps."""

    def __init__(self, model):
        super().__init__()
        self.backbone = model.backbone
        self.neck = model.neck if getattr(model, 'with_neck', False) else None

    def forward(self, x):
        feats = self.backbone(x)
        return tuple(self.neck(feats)) if self.neck is not None else tuple(feats)


class Classifier(nn.Module):
    """The whole classifier: image -> (B, num_classes) logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, mode='tensor')


def exportable_model(config, checkpoint=None):
    """The exported part of ``config``'s model (see the module doc), in eval mode, with the
    checkpoint's weights if given (through the project's loader: files or URLs)."""
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    init_default_scope(cfg.get('default_scope'))
    cfg.model.backbone.init_cfg = None  # the checkpoint brings every weight
    model = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    else:
        model.init_weights()
    net = Classifier(model) if cfg.default_scope == 'tnt_backbone' else FeatureNetwork(model)
    return net.eval()


def export_onnx(net, shape, out, dynamic=False, opset=18):
    """Exports ``net`` at input size ``shape`` (H, W) to ``out``; returns the output names.

    Through torch's dynamo-based exporter (``torch.export``), with the word-attention kernel
    replaced by its SDPA path (see :mod:`tnt_backbone.ops.word_attention`).
    """
    # A dynamic batch is traced with 2 images: from a batch of 1 the exporter keeps
    # size-1 assumptions that give wrong results for other batch sizes.
    x = torch.randn(2 if dynamic else 1, 3, *shape)
    with torch.no_grad():
        num_outputs = len(_as_tuple(net(x)))
    names = [f'out{i}' for i in range(num_outputs)]
    dynamic_shapes = None
    if dynamic:
        # from 2 patches a side: a 1-patch grid would be a different graph (size-1 broadcasts)
        dims = {0: torch.export.Dim('batch', max=64),
                2: torch.export.Dim('height', min=32, max=4096),
                3: torch.export.Dim('width', min=32, max=4096)}
        dynamic_shapes = {'x': dims}
    with torch.no_grad():
        program = torch.onnx.export(net, (x,), dynamo=True, dynamic_shapes=dynamic_shapes,
                                    input_names=['input'], output_names=names,
                                    opset_version=opset, external_data=False)
    program.save(out)
    return names


def _as_tuple(out):
    return out if isinstance(out, (tuple, list)) else (out,)


def onnx_max_rel_error(net, onnx_file, x):
    """Largest ``|onnx - torch| / max|torch|`` over the outputs of ``net`` and ``onnx_file``
    (run by ONNX Runtime on CPU) for input ``x``."""
    import onnxruntime as ort
    session = ort.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = [t.numpy() for t in _as_tuple(net(x))]
    if len(got) != len(want):
        raise ValueError(f'{onnx_file} has {len(got)} outputs, the model {len(want)}')
    errors = []
    for g, w in zip(got, want):
        if g.shape != w.shape:
            raise ValueError(f'{onnx_file} gives shape {g.shape}, the model {w.shape}')
        errors.append(float(abs(g - w).max() / max(abs(w).max(), 1e-12)))
    return max(errors)
