# mmdet's COCO 2017 detection data (mmdet::_base_/datasets/coco_detection.py) with one change: images are
# read by LoadImageFromFileOrSkip. An unreadable training image is skipped (a warning names it once,
# SkippedImagesHook logs the skips of each epoch) instead of stopping the run. The training pipeline is
# otherwise mmdet 3.3's; evaluation keeps mmdet's (DetInferencer looks for LoadImageFromFile by name).
_base_ = 'mmdet::_base_/datasets/coco_detection.py'

train_pipeline = [
    dict(type='LoadImageFromFileOrSkip', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
custom_hooks = [dict(type='SkippedImagesHook')]
