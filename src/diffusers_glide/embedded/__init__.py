"""The tiny GLIDE model shipped inside the package, so a fresh install generates images offline.

`glide-shapes-32/` is a `GlidePipeline` folder (32x32 images, ~2.3M parameters) trained from scratch on the
procedural shapes dataset (`diffusers_glide.shapes`); its README.md holds the exact training command.
"""

from __future__ import annotations

from pathlib import Path

EMBEDDED_MODEL_NAME = "glide-shapes-32"
EMBEDDED_MODEL_DIR = Path(__file__).resolve().parent / EMBEDDED_MODEL_NAME


def embedded_model_path() -> str:
    """The folder of the embedded default pipeline (load it with `GlidePipeline.from_pretrained`)."""
    if not (EMBEDDED_MODEL_DIR / "model_index.json").is_file():
        raise FileNotFoundError(
            f"The embedded default model is missing from {EMBEDDED_MODEL_DIR}: the package was installed without "
            "its data files. Reinstall diffusers-glide, or pass a model folder / Hub id explicitly."
        )
    return str(EMBEDDED_MODEL_DIR)
