"""GLIDE's sampler as a diffusers scheduler: respaced ancestral (DDPM) or DDIM steps with learned-range variance.

GLIDE models predict epsilon and, in a second set of channels, where the variance lies between the respaced
beta and the posterior variance. [`GlideScheduler`] walks the respaced process GLIDE samples with (see
`respacing.py`), reproducing OpenAI's `p_sample` / `ddim_sample` updates, including the two hooks the GLIDE
notebooks use: an x0 post-processing function (inpainting) and a guidance gradient (CLIP guidance).
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, FrozenDict, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from ..config_limits import MAX_SOLVER_ORDER, MAX_TRAIN_TIMESTEPS
from .forward_process import ForwardProcess
from .respacing import BETA_SCHEDULES, DiffusionProcess, compute_respaced_process, space_timesteps

SAMPLERS = ("ddpm", "ddim")

# Per-step float64 values `step()` reads, precomputed by `set_timesteps` (one row per respaced step).
_STEP_VALUES = (
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "log_beta",
    "posterior_log_variance_clipped",
    "sqrt_one_minus_alphas_cumprod",
    "sqrt_alphas_cumprod_prev",
    "one_minus_alphas_cumprod_prev",
    "ddim_sigma_per_eta",
)


PREDICTION_TYPES = ("epsilon", "sample")


def _check_integer(key: str, value, minimum: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValueError(f"`{key}` must be an integer in [{minimum}, {maximum}], got {value!r}.")


def check_scheduler_config(config: Mapping) -> None:
    """
    Refuses a scheduler config whose sizes no GLIDE model could have, before any scheduler is built from it.

    It applies to every scheduler a GLIDE pipeline builds from a config: [`GlideScheduler`], and the diffusers
    schedulers it declares compatible (`from_config`, or a pipeline folder saved with one of them), whose constructors
    allocate tables of `num_train_timesteps` entries and lists of `solver_order` entries.

    Args:
        config (`Mapping`): A scheduler config (a `scheduler_config.json`'s content or a scheduler's `config`).
    """
    if "num_train_timesteps" in config:
        _check_integer("num_train_timesteps", config["num_train_timesteps"], 2, MAX_TRAIN_TIMESTEPS)
    if "solver_order" in config:
        _check_integer("solver_order", config["solver_order"], 1, MAX_SOLVER_ORDER)


@dataclass
class GlideSchedulerOutput(BaseOutput):
    """
    Output class for [`GlideScheduler.step`].

    Args:
        prev_sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`):
            The sample `x_{t-1}` at the previous respaced timestep, in the dtype of the input sample. Use it as the
            next model input in the denoising loop.
        pred_original_sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`):
            The predicted denoised sample `x_0` the step used (after `pred_original_sample_fn` and clipping; for
            DDIM with a guidance gradient, the guided x0).
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor | None = None


class GlideScheduler(SchedulerMixin, ConfigMixin):
    """
    The sampler of OpenAI's GLIDE: ancestral (DDPM) or DDIM steps on a respaced process with learned-range variance.

    It differs from diffusers' [`DDPMScheduler`] / [`DDIMScheduler`] in the ways GLIDE does:

    - **Respacing strings** choose the timesteps: `"100"` (100 evenly spaced steps including 0 and T-1),
      `"10,10,3,2,2"` (step counts per section of the process), `"ddimN"` (every i-th step from 0) or `"fast27"`,
      GLIDE's upsampler schedule, which is `"10,10,3,2,2"` with its first step at 997 instead of 999.
    - **The model gets original timesteps.** `timesteps` (and the `timestep` passed to `step`) are original
      indices in `[0, num_train_timesteps)`; the update itself uses the *respaced* process, whose betas are
      recomputed from the original cumulative alphas at the kept steps (not the original betas).
    - **Learned-range variance on the respaced betas**: the model output has twice the sample's channels, epsilon
      then `v` in [-1, 1], and the log-variance is `frac * log(beta_i) + (1 - frac) * log(posterior_variance_i)`
      with `frac = (v + 1) / 2` and the respaced `beta_i`. DDIM ignores the variance channels.
    - The `"linear"` schedule is scaled by `1000 / num_train_timesteps` as in GLIDE (no change for 1000 steps) and
      all tables are float64, looked up and cast to float32 for each step, as in the reference.
    - `step` accepts GLIDE's two hooks: `pred_original_sample_fn` (e.g. inpainting, applied before clipping) and
      `guidance_gradient` (e.g. CLIP guidance, shifting the mean or the score).

    This model inherits from [`SchedulerMixin`] and [`ConfigMixin`]. Check the superclass documentation for the generic
    methods the library implements for all schedulers such as loading and saving.

    Args:
        num_train_timesteps (`int`, defaults to 1000):
            The number of diffusion steps the model was trained with.
        beta_schedule (`"squaredcos_cap_v2"` or `"linear"`, defaults to `"squaredcos_cap_v2"`):
            The noise schedule of the original process (GLIDE's base models use the cosine schedule, the upsamplers
            the linear one).
        beta_start (`float`, defaults to 0.0001):
            First beta of the `"linear"` schedule for 1000 steps; multiplied by `1000 / num_train_timesteps`.
        beta_end (`float`, defaults to 0.02):
            Last beta of the `"linear"` schedule for 1000 steps; multiplied by `1000 / num_train_timesteps`.
        variance_type (`str`, defaults to `"learned_range"`):
            Only `"learned_range"` is supported (GLIDE's models all learn their variance).
        clip_sample (`bool`, defaults to `True`):
            Whether to clip the predicted x0 to `[-clip_sample_range, clip_sample_range]`.
        clip_sample_range (`float`, defaults to 1.0):
            The clipping bound. Valid only when `clip_sample=True`.
        prediction_type (`str`, defaults to `"epsilon"`):
            What the first half of the model output is: `"epsilon"` (the noise, as every GLIDE model) or `"sample"`
            (x0 itself, e.g. the embedded upsampler: flat regions then need no precise noise prediction). The
            learned-range variance is the second half either way.
        timestep_respacing (`str`, defaults to `"100"`):
            The respacing [`~GlideScheduler.set_timesteps`] uses when given nothing else (see the list above).
        sampler (`"ddpm"` or `"ddim"`, defaults to `"ddpm"`):
            `"ddpm"` for GLIDE's ancestral `p_sample` steps, `"ddim"` for its `ddim_sample` steps.
        eta (`float`, defaults to 0.0):
            DDIM noise scale in `[0, 1]` (0 is deterministic DDIM). Only used by the `"ddim"` sampler.
        thresholding (`bool`, defaults to `True`), sample_max_value (`float`, defaults to 1.0),
        dynamic_thresholding_ratio (`float`, defaults to 0.995):
            Not used by this scheduler (it clips with `clip_sample`); they are here for the diffusers schedulers
            built with `from_config(glide_scheduler.config)`. DPM-Solver and UniPC ignore `clip_sample` and clip x0
            only through dynamic thresholding, which with `sample_max_value=1.0` is exactly GLIDE's clipping to
            [-1, 1]. Without it their few-step samples of GLIDE diverge (see `benchmarks/README.md`).
    """

    _compatibles = ["DDPMScheduler", "DDIMScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler"]
    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "squaredcos_cap_v2",
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        variance_type: str = "learned_range",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        prediction_type: str = "epsilon",
        timestep_respacing: str = "100",
        sampler: str = "ddpm",
        eta: float = 0.0,
        thresholding: bool = True,
        sample_max_value: float = 1.0,
        dynamic_thresholding_ratio: float = 0.995,
    ):
        _check_integer("num_train_timesteps", num_train_timesteps, 2, MAX_TRAIN_TIMESTEPS)
        if beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"`beta_schedule` must be one of {BETA_SCHEDULES}, got {beta_schedule!r}.")
        if beta_schedule == "linear":
            scale = 1000 / num_train_timesteps
            if not 0 < beta_start <= beta_end or scale * beta_end >= 1:
                raise ValueError(
                    "The linear schedule needs 0 < `beta_start` <= `beta_end` and `beta_end` * 1000 / "
                    f"`num_train_timesteps` < 1, got beta_start={beta_start!r}, beta_end={beta_end!r}, "
                    f"num_train_timesteps={num_train_timesteps}."
                )
        if variance_type != "learned_range":
            raise ValueError(
                f"`variance_type` must be 'learned_range', got {variance_type!r}: GlideScheduler only supports "
                "GLIDE's learned-range variance (the model outputs epsilon and a variance value)."
            )
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"`prediction_type` must be one of {PREDICTION_TYPES}, got {prediction_type!r}: GlideScheduler "
                "supports models predicting the noise (GLIDE's) or x0, with the learned-range variance."
            )
        if not isinstance(clip_sample, bool):
            raise ValueError(f"`clip_sample` must be True or False, got {clip_sample!r}.")
        if not clip_sample_range > 0:
            raise ValueError(f"`clip_sample_range` must be positive, got {clip_sample_range!r}.")
        if thresholding and sample_max_value != 1.0:
            raise ValueError(
                f"`sample_max_value` must be 1.0 with `thresholding=True` (dynamic thresholding then clips x0 to "
                f"[-1, 1] as GLIDE does), got {sample_max_value!r}."
            )
        if sampler not in SAMPLERS:
            raise ValueError(f"`sampler` must be one of {SAMPLERS}, got {sampler!r}.")
        self._check_eta(eta, "eta")
        # diffusers' `from_config` skips the keys listed in `_use_default_values`, so a DDPM/DDIM/DPM-Solver
        # scheduler built from this config would silently take ITS defaults (a linear schedule, fixed variance)
        # wherever GLIDE's defaults were used. Keep every value explicit.
        self._internal_dict = FrozenDict({k: v for k, v in self._internal_dict.items() if k != "_use_default_values"})

        # The original (un-respaced) process: `add_noise` (training) uses its float64 tables; the float32 copies
        # are those of DDPMScheduler, for code that reads them.
        self.forward_process = ForwardProcess.from_schedule(beta_schedule, num_train_timesteps, beta_start, beta_end)
        original = self.forward_process.process
        self.betas = torch.from_numpy(original.betas).float()
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.from_numpy(original.alphas_cumprod).float()

        self.init_noise_sigma = 1.0
        if not isinstance(timestep_respacing, str):
            raise ValueError(
                f"`timestep_respacing` must be a string such as '100', 'ddim50' or 'fast27', got {timestep_respacing!r}."
            )
        try:
            self.set_timesteps()
        except ValueError as error:
            raise ValueError(f"Invalid `timestep_respacing` {timestep_respacing!r}: {error}") from None

    @staticmethod
    def _check_eta(eta, name: str) -> None:
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
            raise ValueError(
                f"`{name}` must be a number in [0, 1] (0 = deterministic DDIM), got {eta!r}; larger values can make "
                "the DDIM update undefined."
            )

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    def scale_model_input(self, sample: torch.Tensor, timestep: int | None = None) -> torch.Tensor:
        """
        Returns `sample` unchanged (GLIDE's model input needs no scaling); present for interchangeability.

        Args:
            sample (`torch.Tensor`):
                The input sample.
            timestep (`int`, *optional*):
                Unused.

        Returns:
            `torch.Tensor`: the same sample.
        """
        return sample

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        timesteps: list[int] | torch.Tensor | None = None,
        respacing: str | None = None,
    ) -> torch.Tensor:
        """
        Choose the respaced process to sample with. Give at most one of `num_inference_steps`, `timesteps` and
        `respacing`; with none, the config's `timestep_respacing` is used.

        Args:
            num_inference_steps (`int`, *optional*):
                Number of steps `N`, the same as `respacing=str(N)`: N steps evenly spaced from 0 to
                `num_train_timesteps - 1`.
            device (`str` or `torch.device`, *optional*):
                The device to put `self.timesteps` on.
            timesteps (`list[int]` or `torch.Tensor`, *optional*):
                Explicit ORIGINAL timesteps to keep, in any order, unique, in `[0, num_train_timesteps)`, at least 2.
            respacing (`str`, *optional*):
                A GLIDE respacing string: `"100"`, `"10,10,3,2,2"`, `"ddim50"`, `"fast27"`, ...

        Returns:
            `torch.Tensor`: `self.timesteps`, the kept original timesteps in DESCENDING order (int64), i.e. the
            order the denoising loop visits them and the values the model is conditioned on.
        """
        total = self.config.num_train_timesteps
        given = [
            name
            for name, value in (
                ("num_inference_steps", num_inference_steps),
                ("timesteps", timesteps),
                ("respacing", respacing),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise ValueError(f"Pass only one of `num_inference_steps`, `timesteps` and `respacing`, got {given}.")

        if timesteps is not None:
            kept = self._check_custom_timesteps(timesteps)
            description = "custom timesteps"
        else:
            if num_inference_steps is not None:
                if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int):
                    raise ValueError(f"`num_inference_steps` must be an integer, got {num_inference_steps!r}.")
                if not 2 <= num_inference_steps <= total:
                    raise ValueError(
                        f"`num_inference_steps` must be between 2 and `num_train_timesteps` ({total}), got "
                        f"{num_inference_steps}."
                    )
                respacing = str(num_inference_steps)
            elif respacing is None:
                respacing = self.config.timestep_respacing
            kept = space_timesteps(total, respacing)
            description = f"respacing {respacing!r}"

        process = compute_respaced_process(self.forward_process.process.betas, kept)
        self.respaced_process: DiffusionProcess = process
        self.num_inference_steps = len(kept)
        self._schedule_description = description
        self._respaced_index = {int(t): i for i, t in enumerate(process.timestep_map)}
        self._step_values = self._precompute_step_values(process)
        self.timesteps = torch.from_numpy(process.timestep_map[::-1].copy()).to(device=device, dtype=torch.int64)
        return self.timesteps

    def _check_custom_timesteps(self, timesteps) -> list[int]:
        total = self.config.num_train_timesteps
        values = timesteps.tolist() if isinstance(timesteps, (torch.Tensor, np.ndarray)) else list(timesteps)
        if any(isinstance(t, bool) or not float(t).is_integer() for t in values):
            raise ValueError(f"`timesteps` must be integers, got {values}.")
        values = [int(t) for t in values]
        if len(values) < 2:
            raise ValueError(f"`timesteps` must hold at least 2 timesteps, got {values}.")
        if len(set(values)) != len(values):
            raise ValueError(f"`timesteps` must be unique, got {values}.")
        if min(values) < 0 or max(values) >= total:
            raise ValueError(f"`timesteps` must be original timesteps in [0, {total}), got {values}.")
        return sorted(values)

    @staticmethod
    def _precompute_step_values(process: DiffusionProcess) -> np.ndarray:
        abar, abar_prev = process.alphas_cumprod, process.alphas_cumprod_prev
        columns = {
            "sqrt_recip_alphas_cumprod": process.sqrt_recip_alphas_cumprod,
            "sqrt_recipm1_alphas_cumprod": process.sqrt_recipm1_alphas_cumprod,
            "posterior_mean_coef1": process.posterior_mean_coef1,
            "posterior_mean_coef2": process.posterior_mean_coef2,
            "log_beta": process.log_betas,
            "posterior_log_variance_clipped": process.posterior_log_variance_clipped,
            "sqrt_one_minus_alphas_cumprod": process.sqrt_one_minus_alphas_cumprod,
            "sqrt_alphas_cumprod_prev": np.sqrt(abar_prev),
            "one_minus_alphas_cumprod_prev": 1.0 - abar_prev,
            # DDIM's sigma for eta = 1.
            "ddim_sigma_per_eta": np.sqrt((1.0 - abar_prev) / (1.0 - abar)) * np.sqrt(1.0 - abar / abar_prev),
        }
        return np.stack([columns[name] for name in _STEP_VALUES], axis=1)

    def _index_for_timestep(self, timestep) -> int:
        if isinstance(timestep, torch.Tensor):
            if timestep.numel() != 1:
                raise ValueError(
                    f"`timestep` must be a single original timestep, got a tensor of shape {tuple(timestep.shape)}."
                )
            # The one value a step must read on the host: it picks the row of float64 step values and tells the
            # last step. Free for a CPU tensor; for an accelerator tensor it waits for the model output.
            timestep = timestep.item()
        if isinstance(timestep, bool) or not isinstance(timestep, (int, float, np.integer, np.floating)):
            raise ValueError(f"`timestep` must be an integer original timestep, got {timestep!r}.")
        if not float(timestep).is_integer() or int(timestep) not in self._respaced_index:
            shown = self.timesteps.tolist()
            shown = shown if len(shown) <= 12 else shown[:6] + ["..."] + shown[-3:]
            raise ValueError(
                f"Timestep {timestep!r} is not in the respaced schedule ({self._schedule_description}, "
                f"{self.num_inference_steps} steps: {shown}). Pass one of `scheduler.timesteps` (ORIGINAL timesteps)."
            )
        return self._respaced_index[int(timestep)]

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
        eta: float | None = None,
        pred_original_sample_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        guidance_gradient: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> GlideSchedulerOutput | tuple:
        """
        One GLIDE sampling step from `sample` (x_t at original `timestep`) to the previous kept timestep.

        The maths runs in float32 (float64 for a float64 sample) with the per-step values looked up in float64 and
        cast, as in the reference; `prev_sample` is returned in the sample's dtype.

        Args:
            model_output (`torch.Tensor`):
                The model output, with twice the sample's channels: epsilon (or x0 for `prediction_type="sample"`),
                then the variance value `v` in [-1, 1].
            timestep (`int` or `torch.Tensor`):
                The ORIGINAL timestep of `sample`, one of `self.timesteps` (a Python int or a one-element tensor).
            sample (`torch.Tensor`):
                The current sample x_t.
            generator (`torch.Generator`, *optional*):
                Random generator for the step noise (when `variance_noise` is not given).
            variance_noise (`torch.Tensor`, *optional*):
                The standard normal noise to use instead of drawing it, shaped like `sample` (unused at the last step
                and by DDIM with `eta = 0`).
            eta (`float`, *optional*):
                DDIM noise scale in [0, 1]; defaults to the config's `eta`. Ignored by the `"ddpm"` sampler.
            pred_original_sample_fn (`Callable[[torch.Tensor], torch.Tensor]`, *optional*):
                Applied to the predicted x0 before clipping, e.g. to paste the known region when inpainting.
            guidance_gradient (`torch.Tensor`, *optional*):
                The already-scaled gradient of log p(y | x_t) with respect to x_t (e.g. CLIP guidance), shaped like
                `sample`. `"ddpm"` shifts the mean by the learned variance times it; `"ddim"` shifts the noise
                prediction by `-sqrt(1 - alphas_cumprod) * guidance_gradient`.
            return_dict (`bool`, defaults to `True`):
                Whether to return a [`GlideSchedulerOutput`] or a tuple.

        Returns:
            [`GlideSchedulerOutput`] or `tuple`: `(prev_sample, pred_original_sample)`.
        """
        index = self._index_for_timestep(timestep)
        channels = sample.shape[1]
        if model_output.shape[1] != 2 * channels:
            raise ValueError(
                f"`model_output` must have {2 * channels} channels (epsilon and the learned variance for the "
                f"{channels}-channel sample), got shape {tuple(model_output.shape)}: GLIDE schedulers need the "
                "learned-variance output of the model."
            )
        if model_output.shape[:1] + model_output.shape[2:] != sample.shape[:1] + sample.shape[2:]:
            raise ValueError(
                f"`model_output` {tuple(model_output.shape)} does not match `sample` {tuple(sample.shape)} outside "
                "the channel dimension."
            )
        for name, tensor in (("variance_noise", variance_noise), ("guidance_gradient", guidance_gradient)):
            if tensor is not None and tensor.shape != sample.shape:
                raise ValueError(
                    f"`{name}` must have the sample's shape {tuple(sample.shape)}, got {tuple(tensor.shape)}."
                )
        if eta is None:
            eta = self.config.eta
        else:
            self._check_eta(eta, "eta")

        dtype = torch.float64 if sample.dtype == torch.float64 else torch.float32
        device = sample.device
        values = dict(zip(_STEP_VALUES, self._step_values[index].tolist(), strict=True))
        sigma = eta * values["ddim_sigma_per_eta"]
        values["ddim_sigma"] = sigma
        values["ddim_eps_coef"] = math.sqrt(values["one_minus_alphas_cumprod_prev"] - sigma**2)
        # The float64 values are rounded to float32 (for a float32 sample) before any maths, like the reference. As
        # Python numbers rather than tensors they need no copy to the device (which would synchronise every step).
        rounded = np.float64 if dtype == torch.float64 else np.float32
        c = {name: float(rounded(value)) for name, value in values.items()}

        x_t = sample.to(dtype)
        prediction, v = model_output.to(dtype).split(channels, dim=1)
        if self.config.prediction_type == "sample":
            x0 = prediction
        else:
            x0 = c["sqrt_recip_alphas_cumprod"] * x_t - c["sqrt_recipm1_alphas_cumprod"] * prediction
        if pred_original_sample_fn is not None:
            x0 = pred_original_sample_fn(x0).to(dtype)
        if self.config.clip_sample:
            x0 = x0.clamp(-self.config.clip_sample_range, self.config.clip_sample_range)
        gradient = None if guidance_gradient is None else guidance_gradient.to(device=device, dtype=dtype)

        def noise():
            if variance_noise is not None:
                return variance_noise.to(device=device, dtype=dtype)
            return randn_tensor(sample.shape, generator=generator, device=device, dtype=dtype)

        if self.config.sampler == "ddpm":
            mean = c["posterior_mean_coef1"] * x0 + c["posterior_mean_coef2"] * x_t
            frac = (v + 1) / 2
            log_variance = frac * c["log_beta"] + (1 - frac) * c["posterior_log_variance_clipped"]
            if gradient is not None:
                mean = mean + torch.exp(log_variance) * gradient
            prev_sample = mean
            if index != 0:  # the last step returns the mean
                prev_sample = mean + torch.exp(0.5 * log_variance) * noise()
        else:
            # DDIM re-derives epsilon from the processed (clipped / inpainted) x0.
            eps = (c["sqrt_recip_alphas_cumprod"] * x_t - x0) / c["sqrt_recipm1_alphas_cumprod"]
            if gradient is not None:
                # Guidance through the score: eps - sqrt(1 - abar) * grad log p(y | x_t); x0 follows, unclipped.
                eps = eps - c["sqrt_one_minus_alphas_cumprod"] * gradient
                x0 = c["sqrt_recip_alphas_cumprod"] * x_t - c["sqrt_recipm1_alphas_cumprod"] * eps
            prev_sample = x0 * c["sqrt_alphas_cumprod_prev"] + c["ddim_eps_coef"] * eps
            if index != 0 and sigma > 0:
                prev_sample = prev_sample + c["ddim_sigma"] * noise()

        prev_sample = prev_sample.to(sample.dtype)
        x0 = x0.to(sample.dtype)
        if not return_dict:
            return (prev_sample, x0)
        return GlideSchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor
    ) -> torch.Tensor:
        """
        Noise clean samples with the ORIGINAL (un-respaced) process, for training:
        `sqrt(alphas_cumprod[t]) * x0 + sqrt(1 - alphas_cumprod[t]) * noise` (see [`ForwardProcess.add_noise`], which
        the training loss uses too).

        Args:
            original_samples (`torch.Tensor`):
                Clean samples x0, batch first.
            noise (`torch.Tensor`):
                Standard normal noise shaped like `original_samples`.
            timesteps (`torch.IntTensor`):
                One original timestep in `[0, num_train_timesteps)` per sample (or a single one for all). They are
                checked when on the CPU, where reading them costs nothing.

        Returns:
            `torch.Tensor`: the noisy samples, in the dtype of `original_samples`.
        """
        return self.forward_process.add_noise(original_samples, noise, timesteps)
