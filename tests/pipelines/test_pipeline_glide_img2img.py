"""GlideImg2ImgPipeline (SDEdit) and the strength of GlideInpaintPipeline: diffusers' timestep cut, the noised start,
strength 1 as text-to-image / plain inpainting, loading, batching, CLIP guidance, bad input."""

import types

import numpy as np
import pytest
import torch
from conftest import max_abs_diff, tiny_components, tiny_inputs, tiny_pipeline
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, StableDiffusionImg2ImgPipeline

from diffusers_glide import GlideImg2ImgPipeline, GlideInpaintPipeline, GlidePipeline, GlideScheduler


def image_8() -> torch.Tensor:
    return tiny_inputs("img2img")["image"]


def unet_calls(pipe) -> list[tuple[int, torch.Tensor]]:
    """Records (timestep, sample) of every UNet call (the conditional rows)."""
    calls = []

    def record(module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        calls.append((int(torch.as_tensor(timestep).reshape(-1)[0]), sample[:1].clone()))

    pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    return calls


SCHEDULERS = {
    "glide-ddpm": lambda config: GlideScheduler.from_config(config, sampler="ddpm"),
    "glide-ddim": lambda config: GlideScheduler.from_config(config, sampler="ddim"),
    "ddim": lambda config: DDIMScheduler.from_config(config, clip_sample=True),
    "dpm++": lambda config: DPMSolverMultistepScheduler.from_config(config),
}


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_strength_one_is_text_to_image_from_the_same_noise(scheduler):
    text_to_image = tiny_pipeline("base")
    text_to_image.scheduler = SCHEDULERS[scheduler](text_to_image.scheduler.config)
    img2img = GlideImg2ImgPipeline(**text_to_image.components)
    img2img.set_progress_bar_config(disable=True)
    steps = {"num_inference_steps": 6}
    expected = text_to_image(**tiny_inputs("base", **steps)).images
    images = img2img(**tiny_inputs("img2img", strength=1.0, **steps)).images
    assert img2img.num_timesteps == 6
    assert max_abs_diff(images, expected) <= 1e-6


def diffusers_cut(scheduler, num_inference_steps: int, strength: float) -> list[int]:
    """diffusers' own rule, run on our scheduler: StableDiffusionImg2ImgPipeline.get_timesteps."""
    owner = types.SimpleNamespace(scheduler=scheduler)
    timesteps, _ = StableDiffusionImg2ImgPipeline.get_timesteps(owner, num_inference_steps, strength, "cpu")
    return [int(t) for t in timesteps]


@pytest.mark.parametrize(
    ("scheduler", "steps"),
    [("glide-ddpm", {"respacing": "fast27"}), ("glide-ddim", {"respacing": "ddim10"}), ("ddim", {}), ("dpm++", {})],
)
@pytest.mark.parametrize("strength", [0.3, 0.55, 0.8, 1.0])
def test_the_timestep_cut_is_diffusers_img2img_rule(scheduler, steps, strength):
    pipe = tiny_pipeline("img2img")
    pipe.scheduler = SCHEDULERS[scheduler](pipe.scheduler.config)
    calls = unet_calls(pipe)
    call = steps or {"num_inference_steps": 10}
    pipe(**tiny_inputs("img2img", strength=strength, guidance_scale=1.0, **call))
    seen = [t for t, _ in calls]

    reference = SCHEDULERS[scheduler](pipe.scheduler.config)
    if isinstance(reference, GlideScheduler):
        reference.set_timesteps(**call)
    else:
        reference.set_timesteps(10)
    expected = diffusers_cut(reference, reference.num_inference_steps, strength)
    assert seen == expected
    assert len(seen) == min(int(reference.num_inference_steps * strength), reference.num_inference_steps)


@pytest.mark.parametrize("scheduler", ["glide-ddpm", "dpm++"])
def test_the_loop_starts_from_the_image_noised_to_the_first_timestep(scheduler):
    pipe = tiny_pipeline("img2img")
    pipe.scheduler = SCHEDULERS[scheduler](pipe.scheduler.config)
    calls = unet_calls(pipe)
    pipe(**tiny_inputs("img2img", strength=0.6, guidance_scale=1.0, num_inference_steps=10))
    first_t, first_sample = calls[0]
    # the same draw the pipeline makes: standard normal noise of the batch shape from the generator
    noise = torch.randn((1, 3, 8, 8), generator=torch.Generator().manual_seed(0))
    image = image_8() * 2 - 1  # a float tensor at the model's size is used as it is, in [-1, 1]
    alpha_bar = GlideScheduler().alphas_cumprod[first_t].item()
    expected = alpha_bar**0.5 * image + (1 - alpha_bar) ** 0.5 * noise
    assert len(calls) == 6
    assert max_abs_diff(first_sample, expected) <= 1e-5


def test_small_strength_stays_near_the_image_and_large_strength_moves_away():
    pipe = tiny_pipeline("img2img")
    image = image_8()
    distances = []
    for strength in (0.2, 0.6, 1.0):
        out = pipe(**tiny_inputs("img2img", strength=strength, num_inference_steps=20)).images
        distances.append((out - image).abs().mean().item())
    # even with random weights, 4 of 20 steps leave the image far closer than the whole schedule does (the trained
    # models' numbers are in tests/shapes/test_editing_evaluation.py)
    assert distances[0] < distances[2] / 3, distances
    assert distances[0] < distances[1] < distances[2], distances


def test_batching_broadcasting_and_generator_lists():
    pipe = tiny_pipeline("img2img")
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    out = pipe(**tiny_inputs("img2img", image=images, num_images_per_prompt=2)).images
    assert out.shape == (6, 3, 8, 8)
    prompts = ["a red circle", "a blue square", "a green triangle"]
    assert pipe(**tiny_inputs("img2img", prompt=prompts)).images.shape == (3, 3, 8, 8)

    # with one generator per image, each image is the same as when made alone
    generators = [torch.Generator().manual_seed(10 + k) for k in range(3)]
    batch = pipe(**tiny_inputs("img2img", image=images, prompt=prompts, generator=generators)).images
    for k in range(3):
        alone = pipe(
            **tiny_inputs(
                "img2img", image=images[k : k + 1], prompt=prompts[k], generator=torch.Generator().manual_seed(10 + k)
            )
        ).images
        assert max_abs_diff(batch[k : k + 1], alone) <= 1e-5

    with pytest.raises(ValueError, match="Got 3 images for 2 prompts"):
        pipe(**tiny_inputs("img2img", image=images, prompt=prompts[:2]))


@pytest.mark.parametrize("variant", ["img2img", "base-inpaint"])
@pytest.mark.parametrize(
    ("strength", "error", "match"),
    [
        (0.0, ValueError, r"`strength` must be in \(0, 1\], got 0"),
        (1.5, ValueError, r"`strength` must be in \[0, 1\], got 1.5"),
        (float("nan"), ValueError, "`strength` must be a finite number, got nan"),
        ("0.5", TypeError, "`strength` must be a number, got str '0.5'"),
    ],
)
def test_bad_strengths(variant, strength, error, match):
    with pytest.raises(error, match=match):
        tiny_pipeline(variant)(**tiny_inputs(variant, strength=strength))


def test_a_strength_that_leaves_no_step_is_an_error():
    message = r"`strength`=0.1 of 5 inference steps leaves no step to run \(int\(5 \* 0.1\) = 0\): raise `strength` to at least 0.2"
    with pytest.raises(ValueError, match=message):
        tiny_pipeline("img2img")(**tiny_inputs("img2img", strength=0.1))
    with pytest.raises(ValueError, match=r"`strength`=0.2 of 4 inference steps .* at least 0.25 or use more steps"):
        tiny_pipeline("base-inpaint")(**tiny_inputs("base-inpaint", strength=0.2))


def test_image_is_required_and_read_by_the_common_rules():
    pipe = tiny_pipeline("img2img")
    with pytest.raises(ValueError, match="`image` is required"):
        pipe(**tiny_inputs("img2img", image=None))
    with pytest.raises(ValueError, match="`image` holds NaN"):
        pipe(**tiny_inputs("img2img", image=torch.full((1, 3, 8, 8), float("nan"))))
    as_uint8 = (image_8()[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    from_numpy = pipe(**tiny_inputs("img2img", image=as_uint8)).images
    as_float = torch.from_numpy(as_uint8).permute(2, 0, 1)[None].float() / 255
    assert max_abs_diff(from_numpy, pipe(**tiny_inputs("img2img", image=as_float)).images) <= 1e-6


def test_loads_text_to_image_folders_and_shares_their_models(tmp_path):
    text_to_image = tiny_pipeline("base")
    text_to_image.save_pretrained(tmp_path / "t2i")
    loaded = GlideImg2ImgPipeline.from_pretrained(tmp_path / "t2i")
    loaded.set_progress_bar_config(disable=True)
    from_pipe = GlideImg2ImgPipeline.from_pipe(text_to_image)
    from_pipe.set_progress_bar_config(disable=True)
    assert from_pipe.unet is text_to_image.unet
    expected = loaded(**tiny_inputs("img2img", strength=0.5)).images
    assert max_abs_diff(from_pipe(**tiny_inputs("img2img", strength=0.5)).images, expected) == 0

    # from_pipe keeps the models' dtype (diffusers' own casts the shared models to float32 unless told)
    text_to_image.to(torch.bfloat16)
    assert GlideImg2ImgPipeline.from_pipe(text_to_image).unet.dtype == torch.bfloat16
    assert text_to_image.unet.dtype == torch.bfloat16 and text_to_image.text_encoder.dtype == torch.bfloat16
    assert GlideImg2ImgPipeline.from_pipe(text_to_image, dtype=torch.float32).unet.dtype == torch.float32
    assert text_to_image.unet.dtype == torch.float32  # an explicit dtype casts the shared models, as in diffusers

    # its own folders load as img2img and as text-to-image; other variants are refused
    loaded.save_pretrained(tmp_path / "i2i")
    again = GlideImg2ImgPipeline.from_pretrained(tmp_path / "i2i")
    again.set_progress_bar_config(disable=True)
    assert max_abs_diff(again(**tiny_inputs("img2img", strength=0.5)).images, expected) == 0
    assert type(GlidePipeline.from_pretrained(tmp_path / "i2i")) is GlidePipeline
    tiny_pipeline("base-inpaint").save_pretrained(tmp_path / "inpaint")
    with pytest.raises(ValueError, match="holds a GlideInpaintPipeline, not a GlideImg2ImgPipeline"):
        GlideImg2ImgPipeline.from_pretrained(tmp_path / "inpaint")
    with pytest.raises(ValueError, match="GlideImg2ImgPipeline cannot run this UNet: it is a GLIDE 'base-inpaint'"):
        GlideImg2ImgPipeline(**tiny_components("base-inpaint"))


def test_clip_guidance_applies_to_the_steps_that_run():
    from test_pipeline_glide_clip import get_dummy_clip_components

    pipe = GlideImg2ImgPipeline(**tiny_components("base", timestep_respacing="5"), **get_dummy_clip_components())
    pipe.set_progress_bar_config(disable=True)
    plain = pipe(**tiny_inputs("img2img", strength=0.6)).images
    guided = pipe(**tiny_inputs("img2img", strength=0.6, clip_guidance_scale=50.0)).images
    assert pipe.num_timesteps == 3
    assert max_abs_diff(guided, plain) > 1e-3
    with pytest.raises(ValueError, match="`clip_guidance_scale` > 0 needs the noised CLIP"):
        tiny_pipeline("img2img")(**tiny_inputs("img2img", clip_guidance_scale=1.0))


# ---------------------------------------------------------------------------------------------------------------
# Sketch-guided inpainting: GlideInpaintPipeline(strength=...)


@pytest.mark.parametrize("scheduler", ["glide-ddpm", "ddim"])
def test_inpaint_strength_one_is_plain_inpainting_bit_for_bit(scheduler):
    pipe = tiny_pipeline("base-inpaint")
    pipe.scheduler = SCHEDULERS[scheduler](pipe.scheduler.config)
    plain = pipe(**tiny_inputs("base-inpaint", num_inference_steps=6)).images
    with_strength = pipe(**tiny_inputs("base-inpaint", num_inference_steps=6, strength=1.0)).images
    assert torch.equal(plain, with_strength)


@pytest.mark.parametrize("scheduler", ["glide-ddpm", "ddim"])
def test_inpaint_strength_starts_the_hole_from_the_image_and_keeps_the_rest(scheduler):
    pipe = tiny_pipeline("base-inpaint")
    pipe.scheduler = SCHEDULERS[scheduler](pipe.scheduler.config)
    calls = unet_calls(pipe)
    inputs = tiny_inputs("base-inpaint", num_inference_steps=10, strength=0.3, guidance_scale=1.0)
    out = pipe(**inputs).images
    assert [t for t, _ in calls] == diffusers_cut(_set(SCHEDULERS[scheduler](pipe.scheduler.config), 10), 10, 0.3)
    image = inputs["image"]
    keep = inputs["mask_image"] == 0
    assert max_abs_diff(out.masked_select(keep), image.masked_select(keep)) <= 1e-6
    # 3 of 10 steps: the repainted region stays nearer the image it started from (a sketch's colours survive) than
    # at strength 1, even with random weights
    hole = ~keep
    near = (out.masked_select(hole) - image.masked_select(hole)).abs().mean().item()
    full = pipe(**{**inputs, "strength": 1.0, "generator": torch.Generator().manual_seed(0)}).images
    far = (full.masked_select(hole) - image.masked_select(hole)).abs().mean().item()
    assert near < far / 2, (near, far)


def _set(scheduler, steps):
    scheduler.set_timesteps(steps)
    return scheduler


def test_inpaint_latents_are_the_start_as_given():
    pipe = tiny_pipeline("base-inpaint")
    calls = unet_calls(pipe)
    start = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    pipe(**tiny_inputs("base-inpaint", num_inference_steps=10, strength=0.5, latents=start, guidance_scale=1.0))
    assert len(calls) == 5 and torch.equal(calls[0][1], start)


def test_inpaint_reference_parity_holds_with_explicit_strength_one(converted_folders):
    from conftest import load_reference, recorded_noise_scheduler

    ref, info = load_reference("base-inpaint.sample_p10")
    spec = info["spec"]
    batch = spec["batch_size"]
    pipe = GlideInpaintPipeline.from_pretrained(converted_folders["base-inpaint"])
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = recorded_noise_scheduler(pipe.scheduler, ref["step_noise"], batch)
    images = pipe(
        spec["prompts"],
        image=(ref["inpaint_image"][:batch] + 1) / 2,
        mask_image=1 - ref["inpaint_mask"][:batch],
        strength=1.0,
        respacing=spec["respacing"],
        latents=ref["init_noise"][:batch],
        output_type="pt",
    ).images
    diff = max_abs_diff(images, ((ref["samples"][:batch] + 1) / 2).clamp(0, 1))
    assert diff <= 1e-3, f"max abs diff {diff}"
