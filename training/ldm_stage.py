"""Training stage `ldm` (paper §3.2-3.3, §4): the latent diffusion model with its prior and prompt encoder, trained
on the codec token IDs of a feature cache (`python -m corpus.data encode`), as a `Stage` of the one training loop
(training/loop.py). Run it through train.py:

    python train.py ldm --config toy --data data/toy --codec checkpoints/toy/codec.pt --out runs/ldm_toy
    python train.py ldm ... --refit-predictors BASE.pt --prior.pred_dropout=0.1 --steps=3000 --out R

Four modes, each a way to build the model (the step and the loop are shared): `full` (a fresh model), `init` (a
full run starting from a trained model's weights, e.g. on a new corpus), `refit` (fresh duration and pitch
predictors on a frozen trained model), `finetune` (the diffusion model alone trains on). AdamW with linear warm-up
then inverse-square-root decay (§4), gradient clipping, an EMA of the weights (used for validation and sampling),
validation on the valid split with two zero-shot samples of held-out voices.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

import codec as codec_lib
import model as ns2
import prior as P
from corpus import data, features
from training import loop
from training.presets import LDMTrainConfig, adamw, apply_overrides, model_config

MODES = ("full", "init", "refit", "finetune")


@dataclass
class LDMJob:
    """What an ldm run trains, on what, and from what."""
    preset: str                         # the preset whose model config a full or init run builds
    cache: Path                         # a feature cache with codes (`python -m corpus.data encode`)
    codec: Path                         # the codec those codes came from
    out: Path                           # the run folder: last.pt, log.jsonl, tb/, samples/
    changes: dict = field(default_factory=dict)  # typed model-config overrides {"prior.pitch_bins": 256, ...}
    mode: str = "full"                  # full | init | refit | finetune
    base: Path | None = None            # the trained ldm checkpoint that init, refit and finetune start from


def inverse_sqrt_lr(step: int, t: LDMTrainConfig) -> float:
    """lr · min(s / warmup, √(warmup / s)), s = step + 1: linear warm-up, then inverse-square-root decay (§4)."""
    s = step + 1
    return t.lr * min(s / t.warmup_steps, (t.warmup_steps / s) ** 0.5)


def codec_and_manifest(cache, codec_ckpt):
    """The codec and the manifest of a feature cache whose codes came from that codec (checked by hash)."""
    manifest = data.read_manifest(cache)
    codec = codec_lib.load_codec(codec_ckpt)
    if manifest.get("codec", {}).get("sha256") != features.file_hash(codec_ckpt):
        raise ValueError(f"the cache {cache} holds no codes from {codec_ckpt}: run `python -m corpus.data encode "
                         f"--codec {codec_ckpt} --data {cache}` first")
    return codec, manifest


def build_ldm(cache, codec_ckpt, preset: str, changes: dict | None = None):
    """A fresh NaturalSpeech2 of a preset (plus typed `changes`) for a feature cache whose codes came from
    `codec_ckpt`; latent stats from its training split. Returns (model, the codec, manifest)."""
    codec, manifest = codec_and_manifest(cache, codec_ckpt)
    cfg = apply_overrides(model_config(preset, len(manifest["phonemes"]), codec.cfg.dim), changes or {})
    ds = data.FeatureDataset(cache, "train", with_codes=True)
    batches = (data.collate([ds[j] for j in range(i, min(i + 32, len(ds)))]) for i in range(0, len(ds), 32))
    mean, std = ns2.latent_stats(codec.rvq, ((b["codes"], b["frame_mask"]) for b in batches))
    net = ns2.NaturalSpeech2(cfg, codec.rvq.codebooks, mean, std)
    net.prior.init_predictor_offsets(*predictor_targets_mean(cache))
    return net, codec, manifest


def predictor_targets_mean(cache) -> tuple[float, float]:
    """(mean log(d + 1) over the phonemes, mean lf0 over the frames) of a cache's training split."""
    log_d, lf0 = [], []
    for u in data.read_manifest(cache)["utterances"]:
        if u["split"] == "train":
            f = features.load_features(Path(cache) / "feats" / f"{u['id']}.npz")
            log_d.append(np.log1p(f["durations"].astype(np.float64))), lf0.append(f["lf0"].astype(np.float64))
    if not lf0:
        raise ValueError(f"the cache {cache} has no training utterances")
    return float(np.concatenate(log_d).mean()), float(np.concatenate(lf0).mean())


def init_base(job: LDMJob):
    """A fresh model for the cache (`build_ldm`) that starts from the EMA weights of the trained `job.base`: every
    weight whose name and shape match is copied; phoneme embeddings are copied row by row for the phonemes both
    inventories share (the rest start fresh); the codebooks, the latent statistics and the predictors' output
    offsets stay those of the new cache and codec. For starting a model on a new corpus from one trained elsewhere
    (e.g. real speech from the toy model). Returns (model, codec, manifest, {"copied", "fresh", "phoneme_rows"})."""
    net, codec, manifest = build_ldm(job.cache, job.codec, job.preset, job.changes)
    old, meta = ns2.load_ns2(job.base)
    src, dst = old.state_dict(), net.state_dict()
    keep = ("rvq.", "latent_mean", "latent_std", "prior.duration.out.bias", "prior.pitch.out.bias")
    old_ids = {p: i for i, p in enumerate(meta.get("phonemes", []))}
    shared = [(i, old_ids[p]) for i, p in enumerate(manifest["phonemes"]) if p in old_ids]
    copied = 0
    for k, v in dst.items():
        w = src.get(k)
        if k.startswith(keep) or w is None:
            continue
        if w.shape == v.shape:
            v.copy_(w)
            copied += 1
        elif w.shape[1:] == v.shape[1:] and (len(w), len(v)) == (len(old_ids), len(manifest["phonemes"])):
            for i, j in shared:                                     # a phoneme table: shared rows only
                v[i] = w[j]
    fresh = sum(1 for k in dst if not k.startswith(keep)) - copied
    return net, codec, manifest, dict(copied=copied, fresh=fresh, phoneme_rows=len(shared))


PREDICTOR_FIELDS = ("pred_convs", "pred_attn_every", "pred_heads", "dur_kernel", "pitch_kernel", "pred_dropout",
                    "use_prompt")       # the PriorConfig fields that only the duration and pitch predictors read


def _trained_base(job: LDMJob):
    """(the trained model of job.base with job.changes applied to its config, codec, manifest), checked to belong
    to the cache's codec."""
    codec, manifest = codec_and_manifest(job.cache, job.codec)
    net, meta = ns2.load_ns2(job.base)
    if meta.get("codec", {}).get("sha256") != manifest["codec"]["sha256"]:
        raise ValueError(f"{job.base} was trained on another codec than the codes in {job.cache}")
    return net, apply_overrides(net.cfg, job.changes), codec, manifest


def refit_base(job: LDMJob):
    """A trained ldm checkpoint (EMA weights) with *fresh* duration and pitch predictors, built from its prior config
    plus the changes (predictor fields only), and everything else frozen. Returns (model, codec, manifest).

    Why this is sound: in training, c is built from the ground-truth durations and pitch, so the diffusion model never
    sees the predictors' outputs; the predictors are heads on the phoneme and prompt encoders, and re-fitting them with
    those encoders frozen leaves everything the diffusion model was trained with unchanged. It is how a predictor
    setting (dropout, size, prompt attention) can be changed or ablated in minutes instead of a full retrain.

    Beyond the paper (which trains the predictors jointly only), an option, not a stage of the toy recipe: a model
    whose jointly trained predictors are biased at inference (eval mode: no dropout) can be given unbiased ones this
    way, e.g. at predictor dropout 0.1 (docs/departures.md "Predictor re-fit" has when it helped and when it did not)."""
    net, cfg, codec, manifest = _trained_base(job)
    if replace(cfg, prior=replace(cfg.prior, **{f: getattr(net.cfg.prior, f) for f in PREDICTOR_FIELDS})) != net.cfg:
        raise ValueError("--refit-predictors changes only the predictors: the overrides may set "
                         + ", ".join(f"prior.{f}" for f in PREDICTOR_FIELDS))
    fresh = P.Prior(cfg.prior)
    fresh.init_predictor_offsets(*predictor_targets_mean(job.cache))
    net.cfg, net.prior.cfg, net.prior.duration, net.prior.pitch = cfg, cfg.prior, fresh.duration, fresh.pitch
    net.requires_grad_(False)
    for m in (net.prior.duration, net.prior.pitch):
        m.requires_grad_(True)
    return net, codec, manifest


def finetune_base(job: LDMJob):
    """A trained ldm checkpoint (EMA weights) whose diffusion model (the denoiser and the null prompt) alone trains on,
    the prior and the prompt encoder frozen: to switch on classifier-free dropout after the fact (`--cfg_drop=0.1`,
    the only override allowed), then sample with `--guidance`. Beyond the paper; an experiment, not the toy recipe.
    The predictors see exactly what they saw before (frozen prior and prompt encoder), so no re-fit is needed."""
    net, cfg, codec, manifest = _trained_base(job)
    if replace(cfg, cfg_drop=net.cfg.cfg_drop) != net.cfg:
        raise ValueError("--finetune trains only the diffusion model: the overrides may set cfg_drop alone")
    net.cfg = cfg
    net.requires_grad_(False)
    for m in (net.denoiser, net.null_prompt):
        m.requires_grad_(True)
    return net, codec, manifest


def build_for(job: LDMJob, resume: bool, say=print):
    """(model, codec, manifest, {where the weights started}) for the job's mode; a resumed full or init run builds
    a fresh model (its weights come from last.pt)."""
    if job.mode not in MODES:
        raise ValueError(f"unknown ldm mode {job.mode!r}; choose from {', '.join(MODES)}")
    if job.mode == "full" or (job.mode == "init" and resume):
        return (*build_ldm(job.cache, job.codec, job.preset, job.changes), {})
    base_step = int(torch.load(job.base, map_location="cpu", weights_only=False).get("step", 0))
    origin = {f"{job.mode}_of": dict(path=str(job.base), sha256=features.file_hash(job.base), step=base_step)}
    if job.mode == "init":
        net, codec, manifest, moved = init_base(job)
        say(f"--init {job.base}: {moved['copied']} tensors copied, {moved['fresh']} fresh, "
            f"{moved['phoneme_rows']} phoneme embedding rows shared")
        return net, codec, manifest, origin
    return (*(refit_base if job.mode == "refit" else finetune_base)(job), origin)


def train_mode(net, mode: str):
    """Training mode. "refit": the frozen rest stays in eval mode (no dropout), as at inference, and only the
    predictors train; "finetune": the prior and the prompt encoder stay in eval mode."""
    net.train(mode != "refit")
    if mode == "refit":
        for m in (net.prior.duration, net.prior.pitch):
            m.train()
    elif mode == "finetune":
        net.prior.eval(), net.prompt_encoder.eval()


def _on_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _zero_shot_pairs(manifest, cache, n: int = 2) -> list:
    """The first n held-out test utterances, each with another utterance of its voice as the prompt:
    [(id, phoneme IDs, prompt codes)]."""
    test = [u for u in manifest["utterances"] if u["split"] == "test"]
    pairs = []
    for u in test[:n]:
        p = next((q for q in test if q["speaker"] == u["speaker"] and q["id"] != u["id"]), u)
        f, fp = (features.load_features(Path(cache) / "feats" / f"{x['id']}.npz") for x in (u, p))
        pairs.append((u["id"], f["phonemes"].astype(np.int64), fp["codes"].astype(np.int64)))
    return pairs


def validator(net, codec, ema: dict, job: LDMJob, tcfg: LDMTrainConfig, manifest, device):
    """step -> Validation: valid-split losses (seen voices, unseen sentences) with the EMA weights, and two zero-shot
    samples (a held-out voice's other utterance as the prompt) decoded by the codec."""
    valid = data.FeatureDataset(job.cache, "valid", with_codes=True, min_frames=2 * net.cfg.prompt_min_frames)
    batches = data.StepBatches(valid, min(8, len(valid)), seed=tcfg.seed)
    pairs = _zero_shot_pairs(manifest, job.cache)

    @torch.no_grad()
    def validate(step: int) -> loop.Validation:
        live = {k: v.clone() for k, v in net.state_dict().items()}
        net.load_state_dict(ema)
        net.eval()
        g = torch.Generator().manual_seed(0)
        terms = [net.loss(_on_device(batches[10 ** 9 + i], device), g) for i in range(2)]      # their own seeds
        metrics = {k: float(sum(t[k] for t in terms) / len(terms)) for k in terms[0]}
        audio = {}
        for k, (uid, phonemes, prompt_codes) in enumerate(pairs):
            prompt = codec.rvq.decode(torch.from_numpy(prompt_codes)[None].to(device))
            gen = net.generate(torch.from_numpy(phonemes)[None].to(device), prompt, steps=tcfg.sample_steps,
                               generator=torch.Generator().manual_seed(k))
            audio[uid] = codec.decode(gen["latent"])[0].float().cpu().numpy()
        net.load_state_dict(live)
        train_mode(net, job.mode)
        return loop.Validation(metrics, audio, codec.cfg.sample_rate)
    return validate


def ldm_stage(job: LDMJob, tcfg: LDMTrainConfig, d: loop.Dist, resume: bool, progress: bool):
    """The model of the job's mode, its optimizer, its step and its validation as a Stage; returns (stage,
    grad scaler)."""
    net, codec, manifest, origin = build_for(job, resume, say=print if (d.main and progress) else (lambda s: None))
    net, codec = net.to(d.device), codec.to(d.device)
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
    opt = adamw([p for p in net.parameters() if p.requires_grad], tcfg)
    # bf16 on a CPU pays where matrix products dominate; on a model under 1M parameters (the tiny preset) the casts
    # dominate and it was slower (tiny step 25.5 -> 28.2 ms, evaluation/bench.py step --shapes tiny): fp32 there
    autocast, scaler = loop.amp_context(d.device, tcfg.amp,
                                        cpu_bf16=sum(p.numel() for p in net.parameters()) >= 1e6)
    train = data.FeatureDataset(job.cache, "train", with_codes=True, min_frames=2 * net.cfg.prompt_min_frames)
    batches = data.StepBatches(train, tcfg.batch_size, tcfg.frames_per_batch, tcfg.seed, d.rank, d.world)
    stream = {}                                 # the loader starts at the first step run (after a resume, its step)
    net_dp, last = loop.wrap(net, d), Path(job.out) / "last.pt"

    def train_step(step: int) -> dict:
        if "it" not in stream:
            stream["it"] = iter(data.loader(batches, step, tcfg.steps, tcfg.workers,
                                            pin_memory=d.device.type == "cuda"))
        with autocast:
            losses = net_dp(_on_device(next(stream["it"]), d.device), predictors_only=job.mode == "refit")
        loop.check_finite(losses["total"], "ldm loss", step, losses, last)
        losses["grad_norm"] = loop.optimizer_step(losses["total"], opt, net.parameters(), scaler, tcfg.grad_clip)
        return losses

    stage = loop.Stage(
        kind="ldm", config=ns2.config_to_dict(net.cfg), modules=dict(model=net), optimizers=dict(opt=opt),
        train_step=train_step, validate=validator(net, codec, ema, job, tcfg, manifest, d.device) if d.main else None,
        lr_at=lambda step: inverse_sqrt_lr(step, tcfg),
        meta=dict(preset=job.preset, phonemes=manifest["phonemes"], front_end=manifest["front_end"],
                  codec=manifest["codec"], **origin),
        ema=ema, ema_decay=tcfg.ema_decay, shown=("data", "score", "ce_rvq", "dur", "pitch"),
        train_mode=lambda: train_mode(net, job.mode))
    return stage, scaler


def train_ldm(job: LDMJob, tcfg: LDMTrainConfig, resume: bool = False, device: str = "cpu",
              progress: bool = True) -> dict:
    """Train (or resume exactly) the latent diffusion model of `job`; checkpoint <job.out>/last.pt; returns the last
    validation's metrics."""
    d = loop.distributed(device)
    torch.manual_seed(tcfg.seed)
    stage, scaler = ldm_stage(job, tcfg, d, resume, progress)
    return loop.run(stage, tcfg, job.out, d, scaler, resume, progress)
