"""Beta schedules, respacing strings and respaced process arrays against the reference fixtures and hand values."""

import json
import math

import numpy as np
import pytest
from conftest import REFERENCE_DIR
from safetensors.numpy import load_file

from diffusers_glide.schedulers.respacing import (
    compute_process,
    compute_respaced_process,
    cosine_beta_schedule,
    get_beta_schedule,
    linear_beta_schedule,
    space_timesteps,
)

RESPACING_TABLE = json.loads((REFERENCE_DIR / "respacing.json").read_text())
ARRAYS = load_file(str(REFERENCE_DIR / "respacing_arrays.safetensors"))
SCHEDULES = ("squaredcos_cap_v2", "linear")
FIXTURE_RESPACINGS = sorted({key.split("/")[1] for key in ARRAYS if key.count("/") == 2})
ARRAY_NAMES = sorted({key.split("/")[2] for key in ARRAYS if key.count("/") == 2})
TOLERANCE = 1e-6


def test_fixture_inventory():
    # Guards against a silently shrinking parametrisation.
    assert RESPACING_TABLE["diffusion_steps"] == 1000
    assert len(RESPACING_TABLE["timesteps"]) == 10
    assert set(FIXTURE_RESPACINGS) == {"150", "fast27", "10", "ddim10", "1000"}
    assert len(ARRAY_NAMES) == 10


@pytest.mark.parametrize("respacing", sorted(RESPACING_TABLE["timesteps"]))
def test_space_timesteps_matches_reference_exactly(respacing):
    assert space_timesteps(1000, respacing) == RESPACING_TABLE["timesteps"][respacing]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_original_betas_match_reference(schedule):
    betas = get_beta_schedule(schedule, 1000)
    expected = ARRAYS[f"{schedule}/original_betas"]
    assert betas.dtype == np.float64 and betas.shape == expected.shape
    diff = np.abs(betas - expected).max()
    assert diff <= TOLERANCE, f"{schedule} original_betas: max abs diff {diff}"


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("respacing", FIXTURE_RESPACINGS)
def test_respaced_arrays_match_reference(schedule, respacing):
    process = compute_respaced_process(get_beta_schedule(schedule, 1000), space_timesteps(1000, respacing)).to_dict()
    assert set(ARRAY_NAMES) <= set(process)
    expected_map = ARRAYS[f"{schedule}/{respacing}/timestep_map"]
    assert process["timestep_map"].tolist() == expected_map.tolist()
    diffs = {}
    for name in ARRAY_NAMES:
        if name == "timestep_map":
            continue
        expected = ARRAYS[f"{schedule}/{respacing}/{name}"]
        assert process[name].dtype == np.float64 and process[name].shape == expected.shape, name
        diffs[name] = float(np.abs(process[name] - expected).max())
    bad = {name: diff for name, diff in diffs.items() if not diff <= TOLERANCE}
    assert not bad, f"{schedule}/{respacing}: max abs diff per array {diffs}"


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_the_original_process_is_the_fixture_process_keeping_every_step(schedule):
    # The tables `add_noise` and the training loss use: GLIDE's `GaussianDiffusion` of the original betas, which the
    # reference's respacing "1000" reproduces (its betas recomputed from the cumulative alphas).
    betas = get_beta_schedule(schedule, 1000)
    process = compute_process(betas)
    assert process.timestep_map.tolist() == list(range(1000))
    assert np.array_equal(process.betas, betas)
    for name in ARRAY_NAMES:
        expected = ARRAYS[f"{schedule}/1000/{name}"]
        diff = float(np.abs(getattr(process, name) - expected).max())
        assert diff <= TOLERANCE, f"{schedule} {name}: max abs diff {diff}"
    # The arrays the fixture does not hold, from the fixture's own cumulative alphas and betas.
    alphas_cumprod = ARRAYS[f"{schedule}/1000/alphas_cumprod"]
    np.testing.assert_allclose(process.sqrt_alphas_cumprod, np.sqrt(alphas_cumprod), rtol=0, atol=1e-12)
    np.testing.assert_allclose(process.sqrt_one_minus_alphas_cumprod, np.sqrt(1 - alphas_cumprod), rtol=0, atol=1e-12)
    np.testing.assert_allclose(process.log_betas, np.log(ARRAYS[f"{schedule}/original_betas"]), rtol=1e-12, atol=0)


def test_a_process_needs_two_steps():
    with pytest.raises(ValueError, match="needs at least 2 steps, got 1"):
        compute_process(np.array([0.5]))


def test_linear_schedule_is_scaled_by_1000_over_steps():
    # Hand values: for 500 steps GLIDE doubles both ends (0.0001 -> 0.0002, 0.02 -> 0.04).
    betas = linear_beta_schedule(500)
    assert len(betas) == 500
    assert betas[0] == pytest.approx(0.0002, abs=1e-15) and betas[-1] == pytest.approx(0.04, abs=1e-15)
    assert np.allclose(np.diff(betas), (0.04 - 0.0002) / 499, rtol=0, atol=1e-15)
    # 1000 steps: the plain diffusers endpoints.
    assert linear_beta_schedule(1000)[[0, -1]].tolist() == [0.0001, 0.02]


def test_cosine_schedule_hand_values():
    betas = cosine_beta_schedule(1000)
    # abar(1) = cos(pi / 2) ** 2 is ~0, so the last beta hits the 0.999 cap.
    assert betas[-1] == 0.999
    abar0 = math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    abar1 = math.cos((0.001 + 0.008) / 1.008 * math.pi / 2) ** 2
    assert betas[0] == pytest.approx(1 - abar1 / abar0, rel=1e-12)
    assert np.all(betas > 0) and np.all(betas <= 0.999)


@pytest.mark.parametrize(
    ("total", "respacing", "expected"),
    [
        # One section of 10 steps keeping 3: stride 4.5 -> 0, round(4.5) = 4 (half to even), 9.
        (10, "3", [0, 4, 9]),
        (10, "2", [0, 9]),
        (10, "1", [0]),
        (10, "10", list(range(10))),
        # Two sections of 5: [0, 4] and [5].
        (10, "2,1", [0, 4, 5]),
        # 11 steps in 3 sections: sizes 4, 4, 3 (the first 11 % 3 = 2 sections one longer).
        (11, "1,1,1", [0, 4, 8]),
        (11, "2,2,2", [0, 3, 4, 7, 8, 10]),
        # A count of 0 skips its section; the second section 5..9 keeps 3 with stride 2.
        (10, "0,3", [5, 7, 9]),
        (10, "ddim5", [0, 2, 4, 6, 8]),
        (10, "ddim4", [0, 3, 6, 9]),
        (10, "ddim10", list(range(10))),
        (10, "", list(range(10))),
        (1000, "ddim1000", list(range(1000))),
        (1000, "ddim7", list(range(0, 1000, 143))),
        (1000, " 10 ", RESPACING_TABLE["timesteps"]["10"]),
    ],
)
def test_space_timesteps_hand_cases(total, respacing, expected):
    assert space_timesteps(total, respacing) == expected


def test_fast27_moves_the_last_step():
    fast27 = space_timesteps(1000, "fast27")
    sections = space_timesteps(1000, "10,10,3,2,2")
    assert 999 in sections and 999 not in fast27 and fast27[-1] == 997
    assert set(fast27) == (set(sections) - {999}) | {997}


@pytest.mark.parametrize(
    ("respacing", "message"),
    [
        ("abc", "is not an integer"),
        ("0,", "is not an integer"),
        ("10,,10", "is not an integer"),
        ("ddim", "is not an integer"),
        ("ddimx", "is not an integer"),
        ("fast28", "is not an integer"),
        # ceil(1000 / i) jumps from 500 (i = 2) to 334 (i = 3) and never reaches 1: no stride fits.
        ("ddim400", "no integer stride"),
        ("ddim999", "no integer stride"),
        ("ddim1", "no integer stride"),
        ("1001", "cannot keep 1001"),
        ("10,10,10,600", "cannot keep 600"),
        ("-5", "must not be negative"),
        ("0", "keeps no timesteps"),
    ],
)
def test_space_timesteps_rejects_bad_strings(respacing, message):
    with pytest.raises(ValueError, match=message):
        space_timesteps(1000, respacing)


def test_space_timesteps_rejects_non_strings():
    with pytest.raises(ValueError, match="must be a string"):
        space_timesteps(1000, 100)


def test_respaced_process_keeps_the_original_noise_levels():
    # Independent of the fixtures: the respaced cumulative alphas equal the original ones at the kept steps.
    betas = cosine_beta_schedule(1000)
    original = np.cumprod(1 - betas)
    kept = [3, 50, 51, 400, 998]
    process = compute_respaced_process(betas, kept)
    assert process.timestep_map.tolist() == kept
    np.testing.assert_allclose(process.alphas_cumprod, original[kept], rtol=1e-9, atol=0)
    assert process.posterior_variance[0] == 0.0
    assert process.posterior_log_variance_clipped[0] == process.posterior_log_variance_clipped[1]


@pytest.mark.parametrize(
    ("timesteps", "message"),
    [([5], "at least 2"), ([5, 5], "unique"), ([-1, 5], r"in \[0, 1000\)"), ([5, 1000], "in")],
)
def test_respaced_process_rejects_bad_timesteps(timesteps, message):
    with pytest.raises(ValueError, match=message):
        compute_respaced_process(cosine_beta_schedule(1000), timesteps)
