"""Cosine noise schedule in continuous time t in [0, 1] (Nichol & Dhariwal 2021, eq. 17).

The TypeScript sampler (gpu-service/src/sampler/schedule.ts) implements the same formulas; the constants
travel in the manifest so the two cannot drift apart silently.
"""
import math

import torch

COSINE_OFFSET = 0.008  # s in Nichol & Dhariwal eq. 17: keeps beta small near t = 0
ALPHA_BAR_MIN = 1e-5  # alpha_bar(1) would be exactly 0 (infinite noise); clamp so every ratio stays finite


def alpha_bar(t):
    """alpha_bar(t) = f(t) / f(0), f(t) = cos^2(((t + s) / (1 + s)) * pi / 2), clamped to [ALPHA_BAR_MIN, 1]."""
    t = torch.as_tensor(t, dtype=torch.float64)
    f_t = torch.cos((t + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
    f_0 = math.cos(COSINE_OFFSET / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
    return (f_t / f_0).clamp(ALPHA_BAR_MIN, 1.0)


def alpha_sigma(t):
    """Marginal q(x_t | x_0) = N(alpha x_0, sigma^2 I) with alpha^2 + sigma^2 = 1 (variance preserving)."""
    ab = alpha_bar(t)
    return ab.sqrt(), (1 - ab).sqrt()


def expand(v, like):
    """Broadcasts a per-example vector [B] over an image batch [B, C, H, W]."""
    return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def q_sample(x0, t, noise):
    """x_t = alpha_t x_0 + sigma_t eps."""
    alpha, sigma = alpha_sigma(t)
    return expand(alpha, x0) * x0 + expand(sigma, x0) * noise


def q_forward_from(x_t, t, s, noise):
    """Draws x_s ~ q(x_s | x_t) for s >= t (the forward process is Markov, Kingma et al. 2021 eq. 2-3):
    x_s = (alpha_s / alpha_t) x_t + sqrt(sigma_s^2 - (alpha_s / alpha_t)^2 sigma_t^2) eps'.

    This is how the sampler's stale features arise: the heavy encoder saw an earlier, noisier state of
    the same trajectory. Building x_s from x_t (rather than both from x_0 with one noise) stops the light
    net from reading x_t's noise out of the features, a shortcut that collapses sampling with reuse.
    """
    alpha_t, sigma_t = alpha_sigma(t)
    alpha_s, sigma_s = alpha_sigma(s)
    ratio = alpha_s / alpha_t
    var = (sigma_s ** 2 - ratio ** 2 * sigma_t ** 2).clamp_min(0.0)
    return expand(ratio, x_t) * x_t + expand(var.sqrt(), x_t) * noise
