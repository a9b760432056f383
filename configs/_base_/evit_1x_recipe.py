# The 1x recipe of the official EfficientViT detectors, shared by the RetinaNet and Mask R-CNN configs.
# mmdet's 1x schedule already has the official epochs and LR policy (12 epochs; linear warm-up over
# 500 iterations from 0.001x; x0.1 at epochs 8 and 11; auto_scale_lr base batch 16 = 8 GPUs x 2 images);
# EfficientViT swaps SGD for AdamW and exempts the attention-bias tables from weight decay.
_base_ = [
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]

# Registers EfficientViT, EfficientViTFPN and the AtomicCheckpointHook.
custom_imports = dict(imports=['mmdet_efficientvit'], allow_failed_imports=False)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        _delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'attention_biases': dict(decay_mult=0.)}))

# Same as mmengine's CheckpointHook, but a run killed while saving still resumes (see the hook).
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1))
