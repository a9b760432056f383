from .efficientvit_fpn import EfficientViTFPN
from .efficientvit_pafpn import EfficientViTPAFPN

__all__ = ["EfficientViTFPN", "EfficientViTPAFPN"]
