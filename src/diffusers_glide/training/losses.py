"""GLIDE's training objective: improved DDPM's "hybrid" loss for a model with learned-range variance.

loss = MSE(epsilon) + vb_weight * L_vb

* MSE(epsilon): mean squared error of the predicted noise (the first half of the model output). For a model
  predicting x0 (`prediction_type="sample"` in its scheduler config) it is the mean squared error of x0.
* L_vb: the variational-bound term of the sampled timestep in bits per dimension, computed with the
  predicted epsilon *detached* so it only trains the variance channels (improved DDPM, Nichol & Dhariwal
  2021, section 3.1): KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) for t > 0 and the discretised Gaussian
  decoder NLL of x_0 for t = 0. The variance is the same interpolation GLIDE samples with:
  log var = frac * log(beta_t) + (1 - frac) * log(posterior variance), frac = (v + 1) / 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..schedulers.forward_process import ForwardProcess


@dataclass
class DiffusionLossOutput:
    """The loss terms, each of shape `(batch,)` (mean over pixels)."""

    loss: torch.Tensor
    mse: torch.Tensor
    vb: torch.Tensor


def _normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_standard_normal_cdf(x):
    # The tanh approximation used by improved DDPM / GLIDE for the decoder likelihood.
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """Log-likelihood of 8-bit images `x` (in [-1, 1]) under a Gaussian discretised to 256 bins."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(
        x < -0.999,
        log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))),
    )


SNR_FLOOR_MAX_WEIGHT = 100.0  # the last steps' SNR falls to ~1e-9: their weight stops growing here


class GlideDiffusionLoss:
    """
    Forward process and hybrid loss over the ORIGINAL (un-respaced) timesteps of a GLIDE scheduler config.

    Args:
        num_train_timesteps (`int`, *optional*, defaults to 1000): Length of the forward process.
        beta_schedule (`str`, *optional*, defaults to `"squaredcos_cap_v2"`): `"squaredcos_cap_v2"` or `"linear"`.
        beta_start, beta_end (`float`, *optional*): Linear schedule bounds (for 1000 steps).
        vb_weight (`float`, *optional*, defaults to 1.0): Weight of the variational-bound term; 0 trains only
            epsilon (the variance channels then stay untrained).
        prediction_type (`str`, *optional*, defaults to `"epsilon"`): What the model's first half predicts:
            `"epsilon"` (GLIDE) or `"sample"` (x0), as in the scheduler config.

    Build it from a pipeline's scheduler with [`GlideDiffusionLoss.from_scheduler_config`], so training and
    sampling use the same betas.
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "squaredcos_cap_v2",
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        vb_weight: float = 1.0,
        prediction_type: str = "epsilon",
        snr_floor: float = 0.0,
    ):
        if prediction_type not in ("epsilon", "sample"):
            raise ValueError(f"`prediction_type` must be 'epsilon' or 'sample', got {prediction_type!r}.")
        self.prediction_type = prediction_type
        # The class GlideScheduler.add_noise uses too: one home for the forward-process tables and `add_noise`.
        self.process = ForwardProcess.from_schedule(beta_schedule, num_train_timesteps, beta_start, beta_end)
        self.num_train_timesteps = num_train_timesteps
        self.vb_weight = vb_weight
        self.snr_floor = snr_floor

    @classmethod
    def from_scheduler_config(cls, config, vb_weight: float = 1.0, snr_floor: float = 0.0) -> GlideDiffusionLoss:
        """From a `GlideScheduler` (or compatible diffusers scheduler) config."""
        if config.get("variance_type", "learned_range") != "learned_range":
            raise ValueError(
                f"The hybrid loss trains GLIDE's learned-range variance, but the scheduler has "
                f"variance_type={config.get('variance_type')!r}."
            )
        return cls(
            prediction_type=config.get("prediction_type", "epsilon"),
            num_train_timesteps=config.get("num_train_timesteps", 1000),
            beta_schedule=config.get("beta_schedule", "squaredcos_cap_v2"),
            beta_start=config.get("beta_start", 0.0001),
            beta_end=config.get("beta_end", 0.02),
            vb_weight=vb_weight,
            snr_floor=snr_floor,
        )

    def snr_floor_weights(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Per-sample weights of the epsilon loss, max(1, snr_floor / SNR(t)) capped at SNR_FLOOR_MAX_WEIGHT.

        The epsilon loss weighs an error of the predicted image by SNR(t), almost nothing at the noisiest steps,
        where x_t no longer shows where things are and only the text can say it: with a floor, those steps weigh
        at least `snr_floor` (in image terms) and a small model learns layout from the text (the mirror image of
        min-SNR weighting, which caps the weight of the easy, nearly clean steps)."""
        alphas_cumprod = self._gather("alphas_cumprod", timesteps, torch.empty(len(timesteps))).double()
        snr = alphas_cumprod / (1 - alphas_cumprod)
        return (self.snr_floor / snr).clamp(1.0, SNR_FLOOR_MAX_WEIGHT).float()

    def _gather(self, name: str, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.process.gather(name, timesteps, like)

    def sample_timesteps(
        self,
        batch_size: int,
        device,
        generator: torch.Generator | None = None,
        bias_portion: float = 0.0,
        bias_multiplier: float = 1.0,
    ) -> torch.Tensor:
        """Training timesteps: uniform, or with the noisiest `bias_portion` of the schedule drawn `bias_multiplier`
        times as often (diffusers' "later" timestep bias). Those steps decide an image's layout, but the epsilon
        loss barely weighs them: the image itself shows where things are at every other step."""
        if bias_portion <= 0 or bias_multiplier == 1:
            return torch.randint(0, self.num_train_timesteps, (batch_size,), generator=generator).to(device)
        weights = torch.ones(self.num_train_timesteps)
        weights[self.num_train_timesteps - round(bias_portion * self.num_train_timesteps) :] = bias_multiplier
        return torch.multinomial(weights, batch_size, replacement=True, generator=generator).to(device)

    def add_noise(self, x_start: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise, as `GlideScheduler.add_noise` computes it."""
        return self.process.add_noise(x_start, noise, timesteps)

    def posterior_mean(self, x_start, x_t, timesteps):
        return (
            self._gather("posterior_mean_coef1", timesteps, x_t) * x_start
            + self._gather("posterior_mean_coef2", timesteps, x_t) * x_t
        )

    def model_log_variance(self, variance_values: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """GLIDE's learned range: interpolate between log(posterior variance) and log(beta_t)."""
        min_log = self._gather("posterior_log_variance_clipped", timesteps, variance_values)
        max_log = self._gather("log_betas", timesteps, variance_values)
        frac = (variance_values + 1) / 2
        return frac * max_log + (1 - frac) * min_log

    def predicted_x_start(self, prediction: torch.Tensor, x_t: torch.Tensor, timesteps) -> torch.Tensor:
        """x0 from the first half of the model output (epsilon, or x0 itself for `prediction_type="sample"`)."""
        if self.prediction_type == "sample":
            return prediction
        return (
            self._gather("sqrt_recip_alphas_cumprod", timesteps, x_t) * x_t
            - self._gather("sqrt_recipm1_alphas_cumprod", timesteps, x_t) * prediction
        )

    def vb_terms_bpd(self, prediction, variance_values, x_start, x_t, timesteps) -> torch.Tensor:
        """The variational-bound term of each sample, in bits per dimension, shape `(batch,)`."""
        pred_x_start = self.predicted_x_start(prediction, x_t, timesteps)
        model_mean = self.posterior_mean(pred_x_start, x_t, timesteps)
        model_log_variance = self.model_log_variance(variance_values, timesteps)
        true_mean = self.posterior_mean(x_start, x_t, timesteps)
        true_log_variance = self._gather("posterior_log_variance_clipped", timesteps, x_t)

        kl = _normal_kl(true_mean, true_log_variance, model_mean, model_log_variance)
        kl = kl.flatten(1).mean(1) / math.log(2.0)
        decoder_nll = -discretized_gaussian_log_likelihood(x_start, model_mean, 0.5 * model_log_variance)
        decoder_nll = decoder_nll.flatten(1).mean(1) / math.log(2.0)
        return torch.where(timesteps == 0, decoder_nll, kl)

    def __call__(
        self, model_output: torch.Tensor, x_start: torch.Tensor, x_t: torch.Tensor, noise: torch.Tensor, timesteps
    ) -> DiffusionLossOutput:
        """
        Args:
            model_output (`torch.Tensor` of shape `(batch, 2 * C, H, W)`): epsilon and the variance values.
            x_start (`torch.Tensor` of shape `(batch, C, H, W)`): the clean images in [-1, 1].
            x_t (`torch.Tensor`): `add_noise(x_start, noise, timesteps)`.
            noise (`torch.Tensor`): the noise that was added.
            timesteps (`torch.LongTensor` of shape `(batch,)`): original timesteps.
        """
        channels = x_start.shape[1]
        if model_output.shape[1] != 2 * channels:
            raise ValueError(
                f"The hybrid loss needs a model predicting epsilon and the variance ({2 * channels} channels), got "
                f"{model_output.shape[1]} channels."
            )
        model_output = model_output.float()
        prediction, variance_values = model_output[:, :channels], model_output[:, channels:]
        target = x_start.float() if self.prediction_type == "sample" else noise
        mse = (prediction - target).square().flatten(1).mean(1)
        if self.snr_floor and self.prediction_type == "epsilon":
            mse = mse * self.snr_floor_weights(timesteps)
        if self.vb_weight:
            vb = self.vb_terms_bpd(prediction.detach(), variance_values, x_start.float(), x_t.float(), timesteps)
        else:
            vb = torch.zeros_like(mse)
        return DiffusionLossOutput(loss=mse + self.vb_weight * vb, mse=mse, vb=vb)
