from .checkpoint import (describe_arch, explain_detector_mismatch, is_deployed_state_dict,
                         load_backbone_state_dict, load_state_dict_checked, model_state_dict,
                         read_checkpoint, register_checkpoint_schemes, resize_attention_biases,
                         timm_to_official)
from .deploy import deploy_model

__all__ = [
    'deploy_model', 'describe_arch', 'explain_detector_mismatch', 'is_deployed_state_dict',
    'load_backbone_state_dict', 'load_state_dict_checked', 'model_state_dict', 'read_checkpoint',
    'register_checkpoint_schemes', 'resize_attention_biases', 'timm_to_official'
]
