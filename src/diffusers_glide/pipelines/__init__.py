from .pipeline_glide import GlidePipeline

__all__ = ["GlidePipeline"]
