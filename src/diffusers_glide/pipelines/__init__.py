from .iterative_editing import InpaintEdit, apply_edits
from .pipeline_glide import GlidePipeline
from .pipeline_glide_img2img import GlideImg2ImgPipeline
from .pipeline_glide_inpaint import GlideInpaintPipeline
from .pipeline_glide_upsample import GlideUpsamplePipeline

__all__ = [
    "GlideImg2ImgPipeline",
    "GlideInpaintPipeline",
    "GlidePipeline",
    "GlideUpsamplePipeline",
    "InpaintEdit",
    "apply_edits",
]
