"""Quality against the number of network evaluations for the ODE samplers (docs/sampler-steps.md).

    python -m tools.sampler_sweep run                  # every configuration, into runs/sampler_sweep/results.json
    python -m tools.sampler_sweep report               # the table, the plot and the chosen default

The evaluation is the README's: the toy corpus's 12 held-out voices, 7 sentences each (84), scored as
`evaluation/demo.py --stage tts` scores them (speaker-ID, SIM to the prompt, PER, MCD, pitch). Euler (`ode`), Heun (`heun`) and
DPM-Solver++(2M) (`dpm`) run at about 5, 10, 20, 40 and 150 network evaluations (NFE = denoiser calls per
sentence, `diffusion.network_evaluations`); the paper's setting, 150 Euler steps, runs with three seeds, and the
spread of its scores over the seeds is the run-to-run noise the others are judged against. `run` is resumable: each
configuration's scores are written as soon as they exist, and a second `run` skips the ones already there.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

import diffusion

REFERENCE = ("ode", 150)                                   # the paper's sampler and steps
REFERENCE_SEEDS = (0, 1000, 2000)
STEPS = {"ode": (4, 9, 19, 39), "heun": (2, 5, 10, 20, 75), "dpm": (4, 9, 19, 39, 149)}
SECOND_SEED = [("dpm", 9, 1000)]                          # the chosen default, with another seed
# metric key, label, higher is better
METRICS = [("speaker_id", "spk-ID", True), ("sim_prompt", "SIM prompt", True), ("per", "PER", False),
           ("mcd", "MCD dB", False), ("pitch_mean_rel", "ΔF0 mean vs prompt", False),
           ("pitch_rmse", "F0 RMSE vs GT Hz", False)]


def configurations() -> list:
    """(sampler, steps, seed) in the order they run: the reference first, then every sampler from few NFE up."""
    runs = [(sampler, n, 0) for sampler, steps in STEPS.items() for n in steps] + SECOND_SEED
    return [(*REFERENCE, s) for s in REFERENCE_SEEDS] + sorted(runs, key=lambda c: diffusion.network_evaluations(*c[:2]))


def key(sampler: str, steps: int, seed: int) -> str:
    return f"{sampler}:{steps}:{seed}"


def write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def run(args) -> int:
    import torch
    from evaluation import demo
    import sample
    from model import Sampling
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    todo = [c for c in configurations() if key(*c) not in done]
    if not todo:
        print(f"all {len(done)} configurations are in {path}")
        return 0
    synth = sample.Synthesizer(args.ckpt, args.codec)
    items, enrolled, rec = demo.load_items(args.data, args.per_voice, args.asr)
    if "ground truth" not in done:
        gt = dict(name="ground truth", wavs=[it["gt"] for it in items])
        gt["embs"] = [it["gt_emb"] for it in items]
        done["ground truth"] = dict(scores=demo.score(gt, items, enrolled, rec, False)[0])
        write_json(path, done)
    for sampler, steps, seed in todo:
        jobs = [sample.Job(it["text"], it["prompt_path"], seed + k) for k, it in enumerate(items)]
        out = synth.many(jobs, Sampling(steps, sampler), args.batch_size, return_info=True,
                         progress=f"{sampler} {steps} steps, seed {seed}")
        system = demo.system_of(key(sampler, steps, seed), out)
        system["embs"] = [demo.embed_or_none(w) for w in system["wavs"]]
        scores = demo.score(system, items, enrolled, rec, False)[0]
        done[key(sampler, steps, seed)] = dict(sampler=sampler, steps=steps, seed=seed, scores=scores,
                                               nfe=diffusion.network_evaluations(sampler, steps))
        write_json(path, done)
        print(f"{key(sampler, steps, seed)}: " + ", ".join(f"{label} {scores[k]:.3f}" for k, label, _ in METRICS
                                                           if k in scores))
    return 0


def noise_band(done: dict) -> dict:
    """metric -> (mean, std) over the reference seeds."""
    refs = [done[key(*REFERENCE, s)]["scores"] for s in REFERENCE_SEEDS]
    return {k: (float(np.mean([r[k] for r in refs])), float(np.std([r[k] for r in refs], ddof=1)))
            for k, _, _ in METRICS if all(k in r for r in refs)}


def within_noise(scores: dict, band: dict, k_sigma: float) -> bool:
    """No metric worse than the reference's mean by more than k_sigma of its seed-to-seed standard deviation
    (better is always within)."""
    for k, _, higher in METRICS:
        if k in band:
            mean, std = band[k]
            worse = mean - scores[k] if higher else scores[k] - mean
            if worse > k_sigma * std:
                return False
    return True


def report(args) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    path = args.out / "results.json"
    if not path.exists():
        print(f"error: {path} does not exist: run `python -m tools.sampler_sweep run` first", file=sys.stderr)
        return 2
    done = json.loads(path.read_text())
    missing = [key(*c) for c in configurations() if key(*c) not in done]
    if missing:
        print(f"note: {len(missing)} configurations not run yet ({', '.join(missing[:4])}, ...)", file=sys.stderr)
    band = noise_band(done)
    runs = sorted((r for name, r in done.items() if name != "ground truth"), key=lambda r: (r["sampler"], r["nfe"], r["seed"]))
    cols = [m for m in METRICS if m[0] in band]
    lines = ["| sampler | steps | NFE | seed | " + " | ".join(label + (" ↑" if hi else " ↓") for _, label, hi in cols)
             + " | within noise |", "|---" * (len(cols) + 5) + "|"]
    gt = done["ground truth"]["scores"]
    lines.append("| ground truth | — | — | — | " + " | ".join(f"{gt[k]:.3f}" if k in gt else "—" for k, _, _ in cols)
                 + " | — |")
    for r in runs:
        ok = within_noise(r["scores"], band, args.k_sigma)
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['nfe']} | {r['seed']} | "
                     + " | ".join(f"{r['scores'][k]:.3f}" for k, _, _ in cols) + f" | {'yes' if ok else 'no'} |")
    lines.append("| noise: std over the 3 reference seeds | | | | " + " | ".join(f"{band[k][1]:.3f}" for k, _, _ in cols)
                 + " | |")
    ok = [r for r in runs if within_noise(r["scores"], band, args.k_sigma) and (r["sampler"], r["steps"]) != REFERENCE]
    best = min(ok, key=lambda r: (r["nfe"], r["sampler"])) if ok else None
    choice = (f"fewest NFE within {args.k_sigma:g} σ of 150 Euler steps on every metric: {best['sampler']} "
              f"{best['steps']} steps ({best['nfe']} NFE)" if best else "no configuration below 150 Euler steps is "
              "within the noise on every metric")
    table = "\n".join(lines)
    print(table + "\n\n" + choice)
    (args.out / "table.md").write_text(table + "\n\n" + choice + "\n")

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, (k, label, higher) in zip(axes.flat, cols):
        mean, std = band[k]
        ax.axhspan(mean - args.k_sigma * std, mean + args.k_sigma * std, color="0.85",
                   label=f"150 Euler steps ± {args.k_sigma:g}σ (3 seeds)")
        for sampler, style in (("ode", "o-"), ("heun", "s-"), ("dpm", "^-")):
            rs = [r for r in runs if r["sampler"] == sampler and r["seed"] == 0]
            ax.plot([r["nfe"] for r in rs], [r["scores"][k] for r in rs], style,
                    label={"ode": "Euler", "heun": "Heun", "dpm": "DPM-Solver++(2M)"}[sampler])
        if k in gt:
            ax.axhline(gt[k], color="k", ls=":", lw=1, label="ground truth")
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations per sentence")
        ax.set_title(label + (" (higher is better)" if higher else " (lower is better)"), fontsize=10)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=90)
    print(f"table in {args.out / 'table.md'}, plot in {args.plot}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tools.sampler_sweep",
                                 description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["run", "report"])
    ap.add_argument("--out", type=Path, default=Path("runs/sampler_sweep"))
    ap.add_argument("--data", type=Path, default=Path("data/toy"))
    ap.add_argument("--ckpt", type=Path, default=Path("checkpoints/toy/ldm.pt"))
    ap.add_argument("--codec", type=Path, default=None)
    ap.add_argument("--asr", type=Path, default=Path("checkpoints/toy/asr.pt"))
    ap.add_argument("--per-voice", type=int, default=7)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k-sigma", type=float, default=2.0, help="within the noise: no metric worse than the reference "
                    "mean by more than this many seed-to-seed standard deviations")
    ap.add_argument("--plot", type=Path, default=Path("docs/sampler_steps.png"))
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    sys.exit(main())
