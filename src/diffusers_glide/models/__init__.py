from .glide_clip_image_encoder import GlideCLIPImageEncoder
from .glide_clip_text_encoder import GlideCLIPTextEncoder
from .glide_text_encoder import GlideTextEncoder
from .glide_unet import GlideUNet2DModel

__all__ = ["GlideCLIPImageEncoder", "GlideCLIPTextEncoder", "GlideTextEncoder", "GlideUNet2DModel"]
