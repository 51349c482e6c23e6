"""GLIDE's original (un-respaced) diffusion process as torch tables: the one home of `add_noise`.

[`GlideScheduler.add_noise`] and the training loss ([`GlideDiffusionLoss`]) both use [`ForwardProcess`], so training
noises, and trains the posterior of, exactly the process the scheduler samples.
"""

import numpy as np
import torch

from .respacing import DiffusionProcess, compute_process, get_beta_schedule


class ForwardProcess:
    """
    The float64 tables of the original process (see [`compute_process`]), looked up at original timesteps.

    Args:
        betas (`np.ndarray`): The betas of the original process, shape `(num_train_timesteps,)`.
    """

    def __init__(self, betas: np.ndarray):
        self.process: DiffusionProcess = compute_process(betas)
        self.num_train_timesteps = len(self.process.betas)
        self._tables = {name: torch.from_numpy(values) for name, values in self.process.to_dict().items()}

    @classmethod
    def from_schedule(
        cls, beta_schedule: str, num_train_timesteps: int, beta_start: float = 0.0001, beta_end: float = 0.02
    ) -> "ForwardProcess":
        """The process of a schedule name (see [`get_beta_schedule`])."""
        return cls(get_beta_schedule(beta_schedule, num_train_timesteps, beta_start, beta_end))

    def gather(self, name: str, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """
        `name[timesteps]`, looked up in float64 and cast to the compute dtype of `like` (float64 for float64, float32
        otherwise, as the reference does), shaped `(batch, 1, ...)` to broadcast over `like`.
        """
        table = self._tables[name]
        if table.device != timesteps.device:
            # Moved once and kept there, like diffusers' schedulers do with `alphas_cumprod`.
            table = self._tables[name] = table.to(timesteps.device)
        dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
        return table[timesteps].to(dtype).reshape(-1, *([1] * (like.ndim - 1)))

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps) -> torch.Tensor:
        """
        `x_t = sqrt(alphas_cumprod[t]) * x_0 + sqrt(1 - alphas_cumprod[t]) * noise`, computed in float32 (float64 for
        float64 samples) and returned in the dtype of `original_samples`.

        Args:
            original_samples (`torch.Tensor`): Clean samples x0, batch first.
            noise (`torch.Tensor`): Standard normal noise shaped like `original_samples`.
            timesteps (`torch.Tensor`, `list[int]` or `int`):
                One original timestep in `[0, num_train_timesteps)` per sample, or a single one for all.
        """
        timesteps = torch.as_tensor(timesteps)
        # Timesteps on the CPU are checked (reading them is free); on an accelerator the read would synchronise
        # every training step, and the timesteps there come from `sample_timesteps`.
        if timesteps.device.type == "cpu" and timesteps.numel():
            if timesteps.min() < 0 or timesteps.max() >= self.num_train_timesteps:
                raise ValueError(
                    f"`timesteps` must be original timesteps in [0, {self.num_train_timesteps}), got "
                    f"{timesteps.tolist()}."
                )
        device = original_samples.device
        timesteps = timesteps.to(device=device, dtype=torch.int64).reshape(-1)
        dtype = torch.float64 if original_samples.dtype == torch.float64 else torch.float32
        noisy = self.gather("sqrt_alphas_cumprod", timesteps, original_samples) * original_samples.to(dtype)
        noisy = noisy + self.gather("sqrt_one_minus_alphas_cumprod", timesteps, original_samples) * noise.to(
            device=device, dtype=dtype
        )
        return noisy.to(original_samples.dtype)
