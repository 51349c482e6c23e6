"""The variant table: one home for the four model types, their pipeline classes, flags and notebook sampling."""

import ast

import pytest
from conftest import REPO_ROOT

from diffusers_glide import pipelines
from diffusers_glide.training.presets import build_models_from_preset
from diffusers_glide.variants import (
    MODEL_TYPES,
    PIPELINE_CLASSES,
    TASK_PIPELINE_CLASSES,
    VARIANTS,
    get_variant,
    models_pipeline_class,
    variant_of_unet_config,
)


def test_the_table():
    assert MODEL_TYPES == ("base", "upsample", "base-inpaint", "upsample-inpaint")
    assert {t: (v.pipeline_class, v.super_resolution, v.inpainting) for t, v in VARIANTS.items()} == {
        "base": ("GlidePipeline", False, False),
        "upsample": ("GlideUpsamplePipeline", True, False),
        "base-inpaint": ("GlideInpaintPipeline", False, True),
        "upsample-inpaint": ("GlideUpsamplePipeline", True, True),
    }
    # OpenAI's notebooks: 100 ancestral steps for the 64x64 stages, "fast27" DDIM for the upsampler, and
    # "fast27" ancestral for the inpainting upsampler
    assert {t: (v.notebook_respacing, v.notebook_sampler) for t, v in VARIANTS.items()} == {
        "base": ("100", "ddpm"),
        "upsample": ("fast27", "ddim"),
        "base-inpaint": ("100", "ddpm"),
        "upsample-inpaint": ("fast27", "ddpm"),
    }
    assert PIPELINE_CLASSES == (
        "GlidePipeline",
        "GlideUpsamplePipeline",
        "GlideInpaintPipeline",
        "GlideImg2ImgPipeline",
    )
    # image to image runs the base model: it loads (and is) a text-to-image folder's pipeline class
    assert TASK_PIPELINE_CLASSES == {"GlideImg2ImgPipeline": "GlidePipeline"}
    assert models_pipeline_class("GlideImg2ImgPipeline") == "GlidePipeline"
    assert models_pipeline_class("GlideInpaintPipeline") == "GlideInpaintPipeline"
    assert [t for t, v in VARIANTS.items() if v.text_to_image] == ["base"]


def test_unknown_model_type_is_an_error():
    assert get_variant("upsample-inpaint") is VARIANTS["upsample-inpaint"]
    with pytest.raises(ValueError, match=r"model_type must be one of \('base', .*\), got 'clip'"):
        get_variant("clip")


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_each_variant_builds_its_pipeline_and_is_found_from_its_unet(model_type):
    variant = VARIANTS[model_type]
    unet, text_encoder, scheduler = build_models_from_preset("shapes-tiny", vocab_size=22, model_type=model_type)
    assert (unet.config.super_resolution, unet.config.inpainting) == (variant.super_resolution, variant.inpainting)
    assert variant_of_unet_config(unet.config) is variant
    assert variant_of_unet_config(dict(unet.config)) is variant
    pipeline_class = getattr(pipelines, variant.pipeline_class)
    pipeline = pipeline_class(unet=unet, text_encoder=text_encoder, tokenizer=None, scheduler=scheduler)
    assert type(pipeline).__name__ == variant.pipeline_class


def test_the_module_imports_nothing_from_the_package():
    tree = ast.parse((REPO_ROOT / "src" / "diffusers_glide" / "variants.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert imported == {"__future__", "collections.abc", "dataclasses"}
