"""The diffusers conventions that diffusers' generic pipeline tests (`PipelineTesterMixin`) check, in our own words,
for the GLIDE pipelines (text-to-image, upsample, inpaint, image-to-image): per-step guidance read by callbacks, `PipelineCallback`s, interrupting, the
`"latent"` output, pipelines without text encoder, attention slicing, optional components round trips."""

import numpy as np
import pytest
import torch
from conftest import tiny_inputs, tiny_pipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback, SDCFGCutoffCallback


def inputs(variant: str, **overrides) -> dict:
    return tiny_inputs(variant, **{"guidance_scale": 3.0, **overrides})


def unet_batch_sizes(pipe) -> list[int]:
    """Records the batch size of every UNet call."""
    sizes = []
    pipe.unet.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    return sizes


@pytest.fixture(params=["base", "upsample", "base-inpaint", "img2img"])
def variant(request):
    return request.param


def test_callbacks_change_the_guidance_scale_between_steps(variant):
    pipe = tiny_pipeline(variant)
    constant = pipe(**inputs(variant)).images

    def raise_guidance(pipeline, step, timestep, tensors):
        pipeline._guidance_scale += 1.0
        return tensors

    assert pipe.num_timesteps == 4 and pipe.guidance_scale == 3.0 and pipe.do_classifier_free_guidance
    raised = pipe(**inputs(variant), callback_on_step_end=raise_guidance).images
    assert pipe.guidance_scale == 3.0 + pipe.num_timesteps
    # the last step ran with guidance 6, not 3: the loop reads the scale at every step
    assert (raised - constant).abs().max() > 1e-3


def test_sd_cfg_cutoff_callback_stops_guidance(variant):
    pipe = tiny_pipeline(variant)
    sizes = unet_batch_sizes(pipe)
    pipe(**inputs(variant), callback_on_step_end=SDCFGCutoffCallback(cutoff_step_ratio=None, cutoff_step_index=1))
    # steps 0 and 1 guided (conditional + unconditional rows), then only the conditional rows
    assert sizes == [2, 2, 1, 1]
    assert pipe.guidance_scale == 0.0 and not pipe.do_classifier_free_guidance


def test_pipeline_callback_tensor_inputs_are_used(variant):
    pipe = tiny_pipeline(variant)
    seen = []

    class RecordLatents(PipelineCallback):
        tensor_inputs = ["latents"]

        def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
            seen.append((step_index, sorted(callback_kwargs), tuple(callback_kwargs["latents"].shape)))
            return callback_kwargs

    size = pipe.unet.config.sample_size
    pipe(**inputs(variant), callback_on_step_end=MultiPipelineCallbacks([RecordLatents()]))
    assert seen == [(i, ["latents"], (1, 3, size, size)) for i in range(4)]


def test_interrupt_stops_the_loop(variant):
    pipe = tiny_pipeline(variant)
    sizes = unet_batch_sizes(pipe)

    def stop_after_step_1(pipeline, step, timestep, tensors):
        if step == 1:
            pipeline._interrupt = True
        return tensors

    images = pipe(**inputs(variant), callback_on_step_end=stop_after_step_1).images
    assert len(sizes) == 2 and pipe.interrupt
    assert images.shape[0] == 1 and torch.isfinite(images).all()
    pipe(**inputs(variant))  # a new call starts uninterrupted
    assert not pipe.interrupt and len(sizes) == 6


def test_latent_output_is_the_raw_sample(variant):
    pipe = tiny_pipeline(variant)
    latent = pipe(**inputs(variant, output_type="latent")).images
    as_pt = pipe(**inputs(variant, output_type="pt")).images
    assert latent.shape == as_pt.shape and latent.dtype == torch.float32
    torch.testing.assert_close((latent / 2 + 0.5).clamp(0, 1), as_pt, atol=1e-6, rtol=0)
    # GLIDE's x0 is clipped to [-1, 1], but the final sample may step slightly outside: it is returned unclipped
    assert latent.min() >= -1.5 and latent.max() <= 1.5


def test_pipeline_without_text_encoder_takes_embeddings(variant, tmp_path):
    full = tiny_pipeline(variant)
    expected = full(**inputs(variant)).images
    prompt_embeds, negative_prompt_embeds = full.encode_prompt("a red circle", do_classifier_free_guidance=True)
    components = {**full.components, "text_encoder": None, "tokenizer": None}
    pipe = type(full)(**components)
    pipe.set_progress_bar_config(disable=True)
    embeds = {"prompt": None, "prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds}
    torch.testing.assert_close(pipe(**inputs(variant, **embeds)).images, expected, atol=1e-6, rtol=0)

    with pytest.raises(ValueError, match="`negative_prompt` needs the text encoder and tokenizer, but this pipeline"):
        pipe(**inputs(variant, prompt=None, prompt_embeds=prompt_embeds))
    with pytest.raises(ValueError, match="`prompt` needs the text encoder and tokenizer"):
        pipe(**inputs(variant))

    # The text encoder is not an optional component (diffusers' generic save / load test expects the pipelines to
    # work from `prompt`); a folder saved without it loads when the missing components are passed as None.
    pipe.save_pretrained(tmp_path)
    reloaded = type(full).from_pretrained(tmp_path, text_encoder=None, tokenizer=None)
    reloaded.set_progress_bar_config(disable=True)
    assert reloaded.text_encoder is None and reloaded.tokenizer is None
    torch.testing.assert_close(reloaded(**inputs(variant, **embeds)).images, expected, atol=1e-6, rtol=0)


def test_attention_slicing_is_real_and_changes_nothing(variant):
    pipe = tiny_pipeline(variant)
    expected = pipe(**inputs(variant)).images
    blocks = [m for m in pipe.unet.modules() if hasattr(m, "slice_size")]
    assert blocks and all(block.num_heads == 4 for block in blocks)  # 64 channels / 16 per head
    pipe.enable_attention_slicing("max")
    assert [block.slice_size for block in blocks] == [1] * len(blocks)
    np.testing.assert_allclose(pipe(**inputs(variant)).images, expected, atol=1e-5)
    pipe.disable_attention_slicing()
    assert [block.slice_size for block in blocks] == [None] * len(blocks)


def test_guidance_switched_on_by_a_callback_without_unconditional_text_is_an_error():
    pipe = tiny_pipeline("base")

    def guide(pipeline, step, timestep, tensors):
        pipeline._guidance_scale = 5.0
        return tensors

    with pytest.raises(ValueError, match="Classifier-free guidance was switched on during sampling"):
        pipe(**inputs("base", guidance_scale=1.0), callback_on_step_end=guide)
