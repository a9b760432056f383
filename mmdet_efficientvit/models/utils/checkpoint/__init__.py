"""EfficientViT checkpoints of every released layout, by concern: :mod:`.reading` (I/O: sources,
mmengine ``CheckpointLoader`` schemes, safe ``torch.load`` and its allow-list), :mod:`.layout`
(conversion to the backbone's names) and :mod:`.diagnosis` (why a checkpoint does not fit a model)."""
from .diagnosis import describe_arch, explain_detector_mismatch, load_state_dict_checked
from .layout import (is_deployed_state_dict, load_backbone_state_dict, resize_attention_biases,
                     timm_to_official, unwrap_checkpoint)
from .reading import read_checkpoint, setup_checkpoint_loading

__all__ = [
    'describe_arch', 'explain_detector_mismatch', 'is_deployed_state_dict', 'load_backbone_state_dict',
    'load_state_dict_checked', 'read_checkpoint', 'resize_attention_biases', 'setup_checkpoint_loading',
    'timm_to_official', 'unwrap_checkpoint'
]
