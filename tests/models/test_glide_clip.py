"""The noised CLIP towers against the reference's `clip.forward.safetensors` (embeddings and cond_fn gradient);
shape and config checks (input values such as timesteps and token ids are the pipelines' to check)."""

import json
import re

import pytest
import torch
from conftest import load_reference, max_abs_diff

from diffusers_glide import GlideCLIPImageEncoder, GlideCLIPTextEncoder
from diffusers_glide.pipelines.clip_guidance import clip_guidance_gradient, normalize_embeddings

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference():
    return load_reference("clip.forward")


@pytest.fixture(scope="module")
def image_encoder(converted_clip_folder):
    return GlideCLIPImageEncoder.from_pretrained(converted_clip_folder, subfolder="clip_image_encoder")


@pytest.fixture(scope="module")
def text_encoder(converted_clip_folder):
    return GlideCLIPTextEncoder.from_pretrained(converted_clip_folder, subfolder="clip_text_encoder")


def _text_mask(lengths: torch.Tensor, context: int = 77) -> torch.Tensor:
    return torch.arange(context)[None] < lengths[:, None]


def test_configs_follow_the_reference_config(image_encoder, text_encoder, reference):
    _, info = reference
    config = info["config"]
    assert image_encoder.config.hidden_size == config["n_head_image"] * config["n_head_state_image"] == 48
    assert image_encoder.config.num_attention_heads == 3 and image_encoder.config.num_hidden_layers == 2
    assert image_encoder.config.image_size == 32 and image_encoder.config.patch_size == 4
    assert image_encoder.config.logit_scale == 100.0
    assert text_encoder.config.hidden_size == config["n_head_text"] * config["n_head_state_text"] == 16
    assert text_encoder.config.vocab_size == 65536 and text_encoder.config.context_length == 77
    assert image_encoder.config.projection_dim == text_encoder.config.projection_dim == config["n_embd"] == 32


def test_text_embeddings_match_the_reference(text_encoder, reference):
    ref, _ = reference
    with torch.no_grad():
        embeds = text_encoder(ref["text_tokens"], attention_mask=_text_mask(ref["text_lens"])).text_embeds
    diff = max_abs_diff(embeds, ref["text_emb_unnormalized"])
    assert diff <= TOLERANCE, f"unnormalised text embeddings: max abs diff {diff}"
    diff = max_abs_diff(normalize_embeddings(embeds), ref["text_emb"])
    assert diff <= TOLERANCE, f"normalised text embeddings: max abs diff {diff}"


def test_image_embeddings_match_the_reference(image_encoder, reference):
    ref, _ = reference
    assert ref["image_timesteps"].tolist() == [999, 0, 417]
    with torch.no_grad():
        embeds = image_encoder(ref["images"], ref["image_timesteps"]).image_embeds
    diff = max_abs_diff(embeds, ref["image_emb_unnormalized"])
    assert diff <= TOLERANCE, f"unnormalised image embeddings: max abs diff {diff}"
    diff = max_abs_diff(normalize_embeddings(embeds), ref["image_emb"])
    assert diff <= TOLERANCE, f"normalised image embeddings: max abs diff {diff}"


def test_the_timestep_token_matters(image_encoder, reference):
    ref, _ = reference
    with torch.no_grad():
        at_999 = image_encoder(ref["images"][:1], 999).image_embeds
        at_0 = image_encoder(ref["images"][:1], torch.tensor([0.0])).image_embeds  # integral floats are accepted
    assert max_abs_diff(at_999, ref["image_emb_unnormalized"][:1]) <= TOLERANCE
    assert max_abs_diff(at_999, at_0) > 1e-2


def test_cond_fn_gradient_matches_the_reference(image_encoder, reference):
    ref, info = reference
    gradient = clip_guidance_gradient(
        image_encoder, ref["cond_x"], ref["cond_timesteps"], ref["text_emb"], scale=info["grad_scale"]
    )
    assert gradient.shape == ref["cond_x"].shape and gradient.dtype == torch.float32
    diff = max_abs_diff(gradient, ref["cond_grad"])
    scale = ref["cond_grad"].abs().max().item()
    assert diff <= TOLERANCE, f"cond_fn gradient: max abs diff {diff} (gradient magnitude up to {scale:.3g})"


def test_gradient_rows_are_independent(image_encoder, reference):
    ref, info = reference
    full = clip_guidance_gradient(image_encoder, ref["cond_x"], ref["cond_timesteps"], ref["text_emb"], 2.0)
    row = clip_guidance_gradient(
        image_encoder, ref["cond_x"][1:2], ref["cond_timesteps"][1:2], ref["text_emb"][1:2], 2.0
    )
    assert max_abs_diff(row, full[1:2]) <= 1e-6


def test_gradient_through_the_resize_to_the_clip_size(image_encoder, reference):
    """A 48x48 x_t is resized to CLIP's 32x32 inside the graph; the gradient matches a finite difference."""
    ref, _ = reference
    encoder = image_encoder.double()
    try:
        x = torch.randn(1, 3, 48, 48, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        text = ref["text_emb"][:1].double()
        gradient = clip_guidance_gradient(encoder, x, 417, text, scale=1.0).double()
        assert gradient.shape == x.shape
        direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

        def similarity(sample):
            resized = torch.nn.functional.interpolate(sample, size=(32, 32), mode="bilinear", antialias=True)
            with torch.no_grad():
                embeds = normalize_embeddings(encoder(resized, 417).image_embeds)
            return 100.0 * (embeds * text).sum()

        step = 1e-5
        numeric = (similarity(x + step * direction) - similarity(x - step * direction)) / (2 * step)
        analytic = (gradient * direction).sum()
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), (numeric.item(), analytic.item())
    finally:
        encoder.float()


def test_bfloat16_models_stay_close(image_encoder, text_encoder, reference):
    ref, _ = reference
    image_bf16 = GlideCLIPImageEncoder.from_config(image_encoder.config)
    image_bf16.load_state_dict(image_encoder.state_dict())
    image_bf16.to(torch.bfloat16)
    with torch.no_grad():
        embeds = normalize_embeddings(image_bf16(ref["images"], ref["image_timesteps"]).image_embeds.float())
    assert image_bf16.pixel_mean.dtype == torch.bfloat16
    assert max_abs_diff(embeds, ref["image_emb"]) <= 0.05


def test_image_encoder_rejects_bad_inputs(image_encoder, reference):
    ref, _ = reference
    images = ref["images"]
    with pytest.raises(
        ValueError, match=r"`sample` must have shape \(batch, 3, 32, 32\).*resize first.*\(3, 3, 64, 64\)"
    ):
        image_encoder(torch.zeros(3, 3, 64, 64), 10)
    with pytest.raises(ValueError, match=r"`sample` must have shape"):
        image_encoder(images[:, :1], 10)
    with pytest.raises(ValueError, match=r"one per image\), got shape \(2,\)"):
        image_encoder(images, torch.tensor([5, 6]))


def test_text_encoder_rejects_bad_inputs(text_encoder, reference):
    ref, _ = reference
    tokens, mask = ref["text_tokens"], _text_mask(ref["text_lens"])
    with pytest.raises(ValueError, match=r"`input_ids` must have shape \(batch, 77\).*got \(3, 16\)"):
        text_encoder(tokens[:, :16], attention_mask=mask[:, :16])
    with pytest.raises(ValueError, match=r"`attention_mask` must have the shape of `input_ids` \(3, 77\), got None"):
        text_encoder(tokens, attention_mask=None)
    with pytest.raises(
        ValueError, match=r"`attention_mask` must have the shape of `input_ids` \(3, 77\), got \(3, 76\)"
    ):
        text_encoder(tokens, attention_mask=mask[:, :76])


TINY_IMAGE_CONFIG = dict(image_size=8, patch_size=4, hidden_size=8, num_hidden_layers=1, num_attention_heads=2)
TINY_TEXT_CONFIG = dict(vocab_size=10, context_length=5, hidden_size=8, num_hidden_layers=1, num_attention_heads=2)


@pytest.mark.parametrize(
    ("cls", "key", "value", "expected"),
    [
        (GlideCLIPImageEncoder, "image_size", "8", "an integer in [1, 4096]"),
        (GlideCLIPImageEncoder, "patch_size", 0, "an integer in [1, 256]"),
        (GlideCLIPImageEncoder, "patch_size", 3, "a divisor of `image_size` (8,)"),
        (GlideCLIPImageEncoder, "num_attention_heads", 3, "a divisor of `hidden_size` (8,)"),
        (GlideCLIPImageEncoder, "projection_dim", -1, "an integer in [1, 8192]"),
        (GlideCLIPImageEncoder, "num_train_timesteps", 0, "an integer in [1, 100000]"),
        (GlideCLIPImageEncoder, "logit_scale", "100", "a number > 0"),
        (GlideCLIPImageEncoder, "logit_scale", float("inf"), "a number > 0"),
        (GlideCLIPImageEncoder, "layer_norm_eps", 0.0, "a number > 0"),
        (GlideCLIPTextEncoder, "vocab_size", 0, "an integer in [1, 1048576]"),
        (GlideCLIPTextEncoder, "context_length", 0, "an integer in [1, 4096]"),
        (GlideCLIPTextEncoder, "hidden_size", True, "an integer in [1, 8192]"),
        (GlideCLIPTextEncoder, "num_hidden_layers", 1.5, "an integer in [1, 64]"),
        (GlideCLIPTextEncoder, "num_attention_heads", 16, "a divisor of `hidden_size` (8,)"),
        (GlideCLIPTextEncoder, "layer_norm_eps", -1.0, "a number > 0"),
    ],
)
def test_impossible_configs_name_the_key_value_and_expectation(cls, key, value, expected):
    config = TINY_IMAGE_CONFIG if cls is GlideCLIPImageEncoder else TINY_TEXT_CONFIG
    message = f"{cls.__name__} config: `{key}` must be {expected}, got {value!r}."
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(**{**config, key: value})


@pytest.mark.parametrize(
    ("cls", "edit", "message"),
    [
        (GlideCLIPImageEncoder, {"image_size": 10}, "`patch_size` must be a divisor of `image_size` (10,), got 4."),
        (GlideCLIPTextEncoder, {"context_length": -77}, "`context_length` must be an integer in [1, 4096], got -77."),
    ],
)
def test_edited_config_json_fails_in_from_pretrained(tmp_path, cls, edit, message):
    cls(**(TINY_IMAGE_CONFIG if cls is GlideCLIPImageEncoder else TINY_TEXT_CONFIG)).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **edit}))
    with pytest.raises(ValueError, match=re.escape(f"{cls.__name__} config: {message}")):
        cls.from_pretrained(tmp_path)
