"""`make demo-cls`: TNT-Ti trained on a generated toy ImageNet on the CPU, then handed on.

1. generates the toy ImageNet into data/toy_imagenet (skipped when present);
2. trains configs/classification/tnt-ti-p16_toy.py from scratch with tools/train.py, logging the
   loss and the validation top-1 of every epoch (``--resume``: an interrupted demo continues, a
   finished one is not retrained);
3. evaluates the final checkpoint with tools/test.py (top-1 on the toy val set);
4. initialises a TNT backbone (dense 'featmap' outputs, as detection and segmentation use it)
   with ``init_cfg=dict(type='Pretrained', checkpoint=<that checkpoint>)`` and checks that
   every backbone weight arrived unchanged.

Each step prints the command it runs, so it can be repeated by hand.
"""
import argparse
import os
import os.path as osp
import sys
import time

from common import ROOT, ensure_data, print_summary, train_and_evaluate

CONFIG = 'configs/classification/tnt-ti-p16_toy.py'
DATA_ROOT = 'data/toy_imagenet'  # the config's data_root


def hand_off(checkpoint):
    """Loads the classifier checkpoint into a TNT backbone with dense outputs.

    Returns (equal, shared): how many of the tensors that backbone shares with the checkpoint
    hold the same values. (Its output norms are new; the classifier's final norm is not used by
    dense outputs.)
    """
    import torch
    from mmengine.registry import init_default_scope

    from tnt_backbone.engine import safe_torch_load
    from tnt_backbone.registry import MODELS
    init_default_scope('tnt_backbone')
    backbone = MODELS.build(dict(type='TNT', arch='tiny', img_size=64,
                                 init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
    backbone.init_weights()
    own = backbone.state_dict()
    saved = {k[len('backbone.'):]: v for k, v in safe_torch_load(checkpoint)['state_dict'].items()
             if k.startswith('backbone.')}
    shared = set(own) & set(saved)
    return sum(torch.equal(own[k], saved[k]) for k in shared), len(shared)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/tnt-ti-p16_toy')
    args = parser.parse_args()
    os.chdir(ROOT)
    start = time.time()
    ensure_data('make_toy_imagenet.py', DATA_ROOT,
                osp.isfile(osp.join(DATA_ROOT, 'meta', 'val.txt')))
    checkpoint, metrics = train_and_evaluate(CONFIG, args.work_dir)
    equal, shared = hand_off(checkpoint)

    print_summary([
        f'Toy ImageNet val set, TNT-Ti/16 from scratch ({time.time() - start:.0f} s):',
        f'  top-1 {metrics["accuracy/top1"]:.1f} %   (5 classes: chance is 20 %)',
        f'  checkpoint {checkpoint}',
        f"  TNT(out_type='featmap', init_cfg=dict(type='Pretrained', checkpoint=...)): "
        f'{equal}/{shared} tensors equal to the classifier\'s'])
    if not shared or equal != shared:
        sys.exit('the backbone did not receive the checkpoint\'s weights')


if __name__ == '__main__':
    main()
