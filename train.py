"""Training (paper §4.3): the command line of both stages and of `export`. The stages are `codec` (§3.1,
training/codec_stage.py) and `ldm` (latent diffusion + prior + prompting, §3.2-3.3, training/ldm_stage.py); both run
in the one training loop of training/loop.py, and every size comes from the one preset table, training/presets.py.

    python train.py codec --config toy --data data/toy --out runs/codec_toy            # train (resumable)
    python train.py codec --config toy --data data/toy --out runs/codec_toy --resume    # continue exactly
    python train.py export --ckpt runs/codec_toy/last.pt --out checkpoints/toy/codec.pt
    python train.py ldm --config toy --data data/toy --codec checkpoints/toy/codec.pt --out runs/ldm_toy
    python train.py ldm ... --refit-predictors BASE.pt --prior.pred_dropout=0.1 --steps=3000 --out R
    any field of the training or model config can be overridden: --lr=5e-4 --steps=20000 --channels=32;
    nested ldm fields with a dot, e.g. the ablations --use_ce_rvq=False --denoiser.use_prompt=False
    --denoiser.use_query_attention=False --prior.use_prompt=False, or --cfg_drop=0.1

What the loop guarantees: the stage's learning-rate schedule; bf16/fp16 autocast on GPU; gradient clipping; a
progress bar with the losses; losses, learning rate and gradient norm in <out>/log.jsonl and in TensorBoard
(`tensorboard --logdir <out>/tb`); validation on held-out data every `val_every` steps with audio to listen to
(<out>/samples and TensorBoard); checkpoints written atomically (temp file + rename) with the configs inside;
`--resume` continues exactly (same step, weights, optimizers, grad scaler, RNG state; batches are a pure function of
the step); a NaN/inf loss stops training with a clear message before anything is written.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from training import presets
from training.codec_stage import train_codec
from training.ldm_stage import LDMJob, train_ldm
from training.loop import NonFiniteLoss, save_checkpoint

LDM_MODES = {       # flag: (training/ldm_stage.py mode, what it trains); without one of them a run is "full"
    "--refit-predictors": ("refit", "train only fresh duration and pitch predictors for this trained model, the rest "
                                    "frozen; --prior.<predictor field>=... may change them (e.g. "
                                    "--prior.pred_dropout=0.1)"),
    "--finetune": ("finetune", "train on the diffusion model of this trained model, prior and prompt encoder frozen "
                               "(e.g. --cfg_drop=0.1 for classifier-free guidance; an experiment beyond the paper)"),
    "--init": ("init", "start a full run from this trained model's weights (e.g. the toy model on real speech): "
                       "matching weights are copied, shared phonemes keep their embeddings"),
}


def export(ckpt_path: Path, out: Path, codec: Path | None = None):
    """Training checkpoint -> compact checkpoint for users: weights in fp16 (the EMA weights for an ldm), codebooks
    and latent statistics in fp32 (exact nearest-code search and normalisation), no discriminator, optimizer or
    codebook EMA statistics. `codec` (ldm only): record this path as the model's codec instead of the one it trained
    with, e.g. the copy shipped beside it; it must be the same file (its hash is checked)."""
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    if ck.get("kind") not in ("codec", "ldm"):
        raise ValueError(f"{ckpt_path} is neither a codec nor an ldm training checkpoint")
    if codec is not None:
        from corpus import features
        if ck["kind"] != "ldm":
            raise ValueError("--codec applies to an ldm checkpoint only")
        if not codec.is_file():
            raise FileNotFoundError(f"--codec: no file {codec}")
        if features.file_hash(codec) != ck["codec"]["sha256"]:
            raise ValueError(f"--codec: {codec} is not the codec this model trained with ({ck['codec']['checkpoint']})")
        ck["codec"] = dict(ck["codec"], checkpoint=codec.as_posix())
    keep32 = ("rvq.codebooks", "latent_mean", "latent_std")
    state = {k: (v if k in keep32 or not v.is_floating_point() else v.half())
             for k, v in ck.get("ema", ck["model"]).items() if k not in ("rvq.cluster_size", "rvq.embed_sum")}
    drop = ("model", "ema", "disc", "opt", "opt_g", "opt_d", "scaler", "rng")
    save_checkpoint(out, dict({k: v for k, v in ck.items() if k not in drop}, model=state))


def stage_parser(sub, stage: str, what: str):
    p = sub.add_parser(stage, help=f"train {what}")
    p.add_argument("--config", default="toy", choices=sorted(presets.PRESETS), help="preset (training/presets.py)")
    p.add_argument("--data", type=Path, default=Path("data/toy"), help="feature cache (python -m corpus.data prepare"
                   + (", then python -m corpus.data encode)" if stage == "ldm" else ")"))
    p.add_argument("--out", type=Path, default=None, help=f"run folder (default runs/{stage}_<config>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt exactly")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    return p


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    sub = ap.add_subparsers(dest="stage", required=True)
    c = stage_parser(sub, "codec", "the neural audio codec (§3.1)")
    c.add_argument("--init", type=Path, default=None, metavar="CODEC_CKPT",
                   help="start from this trained codec's weights (fine-tuning, e.g. the toy codec on real speech); "
                        "discriminators and optimizers start fresh; ignored with --resume")
    m = stage_parser(sub, "ldm", "the latent diffusion model, prior and prompt encoder (§3.2-3.3)")
    m.add_argument("--codec", type=Path, default=Path("checkpoints/toy/codec.pt"), help="the codec of the IDs")
    modes = m.add_mutually_exclusive_group()
    for flag, (_, what) in LDM_MODES.items():
        modes.add_argument(flag, type=Path, default=None, metavar="LDM_CKPT", help=what)
    e = sub.add_parser("export", help="write a compact checkpoint for users from a training checkpoint")
    e.add_argument("--ckpt", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--codec", type=Path, default=None, help="ldm: record this copy of its codec (same file, hash "
                   "checked) as the model's codec, e.g. checkpoints/real/codec.pt when shipping both")
    return ap


def stage_settings(args, extra: list[str]) -> tuple:
    """The `--key=value` overrides of a training stage, checked against the preset's configs (ValueError on a
    typo or a bad value): codec -> (codec config, training config); ldm -> (training config, model changes)."""
    p = presets.preset(args.config)
    if args.stage == "codec":
        return presets.parse_overrides(extra, p.codec, p.codec_train)
    tvals, changes = presets.typed_overrides(extra, p.ldm_train, p.model)
    return presets.apply_overrides(p.ldm_train, tvals), changes


def run_stage(args, extra: list[str]) -> dict:
    """Parse the overrides once (a typo is reported before any data is read), check the run folder, train."""
    if args.stage == "codec":
        model_cfg, tcfg = stage_settings(args, extra)
    else:
        tcfg, changes = stage_settings(args, extra)
    out = args.out or Path("runs") / f"{args.stage}_{args.config}"
    if args.resume != (out / "last.pt").exists():
        raise ValueError(f"--resume: no checkpoint at {out / 'last.pt'}" if args.resume else
                         f"{out / 'last.pt'} exists: pass --resume to continue it, or another --out")
    from corpus import data
    data.read_manifest(args.data)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.stage == "codec":
        return train_codec(model_cfg, tcfg, args.data, out, args.resume, args.device, init=args.init)
    chosen = [(mode, getattr(args, flag[2:].replace("-", "_"))) for flag, (mode, _) in LDM_MODES.items()]
    mode, base = next(((mode, base) for mode, base in chosen if base is not None), ("full", None))
    job = LDMJob(args.config, args.data, args.codec, out, changes, mode, base)
    return train_ldm(job, tcfg, args.resume, args.device)


def main(argv=None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    try:
        if args.stage == "export":
            if extra:
                raise ValueError(f"unrecognised arguments {extra}")
            export(args.ckpt, args.out, args.codec)
            print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
            return 0
        final = run_stage(args, extra)
        print(f"done: {(args.out or Path('runs') / f'{args.stage}_{args.config}') / 'last.pt'}  "
              + json.dumps({k: v for k, v in final.items() if k != 'perplexity'}))
    except (ValueError, FileNotFoundError, NonFiniteLoss) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
