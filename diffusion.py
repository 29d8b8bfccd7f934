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
common reading (Grad-TTS). The denoiser is the WaveNet of Fig. 4 (`WaveNet`); the CE-RVQ term of the loss lives in
rvq.py, and model.py composes the whole. §5's source-aware step runs the same ODE forward (`invert_euler_ode`).

Samplers are pure functions with one signature, `sample_*(denoise, z1, ts, ...)`: `denoise(z_t, t) -> ẑ_0` is any
data predictor (a trained network with its conditions bound, or an exact formula in the tests), `z1` the starting
noise, `ts` the decreasing time grid from `time_grid`, `generator` the RNG of the stochastic sampler (the ODE
samplers ignore it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from prior import Dropout
from prompt import FiLM, PromptAttention, QueryAttention


@dataclass
class SDEConfig:
    beta_0: float = 0.05        # β at t = 0 (not stated in the paper; Grad-TTS's value)
    beta_1: float = 20.0        # β at t = 1
    t_end: float = 1e-3         # samplers stop here; Σ_t → 0 at t = 0, where the score is undefined
    t_invert: float = 0.03      # the forward ODE of §5 starts here (Σ_t ≈ 0.01), not at 0 (`inversion_grid`)
    temperature: float = 1.44   # τ: start noise z_1 ~ N(0, τ⁻¹ I), τ = 1.2² (§4.3)
    snr_clamp: float = 5.0      # score-term guard: its weight relative to the data term is min(SNR(t), snr_clamp)


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
    # BEGIN SOLUTION 2
    # Provides: return ρ(z_0, t), shaped like z0 (t is () or (B,): broadcast it with _bcast).
    return torch.exp(-0.5 * int_beta(_bcast(t, z0), cfg)) * z0
    # END SOLUTION


def sigma2(t, cfg: SDEConfig, like: torch.Tensor | None = None) -> torch.Tensor:
    """Marginal variance: Σ_t = 1 − exp(−∫₀ᵗ β_s ds) (a scalar times I), broadcast like `like` if given."""
    t = _bcast(t, like) if like is not None else torch.as_tensor(t, dtype=torch.float32)
    # BEGIN SOLUTION 2
    # Provides: return Σ_t at the t above (already broadcast like `like` when it is given).
    return -torch.expm1(-int_beta(t, cfg))
    # END SOLUTION


def forward_noise(z0: torch.Tensor, t, cfg: SDEConfig, eps: torch.Tensor | None = None) -> tuple:
    """Sample p(z_t | z_0) in closed form: z_t = ρ(z_0, t) + √Σ_t ε, ε ~ N(0, I). Returns (z_t, ε)."""
    eps = torch.randn_like(z0) if eps is None else eps
    return rho(z0, t, cfg) + sigma2(t, cfg, z0).sqrt() * eps, eps


def score_from_z0(z_t: torch.Tensor, z0_hat: torch.Tensor, t, cfg: SDEConfig) -> torch.Tensor:
    """Score from a data prediction: the score implied by a data prediction, ∇log p_t(z_t) ≈ Σ_t⁻¹ (ρ(ẑ_0, t) − z_t).

    With ẑ_0 = z_0 it is the conditional score ∇log p(z_t | z_0) = −ε / √Σ_t (tested).
    """
    # BEGIN SOLUTION 3
    # Provides: return the score Σ_t⁻¹ (ρ(ẑ_0, t) − z_t), shaped like z_t.
    return (rho(z0_hat, t, cfg) - z_t) / sigma2(t, cfg, z_t)
    # END SOLUTION


def sample_times(batch: int, t_min: float = 0.01, generator=None, device=None) -> torch.Tensor:
    """Training times t ~ U[t_min, 1] (B,): part of the guard against the score term's blow-up near t = 0."""
    return t_min + (1 - t_min) * torch.rand(batch, generator=generator, device=device)


def diffusion_loss_terms(z0, z0_hat, z_t, eps, t, cfg: SDEConfig, mask) -> dict:
    """The first two terms of L_diff (§3.2), each a mean over real frames (`mask` (B, T)) and dimensions:

        data   ||ẑ_0 − z_0||²
        score  ||Σ_t⁻¹(ρ(ẑ_0, t) − z_t) − ∇log p(z_t | z_0)||²,  weighted by λ(t) = Σ_t · min(1, γ / SNR(t))

    Departure from the paper (its score term has no weight): unweighted, the term equals SNR(t)/Σ_t · ||ẑ_0 − z_0||²
    with SNR(t) = exp(−∫β)/Σ_t, which grows like 1/t² as t → 0 (at t = 0.01 it is ~4·10⁵ times the data term) and
    wrecks training. The guard has three parts: (1) λ(t) = Σ_t, the usual score-matching weight (Song et al. 2021),
    turns the term into the noise-prediction loss ||ε̂ − ε||², ε̂ = (z_t − ρ(ẑ_0, t)) / √Σ_t, which equals
    SNR(t) · ||ẑ_0 − z_0||²; (2) the min-SNR clamp (Hang et al. 2023) caps that factor at γ = `snr_clamp` (without
    it, a one-utterance overfit diverged: the ε-loss still weighs small t up to ~660×); (3) training times stay
    ≥ t_min (`sample_times`). The CE-RVQ term needs the codebooks and is added by the composer (model.py).
    """
    # BEGIN SOLUTION 4
    # Provides: return dict(data=..., score=...): two scalars, each a mean over real frames (mask) and dimensions.
    m = mask[:, None].to(z0.dtype)
    denom = m.sum() * z0.shape[1]
    sig = sigma2(t, cfg, z0)
    snr = torch.exp(-int_beta(_bcast(t, z0), cfg)) / sig
    eps_hat = (z_t - rho(z0_hat, t, cfg)) / sig.sqrt()                 # = −√Σ_t · (score from ẑ_0)
    weight = torch.clamp(cfg.snr_clamp / snr, max=1.0)
    return dict(data=(((z0_hat - z0) ** 2) * m).sum() / denom,
                score=((weight * (eps_hat - eps) ** 2) * m).sum() / denom)
    # END SOLUTION


# ---------------------------------------------------------------------------------------------------------------
# Samplers: integrate from t = 1 down to t_end, then return the data prediction there.
# ---------------------------------------------------------------------------------------------------------------
def log_snr(t, cfg: SDEConfig) -> torch.Tensor:
    """λ_t = log(α_t / σ_t), half the log signal-to-noise ratio, with α_t = exp(−½∫₀ᵗβ) and σ_t = √Σ_t."""
    ib = int_beta(torch.as_tensor(t, dtype=torch.float64), cfg)
    return 0.5 * (-ib - torch.log(-torch.expm1(-ib)))


def time_grid(steps: int, cfg: SDEConfig, device=None, spacing: str = "time") -> torch.Tensor:
    """steps + 1 decreasing times from 1 down to t_end: uniformly spaced in t (`spacing="time"`, the paper's
    sampler), or uniformly in λ_t = log(α_t/σ_t) (`"logsnr"`, the grid of `sample_dpm`: equal steps h in λ,
    denser near t = 0, where the latent's detail is decided). The logSNR grid inverts λ in closed form:
    ∫₀ᵗβ = softplus(−2λ), then t solves ½(β_1 − β_0)t² + β_0 t = ∫₀ᵗβ."""
    if steps < 1:
        raise ValueError("the number of sampling steps must be at least 1")
    if spacing == "time":
        return torch.linspace(1.0, cfg.t_end, steps + 1, device=device)
    if spacing != "logsnr":
        raise ValueError(f"unknown grid spacing {spacing!r}; choose 'time' or 'logsnr'")
    lam = torch.linspace(float(log_snr(1.0, cfg)), float(log_snr(cfg.t_end, cfg)), steps + 1, dtype=torch.float64)
    ib = F.softplus(-2 * lam)
    b0, db = cfg.beta_0, cfg.beta_1 - cfg.beta_0
    ts = (-b0 + torch.sqrt(b0 ** 2 + 2 * db * ib)) / db
    ts[0], ts[-1] = 1.0, cfg.t_end                                      # exact ends despite rounding
    return ts.to(torch.float32).to(device)


class RowGenerators:
    """One random stream per batch row, each drawing noise for its own `lengths[i]` frames only (padding gets 0).

    With one torch.Generator for a whole batch, a sample's noise depends on its neighbours and on the padded
    length; with these, sampling a batch gives what sampling each row alone gives (batched synthesis is then only
    faster, never different). Pass wherever a sampler takes `generator`."""

    def __init__(self, seeds: list, lengths: list):
        if len(seeds) != len(lengths):
            raise ValueError(f"{len(seeds)} seeds for {len(lengths)} rows")
        self.gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.lengths = [int(n) for n in lengths]

    def randn(self, shape, device=None, dtype=None) -> torch.Tensor:
        B, D, T = shape
        if B != len(self.gens):
            raise ValueError(f"asked for {B} rows of noise, have {len(self.gens)} streams")
        out = torch.zeros(B, D, T, dtype=dtype)
        for i, (g, n) in enumerate(zip(self.gens, self.lengths)):
            out[i, :, :n] = torch.randn(D, n, generator=g, dtype=dtype)
        return out.to(device)


def randn(shape, generator=None, device=None, dtype=None) -> torch.Tensor:
    """Standard normal noise from a torch.Generator (or None), or row by row from `RowGenerators`."""
    if isinstance(generator, RowGenerators):
        return generator.randn(shape, device, dtype)
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def start_noise(shape, cfg: SDEConfig, generator=None, device=None) -> torch.Tensor:
    """z_1 ~ N(0, τ⁻¹ I) (§4.3: τ = 1.2²; a temperature above 1 trades diversity for stability)."""
    return randn(shape, generator=generator, device=device) / cfg.temperature ** 0.5


def ode_drift(denoise, z, t, cfg: SDEConfig) -> torch.Tensor:
    """Probability-flow ODE right-hand side: dz/dt = −½ (z + ∇log p_t(z)) β_t, with the score from `score_from_z0`."""
    # BEGIN SOLUTION 8
    # Provides: return dz/dt at (z, t), shaped like z, from one call of denoise(z, t).
    score = score_from_z0(z, denoise(z, t), t, cfg)
    return -0.5 * (z + score) * beta(t, cfg)
    # END SOLUTION


def sample_euler_ode(denoise, z1: torch.Tensor, ts: torch.Tensor, cfg: SDEConfig, generator=None) -> torch.Tensor:
    """The paper's sampler (§4.3): Euler steps of the probability-flow ODE, z ← z + (t' − t) · dz/dt."""
    # BEGIN SOLUTION 8
    # Provides: return denoise(z, ts[-1]) after one Euler step per interval of ts, starting from z1.
    z = z1
    for t, t_next in zip(ts[:-1], ts[1:]):
        z = z + (t_next - t) * ode_drift(denoise, z, t, cfg)
    return denoise(z, ts[-1])
    # END SOLUTION


def sample_heun(denoise, z1: torch.Tensor, ts: torch.Tensor, cfg: SDEConfig, generator=None) -> torch.Tensor:
    """Heun's second-order method on the probability-flow ODE (Karras et al. 2022): an Euler predictor, then the
    trapezoid rule with the drift at both ends. Two network calls per step, but far fewer steps for the same error.

    The last step is a plain Euler step (as Karras et al.'s, which skip the correction on the step to σ = 0): its
    corrector would take the drift at t_end, where the score Σ_t⁻¹(ρ(ẑ_0, t) − z_t) divides the denoiser's error by
    Σ_t ≈ 5·10⁻⁵; with a trained network (not the exact denoiser) that correction wrecks the sample at few steps."""
    z = z1
    last = len(ts) - 2
    for k, (t, t_next) in enumerate(zip(ts[:-1], ts[1:])):
        d = ode_drift(denoise, z, t, cfg)
        z_pred = z + (t_next - t) * d
        z = z_pred if k == last else z + (t_next - t) * 0.5 * (d + ode_drift(denoise, z_pred, t_next, cfg))
    return denoise(z, ts[-1])


def sample_sde(denoise, z1: torch.Tensor, ts: torch.Tensor, cfg: SDEConfig, generator=None) -> torch.Tensor:
    """Euler–Maruyama on the reverse SDE, stepping backwards in time (h = t' − t < 0):
        z ← z + h · (−(½ z + ∇log p_t(z)) β_t) + √(β_t |h|) ξ,   ξ ~ N(0, I)."""
    z = z1
    for t, t_next in zip(ts[:-1], ts[1:]):
        h = t_next - t
        b = beta(t, cfg)
        score = score_from_z0(z, denoise(z, t), t, cfg)
        noise = randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        z = z + h * (-(0.5 * z + score) * b) + (b * -h).sqrt() * noise
    return denoise(z, ts[-1])


def sample_dpm(denoise, z1: torch.Tensor, ts: torch.Tensor, cfg: SDEConfig, generator=None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022): a second-order multistep exponential integrator of the probability-flow ODE,
    written for data-prediction networks like this one. In λ_t = log(α_t/σ_t) the ODE's solution is exact up to an
    integral of the data prediction,

        z_t' = (σ_t'/σ_t) z_t + σ_t' ∫_{λ_t}^{λ_t'} e^λ ẑ_0(z_λ, λ) dλ,

    so only ẑ_0's change along the step is approximated. With h_i = λ_{t_i} − λ_{t_{i−1}} and ẑ_0^(i) = ẑ_0 at t_i:

        z_{t_{i+1}} = (σ_{i+1}/σ_i) z_{t_i} − α_{i+1} (e^{−h_{i+1}} − 1) D_i,
        D_i = (1 + 1/(2r_i)) ẑ_0^(i) − 1/(2r_i) ẑ_0^(i−1),   r_i = h_i / h_{i+1},

    and D_0 = ẑ_0^(0) on the first step (first order: DDIM). Every step reuses the previous network call, so
    N steps cost N network evaluations (plus the final ẑ_0 at t_end that every sampler here returns). Use it with
    `time_grid(steps, cfg, spacing="logsnr")` (equal h); deterministic, `generator` is ignored."""
    z, prev, h_prev = z1, None, None
    lam = log_snr(ts, cfg)
    sig = (-torch.expm1(-int_beta(ts.double(), cfg))).sqrt()
    alpha = torch.exp(-0.5 * int_beta(ts.double(), cfg))
    for i in range(len(ts) - 1):
        h = float(lam[i + 1] - lam[i])
        z0 = denoise(z, ts[i])
        d = z0 if prev is None else (1 + 0.5 * h / h_prev) * z0 - 0.5 * h / h_prev * prev       # 1/(2r) = h/(2h_prev)
        z = float(sig[i + 1] / sig[i]) * z - float(alpha[i + 1]) * math.expm1(-h) * d
        prev, h_prev = z0, h
    return denoise(z, ts[-1])


SAMPLERS = {"ode": sample_euler_ode, "heun": sample_heun, "sde": sample_sde, "dpm": sample_dpm}
PAPER_SAMPLING = ("ode", 150)           # §4.3: 150 Euler steps of the probability-flow ODE
# Departure from the paper (§4.3: 150 Euler steps): the default is the fewest network evaluations whose scores on
# the toy corpus's held-out voices are within the seed-to-seed noise of the paper's setting (docs/sampler-steps.md):
# 9 DPM-Solver++ steps, 10 evaluations, not 151.
DEFAULT_SAMPLING = ("dpm", 9)


def sampling_setting(sampler: str | None = None, steps: int | None = None) -> tuple[str, int]:
    """(sampler, steps) with the blanks filled: neither given -> DEFAULT_SAMPLING; a sampler without steps -> the
    default's steps for the default sampler, the paper's 150 for any other."""
    sampler = sampler or DEFAULT_SAMPLING[0]
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose from {sorted(SAMPLERS)}")
    if steps is None:
        steps = DEFAULT_SAMPLING[1] if sampler == DEFAULT_SAMPLING[0] else PAPER_SAMPLING[1]
    return sampler, int(steps)
GRID_SPACING = {"ode": "time", "heun": "time", "sde": "time", "dpm": "logsnr"}   # each sampler's `time_grid`


def network_evaluations(sampler: str, steps: int) -> int:
    """Denoiser calls per sample (NFE): Heun calls it twice per step but once on the last, the others once per
    step; each adds the final ẑ_0."""
    return 2 * steps if sampler == "heun" else steps + 1


def inversion_grid(steps: int, cfg: SDEConfig, device=None) -> torch.Tensor:
    """steps + 1 times, uniformly spaced from cfg.t_invert up to 1: the grid of `invert_euler_ode`.

    Departure from the paper: §5 integrates from t = 0. There the score term Σ_t⁻¹(ρ(ẑ_0, t) − z_t) divides the
    denoiser's small error at t ≈ 0 by Σ_t ≈ β_0 t (5·10⁻⁵ at t_end), and the first forward Euler steps multiply
    it by h β_t / 2Σ_t ≫ 1: on the shipped toy model z_1 came out with a standard deviation of 13 instead of 1.
    The source latent is taken as z at t_invert = 0.03 instead (Σ_t ≈ 0.01, a noise level of 0.1 that it is
    indistinguishable from): z_1 std 0.98, and the round trip back to the source stays as close
    (docs/section5.md)."""
    if steps < 1:
        raise ValueError("the number of inversion steps must be at least 1")
    return torch.linspace(cfg.t_invert, 1.0, steps + 1, device=device)


def invert_euler_ode(denoise, z0: torch.Tensor, ts: torch.Tensor, cfg: SDEConfig, generator=None) -> torch.Tensor:
    """Source-aware diffusion (§5: voice conversion, speech enhancement): Euler steps of the same probability-flow
    ODE *forward* in time, from a source latent z_0 at ts[0] up to ts[-1] = 1 (ts ascending, from
    `inversion_grid`):

        z_1 = z_0 + ∫₀¹ −½ (z_t + Σ_t⁻¹(ρ(ŝ_θ(z_t, t, c), t) − z_t)) β_t dt

    Returns z_1 itself — the point that the reverse process (`sample_euler_ode` with the same condition) maps back to
    z_0 — not a data prediction. Deterministic: `generator` is accepted for the samplers' common signature."""
    if not bool((ts[1:] > ts[:-1]).all()):
        raise ValueError("invert_euler_ode integrates forward in time: ts must increase")
    z = z0
    for t, t_next in zip(ts[:-1], ts[1:]):
        z = z + (t_next - t) * ode_drift(denoise, z, t, cfg)
    return z


# ---------------------------------------------------------------------------------------------------------------
# The denoiser s_θ(z_t, t, c, prompt) -> ẑ_0: a WaveNet (Fig. 4)
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class DenoiserConfig:
    latent_dim: int = 256           # D: codec latent dimension (Table 11)
    channels: int = 512             # WaveNet hidden width
    layers: int = 40
    kernel: int = 3                 # dilated conv kernel
    dilation_cycle: int = 2         # dilation 2^(i mod cycle): 1, 2, 1, 2, ... ("dilation cycle 2")
    cond_dim: int = 512             # width of the prior's condition c
    prompt_dim: int = 512           # width of the prompt hiddens / the m query vectors
    film_every: int = 3             # attention + FiLM in every 3rd layer (i % 3 == 2): 40 layers -> 13, Table 11
    m: int = 32                     # learned query tokens
    heads: int = 8
    dropout: float = 0.2
    use_prompt: bool = True         # ablation "no prompt in diffusion": no attention, no FiLM
    use_query_attention: bool = True  # ablation "no query attention": layers attend to the prompt hiddens directly
    query_init_std: float = 1.0     # std of the m learned queries at init; 0: dim^-1/2 (prompt.QueryAttention)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of t ∈ [0, 1] (scaled by 1000, as DDPM's integer steps): (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / half)
    args = 1000 * t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], 1)


class WaveNetLayer(nn.Module):
    """One layer of Fig. 4:
        y = DilatedConv(x + W_t e(t)) + Conv(c)                     (2C channels)
        y = FiLM(y, Linear(Attention(Q = x, K = V = prompt vectors)))   (every `film_every` layers)
        g = tanh(y_a) ⊙ σ(y_b)                                       (gated activation)
        residual: (x + W_r g) / √2,   skip: W_s g
    """

    def __init__(self, cfg: DenoiserConfig, dilation: int, film: bool):
        super().__init__()
        C = cfg.channels
        self.time = nn.Linear(C, C)
        self.conv = nn.Conv1d(C, 2 * C, cfg.kernel, dilation=dilation, padding=dilation * (cfg.kernel - 1) // 2)
        self.cond = nn.Conv1d(cfg.cond_dim, 2 * C, cfg.kernel, padding=(cfg.kernel - 1) // 2)
        self.attn = PromptAttention(C, cfg.prompt_dim, cfg.heads) if film else None
        self.attn_out = nn.Conv1d(C, C, 1) if film else None
        self.film = FiLM(2 * C, C) if film else None
        self.out = nn.Conv1d(C, 2 * C, 1)
        self.dropout = Dropout(cfg.dropout)

    def forward(self, x, t_emb, c, mask, memory=None, memory_mask=None):
        y = self.conv(self.dropout(x + self.time(t_emb)[:, :, None]) * mask) + self.cond(c)      # (B, 2C, T)
        if self.film is not None:
            y = self.film(y, self.attn_out(self.attn(x, memory, memory_mask)))
        a, b = y.chunk(2, 1)
        res, skip = self.out(torch.tanh(a) * torch.sigmoid(b)).chunk(2, 1)
        return (x + res) * mask / math.sqrt(2), skip                  # skip: masked once, at the WaveNet's output


class WaveNet(nn.Module):
    """s_θ(z_t, t, c, prompt hiddens) -> ẑ_0 (B, D, T): input 1x1 conv, `layers` WaveNet layers, then the skip sum
    -> ReLU -> 1x1 conv (Fig. 4). The prompt hiddens are summarised by `QueryAttention` into m vectors, which the
    FiLM layers attend to. Padded frames are zeroed in the residual stream (the dilated convs read neighbours) and
    once at the output: the skips need no mask, as everything after their sum works frame by frame."""

    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        self.cfg = cfg
        C = cfg.channels
        self.inp = nn.Conv1d(cfg.latent_dim, C, 1)
        self.time_mlp = nn.Sequential(nn.Linear(C, 4 * C), nn.SiLU(), nn.Linear(4 * C, C))
        use_film = cfg.use_prompt
        self.layers = nn.ModuleList([WaveNetLayer(cfg, 2 ** (i % cfg.dilation_cycle), use_film and i % cfg.film_every == cfg.film_every - 1)
                                     for i in range(cfg.layers)])
        self.query = QueryAttention(cfg.prompt_dim, cfg.m, cfg.heads, cfg.query_init_std) \
            if use_film and cfg.use_query_attention else None
        self.skip_out = nn.Conv1d(C, C, 1)
        self.final = nn.Conv1d(C, cfg.latent_dim, 1)

    def forward(self, z_t, t, c, mask, prompt_h=None, prompt_mask=None):
        """z_t (B, D, T), t (B,) or (), c (B, cond_dim, T), mask (B, T); prompt_h (B, prompt_dim, Tp) + its mask."""
        if z_t.shape[1] != self.cfg.latent_dim:
            raise ValueError(f"latent dimension {z_t.shape[1]} != the denoiser's {self.cfg.latent_dim}")
        if self.cfg.use_prompt and prompt_h is None:
            raise ValueError("this denoiser is conditioned on a prompt: pass prompt_h and prompt_mask")
        t = torch.as_tensor(t, device=z_t.device, dtype=z_t.dtype).expand(len(z_t))
        t_emb = self.time_mlp(timestep_embedding(t, self.cfg.channels))
        memory, memory_mask = None, None
        if self.cfg.use_prompt:
            memory, memory_mask = (self.query(prompt_h, prompt_mask), None) if self.query is not None \
                else (prompt_h, prompt_mask)
        m = mask[:, None].to(z_t.dtype)
        x, c, skips = self.inp(z_t) * m, c * m, 0
        for layer in self.layers:
            x, skip = layer(x, t_emb, c, m, memory, memory_mask)
            skips = skips + skip
        return self.final(F.relu(self.skip_out(skips / math.sqrt(len(self.layers))))) * m
