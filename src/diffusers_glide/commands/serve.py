"""`diffusers-glide serve`: the GLIDE web app (Gradio, `diffusers_glide.app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import loading
from .arguments import CLIError, add_device_arguments, port

if TYPE_CHECKING:
    import argparse

NAME = "serve"


def register_subcommand(subparsers, argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Add `serve` and its flags to `subparsers`."""
    parser = subparsers.add_parser(
        NAME,
        help="the web app (Gradio): generate, edit with a brush, image to image, upscale",
        description=(
            'Serve the GLIDE web app (needs `pip install "diffusers-glide[app]"`). Without model flags it serves '
            "every embedded model (text to image with CLIP guidance, inpainting, both upsamplers). With --model, only "
            "the stages named are served; 'default' names a stage's embedded model. By default it listens on "
            "127.0.0.1 only, with no public share link."
        ),
    )
    parser.add_argument(
        "--model",
        help="text-to-image (GlidePipeline) folder, Hub repo id, or 'openai' (OpenAI's released model, fetched and converted on first use)",
    )
    parser.add_argument(
        "--inpaint",
        help="inpainting (GlideInpaintPipeline) folder, Hub repo id, or 'openai' (OpenAI's released model, fetched and converted on first use): the Edit tab",
    )
    parser.add_argument(
        "--upsampler",
        help="upsampler folder, Hub repo id, or 'openai' (OpenAI's released model, fetched and converted on first use): upsampling and the Upscale tab",
    )
    parser.add_argument(
        "--inpaint_upsampler",
        help="upsample-inpaint folder, Hub repo id, or 'openai' (OpenAI's released model, fetched and converted on first use): upsampling in the Edit tab",
    )
    parser.add_argument(
        "--clip",
        help="noised-CLIP folder, Hub repo id, or 'openai' (OpenAI's released model, fetched and converted on first use): CLIP guidance",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 serves the network)",
    )
    parser.add_argument("--port", type=port, default=7860, help="port, 1..65535 (default: %(default)s)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    parser.add_argument(
        "--max_file_size", default="10mb", help="largest upload Gradio accepts, e.g. 5mb (default: %(default)s)"
    )
    add_device_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Load the models and serve the app until it is stopped; returns the exit code."""
    device = loading.parse_device(args.device)
    try:
        from ..app import build_app, launch_options, load_app_models
    except ImportError as error:
        raise CLIError(str(error)) from error
    options = launch_options(host=args.host, port=args.port, share=args.share, max_file_size=args.max_file_size)
    models = load_app_models(
        model=args.model,
        inpaint=args.inpaint,
        upsampler=args.upsampler,
        inpaint_upsampler=args.inpaint_upsampler,
        clip=args.clip,
        device=device,
        dtype=loading.weights_dtype(args),
    )
    build_app(models).launch(**options)
    return 0
