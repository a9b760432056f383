from .checkpoint import (describe_arch, explain_detector_mismatch, is_deployed_state_dict,
                         load_backbone_state_dict, load_state_dict_checked, read_checkpoint,
                         resize_attention_biases, timm_to_official, unwrap_checkpoint)
from .deploy import deploy_model

__all__ = [
    'deploy_model', 'describe_arch', 'explain_detector_mismatch', 'is_deployed_state_dict',
    'load_backbone_state_dict', 'load_state_dict_checked', 'read_checkpoint',
    'resize_attention_biases', 'timm_to_official', 'unwrap_checkpoint'
]
