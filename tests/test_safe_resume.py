"""mmengine's own checkpoints load on torch >= 2.6 (weights_only) once tnt_backbone is imported."""
import pickle

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner

import tnt_backbone  # noqa: F401  (registers the allow-list)
from tnt_backbone.engine import safe_torch_load
from tnt_backbone.models import TNT

from test_tnt_backbone import SMALL_ARCH


class TinyTNTClassifier(BaseModel):
    def __init__(self):
        super().__init__()
        self.backbone = TNT(arch=SMALL_ARCH, out_type='cls_token', out_indices=(-1,))
        self.fc = torch.nn.Linear(SMALL_ARCH['sentence_dim'], 3)

    def forward(self, inputs, labels=None, mode='loss'):
        logits = self.fc(self.backbone(inputs)[0])
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, labels))
        return logits


def dataset(n=8):
    g = torch.Generator().manual_seed(0)
    return [dict(inputs=torch.randn(3, 32, 32, generator=g), labels=torch.tensor(i % 3))
            for i in range(n)]


def runner(work_dir, max_epochs, resume=False):
    return Runner(
        model=TinyTNTClassifier(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=dataset(), batch_size=4, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        resume=resume, randomness=dict(seed=0), default_scope='mmengine')


def test_save_then_resume_continues_with_same_state(tmp_path):
    first = runner(tmp_path, max_epochs=2)
    first.train()
    ckpt = tmp_path / 'epoch_2.pth'
    raw = safe_torch_load(str(ckpt))  # the allow-list covers mmengine's meta and message hub
    assert raw['meta']['epoch'] == 2
    second = runner(tmp_path, max_epochs=3, resume=True)
    second.load_or_resume()
    assert second.epoch == 2 and second.iter == first.iter
    saved = first.optim_wrapper.optimizer.state_dict()['state']
    loaded = second.optim_wrapper.optimizer.state_dict()['state']
    assert saved.keys() == loaded.keys()
    for k in saved:
        torch.testing.assert_close(saved[k]['exp_avg'], loaded[k]['exp_avg'])
    for (n, a), (_, b) in zip(first.model.state_dict().items(),
                              second.model.state_dict().items()):
        assert torch.equal(a, b), n
    second.train()
    assert second.epoch == 3


class Evil:
    def __reduce__(self):
        return (print, ('code ran',))


class SneakyGetattr:
    def __reduce__(self):
        return (getattr, (HistoryBuffer, 'update'))


def test_arbitrary_objects_are_still_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        torch.save({'state_dict': {}, 'payload': Evil()}, f, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(RuntimeError, match='cannot load checkpoint'):
        safe_torch_load(str(path))
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # what mmengine calls: still weights-only
    torch.save({'hub': SneakyGetattr()}, path)
    with pytest.raises(RuntimeError, match='refusing getattr'):
        safe_torch_load(str(path))
