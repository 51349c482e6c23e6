"""GlideScheduler: steps against a float64 re-derivation from the FIXTURE arrays, hooks, noise, errors, config."""

import json
import math
import random

import pytest
import torch
from conftest import REFERENCE_DIR, max_abs_diff
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from safetensors.torch import load_file

from diffusers_glide import GlideScheduler, GlideSchedulerOutput

ARRAYS = load_file(str(REFERENCE_DIR / "respacing_arrays.safetensors"))
RESPACING_TABLE = json.loads((REFERENCE_DIR / "respacing.json").read_text())["timesteps"]
SHAPE = (2, 3, 4, 4)


def fixture_process(schedule: str, respacing: str) -> dict[str, torch.Tensor]:
    prefix = f"{schedule}/{respacing}/"
    return {key[len(prefix) :]: value for key, value in ARRAYS.items() if key.startswith(prefix)}


def expected_step(arrays, i, x_t, model_output, *, sampler, noise=None, eta=0.0, hook=None, gradient=None, clip=1.0):
    """The GLIDE update written out in float64 from the fixture arrays (independent of the scheduler's tables)."""
    a = {name: float(values[i]) for name, values in arrays.items() if name != "timestep_map"}
    x_t, model_output = x_t.double(), model_output.double()
    eps, v = model_output.chunk(2, dim=1)
    x0 = a["sqrt_recip_alphas_cumprod"] * x_t - a["sqrt_recipm1_alphas_cumprod"] * eps
    if hook is not None:
        x0 = hook(x0)
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
    noise = None if noise is None else noise.double()
    if sampler == "ddpm":
        mean = a["posterior_mean_coef1"] * x0 + a["posterior_mean_coef2"] * x_t
        frac = (v + 1) / 2
        log_var = frac * math.log(a["betas"]) + (1 - frac) * a["posterior_log_variance_clipped"]
        if gradient is not None:
            mean = mean + torch.exp(log_var) * gradient.double()
        prev = mean if i == 0 else mean + torch.exp(0.5 * log_var) * noise
        return prev, x0
    abar, abar_prev = a["alphas_cumprod"], a["alphas_cumprod_prev"]
    eps = (a["sqrt_recip_alphas_cumprod"] * x_t - x0) / a["sqrt_recipm1_alphas_cumprod"]
    if gradient is not None:
        eps = eps - math.sqrt(1 - abar) * gradient.double()
        x0 = a["sqrt_recip_alphas_cumprod"] * x_t - a["sqrt_recipm1_alphas_cumprod"] * eps
    sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar)) * math.sqrt(1 - abar / abar_prev)
    prev = x0 * math.sqrt(abar_prev) + math.sqrt(1 - abar_prev - sigma**2) * eps
    if i != 0 and sigma > 0:
        prev = prev + sigma * noise
    return prev, x0


def random_inputs(seed: int, dtype=torch.float64, shape=SHAPE):
    g = torch.Generator().manual_seed(seed)
    x_t = torch.randn(shape, generator=g, dtype=dtype)
    eps = torch.randn(shape, generator=g, dtype=dtype)
    v = torch.rand(shape, generator=g, dtype=dtype) * 2 - 1
    noise = torch.randn(shape, generator=g, dtype=dtype)
    gradient = torch.randn(shape, generator=g, dtype=dtype) * 0.1
    return x_t, torch.cat([eps, v], dim=1), noise, gradient


def scale(tensor: torch.Tensor) -> float:
    return max(1.0, tensor.abs().max().item())


def make(schedule="squaredcos_cap_v2", respacing="10", **kwargs) -> GlideScheduler:
    return GlideScheduler(beta_schedule=schedule, timestep_respacing=respacing, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Steps against the formulas (float64 samples, so the scheduler's maths is float64 too and must agree tightly)


@pytest.mark.parametrize(("schedule", "respacing"), [("squaredcos_cap_v2", "10"), ("linear", "fast27")])
def test_ddpm_step_matches_formula_at_every_index(schedule, respacing):
    arrays = fixture_process(schedule, respacing)
    scheduler = make(schedule, respacing)
    for i, t in enumerate(arrays["timestep_map"].tolist()):
        x_t, model_output, noise, _ = random_inputs(i)
        out = scheduler.step(model_output, t, x_t, variance_noise=noise)
        prev, x0 = expected_step(arrays, i, x_t, model_output, sampler="ddpm", noise=noise)
        assert isinstance(out, GlideSchedulerOutput)
        assert out.prev_sample.dtype == torch.float64
        assert max_abs_diff(out.prev_sample, prev) <= 1e-9 * scale(prev), f"index {i} (t={t})"
        assert max_abs_diff(out.pred_original_sample, x0) <= 1e-9, f"index {i} (t={t})"


@pytest.mark.parametrize("eta", [0.0, 0.7])
@pytest.mark.parametrize(("schedule", "respacing"), [("linear", "fast27"), ("squaredcos_cap_v2", "ddim10")])
def test_ddim_step_matches_formula_at_every_index(schedule, respacing, eta):
    arrays = fixture_process(schedule, respacing)
    scheduler = make(schedule, respacing, sampler="ddim", eta=eta)
    for i, t in enumerate(arrays["timestep_map"].tolist()):
        x_t, model_output, noise, _ = random_inputs(100 + i)
        out = scheduler.step(model_output, t, x_t, variance_noise=noise)
        prev, x0 = expected_step(arrays, i, x_t, model_output, sampler="ddim", noise=noise, eta=eta)
        assert max_abs_diff(out.prev_sample, prev) <= 1e-9 * scale(prev), f"index {i} (t={t})"
        assert max_abs_diff(out.pred_original_sample, x0) <= 1e-9, f"index {i} (t={t})"


def test_ddim_eta_argument_overrides_config():
    arrays = fixture_process("linear", "fast27")
    scheduler = make("linear", "fast27", sampler="ddim", eta=0.0)
    x_t, model_output, noise, _ = random_inputs(7)
    t, i = 600, arrays["timestep_map"].tolist().index(600)
    out = scheduler.step(model_output, t, x_t, variance_noise=noise, eta=1.0)
    prev, _ = expected_step(arrays, i, x_t, model_output, sampler="ddim", noise=noise, eta=1.0)
    assert max_abs_diff(out.prev_sample, prev) <= 1e-9 * scale(prev)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_float32_step_matches_float64_formula(sampler):
    arrays = fixture_process("squaredcos_cap_v2", "10")
    scheduler = make(sampler=sampler)
    for i, t in enumerate(arrays["timestep_map"].tolist()):
        x_t, model_output, noise, _ = random_inputs(200 + i, dtype=torch.float32)
        out = scheduler.step(model_output, t, x_t, variance_noise=noise)
        prev, x0 = expected_step(arrays, i, x_t, model_output, sampler=sampler, noise=noise)
        assert out.prev_sample.dtype == torch.float32 and out.pred_original_sample.dtype == torch.float32
        # float32 rounding of O(1) values, amplified by at most the x0 coefficients (~1e3 at t = 999).
        tolerance = 1e-6 * max(float(arrays["sqrt_recip_alphas_cumprod"][i]), 1.0) * scale(prev)
        assert max_abs_diff(out.prev_sample, prev) <= tolerance, f"index {i} (t={t})"
        assert max_abs_diff(out.pred_original_sample, x0) <= tolerance, f"index {i} (t={t})"


# ---------------------------------------------------------------------------------------------------------------
# Hooks


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_pred_original_sample_fn_runs_before_clipping(sampler):
    arrays = fixture_process("squaredcos_cap_v2", "10")
    scheduler = make(sampler=sampler)
    x_t, model_output, noise, _ = random_inputs(3)
    i, t = 4, int(arrays["timestep_map"][4])
    keep = (torch.arange(4) < 2).double().view(1, 1, 1, 4)
    known = torch.full(SHAPE, 3.0, dtype=torch.float64)  # outside [-1, 1]: clipping must still apply after the hook
    seen = []

    def paste_known(x0):
        seen.append(x0.clone())
        return x0 * (1 - keep) + known * keep

    out = scheduler.step(model_output, t, x_t, variance_noise=noise, pred_original_sample_fn=paste_known)
    unclipped_x0 = expected_step(arrays, i, x_t, model_output, sampler=sampler, noise=noise, clip=None)[1]
    assert len(seen) == 1 and max_abs_diff(seen[0], unclipped_x0) <= 1e-9  # the hook got the raw, unclipped x0
    prev, x0 = expected_step(arrays, i, x_t, model_output, sampler=sampler, noise=noise, hook=paste_known)
    assert torch.all(out.pred_original_sample[..., :2] == 1.0)  # pasted 3.0, then clipped
    assert max_abs_diff(out.pred_original_sample, x0) <= 1e-9
    assert max_abs_diff(out.prev_sample, prev) <= 1e-9 * scale(prev)


def test_clip_sample_false_and_range():
    arrays = fixture_process("squaredcos_cap_v2", "10")
    x_t, model_output, noise, _ = random_inputs(4)
    t = int(arrays["timestep_map"][9])  # t = 999: x0 from pure noise is far outside [-1, 1]
    unclipped = make(clip_sample=False).step(model_output, t, x_t, variance_noise=noise)
    assert unclipped.pred_original_sample.abs().max() > 2
    prev, x0 = expected_step(arrays, 9, x_t, model_output, sampler="ddpm", noise=noise, clip=None)
    assert max_abs_diff(unclipped.pred_original_sample, x0) <= 1e-9 * scale(x0)
    assert max_abs_diff(unclipped.prev_sample, prev) <= 1e-9 * scale(prev)
    ranged = make(clip_sample_range=2.0).step(model_output, t, x_t, variance_noise=noise)
    assert ranged.pred_original_sample.abs().max() == 2.0


@pytest.mark.parametrize(("sampler", "index"), [("ddpm", 5), ("ddpm", 0), ("ddim", 5), ("ddim", 0)])
def test_guidance_gradient(sampler, index):
    arrays = fixture_process("squaredcos_cap_v2", "10")
    scheduler = make(sampler=sampler)
    x_t, model_output, noise, gradient = random_inputs(5)
    t = int(arrays["timestep_map"][index])
    plain = scheduler.step(model_output, t, x_t, variance_noise=noise)
    guided = scheduler.step(model_output, t, x_t, variance_noise=noise, guidance_gradient=gradient)
    prev, x0 = expected_step(arrays, index, x_t, model_output, sampler=sampler, noise=noise, gradient=gradient)
    assert max_abs_diff(guided.prev_sample, prev) <= 1e-9 * scale(prev)
    assert max_abs_diff(guided.pred_original_sample, x0) <= 1e-9 * scale(x0)
    assert max_abs_diff(guided.prev_sample, plain.prev_sample) > 1e-6  # the gradient actually moved the sample


# ---------------------------------------------------------------------------------------------------------------
# Noise


def test_no_noise_at_the_last_step():
    scheduler = make()
    x_t, model_output, noise, _ = random_inputs(6, dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    drawn = scheduler.step(model_output, 0, x_t, generator=generator).prev_sample
    assert torch.equal(generator.get_state(), state)  # nothing drawn
    given = scheduler.step(model_output, 0, x_t, variance_noise=noise).prev_sample
    nan_noise = scheduler.step(model_output, 0, x_t, variance_noise=torch.full_like(noise, float("nan"))).prev_sample
    assert torch.equal(drawn, given) and torch.equal(given, nan_noise)


def test_variance_noise_is_used_verbatim_and_skips_the_generator():
    arrays = fixture_process("squaredcos_cap_v2", "10")
    scheduler = make()
    x_t, model_output, noise, _ = random_inputs(8)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    out = scheduler.step(model_output, 999, x_t, variance_noise=noise, generator=generator)
    assert torch.equal(generator.get_state(), state)
    prev, _ = expected_step(arrays, 9, x_t, model_output, sampler="ddpm", noise=noise)
    other, _ = expected_step(arrays, 9, x_t, model_output, sampler="ddpm", noise=-noise)
    assert max_abs_diff(out.prev_sample, prev) <= 1e-9 * scale(prev)
    assert max_abs_diff(out.prev_sample, other) > 1e-3


@pytest.mark.parametrize(("sampler", "eta"), [("ddpm", 0.0), ("ddim", 0.5)])
def test_generator_draws_standard_normal_noise_deterministically(sampler, eta):
    scheduler = make(sampler=sampler, eta=eta)
    x_t, model_output, _, _ = random_inputs(9, dtype=torch.float32)
    first = scheduler.step(model_output, 555, x_t, generator=torch.Generator().manual_seed(42)).prev_sample
    again = scheduler.step(model_output, 555, x_t, generator=torch.Generator().manual_seed(42)).prev_sample
    other = scheduler.step(model_output, 555, x_t, generator=torch.Generator().manual_seed(43)).prev_sample
    assert torch.equal(first, again) and not torch.equal(first, other)
    # The draw is a standard normal of the sample's shape from that generator (diffusers' randn_tensor on CPU).
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(42))
    assert torch.equal(first, scheduler.step(model_output, 555, x_t, variance_noise=noise).prev_sample)


def test_deterministic_ddim_ignores_noise():
    scheduler = make(sampler="ddim")
    x_t, model_output, noise, _ = random_inputs(10, dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    a = scheduler.step(model_output, 555, x_t, generator=generator).prev_sample
    b = scheduler.step(model_output, 555, x_t, variance_noise=noise).prev_sample
    assert torch.equal(generator.get_state(), state) and torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_half_precision_sample_keeps_its_dtype(dtype, sampler):
    arrays = fixture_process("squaredcos_cap_v2", "10")
    scheduler = make(sampler=sampler)
    x_t, model_output, noise, _ = random_inputs(11, dtype=torch.float32)
    x_t, model_output, noise = x_t.to(dtype), model_output.to(dtype), noise.to(dtype)
    out = scheduler.step(model_output, 444, x_t, variance_noise=noise)
    assert out.prev_sample.dtype == dtype and out.pred_original_sample.dtype == dtype
    prev, _ = expected_step(arrays, 4, x_t, model_output, sampler=sampler, noise=noise)
    assert max_abs_diff(out.prev_sample, prev) <= 2e-2 * scale(prev)  # half-precision rounding of the result


# ---------------------------------------------------------------------------------------------------------------
# Timesteps


def test_default_timesteps_come_from_the_config():
    scheduler = GlideScheduler()
    assert scheduler.timesteps.tolist() == RESPACING_TABLE["100"][::-1]
    assert scheduler.timesteps.dtype == torch.int64 and scheduler.num_inference_steps == 100
    upsampler = GlideScheduler(beta_schedule="linear", timestep_respacing="fast27", sampler="ddim")
    assert upsampler.timesteps.tolist() == RESPACING_TABLE["fast27"][::-1] and upsampler.timesteps[0] == 997


@pytest.mark.parametrize("respacing", sorted(RESPACING_TABLE))
def test_set_timesteps_respacing_is_descending_original_timesteps(respacing):
    scheduler = GlideScheduler()
    timesteps = scheduler.set_timesteps(respacing=respacing)
    assert timesteps is scheduler.timesteps
    assert timesteps.tolist() == RESPACING_TABLE[respacing][::-1]
    assert scheduler.num_inference_steps == len(RESPACING_TABLE[respacing])


def test_set_timesteps_sources_agree():
    scheduler = GlideScheduler(timestep_respacing="27")
    assert scheduler.set_timesteps(10).tolist() == RESPACING_TABLE["10"][::-1]
    assert scheduler.set_timesteps(num_inference_steps=50, device="cpu").tolist() == RESPACING_TABLE["50"][::-1]
    assert scheduler.timesteps.device == torch.device("cpu")
    assert scheduler.set_timesteps().tolist() == RESPACING_TABLE["27"][::-1]


@pytest.mark.parametrize("as_tensor", [False, True])
def test_explicit_timesteps_in_any_order(as_tensor):
    shuffled = list(RESPACING_TABLE["ddim10"])
    random.Random(0).shuffle(shuffled)
    scheduler = GlideScheduler(beta_schedule="linear")
    timesteps = scheduler.set_timesteps(timesteps=torch.tensor(shuffled) if as_tensor else shuffled)
    assert timesteps.tolist() == RESPACING_TABLE["ddim10"][::-1]
    # The process built from them is the fixture's "ddim10" process.
    expected = fixture_process("linear", "ddim10")
    for name, values in expected.items():
        assert max_abs_diff(torch.from_numpy(getattr(scheduler.respaced_process, name)), values) <= 1e-12, name


def test_step_accepts_int_and_tensor_timesteps():
    scheduler = make()
    x_t, model_output, noise, _ = random_inputs(12, dtype=torch.float32)
    results = [
        scheduler.step(model_output, t, x_t, variance_noise=noise, return_dict=False)
        for t in (333, torch.tensor(333), torch.tensor([333]), scheduler.timesteps[6])
    ]
    for prev, x0 in results[1:]:
        assert torch.equal(prev, results[0][0]) and torch.equal(x0, results[0][1])


def test_a_diffusers_style_loop_runs():
    scheduler = make(respacing="27")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(SHAPE, generator=generator) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(x, t)
        model_output = torch.cat([model_input * 0.1, torch.zeros_like(model_input)], dim=1)  # a fake model
        x = scheduler.step(model_output, t, x, generator=generator).prev_sample
    assert torch.isfinite(x).all()


# ---------------------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_inference_steps": 10, "respacing": "10"}, "only one of"),
        ({"timesteps": [0, 500], "respacing": "10"}, "only one of"),
        ({"num_inference_steps": 10, "timesteps": [0, 500]}, "only one of"),
        ({"num_inference_steps": 1001}, "between 2 and"),
        ({"num_inference_steps": 1}, "between 2 and"),
        ({"num_inference_steps": 10.5}, "must be an integer"),
        ({"respacing": "abc"}, "'abc'"),
        ({"respacing": "0,"}, "is not an integer"),
        ({"respacing": "ddim400"}, "no integer stride"),
        ({"respacing": "600,600"}, "cannot keep 600"),
        ({"respacing": "1"}, "at least 2"),
        ({"timesteps": [999, 999, 0]}, "unique"),
        ({"timesteps": [1000, 0]}, r"\[0, 1000\)"),
        ({"timesteps": [-1, 0]}, r"\[0, 1000\)"),
        ({"timesteps": [5]}, "at least 2"),
        ({"timesteps": [0.5, 4]}, "integers"),
    ],
)
def test_set_timesteps_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GlideScheduler().set_timesteps(**kwargs)


def test_step_errors():
    scheduler = make()  # "10": 999, 888, ..., 0
    x_t, model_output, noise, _ = random_inputs(13, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"Timestep 998 is not in the respaced schedule \(respacing '10'"):
        scheduler.step(model_output, 998, x_t)
    with pytest.raises(ValueError, match="not in the respaced schedule"):
        scheduler.step(model_output, 1000, x_t)
    with pytest.raises(ValueError, match="single original timestep"):
        scheduler.step(model_output, torch.tensor([999, 888]), x_t)
    with pytest.raises(ValueError, match="must have 6 channels .* learned-variance output"):
        scheduler.step(model_output[:, :3], 999, x_t)
    with pytest.raises(ValueError, match="does not match"):
        scheduler.step(model_output[:1], 999, x_t)
    with pytest.raises(ValueError, match="`variance_noise` must have the sample's shape"):
        scheduler.step(model_output, 999, x_t, variance_noise=noise[:1])
    with pytest.raises(ValueError, match="`guidance_gradient` must have the sample's shape"):
        scheduler.step(model_output, 999, x_t, guidance_gradient=noise[:, :1])
    with pytest.raises(ValueError, match="`eta` must be a number in"):
        scheduler.step(model_output, 999, x_t, eta=-0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"variance_type": "fixed_small"},
            "`variance_type` must be 'learned_range', got 'fixed_small'.*only supports",
        ),
        (
            {"prediction_type": "v_prediction"},
            r"`prediction_type` must be one of \('epsilon', 'sample'\), got 'v_prediction'",
        ),
        ({"sampler": "euler"}, "`sampler` must be one of .*'ddpm', 'ddim'.*got 'euler'"),
        ({"beta_schedule": "scaled_linear"}, "`beta_schedule` must be one of .*got 'scaled_linear'"),
        ({"timestep_respacing": "abc"}, "Invalid `timestep_respacing` 'abc'"),
        ({"timestep_respacing": 100}, "`timestep_respacing` must be a string"),
        ({"eta": 2.0}, r"`eta` must be a number in \[0, 1\].*got 2.0"),
        ({"num_train_timesteps": 1}, "`num_train_timesteps` must be an integer in \\[2, 100000\\], got 1"),
        ({"clip_sample_range": 0.0}, "`clip_sample_range` must be positive, got 0.0"),
        ({"clip_sample": "yes"}, "`clip_sample` must be True or False, got 'yes'"),
        ({"beta_schedule": "linear", "beta_start": 0.03}, "beta_start=0.03"),
        ({"beta_schedule": "linear", "num_train_timesteps": 10, "timestep_respacing": "5"}, "< 1"),
    ],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GlideScheduler(**kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Config, interchangeability, training


def test_basic_attributes():
    scheduler = GlideScheduler()
    assert len(scheduler) == 1000 and scheduler.order == 1 and scheduler.init_noise_sigma == 1.0
    x = torch.randn(SHAPE)
    assert scheduler.scale_model_input(x, 999) is x
    assert {cls.__name__ for cls in scheduler.compatibles} >= {"DDPMScheduler", "DDIMScheduler"}


def test_save_and_load_round_trip(tmp_path):
    scheduler = GlideScheduler(
        beta_schedule="linear", timestep_respacing="fast27", sampler="ddim", eta=0.25, clip_sample_range=2.0
    )
    scheduler.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "scheduler_config.json").read_text())
    assert saved["_class_name"] == "GlideScheduler" and saved["timestep_respacing"] == "fast27"
    loaded = GlideScheduler.from_pretrained(tmp_path)
    assert dict(loaded.config) == dict(scheduler.config)
    assert torch.equal(loaded.timesteps, scheduler.timesteps)
    overridden = GlideScheduler.from_pretrained(tmp_path, sampler="ddpm")
    assert overridden.config.sampler == "ddpm" and overridden.config.timestep_respacing == "fast27"


def test_from_diffusers_configs():
    ddpm = DDPMScheduler(beta_schedule="squaredcos_cap_v2", variance_type="learned_range")
    glide = GlideScheduler.from_config(ddpm.config)
    assert glide.config.beta_schedule == "squaredcos_cap_v2" and glide.config.num_train_timesteps == 1000
    # diffusers' own implicit defaults do not carry over (`_use_default_values`): name the schedule explicitly.
    ddpm_linear = DDPMScheduler(beta_schedule="linear", variance_type="learned_range")
    linear = GlideScheduler.from_config(ddpm_linear.config)
    # With 1000 steps GLIDE's linear schedule is diffusers' (ours in float64).
    assert (
        linear.config.beta_schedule == "linear" and max_abs_diff(linear.betas, ddpm_linear.betas) <= 1e-8
    )  # float32 ulp
    dpm = DPMSolverMultistepScheduler(beta_schedule="squaredcos_cap_v2", variance_type="learned_range")
    assert GlideScheduler.from_config(dpm.config).config.beta_schedule == "squaredcos_cap_v2"
    assert GlideScheduler.from_config(DDIMScheduler(beta_schedule="squaredcos_cap_v2").config).config.sampler == "ddpm"
    with pytest.raises(ValueError, match="variance_type"):
        GlideScheduler.from_config(DDPMScheduler(variance_type="fixed_small").config)  # not a GLIDE model


@pytest.mark.parametrize("schedule", ["squaredcos_cap_v2", "linear"])
@pytest.mark.parametrize("cls", [DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler])
def test_to_diffusers_configs(cls, schedule):
    # Built with GLIDE's defaults left implicit: they must still reach the other scheduler (cosine, learned range).
    glide = GlideScheduler() if schedule == "squaredcos_cap_v2" else GlideScheduler(beta_schedule=schedule)
    other = cls.from_config(glide.config)
    assert other.config.beta_schedule == schedule and other.config.num_train_timesteps == 1000
    assert max_abs_diff(other.alphas_cumprod, glide.alphas_cumprod) <= 1e-5
    if cls is not DDIMScheduler:
        assert other.config.variance_type == "learned_range"
    other.set_timesteps(10)
    back = GlideScheduler.from_config(other.config)
    assert back.config.beta_schedule == schedule


@pytest.mark.parametrize("schedule", ["squaredcos_cap_v2", "linear"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_add_noise_uses_the_original_process(schedule, dtype):
    alphas_cumprod = torch.cumprod(1 - ARRAYS[f"{schedule}/original_betas"], dim=0)  # fixture, float64
    scheduler = GlideScheduler(beta_schedule=schedule, timestep_respacing="10")
    g = torch.Generator().manual_seed(14)
    x0 = torch.rand((4, 3, 4, 4), generator=g, dtype=dtype) * 2 - 1
    noise = torch.randn((4, 3, 4, 4), generator=g, dtype=dtype)
    timesteps = torch.tensor([0, 17, 731, 999])  # original timesteps, not only the respaced ones
    noisy = scheduler.add_noise(x0, noise, timesteps)
    abar = alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    expected = abar.sqrt() * x0.double() + (1 - abar).sqrt() * noise.double()
    assert noisy.dtype == dtype
    assert max_abs_diff(noisy, expected) <= (1e-6 if dtype == torch.float32 else 1e-12)
    with pytest.raises(ValueError, match=r"\[0, 1000\)"):
        scheduler.add_noise(x0, noise, torch.tensor([0, 1, 2, 1000]))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
@pytest.mark.parametrize("index", [0, 5, 26])
def test_an_x0_model_steps_like_the_epsilon_model_it_equals(sampler, index):
    """prediction_type="sample": the first half of the output is x0; the same x0 as an epsilon gives the same step."""
    config = {"beta_schedule": "linear", "timestep_respacing": "fast27", "sampler": sampler, "eta": 0.5}
    eps_scheduler = GlideScheduler(**config)
    x0_scheduler = GlideScheduler(**config, prediction_type="sample")
    generator = torch.Generator().manual_seed(index)
    x_t, eps, noise, gradient = (torch.randn(2, 3, 8, 8, generator=generator, dtype=torch.float64) for _ in range(4))
    v = torch.rand(2, 3, 8, 8, generator=generator, dtype=torch.float64) * 2 - 1
    t = int(eps_scheduler.timesteps[len(eps_scheduler.timesteps) - 1 - index])
    abar = eps_scheduler.forward_process.process.alphas_cumprod[t]
    x0 = (x_t - math.sqrt(1 - abar) * eps) / math.sqrt(abar)  # unclipped: both then clip the same x0
    kwargs = {"variance_noise": noise, "guidance_gradient": gradient}
    expected = eps_scheduler.step(torch.cat([eps, v], 1), t, x_t, **kwargs)
    got = x0_scheduler.step(torch.cat([x0, v], 1), t, x_t, **kwargs)
    assert max_abs_diff(got.pred_original_sample, expected.pred_original_sample) < 1e-9
    assert max_abs_diff(got.prev_sample, expected.prev_sample) < 1e-9


def test_an_x0_scheduler_config_works_in_diffusers_schedulers():
    config = GlideScheduler(beta_schedule="linear", prediction_type="sample").config
    for cls in (DDIMScheduler, DPMSolverMultistepScheduler):
        assert cls.from_config(config).config.prediction_type == "sample"
    with pytest.raises(
        ValueError, match=r"`prediction_type` must be one of \('epsilon', 'sample'\), got 'v_prediction'"
    ):
        GlideScheduler(prediction_type="v_prediction")
