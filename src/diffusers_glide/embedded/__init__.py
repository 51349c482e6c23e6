"""The tiny trained models shipped inside the package, so that every GLIDE stage runs offline on a fresh install.

Each is a folder that `from_pretrained` loads like any other, trained with the package's own trainer on the
procedural shapes dataset (`diffusers_glide.shapes`); its README.md holds the exact command, the wall time and
the evaluation:

| kind | folder | loads with |
|---|---|---|
| `"base"` | `glide-shapes-32` | `GlidePipeline` (32x32 text to image) |
| `"base-inpaint"` | `glide-shapes-inpaint-32` | `GlideInpaintPipeline` (32x32) |
| `"upsample"` | `glide-shapes-upsample-128` | `GlideUpsamplePipeline` (32 -> 128) |
| `"upsample-inpaint"` | `glide-shapes-upsample-inpaint-128` | `GlideUpsamplePipeline` (32 -> 128, inpainting) |
| `"clip"` | `glide-shapes-clip-32` | `GlidePipeline.load_clip_guidance` (noised CLIP, 32x32) |
"""

from __future__ import annotations

from pathlib import Path

EMBEDDED_ROOT = Path(__file__).resolve().parent
EMBEDDED_MODELS: dict[str, str] = {
    "base": "glide-shapes-32",
    "base-inpaint": "glide-shapes-inpaint-32",
    "upsample": "glide-shapes-upsample-128",
    "upsample-inpaint": "glide-shapes-upsample-inpaint-128",
    "clip": "glide-shapes-clip-32",
}
EMBEDDED_MODEL_KINDS: tuple[str, ...] = tuple(EMBEDDED_MODELS)
# the text-to-image default, kept under its old names
EMBEDDED_MODEL_NAME = EMBEDDED_MODELS["base"]
EMBEDDED_MODEL_DIR = EMBEDDED_ROOT / EMBEDDED_MODEL_NAME


def embedded_model_path(kind: str = "base") -> str:
    """
    The folder of the embedded model of `kind`: `"base"` (the default), `"base-inpaint"`, `"upsample"`,
    `"upsample-inpaint"` (load them with their pipeline's `from_pretrained`) or `"clip"` (load it with
    `GlidePipeline.load_clip_guidance`).
    """
    if kind not in EMBEDDED_MODELS:
        raise ValueError(f"Unknown embedded model {kind!r}; the package ships {list(EMBEDDED_MODEL_KINDS)}.")
    folder = EMBEDDED_ROOT / EMBEDDED_MODELS[kind]
    marker = "clip_image_encoder/config.json" if kind == "clip" else "model_index.json"
    if not (folder / marker).is_file():
        raise FileNotFoundError(
            f"The embedded {kind!r} model is missing from {folder}: the package was installed without its data "
            "files. Reinstall diffusers-glide, or pass a model folder / Hub id explicitly."
        )
    return str(folder)
