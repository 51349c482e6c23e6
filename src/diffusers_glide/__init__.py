"""diffusers-glide: OpenAI's GLIDE as Hugging Face diffusers models, scheduler and pipelines."""



__version__ = "0.1.0.dev0"

__all__ = [
]
