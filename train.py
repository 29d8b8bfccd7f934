"""Training stages (paper §4.3): `codec` (§3.1, here) and `ldm` (latent diffusion + prior + prompting, §3.2-3.3,
in training/ldm_stage.py); this file is the command line of both, the codec's loop and `export`; what the stages share
(overrides, atomic checkpoints, exact resume, precision, DDP) is in training/loop.py.

    python train.py codec --config toy --data data/toy --out runs/codec_toy            # train (resumable)
    python train.py codec --config toy --data data/toy --out runs/codec_toy --resume    # continue exactly
    python train.py export --ckpt runs/codec_toy/last.pt --out checkpoints/toy/codec.pt
    python train.py ldm --config toy --data data/toy --codec checkpoints/toy/codec.pt --out runs/ldm_toy
    python train.py ldm ... --refit-predictors BASE.pt --prior.pred_dropout=0.1 --steps=3000 --out R
    any field of the training or model config can be overridden: --lr=5e-4 --steps=20000 --channels=32;
    nested ldm fields with a dot, e.g. the ablations --use_ce_rvq=False --denoiser.use_prompt=False
    --denoiser.use_query_attention=False --prior.use_prompt=False, or --cfg_drop=0.1

What the loop guarantees: AdamW with linear warm-up then cosine decay; bf16/fp16 autocast on GPU; gradient
clipping; no adversarial loss before `adv_start` (a warm-up on the reconstruction losses alone); a progress bar
with the losses; validation on held-out voices every `val_every` steps with audio written out; checkpoints written
atomically (temp file + rename) with the configs inside; `--resume` continues exactly (same step, weights,
optimizers, grad scaler, RNG state; batches are a pure function of the step); a NaN/inf loss stops training with a
clear message before anything is written.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import torch

import codec as codec_lib
from training import loop as trainer
from training.ldm_stage import LDM_PRESETS, LDMTrainConfig, train_ldm
from training.loop import (NonFiniteLoss, amp_context, optimizer_step, parse_overrides, plain_config, restore_shared,
                     save_checkpoint)


@dataclass
class CodecTrainConfig:
    steps: int = 200_000                # the paper trains 440K steps on 8 GPUs
    batch_size: int = 16
    segment: float = 1.0                # seconds of audio per example
    lr: float = 2e-4                    # §4: Adam, lr 2e-4
    betas: tuple = (0.8, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 1000            # linear lr warm-up
    min_lr_ratio: float = 0.1           # cosine decay to lr * min_lr_ratio at `steps`
    adv_start: int = 10_000             # steps trained on reconstruction losses only
    grad_clip: float = 5.0
    amp: str = "auto"                   # auto (bf16 on GPU, none on CPU) | bf16 | fp16 | none
    log_every: int = 50
    val_every: int = 2000
    ckpt_every: int = 500
    val_utts: int = 12                  # held-out clips scored at each validation (one per voice when possible)
    seed: int = 0


TRAIN_PRESETS = {
    "paper": CodecTrainConfig(),
    "libritts": CodecTrainConfig(batch_size=32, steps=150_000),
    "toy": CodecTrainConfig(batch_size=8, lr=1e-3, steps=7_000, warmup_steps=500, adv_start=5_000,
                            val_every=1000, ckpt_every=250),
    "tiny": CodecTrainConfig(batch_size=2, segment=0.5, lr=1e-3, steps=4, warmup_steps=1, adv_start=2, log_every=1,
                             val_every=4, ckpt_every=2, val_utts=2),
}


def lr_at(step: int, t: CodecTrainConfig) -> float:
    """Linear warm-up to t.lr over warmup_steps, then cosine decay to t.lr * min_lr_ratio at t.steps."""
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = min(1.0, (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps))
    return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def validate(model, clips, device, out_dir: Path | None = None, step: int = 0) -> dict:
    """Reconstruct held-out clips with all R quantizers: mean codec metrics and per-quantizer perplexity (evaluation/metrics.py)."""
    from evaluation import metrics
    was_training = model.training
    model.eval()
    result = metrics.evaluate_codec(model, clips, (model.cfg.n_q,), out_dir, prefix=f"step{step:07d}_", device=device,
                                    n_wavs=2)
    model.train(was_training)
    row = {k: v for k, v in result["rows"][0].items() if k in ("mel", "si_sdr", "pesq", "stoi")}
    return dict(row, perplexity=result["perplexity"])


def train_codec(model_cfg, tcfg: CodecTrainConfig, data_root, out: Path, resume: bool = False,
                device: str = "cpu", progress: bool = True, init: Path | None = None) -> dict:
    """Train (or resume) the codec; returns the final validation metrics. Checkpoint: out/last.pt. Under torchrun
    every rank trains on its slice of each global batch (batch_size per rank); rank 0 validates and writes.
    `init`: a trained codec (training or exported checkpoint, same model config) whose weights and codebooks the
    run starts from (fine-tuning, e.g. a toy codec onto real speech); discriminators and optimizers start fresh."""
    from corpus import data
    from tqdm import tqdm
    dist = trainer.distributed(device)
    device = dist.device
    out = Path(out)
    last = out / "last.pt"
    torch.manual_seed(tcfg.seed)
    model = codec_lib.Codec(model_cfg).to(device)
    disc = codec_lib.Discriminators(model_cfg).to(device)
    opt_g = torch.optim.AdamW(model.parameters(), tcfg.lr, betas=tcfg.betas, weight_decay=tcfg.weight_decay)
    opt_d = torch.optim.AdamW(disc.parameters(), tcfg.lr, betas=tcfg.betas, weight_decay=tcfg.weight_decay)
    autocast, scaler = amp_context(device, tcfg.amp)
    step, history = 0, []
    if resume:
        ck = torch.load(last, map_location=device, weights_only=True)
        if ck.get("kind") != "codec":
            raise ValueError(f"{last} is not a codec training checkpoint")
        if plain_config(model_cfg) != ck["config"]:
            raise ValueError(f"{last} was trained with another model config; resume with the same --config")
        model.load_state_dict(ck["model"]); disc.load_state_dict(ck["disc"])
        opt_g.load_state_dict(ck["opt_g"]); opt_d.load_state_dict(ck["opt_d"])
        step, history = restore_shared(ck, scaler, device, dist.rank)
    elif init is not None:
        start = codec_lib.load_codec(init)
        if plain_config(model_cfg) != plain_config(start.cfg):
            raise ValueError(f"--init {init} has another model config than --config; pass the config it was trained with")
        model.load_state_dict(start.state_dict())
        model.rvq.restart_ema_stats()
    segments = data.WaveSegments(data_root, "train", int(tcfg.segment * model_cfg.sample_rate), tcfg.batch_size,
                                 tcfg.seed, rank=dist.rank, world=dist.world)
    clips = __import__("evaluation.metrics", fromlist=["metrics"]).heldout_clips(data_root, tcfg.val_utts) if dist.main else []
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
    log = open(out / "log.jsonl", "a") if dist.main else open(os.devnull, "w")
    model_dp, disc_dp = trainer.wrap(model, dist), trainer.wrap(disc, dist)

    def checkpoint():
        trainer.check_in_sync((model, disc), dist)
        rng = trainer.all_rng_states(dist)                      # every rank takes part; rank 0 writes
        if dist.main:
            save_checkpoint(last, dict(kind="codec", version=1, config=plain_config(model_cfg),
                                       train_config=plain_config(tcfg), step=step, model=model.state_dict(),
                                       disc=disc.state_dict(), opt_g=opt_g.state_dict(), opt_d=opt_d.state_dict(),
                                       scaler=scaler.state_dict() if scaler else None, history=history, rng=rng,
                                       world=dist.world))

    model.train(); disc.train()
    bar = tqdm(total=tcfg.steps, initial=step, desc="codec", unit="step", disable=not (progress and dist.main),
               dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 30)  # one line per 30 s in a log file
    t0 = time.time()
    while step < tcfg.steps:
        x = segments.batch(step).to(device)
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, tcfg)
        adversarial = step >= tcfg.adv_start
        disc.requires_grad_(False)                  # the generator's step sends no gradient into the discriminator
        with autocast:
            out_g = model_dp(x)
            losses = codec_lib.generator_losses(model_cfg, x, out_g, disc if adversarial else None)
        total = codec_lib.total_loss(model_cfg, losses)
        if not torch.isfinite(total):
            raise NonFiniteLoss(f"non-finite codec loss at step {step} ({ {k: float(v.detach()) for k, v in losses.items()} }); "
                                f"nothing was saved: lower --lr or resume from {last}")
        losses["grad_norm"] = optimizer_step(total, opt_g, model.parameters(), scaler, tcfg.grad_clip)
        disc.requires_grad_(True)
        if adversarial:
            with autocast:
                d_loss = codec_lib.discriminator_loss(disc_dp, x, out_g["wav"])
            if not torch.isfinite(d_loss):
                raise NonFiniteLoss(f"non-finite discriminator loss at step {step}; nothing was saved")
            optimizer_step(d_loss, opt_d, disc.parameters(), scaler, tcfg.grad_clip)
            losses["disc"] = d_loss
        if scaler:
            scaler.update()
        step += 1
        bar.update(1)
        if step % tcfg.log_every == 0 or step == tcfg.steps:
            row = {k: round(float(v.detach()), 5) for k, v in losses.items()}
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k != "grad_norm"})
            log.write(json.dumps(dict(step=step, lr=lr_at(step - 1, tcfg), sec=round(time.time() - t0, 1), **row)) + "\n")
            log.flush()
        if (step % tcfg.val_every == 0 or step == tcfg.steps) and dist.main:
            metrics = validate(model, clips, device, out / "samples", step)
            history.append(dict(step=step, **metrics))
            log.write(json.dumps(dict(step=step, val=metrics)) + "\n")
            log.flush()
            bar.write(f"step {step}: " + "  ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k != "perplexity"))
        if step % tcfg.ckpt_every == 0 or step == tcfg.steps:
            checkpoint()
    bar.close()
    log.close()
    trainer.barrier(dist)
    return history[-1] if history else {}


def export(ckpt_path: Path, out: Path):
    """Training checkpoint -> compact checkpoint for users: weights in fp16 (the EMA weights for an ldm), codebooks
    and latent statistics in fp32 (exact nearest-code search and normalisation), no discriminator, optimizer or
    codebook EMA statistics."""
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    if ck.get("kind") not in ("codec", "ldm"):
        raise ValueError(f"{ckpt_path} is neither a codec nor an ldm training checkpoint")
    keep32 = ("rvq.codebooks", "latent_mean", "latent_std")
    state = {k: (v if k in keep32 or not v.is_floating_point() else v.half())
             for k, v in ck.get("ema", ck["model"]).items() if k not in ("rvq.cluster_size", "rvq.embed_sum")}
    drop = ("model", "ema", "disc", "opt", "opt_g", "opt_d", "scaler", "rng")
    save_checkpoint(out, dict({k: v for k, v in ck.items() if k not in drop}, model=state))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    sub = ap.add_subparsers(dest="stage", required=True)
    for stage, presets, what in (("codec", codec_lib.CONFIGS, "the neural audio codec (§3.1)"),
                                 ("ldm", LDM_PRESETS, "the latent diffusion model, prior and prompt encoder (§3.2-3.3)")):
        p = sub.add_parser(stage, help=f"train {what}")
        p.add_argument("--config", default="toy", choices=sorted(presets), help="model + training preset")
        p.add_argument("--data", type=Path, default=Path("data/toy"),
                       help="feature cache (corpus/data.py prepare" + (", then corpus/data.py encode)" if stage == "ldm" else ")"))
        p.add_argument("--out", type=Path, default=None, help=f"run folder (default runs/{stage}_<config>)")
        p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt exactly")
        p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
        p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
        if stage == "codec":
            p.add_argument("--init", type=Path, default=None, metavar="CODEC_CKPT",
                           help="start from this trained codec's weights (fine-tuning, e.g. the toy codec on real "
                                "speech); discriminators and optimizers start fresh; ignored with --resume")
        if stage == "ldm":
            p.add_argument("--codec", type=Path, default=Path("checkpoints/toy/codec.pt"), help="the codec of the IDs")
            p.add_argument("--refit-predictors", type=Path, default=None, metavar="LDM_CKPT",
                           help="train only fresh duration and pitch predictors for this trained model, the rest "
                                "frozen; --prior.<predictor field>=... may change them (e.g. --prior.pred_dropout=0.1)")
            p.add_argument("--finetune", type=Path, default=None, metavar="LDM_CKPT",
                           help="train on the diffusion model of this trained model, prior and prompt encoder frozen "
                                "(e.g. --cfg_drop=0.1 for classifier-free guidance; an experiment beyond the paper)")
            p.add_argument("--init", type=Path, default=None, metavar="LDM_CKPT",
                           help="start a full run from this trained model's weights (e.g. the toy model on real "
                                "speech): matching weights are copied, shared phonemes keep their embeddings")
    e = sub.add_parser("export", help="write a compact checkpoint for users from a training checkpoint")
    e.add_argument("--ckpt", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True)
    args, extra = ap.parse_known_args(argv)
    try:
        if args.stage == "export":
            if extra:
                raise ValueError(f"unrecognised arguments {extra}")
            export(args.ckpt, args.out)
            print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
            return 0
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.stage == "codec":                                # overrides first: a typo is reported at once
            model_cfg, tcfg = parse_overrides(extra, codec_lib.make_config(args.config), TRAIN_PRESETS[args.config])
        else:
            import model as ns2
            is_train_key = lambda e: e[2:].split("=")[0].replace("-", "_") in {f.name for f in fields(LDMTrainConfig)}
            model_overrides = [e for e in extra if not is_train_key(e)]
            (tcfg,) = parse_overrides([e for e in extra if is_train_key(e)], LDM_PRESETS[args.config])
            parse_overrides(model_overrides, ns2.make_ns2_config(args.config))
        out = args.out or Path("runs") / f"{args.stage}_{args.config}"
        if args.resume != (out / "last.pt").exists():
            raise ValueError(f"--resume: no checkpoint at {out / 'last.pt'}" if args.resume else
                             f"{out / 'last.pt'} exists: pass --resume to continue it, or another --out")
        from corpus import data
        data.read_manifest(args.data)
        if args.stage == "codec":
            final = train_codec(model_cfg, tcfg, args.data, out, args.resume, args.device, init=args.init)
        else:
            final = train_ldm(args.config, tcfg, args.data, args.codec, out, args.resume, args.device, model_overrides,
                              refit=args.refit_predictors, finetune=args.finetune, init=args.init)
        print(f"done: {out / 'last.pt'}  " + json.dumps({k: v for k, v in final.items() if k != 'perplexity'}))
    except (ValueError, FileNotFoundError, NonFiniteLoss) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
