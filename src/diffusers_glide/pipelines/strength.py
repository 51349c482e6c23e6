"""SDEdit's `strength`: where on the sampling schedule an image-to-image call starts, and the noised image it starts
from. The cut is diffusers' img2img rule (`StableDiffusionImg2ImgPipeline.get_timesteps`), so `strength` means the
same here as in every diffusers pipeline."""

import torch

from .checks import check_number


def check_strength(strength) -> float:
    """`strength` must be a finite number in (0, 1]."""
    check_number(strength, "strength", minimum=0, maximum=1)
    if strength == 0:
        raise ValueError(
            "`strength` must be in (0, 1], got 0: strength 0 runs no denoising step (the image would come back as "
            "it went in)."
        )
    return float(strength)


def strength_timesteps(scheduler, timesteps: torch.Tensor, strength: float) -> torch.Tensor:
    """
    The timesteps an image-to-image call runs: of the `N` inference steps set on `scheduler` (its
    `num_inference_steps`), the last `min(int(N * strength), N)`, with `scheduler.order` timesteps per step. The
    scheduler's `set_begin_index` is called where it has one (DPM-Solver and the other multistep schedulers
    count steps from it, and `add_noise` reads it).
    """
    num_steps = getattr(scheduler, "num_inference_steps", None) or len(timesteps)
    kept_steps = min(int(num_steps * strength), num_steps)
    if kept_steps < 1:
        raise ValueError(
            f"`strength`={strength} of {num_steps} inference steps leaves no step to run (int({num_steps} * "
            f"{strength}) = 0): raise `strength` to at least {1 / num_steps:.3g} or use more steps."
        )
    begin = (num_steps - kept_steps) * getattr(scheduler, "order", 1)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return timesteps[begin:]


def noised_start(scheduler, image: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, full: bool):
    """
    The sample the loop starts from: `image` noised to the first of `timesteps` with `scheduler.add_noise`, or,
    when the whole schedule runs (`full`, i.e. strength 1), `noise` alone, as text-to-image starts. (diffusers
    noises the image at strength 1 too, but at the first timestep of GLIDE's schedules `sqrt(alphas_cumprod)` is
    about 5e-5, below 8-bit precision, so the image adds nothing but a difference from text-to-image.)
    """
    if full:
        return noise
    start = timesteps[:1].repeat(image.shape[0])
    return scheduler.add_noise(image.to(noise.dtype), noise, start)
