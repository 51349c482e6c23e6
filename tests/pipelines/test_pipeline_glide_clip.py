"""CLIP guidance in GlidePipeline: the reference's CLIP-guided loop, combination with classifier-free guidance,
scheduler swaps, loading/saving the optional CLIP components, bad inputs."""

import logging

import numpy as np
import pytest
import torch
from conftest import clip_tokenizer, load_reference, max_abs_diff, public_config, recorded_noise_scheduler
from diffusers import DDIMScheduler, EulerDiscreteScheduler
from test_pipeline_glide import get_dummy_components, get_dummy_inputs

from diffusers_glide import (
    GlideCLIPImageEncoder,
    GlideCLIPTextEncoder,
    GlidePipeline,
    GlideScheduler,
)
from diffusers_glide.pipelines.clip_guidance import clip_guidance_gradient

TOLERANCE = 1e-3
PIPELINE_LOGGER = "diffusers_glide.pipelines.pipeline_glide"


# ---------------------------------------------------------------------------------------------------------------
# The reference's CLIP-guided loop (tiny base model + tiny noised CLIP, both converted by our converter)


@pytest.fixture(scope="module")
def clip_pipe(converted_folders, converted_clip_folder):
    pipe = GlidePipeline.from_pretrained(converted_folders["base"])
    pipe.load_clip_guidance(converted_clip_folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_clip_guided_trajectory_replays_the_reference(clip_pipe):
    ref, info = load_reference("base.sample_clip")
    spec = info["spec"]
    batch = spec["batch_size"]
    pipe = GlidePipeline(**clip_pipe.components)
    pipe.scheduler = recorded_noise_scheduler(pipe.scheduler, ref["step_noise"], batch)
    pipe.set_progress_bar_config(disable=True)
    steps = []

    def record(pipeline, i, t, callback_kwargs):
        steps.append(callback_kwargs["latents"].clone())
        return {}

    images = pipe(
        spec["prompts"],
        respacing=spec["respacing"],
        guidance_scale=1.0,  # the notebook's CLIP-guided sampling has no classifier-free guidance
        clip_guidance_scale=spec["guidance_scale"],
        latents=ref["init_noise"],
        output_type="pt",
        callback_on_step_end=record,
        callback_on_step_end_tensor_inputs=["latents"],
    ).images
    diffs = [max_abs_diff(x, expected) for x, expected in zip(steps, ref["trajectory"], strict=True)]
    report = ", ".join(f"{k}: {d:.1e}" for k, d in enumerate(diffs))
    assert max(diffs) <= TOLERANCE, f"per-step max abs diff: {report}"
    diff = max_abs_diff(images, ((ref["samples"] + 1) / 2).clamp(0, 1))
    assert diff <= TOLERANCE, f"samples: max abs diff {diff}"


def test_clip_gradients_of_the_reference_loop(clip_pipe):
    """Our gradient at each recorded x_t and ORIGINAL timestep is the reference cond_fn's."""
    ref, info = load_reference("base.sample_clip")
    spec = info["spec"]
    text_embeds = clip_pipe.encode_clip_prompt(spec["prompts"])
    inputs = [ref["init_noise"], *ref["trajectory"][:-1]]
    for k, (x, t) in enumerate(zip(inputs, ref["cond_fn_timesteps"], strict=True)):
        gradient = clip_guidance_gradient(clip_pipe.clip_image_encoder, x, t, text_embeds, spec["guidance_scale"])
        diff = max_abs_diff(gradient, ref["cond_fn_grad"][k])
        assert diff <= 1e-4, f"step {k} (t={t.tolist()}): max abs diff {diff}"


def test_clip_prompt_tokens_are_the_recorded_ones(clip_pipe):
    ref, info = load_reference("base.sample_clip")
    from diffusers_glide import tokenize_clip_prompts

    input_ids, mask = tokenize_clip_prompts(clip_pipe.clip_tokenizer, info["spec"]["prompts"])
    assert torch.equal(input_ids, ref["clip_tokens"]) and mask.sum(1).tolist() == ref["clip_lens"].tolist()


def test_encode_clip_prompt_gives_the_reference_text_embeddings(clip_pipe):
    ref, info = load_reference("clip.forward")
    embeds = clip_pipe.encode_clip_prompt(info["prompts"], num_images_per_prompt=2)
    assert embeds.shape == (6, 32)
    assert max_abs_diff(embeds[::2], ref["text_emb"]) <= 1e-4 and torch.equal(embeds[::2], embeds[1::2])


# ---------------------------------------------------------------------------------------------------------------
# Tiny random components


def get_dummy_clip_components(image_size=8):
    torch.manual_seed(1)
    image_encoder = GlideCLIPImageEncoder(
        image_size=image_size,
        patch_size=4,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        projection_dim=8,
    )
    text_encoder = GlideCLIPTextEncoder(
        vocab_size=49408, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, projection_dim=8
    )
    return {
        "clip_image_encoder": image_encoder.eval(),
        "clip_text_encoder": text_encoder.eval(),
        "clip_tokenizer": clip_tokenizer(),
    }


@pytest.fixture
def pipe():
    pipeline = GlidePipeline(**get_dummy_components(), **get_dummy_clip_components())
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _manual_loop(pipe, prompt, guidance_scale, clip_guidance_scale, seed, scheduler_step):
    """GLIDE's guided loop written out from the components: CFG on epsilon, then the CLIP gradient."""
    generator = torch.Generator().manual_seed(seed)
    size = pipe.unet.config.sample_size
    x = torch.randn((1, 3, size, size), generator=generator)
    cond, uncond = pipe.encode_prompt(prompt, do_classifier_free_guidance=True)
    text_embeds = pipe.encode_clip_prompt(prompt)
    for t in pipe.scheduler.timesteps:
        with torch.no_grad():
            out = pipe.unet(torch.cat([x, x]), t, torch.cat([cond, uncond])).sample
        eps = out[1:, :3] + guidance_scale * (out[:1, :3] - out[1:, :3])
        model_output = torch.cat([eps, out[:1, 3:]], dim=1)
        gradient = clip_guidance_gradient(pipe.clip_image_encoder, x, t, text_embeds, clip_guidance_scale)
        x = scheduler_step(model_output, t, x, gradient, generator)
    return x


def test_clip_guidance_combines_with_classifier_free_guidance(pipe):
    def glide_step(model_output, t, x, gradient, generator):
        return pipe.scheduler.step(model_output, t, x, generator=generator, guidance_gradient=gradient).prev_sample

    pipe.scheduler.set_timesteps(respacing="4")
    expected = _manual_loop(pipe, "a red circle", 3.0, 50.0, 0, glide_step)
    images = pipe(**get_dummy_inputs(guidance_scale=3.0, clip_guidance_scale=50.0, output_type="pt")).images
    assert max_abs_diff(images, ((expected + 1) / 2).clamp(0, 1)) <= 1e-5
    only_cfg = pipe(**get_dummy_inputs(guidance_scale=3.0, output_type="pt")).images
    only_clip = pipe(**get_dummy_inputs(guidance_scale=1.0, clip_guidance_scale=50.0, output_type="pt")).images
    assert max_abs_diff(images, only_cfg) > 1e-3 and max_abs_diff(images, only_clip) > 1e-3


def test_diffusers_scheduler_gets_the_score_shift(pipe):
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=True)
    pipe.scheduler.set_timesteps(3)

    def ddim_step(model_output, t, x, gradient, generator):
        alpha_bar = pipe.scheduler.alphas_cumprod[int(t)]
        eps = model_output[:, :3] - (1 - alpha_bar).sqrt() * gradient
        return pipe.scheduler.step(eps, t, x, eta=0.0, use_clipped_model_output=True).prev_sample

    expected = _manual_loop(pipe, "a red circle", 3.0, 50.0, 0, ddim_step)
    images = pipe(
        **get_dummy_inputs(num_inference_steps=3, guidance_scale=3.0, clip_guidance_scale=50.0, output_type="pt")
    ).images
    assert max_abs_diff(images, ((expected + 1) / 2).clamp(0, 1)) <= 1e-5
    unguided = pipe(**get_dummy_inputs(num_inference_steps=3, guidance_scale=3.0, output_type="pt")).images
    assert max_abs_diff(images, unguided) > 1e-3


def test_glide_ddim_runs_with_clip_guidance(pipe):
    pipe.scheduler = GlideScheduler.from_config(pipe.scheduler.config, sampler="ddim")
    guided = pipe(**get_dummy_inputs(clip_guidance_scale=50.0)).images
    unguided = pipe(**get_dummy_inputs()).images
    assert np.isfinite(guided).all() and np.abs(guided - unguided).max() > 1e-3


def test_clip_prompt_replaces_the_prompt_for_clip(pipe):
    same = pipe(**get_dummy_inputs(clip_guidance_scale=50.0, clip_prompt="a red circle")).images
    default = pipe(**get_dummy_inputs(clip_guidance_scale=50.0)).images
    other = pipe(**get_dummy_inputs(clip_guidance_scale=50.0, clip_prompt="a blue square")).images
    np.testing.assert_array_equal(same, default)
    assert np.abs(other - default).max() > 1e-3


def test_clip_guidance_with_prompt_embeds_and_several_images(pipe):
    embeds, _ = pipe.encode_prompt("a red circle", do_classifier_free_guidance=False)
    from_text = pipe(**get_dummy_inputs(clip_guidance_scale=50.0, num_images_per_prompt=2)).images
    from_embeds = pipe(
        **get_dummy_inputs(
            prompt=None,
            prompt_embeds=embeds,
            clip_prompt="a red circle",
            clip_guidance_scale=50.0,
            num_images_per_prompt=2,
        )
    ).images
    assert from_text.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(from_embeds, from_text, atol=1e-6)


def test_clip_image_size_mismatch_resizes_with_a_warning(caplog):
    pipe = GlidePipeline(**get_dummy_components(), **get_dummy_clip_components(image_size=16))
    pipe.set_progress_bar_config(disable=True)
    with caplog.at_level(logging.WARNING, logger=PIPELINE_LOGGER):
        guided = pipe(**get_dummy_inputs(clip_guidance_scale=50.0)).images
    assert "The noised CLIP sees 16x16 images but the UNet makes 8x8: x_t is resized" in caplog.text
    unguided = pipe(**get_dummy_inputs()).images
    assert np.isfinite(guided).all() and np.abs(guided - unguided).max() > 1e-3


def test_save_load_round_trip_keeps_the_clip(pipe, tmp_path):
    expected = pipe(**get_dummy_inputs(clip_guidance_scale=50.0)).images
    pipe.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"clip_image_encoder", "clip_text_encoder", "clip_tokenizer"}
    reloaded = GlidePipeline.from_pretrained(tmp_path)
    reloaded.set_progress_bar_config(disable=True)
    assert reloaded.has_clip_guidance and isinstance(reloaded.clip_image_encoder, GlideCLIPImageEncoder)
    # not bit-exact: the reloaded weights can take other CPU kernels, and a scale of 50 magnifies float32 rounding
    np.testing.assert_allclose(reloaded(**get_dummy_inputs(clip_guidance_scale=50.0)).images, expected, atol=1e-4)


def test_pipeline_without_clip_loads_and_says_how_to_add_it(tmp_path):
    pipe = GlidePipeline(**get_dummy_components())
    pipe.save_pretrained(tmp_path)
    reloaded = GlidePipeline.from_pretrained(tmp_path)
    assert not reloaded.has_clip_guidance and reloaded.clip_image_encoder is None
    with pytest.raises(
        ValueError, match=r"has no clip_image_encoder, clip_text_encoder, clip_tokenizer.*load_clip_guidance"
    ):
        reloaded(**get_dummy_inputs(clip_guidance_scale=3.0))
    # clip components given to from_pretrained, or loaded afterwards
    clip = get_dummy_clip_components()
    with_clip = GlidePipeline.from_pretrained(tmp_path, **clip)
    assert with_clip.has_clip_guidance and with_clip.clip_text_encoder is clip["clip_text_encoder"]


def test_load_clip_guidance_from_a_converted_folder(converted_clip_folder):
    pipe = GlidePipeline(**get_dummy_components())
    pipe.load_clip_guidance(converted_clip_folder, dtype=torch.bfloat16)
    assert pipe.has_clip_guidance and pipe.clip_image_encoder.dtype == torch.bfloat16
    assert pipe.clip_image_encoder.config.image_size == 32
    assert type(pipe.clip_tokenizer).__name__ == "CLIPTokenizer"


def test_model_cpu_offload_with_clip_gives_the_same_images(pipe):
    expected = pipe(**get_dummy_inputs(guidance_scale=3.0, clip_guidance_scale=50.0)).images
    pipe.enable_model_cpu_offload(device="cpu")
    images = pipe(**get_dummy_inputs(guidance_scale=3.0, clip_guidance_scale=50.0)).images
    np.testing.assert_allclose(images, expected, atol=1e-6)


def test_bfloat16_clip_guidance_runs(pipe):
    pipe.to(torch.bfloat16)
    assert pipe.clip_image_encoder.dtype == torch.bfloat16
    images = pipe(**get_dummy_inputs(clip_guidance_scale=50.0)).images
    assert np.isfinite(images).all() and images.shape == (1, 8, 8, 3)


def test_bad_clip_inputs(pipe, caplog):
    with pytest.raises(ValueError, match=r"`clip_guidance_scale` must be >= 0, got -1"):
        pipe(**get_dummy_inputs(clip_guidance_scale=-1.0))
    with pytest.raises(ValueError, match=r"`clip_prompt` has 2 prompts for 3 prompts"):
        pipe(**get_dummy_inputs(prompt=["a", "b", "c"], clip_prompt=["a", "b"], clip_guidance_scale=1.0))
    embeds, _ = pipe.encode_prompt("a red circle", do_classifier_free_guidance=False)
    with pytest.raises(
        ValueError, match="CLIP guidance with `prompt_embeds` needs the text for CLIP: pass `clip_prompt`"
    ):
        pipe(**get_dummy_inputs(prompt=None, prompt_embeds=embeds, clip_guidance_scale=1.0))
    with pytest.raises(TypeError, match="`clip_prompt` must be a string or a list of strings"):
        pipe(**get_dummy_inputs(clip_prompt=3, clip_guidance_scale=1.0))
    pipe.scheduler = GlideScheduler(num_train_timesteps=500, timestep_respacing="4")
    with pytest.raises(ValueError, match="trained on 1000 diffusion steps but the scheduler has 500"):
        pipe(**get_dummy_inputs(clip_guidance_scale=1.0))
    with caplog.at_level(logging.WARNING, logger=PIPELINE_LOGGER):
        pipe(**get_dummy_inputs(clip_prompt="a blue square"))
    assert "`clip_prompt` is ignored: CLIP guidance is off" in caplog.text


def test_clip_checks_moved_out_of_the_models(pipe):
    # The noised-CLIP encoders do not read tensor values (a device sync per step); the pipeline checks once per
    # call what they would have: integer timesteps in the CLIP's table, a tokenizer that fits the text encoder.
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    with pytest.raises(ValueError, match=r"CLIP guidance needs integer timesteps, but the scheduler gives \[999.0, "):
        pipe(**get_dummy_inputs(clip_guidance_scale=1.0, num_inference_steps=7))
    pipe.scheduler = GlideScheduler(timestep_respacing="4")
    small = GlideCLIPTextEncoder(**{**public_config(pipe.clip_text_encoder.config), "vocab_size": 100})
    pipe.register_modules(clip_text_encoder=small)
    with pytest.raises(ValueError, match=r"The CLIP tokenizer has 49408 tokens but the CLIP text encoder only 100"):
        pipe(**get_dummy_inputs(clip_guidance_scale=1.0))


def test_diffusers_schedulers_shift_an_x0_model_by_the_same_score():
    """CLIP's gradient moves a model predicting x0 (prediction_type="sample") exactly as it moves the epsilon model
    that predicts the same x0: eps - sqrt(1 - abar) g  <=>  x0 + (1 - abar) / sqrt(abar) g."""
    from conftest import tiny_pipeline

    results = {}
    generator = torch.Generator().manual_seed(0)
    x_t, eps, gradient = (torch.randn(1, 3, 8, 8, generator=generator) for _ in range(3))
    for prediction_type in ("epsilon", "sample"):
        pipe = tiny_pipeline("base")
        pipe.scheduler = DDIMScheduler.from_config(GlideScheduler(prediction_type=prediction_type).config)
        pipe.scheduler.set_timesteps(10)
        t = pipe.scheduler.timesteps[3]
        abar = pipe.scheduler.alphas_cumprod[int(t)]
        output = eps if prediction_type == "epsilon" else (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()
        step = pipe._make_scheduler_step(3, None, 0.0, None)
        results[prediction_type] = step(torch.cat([output, torch.zeros_like(output)], 1), t, x_t, gradient)
    assert max_abs_diff(results["sample"], results["epsilon"]) < 1e-4


@pytest.mark.parametrize("scheduler_class", ["DPMSolverMultistepScheduler", "DDPMScheduler", "DDIMScheduler"])
def test_diffusers_schedulers_sample_an_x0_upsampler(scheduler_class):
    """An x0-predicting model (the embedded upsamplers) samples with diffusers' schedulers built from its config."""
    import diffusers
    from conftest import tiny_inputs, tiny_pipeline

    pipe = tiny_pipeline("upsample", prediction_type="sample")
    pipe.scheduler = getattr(diffusers, scheduler_class).from_config(pipe.scheduler.config)
    assert pipe.scheduler.config.prediction_type == "sample"
    images = pipe(**tiny_inputs("upsample", output_type="np"), num_inference_steps=3).images
    assert images.shape[-1] == 3 and np.isfinite(images).all()
