import pytest
import torch
from conftest import tiny_unet

from diffusers_glide.training.presets import PRESETS, adapt_unet_to_variant, build_models_from_preset

TINY_UNET = {"block_out_channels": (16, 32), "encoder_hid_dim": 8, "norm_num_groups": 8}


def _outputs(unet, generator_seed=0, **extra):
    generator = torch.Generator().manual_seed(generator_seed)
    sample = torch.randn(2, 3, 8, 8, generator=generator)
    text = torch.randn(2, 5, 8, generator=generator)
    with torch.no_grad():
        return unet(sample, torch.tensor([3, 700]), text, **extra).sample


@pytest.mark.parametrize("model_type", ["base-inpaint", "upsample", "upsample-inpaint"])
def test_adapted_base_unet_computes_what_the_base_did(model_type):
    base = tiny_unet(**TINY_UNET)
    adapted = adapt_unet_to_variant(base, model_type).eval()
    assert adapted.config.inpainting == model_type.endswith("inpaint")
    assert adapted.config.super_resolution == model_type.startswith("upsample")
    extra = {}
    if adapted.config.inpainting:
        extra.update(inpaint_image=torch.rand(2, 3, 8, 8), inpaint_mask=(torch.rand(2, 1, 8, 8) > 0.5).float())
    if adapted.config.super_resolution:
        extra["low_res"] = torch.rand(2, 3, 2, 2)
    # the new inputs start with zero weights: same output whatever they hold
    torch.testing.assert_close(_outputs(adapted, **extra), _outputs(base), atol=1e-6, rtol=0)
    assert adapted.conv_in.weight[:, 3:].abs().max() == 0


def test_adapting_keeps_existing_inputs_and_refuses_to_drop_them():
    inpaint = tiny_unet(**TINY_UNET, inpainting=True)
    both = adapt_unet_to_variant(inpaint, "upsample-inpaint")
    torch.testing.assert_close(both.conv_in.weight[:, :7], inpaint.conv_in.weight)
    assert both.conv_in.weight[:, 7:].abs().max() == 0
    assert adapt_unet_to_variant(inpaint, "base-inpaint") is inpaint
    with pytest.raises(ValueError, match="would drop conditioning inputs"):
        adapt_unet_to_variant(inpaint, "base")


def test_shapes_preset_is_a_few_million_parameters():
    unet, text_encoder, scheduler = build_models_from_preset("shapes-tiny", vocab_size=22, model_type="base")
    parameters = sum(p.numel() for p in unet.parameters()) + sum(p.numel() for p in text_encoder.parameters())
    assert 1_000_000 < parameters < 2_600_000  # <= ~10 MB of float32 safetensors
    assert unet.config.encoder_hid_dim == text_encoder.config.hidden_size == 64
    assert text_encoder.config.vocab_size == 22 and scheduler.config.beta_schedule == "squaredcos_cap_v2"
    with pytest.raises(ValueError, match="Unknown preset 'nope'"):
        build_models_from_preset("nope", 10, "base")
    assert "glide-base" in PRESETS
