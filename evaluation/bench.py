"""Speed and memory benchmarks: tables, not timed tests.

    python -m evaluation.bench codec                 # encode+decode real-time factor and training step time, per config
    python -m evaluation.bench codec --device cuda   # the same on a GPU (bf16 autocast for training)
    python -m evaluation.bench ldm                   # diffusion model: step time, FLOPs, MFU on a GPU, memory, CE-RVQ share, sampling
    python -m evaluation.bench loader --data data/toy  # DataLoader throughput (frames/s) next to a training step's consumption
    python -m evaluation.bench step --against ../ns2-old   # training step of this tree vs another (git worktree add ../ns2-old <commit>)
    python -m evaluation.bench peer --peer-python /tmp/peer/venv/bin/python   # vs naturalspeech2-pytorch (see --help)

Real-time factor (RTF) = seconds of compute per second of audio (< 1 is faster than real time). Each number is the
median of several repetitions after warm-up; the machine, torch version and thread count are printed with the table.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import codec
from evaluation.step_probe import training_step
from training import presets


# dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, for MFU = achieved / peak
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "RTX 4090": 165.0}


def _time(fn, repeats: int, warmup: int = 1, device: str = "cpu") -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_codec(configs, device: str, seconds: float, batch: int, repeats: int) -> list[dict]:
    rows = []
    for name in configs:
        cfg = presets.preset(name).codec
        model = codec.Codec(cfg).to(device)
        disc = codec.Discriminators(cfg).to(device)
        x = (torch.randn(1, int(seconds * cfg.sample_rate)) * 0.1).to(device)
        model.eval()
        enc = _time(lambda: model.encode(x), repeats, device=device)
        z = model.encode(x)[0]
        dec = _time(lambda: model.decode(z), repeats, device=device)
        model.train()
        xb = (torch.randn(batch, cfg.sample_rate) * 0.1).to(device)
        opt_g = torch.optim.AdamW(model.parameters(), 1e-4)
        opt_d = torch.optim.AdamW(disc.parameters(), 1e-4)
        amp = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")

        def step(adversarial):
            with amp:
                out = model(xb)
                losses = codec.generator_losses(cfg, xb, out, disc if adversarial else None)
            opt_g.zero_grad()
            codec.total_loss(cfg, losses).backward()
            opt_g.step()
            if adversarial:
                with amp:
                    d_loss = codec.discriminator_loss(disc, xb, out["wav"])
                opt_d.zero_grad()
                d_loss.backward()
                opt_d.step()

        from torch.utils.flop_counter import FlopCounterMode
        step(True)                                                  # k-means initialisation of the codebooks
        with FlopCounterMode(display=False) as counter:             # forward + backward, generator + discriminator
            step(True)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        plain = _time(lambda: step(False), max(2, repeats // 2), device=device)
        adv = _time(lambda: step(True), max(2, repeats // 2), device=device)
        mem = torch.cuda.max_memory_allocated() / 2 ** 30 if device == "cuda" else float("nan")
        rows.append(dict(config=name, params_m=(codec.count_parameters(model) + model.rvq.codebooks.numel()) / 1e6,
                         rtf_encode=enc / seconds, rtf_decode=dec / seconds, step_recon=plain, step_gan=adv, mem_gb=mem,
                         flops=counter.get_total_flops()))
    return rows


def bench_ldm_one(name: str, device: str, batch: int, frames: int, repeats: int) -> dict:
    """One config, in its own process (so that peak memory is its own): training step with and without the
    CE-RVQ term, and sampling speed for 150/50/20 steps of a 3 s utterance."""
    import resource
    import model as ns2
    torch.manual_seed(0)
    cfg = presets.model_config(name, n_phonemes=84, latent_dim={"tiny": 16, "toy": 64}.get(name, 256))
    R, V = (4, 32) if name == "tiny" else (16, 1024)
    net = ns2.NaturalSpeech2(cfg, torch.randn(R, V, cfg.denoiser.latent_dim) * 0.3).to(device)
    N = frames // 6
    durations = torch.full((batch, N), 6, device=device)
    b = dict(phonemes=torch.randint(1, 84, (batch, N), device=device), durations=durations,
             phoneme_mask=torch.ones(batch, N, dtype=torch.bool, device=device),
             frame_mask=torch.ones(batch, frames, dtype=torch.bool, device=device),
             lf0=torch.full((batch, frames), 5.0, device=device), codes=torch.randint(0, V, (batch, R, frames), device=device))
    step = training_step(net, b, torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"))
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:                # forward + backward of one step
        step()
    flops = counter.get_total_flops()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with_ce = _time(step, repeats, device=device)
    mem = torch.cuda.max_memory_allocated() / 2 ** 30 if device == "cuda" else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    net.cfg.use_ce_rvq = False
    without_ce = _time(step, repeats, device=device)
    net.cfg.use_ce_rvq = True
    net.eval()
    prompt = torch.randn(1, cfg.denoiser.latent_dim, 240, device=device)
    phon = torch.randint(1, 84, (1, 40), device=device)
    durs = torch.full((1, 40), 6, device=device)                         # 240 frames = 3 s
    net.prior.duration.forward = lambda *a, **k: torch.log1p(durs.float())     # fixed length for timing
    rtf = {s: _time(lambda: net.generate(phon, prompt, steps=s, sampler="ode"), 1, warmup=0, device=device) / 3.0
           for s in (150, 50, 20)}
    rtf["default"] = _time(lambda: net.generate(phon, prompt), 1, warmup=0, device=device) / 3.0   # DEFAULT_SAMPLING
    return dict(config=name, params_m=sum(p.numel() for p in net.parameters()) / 1e6, step=with_ce, flops=flops,
                step_no_ce=without_ce, mem_gb=mem, **{f"rtf_{s}": v for s, v in rtf.items()})


def bench_loader(cache, workers: list[int], batch_size: int, frames_per_batch: int, steps: int, config: str,
                 device: str) -> tuple[list[dict], dict]:
    """Frames per second the training data path delivers (read npz + collate, `data.loader` over `steps` batches)
    for each number of workers, and what one training step of `config` consumes on `device` (frames of a batch /
    step time), measured on batches of the same sampler."""
    from corpus import data
    import model as ns2
    ds = data.FeatureDataset(cache, "train", with_codes=True)
    batches = data.StepBatches(ds, batch_size, frames_per_batch, seed=0)
    rows = []
    for w in workers:
        t = time.perf_counter()
        stream = iter(data.loader(batches, 0, steps, w))
        first = next(stream)
        t_first = time.perf_counter() - t
        real, padded = int(first["frame_mask"].sum()), first["frame_mask"].numel()
        for b in stream:
            real, padded = real + int(b["frame_mask"].sum()), padded + b["frame_mask"].numel()
        total = time.perf_counter() - t
        rows.append(dict(workers=w, first_s=t_first, frames_per_s=real / total, padded_share=1 - real / padded,
                         batches_per_s=steps / total))
    m = ds.manifest
    cfg = presets.model_config(config, n_phonemes=len(m["phonemes"]), latent_dim=m["codec"]["dim"])
    net = ns2.NaturalSpeech2(cfg, torch.randn(m["codec"]["n_q"], m["codec"]["codebook_size"], m["codec"]["dim"]) * 0.3)
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), 1e-4)
    sample = [batches[s] for s in range(3)]
    frames = sum(int(b["frame_mask"].sum()) for b in sample) / len(sample)
    k = iter(range(10 ** 9))

    def step():
        b = {key: v.to(device) if torch.is_tensor(v) else v for key, v in sample[next(k) % len(sample)].items()}
        loss = net.loss(b)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    step_s = _time(step, 3, device=device)
    return rows, dict(config=config, frames_per_step=frames, step_s=step_s, frames_per_s=frames / step_s)


# Training-step shapes: the toy model as `make train-toy` trains it, and a mid-size model (~14M parameters, the size
# at which the open NaturalSpeech 2 implementations were compared) at batch 4 x 400 frames.
STEP_SHAPES = {
    "toy": dict(config="toy", latent_dim=64, batch=16, frames=320, phonemes=46, prior=dict(pitch_bins=256),
                denoiser={}, top={}),
    "tiny": dict(config="tiny", latent_dim=16, batch=2, frames=64, phonemes=8, prior={}, denoiser={}, top={}),
    "mid": dict(config="libritts", latent_dim=256, batch=4, frames=400, phonemes=60,
                prior=dict(enc_layers=1, enc_ffn=512, pred_convs=6), denoiser=dict(layers=6),
                top=dict(prompt_layers=1, prompt_ffn=512)),
}
# the shape of `peer`: the mid model on the same batch with a prompt of exactly 120 frames (cut from the utterance;
# the peer is given a separate 120-frame prompt: `prompt_frames`)
STEP_SHAPES["peer"] = dict(STEP_SHAPES["mid"], prompt_frames=120, top=dict(
    STEP_SHAPES["mid"]["top"], prompt_min_frames=120, prompt_min_frac=0.1, prompt_max_frac=0.1))
# ... and with utterances of 520 frames for this tree, so that it denoises as many frames as the peer (400)
STEP_SHAPES["peer-long"] = dict(STEP_SHAPES["peer"], frames=520, peer_frames=400)

STEP_PROBE = Path(__file__).with_name("step_probe.py")      # run with python -c inside the tree being measured
PEER_PROBE = Path(__file__).with_name("peer_probe.py")      # run by the peer's python (`peer`)


def bench_step(trees: dict, shape: str, threads: int, rounds: int, repeats: int, profile: int = 0) -> dict:
    """Median training-step time of each entry of `trees` {label: (source tree, "none" | "bf16"[, python])} at one
    of STEP_SHAPES: `rounds` rounds, each running every entry once in its own process (interleaved, so that a busy
    machine slows all alike), each timing `repeats` steps after 2 warm-up steps. An entry with a python is the peer
    (evaluation/peer_probe.py, run by that interpreter); the others run step_probe.py inside their tree.
    -> {label: dict(step (median of the rounds' medians), steps, params_m, losses (fp32, eval mode, one batch))}."""
    import json
    import os
    import subprocess
    runs = {label: [] for label in trees}
    for _ in range(rounds):
        for label, (tree, amp, *python) in trees.items():
            arg = json.dumps(dict(STEP_SHAPES[shape], threads=threads, warmup=2, repeats=repeats, amp=amp,
                                  profile=profile))
            cmd = [python[0], str(PEER_PROBE), arg] if python else \
                [sys.executable, "-c", STEP_PROBE.read_text(encoding="utf-8"), arg]
            env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=str(threads))
            r = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError(f"{label} ({tree}): {r.stderr.strip().splitlines()[-1]}")
            runs[label].append(json.loads(r.stdout.strip().splitlines()[-1]))
    return {label: dict(rs[0], step=statistics.median(x["step"] for x in rs), steps=[x["step"] for x in rs])
            for label, rs in runs.items()}


def _machine() -> str:
    return platform.processor() or platform.machine()


def _peak_tflops(args) -> float | None:
    """--peak-tflops, or the data-sheet peak of a known GPU when measuring on one; None on a CPU."""
    return args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if args.device == "cuda"
                                     and k in torch.cuda.get_device_name()), None)


def codec_command(args):
    """`codec`: the encode/decode real-time factors and training step times of each codec config."""
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise ValueError("--device cuda but no GPU is visible")
    dev = torch.cuda.get_device_name() if cuda else f"{_machine()}, {torch.get_num_threads()} threads"
    print(f"# codec speed on {dev}, torch {torch.__version__}; RTF for {args.seconds:g} s of audio; "
          f"training step: batch {args.batch} x 1 s")
    peak = _peak_tflops(args)
    print("| config | params (M) | encode RTF | decode RTF | train step, recon. losses (s) | train step, + GAN (s) | "
          "GFLOP per step (+ GAN) | MFU |" + (" peak GPU mem (GB) |" if cuda else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|" if cuda else ""))
    for r in bench_codec(args.configs.split(","), args.device, args.seconds, args.batch, args.repeats):
        mfu = f"{r['flops'] / r['step_gan'] / 1e12 / peak:.1%}" if peak else "—"
        print(f"| {r['config']} | {r['params_m']:.1f} | {r['rtf_encode']:.3f} | {r['rtf_decode']:.3f} | "
              f"{r['step_recon']:.2f} | {r['step_gan']:.2f} | {r['flops'] / 1e9:,.1f} | {mfu} |"
              + (f" {r['mem_gb']:.1f} |" if cuda else ""), flush=True)


def ldm_command(args):
    """`ldm`: one row per config, each measured in its own process (`ldm-one`) so that peak memory is its own."""
    import json
    import subprocess
    import diffusion
    print(f"# latent diffusion model on {args.device}, torch {torch.__version__}; training step: batch {args.batch} x "
          f"{args.frames} frames; sampling: a 3 s utterance")
    peak = _peak_tflops(args)
    sampler, steps = diffusion.DEFAULT_SAMPLING
    print("| config | params (M) | train step (s) | GFLOP per step | achieved TFLOP/s | MFU | CE-RVQ share of "
          f"the step | peak memory (GB) | sampling RTF, Euler 150 / 50 / 20 steps | sampling RTF, default "
          f"({sampler}, {diffusion.network_evaluations(sampler, steps)} network evaluations) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.configs.split(","):
        r = subprocess.run([sys.executable, "-m", "evaluation.bench", "ldm-one", "--config", name, "--device",
                            args.device, "--batch", str(args.batch), "--frames", str(args.frames), "--repeats",
                            str(args.repeats)], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        if r.returncode:
            print(f"| {name} | failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode} |")
            continue
        d = json.loads(r.stdout.strip().splitlines()[-1])
        share = 1 - d["step_no_ce"] / d["step"]
        tflops = d["flops"] / d["step"] / 1e12
        mfu = f"{tflops / peak:.1%}" if peak else "—"
        print(f"| {name} | {d['params_m']:.1f} | {d['step']:.2f} | {d['flops'] / 1e9:,.1f} | {tflops:.3f} | {mfu} | "
              f"{share:.0%} | {d['mem_gb']:.2f} | {d['rtf_150']:.2f} / {d['rtf_50']:.2f} / {d['rtf_20']:.2f} | "
              f"{d['rtf_default']:.3f} |", flush=True)


def ldm_one_command(args):
    import json
    print(json.dumps(bench_ldm_one(args.config, args.device, args.batch, args.frames, args.repeats)))


def loader_command(args):
    """`loader`: DataLoader throughput per number of workers, and what one training step consumes."""
    if args.audio:                                      # the codec stage's audio batches: evaluation/bench_audio.py
        return print(__import__("evaluation.bench_audio", fromlist=["table"]).table(args, _machine()))
    rows, use = bench_loader(args.data, [int(w) for w in args.workers.split(",")], args.batch_size,
                             args.frames_per_batch, args.steps, args.config, args.device)
    kind = f"{args.frames_per_batch} frames per batch" if args.frames_per_batch > 0 else \
        f"{args.batch_size} utterances per batch"
    print(f"# data path on {_machine()} ({torch.get_num_threads()} threads), {args.data}, {kind}, {args.steps} batches")
    print("| workers | first batch (s) | batches/s | frames/s delivered | padding |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['first_s']:.2f} | {r['batches_per_s']:.1f} | {r['frames_per_s']:,.0f} | "
              f"{r['padded_share']:.0%} |")
    print(f"\ntraining step of `{use['config']}` on {args.device}: {use['frames_per_step']:.0f} frames in "
          f"{use['step_s']:.2f} s = {use['frames_per_s']:,.0f} frames/s consumed")


def step_trees(args) -> dict:
    """{label: (source tree, "none" | "bf16")}: the other tree (--against) in fp32 first, then this tree under each
    --amp setting."""
    trees = {}
    if args.against:
        other = Path(args.against).resolve()
        if not (other / "model.py").exists():
            raise ValueError(f"{other} has no model.py: give a source tree of this project")
        trees[f"{other.name}, fp32"] = (other, "none")
    for amp in args.amp.split(","):
        if amp not in ("none", "bf16"):
            raise ValueError(f"--amp {amp!r}: choose none or bf16")
        trees[f"this tree, {'fp32' if amp == 'none' else 'bf16 autocast'}"] = (Path(__file__).resolve().parents[1], amp)
    return trees


def step_row(shape: str, res: dict, trees: dict, against: bool) -> str:
    """One table row of `step`: each entry's median step time (the rounds' range), with --against the speed-up of
    this tree over the other and whether both give the same losses, then the largest loss change under bf16."""
    sh = STEP_SHAPES[shape]
    first = next(iter(res.values()))
    row = (f"| {shape} | {sh['config']} preset{' + overrides' if sh['prior'] or sh['denoiser'] else ''} "
           f"({first['params_m']:.1f}) | {sh['batch']} x {sh['frames']} | "
           + " | ".join(f"{r['step']:.3f} ({min(r['steps']):.2f}–{max(r['steps']):.2f})" for r in res.values()))
    if against:                                       # every entry of this tree against the other tree
        base, *mine = res.values()
        same = all(abs(base["losses"][k] - mine[0]["losses"].get(k, float("nan")))
                   <= 1e-4 * max(1.0, abs(base["losses"][k])) for k in base["losses"])
        row += " | " + " / ".join(f"{base['step'] / r['step']:.2f}x" for r in mine)
        row += f" | {'yes' if same else 'NO: ' + str(base['losses']) + ' vs ' + str(mine[0]['losses'])}"
    row += " | " + ", ".join(f"{r['amp_rel_diff']:.2%}" for label, r in res.items() if trees[label][1] == "bf16")
    return row + " |"


def step_command(args):
    """`step`: the training-step table of this tree (and --against another), then where the time goes (--profile)."""
    trees = step_trees(args)
    print(f"# training step (forward, backward, AdamW) on {_machine()}, "
          f"{args.threads} threads, torch {torch.__version__}; median of {args.rounds} interleaved rounds of "
          f"{args.repeats} steps (in brackets: the rounds' lowest and highest medians)")
    print("| shape | model (M params) | batch | " + " | ".join(f"{k} (s)" for k in trees)
          + (" | speed-up | same losses |" if args.against else " |") + " largest loss change under bf16 |")
    print("|---" * (4 + len(trees) + (2 if args.against else 0)) + "|")
    profiles = []
    for shape in args.shapes.split(","):
        if shape not in STEP_SHAPES:
            raise ValueError(f"unknown shape {shape!r}; choose from {sorted(STEP_SHAPES)}")
        res = bench_step(trees, shape, args.threads, args.rounds, args.repeats, args.profile)
        print(step_row(shape, res, trees, bool(args.against)), flush=True)
        profiles.extend((shape, label, r["top"]) for label, r in res.items() if r.get("top"))
    for shape, label, top in profiles:
        print(f"\nwhere the time goes: {shape}, {label} (share of one step's self CPU time)\n| operation | share |"
              "\n|---|---|\n" + "\n".join(f"| {name} | {share:.0%} |" for name, share in top))


def peer_command(args):
    """`peer`: this tree's training step and the peer's (evaluation/peer_probe.py) in one interleaved run."""
    from evaluation.peer_probe import peer_trees
    trees, name = peer_trees(args.peer_python, Path(__file__).resolve().parents[1])
    print(f"# training step (forward, backward, AdamW) on {_machine()}, {args.threads} threads, torch "
          f"{torch.__version__}; median of {args.rounds} interleaved rounds of {args.repeats} steps (in brackets: the "
          "rounds' lowest and highest medians)")
    for shape in args.shapes.split(","):
        if shape not in ("peer", "peer-long"):
            raise ValueError(f"unknown shape {shape!r}; choose peer or peer-long")
        sh = STEP_SHAPES[shape]
        res = bench_step(trees, shape, args.threads, args.rounds, args.repeats)
        print(f"\n{shape}: batch {sh['batch']}, {sh['phonemes']} phonemes, a {sh['prompt_frames']}-frame prompt; this "
              f"tree: {sh['frames']}-frame utterances, the prompt cut out of each, the rest denoised; {name}: "
              f"{sh.get('peer_frames', sh['frames'])} frames denoised, the prompt given separately\n"
              "| implementation | parameters (M) | loss terms | fp32 (s) | bf16 autocast (s) |\n|---|---|---|---|---|")
        for who in ("this tree", name):
            none, bf16 = res[(who, "none")], res[(who, "bf16")]
            terms = none.get("terms") or ", ".join(k for k in none["losses"] if k != "total")
            print(f"| {who} | {none['params_m']:.1f} | {terms} | " + " | ".join(
                f"{r['step']:.3f} ({min(r['steps']):.2f}–{max(r['steps']):.2f})" for r in (none, bf16)) + " |")
        print("| step time of the peer / this tree | | | " + " | ".join(
            f"{res[(name, a)]['step'] / res[('this tree', a)]['step']:.2f}x" for a in ("none", "bf16")) + " |")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m evaluation.bench", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("codec", help="codec speed per config")
    c.add_argument("--configs", default="tiny,toy,paper")
    c.add_argument("--seconds", type=float, default=10.0, help="audio length for the encode/decode RTF")
    c.add_argument("--batch", type=int, default=8, help="training batch (clips of 1 s)")
    c.add_argument("--repeats", type=int, default=5)
    m = sub.add_parser("ldm", help="latent diffusion model speed per config")
    m.add_argument("--configs", default="tiny,toy,libritts")
    m.add_argument("--batch", type=int, default=4)
    m.add_argument("--frames", type=int, default=400, help="frames per training example (400 = 5 s)")
    m.add_argument("--repeats", type=int, default=3)
    for p in (c, m):
        p.add_argument("--device", default="cpu")
        p.add_argument("--peak-tflops", type=float, default=None,
                       help="the device's dense bf16 peak for MFU (default: known GPUs; none on a CPU)")
    lo = sub.add_parser("loader", help="DataLoader throughput next to the training step's consumption")
    lo.add_argument("--data", default="data/toy", help="an encoded feature cache (corpus/data.py encode)")
    lo.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    lo.add_argument("--batch-size", "--batch", type=int, default=16)
    lo.add_argument("--audio", type=int, default=0, help="N > 0: the codec's audio batches from N synthetic WAVs")
    lo.add_argument("--frames-per-batch", type=int, default=0, help="> 0: frame-budget batches (paper: 6000)")
    lo.add_argument("--steps", type=int, default=60, help="batches read per measurement")
    lo.add_argument("--config", default="toy", help="model config whose training step is timed")
    lo.add_argument("--device", default="cpu")
    st = sub.add_parser("step", help="training step of this tree against another (e.g. a git worktree of an older "
                        "commit), interleaved in one run")
    st.add_argument("--against", default=None, help="source tree to compare with, e.g. after "
                    "`git worktree add ../ns2-old <commit>`: --against ../ns2-old")
    st.add_argument("--shapes", default="toy,mid", help=f"comma-separated, of {sorted(STEP_SHAPES)}")
    st.add_argument("--amp", default="none,bf16", help="autocast settings of this tree, comma-separated: none "
                    "(fp32), bf16 (CPU autocast, what --amp auto picks on a CPU with native bf16)")
    st.add_argument("--threads", type=int, default=2)
    st.add_argument("--rounds", type=int, default=3)
    st.add_argument("--repeats", type=int, default=3)
    st.add_argument("--profile", type=int, default=0, help="> 0: also list each entry's N most expensive operations "
                    "in one profiled step (torch.profiler, self CPU time)")
    from evaluation.peer_probe import VENV_HOWTO
    pe = sub.add_parser("peer", help="training step of this tree against naturalspeech2-pytorch (lucidrains), "
                        "interleaved in one run", description=VENV_HOWTO,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    pe.add_argument("--peer-python", default="/tmp/peer/venv/bin/python", help="the python of the peer's venv")
    pe.add_argument("--shapes", default="peer", help="comma-separated, of peer, peer-long (bench.STEP_SHAPES)")
    for a, default in (("--threads", 2), ("--rounds", 3), ("--repeats", 3)):
        pe.add_argument(a, type=int, default=default)
    one = sub.add_parser("ldm-one", help=argparse.SUPPRESS)
    for a in ("--config", "--device"):
        one.add_argument(a)
    for a in ("--batch", "--frames", "--repeats"):
        one.add_argument(a, type=int)
    return ap


COMMANDS = {"codec": codec_command, "ldm": ldm_command, "ldm-one": ldm_one_command, "loader": loader_command,
            "step": step_command, "peer": peer_command}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.what](args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
