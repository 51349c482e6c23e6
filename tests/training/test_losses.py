"""The hybrid loss against independent computations: the GLIDE scheduler and torch.distributions."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from diffusers_glide import GlideScheduler
from diffusers_glide.training.losses import GlideDiffusionLoss, discretized_gaussian_log_likelihood


@pytest.fixture(params=["squaredcos_cap_v2", "linear"])
def schedule(request):
    return request.param


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_add_noise_is_the_schedulers(schedule, dtype):
    # One implementation (the scheduler's is checked against the fixture betas): the very same values.
    loss_fn = GlideDiffusionLoss(beta_schedule=schedule)
    scheduler = GlideScheduler(beta_schedule=schedule)
    x0, noise = torch.randn(4, 3, 8, 8, dtype=dtype), torch.randn(4, 3, 8, 8, dtype=dtype)
    t = torch.tensor([0, 10, 500, 999])
    noisy = loss_fn.add_noise(x0, noise, t)
    assert noisy.dtype == dtype
    assert torch.equal(noisy, scheduler.add_noise(x0, noise, t))
    with pytest.raises(ValueError, match=r"original timesteps in \[0, 1000\), got \[0, 1000\]"):
        loss_fn.add_noise(x0[:2], noise[:2], torch.tensor([0, 1000]))


@pytest.mark.parametrize("t", [1, 37, 500, 999])
def test_learned_variance_is_the_samplers(schedule, t):
    # The scheduler (checked against GLIDE's sampling fixtures) adds sqrt(var) * noise in an ancestral step;
    # the loss must train exactly that variance.
    scheduler = GlideScheduler(beta_schedule=schedule, timestep_respacing="1000")
    loss_fn = GlideDiffusionLoss.from_scheduler_config(scheduler.config)
    sample = torch.randn(1, 3, 4, 4)
    values = torch.linspace(-1, 1, 48).view(1, 3, 4, 4)
    model_output = torch.cat([torch.randn(1, 3, 4, 4), values], dim=1)

    def step(noise):
        return scheduler.step(model_output, t, sample, variance_noise=noise).prev_sample

    std = step(torch.ones_like(sample)) - step(torch.zeros_like(sample))
    expected_log_variance = 2 * std.double().log()
    log_variance = loss_fn.model_log_variance(values, torch.tensor([t]))
    torch.testing.assert_close(log_variance.double(), expected_log_variance, atol=2e-4, rtol=0)


def test_vb_is_zero_for_the_true_posterior():
    loss_fn = GlideDiffusionLoss()
    x0, noise = torch.rand(6, 3, 8, 8) * 2 - 1, torch.randn(6, 3, 8, 8)
    t = torch.tensor([1, 2, 10, 200, 700, 999])
    x_t = loss_fn.add_noise(x0, noise, t)
    # epsilon = the true noise and variance value -1 (= the posterior variance) is the true posterior
    output = torch.cat([noise, -torch.ones_like(noise)], dim=1)
    losses = loss_fn(output, x0, x_t, noise, t)
    assert losses.vb.abs().max().item() < 1e-4, losses.vb
    assert losses.mse.abs().max().item() == 0


def test_vb_kl_matches_torch_distributions():
    loss_fn = GlideDiffusionLoss()
    x0, noise = torch.rand(3, 3, 4, 4) * 2 - 1, torch.randn(3, 3, 4, 4)
    t = torch.tensor([5, 300, 900])
    x_t = loss_fn.add_noise(x0, noise, t)
    eps, values = torch.randn_like(noise), torch.rand_like(noise) * 2 - 1
    vb = loss_fn.vb_terms_bpd(eps, values, x0, x_t, t)

    pred_x0 = loss_fn._gather("sqrt_recip_alphas_cumprod", t, x_t) * x_t
    pred_x0 = pred_x0 - loss_fn._gather("sqrt_recipm1_alphas_cumprod", t, x_t) * eps
    model = Normal(loss_fn.posterior_mean(pred_x0, x_t, t), (0.5 * loss_fn.model_log_variance(values, t)).exp())
    true_std = (0.5 * loss_fn._gather("posterior_log_variance_clipped", t, x_t)).exp()
    true = Normal(loss_fn.posterior_mean(x0, x_t, t), true_std.expand_as(x0))
    expected = kl_divergence(true, model).flatten(1).mean(1) / math.log(2)
    torch.testing.assert_close(vb, expected, rtol=1e-4, atol=1e-6)


def test_decoder_nll_matches_an_exact_discretised_gaussian():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.3, 1.0]).repeat_interleave(2) * 127.5 // 1 / 127.5
    x = x.clamp(-1, 1)
    means = x + torch.linspace(-0.08, 0.08, x.numel())  # within two scales: no underflow in the exact form
    log_scales = torch.full_like(x, math.log(0.05))
    normal = Normal(means, log_scales.exp())
    upper = torch.where(x > 0.999, torch.ones_like(x), normal.cdf(x + 1 / 255))
    lower = torch.where(x < -0.999, torch.zeros_like(x), normal.cdf(x - 1 / 255))
    exact = torch.log(upper - lower)
    # GLIDE uses the tanh approximation of the normal CDF: agreement to ~1e-2 nats
    torch.testing.assert_close(discretized_gaussian_log_likelihood(x, means, log_scales), exact, atol=2e-2, rtol=2e-2)


def test_vb_term_only_trains_the_variance_channels():
    loss_fn = GlideDiffusionLoss()
    x0, noise = torch.rand(2, 3, 4, 4) * 2 - 1, torch.randn(2, 3, 4, 4)
    t = torch.tensor([0, 400])
    x_t = loss_fn.add_noise(x0, noise, t)
    output = torch.randn(2, 6, 4, 4, requires_grad=True)
    losses = loss_fn(output, x0, x_t, noise, t)
    losses.vb.sum().backward()
    assert output.grad[:, :3].abs().max() == 0
    assert output.grad[:, 3:].abs().max() > 0
    torch.testing.assert_close(losses.loss, losses.mse + losses.vb)
    torch.testing.assert_close(losses.mse, (output[:, :3] - noise).square().mean(dim=(1, 2, 3)))


def test_errors():
    loss_fn = GlideDiffusionLoss()
    with pytest.raises(ValueError, match=r"\(6 channels\), got 3 channels"):
        loss_fn(
            torch.zeros(1, 3, 4, 4),
            torch.zeros(1, 3, 4, 4),
            torch.zeros(1, 3, 4, 4),
            torch.zeros(1, 3, 4, 4),
            torch.tensor([1]),
        )
    with pytest.raises(ValueError, match="learned-range"):
        GlideDiffusionLoss.from_scheduler_config({"variance_type": "fixed_small"})


def test_an_x0_model_is_trained_on_x0_with_the_same_variance_term():
    """prediction_type="sample": MSE against x0; the VB term equals the epsilon model's for the same x0."""
    eps_loss = GlideDiffusionLoss(beta_schedule="linear")
    x0_loss = GlideDiffusionLoss.from_scheduler_config(
        GlideScheduler(beta_schedule="linear", prediction_type="sample").config
    )
    assert x0_loss.prediction_type == "sample"
    generator = torch.Generator().manual_seed(0)
    x_start = torch.rand(4, 3, 8, 8, generator=generator) * 2 - 1
    noise, eps = torch.randn(4, 3, 8, 8, generator=generator), torch.randn(4, 3, 8, 8, generator=generator)
    v = torch.rand(4, 3, 8, 8, generator=generator) * 2 - 1
    timesteps = torch.tensor([0, 10, 500, 999])
    x_t = eps_loss.add_noise(x_start, noise, timesteps)
    pred_x0 = eps_loss.predicted_x_start(eps, x_t, timesteps)
    by_eps = eps_loss(torch.cat([eps, v], 1), x_start, x_t, noise, timesteps)
    by_x0 = x0_loss(torch.cat([pred_x0, v], 1), x_start, x_t, noise, timesteps)
    torch.testing.assert_close(by_x0.mse, (pred_x0 - x_start).square().flatten(1).mean(1))
    torch.testing.assert_close(by_x0.vb, by_eps.vb, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="`prediction_type` must be 'epsilon' or 'sample', got 'v_prediction'"):
        GlideDiffusionLoss(prediction_type="v_prediction")


def test_snr_floor_weighs_only_the_noisiest_steps():
    loss = GlideDiffusionLoss(snr_floor=0.03)
    timesteps = torch.tensor([0, 500, 800, 900, 950, 999])
    alphas_cumprod = torch.from_numpy(np.asarray(GlideScheduler().alphas_cumprod, dtype=np.float64))[timesteps]
    snr = alphas_cumprod / (1 - alphas_cumprod)
    expected = (0.03 / snr).clamp(1, 100).float()
    weights = loss.snr_floor_weights(timesteps)
    torch.testing.assert_close(weights, expected)
    assert weights[:3].tolist() == [1.0, 1.0, 1.0] and weights[-1] == 100.0 and 1 < weights[3] < weights[4] < 100

    # the MSE part of the loss is weighted per sample; the variational-bound part is not
    model_output, x_start, noise = torch.randn(6, 6, 4, 4), torch.rand(6, 3, 4, 4) * 2 - 1, torch.randn(6, 3, 4, 4)
    x_t = loss.add_noise(x_start, noise, timesteps)
    plain = GlideDiffusionLoss()(model_output, x_start, x_t, noise, timesteps)
    floored = loss(model_output, x_start, x_t, noise, timesteps)
    torch.testing.assert_close(floored.mse, plain.mse * expected)
    torch.testing.assert_close(floored.vb, plain.vb)


def test_timestep_bias_draws_the_noisiest_steps_more_often():
    loss = GlideDiffusionLoss()
    uniform = loss.sample_timesteps(40_000, "cpu", torch.Generator().manual_seed(0))
    biased = loss.sample_timesteps(
        40_000, "cpu", torch.Generator().manual_seed(0), bias_portion=0.2, bias_multiplier=4.0
    )
    assert biased.min() >= 0 and biased.max() <= 999
    # the last 20% of the steps hold 20% of the draws uniformly, and 4 * 0.2 / (0.8 + 4 * 0.2) = 50% biased
    assert abs(float((uniform >= 800).float().mean()) - 0.2) < 0.01
    assert abs(float((biased >= 800).float().mean()) - 0.5) < 0.01
    assert abs(float((biased < 400).float().mean()) - 0.25) < 0.01  # uniform below the biased portion
