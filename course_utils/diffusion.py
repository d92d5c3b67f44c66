"""Denoising diffusion (DDPM, Ho et al., 2020): the noise schedule, noising in closed form,
the noise-prediction loss and one step of the sampler.

With betas b_1..b_T, alpha_t = 1 - b_t and abar_t = alpha_1 * ... * alpha_t:
    q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), so x_t = sqrt(abar_t) x_0 +
    sqrt(1 - abar_t) eps with eps ~ N(0, I), at any t in one step;
    a network eps_hat(x_t, t) learns to predict eps (loss: mean squared error);
    sampling walks back: x_{t-1} = (x_t - b_t / sqrt(1 - abar_t) * eps_hat) / sqrt(alpha_t)
    + sigma_t z, with sigma_t^2 = b_t (1 - abar_{t-1}) / (1 - abar_t) and no noise at t = 1.
Time steps are 1-based as in the paper; arrays are indexed with t - 1.
"""
from __future__ import annotations

from .backend import array_module, get_xp


def linear_schedule(T, beta_1=1e-4, beta_T=0.02, xp=None):
    """The paper's schedule: betas rising linearly from beta_1 to beta_T over T steps.
    Returns a dict of (T,) float64 arrays: betas, alphas, alpha_bars."""
    if T < 1 or not 0 < beta_1 <= beta_T < 1:
        raise ValueError(f"linear_schedule: need T >= 1 and 0 < beta_1 <= beta_T < 1, got "
                         f"T={T}, beta_1={beta_1}, beta_T={beta_T}.")
    xp = xp or get_xp()
    betas = xp.linspace(beta_1, beta_T, T)
    alphas = 1.0 - betas
    return {"betas": betas, "alphas": alphas, "alpha_bars": xp.cumprod(alphas)}


def _per_example(values, t, ndim):
    """values[t - 1] for each example's step t (N,), shaped to broadcast over (N, ...)."""
    return values[t - 1].reshape((-1,) + (1,) * (ndim - 1))


def q_sample(x0, t, noise, schedule):
    """x_t drawn from q(x_t | x_0) in closed form: sqrt(abar_t) x0 + sqrt(1 - abar_t) noise.
    x0, noise: (N, ...); t: (N,) integer steps in 1..T."""
    xp = array_module(x0)
    abar = _per_example(schedule["alpha_bars"], t, x0.ndim)
    return xp.sqrt(abar) * x0 + xp.sqrt(1.0 - abar) * noise


def noise_loss(eps_hat, eps):
    """The simplified DDPM loss: mean squared error of the predicted noise.
    Returns (loss, deps_hat)."""
    diff = eps_hat - eps
    return float((diff * diff).mean()), 2.0 * diff / diff.size


def p_sample_step(x_t, t, eps_hat, schedule, z):
    """One step of the sampler from x_t to x_{t-1} (the same t for the whole batch).
    eps_hat: the network's noise prediction at (x_t, t); z: fresh N(0, I) noise of x_t's
    shape (ignored at t = 1, where the step adds none)."""
    xp = array_module(x_t)
    beta, alpha = schedule["betas"][t - 1], schedule["alphas"][t - 1]
    abar = schedule["alpha_bars"][t - 1]
    mean = (x_t - beta / xp.sqrt(1.0 - abar) * eps_hat) / xp.sqrt(alpha)
    if t == 1:
        return mean
    abar_prev = schedule["alpha_bars"][t - 2]
    sigma = xp.sqrt(beta * (1.0 - abar_prev) / (1.0 - abar))
    return mean + sigma * z
