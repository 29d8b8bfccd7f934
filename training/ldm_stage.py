"""Training stage `ldm` (paper §3.2-3.3, §4): the latent diffusion model with its prior and prompt encoder, trained
on the codec token IDs of a feature cache (`corpus/data.py encode`). Run it through train.py:

    python train.py ldm --config toy --data data/toy --codec checkpoints/toy/codec.pt --out runs/ldm_toy
    python train.py ldm ... --refit-predictors BASE.pt --prior.pred_dropout=0.1 --steps=3000 --out R

The loop: AdamW with linear warm-up then inverse-square-root decay (§4), gradient clipping, an EMA of the weights
(used for validation and sampling), validation on the valid split with two zero-shot samples of held-out voices,
atomic checkpoints and exact resume (the bookkeeping shared with the codec stage lives in train.py).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch

import codec as codec_lib
from corpus import features
from training import loop as trainer
from training.loop import (NonFiniteLoss, amp_context, optimizer_step, parse_overrides, plain_config, restore_shared,
                     save_checkpoint)


@dataclass
class LDMTrainConfig:
    steps: int = 300_000                # §4: 300K steps on 16 GPUs
    batch_size: int = 16                # utterances per batch (when frames_per_batch is 0)
    frames_per_batch: int = 0           # > 0: length-bucketed batches of at most this many frames (§4: 6K per GPU)
    workers: int = 0                    # DataLoader worker processes reading and collating batches ahead
    lr: float = 5e-4                    # §4: AdamW, lr 5e-4
    betas: tuple = (0.9, 0.98)
    weight_decay: float = 0.01
    warmup_steps: int = 32_000          # §4: 32K warm-up steps, then inverse-square-root decay
    grad_clip: float = 1.0
    ema_decay: float = 0.999            # EMA of the weights, used for sampling
    amp: str = "auto"                   # auto: bf16 autocast on a GPU, and on a CPU with native bf16 for models of
                                        # 1M parameters and more; else fp32
    log_every: int = 50
    val_every: int = 2000
    ckpt_every: int = 1000
    sample_steps: int = 50              # sampler steps for the validation samples
    seed: int = 0


LDM_PRESETS = {
    "paper": LDMTrainConfig(),
    "libritts": LDMTrainConfig(frames_per_batch=6000, workers=4, warmup_steps=8000, steps=200_000),
    "toy": LDMTrainConfig(batch_size=16, lr=1e-3, warmup_steps=500, steps=5000, val_every=500, ckpt_every=250),
    "tiny": LDMTrainConfig(batch_size=2, lr=1e-3, warmup_steps=1, steps=4, log_every=1, val_every=4, ckpt_every=2,
                           sample_steps=2),
}


def inverse_sqrt_lr(step: int, t: LDMTrainConfig) -> float:
    """lr · min(s / warmup, √(warmup / s)), s = step + 1: linear warm-up, then inverse-square-root decay (§4)."""
    s = step + 1
    return t.lr * min(s / t.warmup_steps, (t.warmup_steps / s) ** 0.5)


def _codec_and_manifest(cache, codec_ckpt):
    """The codec and the manifest of a feature cache whose codes came from that codec (checked by hash)."""
    import hashlib
    from corpus import data
    manifest = data.read_manifest(cache)
    codec = codec_lib.load_codec(codec_ckpt)
    sha = hashlib.sha256(Path(codec_ckpt).read_bytes()).hexdigest()[:16]
    if manifest.get("codec", {}).get("sha256") != sha:
        raise ValueError(f"the cache {cache} holds no codes from {codec_ckpt}: run `python -m corpus.data encode --codec "
                         f"{codec_ckpt} --data {cache}` first")
    return codec, manifest


def build_ldm(cache, codec_ckpt, preset: str, overrides=()):
    """A fresh NaturalSpeech2 for a feature cache whose codes came from `codec_ckpt`; latent stats from its
    training split. Returns (model, the codec, manifest)."""
    from corpus import data
    import model as ns2
    codec, manifest = _codec_and_manifest(cache, codec_ckpt)
    cfg = ns2.make_ns2_config(preset, n_phonemes=len(manifest["phonemes"]), latent_dim=codec.cfg.dim)
    (cfg,) = parse_overrides(list(overrides), cfg)
    ds = data.FeatureDataset(cache, "train", with_codes=True)
    batches = (data.collate([ds[j] for j in range(i, min(i + 32, len(ds)))]) for i in range(0, len(ds), 32))
    mean, std = ns2.latent_stats(codec.rvq, ((b["codes"], b["frame_mask"]) for b in batches))
    net = ns2.NaturalSpeech2(cfg, codec.rvq.codebooks, mean, std)
    net.prior.init_predictor_offsets(*predictor_targets_mean(cache))
    return net, codec, manifest


def predictor_targets_mean(cache) -> tuple[float, float]:
    """(mean log(d + 1) over the phonemes, mean lf0 over the frames) of a cache's training split."""
    import numpy as np
    from corpus import data
    log_d, lf0 = [], []
    for u in data.read_manifest(cache)["utterances"]:
        if u["split"] == "train":
            f = features.load_features(Path(cache) / "feats" / f"{u['id']}.npz")
            log_d.append(np.log1p(f["durations"].astype(np.float64))), lf0.append(f["lf0"].astype(np.float64))
    if not lf0:
        raise ValueError(f"the cache {cache} has no training utterances")
    return float(np.concatenate(log_d).mean()), float(np.concatenate(lf0).mean())


def init_base(ckpt, cache, codec_ckpt, preset: str, overrides=()):
    """A fresh model for `cache` (`build_ldm`) that starts from the EMA weights of a trained ldm checkpoint: every
    weight whose name and shape match is copied; phoneme embeddings are copied row by row for the phonemes both
    inventories share (the rest start fresh); the codebooks, the latent statistics and the predictors' output
    offsets stay those of the new cache and codec. For starting a model on a new corpus from one trained elsewhere
    (e.g. real speech from the toy model). Returns (model, codec, manifest, {"copied", "fresh", "phoneme rows"})."""
    import model as ns2
    net, codec, manifest = build_ldm(cache, codec_ckpt, preset, overrides)
    old, meta = ns2.load_ns2(ckpt)
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


def refit_base(ckpt, cache, codec_ckpt, overrides=()):
    """A trained ldm checkpoint (EMA weights) with *fresh* duration and pitch predictors, built from its prior config
    plus `overrides` (predictor fields only), and everything else frozen. Returns (model, codec, manifest).

    Why this is sound: in training, c is built from the ground-truth durations and pitch, so the diffusion model never
    sees the predictors' outputs; the predictors are heads on the phoneme and prompt encoders, and re-fitting them with
    those encoders frozen leaves everything the diffusion model was trained with unchanged. It is how a predictor
    setting (dropout, size, prompt attention) can be changed or ablated in minutes instead of a full retrain.

    Departure from the paper (which trains the predictors jointly only): the toy recipe ends with this stage, at
    predictor dropout 0.1. Jointly trained with Table 11's dropout 0.5, the toy pitch predictor ran log-F0 0.2 low at
    inference (eval mode: no dropout); re-fitted this way it is unbiased (docs/departures.md has the numbers)."""
    import model as ns2
    import prior as P
    codec, manifest = _codec_and_manifest(cache, codec_ckpt)
    net, meta = ns2.load_ns2(ckpt)
    if meta.get("codec", {}).get("sha256") != manifest["codec"]["sha256"]:
        raise ValueError(f"{ckpt} was trained on another codec than the codes in {cache}")
    (cfg,) = parse_overrides(list(overrides), net.cfg)
    if replace(cfg, prior=replace(cfg.prior, **{f: getattr(net.cfg.prior, f) for f in PREDICTOR_FIELDS})) != net.cfg:
        raise ValueError("--refit-predictors changes only the predictors: the overrides may set "
                         + ", ".join(f"prior.{f}" for f in PREDICTOR_FIELDS))
    fresh = P.Prior(cfg.prior)
    fresh.init_predictor_offsets(*predictor_targets_mean(cache))
    net.cfg, net.prior.cfg, net.prior.duration, net.prior.pitch = cfg, cfg.prior, fresh.duration, fresh.pitch
    net.requires_grad_(False)
    for m in (net.prior.duration, net.prior.pitch):
        m.requires_grad_(True)
    return net, codec, manifest


def finetune_base(ckpt, cache, codec_ckpt, overrides=()):
    """A trained ldm checkpoint (EMA weights) whose diffusion model (the denoiser and the null prompt) alone trains on,
    the prior and the prompt encoder frozen: to switch on classifier-free dropout after the fact (`--cfg_drop=0.1`,
    the only override allowed), then sample with `--guidance`. Beyond the paper; an experiment, not the toy recipe.
    The predictors see exactly what they saw before (frozen prior and prompt encoder), so no re-fit is needed."""
    import model as ns2
    codec, manifest = _codec_and_manifest(cache, codec_ckpt)
    net, meta = ns2.load_ns2(ckpt)
    if meta.get("codec", {}).get("sha256") != manifest["codec"]["sha256"]:
        raise ValueError(f"{ckpt} was trained on another codec than the codes in {cache}")
    (cfg,) = parse_overrides(list(overrides), net.cfg)
    if replace(cfg, cfg_drop=net.cfg.cfg_drop) != net.cfg:
        raise ValueError("--finetune trains only the diffusion model: the overrides may set cfg_drop alone")
    net.cfg = cfg
    net.requires_grad_(False)
    for m in (net.denoiser, net.null_prompt):
        m.requires_grad_(True)
    return net, codec, manifest


def _train_mode(net, mode: str):
    """Training mode. "refit": the frozen rest stays in eval mode (no dropout), as at inference, and only the
    predictors train; "finetune": the prior and the prompt encoder stay in eval mode."""
    net.train(mode != "refit")
    if mode == "refit":
        for m in (net.prior.duration, net.prior.pitch):
            m.train()
    elif mode == "finetune":
        net.prior.eval(), net.prompt_encoder.eval()


def train_ldm(preset: str, tcfg: LDMTrainConfig, cache, codec_ckpt, out: Path, resume=False, device="cpu",
              overrides=(), progress=True, refit: Path | None = None, finetune: Path | None = None,
              init: Path | None = None) -> dict:
    """Train (or resume exactly) the latent diffusion model; checkpoint out/last.pt; returns the last validation.
    `refit`: a trained ldm checkpoint whose duration and pitch predictors alone are trained afresh (`refit_base`);
    `finetune`: a trained ldm checkpoint whose diffusion model alone trains on (`finetune_base`);
    `init`: a trained ldm checkpoint whose weights a full training run starts from (`init_base`)."""
    import hashlib
    import numpy as np
    import soundfile as sf
    from corpus import data
    import model as ns2
    from tqdm import tqdm
    dist = trainer.distributed(device)
    device, out = dist.device, Path(out)
    torch.manual_seed(tcfg.seed)
    if sum(x is not None for x in (refit, finetune, init)) > 1:
        raise ValueError("--refit-predictors, --finetune and --init do not go together")
    mode, base = ("refit", refit) if refit is not None else ("finetune", finetune) if finetune is not None \
        else ("full", init)
    origin = {}                                 # where the weights started: recorded in every checkpoint of the run
    if mode == "full" and (init is None or resume):         # a resumed run takes its weights from last.pt
        net, codec, manifest = build_ldm(cache, codec_ckpt, preset, overrides)
    elif mode == "full":
        net, codec, manifest, moved = init_base(init, cache, codec_ckpt, preset, overrides)
        if dist.main and progress:
            print(f"--init {init}: {moved['copied']} tensors copied, {moved['fresh']} fresh, "
                  f"{moved['phoneme_rows']} phoneme embedding rows shared")
        origin = {"init_of": dict(path=str(init), sha256=hashlib.sha256(Path(init).read_bytes()).hexdigest()[:16])}
    else:
        net, codec, manifest = (refit_base if mode == "refit" else finetune_base)(base, cache, codec_ckpt, overrides)
        origin = {f"{mode}_of": dict(path=str(base), sha256=hashlib.sha256(Path(base).read_bytes()).hexdigest()[:16])}
    net, codec = net.to(device), codec.to(device)
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], tcfg.lr, betas=tcfg.betas,
                            weight_decay=tcfg.weight_decay)
    # bf16 on a CPU pays where matrix products dominate; on a model under 1M parameters (the tiny preset) the casts
    # dominate and it was slower (tiny step 25.5 -> 28.2 ms, evaluation/bench.py step --shapes tiny), so it stays fp32 there
    autocast, scaler = amp_context(device, tcfg.amp, cpu_bf16=sum(p.numel() for p in net.parameters()) >= 1e6)
    step, history = 0, []
    if resume:
        ck = torch.load(out / "last.pt", map_location=device, weights_only=True)
        if ck.get("kind") != "ldm" or ck["config"] != ns2.config_to_dict(net.cfg):
            raise ValueError(f"{out / 'last.pt'} is not an ldm checkpoint of this config; resume with the same options")
        net.load_state_dict(ck["model"]); opt.load_state_dict(ck["opt"]); ema = ck["ema"]
        origin = {k: ck[k] for k in ("init_of", "refit_of", "finetune_of") if k in ck} | origin
        step, history = restore_shared(ck, scaler, device, dist.rank)
    shortest = 2 * net.cfg.prompt_min_frames                     # room for a prompt and a target
    train_ds = data.FeatureDataset(cache, "train", with_codes=True, min_frames=shortest)
    valid_ds = data.FeatureDataset(cache, "valid", with_codes=True, min_frames=shortest)
    test_utts = [u for u in manifest["utterances"] if u["split"] == "test"]
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
    log = open(out / "log.jsonl", "a") if dist.main else open(os.devnull, "w")
    net_dp = trainer.wrap(net, dist)

    def on_device(b):
        return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in b.items()}

    valid_batches = data.StepBatches(valid_ds, min(8, len(valid_ds)), seed=tcfg.seed)

    def checkpoint():
        trainer.check_in_sync((net,), dist)
        rng = trainer.all_rng_states(dist)                      # every rank takes part; rank 0 writes
        if dist.main:
            save_checkpoint(out / "last.pt", dict(
                kind="ldm", version=1, preset=preset, config=ns2.config_to_dict(net.cfg),
                train_config=plain_config(tcfg), step=step, model=net.state_dict(), ema=ema, opt=opt.state_dict(),
                history=history, scaler=scaler.state_dict() if scaler else None, phonemes=manifest["phonemes"],
                front_end=manifest["front_end"], codec=manifest["codec"], rng=rng, world=dist.world,
                **origin))

    @torch.no_grad()
    def validate():
        """Valid-split losses (seen voices, unseen sentences) with the EMA weights, and two zero-shot samples:
        a held-out voice's other utterance as the prompt, decoded by the codec to out/samples/."""
        live = {k: v.clone() for k, v in net.state_dict().items()}
        net.load_state_dict(ema)
        net.eval()
        g = torch.Generator().manual_seed(0)
        terms = [net.loss(on_device(valid_batches[10 ** 9 + i]), g) for i in range(2)]        # their own seeds
        result = {k: float(sum(t[k] for t in terms) / len(terms)) for k in terms[0]}
        for k, u in enumerate(test_utts[:2]):
            prompt_u = next((p for p in test_utts if p["speaker"] == u["speaker"] and p["id"] != u["id"]), u)
            f, fp = features.load_features(Path(cache) / "feats" / f"{u['id']}.npz"), \
                features.load_features(Path(cache) / "feats" / f"{prompt_u['id']}.npz")
            prompt = codec.rvq.decode(torch.from_numpy(fp["codes"].astype(np.int64))[None].to(device))
            gen = net.generate(torch.from_numpy(f["phonemes"].astype(np.int64))[None].to(device), prompt,
                               steps=tcfg.sample_steps, generator=torch.Generator().manual_seed(k))
            (out / "samples").mkdir(exist_ok=True)
            sf.write(out / "samples" / f"step{step:07d}_{u['id']}.wav", codec.decode(gen["latent"])[0].float().cpu().numpy(), 16000)
        net.load_state_dict(live)
        _train_mode(net, mode)
        return result

    _train_mode(net, mode)
    bar = tqdm(total=tcfg.steps, initial=step, desc="ldm", unit="step", disable=not (progress and dist.main),
               dynamic_ncols=True,
               mininterval=0.5 if sys.stderr.isatty() else 30)  # one line per 30 s in a log file
    batches = data.StepBatches(train_ds, tcfg.batch_size, tcfg.frames_per_batch, tcfg.seed, dist.rank, dist.world)
    stream = iter(data.loader(batches, step, tcfg.steps, tcfg.workers, pin_memory=device.type == "cuda"))
    while step < tcfg.steps:
        b = on_device(next(stream))
        for group in opt.param_groups:
            group["lr"] = inverse_sqrt_lr(step, tcfg)
        with autocast:
            losses = net_dp(b, predictors_only=mode == "refit")
        if not torch.isfinite(losses["total"]):
            raise NonFiniteLoss(f"non-finite ldm loss at step {step} ({ {k: float(v.detach()) for k, v in losses.items()} }); "
                                f"nothing was saved: lower --lr or resume from {out / 'last.pt'}")
        losses["grad_norm"] = optimizer_step(losses["total"], opt, net.parameters(), scaler, tcfg.grad_clip)
        if scaler:
            scaler.update()
        with torch.no_grad():
            for k, v in net.state_dict().items():
                ema[k].lerp_(v, 1 - tcfg.ema_decay) if v.is_floating_point() else ema[k].copy_(v)
        step += 1
        bar.update(1)
        if step % tcfg.log_every == 0 or step == tcfg.steps:
            row = {k: round(float(v.detach()), 5) for k, v in losses.items()}
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k in ("data", "score", "ce_rvq", "dur", "pitch")})
            log.write(json.dumps(dict(step=step, lr=inverse_sqrt_lr(step - 1, tcfg), **row)) + "\n")
            log.flush()
        if (step % tcfg.val_every == 0 or step == tcfg.steps) and dist.main:
            history.append(dict(step=step, **validate()))
            log.write(json.dumps(dict(step=step, val=history[-1])) + "\n")
            log.flush()
        if step % tcfg.ckpt_every == 0 or step == tcfg.steps:
            checkpoint()
    bar.close()
    log.close()
    trainer.barrier(dist)
    return history[-1] if history else {}
