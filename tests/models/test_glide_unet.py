"""GlideUNet2DModel: parity with the reference UNet for all four variants, dtypes, checkpointing, attention slicing,
config and input errors."""

import gc
import json
import os
import re
import shutil

import pytest
import torch
import torch.nn.functional as F
from conftest import MODEL_TYPES, load_reference, max_abs_diff, public_config, tiny_unet
from diffusers import DiffusionPipeline

from diffusers_glide import GlideTextEncoder, GlideUNet2DModel
from diffusers_glide.models.glide_unet import GlideAttentionBlock


def _load(folder, dtype=torch.float32):
    unet = GlideUNet2DModel.from_pretrained(folder, subfolder="unet", dtype=dtype)
    text_encoder = GlideTextEncoder.from_pretrained(folder, subfolder="text_encoder", dtype=dtype)
    return unet, text_encoder


def _conditioning(ref) -> dict:
    kwargs = {}
    if "low_res" in ref:
        kwargs["low_res"] = ref["low_res"]
    if "inpaint_image" in ref:
        kwargs.update(inpaint_image=ref["inpaint_image"], inpaint_mask=ref["inpaint_mask"])
    return kwargs


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_forward_matches_reference(converted_folders, model_type):
    unet, text_encoder = _load(converted_folders[model_type])
    ref, _ = load_reference(f"{model_type}.forward")
    seen = {}
    hooks = [
        unet.conv_in.register_forward_pre_hook(lambda module, args: seen.__setitem__("unet_input", args[0])),
        unet.time_proj.register_forward_hook(lambda m, a, out: seen.__setitem__("timestep_embedding", out)),
        unet.time_embedding.register_forward_hook(lambda m, a, out: seen.__setitem__("time_embed_out", out)),
    ]
    with torch.no_grad():
        states = text_encoder(ref["tokens"], attention_mask=ref["mask"]).last_hidden_state
        out = unet(ref["x"], ref["timesteps"], states, **_conditioning(ref)).sample
    for hook in hooks:
        hook.remove()
    emb = seen["time_embed_out"] + unet.pooled_text_proj(states[:, -1])

    assert unet.config.super_resolution == ("low_res" in ref)
    assert unet.config.inpainting == ("inpaint_image" in ref)
    assert out.shape == ref["out"].shape
    for name, actual in [
        ("unet_input", seen["unet_input"]),
        ("timestep_embedding", seen["timestep_embedding"]),
        ("time_embed_out", seen["time_embed_out"]),
        ("emb", emb),
        ("out", out),
    ]:
        diff = max_abs_diff(actual, ref[name])
        assert diff <= 1e-4, f"{model_type} {name}: max abs diff {diff}"


@pytest.mark.parametrize("dtype, tolerance", [(torch.bfloat16, 0.1), (torch.float16, 0.01)])
def test_half_precision_weights_stay_close(converted_folders, dtype, tolerance):
    unet, text_encoder = _load(converted_folders["base"], dtype)
    assert unet.dtype == dtype and unet.norm_out.weight.dtype == dtype
    ref, _ = load_reference("base.forward")
    with torch.no_grad():
        states = text_encoder(ref["tokens"], attention_mask=ref["mask"]).last_hidden_state
        out = unet(ref["x"], ref["timesteps"], states).sample
    assert out.dtype == dtype
    diff = max_abs_diff(out, ref["out"])
    assert torch.isfinite(out).all()
    assert diff <= tolerance, f"{dtype} max abs diff {diff}"


def test_scalar_timestep_is_broadcast(converted_folders):
    unet, text_encoder = _load(converted_folders["base"])
    ref, _ = load_reference("base.forward")
    with torch.no_grad():
        states = text_encoder(ref["tokens"], attention_mask=ref["mask"]).last_hidden_state
        per_sample = unet(ref["x"], torch.tensor([731, 731, 731]), states).sample
        scalar = unet(ref["x"], 731, states).sample
    assert torch.equal(per_sample, scalar)
    assert max_abs_diff(scalar[0], ref["out"][0]) <= 1e-4


def test_save_load_round_trip_and_tuple_output(converted_folders, tmp_path):
    unet, text_encoder = _load(converted_folders["upsample"])
    unet.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    reloaded = GlideUNet2DModel.from_pretrained(tmp_path)
    assert public_config(reloaded.config) == public_config(unet.config)
    ref, _ = load_reference("upsample.forward")
    with torch.no_grad():
        states = text_encoder(ref["tokens"], attention_mask=ref["mask"]).last_hidden_state
        expected = unet(ref["x"], ref["timesteps"], states, low_res=ref["low_res"]).sample
        (actual,) = reloaded(ref["x"], ref["timesteps"], states, low_res=ref["low_res"], return_dict=False)
    assert torch.equal(actual, expected)


def test_gradient_checkpointing_gives_the_same_gradients():
    unet = tiny_unet(16, encoder_hid_dim=8)
    sample, states = torch.randn(2, 3, 16, 16), torch.randn(2, 5, 8)

    def grads():
        unet.zero_grad()
        unet(sample, torch.tensor([10, 500]), states).sample.square().mean().backward()
        return {name: p.grad.clone() for name, p in unet.named_parameters()}

    plain = grads()
    unet.enable_gradient_checkpointing()
    assert unet.gradient_checkpointing
    checkpointed = grads()
    for name in plain:
        assert torch.allclose(plain[name], checkpointed[name], atol=1e-6), name


@pytest.mark.parametrize(
    "overrides",
    [
        {"resblock_updown": False},
        {"resnet_time_scale_shift": "default"},
        {"attention_head_dim": None, "num_attention_heads": 2},
        {"encoder_hid_dim": None},
    ],
)
def test_architecture_options_build_and_run(overrides):
    unet = tiny_unet(**{"sample_size": 16, "encoder_hid_dim": 8, **overrides})
    states = None if overrides.get("encoder_hid_dim", 8) is None else torch.randn(1, 5, 8)
    with torch.no_grad():
        out = unet(torch.randn(1, 3, 16, 16), 3, states).sample
    assert out.shape == (1, 6, 16, 16)
    if overrides.get("resblock_updown") is False:
        assert unet.down_blocks[0].downsampler.conv is not None


def test_bad_inputs_raise_clear_errors():
    base = tiny_unet(16, encoder_hid_dim=8)
    upsample = tiny_unet(16, encoder_hid_dim=8, super_resolution=True)
    inpaint = tiny_unet(16, encoder_hid_dim=8, inpainting=True)
    x, states = torch.randn(1, 3, 16, 16), torch.randn(1, 5, 8)
    mask = torch.ones(1, 1, 16, 16)
    cases = [
        (base, dict(sample=torch.randn(1, 4, 16, 16)), r"`sample` must have shape \(batch, 3, height, width\)"),
        (base, dict(sample=torch.randn(1, 3, 15, 16)), "multiples of 2"),
        (base, dict(encoder_hidden_states=None), "encoder_hidden_states.*required"),
        (base, dict(encoder_hidden_states=torch.randn(1, 5, 7)), r"\(1, text_length, 8\)"),
        (base, dict(encoder_hidden_states=torch.randn(2, 5, 8)), r"\(1, text_length, 8\)"),
        (base, dict(low_res=torch.randn(1, 3, 8, 8)), "not a super-resolution model"),
        (upsample, {}, "super-resolution UNet: `low_res`.*required"),
        (upsample, dict(low_res=torch.randn(1, 1, 8, 8)), r"`low_res` must have shape \(1, 3"),
        (inpaint, dict(inpaint_image=x), "`inpaint_image` and `inpaint_mask` are both required"),
        (
            inpaint,
            dict(inpaint_image=x, inpaint_mask=torch.ones(1, 3, 16, 16)),
            r"`inpaint_mask` must have shape \(1, 1, 16, 16\)",
        ),
        (
            inpaint,
            dict(inpaint_image=torch.randn(1, 3, 8, 8), inpaint_mask=mask),
            "`inpaint_image` must have the shape",
        ),
        (base, dict(inpaint_image=x, inpaint_mask=mask), "not an inpainting model"),
    ]
    cases.append((base, dict(timestep=torch.tensor([1, 2])), "single timestep or one per sample"))
    for model, overrides, message in cases:
        kwargs = dict(sample=x, timestep=5, encoder_hidden_states=states)
        kwargs.update(overrides)
        with pytest.raises(ValueError, match=message):
            model(**kwargs)


BAD_UNET_CONFIGS = [
    ("sample_size", "64", "an integer in [1, 4096]"),
    ("sample_size", 0, "an integer in [1, 4096]"),
    ("sample_size", 17, "a multiple of 2 (the UNet's total downsampling factor)"),
    ("in_channels", -3, "an integer in [1, 64]"),
    ("out_channels", 6.0, "an integer in [1, 64]"),
    ("layers_per_block", 0, "an integer in [1, 64]"),
    ("block_out_channels", [], "a list of 1 to 8 integers in [1, 8192]"),
    ("block_out_channels", [32, "64"], "a list of 1 to 8 integers in [1, 8192]"),
    ("block_out_channels", [32, 0], "a list of 1 to 8 integers in [1, 8192]"),
    ("attention_levels", [True], "a list of 2 booleans (one per level of `block_out_channels`)"),
    ("attention_levels", [False, "true"], "a list of 2 booleans (one per level of `block_out_channels`)"),
    ("attention_head_dim", 24, "a divisor of the attention channels (64,)"),
    ("attention_head_dim", 0, "an integer in [1, 1024] or None"),
    ("norm_num_groups", 5, "a divisor of `block_out_channels` (32, 64)"),
    ("encoder_hid_dim", 0, "an integer in [1, 8192] or None"),
    ("super_resolution", "false", "true or false (a boolean, not a string or number)"),
    ("inpainting", 1, "true or false (a boolean, not a string or number)"),
    ("resblock_updown", None, "true or false (a boolean, not a string or number)"),
    ("resnet_time_scale_shift", "film", "one of 'scale_shift', 'default'"),
    ("dropout", 1.0, "a number in [0, 1)"),
    ("dropout", -0.1, "a number in [0, 1)"),
    ("dropout", "0.1", "a number in [0, 1)"),
    ("norm_eps", 0.0, "a number > 0"),
    ("norm_eps", float("nan"), "a number > 0"),
    ("low_res_residual", "yes", "true or false (a boolean, not a string or number)"),
]


@pytest.mark.parametrize(("key", "value", "expected"), BAD_UNET_CONFIGS)
def test_impossible_configs_name_the_key_value_and_expectation(key, value, expected):
    message = f"GlideUNet2DModel config: `{key}` must be {expected}, got {value!r}."
    with pytest.raises(ValueError, match=re.escape(message)):
        tiny_unet(**{"sample_size": 16, "encoder_hid_dim": 8, key: value})


def test_low_res_residual_needs_a_super_resolution_model_with_image_outputs():
    with pytest.raises(ValueError, match=re.escape("`low_res_residual=True` needs `super_resolution=True`")):
        tiny_unet(16, encoder_hid_dim=8, low_res_residual=True)
    message = "`out_channels` must be at least in_channels (3) with `low_res_residual`, got 2."
    with pytest.raises(ValueError, match=re.escape(message)):
        tiny_unet(16, encoder_hid_dim=8, super_resolution=True, low_res_residual=True, out_channels=2)


@pytest.mark.parametrize("inpainting", [False, True])
def test_low_res_residual_adds_the_bilinear_upsampling_to_the_image_channels(inpainting):
    residual = tiny_unet(16, super_resolution=True, inpainting=inpainting, low_res_residual=True)
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 3, 16, 16, generator=generator)
    low_res = torch.rand(2, 3, 4, 4, generator=generator) * 2 - 1
    states = torch.randn(2, 8, 16, generator=generator)
    extra = {}
    if inpainting:
        extra = {"inpaint_image": torch.rand(2, 3, 16, 16) * 2 - 1, "inpaint_mask": torch.ones(2, 1, 16, 16)}
    # Hand-computed bilinear (align_corners=False) upsampling of the top-left corner: at output pixel (0, 0) of a
    # 4x upsampling the source coordinate is -0.375, clamped to 0, so the pixel equals low_res[..., 0, 0]; pixel
    # (0, 2) sits at 0.125 between columns 0 and 1.
    with torch.no_grad():
        untrained = residual(sample, 500, states, low_res=low_res, **extra).sample
    assert untrained.shape == (2, 6, 16, 16)
    assert torch.equal(untrained[:, 3:], torch.zeros(2, 3, 16, 16)), "conv_out starts at zero"
    assert torch.equal(untrained[:, :3, 0, 0], low_res[:, :, 0, 0])
    expected = 0.875 * low_res[:, :, 0, 0] + 0.125 * low_res[:, :, 0, 1]
    assert max_abs_diff(untrained[:, :3, 0, 2], expected) <= 1e-6

    # Trained weights: the output is the plain model's plus the upsampling, on the image channels only.
    torch.manual_seed(1)
    torch.nn.init.normal_(residual.conv_out.weight, std=0.05)
    plain = tiny_unet(16, super_resolution=True, inpainting=inpainting)
    plain.load_state_dict(residual.state_dict())
    with torch.no_grad():
        with_residual = residual(sample, 500, states, low_res=low_res, **extra).sample
        without = plain(sample, 500, states, low_res=low_res, **extra).sample
    upsampled = F.interpolate(low_res, size=(16, 16), mode="bilinear", align_corners=False)
    assert max_abs_diff(with_residual[:, :3], without[:, :3] + upsampled) <= 1e-6
    assert torch.equal(with_residual[:, 3:], without[:, 3:])
    assert not torch.equal(with_residual, without)


def test_heads_must_split_every_attention_width():
    # The middle block always has attention, at the last level's 64 channels: 3 heads cannot split them.
    with pytest.raises(
        ValueError, match=re.escape("`num_attention_heads` must be a divisor of the attention channels")
    ):
        tiny_unet(16, encoder_hid_dim=8, attention_head_dim=None, num_attention_heads=3)
    with pytest.raises(ValueError, match="set exactly one of `attention_head_dim` and `num_attention_heads`"):
        tiny_unet(16, encoder_hid_dim=8, attention_head_dim=None)
    with pytest.raises(ValueError, match=re.escape("got attention_head_dim=16, num_attention_heads=2.")):
        tiny_unet(16, encoder_hid_dim=8, num_attention_heads=2)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("sample_size", "16", "an integer in [1, 4096]"),
        ("attention_levels", [True, True, True], "a list of 2 booleans (one per level of `block_out_channels`)"),
        ("dropout", 2, "a number in [0, 1)"),
    ],
)
def test_edited_config_json_fails_in_from_pretrained(tmp_path, key, value, expected):
    tiny_unet(16, encoder_hid_dim=8).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config[key] = value
    (tmp_path / "config.json").write_text(json.dumps(config))
    message = f"GlideUNet2DModel config: `{key}` must be {expected}, got {value!r}."
    with pytest.raises(ValueError, match=re.escape(message)):
        GlideUNet2DModel.from_pretrained(tmp_path)


def _sliced_unet() -> GlideUNet2DModel:
    # Attention at both levels: 2 heads at 32 channels, 4 heads at 64 (and in the middle block).
    return tiny_unet(16, encoder_hid_dim=8, attention_levels=(True, True)).eval()


def _heads_per_attention_call(unet, monkeypatch) -> tuple[torch.Tensor, list[int]]:
    """The UNet's output, and the number of heads of every attention call it made."""
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting(query, key, value, *args, **kwargs):
        calls.append(query.shape[1])
        return sdpa(query, key, value, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    generator = torch.Generator().manual_seed(0)
    sample, states = torch.randn(2, 3, 16, 16, generator=generator), torch.randn(2, 5, 8, generator=generator)
    with torch.no_grad():
        output = unet(sample, torch.tensor([10, 900]), states).sample
    monkeypatch.setattr(F, "scaled_dot_product_attention", sdpa)
    return output, calls


# Heads of the attention layers in module order: down level 0, down level 1, middle, up level 1 (x2), up level 0 (x2).
UNSLICED = [2, 4, 4, 4, 4, 2, 2]


@pytest.mark.parametrize(
    ("slice_size", "heads_per_call"),
    [
        ("auto", [1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1]),
        ("max", [1] * 22),
        (3, [2, 3, 1, 3, 1, 3, 1, 3, 1, 2, 2]),
        (4, UNSLICED),
        ([None, 1, None, 2, 4, 1, None], [2, 1, 1, 1, 1, 4, 2, 2, 4, 1, 1, 2]),
    ],
)
def test_attention_slicing_slices_heads_and_keeps_the_output(monkeypatch, slice_size, heads_per_call):
    unet = _sliced_unet()
    expected, calls = _heads_per_attention_call(unet, monkeypatch)
    assert calls == UNSLICED
    unet.set_attention_slice(slice_size)
    sliced, calls = _heads_per_attention_call(unet, monkeypatch)
    assert calls == heads_per_call
    assert max_abs_diff(sliced, expected) <= 1e-5
    unet.set_attention_slice(None)
    unsliced, calls = _heads_per_attention_call(unet, monkeypatch)
    assert calls == UNSLICED and torch.equal(unsliced, expected)


def test_pipeline_attention_slicing_reaches_the_attention_layers():
    """diffusers' `DiffusionPipeline.enable_attention_slicing` calls `set_attention_slice` on every component."""

    class UNetOnlyPipeline(DiffusionPipeline):
        def __init__(self, unet):
            super().__init__()
            self.register_modules(unet=unet)

    unet = _sliced_unet()
    pipe = UNetOnlyPipeline(unet)
    blocks = [module for module in unet.modules() if isinstance(module, GlideAttentionBlock)]
    assert [block.slice_size for block in blocks] == [None] * 7
    pipe.enable_attention_slicing()
    assert [block.slice_size for block in blocks] == [1, 2, 2, 2, 2, 1, 1]
    pipe.enable_attention_slicing("max")
    assert [block.slice_size for block in blocks] == [1] * 7
    pipe.disable_attention_slicing()
    assert [block.slice_size for block in blocks] == [None] * 7


@pytest.mark.parametrize(
    ("slice_size", "message"),
    [
        (
            "half",
            "`slice_size` must be 'auto', 'max', a number of heads >= 1, a list with one entry per attention layer "
            "(7, with [2, 4, 4, 4, 4, 2, 2] heads) or None, got 'half'.",
        ),
        (0, "or None, got 0."),
        (-2, "or None, got -2."),
        (True, "or None, got True."),
        (1.5, "or None, got 1.5."),
        ([1, 1], "or None, got [1, 1]."),
        (
            [None, 5, None, None, None, None, None],
            "`slice_size` must be a number of heads from 1 to 4 (this layer's heads) or None, got 5.",
        ),
        ([None, None, None, None, None, 0, None], "from 1 to 2 (this layer's heads) or None, got 0."),
    ],
)
def test_bad_attention_slice_sizes_raise(slice_size, message):
    unet = _sliced_unet()
    unet.set_attention_slice("max")
    with pytest.raises(ValueError, match=re.escape(message)):
        unet.set_attention_slice(slice_size)
    # Nothing changed, not even the layers before a bad list entry.
    assert [m.slice_size for m in unet.modules() if isinstance(m, GlideAttentionBlock)] == [1] * 7


@pytest.mark.parametrize("model_type", ["base", "upsample-inpaint"])
def test_channels_last_gives_the_reference_output(converted_folders, model_type):
    """`unet.to(memory_format=torch.channels_last)` (faster convolutions on CPU) computes the same thing."""
    unet, text_encoder = _load(converted_folders[model_type])
    unet.to(memory_format=torch.channels_last)
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    ref, _ = load_reference(f"{model_type}.forward")
    with torch.no_grad():
        states = text_encoder(ref["tokens"], attention_mask=ref["mask"]).last_hidden_state
        sample = ref["x"].to(memory_format=torch.channels_last)
        out = unet(sample, ref["timesteps"], states, **_conditioning(ref)).sample
    diff = max_abs_diff(out, ref["out"])
    assert diff <= 1e-4, f"{model_type} channels-last: max abs diff {diff}"


def _mapped_files() -> set[str]:
    with open("/proc/self/maps", encoding="utf-8") as maps:
        return {line.split(maxsplit=5)[5].strip() for line in maps if len(line.split(maxsplit=5)) == 6}


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads the process's mappings from Linux's /proc")
def test_to_channels_last_keeps_one_copy_of_the_weights(converted_folders, tmp_path):
    """The method converts like `.to(memory_format=torch.channels_last)` and copies the weights it leaves in place
    out of the memory-mapped safetensors file, which is then no longer mapped (so its pages are not held too)."""
    folder = shutil.copytree(converted_folders["base"], tmp_path / "base")  # mapped by this test alone
    weights = str(folder / "unet" / "diffusion_pytorch_model.safetensors")
    unet, text_encoder = _load(folder)
    assert weights in _mapped_files()  # from_pretrained memory-maps the file
    assert unet.to_channels_last() is unet
    gc.collect()
    assert weights not in _mapped_files()
    four_d = [name for name, param in unet.named_parameters() if param.ndim == 4]
    assert four_d and all(unet.get_parameter(name).is_contiguous(memory_format=torch.channels_last) for name in four_d)
    ref, _ = load_reference("base.forward")
    with torch.no_grad():
        states = text_encoder(ref["tokens"], attention_mask=ref["mask"]).last_hidden_state
        out = unet(ref["x"].to(memory_format=torch.channels_last), ref["timesteps"], states).sample
    diff = max_abs_diff(out, ref["out"])
    assert diff <= 1e-4, f"to_channels_last: max abs diff {diff}"
