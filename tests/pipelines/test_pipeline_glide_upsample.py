"""GlideUpsamplePipeline: parity with the reference upsampling loops, diffusers pipeline behaviour, bad inputs."""

import json

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import (
    REFERENCE_DIR,
    glide_tokenizer,
    load_reference,
    max_abs_diff,
    recorded_noise_scheduler,
    tiny_text_encoder,
    tiny_unet,
)
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel

from diffusers_glide import (
    GlidePipeline,
    GlideScheduler,
    GlideUpsamplePipeline,
)

TOLERANCE = 1e-3
FAST27 = json.loads((REFERENCE_DIR / "respacing.json").read_text())["timesteps"]["fast27"]  # ascending


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], the pipelines' tensor image convention."""
    return (x + 1) / 2


# ---------------------------------------------------------------------------------------------------------------
# Parity with the reference (tiny fixture checkpoints converted by our converter), through the pipeline


def run_reference_case(pipe, ref, spec):
    """Run the pipeline on a fixture's inputs; returns the output images and x after every step."""
    steps = []

    def record(pipeline, i, t, tensors):
        steps.append(tensors["latents"].clone())
        return {}

    kwargs = {}
    if "inpaint_image" in ref:
        # The reference keep mask (1 = keep) -> diffusers' convention (1 = repaint).
        kwargs.update(inpaint_image=to_unit(ref["inpaint_image"]), mask_image=1 - ref["inpaint_mask"])
    images = pipe(
        spec["text_prompts"],
        image=to_unit(ref["low_res"]),
        latents=ref["init_noise"],
        output_type="pt",
        callback_on_step_end=record,
        callback_on_step_end_tensor_inputs=["latents"],
        **kwargs,
    ).images
    return images, steps


def check_against_reference(images, steps, ref, name):
    step_diffs = [max_abs_diff(x, ref["trajectory"][k]) for k, x in enumerate(steps)]
    assert len(steps) == len(ref["trajectory"]), (
        f"{name}: {len(steps)} steps, the reference took {len(ref['trajectory'])}"
    )
    report = ", ".join(f"{k}: {d:.1e}" for k, d in enumerate(step_diffs))
    diverged = [k for k, d in enumerate(step_diffs) if d > TOLERANCE]
    assert not diverged, f"{name}: first diverging step {diverged[0]}; max abs diff per step: {report}"
    # The pipeline's [0, 1] output is clamped by post-processing.
    final = max_abs_diff(images, to_unit(ref["samples"]).clamp(0, 1))
    assert final <= TOLERANCE, f"{name}: images max abs diff {final}; per step: {report}"


def test_upsample_ddim_fast27_matches_reference(converted_folders):
    ref, info = load_reference("upsample.sample_ddim_fast27")
    pipe = GlideUpsamplePipeline.from_pretrained(converted_folders["upsample"])
    pipe.set_progress_bar_config(disable=True)
    # The converted folder's default is OpenAI's upsampler setting: "fast27" DDIM.
    assert (pipe.scheduler.config.timestep_respacing, pipe.scheduler.config.sampler) == ("fast27", "ddim")
    images, steps = run_reference_case(pipe, ref, info["spec"])
    assert images.shape == (2, 3, 64, 64)
    check_against_reference(images, steps, ref, "upsample.sample_ddim_fast27")


def test_upsample_inpaint_ddim_fast27_matches_reference(converted_folders):
    ref, info = load_reference("upsample-inpaint.sample_ddim_fast27")
    pipe = GlideUpsamplePipeline.from_pretrained(converted_folders["upsample-inpaint"])
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = GlideScheduler.from_config(pipe.scheduler.config, sampler="ddim")
    images, steps = run_reference_case(pipe, ref, info["spec"])
    check_against_reference(images, steps, ref, "upsample-inpaint.sample_ddim_fast27")


def test_upsample_inpaint_ancestral_fast27_matches_reference(converted_folders):
    ref, info = load_reference("upsample-inpaint.sample_p_fast27")
    pipe = GlideUpsamplePipeline.from_pretrained(converted_folders["upsample-inpaint"])
    pipe.set_progress_bar_config(disable=True)
    # inpaint.ipynb samples this stage with ancestral steps over "fast27": the converted default.
    assert (pipe.scheduler.config.timestep_respacing, pipe.scheduler.config.sampler) == ("fast27", "ddpm")
    pipe.scheduler = recorded_noise_scheduler(pipe.scheduler, ref["step_noise"], info["spec"]["batch_size"])
    images, steps = run_reference_case(pipe, ref, info["spec"])
    assert pipe.scheduler._recorded == [], "every recorded noise draw is used exactly once"
    check_against_reference(images, steps, ref, "upsample-inpaint.sample_p_fast27")


# ---------------------------------------------------------------------------------------------------------------
# Fast tests with tiny random components (output 16x16, low-res 8x8)

SIZE, LOW = 16, 8


def upsampler_unet(**config):
    """A tiny random super-resolution GlideUNet2DModel, 16x16 unless `config` says otherwise."""
    return tiny_unet(SIZE, **{"super_resolution": True, **config})


def get_dummy_components(inpainting: bool = False):
    unet = upsampler_unet(inpainting=inpainting)
    return {
        "unet": unet,
        "text_encoder": tiny_text_encoder(),
        "tokenizer": glide_tokenizer(),
        "scheduler": GlideScheduler(beta_schedule="linear", timestep_respacing="fast27", sampler="ddim"),
    }


def low_res_uint8(seed: int = 0, size: int = LOW, batch: int | None = None) -> np.ndarray:
    shape = (size, size, 3) if batch is None else (batch, size, size, 3)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def uint8_to_tensor(array: np.ndarray) -> torch.Tensor:
    """HWC / NHWC uint8 -> CHW / NCHW float in [0, 1]."""
    tensor = torch.from_numpy(array).float() / 255
    return tensor.permute(2, 0, 1) if tensor.ndim == 3 else tensor.permute(0, 3, 1, 2)


def get_dummy_inputs(seed: int = 0, **overrides):
    inputs = {
        "prompt": "a red circle",
        "image": uint8_to_tensor(low_res_uint8(seed)),
        "generator": torch.Generator().manual_seed(seed),
        "num_inference_steps": 5,  # speed; `None` samples with the scheduler's "fast27"
        "output_type": "np",
    }
    inputs.update(overrides)
    return inputs


@pytest.fixture(scope="module")
def pipe():
    pipeline = GlideUpsamplePipeline(**get_dummy_components())
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def inpaint_pipe():
    pipeline = GlideUpsamplePipeline(**get_dummy_components(inpainting=True))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def record_unet_inputs(pipeline):
    """Attach a hook recording the UNet's (sample, low_res, ...) calls; returns (records, handle)."""
    calls = []

    def hook(module, args, kwargs):
        calls.append({"sample": args[0], **{k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)}})

    return calls, pipeline.unet.register_forward_pre_hook(hook, with_kwargs=True)


def test_output_types_shapes_and_ranges(pipe):
    as_np = pipe(**get_dummy_inputs()).images
    as_pt = pipe(**get_dummy_inputs(output_type="pt")).images
    as_pil = pipe(**get_dummy_inputs(output_type="pil")).images
    assert as_np.shape == (1, SIZE, SIZE, 3) and as_np.dtype == np.float32
    assert 0 <= as_np.min() and as_np.max() <= 1
    assert as_pt.shape == (1, 3, SIZE, SIZE) and 0 <= as_pt.min() and as_pt.max() <= 1
    assert isinstance(as_pil[0], PIL.Image.Image) and as_pil[0].size == (SIZE, SIZE) and as_pil[0].mode == "RGB"
    np.testing.assert_allclose(as_pt.permute(0, 2, 3, 1).numpy(), as_np, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(as_pil[0]), (as_np[0] * 255).round().astype(np.uint8))


def test_dict_and_tuple_outputs_match(pipe):
    as_dict = pipe(**get_dummy_inputs()).images
    output = pipe(**get_dummy_inputs(), return_dict=False)
    assert isinstance(output, tuple) and len(output) == 1
    np.testing.assert_array_equal(as_dict, output[0])


def test_init_requires_a_super_resolution_unet():
    components = get_dummy_components()
    components["unet"] = upsampler_unet(super_resolution=False)
    with pytest.raises(ValueError, match="GlideUpsamplePipeline cannot run this UNet: it is a GLIDE 'base' model"):
        GlideUpsamplePipeline(**components)
    components["unet"] = upsampler_unet(super_resolution=False, inpainting=True)
    with pytest.raises(ValueError, match="it is a GLIDE 'base-inpaint' model .*; use GlideInpaintPipeline"):
        GlideUpsamplePipeline(**components)


def test_batch_equals_single_images_with_per_image_generators(pipe):
    # Ancestral steps, so that the per-step noise (not only x_T) must come from each image's own generator.
    scheduler = GlideScheduler.from_config(pipe.scheduler.config, sampler="ddpm")
    ancestral = GlideUpsamplePipeline(**{**pipe.components, "scheduler": scheduler})
    ancestral.set_progress_bar_config(disable=True)
    first = ancestral(**get_dummy_inputs(seed=1)).images
    again = ancestral(**get_dummy_inputs(seed=1)).images
    second = ancestral(**get_dummy_inputs(seed=2, prompt="a blue square")).images
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - second).max() > 1e-3
    images = torch.stack([get_dummy_inputs(seed=1)["image"], get_dummy_inputs(seed=2)["image"]])
    generators = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    inputs = get_dummy_inputs(prompt=["a red circle", "a blue square"], image=images, generator=generators)
    batched = ancestral(**inputs).images
    np.testing.assert_allclose(batched[0], first[0], atol=1e-4)  # batched convolutions: float32 rounding only
    np.testing.assert_allclose(batched[1], second[0], atol=1e-4)


def test_prompt_and_image_broadcasting_and_num_images_per_prompt(pipe):
    image_a, image_b = get_dummy_inputs(seed=1)["image"], get_dummy_inputs(seed=2)["image"]

    def run(prompt, image):
        generators = [torch.Generator().manual_seed(s) for s in (5, 6)]
        return pipe(prompt, image=image, generator=generators, num_inference_steps=5, output_type="np").images

    # One prompt for two images == the prompt repeated; one image for two prompts == the image repeated.
    np.testing.assert_array_equal(run("a", [image_a, image_b]), run(["a", "a"], torch.stack([image_a, image_b])))
    np.testing.assert_array_equal(run(["a", "b"], image_a), run(["a", "b"], torch.stack([image_a, image_a])))
    # num_images_per_prompt: copies per (prompt, image) pair, pairs in order.
    images = pipe(["a", "b"], image=image_a, num_images_per_prompt=3, output_type="np", num_inference_steps=5).images
    assert images.shape == (6, SIZE, SIZE, 3)
    calls, handle = record_unet_inputs(pipe)
    pipe("a", image=torch.stack([image_a, image_b]), num_images_per_prompt=2, num_inference_steps=2)
    handle.remove()
    low_res = calls[0]["low_res"]
    assert low_res.shape == (4, 3, LOW, LOW)
    expected = torch.stack([image_a, image_a, image_b, image_b]) * 2 - 1
    assert max_abs_diff(low_res, expected) < 1e-6


def test_callback_sees_every_step_and_can_change_latents(pipe):
    seen = []

    def record(pipeline, step, timestep, tensors):
        seen.append((step, int(timestep), tuple(tensors["latents"].shape)))
        return {}

    inputs = get_dummy_inputs(num_inference_steps=None)
    pipe(**inputs, callback_on_step_end=record, callback_on_step_end_tensor_inputs=["latents"])
    assert seen == [(i, t, (1, 3, SIZE, SIZE)) for i, t in enumerate(reversed(FAST27))]

    def zero_at_the_end(pipeline, step, timestep, tensors):
        return {"latents": torch.zeros_like(tensors["latents"])} if step == len(FAST27) - 1 else {}

    inputs = get_dummy_inputs(num_inference_steps=None)
    images = pipe(
        **inputs, callback_on_step_end=zero_at_the_end, callback_on_step_end_tensor_inputs=["latents"]
    ).images
    np.testing.assert_allclose(images, 0.5, atol=1e-6)  # x = 0 is mid-gray


def test_save_load_round_trip(pipe, tmp_path):
    expected = pipe(**get_dummy_inputs()).images
    pipe.save_pretrained(tmp_path)
    reloaded = GlideUpsamplePipeline.from_pretrained(tmp_path)
    reloaded.set_progress_bar_config(disable=True)
    assert isinstance(reloaded.scheduler, GlideScheduler) and reloaded.scheduler.config.sampler == "ddim"
    assert reloaded.unet.config.super_resolution
    np.testing.assert_array_equal(reloaded(**get_dummy_inputs()).images, expected)


def test_low_res_is_rounded_to_the_uint8_grid(pipe):
    grid = low_res_uint8(3).astype(np.float32)
    grid = np.clip(grid, 1, 254)  # room to move off the grid in both directions
    on_grid = torch.from_numpy(grid / 255).permute(2, 0, 1)
    offsets = torch.from_numpy(np.random.default_rng(4).uniform(-0.45, 0.45, grid.shape).astype(np.float32))
    off_grid = on_grid + offsets.permute(2, 0, 1) / 255
    assert (off_grid * 255 - (off_grid * 255).round()).abs().max() > 0.3
    calls, handle = record_unet_inputs(pipe)
    expected = pipe(**get_dummy_inputs(image=on_grid)).images
    actual = pipe(**get_dummy_inputs(image=off_grid)).images
    handle.remove()
    np.testing.assert_array_equal(actual, expected)
    # What the UNet sees: k / 127.5 - 1 for the uint8 value k, exactly as GLIDE's notebooks feed it.
    fed = calls[-1]["low_res"][0]
    assert max_abs_diff(fed, torch.from_numpy(grid).permute(2, 0, 1) / 127.5 - 1) < 1e-6
    # Rounding is to the NEAREST grid value: +0.6 of a step goes up.
    up = pipe(**get_dummy_inputs(image=on_grid + 0.6 / 255)).images
    next_value = pipe(**get_dummy_inputs(image=on_grid + 1 / 255)).images
    np.testing.assert_array_equal(up, next_value)


def test_pil_numpy_and_tensor_inputs_give_the_same_images(pipe):
    array = low_res_uint8(7)
    expected = pipe(**get_dummy_inputs(image=PIL.Image.fromarray(array))).images
    for image in [
        [PIL.Image.fromarray(array)],
        array,  # HWC uint8
        [array],  # list of HWC uint8
        torch.from_numpy(array).permute(2, 0, 1),  # CHW uint8 tensor
        array[None],  # NHWC uint8
        array.astype(np.float32) / 255,  # HWC float in [0, 1]
        array[None].astype(np.float64) / 255,  # NHWC float
        uint8_to_tensor(array),  # CHW
        uint8_to_tensor(array)[None],  # NCHW
    ]:
        np.testing.assert_array_equal(pipe(**get_dummy_inputs(image=image)).images, expected)
    # A batch of PIL images equals the NHWC array.
    arrays = low_res_uint8(8, batch=2)
    as_pil = pipe(**get_dummy_inputs(prompt="a", image=[PIL.Image.fromarray(a) for a in arrays])).images
    as_np = pipe(**get_dummy_inputs(prompt="a", image=arrays)).images
    as_list = pipe(**get_dummy_inputs(prompt="a", image=list(arrays))).images
    np.testing.assert_array_equal(as_pil, as_np)
    np.testing.assert_array_equal(as_list, as_np)


@pytest.mark.parametrize("low_size", [4, SIZE])
def test_any_low_res_size_up_to_the_output_size(pipe, low_size):
    image = uint8_to_tensor(low_res_uint8(1, size=low_size))
    images = pipe(**get_dummy_inputs(image=image, num_inference_steps=3)).images
    assert images.shape == (1, SIZE, SIZE, 3)


def test_latents_are_used_as_given_and_noise_is_scaled_by_upsample_temp(pipe):
    shape = (1, 3, SIZE, SIZE)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(11))
    seeded = pipe(**get_dummy_inputs(generator=torch.Generator().manual_seed(11))).images
    scaled = pipe(**get_dummy_inputs(latents=noise * 0.997)).images
    np.testing.assert_array_equal(seeded, scaled)  # default: N(0, 1) * 0.997
    hot = pipe(**get_dummy_inputs(generator=torch.Generator().manual_seed(11), upsample_temp=1.0)).images
    unscaled = pipe(**get_dummy_inputs(latents=noise)).images
    np.testing.assert_array_equal(hot, unscaled)
    # Given latents are NOT multiplied by upsample_temp.
    given = pipe(**get_dummy_inputs(latents=noise, upsample_temp=0.5)).images
    np.testing.assert_array_equal(given, unscaled)
    assert np.abs(seeded - unscaled).max() > 0


def test_no_guidance_by_default_and_guidance_scale_enables_it(pipe):
    calls, handle = record_unet_inputs(pipe)
    default = pipe(**get_dummy_inputs(num_inference_steps=3)).images
    batch_default = calls[0]["sample"].shape[0]
    calls.clear()
    guided = pipe(**get_dummy_inputs(num_inference_steps=3, guidance_scale=4.0)).images
    batch_guided = calls[0]["sample"].shape[0]
    handle.remove()
    assert (batch_default, batch_guided) == (1, 2)  # guided: conditional + unconditional rows
    assert np.abs(default - guided).max() > 1e-4


@pytest.mark.parametrize("inpainting", [False, True])
@pytest.mark.parametrize("scheduler_class", [DDIMScheduler, DDPMScheduler])
def test_diffusers_schedulers(pipe, inpaint_pipe, inpainting, scheduler_class):
    source = inpaint_pipe if inpainting else pipe
    swapped = GlideUpsamplePipeline(
        **{**source.components, "scheduler": scheduler_class.from_config(source.scheduler.config)}
    )
    swapped.set_progress_bar_config(disable=True)
    known = uint8_to_tensor(low_res_uint8(5, size=SIZE))
    extra = {"inpaint_image": known, "mask_image": half_mask()} if inpainting else {}
    images = swapped(**get_dummy_inputs(output_type="pt", **extra)).images
    assert images.shape == (1, 3, SIZE, SIZE) and torch.isfinite(images).all()
    if inpainting:  # the known region is pasted (noised to the next timestep, clean after the last step)
        assert max_abs_diff(images[0, :, : SIZE // 2], known[:, : SIZE // 2]) < 1e-5


def test_bad_inputs(pipe):
    with pytest.raises(ValueError, match="`image` .* is required"):
        pipe(**get_dummy_inputs(image=None))
    with pytest.raises(
        ValueError, match=r"`image` must be one RGB image or a batch of them, got shape \(1, 1, 8, 8\)"
    ):
        pipe(**get_dummy_inputs(image=torch.rand(1, 1, LOW, LOW)))
    with pytest.raises(ValueError, match=r"`image` values must be floats in \[0, 1\].*got floats in \[0, 255\]"):
        pipe(**get_dummy_inputs(image=torch.zeros(3, LOW, LOW).index_fill_(1, torch.tensor([0]), 255.0)))
    with pytest.raises(ValueError, match="`image` .* must be at most the output size 16x16, got 32x32"):
        pipe(**get_dummy_inputs(image=torch.rand(3, 32, 32)))
    with pytest.raises(ValueError, match="`image` must be square .* got 8x4"):
        pipe(**get_dummy_inputs(image=torch.rand(3, LOW, 4)))
    sizes = [PIL.Image.new("RGB", (8, 8)), PIL.Image.new("RGB", (4, 4))]
    with pytest.raises(ValueError, match=r"images of `image` must all have the same size, got .*\(4, 4\), \(8, 8\)"):
        pipe(**get_dummy_inputs(image=sizes))
    with pytest.raises(ValueError, match="`image` has 3 images but there are 2 prompts"):
        pipe(**get_dummy_inputs(prompt=["a", "b"], image=torch.rand(3, 3, LOW, LOW)))
    with pytest.raises(ValueError, match="inpaint_image`/`mask_image` were given but .* not an inpainting model"):
        pipe(**get_dummy_inputs(inpaint_image=torch.rand(3, SIZE, SIZE), mask_image=torch.ones(SIZE, SIZE)))
    with pytest.raises(ValueError, match="inpaint_image`/`mask_image` were given"):
        pipe(**get_dummy_inputs(mask_image=torch.ones(SIZE, SIZE)))
    with pytest.raises(ValueError, match=r"`upsample_temp` must be >= 0, got -1.0"):
        pipe(**get_dummy_inputs(upsample_temp=-1.0))
    with pytest.raises(ValueError, match=r"`latents` must have shape \(1, 3, 16, 16\), got \(1, 3, 8, 8\)"):
        pipe(**get_dummy_inputs(latents=torch.zeros(1, 3, LOW, LOW)))
    with pytest.raises(ValueError, match="2 generators for a batch of 1"):
        pipe(**get_dummy_inputs(generator=[torch.Generator(), torch.Generator()]))


# ---------------------------------------------------------------------------------------------------------------
# upsample-inpaint


def half_mask(size: int = SIZE) -> np.ndarray:
    """diffusers convention: 1 (white) = repaint. Repaint the bottom half."""
    mask = np.zeros((size, size), dtype=np.float32)
    mask[size // 2 :] = 1
    return mask


def test_inpainting_keeps_the_known_region(inpaint_pipe):
    known = uint8_to_tensor(low_res_uint8(5, size=SIZE))
    mask = half_mask()
    calls, handle = record_unet_inputs(inpaint_pipe)
    for sampler in ("ddim", "ddpm"):
        inpaint_pipe.scheduler = GlideScheduler.from_config(inpaint_pipe.scheduler.config, sampler=sampler)
        images = inpaint_pipe(**get_dummy_inputs(inpaint_image=known, mask_image=mask, output_type="pt")).images
        # The last step of either sampler returns the x0 prediction, whose kept region IS the known image.
        assert max_abs_diff(images[0, :, : SIZE // 2], known[:, : SIZE // 2]) < 1e-5, sampler
        assert max_abs_diff(images[0, :, SIZE // 2 :], known[:, SIZE // 2 :]) > 0.05, sampler
    handle.remove()
    inpaint_pipe.scheduler = GlideScheduler.from_config(inpaint_pipe.scheduler.config, sampler="ddim")
    # The UNet gets GLIDE's keep mask (1 = keep) and the known image in [-1, 1].
    keep = torch.from_numpy(1 - mask)[None, None]
    assert torch.equal(calls[0]["inpaint_mask"], keep)
    assert max_abs_diff(calls[0]["inpaint_image"], known[None] * 2 - 1) < 1e-6


def test_mask_formats_give_the_same_keep_mask(inpaint_pipe):
    mask = half_mask()
    expected = torch.from_numpy(1 - mask)[None, None]
    white = (mask * 255).astype(np.uint8)
    for mask_image in [
        PIL.Image.fromarray(white),
        PIL.Image.fromarray(np.stack([white] * 3, -1)),
        [PIL.Image.fromarray(white)],
        mask,  # HW float
        mask.astype(bool),
        white,  # HW uint8
        np.stack([white] * 3, -1),  # HWC RGB
        mask[None, :, :, None],  # NHWC
        torch.from_numpy(mask),  # HW
        torch.from_numpy(mask)[None],  # 1HW
        torch.from_numpy(mask)[None].expand(3, -1, -1),  # CHW RGB
        torch.from_numpy(mask)[None, None],  # NCHW
        mask * 0.4 + 0.3,  # binarised at 0.5: 0.3 -> keep, 0.7 -> repaint
    ]:
        keep = inpaint_pipe.prepare_keep_mask(mask_image)
        assert torch.equal(keep, expected), type(mask_image)


def test_mask_and_known_image_are_resized_to_the_output_size(inpaint_pipe):
    small = np.random.default_rng(0).integers(0, 2, (LOW, LOW)).astype(np.float32)
    keep = inpaint_pipe.prepare_keep_mask(PIL.Image.fromarray((small * 255).astype(np.uint8)))
    # Nearest neighbour x2: every pixel becomes a 2x2 block.
    assert torch.equal(keep[0, 0], torch.from_numpy(1 - np.kron(small, np.ones((2, 2), dtype=np.float32))))
    assert torch.equal(inpaint_pipe.prepare_keep_mask(torch.from_numpy(small)), keep)

    # A smooth image: PIL clips its intermediate (per-axis) result to uint8, so sharp edges are not comparable.
    y, x = np.mgrid[:LOW, :LOW]
    smooth = 128 + 90 * np.sin(x / 2.5 + np.arange(3)[:, None, None]) * np.cos(y / 3.5)
    array = smooth.transpose(1, 2, 0).round().astype(np.uint8)
    pil_bicubic = np.array(PIL.Image.fromarray(array).resize((SIZE, SIZE), PIL.Image.BICUBIC))
    from_pil = inpaint_pipe.prepare_inpaint_image(PIL.Image.fromarray(array))
    assert max_abs_diff(from_pil[0], uint8_to_tensor(pil_bicubic) * 2 - 1) < 1e-6
    # Arrays are resized with torch's bicubic (antialiased, PIL's kernel): PIL's result up to its uint8 rounding.
    from_tensor = inpaint_pipe.prepare_inpaint_image(uint8_to_tensor(array))
    assert from_tensor.shape == (1, 3, SIZE, SIZE) and from_tensor.abs().max() <= 1
    assert max_abs_diff(from_tensor, from_pil) < 3 / 255  # [-1, 1] units: 1.5 uint8 levels


def test_inpaint_bad_inputs(inpaint_pipe):
    known, mask = torch.rand(3, SIZE, SIZE), half_mask()
    with pytest.raises(
        ValueError, match=r"`inpaint_image` .* and\s+`mask_image` .* are both required; missing \['mask_image'\]"
    ):
        inpaint_pipe(**get_dummy_inputs(inpaint_image=known))
    with pytest.raises(ValueError, match=r"are both required; missing \['inpaint_image'\]"):
        inpaint_pipe(**get_dummy_inputs(mask_image=mask))
    with pytest.raises(ValueError, match=r"`mask_image` must be square like the generated images \(16x16\), got 16x8"):
        inpaint_pipe(**get_dummy_inputs(inpaint_image=known, mask_image=mask[:, :LOW]))
    with pytest.raises(ValueError, match="`inpaint_image` must be square .* got 16x8"):
        inpaint_pipe(**get_dummy_inputs(inpaint_image=known[:, :, :LOW], mask_image=mask))
    with pytest.raises(ValueError, match="`inpaint_image` must be square .* got 8x16"):
        inpaint_pipe(**get_dummy_inputs(inpaint_image=PIL.Image.new("RGB", (SIZE, LOW)), mask_image=mask))
    with pytest.raises(
        ValueError, match=r"`mask_image` must be a single-channel or RGB mask, got .* \(2, 16, 16, 2\)"
    ):
        inpaint_pipe(**get_dummy_inputs(inpaint_image=known, mask_image=np.zeros((2, SIZE, SIZE, 2))))
    with pytest.raises(ValueError, match="`mask_image` has 2 images for a batch of 3"):
        inpaint_pipe(
            **get_dummy_inputs(prompt=["a", "b", "c"], inpaint_image=known, mask_image=np.stack([mask, mask]))
        )
    with pytest.raises(ValueError, match=r"`inpaint_image` must be one RGB image or a batch of them"):
        inpaint_pipe(**get_dummy_inputs(inpaint_image=torch.rand(1, SIZE, SIZE), mask_image=mask))
    with pytest.raises(TypeError, match=r"`mask_image` must be PIL images, numpy arrays or torch tensors .*got str"):
        inpaint_pipe(**get_dummy_inputs(inpaint_image=known, mask_image="mask.png"))


# ---------------------------------------------------------------------------------------------------------------
# Chaining


def test_chain_from_glide_base_pipeline(pipe):
    base = GlidePipeline(
        unet=tiny_unet(LOW),
        text_encoder=tiny_text_encoder(),
        tokenizer=pipe.tokenizer,
        scheduler=GlideScheduler(timestep_respacing="4"),
    )
    base.set_progress_bar_config(disable=True)
    prompts = ["a red circle", "a blue square"]
    low = base(prompts, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert low.shape == (2, 3, LOW, LOW)
    images = pipe(
        prompts, image=low, generator=torch.Generator().manual_seed(0), output_type="pil", num_inference_steps=5
    ).images
    assert len(images) == 2 and all(image.size == (SIZE, SIZE) for image in images)


def test_chain_from_diffusers_ddpm_pipeline(pipe):
    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=LOW,
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    ddpm = DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=1000))
    ddpm.set_progress_bar_config(disable=True)
    low_pt = ddpm(generator=torch.Generator().manual_seed(0), num_inference_steps=3, output_type="pt").images
    low_np = ddpm(generator=torch.Generator().manual_seed(0), num_inference_steps=3, output_type="np").images
    assert low_pt.shape == (1, 3, LOW, LOW) and 0 <= low_pt.min() and low_pt.max() <= 1
    from_pt = pipe(
        "a photo", image=low_pt, generator=torch.Generator().manual_seed(0), output_type="np", num_inference_steps=5
    ).images
    from_np = pipe(
        "a photo", image=low_np, generator=torch.Generator().manual_seed(0), output_type="np", num_inference_steps=5
    ).images
    assert from_pt.shape == (1, SIZE, SIZE, 3)
    np.testing.assert_allclose(from_pt, from_np, atol=1e-6)
