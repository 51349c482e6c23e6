"""GlideInpaintPipeline: parity with the reference inpainting loop, input formats, mask convention, bad inputs."""

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
from diffusers import DDIMScheduler

from diffusers_glide import (
    GlideInpaintPipeline,
    GlideScheduler,
)

TOLERANCE = 1e-3
SIZE = 16


# ---------------------------------------------------------------------------------------------------------------
# Parity with the reference (tiny fixture checkpoint converted by our converter)


def test_inpaint_trajectory_replayed_with_recorded_noise(converted_folders):
    ref, info = load_reference("base-inpaint.sample_p10")
    spec = info["spec"]
    batch = spec["batch_size"]
    pipe = GlideInpaintPipeline.from_pretrained(converted_folders["base-inpaint"])
    pipe.set_progress_bar_config(disable=True)
    expected = ((ref["samples"][:batch] + 1) / 2).clamp(0, 1)
    # The reference masks are 1 = keep; the pipeline takes diffusers' 1 = repaint. Guidance is left at the
    # pipeline's default, which must be the notebook's 5.0.
    assert spec["guidance_scale"] == 5.0

    def run(mask_image):
        pipe.scheduler = recorded_noise_scheduler(pipe.scheduler, ref["step_noise"], batch)
        return pipe(
            spec["prompts"],
            image=(ref["inpaint_image"][:batch] + 1) / 2,
            mask_image=mask_image,
            respacing=spec["respacing"],
            latents=ref["init_noise"][:batch],
            output_type="pt",
        ).images

    diff = max_abs_diff(run(1 - ref["inpaint_mask"][:batch]), expected)
    assert diff <= TOLERANCE, f"max abs diff {diff}"
    # The GLIDE-convention mask given as is must not reproduce the reference: the comparison sees the convention.
    wrong = max_abs_diff(run(ref["inpaint_mask"][:batch]), expected)
    assert wrong > 0.1, f"the un-inverted mask also matched the reference (max abs diff {wrong})"


# ---------------------------------------------------------------------------------------------------------------
# Fast tests with tiny random components


def get_dummy_components():
    return {
        "unet": tiny_unet(SIZE, inpainting=True),
        "text_encoder": tiny_text_encoder(),
        "tokenizer": glide_tokenizer(),
        "scheduler": GlideScheduler(timestep_respacing="4"),
    }


def dummy_image_array(seed=0, size=SIZE) -> np.ndarray:
    """A uint8 (size, size, 3) image: smooth colours plus noise."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size)
    base = np.stack([ramp[None, :].repeat(size, 0), ramp[:, None].repeat(size, 1), np.full((size, size), 128.0)], -1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).round().astype(np.uint8)


def dummy_mask_array(size=SIZE) -> np.ndarray:
    """A uint8 (size, size) mask in diffusers' convention: 255 = repaint a centred square, 0 = keep."""
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 255
    return mask


def get_dummy_inputs(seed=0, **overrides):
    inputs = {
        "prompt": "a red circle",
        "image": PIL.Image.fromarray(dummy_image_array(seed)),
        "mask_image": PIL.Image.fromarray(dummy_mask_array()),
        "generator": torch.Generator().manual_seed(seed),
        "output_type": "np",
    }
    inputs.update(overrides)
    return inputs


@pytest.fixture
def pipe():
    pipeline = GlideInpaintPipeline(**get_dummy_components())
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def keep_region(size=SIZE) -> np.ndarray:
    return dummy_mask_array(size) == 0


def test_output_types_and_shapes(pipe):
    as_np = pipe(**get_dummy_inputs()).images
    as_pt = pipe(**get_dummy_inputs(output_type="pt")).images
    as_pil = pipe(**get_dummy_inputs(output_type="pil")).images
    assert as_np.shape == (1, SIZE, SIZE, 3) and as_np.dtype == np.float32
    assert as_pt.shape == (1, 3, SIZE, SIZE) and 0 <= as_pt.min() and as_pt.max() <= 1
    assert isinstance(as_pil[0], PIL.Image.Image) and as_pil[0].size == (SIZE, SIZE)
    np.testing.assert_allclose(as_pt.permute(0, 2, 3, 1).numpy(), as_np, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(as_pil[0]), (as_np[0] * 255).round().astype(np.uint8))


def test_dict_and_tuple_outputs_match(pipe):
    as_dict = pipe(**get_dummy_inputs()).images
    (as_tuple,) = pipe(**get_dummy_inputs(), return_dict=False)
    np.testing.assert_array_equal(as_dict, as_tuple)


def test_known_region_is_reproduced_and_the_hole_is_repainted(pipe):
    source = dummy_image_array()
    keep = keep_region()
    as_pil = np.asarray(pipe(**get_dummy_inputs(output_type="pil")).images[0])
    as_np = pipe(**get_dummy_inputs()).images[0]
    as_pt = pipe(**get_dummy_inputs(output_type="pt")).images[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(as_pil[keep], source[keep])
    np.testing.assert_array_equal((as_np[keep] * 255).round(), source[keep])
    np.testing.assert_allclose(as_pt[keep], source[keep] / 255.0, atol=1e-6)
    # The masked square is generated, not copied.
    assert np.abs(as_np[~keep] - source[~keep] / 255.0).mean() > 0.05


def test_unet_gets_the_image_and_glide_keep_mask(pipe):
    seen = []

    def spy(module, args, kwargs):
        seen.append((kwargs["inpaint_image"].clone(), kwargs["inpaint_mask"].clone()))

    handle = pipe.unet.register_forward_pre_hook(spy, with_kwargs=True)
    pipe(**get_dummy_inputs())
    handle.remove()
    expected_image = torch.from_numpy(dummy_image_array()).permute(2, 0, 1).float() / 127.5 - 1
    expected_keep = torch.from_numpy(keep_region()).float()
    assert len(seen) == 4  # one (guided, doubled) forward per step
    for inpaint_image, inpaint_mask in seen:
        assert inpaint_image.shape == (2, 3, SIZE, SIZE) and inpaint_mask.shape == (2, 1, SIZE, SIZE)
        torch.testing.assert_close(inpaint_image, expected_image.expand(2, -1, -1, -1), atol=1e-6, rtol=0)
        assert torch.equal(inpaint_mask, expected_keep.expand(2, 1, -1, -1))


def test_batch_with_generator_list_matches_single_runs(pipe):
    singles = [
        pipe(**get_dummy_inputs(seed=seed, prompt=prompt)).images[0]
        for seed, prompt in ((1, "a red circle"), (2, "a blue square"))
    ]
    mask = PIL.Image.fromarray(dummy_mask_array())
    batched = pipe(
        prompt=["a red circle", "a blue square"],
        image=[PIL.Image.fromarray(dummy_image_array(1)), PIL.Image.fromarray(dummy_image_array(2))],
        mask_image=[mask, mask],
        generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)],
        output_type="np",
    ).images
    assert batched.shape == (2, SIZE, SIZE, 3)
    np.testing.assert_allclose(batched[0], singles[0], atol=1e-4)
    np.testing.assert_allclose(batched[1], singles[1], atol=1e-4)


def test_num_images_per_prompt_and_broadcasting(pipe):
    keep = keep_region()
    # Two prompts, one image and one mask for both, three images each.
    images = pipe(**get_dummy_inputs(prompt=["a", "b"], num_images_per_prompt=3)).images
    assert images.shape == (6, SIZE, SIZE, 3)
    for image in images:
        np.testing.assert_array_equal((image[keep] * 255).round(), dummy_image_array(0)[keep])
    # One prompt for two images (one mask for both), two images each: outputs follow the input order.
    sources = [dummy_image_array(5), dummy_image_array(6)]
    images = pipe(**get_dummy_inputs(image=np.stack(sources), num_images_per_prompt=2, output_type="pil")).images
    assert len(images) == 4
    for k, image in enumerate(images):
        np.testing.assert_array_equal(np.asarray(image)[keep], sources[k // 2][keep])


def test_mask_formats_and_convention(pipe):
    mask = dummy_mask_array()
    as_float = mask.astype(np.float32) / 255.0
    reference = pipe(**get_dummy_inputs()).images  # PIL "L"
    formats = {
        "PIL RGB": PIL.Image.fromarray(mask).convert("RGB"),
        "PIL 1": PIL.Image.fromarray(mask).convert("1"),
        "numpy HW float": as_float,
        "numpy HW uint8": mask,
        "numpy HW bool": mask > 0,
        "numpy HWC RGB": np.repeat(as_float[:, :, None], 3, axis=2),
        "numpy NHWC": as_float[None, :, :, None],
        "torch HW": torch.from_numpy(as_float),
        "torch 1HW": torch.from_numpy(as_float)[None],
        "torch 3HW (RGB)": torch.from_numpy(as_float)[None].repeat(3, 1, 1),
        "torch N1HW": torch.from_numpy(as_float)[None, None],
        "list of PIL": [PIL.Image.fromarray(mask)],
        "soft edges, binarised at 0.5": np.where(mask > 0, 0.6, 0.4).astype(np.float32),
    }
    for name, mask_image in formats.items():
        images = pipe(**get_dummy_inputs(mask_image=mask_image)).images
        np.testing.assert_array_equal(images, reference, err_msg=name)
    # The convention is diffusers': the inverted mask (GLIDE's 1 = keep) repaints the other region.
    inverted = pipe(**get_dummy_inputs(mask_image=PIL.Image.fromarray(255 - mask))).images[0]
    hole = ~keep_region()
    np.testing.assert_array_equal((inverted[hole] * 255).round(), dummy_image_array()[hole])
    assert np.abs(inverted - reference[0]).max() > 0.1


def test_mask_with_nothing_to_repaint_is_an_error(pipe):
    # A uint8 mask of 0 and 1 is read in 0..255 (1 / 255 < 0.5): it keeps everything, which is refused.
    message = (
        r"`mask_image` 0 has nothing to repaint at the model's 16x16: it is all black \(keep\), or its white region "
        r"vanished when it was resized from 16x16\. White / 1 marks the pixels to repaint \(uint8 masks are read in "
        r"0\.\.255, so 1 is nearly black\)\."
    )
    with pytest.raises(ValueError, match=message):
        pipe(**get_dummy_inputs(mask_image=(dummy_mask_array() > 0).astype(np.uint8)))
    # A white region smaller than a model pixel vanishes in the nearest-neighbour resize: the same rule.
    big = np.zeros((4 * SIZE, 4 * SIZE), np.uint8)
    big[0, 0] = 255
    with pytest.raises(ValueError, match=r"`mask_image` 1 has nothing to repaint .* resized from 64x64"):
        pipe(**get_dummy_inputs(prompt=["a", "b"], mask_image=[dummy_mask_array(), big]))


def test_image_formats_give_the_same_result(pipe):
    source = dummy_image_array()
    reference = pipe(**get_dummy_inputs()).images  # PIL RGB
    formats = {
        "numpy HWC uint8": source,
        "numpy HWC float": source.astype(np.float32) / 255.0,
        "numpy NHWC float": source[None].astype(np.float32) / 255.0,
        "torch CHW": torch.from_numpy(source).permute(2, 0, 1).float() / 255.0,
        "torch NCHW": torch.from_numpy(source).permute(2, 0, 1)[None].float() / 255.0,
        "PIL RGBA": PIL.Image.fromarray(source).convert("RGBA"),
    }
    for name, image in formats.items():
        images = pipe(**get_dummy_inputs(image=image)).images
        np.testing.assert_allclose(images, reference, atol=1e-5, err_msg=name)


def test_larger_image_and_mask_are_resized(pipe):
    big = 3 * SIZE
    rng = np.random.default_rng(7)
    # A pixel-level random mask: resized with nearest-neighbour, output pixel (i, j) takes the input pixel at the
    # centre of its 3x3 block, (3i + 1, 3j + 1).
    mask = (rng.random((big, big)) > 0.5).astype(np.uint8) * 255
    expected_repaint = torch.from_numpy(mask[1::3, 1::3] > 0).float()[None, None]
    for mask_image in (
        PIL.Image.fromarray(mask),
        mask,
        torch.from_numpy(mask.astype(np.float32) / 255.0),
    ):
        repaint, sizes = pipe.image_processor.read_masks(mask_image, "mask_image", SIZE)
        assert sizes == [(big, big)]
        assert torch.equal(repaint, expected_repaint), type(mask_image).__name__
    # A soft (gray-level) mask at a non-integer scale still gives a binary mask.
    soft = np.tile(np.linspace(0, 255, 40).round().astype(np.uint8), (40, 1))
    for mask_image in (PIL.Image.fromarray(soft), soft, torch.from_numpy(soft)):
        repaint, _ = pipe.image_processor.read_masks(mask_image, "mask_image", SIZE)
        assert repaint.shape == (1, 1, SIZE, SIZE) and set(repaint.unique().tolist()) == {0.0, 1.0}

    # The image is resized with PIL's bicubic filter (as OpenAI's notebook); the kept pixels of the output are
    # those of the resized image.
    source = PIL.Image.fromarray(dummy_image_array(3, size=big))
    resized = np.array(source.resize((SIZE, SIZE), PIL.Image.BICUBIC))
    mask_image = PIL.Image.fromarray(dummy_mask_array(big))
    output = np.asarray(pipe(**get_dummy_inputs(image=source, mask_image=mask_image, output_type="pil")).images[0])
    keep = keep_region()
    np.testing.assert_array_equal(output[keep], resized[keep])
    # Tensors are resized with torch's antialiased bicubic, PIL's kernel: the same up to uint8 rounding.
    as_tensor = torch.from_numpy(np.array(source)).permute(2, 0, 1).float() / 255.0
    pixels, sizes = pipe.image_processor.read_images(as_tensor, "image", size=SIZE)
    assert sizes == [(big, big)] and pixels.shape == (1, 3, SIZE, SIZE)
    expected = torch.from_numpy(resized).permute(2, 0, 1).float()[None] / 127.5 - 1
    assert max_abs_diff(pixels, expected) <= 2.5 / 127.5


def test_non_square_image_is_stretched_with_a_warning(pipe, caplog):
    image = PIL.Image.fromarray(dummy_image_array(size=2 * SIZE)[:SIZE])  # 16 x 32 (height x width)
    mask = PIL.Image.new("L", (SIZE, SIZE // 2))  # 8 x 16: the image's aspect ratio
    mask.paste(255, (SIZE // 2, 0, SIZE, SIZE // 2))  # repaint the right half
    with caplog.at_level(logging.WARNING):
        output = pipe(**get_dummy_inputs(image=image, mask_image=mask, output_type="pil")).images[0]
    assert "is not square: it is stretched to 16x16" in caplog.text
    stretched = np.asarray(image.resize((SIZE, SIZE), PIL.Image.BICUBIC))
    np.testing.assert_array_equal(np.asarray(output)[:, : SIZE // 2], stretched[:, : SIZE // 2])


def test_callback_sees_and_changes_latents(pipe):
    seen = []

    def record(pipeline, step, timestep, tensors):
        seen.append((step, int(timestep), tuple(tensors["latents"].shape)))
        return {}

    pipe(**get_dummy_inputs(), callback_on_step_end=record, callback_on_step_end_tensor_inputs=["latents"])
    assert seen == [(i, t, (1, 3, SIZE, SIZE)) for i, t in enumerate([999, 666, 333, 0])]

    def zero_at_the_end(pipeline, step, timestep, tensors):
        return {"latents": torch.zeros_like(tensors["latents"])} if step == 3 else {}

    images = pipe(
        **get_dummy_inputs(), callback_on_step_end=zero_at_the_end, callback_on_step_end_tensor_inputs=["latents"]
    ).images
    np.testing.assert_allclose(images, 0.5, atol=1e-6)  # latents 0 -> gray, the callback has the last word


def test_save_load_round_trip(pipe, tmp_path):
    expected = pipe(**get_dummy_inputs()).images
    pipe.save_pretrained(tmp_path)
    reloaded = GlideInpaintPipeline.from_pretrained(tmp_path)
    reloaded.set_progress_bar_config(disable=True)
    assert isinstance(reloaded.scheduler, GlideScheduler)
    np.testing.assert_array_equal(reloaded(**get_dummy_inputs()).images, expected)


def test_diffusers_ddim_scheduler_keeps_the_known_region(pipe):
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    images = pipe(**get_dummy_inputs(num_inference_steps=5, output_type="pt")).images
    assert images.shape == (1, 3, SIZE, SIZE) and torch.isfinite(images).all()
    keep = torch.from_numpy(keep_region())
    expected = torch.from_numpy(dummy_image_array()).permute(2, 0, 1).float() / 255.0
    torch.testing.assert_close(images[0][:, keep], expected[:, keep], atol=1e-6, rtol=0)


def test_bad_inputs(pipe):
    with pytest.raises(ValueError, match="empty list"):
        pipe(**get_dummy_inputs(prompt=[]))
    with pytest.raises(ValueError, match="`image` is required"):
        pipe(**get_dummy_inputs(image=None))
    with pytest.raises(ValueError, match="`mask_image` is required"):
        pipe(**get_dummy_inputs(mask_image=None))
    with pytest.raises(ValueError, match="`image` is an empty list"):
        pipe(**get_dummy_inputs(image=[]))
    # Mask and image must have the same aspect ratio (any resolution).
    with pytest.raises(ValueError, match=r"`mask_image` of size 16x8 \(height x width\) is not matching the image"):
        pipe(**get_dummy_inputs(mask_image=PIL.Image.new("L", (8, 16))))
    with pytest.raises(ValueError, match="not matching the image 0 of size 16x16"):
        pipe(**get_dummy_inputs(mask_image=torch.zeros(1, 1, 20, 30)))
    # Channels
    with pytest.raises(ValueError, match=r"`image` must be one RGB image or a batch of them"):
        pipe(**get_dummy_inputs(image=torch.rand(4, SIZE, SIZE)))
    with pytest.raises(ValueError, match=r"`image` must be one RGB image or a batch of them"):
        pipe(**get_dummy_inputs(image=np.random.rand(SIZE, SIZE, 1).astype(np.float32)))
    with pytest.raises(ValueError, match=r"one RGB image or a batch of them, got shape \(16, 16\)"):
        pipe(**get_dummy_inputs(image=torch.rand(SIZE, SIZE)))
    with pytest.raises(
        ValueError, match=r"`mask_image` must be a single-channel or RGB mask, got an array of shape \(1, 2"
    ):
        pipe(**get_dummy_inputs(mask_image=torch.zeros(1, 2, SIZE, SIZE)))
    with pytest.raises(ValueError, match=r"`image` values must be floats in \[0, 1\].*got floats in \[0, 255\]"):
        pipe(**get_dummy_inputs(image=dummy_image_array().astype(np.float32)))
    with pytest.raises(TypeError, match="must be PIL images, numpy arrays or torch tensors"):
        pipe(**get_dummy_inputs(mask_image="mask.png"))
    # Batch sizes
    with pytest.raises(ValueError, match="`image` has 2 images but `mask_image` has 3 masks"):
        pipe(**get_dummy_inputs(image=torch.rand(2, 3, SIZE, SIZE), mask_image=torch.zeros(3, 1, SIZE, SIZE)))
    with pytest.raises(ValueError, match="Got 2 images to inpaint .* for 3 prompts"):
        pipe(**get_dummy_inputs(prompt=["a", "b", "c"], image=torch.rand(2, 3, SIZE, SIZE)))
    with pytest.raises(ValueError, match="2 generators for a batch of 1"):
        pipe(**get_dummy_inputs(generator=[torch.Generator(), torch.Generator()]))
    # Wrong UNet
    for overrides, match in (
        (
            {"inpainting": False},
            "GlideInpaintPipeline cannot run this UNet: it is a GLIDE 'base' model .*; use GlidePipeline",
        ),
        ({"super_resolution": True}, "it is a GLIDE 'upsample-inpaint' model .*; use GlideUpsamplePipeline"),
    ):
        components = get_dummy_components()
        components["unet"] = tiny_unet(SIZE, **{"inpainting": True, **overrides})
        with pytest.raises(ValueError, match=match):
            GlideInpaintPipeline(**components)
