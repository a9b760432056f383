from .checkpoint import (CheckpointError, describe_arch, is_deployed_state_dict,
                         load_backbone_state_dict, load_state_dict_checked, read_checkpoint,
                         resize_attention_biases, timm_to_official)

__all__ = [
    'CheckpointError', 'describe_arch', 'is_deployed_state_dict', 'load_backbone_state_dict',
    'load_state_dict_checked', 'read_checkpoint', 'resize_attention_biases', 'timm_to_official'
]
