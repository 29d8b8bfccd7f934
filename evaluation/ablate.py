"""Quick ablations (the paper's Table 9, at classroom size): train small models with and without one switch, over
several seeds, score them the same way on held-out voices, and print mean ± spread per metric.

    python -m evaluation.ablate                                         # the default question (below)
    python -m evaluation.ablate --denoiser.use_query_attention=false --steps 300 --seeds 2
    python -m evaluation.ablate --lr=2e-3 --preset tiny --set batch_size=8     # any typed override is a switch

Two arms, each trained once per seed (`train.py ldm`, i.e. training/ldm_stage.py in the one training loop, each run
its own process):
    baseline   the preset's model and training config, the ablation's short-run settings (`run_settings`) and
               every --set KEY=VALUE
    switched   the same plus the switch: one or more typed overrides (`--prior.use_prompt=false`), parsed by
               training/presets.py exactly as train.py parses them (a typo is a one-line error before any work)
The seed sets the initial weights and the order of the batches; seed k of both arms sees the same batches.

Data: a small toy corpus (`corpus.data.prepare_toy`: 2 utterances per training voice, 2 per held-out voice), encoded
with the shipped codec, built once into --cache and reused by later runs. Runs go to --out/<settings hash>/<arm>/
seed<k>; a finished run is reused, an unfinished one resumed (--fresh retrains).

Metrics, all on the test split: voices no training utterance has (`held_out_metrics`):
    pitch_cents   pitch-level error: each held-out utterance's true phonemes and durations, another utterance of
                  its voice as the prompt; |mean predicted log-F0 - mean true log-F0| over its frames, in cents
                  (1200 / ln 2 per unit of log-F0), averaged per voice, then over the voices
    dur, pitch, data, score, ce_rvq, total   the training losses (`NaturalSpeech2.loss`) with the EMA weights in
                  eval mode, the prompt a span of the same utterance (4 fixed draws of span and noise)
Spread: the sample standard deviation over the seeds (n - 1 in the denominator; none with one seed).

The default question, "does the prompt in the duration/pitch predictors matter?" (Table 9: pitch-mean difference
10.11 with it, 21.69 without), is --prior.use_prompt=false on the tiny preset: 500 steps of 16 utterances, 3 seeds.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import model as ns2
from corpus import data, features
from training import presets

ROOT = Path(__file__).resolve().parents[1]
TABLE9 = {                      # the paper's ablations (Table 9) as switches: what each one removes
    "--prior.use_prompt=false": "the prompt in the duration and pitch predictors: their attention layers to the "
                                "prompt hiddens (§3.3); they predict from the phonemes alone",
    "--denoiser.use_prompt=false": "the prompt in diffusion: the denoiser's query attention and FiLM (§3.3); it "
                                   "denoises from the condition c alone",
    "--denoiser.use_query_attention=false": "the m learned queries (§3.3): the denoiser's layers attend to the "
                                            "prompt hiddens directly",
    "--use_ce_rvq=false": "the CE-RVQ loss (§3.2): only L_data and L_score train the diffusion model",
}
DEFAULT_SWITCH = ("--prior.use_prompt=false",)
CACHE_CORPUS = dict(seed=0, utts_per_voice=2, heldout_utts=2)   # the toy corpus of the ablations (notebook 07's)
LOSS_DRAWS = 4                  # prompt spans and noise draws per held-out loss
CENTS = 1200 / math.log(2)      # cents per unit of log-F0
# key, label in the table, decimals
METRICS = [("pitch_cents", "pitch-level error (cents)", 0), ("pitch", "L_pitch", 3), ("dur", "L_dur", 3),
           ("data", "L_data", 3), ("score", "L_score", 3), ("ce_rvq", "L_ce-rvq", 3), ("total", "L total", 3)]


@dataclass
class Ablation:
    """One ablation: which switch, on what preset, how long, how many seeds, and where."""
    switch: tuple = DEFAULT_SWITCH      # typed overrides of the switched arm, e.g. ("--prior.use_prompt=false",)
    preset: str = "tiny"
    steps: int = 500
    seeds: int = 3
    batch_size: int = 16                # utterances per training batch
    common: tuple = ()                  # typed overrides of both arms, e.g. ("--batch_size=8",)
    cache: Path = ROOT / "runs" / "ablate" / "toy_cache"
    codec: Path = ROOT / "checkpoints" / "toy" / "codec.pt"
    out: Path = ROOT / "runs" / "ablate"
    jobs: int = 2                       # training runs at once, each on cpu_count // jobs threads
    fresh: bool = False
    arms: dict = field(default_factory=dict, repr=False)    # filled by `check`: arm name -> override list

    def arm_names(self) -> list:
        return ["baseline", " ".join(s.lstrip("-") for s in self.switch)]


def run_settings(steps: int, batch_size: int) -> list:
    """The training settings of a short ablation run, before --set and the switch: validation and a checkpoint at
    the end only, warm-up over the first eighth, an EMA that averages about the last tenth of the run, and few
    sampler steps for the validation samples."""
    return [f"--steps={steps}", f"--batch_size={batch_size}", f"--val_every={steps}", f"--ckpt_every={steps}",
            f"--log_every={min(10, steps)}", f"--warmup_steps={max(1, steps // 8)}", f"--ema_decay={max(0.0, min(0.999, 1 - 10 / steps))}",
            "--sample_steps=4"]


def check(ab: Ablation) -> Ablation:
    """Check every setting before any work (one-line ValueError), and fill in the arms' override lists."""
    if min(ab.steps, ab.seeds, ab.jobs, ab.batch_size) < 1:
        raise ValueError(f"--steps, --seeds, --jobs and --batch-size must be at least 1 (got {ab.steps}, {ab.seeds}, "
                         f"{ab.jobs}, {ab.batch_size})")
    if not ab.switch:
        raise ValueError("no switch: give at least one --key=value override for the switched arm")
    p = presets.preset(ab.preset)
    base = run_settings(ab.steps, ab.batch_size) + list(ab.common)
    for pairs in (base, base + list(ab.switch)):
        presets.typed_overrides(pairs, p.ldm_train, p.model)
    if not Path(ab.codec).exists():
        raise ValueError(f"no codec checkpoint at {ab.codec}")
    ab.arms = dict(zip(ab.arm_names(), (base, base + list(ab.switch))))
    return ab


def ensure_cache(cache: Path, codec: Path) -> str:
    """The ablations' toy corpus at `cache`, with codes of `codec`: built if missing, re-encoded if its codes came
    from another codec, else left as it is. Returns what was done: "built", "encoded" or "reused"."""
    cache, done = Path(cache), "reused"
    if not (cache / "manifest.json").exists():
        data.write_manifest(cache, data.prepare_toy(cache, jobs=2, **CACHE_CORPUS))
        done = "built"
    if data.read_manifest(cache).get("codec", {}).get("sha256") != features.file_hash(codec):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)        # the codes' argmin ties depend on the CPU threads: one thread, one cache
        try:
            data.encode_cache(cache, codec)
        finally:
            torch.set_num_threads(threads)
        done = "encoded" if done == "reused" else done
    return done


def settings_folder(ab: Ablation) -> Path:
    """The runs of these settings: --out/<hash of preset, cache, codec and the arms' overrides>."""
    key = json.dumps([ab.preset, str(Path(ab.cache).resolve()), features.file_hash(ab.codec), ab.arms])
    return Path(ab.out) / hashlib.sha1(key.encode()).hexdigest()[:10]


def train_command(ab: Ablation, arm: str, seed: int, run: Path, threads: int) -> list:
    """The `train.py ldm` command line of one arm and seed (with --resume when an unfinished run is there)."""
    resume = ["--resume"] if (run / "last.pt").exists() else []
    return [sys.executable, str(ROOT / "train.py"), "ldm", "--config", ab.preset, "--data", str(ab.cache),
            "--codec", str(ab.codec), "--out", str(run), "--threads", str(threads), *resume,
            *ab.arms[arm], f"--seed={seed}"]


def finished_step(run: Path) -> int:
    """The step of the run's checkpoint (0 when there is none)."""
    last = run / "last.pt"
    return int(torch.load(last, map_location="cpu", weights_only=True)["step"]) if last.exists() else 0


def logged_step(run: Path) -> int:
    """The last step the run wrote to its log.jsonl (0 before the first)."""
    log = run / "log.jsonl"
    lines = log.read_text().strip().splitlines() if log.exists() else []
    return int(json.loads(lines[-1])["step"]) if lines else 0


def start(cmd: list, run: Path, threads: int) -> subprocess.Popen:
    run.mkdir(parents=True, exist_ok=True)
    with open(run / "train.out", "w") as log:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, OMP_NUM_THREADS=str(threads)))


def failure(run: Path, rc: int) -> str:
    """The one line a failed training run ended with."""
    lines = [x for x in (run / "train.out").read_text(errors="replace").splitlines() if x.strip()]
    return f"training {run} failed (exit {rc}): " + (lines[-1].strip() if lines else "no output")


def run_folders(ab: Ablation, folder: Path) -> dict:
    """{arm: [its run folder per seed]} under the settings folder."""
    return {arm: [folder / arm.replace(" ", "_").replace("=", "-") / f"seed{k}" for k in range(ab.seeds)]
            for arm in ab.arms}


def train_all(ab: Ablation, folder: Path, progress: bool = True) -> dict:
    """Train every arm and seed not finished yet, `ab.jobs` at a time, with one progress bar over all their steps
    (read from the runs' log.jsonl). Returns {arm: [run folder per seed]}."""
    from tqdm import tqdm
    if ab.fresh:
        shutil.rmtree(folder, ignore_errors=True)
    runs = run_folders(ab, folder)
    todo = [(arm, k, run) for arm, rs in runs.items() for k, run in enumerate(rs) if finished_step(run) < ab.steps]
    threads = max(1, (os.cpu_count() or 1) // min(ab.jobs, max(1, len(todo))))
    begun = {run: finished_step(run) for _, _, run in todo}
    done = dict(begun)                                              # run -> its step now
    bar = tqdm(total=sum(ab.steps - s for s in begun.values()), desc=f"training {len(todo)} runs", unit="step",
               disable=not progress, dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 30)
    running = {}
    try:
        while todo or running:
            while todo and len(running) < ab.jobs:
                arm, k, run = todo.pop(0)
                running[run] = start(train_command(ab, arm, k, run, threads), run, threads)
            time.sleep(0.5)
            for run, proc in list(running.items()):
                done[run] = ab.steps if proc.poll() == 0 else min(ab.steps, max(begun[run], logged_step(run)))
                if proc.poll() is not None:
                    del running[run]
                    if proc.returncode:
                        raise RuntimeError(failure(run, proc.returncode))
            bar.update(sum(done[r] - begun[r] for r in begun) - bar.n)
    finally:
        for proc in running.values():                       # on an error or Ctrl-C: no run is left behind
            proc.kill()
        bar.close()
    return runs


def held_out_batches(cache: Path, net) -> list:
    """The test split (held-out voices) of the cache in loss batches of up to 16 utterances."""
    ds = data.FeatureDataset(cache, "test", with_codes=True, min_frames=2 * net.cfg.prompt_min_frames)
    return [data.collate([ds[i] for i in range(k, min(k + 16, len(ds)))]) for k in range(0, len(ds), 16)]


@torch.no_grad()
def held_out_losses(net, cache: Path) -> dict:
    """Every loss term on the held-out voices, mean over `LOSS_DRAWS` fixed prompt spans and noise draws and over
    the utterances (batches weighted by their size)."""
    batches, sums, n = held_out_batches(cache, net), {}, 0
    for b in batches:
        for k in range(LOSS_DRAWS):
            for key, v in net.loss(b, torch.Generator().manual_seed(k)).items():
                sums[key] = sums.get(key, 0.0) + float(v) * len(b["ids"])
        n += len(b["ids"]) * LOSS_DRAWS
    return {key: v / n for key, v in sums.items()}


@torch.no_grad()
def pitch_levels(net, cache: Path) -> list:
    """For every held-out utterance, with the next utterance of its voice as the prompt (whole; itself when the
    voice has no other), the true phonemes and durations: (voice, true mean F0 in Hz, predicted mean F0 in Hz), both
    the exp of the mean log-F0 over the utterance's frames (log-F0 is interpolated through unvoiced frames)."""
    test = sorted((u for u in data.read_manifest(cache)["utterances"] if u["split"] == "test"), key=lambda u: u["id"])
    voices = {}
    for u in test:
        voices.setdefault(u["speaker"], []).append(u)
    rows = []
    for voice, utts in voices.items():
        for i, target in enumerate(utts):
            f, fp = (features.load_features(Path(cache) / "feats" / f"{u['id']}.npz")
                     for u in (target, utts[(i + 1) % len(utts)]))
            z = net.rvq.decode(torch.from_numpy(fp["codes"].astype(np.int64))[None])             # (1, D, Tp)
            mask = torch.ones(1, z.shape[-1], dtype=torch.bool)
            ph = torch.from_numpy(f["phonemes"].astype(np.int64))[None]                            # (1, N)
            d = torch.from_numpy(f["durations"].astype(np.int64))[None]
            lf0_hat = net.prior(ph, ph != 0, net.encode_prompt(net.normalize(z), mask), mask, durations=d)["lf0"][0]
            lf0 = torch.from_numpy(f["lf0"])[: len(lf0_hat)]
            rows.append((voice, float(lf0.mean().exp()), float(lf0_hat[: len(lf0)].mean().exp())))
    return rows


def level_error_cents(rows: list) -> float:
    """Mean over voices of the voice's mean |log F0_pred - log F0_true| in cents (rows from `pitch_levels`)."""
    per_voice = {}
    for voice, true, pred in rows:
        per_voice.setdefault(voice, []).append(CENTS * abs(math.log(pred / true)))
    return float(np.mean([np.mean(v) for v in per_voice.values()]))


def held_out_metrics(ckpt: Path, cache: Path) -> dict:
    """Every metric of one trained model (`METRICS`), plus its pitch rows for plots."""
    net, _ = ns2.load_ns2(ckpt)
    rows = pitch_levels(net, cache)
    return dict(pitch_cents=level_error_cents(rows), **held_out_losses(net, cache), pitch_rows=rows)


def mean_spread(values: list) -> tuple:
    """(mean, sample standard deviation with n - 1 in the denominator; NaN for a single value)."""
    x = np.asarray(values, dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan


def summary(scores: dict) -> dict:
    """{arm: [metrics per seed]} -> {metric: {arm: (mean, spread)}} in `METRICS` order, for every metric some run
    has; an arm without it (e.g. L_ce-rvq with the CE-RVQ loss off) gets None."""
    out = {}
    for key, _, _ in METRICS:
        got = {arm: [s[key] for s in seeds if key in s] for arm, seeds in scores.items()}
        if any(got.values()):
            out[key] = {arm: mean_spread(v) if v else None for arm, v in got.items()}
    return out


def cell(stat, decimals: int) -> str:
    """(mean, spread) -> "mean ± spread" ("mean" alone without a spread, "–" for None)."""
    if stat is None:
        return "–"
    mean, spread = stat
    return f"{mean:.{decimals}f}" + ("" if math.isnan(spread) else f" ± {spread:.{decimals}f}")


def format_table(result: dict) -> str:
    """The results as a markdown table: one row per metric, mean ± spread per arm and the difference of means."""
    arms, stats = list(result["scores"]), result["summary"]
    lines = [f"| metric (held-out voices; mean ± sd over {result['seeds']} seeds) | " + " | ".join(arms) + " | Δ |",
             "|---|" + "---|" * (len(arms) + 1)]
    for key, label, decimals in METRICS:
        if key in stats:
            s = [stats[key][a] for a in arms]
            delta = f"{s[1][0] - s[0][0]:+.{decimals}f}" if None not in s else "–"
            lines.append(f"| {label} | " + " | ".join(cell(x, decimals) for x in s) + f" | {delta} |")
    return "\n".join(lines)


def format_time(result: dict) -> str:
    """One line: the settings and the wall time of each part."""
    t = result["seconds"]
    return (f"{result['preset']} preset, {result['steps']} steps, {result['seeds']} seeds; wall time "
            f"{t['total']:.0f} s (cache {t['cache']:.0f} s, training {t['training']:.0f} s, evaluation "
            f"{t['evaluation']:.0f} s) on {os.cpu_count()} CPU threads, torch {torch.__version__}")


def run(ab: Ablation, progress: bool = True) -> dict:
    """Check, build the cache (once), train both arms over the seeds, score every run on the held-out voices.
    Returns {"scores": {arm: [metrics per seed]}, "summary": `summary`, "seconds", "folder", settings}; writes it
    (less the pitch rows) to <folder>/results.json."""
    t0 = time.time()
    check(ab)
    ensure_cache(ab.cache, ab.codec)
    t1 = time.time()
    folder = settings_folder(ab)
    runs = train_all(ab, folder, progress)
    t2 = time.time()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                            # small batches: one thread is as fast, and deterministic
    try:
        scores = {arm: [held_out_metrics(r / "last.pt", ab.cache) for r in rs] for arm, rs in runs.items()}
    finally:
        torch.set_num_threads(threads)
    t3 = time.time()
    result = dict(preset=ab.preset, steps=ab.steps, seeds=ab.seeds, switch=list(ab.switch), common=list(ab.common),
                  arms=ab.arms, folder=str(folder), scores=scores,
                  summary=summary(scores), seconds=dict(cache=t1 - t0, training=t2 - t1, evaluation=t3 - t2,
                                                        total=t3 - t0))
    plain = dict(result, scores={a: [{k: v for k, v in s.items() if k != "pitch_rows"} for s in ss]
                                 for a, ss in scores.items()})
    (folder / "results.json").write_text(json.dumps(plain, indent=1, default=str))
    return result


def build_parser() -> argparse.ArgumentParser:
    switches = "\n".join(f"  {k}\n" + textwrap.fill("removes " + v, 116, initial_indent=" " * 6,
                                                      subsequent_indent=" " * 6) for k, v in TABLE9.items())
    ap = argparse.ArgumentParser(
        prog="python -m evaluation.ablate", formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s [--key=value ...] [--preset P] [--steps N] [--seeds K] [--set KEY=VALUE ...] [options]",
        description=__doc__.split("\n\n")[0],
        epilog="the switch: any --key=value override of the ldm training or model config (training/presets.py),\n"
               f"default {' '.join(DEFAULT_SWITCH)}; Table 9's:\n{switches}\n\n" + __doc__.split("\n\n", 1)[1])
    ap.add_argument("--preset", default=Ablation.preset, choices=sorted(presets.PRESETS), help="model and training "
                    "sizes (training/presets.py; default %(default)s)")
    ap.add_argument("--steps", type=int, default=Ablation.steps, help="training steps per run (default %(default)s)")
    ap.add_argument("--seeds", type=int, default=Ablation.seeds, help="runs per arm, seeds 0..K-1 (default "
                    "%(default)s)")
    ap.add_argument("--batch-size", type=int, default=Ablation.batch_size, help="utterances per training batch "
                    "(default %(default)s)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override of both arms, "
                    "e.g. --set batch_size=8 (repeatable)")
    ap.add_argument("--cache", type=Path, default=Ablation.cache, help="the toy corpus of the ablations, built "
                    "there once (default runs/ablate/toy_cache)")
    ap.add_argument("--codec", type=Path, default=Ablation.codec, help="the codec whose codes the models learn "
                    "(default checkpoints/toy/codec.pt)")
    ap.add_argument("--out", type=Path, default=Ablation.out, help="runs go to OUT/<settings hash>/<arm>/seed<k> "
                    "(default runs/ablate)")
    ap.add_argument("--jobs", type=int, default=Ablation.jobs, help="training runs at once (default %(default)s)")
    ap.add_argument("--fresh", action="store_true", help="retrain runs of these settings that exist")
    return ap


def parse(argv=None) -> Ablation:
    """The command line as an Ablation (not yet checked: `check` does that, before any work)."""
    args, switch = build_parser().parse_known_args(argv)
    return Ablation(switch=tuple(switch) or DEFAULT_SWITCH, preset=args.preset, steps=args.steps, seeds=args.seeds,
                    batch_size=args.batch_size,
                    common=tuple("--" + s.lstrip("-") for s in args.set), cache=args.cache, codec=args.codec,
                    out=args.out, jobs=args.jobs, fresh=args.fresh)


def main(argv=None) -> int:
    ab = parse(argv)
    try:
        result = run(ab)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(result) + "\n\n" + format_time(result))
    print(f"runs and results.json: {result['folder']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
