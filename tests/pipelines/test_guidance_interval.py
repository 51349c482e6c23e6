"""`guidance_interval`: classifier-free guidance at the steps whose timestep lies in (low, high) only."""

import logging

import pytest
import torch

from diffusers_glide import GlideImg2ImgPipeline, GlidePipeline
from diffusers_glide.embedded import embedded_model_path
from diffusers_glide.pipelines.guidance_interval import check_guidance_interval, guided_steps

PROMPTS = ["a red circle on a blue background", "a green square on a white background"]
STEPS = "6"  # GLIDE respacing of the embedded model's 1000 steps: 999, 799, 599, 400, 200, 0


@pytest.fixture(scope="module")
def pipe():
    pipe = GlidePipeline.from_pretrained(embedded_model_path("base"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _sample(pipe, **kwargs):
    generator = torch.Generator().manual_seed(0)
    kwargs.setdefault("guidance_scale", 3.0)
    return pipe(PROMPTS, respacing=STEPS, generator=generator, output_type="pt", **kwargs).images


class _UNetBatchSizes:
    """Records the batch size of every UNet forward."""

    def __init__(self, unet):
        self.sizes = []
        self._handle = unet.register_forward_pre_hook(lambda module, args: self.sizes.append(args[0].shape[0]))

    def close(self):
        self._handle.remove()


def test_timesteps_of_the_respacing(pipe):
    _sample(pipe)
    assert pipe.scheduler.timesteps.tolist() == [999, 799, 599, 400, 200, 0]


def test_an_interval_holding_every_step_is_full_guidance(pipe):
    full = _sample(pipe)
    assert torch.equal(_sample(pipe, guidance_interval=(0, 999)), full)
    assert not torch.equal(full, _sample(pipe, guidance_scale=1.0))  # guidance does change these images


def test_an_interval_holding_no_step_is_no_guidance_and_warns(pipe, caplog):
    unguided = _sample(pipe, guidance_scale=1.0)
    with caplog.at_level(logging.WARNING):
        images = _sample(pipe, guidance_interval=(1, 199))
    assert torch.equal(images, unguided)
    assert "guidance_interval=(1.0, 199.0) holds none of the 6 sampling timesteps (999 to 0): no step is guided" in (
        caplog.text
    )


def test_guidance_stops_below_the_interval(pipe):
    # guidance at 999, 799 and 599 only: the same as switching guidance off with a callback after the third step
    def stop_guidance_after_third_step(pipe, step, timestep, callback_kwargs):
        if step == 2:
            pipe._guidance_scale = 1.0
        return callback_kwargs

    expected = _sample(pipe, callback_on_step_end=stop_guidance_after_third_step)
    sizes = _UNetBatchSizes(pipe.unet)
    try:
        images = _sample(pipe, guidance_interval=(500, 999))
    finally:
        sizes.close()
    assert torch.equal(images, expected)
    assert sizes.sizes == [4, 4, 4, 2, 2, 2]  # guided steps run the conditional and unconditional rows


def test_guidance_in_a_middle_interval_runs_half_batches_outside_it(pipe):
    sizes = _UNetBatchSizes(pipe.unet)
    try:
        images = _sample(pipe, guidance_interval=(200, 600))
    finally:
        sizes.close()
    assert sizes.sizes == [2, 2, 4, 4, 4, 2]
    assert images.shape == (2, 3, 32, 32)
    assert not torch.equal(images, _sample(pipe))
    assert not torch.equal(images, _sample(pipe, guidance_scale=1.0))


def test_img2img_takes_the_interval(pipe):
    img2img = GlideImg2ImgPipeline.from_pipe(pipe)
    image = torch.full((2, 3, 32, 32), 0.5)
    generator = torch.Generator().manual_seed(0)
    kwargs = {"image": image, "respacing": STEPS, "strength": 1.0, "output_type": "pt", "guidance_scale": 3.0}
    full = img2img(PROMPTS, generator=generator, **kwargs).images
    generator = torch.Generator().manual_seed(0)
    everywhere = img2img(PROMPTS, generator=generator, guidance_interval=(0, 999), **kwargs).images
    generator = torch.Generator().manual_seed(0)
    limited = img2img(PROMPTS, generator=generator, guidance_interval=(500, 999), **kwargs).images
    assert torch.equal(everywhere, full)
    assert not torch.equal(limited, full)


@pytest.mark.parametrize(
    ("interval", "error", "message"),
    [
        (
            (500,),
            ValueError,
            "`guidance_interval` must be a (low, high) pair of timesteps in [0, 999] or None, got (500,).",
        ),
        (
            "0,999",
            ValueError,
            "`guidance_interval` must be a (low, high) pair of timesteps in [0, 999] or None, got '0,999'.",
        ),
        ((0, "999"), TypeError, "`guidance_interval` high end must be a number, got str '999'."),
        ((True, 999), TypeError, "`guidance_interval` low end must be a number, got bool True."),
        ((-1, 999), ValueError, "`guidance_interval[0]` must be >= 0, got -1."),
        ((0, float("nan")), ValueError, "`guidance_interval[1]` must be a finite number, got nan."),
        ((600, 200), ValueError, "`guidance_interval` must be (low, high) with low <= high, got (600, 200)."),
    ],
)
def test_bad_intervals(pipe, interval, error, message):
    with pytest.raises(error) as raised:
        _sample(pipe, guidance_interval=interval)
    assert str(raised.value) == message


def test_guided_steps():
    timesteps = torch.tensor([999, 750, 500, 250, 0])
    assert guided_steps(timesteps, None) == [True] * 5
    assert guided_steps(timesteps, (250, 750)) == [False, True, True, True, False]
    assert check_guidance_interval([100, 800.5], 1000) == (100.0, 800.5)
    assert check_guidance_interval(None, 1000) is None
