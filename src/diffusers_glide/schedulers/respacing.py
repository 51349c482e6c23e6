"""GLIDE's noise schedules, timestep respacing and process tables, as pure float64 numpy functions.

GLIDE (like improved DDPM) is trained on a `num_train_timesteps`-step process and sampled on a *respaced*
process that keeps only some of the original timesteps. The kept steps are named by a respacing string
(`"100"`, `"27"`, `"ddim50"`, `"fast27"`, `"10,10,3,2,2"`, ...) and the respaced process is a proper
diffusion process of its own: its betas are recomputed from the original cumulative alphas at the kept steps.

Everything here is float64 on purpose: the reference computes these tables in float64 and only casts the
looked-up values to float32 when sampling, and the cosine schedule in float32 (diffusers' own
`betas_for_alpha_bar`) is not precise enough to reproduce it.
"""

import math
from dataclasses import dataclass, fields

import numpy as np

BETA_SCHEDULES = ("linear", "squaredcos_cap_v2")
# "fast27" is GLIDE's upsampler schedule: the sections below, with the last step moved from T-1 to T-3.
FAST27_SECTIONS = "10,10,3,2,2"


def linear_beta_schedule(num_train_timesteps: int, beta_start: float = 0.0001, beta_end: float = 0.02) -> np.ndarray:
    """
    GLIDE's linear schedule: `beta_start` to `beta_end` scaled by `1000 / num_train_timesteps`.

    The scale keeps the total noise of the process roughly independent of the number of steps; for the usual
    1000 steps it is 1 and the schedule equals diffusers' `"linear"` one (computed here in float64).

    Args:
        num_train_timesteps (`int`):
            Number of steps of the original (training) process.
        beta_start (`float`, *optional*, defaults to 0.0001):
            First beta for a 1000-step process.
        beta_end (`float`, *optional*, defaults to 0.02):
            Last beta for a 1000-step process.

    Returns:
        `np.ndarray`: float64 betas of shape `(num_train_timesteps,)`.
    """
    scale = 1000 / num_train_timesteps
    return np.linspace(scale * beta_start, scale * beta_end, num_train_timesteps, dtype=np.float64)


def cosine_beta_schedule(num_train_timesteps: int, max_beta: float = 0.999) -> np.ndarray:
    """
    The `"squaredcos_cap_v2"` (improved DDPM cosine) schedule in float64.

    `beta_i = min(1 - abar((i + 1) / T) / abar(i / T), max_beta)` with `abar(t) = cos((t + 0.008) / 1.008 * pi / 2) ** 2`.

    Args:
        num_train_timesteps (`int`):
            Number of steps `T` of the original (training) process.
        max_beta (`float`, *optional*, defaults to 0.999):
            Cap on every beta, which avoids the singularity at the end of the process.

    Returns:
        `np.ndarray`: float64 betas of shape `(num_train_timesteps,)`.
    """

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    steps = num_train_timesteps
    betas = [min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), max_beta) for i in range(steps)]
    return np.array(betas, dtype=np.float64)


def get_beta_schedule(
    beta_schedule: str, num_train_timesteps: int, beta_start: float = 0.0001, beta_end: float = 0.02
) -> np.ndarray:
    """
    The float64 betas of the original process for a schedule name.

    Args:
        beta_schedule (`str`):
            `"linear"` (see [`linear_beta_schedule`]) or `"squaredcos_cap_v2"` (see [`cosine_beta_schedule`]).
        num_train_timesteps (`int`):
            Number of steps of the original (training) process.
        beta_start (`float`, *optional*, defaults to 0.0001):
            First beta of the linear schedule for 1000 steps (ignored by the cosine schedule).
        beta_end (`float`, *optional*, defaults to 0.02):
            Last beta of the linear schedule for 1000 steps (ignored by the cosine schedule).

    Returns:
        `np.ndarray`: float64 betas of shape `(num_train_timesteps,)`.
    """
    if beta_schedule == "linear":
        return linear_beta_schedule(num_train_timesteps, beta_start, beta_end)
    if beta_schedule == "squaredcos_cap_v2":
        return cosine_beta_schedule(num_train_timesteps)
    raise ValueError(f"`beta_schedule` must be one of {BETA_SCHEDULES}, got {beta_schedule!r}.")


def _parse_int(text: str, respacing: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"Invalid timestep respacing {respacing!r}: {text.strip()!r} is not an integer. Use a comma-separated "
            "list of step counts such as '100' or '10,10,3,2,2', 'ddimN', or 'fast27'."
        ) from None


def space_timesteps(num_train_timesteps: int, respacing: str) -> list[int]:
    """
    The original timesteps GLIDE keeps for a respacing string, sorted ascending.

    - `"ddimN"`: every `i`-th step from 0, with the smallest integer stride `i` giving exactly `N` steps (as in
      DDIM). Some `N` cannot be reached by any stride (for 1000 steps e.g. 400 or 999): that is an error.
    - `"fast27"`: `"10,10,3,2,2"` with the last step `T - 1` replaced by `T - 3` (GLIDE's upsampler schedule).
    - otherwise a comma-separated list of step counts, one per section: the `T` original steps are split into
      as many equal sections as there are counts (the first `T % len(counts)` sections one step longer), and each
      section keeps its count of steps, evenly spaced from its first to its last step and rounded with Python's
      `round()` (half to even). `"100"` is one section of 100 steps over the whole process. A count of 0 skips
      its section.
    - `""` keeps all `T` steps (GLIDE's "no respacing").

    Args:
        num_train_timesteps (`int`):
            Number of steps `T` of the original process.
        respacing (`str`):
            The respacing string.

    Returns:
        `list[int]`: the kept original timesteps, ascending and unique.
    """
    if not isinstance(respacing, str):
        raise ValueError(f"The timestep respacing must be a string such as '100' or 'fast27', got {respacing!r}.")
    total = num_train_timesteps
    spec = respacing.strip()
    if spec == "":
        return list(range(total))

    if spec == "fast27":
        steps = set(space_timesteps(total, FAST27_SECTIONS))
        steps.remove(total - 1)
        steps.add(total - 3)
        return sorted(steps)

    if spec.startswith("ddim"):
        count = _parse_int(spec[len("ddim") :], respacing)
        for stride in range(1, total):
            if len(range(0, total, stride)) == count:
                return list(range(0, total, stride))
        raise ValueError(
            f"Invalid timestep respacing {respacing!r}: no integer stride splits {total} steps into exactly {count} "
            f"evenly spaced steps. Pick another count or use the section form {str(count)!r}."
        )

    counts = [_parse_int(part, respacing) for part in spec.split(",")]
    if any(count < 0 for count in counts):
        raise ValueError(f"Invalid timestep respacing {respacing!r}: step counts must not be negative.")
    size_per, extra = divmod(total, len(counts))
    kept = []
    start = 0
    for section, count in enumerate(counts):
        size = size_per + (1 if section < extra else 0)
        if size < count:
            raise ValueError(
                f"Invalid timestep respacing {respacing!r}: section {section} spans {size} of the {total} original "
                f"steps and cannot keep {count} of them."
            )
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        # Accumulate the float stride (not k * stride) so rounding ties fall exactly where GLIDE's do.
        position = 0.0
        for _ in range(count):
            kept.append(start + round(position))
            position += stride
        start += size
    if not kept:
        raise ValueError(f"Invalid timestep respacing {respacing!r}: it keeps no timesteps.")
    return sorted(set(kept))


@dataclass(frozen=True)
class DiffusionProcess:
    """
    The float64 arrays of a diffusion process, indexed by its step `i` (0 = least noisy).

    The names are those of GLIDE's `GaussianDiffusion` attributes (plus `log_betas`). `timestep_map[i]` is the
    original timestep of step `i`, which is what the model is conditioned on: for the original process it is `i`,
    for a respaced one (GLIDE's `SpacedDiffusion`) the kept original timestep.
    """

    timestep_map: np.ndarray
    betas: np.ndarray
    log_betas: np.ndarray
    alphas_cumprod: np.ndarray
    alphas_cumprod_prev: np.ndarray
    sqrt_alphas_cumprod: np.ndarray
    sqrt_one_minus_alphas_cumprod: np.ndarray
    sqrt_recip_alphas_cumprod: np.ndarray
    sqrt_recipm1_alphas_cumprod: np.ndarray
    posterior_variance: np.ndarray
    posterior_log_variance_clipped: np.ndarray
    posterior_mean_coef1: np.ndarray
    posterior_mean_coef2: np.ndarray

    def to_dict(self) -> dict[str, np.ndarray]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


# The name the scheduler's `respaced_process` attribute has always had.
RespacedProcess = DiffusionProcess


def compute_process(betas: np.ndarray, timestep_map: np.ndarray | None = None) -> DiffusionProcess:
    """
    Every array of the process with these betas, in float64, as GLIDE's `GaussianDiffusion` computes them.

    Args:
        betas (`np.ndarray`):
            The betas of the process, shape `(N,)` with `N >= 2`.
        timestep_map (`np.ndarray`, *optional*):
            The original timestep of each step; defaults to `0..N-1` (the original process itself).

    Returns:
        [`DiffusionProcess`]: the arrays, each of shape `(N,)`.
    """
    betas = np.asarray(betas, dtype=np.float64)
    if len(betas) < 2:
        # A one-step process has no posterior variance to take the clipped log-variance from.
        raise ValueError(f"A GLIDE diffusion process needs at least 2 steps, got {len(betas)}.")
    alphas = 1.0 - betas
    alphas_cumprod = np.cumprod(alphas)
    alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
    return DiffusionProcess(
        timestep_map=np.arange(len(betas)) if timestep_map is None else timestep_map,
        betas=betas,
        log_betas=np.log(betas),
        alphas_cumprod=alphas_cumprod,
        alphas_cumprod_prev=alphas_cumprod_prev,
        sqrt_alphas_cumprod=np.sqrt(alphas_cumprod),
        sqrt_one_minus_alphas_cumprod=np.sqrt(1.0 - alphas_cumprod),
        sqrt_recip_alphas_cumprod=np.sqrt(1.0 / alphas_cumprod),
        sqrt_recipm1_alphas_cumprod=np.sqrt(1.0 / alphas_cumprod - 1),
        posterior_variance=posterior_variance,
        # The posterior variance is 0 at the first step; its log is taken from the second step instead.
        posterior_log_variance_clipped=np.log(np.append(posterior_variance[1], posterior_variance[1:])),
        posterior_mean_coef1=betas * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod),
        posterior_mean_coef2=(1.0 - alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - alphas_cumprod),
    )


def compute_respaced_process(original_betas: np.ndarray, timesteps: list[int]) -> DiffusionProcess:
    """
    The respaced process that keeps `timesteps` of the process with betas `original_betas`.

    The new betas make the respaced cumulative alphas equal the original ones at the kept steps:
    `beta_i = 1 - abar[t_i] / abar[t_(i-1)]` (with `abar` before the first kept step = 1). Every other array is
    recomputed from these betas in float64 (see [`compute_process`]).

    Args:
        original_betas (`np.ndarray`):
            Betas of the original process, shape `(T,)`.
        timesteps (`list[int]`):
            The kept original timesteps (e.g. from [`space_timesteps`]): unique, in `[0, T)`, at least 2.

    Returns:
        [`DiffusionProcess`]: the arrays, each of shape `(len(timesteps),)`.
    """
    original_betas = np.asarray(original_betas, dtype=np.float64)
    total = len(original_betas)
    kept = np.array(sorted(int(t) for t in timesteps), dtype=np.int64)
    if len(kept) < 2:
        raise ValueError(f"A respaced GLIDE process needs at least 2 timesteps, got {kept.tolist()}.")
    if len(np.unique(kept)) != len(kept) or kept[0] < 0 or kept[-1] >= total:
        raise ValueError(f"Timesteps must be unique and in [0, {total}), got {kept.tolist()}.")

    kept_alphas_cumprod = np.cumprod(1.0 - original_betas)[kept]
    previous = np.concatenate([[1.0], kept_alphas_cumprod[:-1]])
    return compute_process(1.0 - kept_alphas_cumprod / previous, timestep_map=kept)
