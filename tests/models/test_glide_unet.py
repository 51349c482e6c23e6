"""GlideUNet2DModel: parity with the reference UNet for all four variants, dtypes, checkpointing, errors."""

import pytest
import torch
from conftest import MODEL_TYPES, load_reference, max_abs_diff, public_config

from diffusers_glide import GlideTextEncoder, GlideUNet2DModel


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


def _tiny_unet(**overrides) -> GlideUNet2DModel:
    config = dict(
        sample_size=16,
        block_out_channels=(32, 64),
        layers_per_block=1,
        attention_levels=(False, True),
        attention_head_dim=16,
        encoder_hid_dim=8,
        dropout=0.0,
    )
    config.update(overrides)
    torch.manual_seed(0)
    return GlideUNet2DModel(**config)


def test_gradient_checkpointing_gives_the_same_gradients():
    unet = _tiny_unet()
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
    unet = _tiny_unet(**overrides)
    states = None if overrides.get("encoder_hid_dim", 8) is None else torch.randn(1, 5, 8)
    with torch.no_grad():
        out = unet(torch.randn(1, 3, 16, 16), 3, states).sample
    assert out.shape == (1, 6, 16, 16)
    if overrides.get("resblock_updown") is False:
        assert unet.down_blocks[0].downsampler.conv is not None


def test_bad_inputs_raise_clear_errors():
    base = _tiny_unet()
    upsample = _tiny_unet(super_resolution=True)
    inpaint = _tiny_unet(inpainting=True)
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


def test_invalid_configs_raise():
    with pytest.raises(ValueError, match="one entry per level"):
        _tiny_unet(attention_levels=(True,))
    with pytest.raises(ValueError, match="resnet_time_scale_shift"):
        _tiny_unet(resnet_time_scale_shift="film")
    with pytest.raises(ValueError, match="exactly one of"):
        _tiny_unet(attention_head_dim=None)


def test_text_key_values_are_projected_once_per_sampling_loop():
    """Under no_grad the text projection is reused while the same, unmodified text tensor comes back."""
    import pickle

    unet = _tiny_unet(sample_size=8, encoder_hid_dim=16).eval()
    calls = []
    hooks = [
        block.encoder_to_kv.register_forward_hook(lambda *args: calls.append(1))
        for block in unet.modules()
        if getattr(block, "encoder_to_kv", None) is not None
    ]
    layers = len([m for m in unet.modules() if getattr(m, "encoder_to_kv", None) is not None])
    x, text = torch.randn(2, 3, 8, 8), torch.randn(2, 5, 16)
    with torch.no_grad():
        first = unet(x, 10, text).sample
        again = [unet(x, t, text).sample for t in (10, 500, 999)]
    assert len(calls) == layers  # three more steps, no new projection
    assert torch.equal(again[0], first)
    with torch.enable_grad():
        expected = [unet(x, t, text).sample.detach() for t in (10, 500, 999)]  # no cache under autograd
    assert len(calls) == 4 * layers
    for cached, fresh in zip(again, expected, strict=True):
        assert max_abs_diff(cached, fresh) <= 1e-6
    with torch.no_grad():
        text.mul_(2)  # modified in place: projected again
        changed = unet(x, 10, text).sample
        unet(x, 10, text.clone())  # another tensor: projected again
    assert len(calls) == 6 * layers
    assert max_abs_diff(changed, first) > 1e-3
    with torch.no_grad():
        unet(x, 10, text)  # back to `text`: projected again, then cached
        unet.get_submodule("down_blocks.1.attentions.0").encoder_to_kv.weight.add_(1.0)  # new weights
        unet(x, 10, text)
    assert len(calls) == 7 * layers + 1  # only the layer whose weights changed
    for hook in hooks:
        hook.remove()
    assert pickle.loads(pickle.dumps(unet)).config == unet.config  # the cache's weak reference is not pickled


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
