"""The GLIDE web app (Gradio): generate, edit (inpainting with a brush, sketches, iterative edits), image to image
and upscale, on the embedded models or any converted ones. Needs the `app` extra: `pip install "diffusers-glide[app]"`.

    diffusers-glide serve                           # the embedded models at http://127.0.0.1:7860

    from diffusers_glide.app import build_app, launch_options, load_app_models
    build_app(load_app_models()).launch(**launch_options())
"""

try:
    import gradio  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        'The web app needs Gradio: install the app extra, `pip install "diffusers-glide[app]"`.'
    ) from error

from .callbacks import GlideAppCallbacks
from .interface import build_app
from .models import SAMPLERS, AppModels, load_app_models
from .server import DEFAULT_HOST, DEFAULT_PORT, launch_options

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "SAMPLERS",
    "AppModels",
    "GlideAppCallbacks",
    "build_app",
    "launch_options",
    "load_app_models",
]
