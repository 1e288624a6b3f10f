"""Evaluates a checkpoint with any config of this project (mmdet, mmseg or classification).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR] [--tta] [--compile]
                         [--out results.pkl] [--cfg-options KEY=VALUE ...]
                         [--launcher none|pytorch|slurm]

Metrics come from the config's ``test_evaluator`` (COCO bbox/segm mAP through pycocotools for
the detection configs). ``--show-dir DIR`` turns on the config's visualization hook and writes
every test image with the predictions drawn (same file name): into DIR for mmdet's
``DetVisualizationHook``, into ``DIR/vis_data/vis_image`` for hooks that draw through the
visualizer's backends (mmseg's ``SegVisualizationHook``). Under ``tools/dist_test.sh`` only the
images of process 0 are drawn (the visualizers draw on the master process only).

``--tta`` wraps the model in the config's ``tta_model`` (mmdet's ``DetTTAModel``, mmseg's
``SegTTAModel``) and tests on its ``tta_pipeline`` (flips, and scales for segmentation).
``--out results.pkl`` writes the raw predictions; for detection in the format mmdet's analysis
tools read (``mmdet/.mim/tools/analysis_tools/confusion_matrix.py``, ``analyze_results.py``).

``--compile`` runs the backbone through ``torch.compile`` (inductor); the predictions are the
eager model's to float rounding. Compiling takes a minute or two per model on a CPU: it pays
off over a whole test set, not a handful of images.
"""
from tnt_backbone.apis import evaluate, test_parser


def main(argv=None):
    """Evaluates; returns the metrics dict (e.g. ``coco/bbox_mAP``)."""
    return evaluate(test_parser().parse_args(argv))


if __name__ == '__main__':
    main()
