"""Latent diffusion (paper §3.2): the VP SDE, its closed-form marginal, the score from a data prediction, samplers.

The diffusion model turns Gaussian noise into codec latents z (B, D, T) through a variance-preserving SDE:

    forward SDE        dz_t = −½ β_t z_t dt + √β_t dw_t,                       t ∈ [0, 1]
    marginal           p(z_t | z_0) = N(ρ(z_0, t), Σ_t),  ρ(z_0, t) = exp(−½ ∫₀ᵗ β_s ds) z_0,
                                                   Σ_t = (1 − exp(−∫₀ᵗ β_s ds)) I
    reverse SDE        dz_t = −(½ z_t + ∇log p_t(z_t)) β_t dt + √β_t dw̃_t
    probability flow   dz_t = −½ (z_t + ∇log p_t(z_t)) β_t dt

NaturalSpeech 2's network predicts the clean latent ẑ_0 = s_θ(z_t, t, c), not the score; the score it implies is

    score from ẑ_0     ∇log p_t(z_t) ≈ Σ_t⁻¹ (ρ(ẑ_0, t) − z_t)

The paper does not state its β schedule: the linear β_t = β_0 + (β_1 − β_0) t with β_0 = 0.05, β_1 = 20 is the
common reading (Grad-TTS). Status: this file holds the SDE and the samplers (issue [3]); the WaveNet denoiser
(Fig. 4) and the loss with its CE-RVQ term arrive next, with the rest of issue [3].

Samplers are pure functions with one signature, `sample_*(denoise, z1, ts, ...)`: `denoise(z_t, t) -> ẑ_0` is any
data predictor (a trained network with its conditions bound, or an exact formula in the tests), `z1` the starting
noise, `ts` the decreasing time grid from `time_grid`, `generator` the RNG of the stochastic sampler (the ODE
samplers ignore it).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SDEConfig:
    beta_0: float = 0.05        # β at t = 0 (not stated in the paper; Grad-TTS's value)
    beta_1: float = 20.0        # β at t = 1
    t_end: float = 1e-3         # samplers stop here; Σ_t → 0 at t = 0, where the score is undefined
    temperature: float = 1.44   # τ: start noise z_1 ~ N(0, τ⁻¹ I), τ = 1.2² (§4.3)


def beta(t, cfg: SDEConfig):
    """β_t = β_0 + (β_1 − β_0) t."""
    return cfg.beta_0 + (cfg.beta_1 - cfg.beta_0) * t


def int_beta(t, cfg: SDEConfig):
    """∫₀ᵗ β_s ds = β_0 t + ½ (β_1 − β_0) t²."""
    return cfg.beta_0 * t + 0.5 * (cfg.beta_1 - cfg.beta_0) * t ** 2


def _bcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """t () or (B,) -> shape broadcastable against a (B, D, T) latent."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1, *([1] * (like.dim() - 1))) if t.dim() else t


def rho(z0: torch.Tensor, t, cfg: SDEConfig) -> torch.Tensor:
    """Marginal mean: ρ(z_0, t) = exp(−½ ∫₀ᵗ β_s ds) z_0."""
    return torch.exp(-0.5 * int_beta(_bcast(t, z0), cfg)) * z0


def sigma2(t, cfg: SDEConfig, like: torch.Tensor | None = None) -> torch.Tensor:
    """Marginal variance: Σ_t = 1 − exp(−∫₀ᵗ β_s ds) (a scalar times I), broadcast like `like` if given."""
    t = _bcast(t, like) if like is not None else torch.as_tensor(t, dtype=torch.float32)
    return -torch.expm1(-int_beta(t, cfg))


def forward_noise(z0: torch.Tensor, t, cfg: SDEConfig, eps: torch.Tensor | None = None) -> tuple:
    """Sample p(z_t | z_0) in closed form: z_t = ρ(z_0, t) + √Σ_t ε, ε ~ N(0, I). Returns (z_t, ε)."""
    eps = torch.randn_like(z0) if eps is None else eps
    return rho(z0, t, cfg) + sigma2(t, cfg, z0).sqrt() * eps, eps


def score_from_z0(z_t: torch.Tensor, z0_hat: torch.Tensor, t, cfg: SDEConfig) -> torch.Tensor:
    """Score from a data prediction: the score implied by a data prediction, ∇log p_t(z_t) ≈ Σ_t⁻¹ (ρ(ẑ_0, t) − z_t).

    With ẑ_0 = z_0 it is the conditional score ∇log p(z_t | z_0) = −ε / √Σ_t (tested).
    """
    return (rho(z0_hat, t, cfg) - z_t) / sigma2(t, cfg, z_t)


# ---------------------------------------------------------------------------------------------------------------
# Samplers: integrate from t = 1 down to t_end, then return the data prediction there.
# ---------------------------------------------------------------------------------------------------------------
def time_grid(steps: int, cfg: SDEConfig, device=None) -> torch.Tensor:
    """steps + 1 times, uniformly spaced from 1 down to t_end."""
    if steps < 1:
        raise ValueError("the number of sampling steps must be at least 1")
    return torch.linspace(1.0, cfg.t_end, steps + 1, device=device)


def start_noise(shape, cfg: SDEConfig, generator=None, device=None) -> torch.Tensor:
    """z_1 ~ N(0, τ⁻¹ I) (§4.3: τ = 1.2²; a temperature above 1 trades diversity for stability)."""
    return torch.randn(shape, generator=generator, device=device) / cfg.temperature ** 0.5


def ode_drift(denoise, z, t, cfg: SDEConfig) -> torch.Tensor:
    """Probability-flow ODE right-hand side: dz/dt = −½ (z + ∇log p_t(z)) β_t, with the score from `score_from_z0`."""
    score = score_from_z0(z, denoise(z, t), t, cfg)
    return -0.5 * (z + score) * beta(t, cfg)


def sample_euler_ode(denoise, z1: torch.Tensor, ts: torch.Tensor, cfg: SDEConfig, generator=None) -> torch.Tensor:
    """The paper's sampler (§4.3): Euler steps of the probability-flow ODE, z ← z + (t' − t) · dz/dt."""
    z = z1
    for t, t_next in zip(ts[:-1], ts[1:]):
        z = z + (t_next - t) * ode_drift(denoise, z, t, cfg)
    return denoise(z, ts[-1])


def sample_heun(denoise, z1: torch.Tensor, ts: torch.Tensor, cfg: SDEConfig, generator=None) -> torch.Tensor:
    """Heun's second-order method on the probability-flow ODE (Karras et al. 2022): an Euler predictor, then the trapezoid rule
    with the drift at both ends. Two network calls per step, but far fewer steps for the same error."""
    z = z1
    for t, t_next in zip(ts[:-1], ts[1:]):
        d = ode_drift(denoise, z, t, cfg)
        z_pred = z + (t_next - t) * d
        z = z + (t_next - t) * 0.5 * (d + ode_drift(denoise, z_pred, t_next, cfg))
    return denoise(z, ts[-1])


def sample_sde(denoise, z1: torch.Tensor, ts: torch.Tensor, cfg: SDEConfig, generator=None) -> torch.Tensor:
    """Euler–Maruyama on the reverse SDE, stepping backwards in time (h = t' − t < 0):
        z ← z + h · (−(½ z + ∇log p_t(z)) β_t) + √(β_t |h|) ξ,   ξ ~ N(0, I)."""
    z = z1
    for t, t_next in zip(ts[:-1], ts[1:]):
        h = t_next - t
        b = beta(t, cfg)
        score = score_from_z0(z, denoise(z, t), t, cfg)
        noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        z = z + h * (-(0.5 * z + score) * b) + (b * -h).sqrt() * noise
    return denoise(z, ts[-1])


SAMPLERS = {"ode": sample_euler_ode, "heun": sample_heun, "sde": sample_sde}
