"""Training stage `codec` (paper §3.1, §4): the neural audio codec with its discriminators, as a `Stage` of the one
training loop (training/loop.py). Run it through train.py:

    python train.py codec --config toy --data data/toy --out runs/codec_toy            # train (resumable)
    python train.py codec --config toy --data data/toy --out runs/codec_toy --resume    # continue exactly

Batches: random crops (corpus/data.py `WaveSegments`), read ahead by `workers` DataLoader processes when set.
One step: the generator's losses (reconstruction, then from `adv_start` on adversarial and feature matching too),
its optimizer step, then the discriminators' step. AdamW with linear warm-up then cosine decay; validation
reconstructs held-out clips with all R quantizers (mel distance, SI-SDR, PESQ, STOI, codebook perplexity).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

import codec as codec_lib
from corpus import data
from training import loop
from training.presets import CodecTrainConfig, adamw, plain_config


def lr_at(step: int, t: CodecTrainConfig) -> float:
    """Linear warm-up to t.lr over warmup_steps, then cosine decay to t.lr * min_lr_ratio at t.steps."""
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = min(1.0, (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps))
    return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def validate(model, clips, device) -> loop.Validation:
    """Reconstruct held-out clips with all R quantizers: mean codec metrics, per-quantizer perplexity, and two of
    the reconstructions to listen to."""
    from evaluation import metrics
    if not clips:
        return loop.Validation({}, {}, model.cfg.sample_rate)
    was_training = model.training
    model.eval()
    result = metrics.evaluate_codec(model, clips, (model.cfg.n_q,), device=device, n_wavs=2)
    model.train(was_training)
    row = {k: v for k, v in result["rows"][0].items() if k in ("mel", "si_sdr", "pesq", "stoi")}
    return loop.Validation(dict(row, perplexity=result["perplexity"]), result["audio"], model.cfg.sample_rate)


def start_from(model, init: Path):
    """Copy a trained codec's weights and codebooks into `model` (same config), codebook EMA statistics restarted:
    fine-tuning, e.g. the toy codec on real speech."""
    start = codec_lib.load_codec(init)
    if plain_config(model.cfg) != plain_config(start.cfg):
        raise ValueError(f"--init {init} has another model config than --config; pass the config it was trained with")
    model.load_state_dict(start.state_dict())
    model.rvq.restart_ema_stats()


def validation_clips(data_root, n: int) -> list:
    """Up to n clips to validate on: the held-out voices (test split); a cache built without one (e.g. a training
    corpus prepared with --splits train,valid) falls back to the valid split, with a note, instead of failing at the
    first validation. None at all: the run trains without codec metrics."""
    from evaluation import metrics
    clips = metrics.heldout_clips(data_root, n)
    if not clips:
        clips = metrics.heldout_clips(data_root, n, split="valid")
        print(f"note: {data_root} has no test split; the codec validates on {len(clips)} clips of the valid split "
              "(training voices, unseen sentences)")
    return clips


def codec_stage(model_cfg, tcfg: CodecTrainConfig, data_root, out: Path, d: loop.Dist, scaler, autocast,
                init: Path | None = None) -> loop.Stage:
    """The codec, its discriminators and their optimizers as a Stage; `init`: a trained codec to start from."""
    model = codec_lib.Codec(model_cfg).to(d.device)
    disc = codec_lib.Discriminators(model_cfg).to(d.device)
    opt_g = adamw(model.parameters(), tcfg)
    opt_d = adamw(disc.parameters(), tcfg)
    if init is not None:
        start_from(model, init)
    segments = data.WaveSegments(data_root, "train", int(tcfg.segment * model_cfg.sample_rate), tcfg.batch_size,
                                 tcfg.seed, rank=d.rank, world=d.world)
    clips = validation_clips(data_root, tcfg.val_utts) if d.main else []
    model_dp, disc_dp = loop.wrap(model, d), loop.wrap(disc, d)
    last, stream = Path(out) / "last.pt", {}        # the loader starts at the first step run (after a resume, its step)

    def train_step(step: int) -> dict:
        if "it" not in stream:
            stream["it"] = iter(data.loader(segments, step, tcfg.steps, tcfg.workers,
                                            pin_memory=d.device.type == "cuda"))
        x = next(stream["it"]).to(d.device)
        adversarial = step >= tcfg.adv_start
        disc.requires_grad_(False)                  # the generator's step sends no gradient into the discriminator
        with autocast:
            out_g = model_dp(x)
            losses = codec_lib.generator_losses(model_cfg, x, out_g, disc if adversarial else None)
        total = codec_lib.total_loss(model_cfg, losses)
        loop.check_finite(total, "codec loss", step, losses, last)
        losses["grad_norm"] = loop.optimizer_step(total, opt_g, model.parameters(), scaler, tcfg.grad_clip)
        disc.requires_grad_(True)
        if adversarial:
            with autocast:
                d_loss = codec_lib.discriminator_loss(disc_dp, x, out_g["wav"])
            loop.check_finite(d_loss, "discriminator loss", step)
            loop.optimizer_step(d_loss, opt_d, disc.parameters(), scaler, tcfg.grad_clip)
            losses["disc"] = d_loss
        return losses

    return loop.Stage(kind="codec", config=plain_config(model_cfg), modules=dict(model=model, disc=disc),
                      optimizers=dict(opt_g=opt_g, opt_d=opt_d), train_step=train_step,
                      validate=lambda step: validate(model, clips, d.device), lr_at=lambda step: lr_at(step, tcfg))


def train_codec(model_cfg, tcfg: CodecTrainConfig, data_root, out: Path, resume: bool = False, device: str = "cpu",
                progress: bool = True, init: Path | None = None) -> dict:
    """Train (or resume) the codec; returns the final validation metrics. Checkpoint: out/last.pt. Under torchrun
    every rank trains on its slice of each global batch (batch_size per rank); rank 0 validates and writes.
    `init`: a trained codec (training or exported checkpoint, same model config) whose weights and codebooks the
    run starts from; discriminators and optimizers start fresh; ignored on a resume."""
    d = loop.distributed(device)
    torch.manual_seed(tcfg.seed)
    autocast, scaler = loop.amp_context(d.device, tcfg.amp)
    stage = codec_stage(model_cfg, tcfg, data_root, out, d, scaler, autocast, None if resume else init)
    return loop.run(stage, tcfg, out, d, scaler, resume, progress)
