"""GlidePipeline: parity with the reference sampling loops, diffusers pipeline behaviour, bad inputs."""

import logging

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import (
    glide_tokenizer,
    load_reference,
    max_abs_diff,
    recorded_noise_scheduler,
    tiny_text_encoder,
    tiny_unet,
)
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

from diffusers_glide import (
    GlidePipeline,
    GlideScheduler,
)

TOLERANCE = 1e-3


def reference_images(ref, batch):
    return ((ref["samples"][:batch] + 1) / 2).clamp(0, 1)


# ---------------------------------------------------------------------------------------------------------------
# Parity with the reference (tiny fixture checkpoints converted by our converter)


def test_ddim_trajectory_reproduced_by_the_pipeline(converted_folders):
    ref, info = load_reference("base.sample_ddim10")
    spec = info["spec"]
    pipe = GlidePipeline.from_pretrained(converted_folders["base"])
    pipe.scheduler = GlideScheduler.from_config(pipe.scheduler.config, sampler="ddim")
    batch = spec["batch_size"]
    images = pipe(
        spec["prompts"],
        respacing=spec["respacing"],
        guidance_scale=spec["guidance_scale"],
        latents=ref["init_noise"][:batch],
        output_type="pt",
    ).images
    diff = max_abs_diff(images, reference_images(ref, batch))
    assert diff <= TOLERANCE, f"max abs diff {diff}"


def test_ancestral_trajectory_replayed_with_recorded_noise(converted_folders):
    ref, info = load_reference("base.sample_p10")
    spec = info["spec"]
    pipe = GlidePipeline.from_pretrained(converted_folders["base"])
    batch = spec["batch_size"]
    pipe.scheduler = recorded_noise_scheduler(pipe.scheduler, ref["step_noise"], batch)
    images = pipe(
        spec["prompts"],
        respacing=spec["respacing"],
        guidance_scale=spec["guidance_scale"],
        latents=ref["init_noise"][:batch],
        output_type="pt",
    ).images
    diff = max_abs_diff(images, reference_images(ref, batch))
    assert diff <= TOLERANCE, f"max abs diff {diff}"


def test_diffusers_ddim_scheduler_reproduces_glide_ddim(converted_folders):
    # Same timesteps (900, 800, ..., 0 = "ddim10" = DDIM's "leading" spacing for 10 steps), epsilon re-derived
    # from the clipped x0: diffusers' DDIMScheduler then computes GLIDE's DDIM.
    ref, info = load_reference("base.sample_ddim10")
    spec = info["spec"]
    pipe = GlidePipeline.from_pretrained(converted_folders["base"])
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    batch = spec["batch_size"]
    images = pipe(spec["prompts"], num_inference_steps=10, latents=ref["init_noise"][:batch], output_type="pt").images
    assert pipe.scheduler.timesteps.tolist() == ref["timesteps"].tolist()
    diff = max_abs_diff(images, reference_images(ref, batch))
    assert diff <= TOLERANCE, f"max abs diff {diff}"


def test_diffusers_ddpm_scheduler_matches_glide_ancestral_steps(converted_folders):
    # DDPMScheduler with learned-range variance on GLIDE's kept timesteps is GLIDE's ancestral sampler; with the
    # same seed both draw the same noise.
    pipe = GlidePipeline.from_pretrained(converted_folders["base"])
    glide_timesteps = pipe.scheduler.set_timesteps(respacing="10").tolist()
    expected = pipe("a corgi", respacing="10", generator=torch.Generator().manual_seed(3), output_type="pt").images
    pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    assert pipe.scheduler.config.variance_type == "learned_range"
    actual = pipe(
        "a corgi", timesteps=glide_timesteps, generator=torch.Generator().manual_seed(3), output_type="pt"
    ).images
    diff = max_abs_diff(actual, expected)
    assert diff <= TOLERANCE, f"max abs diff {diff}"


def test_dpm_solver_multistep_runs_with_learned_variance_output(converted_folders):
    pipe = GlidePipeline.from_pretrained(converted_folders["base"])
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    images = pipe(
        "a corgi", num_inference_steps=20, generator=torch.Generator().manual_seed(0), output_type="pt"
    ).images
    assert images.shape == (1, 3, 32, 32) and torch.isfinite(images).all()  # the fixture model's image_size 32
    assert 0 <= images.min() and images.max() <= 1


# ---------------------------------------------------------------------------------------------------------------
# Fast tests with tiny random components


def get_dummy_components():
    return {
        "unet": tiny_unet(),
        "text_encoder": tiny_text_encoder(),
        "tokenizer": glide_tokenizer(),
        "scheduler": GlideScheduler(timestep_respacing="4"),
    }


def get_dummy_inputs(seed=0, **overrides):
    inputs = {"prompt": "a red circle", "generator": torch.Generator().manual_seed(seed), "output_type": "np"}
    inputs.update(overrides)
    return inputs


@pytest.fixture
def pipe():
    pipeline = GlidePipeline(**get_dummy_components())
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def test_output_types_and_shapes(pipe):
    as_np = pipe(**get_dummy_inputs()).images
    as_pt = pipe(**get_dummy_inputs(output_type="pt")).images
    as_pil = pipe(**get_dummy_inputs(output_type="pil")).images
    assert as_np.shape == (1, 8, 8, 3) and as_np.dtype == np.float32
    assert as_pt.shape == (1, 3, 8, 8) and 0 <= as_pt.min() and as_pt.max() <= 1
    assert isinstance(as_pil[0], PIL.Image.Image) and as_pil[0].size == (8, 8)
    np.testing.assert_allclose(as_pt.permute(0, 2, 3, 1).numpy(), as_np, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(as_pil[0]), (as_np[0] * 255).round().astype(np.uint8))


def test_dict_and_tuple_outputs_match(pipe):
    as_dict = pipe(**get_dummy_inputs()).images
    (as_tuple,) = pipe(**get_dummy_inputs(), return_dict=False)
    np.testing.assert_array_equal(as_dict, as_tuple)


def test_same_seed_same_image_and_batch_independence(pipe):
    first = pipe(**get_dummy_inputs(seed=1)).images
    again = pipe(**get_dummy_inputs(seed=1)).images
    other = pipe(**get_dummy_inputs(seed=2)).images
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3
    # One generator per image: each image is the one it would be alone, whatever else is in the batch.
    generators = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    batched = pipe(prompt=["a red circle", "a red circle"], generator=generators, output_type="np").images
    np.testing.assert_allclose(batched[0], first[0], atol=1e-5)
    np.testing.assert_allclose(batched[1], other[0], atol=1e-5)


def test_num_images_per_prompt(pipe):
    images = pipe(**get_dummy_inputs(prompt=["a", "b"], num_images_per_prompt=3)).images
    assert images.shape == (6, 8, 8, 3)


def test_prompt_embeds_equal_prompt(pipe):
    from_prompt = pipe(**get_dummy_inputs(negative_prompt="blurry")).images
    embeds, negative = pipe.encode_prompt("a red circle", "blurry", True, 1)
    from_embeds = pipe(
        prompt=None,
        prompt_embeds=embeds,
        negative_prompt_embeds=negative,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images
    np.testing.assert_allclose(from_prompt, from_embeds, atol=1e-6)


def test_negative_prompt_replaces_the_empty_prompt(pipe):
    default = pipe(**get_dummy_inputs()).images
    empty_negative = pipe(**get_dummy_inputs(negative_prompt="")).images
    negative = pipe(**get_dummy_inputs(negative_prompt="blue squares")).images
    np.testing.assert_array_equal(default, empty_negative)
    assert np.abs(default - negative).max() > 1e-4


def test_guidance_below_one_means_no_guidance(pipe, caplog):
    unguided = pipe(**get_dummy_inputs(guidance_scale=1.0)).images
    with caplog.at_level(logging.WARNING):
        below = pipe(**get_dummy_inputs(guidance_scale=0.5)).images
    np.testing.assert_array_equal(unguided, below)
    assert "disables classifier-free guidance" in caplog.text
    guided = pipe(**get_dummy_inputs(guidance_scale=3.0)).images
    assert np.abs(guided - unguided).max() > 1e-4


def test_long_prompt_is_truncated_with_a_warning(pipe, caplog):
    long_prompt = "a red circle " * 10  # 30 tokens, context is 8
    with caplog.at_level(logging.WARNING):
        images = pipe(**get_dummy_inputs(prompt=long_prompt)).images
    truncated = pipe(**get_dummy_inputs(prompt="a red circle a red circle a red")).images  # its first 8 tokens
    assert "truncated" in caplog.text.lower()
    np.testing.assert_array_equal(images, truncated)


def test_callback_sees_and_changes_latents(pipe):
    seen = []

    def record(pipeline, step, timestep, tensors):
        seen.append((step, int(timestep), tensors["latents"].shape))
        return {}

    pipe(**get_dummy_inputs(), callback_on_step_end=record, callback_on_step_end_tensor_inputs=["latents"])
    assert seen == [(i, t, (1, 3, 8, 8)) for i, t in enumerate([999, 666, 333, 0])]

    def zero_at_the_end(pipeline, step, timestep, tensors):
        return {"latents": torch.zeros_like(tensors["latents"])} if step == 3 else {}

    images = pipe(
        **get_dummy_inputs(), callback_on_step_end=zero_at_the_end, callback_on_step_end_tensor_inputs=["latents"]
    ).images
    np.testing.assert_allclose(images, 0.5, atol=1e-6)  # latents 0 -> gray


def test_save_load_round_trip(pipe, tmp_path):
    expected = pipe(**get_dummy_inputs()).images
    pipe.save_pretrained(tmp_path)
    reloaded = GlidePipeline.from_pretrained(tmp_path)
    reloaded.set_progress_bar_config(disable=True)
    assert isinstance(reloaded.scheduler, GlideScheduler)
    np.testing.assert_array_equal(reloaded(**get_dummy_inputs()).images, expected)


def test_model_cpu_offload_gives_the_same_images(pipe):
    expected = pipe(**get_dummy_inputs()).images
    pipe.enable_model_cpu_offload(device="cpu")
    np.testing.assert_allclose(pipe(**get_dummy_inputs()).images, expected, atol=1e-6)


def test_to_bfloat16_runs(pipe):
    pipe.to(torch.bfloat16)
    assert pipe.unet.dtype == torch.bfloat16 and pipe.text_encoder.dtype == torch.bfloat16
    images = pipe(**get_dummy_inputs()).images
    assert np.isfinite(images).all() and images.shape == (1, 8, 8, 3)


@pytest.mark.parametrize(
    "scheduler",
    [
        lambda config: GlideScheduler.from_config(config, sampler="ddim"),
        lambda config: DDIMScheduler.from_config(config),
        lambda config: DDPMScheduler.from_config(config),
        lambda config: DPMSolverMultistepScheduler.from_config(config),
    ],
)
def test_scheduler_swap(pipe, scheduler):
    pipe.scheduler = scheduler(pipe.scheduler.config)
    images = pipe(**get_dummy_inputs(num_inference_steps=5)).images
    assert images.shape == (1, 8, 8, 3) and np.isfinite(images).all()


def test_bad_inputs(pipe):
    with pytest.raises(ValueError, match="empty list"):
        pipe(**get_dummy_inputs(prompt=[]))
    with pytest.raises(ValueError, match="exactly one of `prompt` and `prompt_embeds`"):
        pipe(**get_dummy_inputs(prompt=None))
    with pytest.raises(TypeError, match="string or a list of strings"):
        pipe(**get_dummy_inputs(prompt=3))
    with pytest.raises(ValueError, match="`negative_prompt` has 2 prompts but `prompt` has 3"):
        pipe(**get_dummy_inputs(prompt=["a", "b", "c"], negative_prompt=["x", "y"]))
    with pytest.raises(ValueError, match=r"`latents` must have shape \(1, 3, 8, 8\)"):
        pipe(**get_dummy_inputs(latents=torch.zeros(1, 3, 4, 4)))
    with pytest.raises(ValueError, match="`output_type` must be one of"):
        pipe(**get_dummy_inputs(output_type="latents"))
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        pipe(**get_dummy_inputs(), callback_on_step_end=lambda *a: {}, callback_on_step_end_tensor_inputs=["noise"])
    with pytest.raises(ValueError, match="2 generators for a batch of 1"):
        pipe(**get_dummy_inputs(generator=[torch.Generator(), torch.Generator()]))
    with pytest.raises(ValueError, match="num_images_per_prompt"):
        pipe(**get_dummy_inputs(num_images_per_prompt=0))
    components = get_dummy_components()
    components["unet"] = tiny_unet(super_resolution=True)
    with pytest.raises(
        ValueError,
        match=r"GlidePipeline cannot run this UNet: it is a GLIDE 'upsample' model \(super_resolution=True, "
        r"inpainting=False\); use GlideUpsamplePipeline",
    ):
        GlidePipeline(**components)


def test_fast_solvers_from_the_glide_config_clip_x0_like_glide():
    """DPM-Solver++ / UniPC built with `from_config(glide_scheduler.config)` clip x0 to [-1, 1] (dynamic
    thresholding with sample_max_value 1), so first-order DPM-Solver++ is GLIDE's DDIM on the same timesteps; the
    second-order solvers stay close to it. Without the clipping they diverge on GLIDE (see benchmarks/README.md)."""
    from diffusers import UniPCMultistepScheduler

    from diffusers_glide.embedded import embedded_model_path

    pipe = GlidePipeline.from_pretrained(embedded_model_path())
    pipe.set_progress_bar_config(disable=True)
    config = pipe.scheduler.config
    prompts = ["a red circle on a blue background", "a white triangle on a green background"]

    def run(scheduler, **kwargs):
        pipe.scheduler = scheduler
        generator = torch.Generator().manual_seed(0)
        return pipe(prompts, guidance_scale=3.0, generator=generator, output_type="pt", **kwargs).images

    first_order = DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=1)
    assert first_order.config.thresholding and first_order.config.sample_max_value == 1.0
    dpm_images = run(first_order, num_inference_steps=15)
    glide_ddim = GlideScheduler.from_config(config, sampler="ddim")
    ddim_images = run(glide_ddim, timesteps=first_order.timesteps.tolist())
    assert max_abs_diff(dpm_images, ddim_images) <= 1e-4

    for scheduler in (
        DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2),
        UniPCMultistepScheduler.from_config(config),
    ):
        assert scheduler.config.thresholding
        images = run(scheduler, num_inference_steps=15)
        assert (images - ddim_images).abs().mean() <= 0.02, type(scheduler).__name__


def test_torch_compile_is_a_working_opt_in(pipe):
    """`pipe.unet = torch.compile(pipe.unet)` samples the same images."""
    expected = pipe(**get_dummy_inputs(output_type="pt")).images
    pipe.unet = torch.compile(pipe.unet)
    np.testing.assert_allclose(pipe(**get_dummy_inputs(output_type="pt")).images, expected, atol=1e-5)
