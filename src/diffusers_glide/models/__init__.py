from .glide_text_encoder import GlideTextEncoder
from .glide_unet import GlideUNet2DModel

__all__ = ["GlideTextEncoder", "GlideUNet2DModel"]
