"""Bad input never becomes a silent wrong image: non-finite numbers and tensors, value ranges, bit depths and PIL
modes, masks, wrong pipeline folders, concurrent calls, batches that cannot fit, NaN during sampling."""

import json
import re
import shutil
import threading

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import tiny_components, tiny_inputs, tiny_pipeline, tiny_text_encoder

from diffusers_glide import GlideInpaintPipeline, GlidePipeline
from diffusers_glide.pipelines import memory, pipeline_glide_base
from diffusers_glide.pipelines.image_processing import GlideImageProcessor
from diffusers_glide.pipelines.memory import BatchTooLargeError

# ---------------------------------------------------------------------------------------------------------------
# Numbers and tensors


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize(
    "variant, name",
    [("base", "guidance_scale"), ("base", "eta"), ("upsample", "upsample_temp"), ("base", "clip_guidance_scale")],
)
def test_non_finite_scalars_are_errors(variant, name, value):
    with pytest.raises(ValueError, match=rf"`{name}` must be a finite number, got {value}"):
        tiny_pipeline(variant)(**tiny_inputs(variant, **{name: value}))


def test_an_x0_only_upsampler_refuses_an_epsilon_scheduler():
    from diffusers import DPMSolverMultistepScheduler

    from diffusers_glide import GlideScheduler, GlideUpsamplePipeline

    components = tiny_components("upsample")
    config = {k: v for k, v in components["unet"].config.items() if not k.startswith("_")}
    components["unet"] = type(components["unet"])(**{**config, "low_res_residual": True}).eval()
    pipe = GlideUpsamplePipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    message = "predicts x0 (`low_res_residual=True`) but the scheduler has prediction_type='epsilon'"
    with pytest.raises(ValueError, match=re.escape(message)):
        pipe(**tiny_inputs("upsample"))
    pipe.scheduler = DPMSolverMultistepScheduler(num_train_timesteps=1000)
    with pytest.raises(ValueError, match=re.escape(message)):
        pipe(**tiny_inputs("upsample", num_inference_steps=2))
    # An untrained residual model predicts the bilinear upsampling as x0 at every step.
    pipe.scheduler = GlideScheduler(timestep_respacing="4", prediction_type="sample", sampler="ddim")
    image = pipe(**tiny_inputs("upsample")).images
    low_res = torch.round(tiny_inputs("upsample")["image"] * 255) / 255 * 2 - 1  # inputs are read as 8-bit
    upsampled = torch.nn.functional.interpolate(low_res, size=(16, 16), mode="bilinear", align_corners=False)
    diff = (image - (upsampled.clamp(-1, 1) + 1) / 2).abs().max().item()
    assert diff <= 1e-5, f"max abs diff {diff}"
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    assert pipe(**tiny_inputs("upsample", num_inference_steps=2)).images.shape == (1, 3, 16, 16)


def test_scalars_must_be_numbers():
    pipe = tiny_pipeline()
    with pytest.raises(TypeError, match=r"`guidance_scale` must be a number, got str '3'"):
        pipe(**tiny_inputs(guidance_scale="3"))
    with pytest.raises(TypeError, match=r"`eta` must be a number, got bool True"):
        pipe(**tiny_inputs(eta=True))
    with pytest.raises(ValueError, match=r"`eta` must be in \[0, 1\], got 2"):
        pipe(**tiny_inputs(eta=2))


def test_non_finite_tensors_are_errors():
    pipe = tiny_pipeline()
    latents = torch.randn(1, 3, 8, 8)
    latents[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="`latents` holds NaN or infinite values"):
        pipe(**tiny_inputs(latents=latents))
    embeds, negative = pipe.encode_prompt("a red circle")
    with pytest.raises(ValueError, match="`prompt_embeds` holds NaN or infinite values"):
        pipe(**tiny_inputs(prompt=None, prompt_embeds=embeds * float("inf"), negative_prompt_embeds=negative))
    with pytest.raises(ValueError, match="`negative_prompt_embeds` holds NaN or infinite values"):
        pipe(**tiny_inputs(prompt=None, prompt_embeds=embeds, negative_prompt_embeds=negative * float("nan")))


def test_tokenizer_larger_than_the_text_encoder_vocabulary():
    # the text encoder does not check ids (that would sync the device); the pipeline checks the CPU ids once
    components = tiny_components()
    components["text_encoder"] = tiny_text_encoder(vocab_size=5)
    pipe = GlidePipeline(**components)
    with pytest.raises(ValueError, match=r"The tokenizer produced token id 6 but the text encoder has only 5 token "):
        pipe(**tiny_inputs(prompt="a circle"))  # "a circle" is ids 2, 6
    pipe(**tiny_inputs(prompt="a red"))  # ids 2 and 3 fit


def test_wrong_types_of_latents_and_generator():
    pipe = tiny_pipeline()
    with pytest.raises(TypeError, match="`latents` must be a torch.Tensor, got ndarray"):
        pipe(**tiny_inputs(latents=np.zeros((1, 3, 8, 8), np.float32)))
    with pytest.raises(TypeError, match=r"`generator` must be a torch.Generator .* got int 42; for a seed use"):
        pipe(**tiny_inputs(generator=42))
    with pytest.raises(TypeError, match="`generator` must be a torch.Generator"):
        pipe(**tiny_inputs(generator=[torch.Generator(), 1]))


@pytest.mark.parametrize(
    "returned, error, match",
    [
        ([1, 2], TypeError, "`callback_on_step_end` must return a dict of tensors \\(or None\\), got list"),
        ({"latents": None}, TypeError, "`callback_on_step_end's 'latents'` must be a torch.Tensor, got NoneType"),
        (
            {"latents": torch.zeros(2, 3, 8, 8)},
            ValueError,
            r"returned 'latents' of shape \(2, 3, 8, 8\), expected \(1, 3, 8, 8\)",
        ),
        ({"latents": torch.full((1, 3, 8, 8), float("nan"))}, ValueError, "'latents'` holds NaN"),
        ({"noise": torch.zeros(1)}, ValueError, r"returned \['noise'\], which the pipeline cannot take"),
    ],
)
def test_bad_callback_outputs_are_errors(returned, error, match):
    pipe = tiny_pipeline()
    with pytest.raises(error, match=match):
        pipe(
            **tiny_inputs(),
            callback_on_step_end=lambda *args: returned,
            callback_on_step_end_tensor_inputs=["latents"],
        )


def test_callback_returning_none_changes_nothing():
    pipe = tiny_pipeline()
    expected = pipe(**tiny_inputs()).images
    torch.testing.assert_close(pipe(**tiny_inputs(), callback_on_step_end=lambda *args: None).images, expected)


# ---------------------------------------------------------------------------------------------------------------
# NaN during sampling


def poison_unet_call(pipe, number: int) -> list:
    """Makes the UNet's `number`-th call return NaN; returns the list that counts its calls."""
    calls = []

    def poison(module, args, output):
        calls.append(1)
        if len(calls) == number:
            output.sample[:] = float("nan")
        return output

    pipe.unet.register_forward_hook(poison)
    return calls


def test_nan_from_the_unet_stops_with_the_step():
    pipe = tiny_pipeline()
    calls = poison_unet_call(pipe, 3)
    message = (
        r"Sampling produced NaN or infinite values at step 3 of 4 \(timestep 333\): the UNet output was not finite "
        r"\(float16 weights on a CPU, or weights holding NaN\?\)\. No image is returned\."
    )
    with pytest.raises(FloatingPointError, match=message):
        pipe(**tiny_inputs())
    assert len(calls) == 3  # on the CPU the call stops at that step, not after the loop


def test_nan_found_after_the_loop_where_reading_flags_would_wait_for_the_device(monkeypatch):
    # on an accelerator the flags stay on the device until the loop ends; the same error names the same step
    monkeypatch.setattr(pipeline_glide_base._NonFiniteSteps, "checked_at_once_on", ())
    pipe = tiny_pipeline()
    calls = poison_unet_call(pipe, 3)
    with pytest.raises(FloatingPointError, match=r"at step 3 of 4 \(timestep 333\): the UNet output was not finite"):
        pipe(**tiny_inputs())
    assert len(calls) == 4


def test_non_finite_weights_stop_at_the_first_step():
    pipe = tiny_pipeline("base-inpaint")
    with torch.no_grad():
        pipe.unet.conv_out.bias[0] = float("inf")
    with pytest.raises(FloatingPointError, match=r"at step 1 of 4 \(timestep 999\): the UNet output was not finite"):
        pipe(**tiny_inputs("base-inpaint"))


@pytest.mark.parametrize("steps, repeated", [(1000, 500), (5000, 999)])
def test_a_step_count_that_repeats_a_timestep_is_refused_before_the_unet_runs(steps, repeated):
    # DPM-Solver++ at 1000 steps gave "NaN at step 501": two of its timesteps were 500, a step of zero length
    from diffusers import DPMSolverMultistepScheduler

    pipe = tiny_pipeline()
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    calls = poison_unet_call(pipe, 0)  # counts the calls, poisons none
    message = (
        f"`num_inference_steps`={steps} is too many for DPMSolverMultistepScheduler: its timesteps would visit "
        f"{repeated} twice (a step of zero length). With this model's 1000 training timesteps it runs 1 to 999 steps."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        pipe(**tiny_inputs(num_inference_steps=steps))
    assert calls == []


# ---------------------------------------------------------------------------------------------------------------
# Image and mask values


def gray_levels(size: int = 8) -> np.ndarray:
    return np.arange(size * size, dtype=np.uint8).reshape(size, size) * 3


@pytest.fixture
def processor():
    return GlideImageProcessor()


def read(processor, image, name="image"):
    return processor.read_images(image, name)[0]


def test_one_reading_rule_for_bit_depths_and_modes(processor):
    levels = gray_levels()
    rgb = np.repeat(levels[..., None], 3, axis=-1)
    expected = read(processor, rgb)
    assert torch.equal(expected, torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1)
    sixteen_bit = levels.astype(np.uint16) * 257  # the same gray levels on the 16-bit scale
    same = {
        "PIL L": PIL.Image.fromarray(levels),
        "PIL RGB": PIL.Image.fromarray(rgb),
        "PIL I;16": PIL.Image.fromarray(sixteen_bit),
        "PIL I (16-bit values)": PIL.Image.fromarray(sixteen_bit.astype(np.int32)),
        "PIL P": PIL.Image.fromarray(rgb).convert("P", palette=PIL.Image.Palette.ADAPTIVE, colors=256),
        "PIL opaque RGBA": PIL.Image.fromarray(rgb).convert("RGBA"),
        "PIL opaque LA": PIL.Image.fromarray(levels).convert("LA"),
        "numpy uint16": np.repeat(sixteen_bit[..., None], 3, axis=-1),
        "numpy float": rgb.astype(np.float64) / 255,
        "torch uint8": torch.from_numpy(rgb).permute(2, 0, 1),
    }
    for name, image in same.items():
        torch.testing.assert_close(read(processor, image), expected, atol=1e-6, rtol=0, msg=name)


def test_sixteen_bit_png_file_is_not_white(processor, tmp_path):
    path = tmp_path / "gray16.png"
    PIL.Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(path)
    with PIL.Image.open(path) as image:
        assert image.mode == "I;16"
        pixels = read(processor, image)
    torch.testing.assert_close(pixels, torch.full((1, 3, 8, 8), 32768 / 65535 * 2 - 1))


def test_alpha_is_composited_over_black(processor):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = 255
    rgba[:4, ..., 3] = 0  # the top half fully transparent: black
    rgba[4:6, ..., 3] = 51  # 20% opaque
    pixels = (read(processor, PIL.Image.fromarray(rgba)) + 1) * 127.5
    assert pixels[..., :4, :].abs().max() == 0
    assert torch.allclose(pixels[..., 4:6, :], torch.tensor(40.0), atol=0.5)  # 200 * 0.2
    assert torch.allclose(pixels[..., 6:, :], torch.tensor(200.0), atol=1e-4)
    palette = PIL.Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    palette.putpalette([255, 0, 0, 0, 255, 0])
    palette.info["transparency"] = 1  # palette entry 1 (green) transparent
    pixels = (read(processor, palette) + 1) * 127.5
    assert pixels[0, :, 0, 0].tolist() == [255.0, 0.0, 0.0] and pixels[0, :, 0, 1].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "image, error, match",
    [
        (
            torch.linspace(-0.01, 1, 192).view(3, 8, 8),
            ValueError,
            r"must be floats in \[0, 1\].*got floats in \[-0.01, 1\]",
        ),
        (torch.rand(3, 8, 8) * 2 - 1, ValueError, r"Convert a \[-1, 1\] tensor with `\(x \+ 1\) / 2`"),
        (torch.full((3, 8, 8), float("nan")), ValueError, "`image` holds NaN or infinite values"),
        (np.full((8, 8, 3), np.inf), ValueError, "`image` holds NaN or infinite values"),
        (np.zeros((0, 0, 3), np.uint8), ValueError, r"`image` is empty: got an array of shape \(0, 0, 3\)"),
        (PIL.Image.new("RGB", (0, 0)), ValueError, r"`image` is an empty image \(0x0\)"),
        (np.ones((8, 8, 3), np.int64), TypeError, "`image` has dtype int64, which is ambiguous"),
        (PIL.Image.new("F", (8, 8)), ValueError, "32-bit float image"),
        (
            PIL.Image.fromarray(np.full((8, 8), 70000, np.int32)),
            ValueError,
            r"values in \[70000, 70000\]: only 16-bit",
        ),
        ("image.png", TypeError, "must be PIL images, numpy arrays or torch tensors"),
    ],
)
def test_ambiguous_or_out_of_range_images_are_refused(processor, image, error, match):
    with pytest.raises(error, match=match):
        read(processor, image)


def test_pipelines_share_the_reading_rule():
    # a grayscale PIL image is read the same way by the upsampler and the inpainter
    gray = PIL.Image.fromarray(gray_levels())
    upsampled = tiny_pipeline("upsample")(**tiny_inputs("upsample", image=gray)).images
    as_rgb = tiny_pipeline("upsample")(**tiny_inputs("upsample", image=gray.convert("RGB"))).images
    torch.testing.assert_close(upsampled, as_rgb)
    with pytest.raises(ValueError, match=r"`image` values must be floats in \[0, 1\]"):
        tiny_pipeline("upsample")(**tiny_inputs("upsample", image=torch.rand(1, 3, 8, 8) - 0.5))
    with pytest.raises(ValueError, match=r"`inpaint_image`|`image` values must be floats in \[0, 1\]"):
        tiny_pipeline("base-inpaint")(**tiny_inputs("base-inpaint", image=torch.rand(1, 3, 8, 8) + 0.5))


@pytest.mark.parametrize(
    "mask, match",
    [
        (torch.full((8, 8), float("nan")), "`mask_image` holds NaN or infinite values"),
        (torch.full((8, 8), 2.0), r"`mask_image` values must be floats in \[0, 1\].*got floats in \[2, 2\]"),
        (-torch.ones(8, 8), r"`mask_image` values must be floats in \[0, 1\]"),
        (torch.zeros(8, 8), "`mask_image` 0 has nothing to repaint at the model's 8x8"),
    ],
)
def test_bad_masks_are_errors(mask, match):
    with pytest.raises(ValueError, match=match):
        tiny_pipeline("base-inpaint")(**tiny_inputs("base-inpaint", mask_image=mask))


def test_mask_read_from_every_mode_and_depth(processor):
    repaint = np.zeros((8, 8), bool)
    repaint[2:5, 1:7] = True
    levels = repaint.astype(np.uint8) * 255
    expected = torch.from_numpy(repaint).float()[None, None]
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[repaint] = 255  # white and opaque where painted, transparent elsewhere
    for name, mask in {
        "PIL L": PIL.Image.fromarray(levels),
        "PIL 1": PIL.Image.fromarray(levels).convert("1"),
        "PIL I;16": PIL.Image.fromarray(repaint.astype(np.uint16) * 65535),
        "PIL RGBA strokes": PIL.Image.fromarray(rgba),
        "numpy bool": repaint,
        "numpy uint16": repaint.astype(np.uint16) * 65535,
        "torch float": torch.from_numpy(repaint).float(),
    }.items():
        assert torch.equal(processor.read_masks(mask, "mask_image", 8)[0], expected), name


# ---------------------------------------------------------------------------------------------------------------
# Pipeline folders


def test_folder_of_another_pipeline_class_is_refused(tmp_path):
    tiny_pipeline("base").save_pretrained(tmp_path / "base")
    with pytest.raises(
        ValueError, match=r"holds a GlidePipeline, not a GlideInpaintPipeline: load it with `GlidePipeline"
    ):
        GlideInpaintPipeline.from_pretrained(tmp_path / "base")
    index = json.loads((tmp_path / "base" / "model_index.json").read_text())
    (tmp_path / "base" / "model_index.json").write_text(json.dumps({**index, "_class_name": "GlideUpsamplePipeline"}))
    with pytest.raises(ValueError, match="holds a GlideUpsamplePipeline, not a GlidePipeline"):
        GlidePipeline.from_pretrained(tmp_path / "base")
    (tmp_path / "base" / "model_index.json").write_text(
        json.dumps({**index, "_class_name": "StableDiffusionPipeline"})
    )
    with pytest.raises(ValueError, match="holds a StableDiffusionPipeline, not a GLIDE pipeline"):
        GlidePipeline.from_pretrained(tmp_path / "base")


def test_incomplete_folder_names_the_missing_component(tmp_path):
    tiny_pipeline("base").save_pretrained(tmp_path / "base")
    shutil.rmtree(tmp_path / "base" / "tokenizer")
    with pytest.raises(OSError, match=r"lacks the `tokenizer/` folder that its model_index.json lists"):
        GlidePipeline.from_pretrained(tmp_path / "base")
    with pytest.raises(OSError, match="is not a diffusers pipeline folder"):
        GlidePipeline.from_pretrained(tmp_path / "base" / "unet")


# ---------------------------------------------------------------------------------------------------------------
# Concurrency and batch sizes


def test_concurrent_calls_on_one_pipeline_are_refused():
    pipe = tiny_pipeline("base", timestep_respacing="10")
    expected = pipe(**tiny_inputs(num_inference_steps=6)).images
    inside, release = threading.Event(), threading.Event()
    results = {}

    def hold(pipeline, step, timestep, tensors):
        inside.set()
        release.wait(timeout=60)
        return tensors

    def first():
        results["first"] = pipe(**tiny_inputs(num_inference_steps=6), callback_on_step_end=hold).images

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(timeout=60)
    with pytest.raises(RuntimeError, match="already running a call .* a pipeline object runs one call at a time"):
        pipe(**tiny_inputs(num_inference_steps=3))
    release.set()
    thread.join(timeout=60)
    torch.testing.assert_close(results["first"], expected)  # the refused call changed nothing
    assert pipe.scheduler.num_inference_steps == 6


def test_pipelines_sharing_models_run_in_parallel_threads():
    pipe = tiny_pipeline("base", timestep_respacing="10")
    steps = {"a": 6, "b": 3}
    expected = {name: pipe(**tiny_inputs(num_inference_steps=n)).images for name, n in steps.items()}
    results = {}

    def run(name):
        import copy

        own = GlidePipeline(**{**pipe.components, "scheduler": copy.deepcopy(pipe.scheduler)})
        own.set_progress_bar_config(disable=True)
        results[name] = own(**tiny_inputs(num_inference_steps=steps[name])).images

    threads = [threading.Thread(target=run, args=(name,)) for name in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for name in steps:
        torch.testing.assert_close(results[name], expected[name])


def test_batch_that_cannot_fit_is_refused_before_allocating(monkeypatch):
    pipe = tiny_pipeline()
    per_image = 2 * memory.unet_bytes_per_row(pipe.unet.config, 4, 8) + 4 * 4 * 3 * 8 * 8
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device: 100 * per_image)
    pipe(**tiny_inputs(num_images_per_prompt=100))  # fits exactly
    message = (
        r"num_images_per_prompt=101 for 1 prompt\(s\) asks for 101 images in one call, which needs about .* MiB for "
        r"one denoising step, but cpu has .* MiB available: at most 100 fit\. Generate them in several calls"
    )
    with pytest.raises(BatchTooLargeError, match=message) as error:
        pipe(**tiny_inputs(num_images_per_prompt=101))
    assert error.value.max_images == 100
    # without guidance one UNet row per image: more fit
    pipe(**tiny_inputs(num_images_per_prompt=150, guidance_scale=1.0))


def test_absurd_batch_is_refused_with_the_real_memory():
    pipe = tiny_pipeline("upsample")
    with pytest.raises(BatchTooLargeError, match="asks for 100000000 images in one call"):
        pipe(**tiny_inputs("upsample", num_images_per_prompt=100_000_000))
