"""NaturalSpeech 2 (Fig. 1): the prior, the speech prompt and the latent diffusion model, wired together.

No new math lives here: every formula is in the component files (rvq.py, prior.py, prompt.py, diffusion.py).

Training, one batch (`NaturalSpeech2.loss`):
    z_0  = Σ_j C_j[i_j]  rebuilt from the stored codec IDs (Eq. 1), then normalised per dimension (see below)
    [u, v) = a random prompt span (§3.3); prompt = z_{u:v}, target = concat(z_{1:u}, z_{v:n})
    c    = Prior(phonemes, ground-truth durations and pitch, prompt hiddens), cut like the target
    t ~ U[t_min, 1],  z_t = ρ(z_0, t) + √Σ_t ε,  ẑ_0 = WaveNet(z_t, t, c, prompt)
    L    = L_data + L_score + λ_ce-rvq · L_ce-rvq + L_dur + L_pitch            (λ_ce-rvq = 0.1, §3.2)
Every term is returned, and the total is formed in one place (`total_loss`).

Inference (`NaturalSpeech2.generate`): phonemes + a prompt latent -> predicted durations and pitch -> c -> z_1 ~
N(0, τ⁻¹ I) -> a sampler of diffusion.py -> ẑ_0 -> (de-normalised) latent for the codec decoder.

Latent normalisation: codec latents have an arbitrary scale per dimension (the encoder is free to output ±40, as
one peer implementation found). The VP SDE assumes data of about unit variance: its end point N(0, I) at t = 1 and
its noise schedule are calibrated for that. So z is standardised with per-dimension mean/std computed on the
training set (`latent_stats`), stored in the model (and so in every checkpoint); CE-RVQ is computed on the
de-normalised ẑ_0, where the codebooks live.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

import torch
import torch.nn as nn

import diffusion as D
from codec import load_weights, read_checkpoint
import prior as P
from prompt import PromptEncoder, remove_segment, sample_prompt_segment, take_segment
from rvq import ResidualVQ


@dataclass
class NS2Config:
    prior: P.PriorConfig = field(default_factory=P.PriorConfig)
    denoiser: D.DenoiserConfig = field(default_factory=D.DenoiserConfig)
    sde: D.SDEConfig = field(default_factory=D.SDEConfig)
    prompt_layers: int = 6              # prompt encoder "as the phoneme encoder" (Table 11: 69M)
    prompt_heads: int = 8
    prompt_ffn: int = 2048
    prompt_kernel: int = 9
    prompt_dropout: float = 0.2
    lambda_ce_rvq: float = 0.1          # §3.2
    use_ce_rvq: bool = True             # ablation "no CE-RVQ loss" (Table 9)
    t_min: float = 0.01                 # training times t ~ U[t_min, 1] (guard of the score term)
    prompt_min_frac: float = 0.1        # prompt span: fraction of the utterance (prompt.sample_prompt_segment)
    prompt_max_frac: float = 0.4
    prompt_min_frames: int = 24
    cfg_drop: float = 0.0               # beyond the paper: drop the prompt with this probability (classifier-free)


@dataclass(frozen=True)
class Sampling:
    """How `NaturalSpeech2.generate` samples (the user's settings of zero-shot synthesis)."""
    steps: int | None = None            # sampler and steps left out: diffusion.DEFAULT_SAMPLING (sampling_setting)
    sampler: str | None = None          # a key of diffusion.SAMPLERS
    temperature: float | None = None    # τ of the start noise z_1 ~ N(0, τ⁻¹ I); None: the model's sde.temperature
    duration_scale: float = 1.0         # > 1 speaks slower (scales the predicted durations)
    pitch_shift: float = 0.0            # semitones added to the pitch (n/12 · log 2 in log-F0)
    guidance: float = 1.0               # classifier-free guidance weight w on the prompt (1 = off)


class Prosody(NamedTuple):
    """Durations and pitch given to `generate` in place of the predicted ones (oracle prosody; §5)."""
    durations: torch.Tensor | None      # (B, N) frames per phoneme
    lf0: torch.Tensor | None = None     # (B, T ≥ Σd) log-F0 per frame; needs the durations it is aligned to


class PromptSplit(NamedTuple):
    """One loss batch cut into a prompt span [u, v) and the target around it, after the prior's pass."""
    z0: torch.Tensor                    # normalised latent (B, D, T)
    u: torch.Tensor                     # (B,) first frame of the prompt span
    v: torch.Tensor                     # (B,) end of the prompt span
    prompt_h: torch.Tensor              # the prompt encoder's hiddens (B, prompt_dim, Tp)
    prompt_mask: torch.Tensor           # (B, Tp)
    prior: dict                         # the prior's outputs on the ground-truth durations and pitch
    phoneme_target: torch.Tensor        # (B, N) real phonemes not wholly inside the prompt span
    frame_target: torch.Tensor          # (B, T) real frames outside the prompt span


@torch.no_grad()
def latent_stats(rvq: ResidualVQ, codes_batches) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std of z = Σ_j C_j[i_j] over an iterable of (codes (B, R, T), mask (B, T))."""
    total, sq, n = 0.0, 0.0, 0
    for codes, mask in codes_batches:
        z = rvq.decode(codes).transpose(1, 2)[mask]                                  # (frames, D)
        total, sq, n = total + z.sum(0), sq + (z ** 2).sum(0), n + len(z)
    mean = total / n
    return mean, (sq / n - mean ** 2).clamp(min=1e-8).sqrt()


class NaturalSpeech2(nn.Module):
    def __init__(self, cfg: NS2Config, codebooks: torch.Tensor, latent_mean=None, latent_std=None):
        super().__init__()
        R, V, Dz = codebooks.shape
        if cfg.denoiser.latent_dim != Dz:
            raise ValueError(f"denoiser latent_dim {cfg.denoiser.latent_dim} != codec code dimension {Dz}")
        if not cfg.prior.dim == cfg.denoiser.cond_dim:
            raise ValueError("prior.dim must equal denoiser.cond_dim (c is the prior's output)")
        if not cfg.prior.prompt_dim == cfg.denoiser.prompt_dim:
            raise ValueError("prior.prompt_dim must equal denoiser.prompt_dim (both read the prompt encoder)")
        self.cfg = cfg
        self.rvq = ResidualVQ(R, V, Dz)
        self.rvq.codebooks.copy_(codebooks)
        self.rvq.requires_grad_(False)
        self.register_buffer("latent_mean", torch.zeros(Dz) if latent_mean is None else latent_mean.clone())
        self.register_buffer("latent_std", torch.ones(Dz) if latent_std is None else latent_std.clone())
        self.prior = P.Prior(cfg.prior)
        self.prompt_encoder = PromptEncoder(Dz, cfg.prior.prompt_dim, cfg.prompt_layers, cfg.prompt_heads,
                                            cfg.prompt_ffn, cfg.prompt_kernel, cfg.prompt_dropout)
        self.denoiser = D.WaveNet(cfg.denoiser)
        self.null_prompt = nn.Parameter(torch.zeros(1, Dz, 1))      # the "no prompt" of classifier-free guidance

    def normalize(self, z):
        return (z - self.latent_mean[:, None]) / self.latent_std[:, None]

    def denormalize(self, z):
        return z * self.latent_std[:, None] + self.latent_mean[:, None]

    def encode_prompt(self, prompt_n: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.prompt_encoder(prompt_n, mask)

    def _null_prompt(self, batch: int):
        h = self.encode_prompt(self.null_prompt.expand(batch, -1, -1), torch.ones(batch, 1, dtype=torch.bool,
                                                                                    device=self.null_prompt.device))
        return h, torch.ones(batch, 1, dtype=torch.bool, device=h.device)

    # -- training ------------------------------------------------------------------------------------------------
    def forward(self, batch: dict, generator=None, predictors_only: bool = False) -> dict:
        """The training forward pass is the loss (`loss`), so that DistributedDataParallel can wrap the model."""
        return self.loss(batch, generator, predictors_only)

    def loss(self, batch: dict, generator=None, predictors_only: bool = False) -> dict:
        """Every loss term of one batch (from data.collate, with codes), plus "total" (`total_loss`).

        `predictors_only`: only L_dur and L_pitch (no diffusion forward), for re-fitting the duration and pitch
        predictors of a trained model (`train.py ldm --refit-predictors`); the diffusion terms do not depend on the
        predictors' outputs in training (c is built from the ground-truth durations and pitch)."""
        split = self.split_prompt(batch, generator)
        losses = self.prior.losses(split.prior, batch["durations"], batch["lf0"], split.phoneme_target,
                                   split.frame_target)
        if not predictors_only:
            losses.update(self._diffusion_losses(batch, split, generator))
        losses["total"] = self.total_loss(losses)
        return losses

    def split_prompt(self, batch: dict, generator=None) -> PromptSplit:
        """The first half of `loss`: a random prompt span [u, v) of each utterance (§3.3), the prompt encoded, the
        prior run on the ground-truth durations and pitch, and the target masks (duration and pitch losses count
        the target only: phonemes lying wholly inside the prompt, and the prompt's frames, are left out)."""
        codes, fmask = batch["codes"], batch["frame_mask"]
        z0 = self.normalize(self.rvq.decode(codes)) * fmask[:, None]                 # (B, D, T)
        u, v = sample_prompt_segment(fmask.sum(1).cpu(), self.cfg.prompt_min_frac, self.cfg.prompt_max_frac,
                                     self.cfg.prompt_min_frames, generator)
        u, v = u.to(z0.device), v.to(z0.device)
        prompt, prompt_mask = take_segment(z0, u, v)                                 # (B, D, Tp)
        prompt_h = self.encode_prompt(prompt, prompt_mask)
        out = self.prior(batch["phonemes"], batch["phoneme_mask"], prompt_h, prompt_mask, batch["durations"],
                         batch["lf0"], unused_span=(u, v))                  # lf0̂ is scored outside [u, v) only
        ends = batch["durations"].cumsum(1)
        inside = (ends - batch["durations"] >= u[:, None]) & (ends <= v[:, None])
        pos = torch.arange(fmask.shape[1], device=fmask.device)[None]
        frame_target = fmask & ~((pos >= u[:, None]) & (pos < v[:, None]))
        return PromptSplit(z0, u, v, prompt_h, prompt_mask, out, batch["phoneme_mask"] & ~inside, frame_target)

    def _diffusion_losses(self, batch: dict, split: PromptSplit, generator=None) -> dict:
        """L_data, L_score (and L_ce-rvq) on the target: everything but the prompt span, for every frame-level
        tensor alike; t ~ U[t_min, 1], z_t = ρ(z_0, t) + √Σ_t ε, ẑ_0 = WaveNet(z_t, t, c, prompt)."""
        fmask, u, v = batch["frame_mask"], split.u, split.v
        z0_t, tmask = remove_segment(split.z0, fmask, u, v)
        c_t, _ = remove_segment(split.prior["c"], fmask, u, v)
        codes_t, _ = remove_segment(batch["codes"], fmask, u, v)
        memory, memory_mask = self._prompt_memory(split.prompt_h, split.prompt_mask, generator)
        t = D.sample_times(len(z0_t), self.cfg.t_min, generator).to(z0_t.device)
        z_t, eps = D.forward_noise(z0_t, t, self.cfg.sde,
                                   torch.randn(z0_t.shape, generator=generator).to(z0_t.device))
        z0_hat = self.denoiser(z_t, t, c_t, tmask, memory, memory_mask)
        losses = D.diffusion_loss_terms(z0_t, z0_hat, z_t, eps, t, self.cfg.sde, tmask)
        if self.cfg.use_ce_rvq:
            losses["ce_rvq"] = self.rvq.ce_rvq_loss(self.denormalize(z0_hat), codes_t, tmask)
        return losses

    def _prompt_memory(self, prompt_h, prompt_mask, generator=None):
        """What the denoiser attends to in training: the prompt's hiddens, or, with probability cfg_drop, the null
        prompt (classifier-free dropout, beyond the paper)."""
        if not (self.training and self.cfg.cfg_drop > 0):
            return prompt_h, prompt_mask
        B, device = len(prompt_h), prompt_h.device
        drop = torch.rand(B, generator=generator).to(device) < self.cfg.cfg_drop
        null_h, _ = self._null_prompt(B)
        memory = torch.where(drop[:, None, None], torch.nn.functional.pad(null_h, (0, prompt_h.shape[-1] - 1)),
                             prompt_h)
        memory_mask = torch.where(drop[:, None], torch.arange(prompt_h.shape[-1], device=device) == 0, prompt_mask)
        return memory, memory_mask

    def total_loss(self, losses: dict) -> torch.Tensor:
        """L = L_data + L_score + λ_ce-rvq · L_ce-rvq + L_dur + L_pitch: the one place the terms are summed (a term
        that was not computed, e.g. CE-RVQ when switched off, is absent from `losses`)."""
        weights = dict(data=1.0, score=1.0, ce_rvq=self.cfg.lambda_ce_rvq, dur=1.0, pitch=1.0)
        return sum(w * losses[k] for k, w in weights.items() if k in losses)

    @torch.no_grad()
    def predictor_errors(self, batch: dict, seeds: int = 4, dropout: bool = False) -> dict:
        """How far the duration and pitch predictors are off (`python -m evaluation.metrics predictors`), on the
        target part of a loss batch (ground-truth durations, a prompt span cut from the same utterance, exactly as
        `loss` does: `split_prompt`), mean over `seeds` prompt spans:
            bias_lf0 = mean_t (lf0̂_t − lf0_t)             signed, log-F0 (× 100 ≈ % of F0)
            l1_lf0   = mean_t |lf0̂_t − lf0_t|              (= L_pitch)
            bias_logd = mean_n (log d̂_n − log(d_n + 1))   signed (× 100 ≈ % of duration)
            l1_logd  = mean_n |log d̂_n − log(d_n + 1)|    (= L_dur)
        In eval mode (dropout off) as at inference; `dropout=True` measures the predictors with dropout on."""
        seen = []
        was_training = self.training
        try:
            self.eval()
            for m in (self.prior.duration, self.prior.pitch):
                m.train(dropout)
            for s in range(seeds):
                torch.manual_seed(s)                                        # dropout masks
                split = self.split_prompt(batch, torch.Generator().manual_seed(s))
                e_f = split.prior["lf0_hat"] - batch["lf0"]
                e_d = split.prior["log_d_hat"] - torch.log1p(batch["durations"].float())
                f, n = split.frame_target, split.phoneme_target
                seen.append([float(e_f[f].mean()), float(e_f[f].abs().mean()), float(e_d[n].mean()),
                             float(e_d[n].abs().mean())])
        finally:
            self.train(was_training)
        means = [round(sum(e[i] for e in seen) / len(seen), 4) for i in range(4)]
        return dict(zip(("bias_lf0", "l1_lf0", "bias_logd", "l1_logd"), means))

    # -- inference -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, phonemes: torch.Tensor, prompt_latent: torch.Tensor, sampling: Sampling | None = None, *,
                 prompt_mask=None, generator=None, seeds: list | None = None, prosody: Prosody | None = None,
                 start=None, **settings) -> dict:
        """phonemes (B, N) (0 = padding), prompt_latent (B, D, Tp) (codec latent, not normalised) -> dict(latent
        (B, D, T), frame_mask, durations, lf0).

        `sampling` (`Sampling`): sampler, steps, temperature, duration scale, pitch shift and guidance (`_denoiser`);
        `settings` are its fields given by name (`steps=20, sampler="ode"`), applied over `sampling`.
        `prompt_mask` (B, Tp): the prompt frames of each row (default all).
        `generator` draws the noise of the whole batch; `seeds` (one per row) instead lets each row draw its own
        noise for its own frames (`diffusion.RowGenerators`), so a row comes out the same whatever else is in the
        batch. `prosody` (`Prosody`): durations and pitch replacing the predicted ones (oracle prosody, a
        diagnostic; §5). `start` (B, D, T): the z_1 to start the reverse process from instead of fresh noise (the
        output of `invert`, §5)."""
        self._check_inputs(phonemes, prompt_latent)
        sampling = replace(sampling or Sampling(), **settings)
        sampler, steps = D.sampling_setting(sampling.sampler, sampling.steps)
        if prompt_mask is None:
            prompt_mask = torch.ones(len(phonemes), prompt_latent.shape[-1], dtype=torch.bool, device=phonemes.device)
        prompt_h, out = self._condition(phonemes, prompt_latent, prompt_mask, prosody or Prosody(None), sampling)
        c, fmask = out["c"], out["frame_mask"]
        sde = self.cfg.sde if sampling.temperature is None else replace(self.cfg.sde, temperature=sampling.temperature)
        if seeds is not None:
            generator = D.RowGenerators(seeds, fmask.sum(1).tolist())
        shape = c.shape[:1] + (self.cfg.denoiser.latent_dim, c.shape[-1])
        if start is not None and tuple(start.shape) != tuple(shape):
            raise ValueError(f"start latent {tuple(start.shape)} does not match the condition's {tuple(shape)}")
        z1 = D.start_noise(shape, sde, generator).to(c.device) if start is None else start
        ts = D.time_grid(steps, sde, c.device, D.GRID_SPACING[sampler])
        denoise = self._denoiser(c, fmask, prompt_h, prompt_mask, sampling.guidance)
        z0 = D.SAMPLERS[sampler](denoise, z1 * fmask[:, None], ts, sde, generator)
        return dict(latent=self.denormalize(z0) * fmask[:, None], frame_mask=fmask, durations=out["durations"],
                    lf0=out["lf0"])

    def _check_inputs(self, phonemes: torch.Tensor, prompt_latent: torch.Tensor) -> None:
        if phonemes.dim() != 2 or phonemes.shape[1] == 0:
            raise ValueError("no phonemes to speak: give a non-empty phoneme sequence (B, N)")
        if prompt_latent.dim() != 3 or prompt_latent.shape[1] != self.cfg.denoiser.latent_dim:
            raise ValueError(f"prompt latent must be (B, {self.cfg.denoiser.latent_dim}, frames), "
                             f"got {tuple(prompt_latent.shape)}: was it made by another codec?")
        if prompt_latent.shape[-1] < 8:
            raise ValueError(f"the prompt has {prompt_latent.shape[-1]} frames; give at least 8 (0.1 s), "
                             f"better 3 s (240 frames)")

    def _condition(self, phonemes, prompt_latent, prompt_mask, prosody: Prosody, sampling: Sampling):
        """(prompt hiddens, the prior's outputs): c, frame_mask, durations and lf0, predicted or given."""
        if prosody.lf0 is not None and prosody.durations is None:
            raise ValueError("an oracle pitch contour (lf0) needs the oracle durations it is aligned to")
        prompt_h = self.encode_prompt(self.normalize(prompt_latent) * prompt_mask[:, None], prompt_mask)
        adjust = P.Adjust(sampling.duration_scale, sampling.pitch_shift / 12 * math.log(2))
        out = self.prior(phonemes, phonemes != 0, prompt_h, prompt_mask, durations=prosody.durations,
                         lf0=prosody.lf0, adjust=adjust)
        return prompt_h, out

    def _denoiser(self, c, fmask, prompt_h, prompt_mask, guidance: float):
        """ẑ_0(z_t, t) under the condition c and the prompt; with guidance w ≠ 1, classifier-free guidance on the
        prompt (needs a model trained with cfg_drop > 0):
            ẑ_0 = ẑ_0(no prompt) + w (ẑ_0(prompt) − ẑ_0(no prompt)) = (1 − w) ẑ_0(no prompt) + w ẑ_0(prompt)"""
        null = self._null_prompt(len(c)) if guidance != 1.0 else None

        def denoise(z, t):
            cond = self.denoiser(z, t, c, fmask, prompt_h, prompt_mask)
            if null is None:
                return cond
            return (1 - guidance) * self.denoiser(z, t, c, fmask, *null) + guidance * cond
        return denoise

    @torch.no_grad()
    def invert(self, phonemes: torch.Tensor, source_latent: torch.Tensor, prompt_latent: torch.Tensor, durations,
               lf0, steps: int = 150) -> torch.Tensor:
        """The source-aware step of §5 (voice conversion, speech enhancement): the source's codec latent
        (B, D, T = Σ durations), conditioned on its own phonemes, durations and pitch and on `prompt_latent`, carried
        forward by the probability-flow ODE to z_1 (`diffusion.invert_euler_ode`). `generate(..., start=z_1)` with
        another condition or prompt then runs the target-aware reverse process from it. Returns z_1 (B, D, T)."""
        prompt_mask = torch.ones(len(phonemes), prompt_latent.shape[-1], dtype=torch.bool, device=phonemes.device)
        prompt_h, out = self._condition(phonemes, prompt_latent, prompt_mask, Prosody(durations, lf0), Sampling())
        c, fmask = out["c"], out["frame_mask"]
        if source_latent.shape[-1] != c.shape[-1]:
            raise ValueError(f"the source has {source_latent.shape[-1]} frames, its durations sum to {c.shape[-1]}")
        denoise = self._denoiser(c, fmask, prompt_h, prompt_mask, 1.0)
        z0 = self.normalize(source_latent) * fmask[:, None]
        return D.invert_euler_ode(denoise, z0, D.inversion_grid(steps, self.cfg.sde, c.device), self.cfg.sde)


def config_to_dict(cfg: NS2Config) -> dict:
    return asdict(cfg)


def config_from_dict(d: dict) -> NS2Config:
    return NS2Config(prior=P.PriorConfig(**d["prior"]), denoiser=D.DenoiserConfig(**d["denoiser"]),
                     sde=D.SDEConfig(**d["sde"]), **{k: v for k, v in d.items() if k not in ("prior", "denoiser", "sde")})


def load_ns2(path, device: str = "cpu") -> tuple[NaturalSpeech2, dict]:
    """Rebuild a NaturalSpeech2 for sampling from a `train.py ldm` checkpoint or its export: (model in eval mode
    with the EMA weights, meta = phoneme inventory, front end, codec it was trained on, step, and for a model made by
    `--refit-predictors` or `--finetune`, the base checkpoint it continued (refit_of / finetune_of: path, hash, step)).
    Loads with `torch.load(weights_only=True)`: tensors and plain containers only."""
    ck = read_checkpoint(path, "ldm", "latent diffusion (ldm)")
    state = ck.get("ema", ck["model"])
    net = load_weights(NaturalSpeech2(config_from_dict(ck["config"]), state["rvq.codebooks"].float()), state, path,
                       "model")
    meta = {k: ck[k] for k in ("phonemes", "front_end", "codec", "step", "preset",
                                   "refit_of", "finetune_of") if k in ck}
    return net.to(device).eval(), meta
