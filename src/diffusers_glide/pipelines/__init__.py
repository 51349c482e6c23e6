from .pipeline_glide import GlidePipeline
from .pipeline_glide_inpaint import GlideInpaintPipeline
from .pipeline_glide_upsample import GlideUpsamplePipeline

__all__ = ["GlideInpaintPipeline", "GlidePipeline", "GlideUpsamplePipeline"]
