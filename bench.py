"""Speed and memory benchmarks: tables, not timed tests.

    python bench.py codec                 # encode+decode real-time factor and training step time, per config
    python bench.py codec --device cuda   # the same on a GPU (bf16 autocast for training)

Real-time factor (RTF) = seconds of compute per second of audio (< 1 is faster than real time). Each number is the
median of several repetitions after warm-up; the machine, torch version and thread count are printed with the table.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch

import codec


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
        cfg = codec.make_config(name)
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

        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        plain = _time(lambda: step(False), max(2, repeats // 2), device=device)
        adv = _time(lambda: step(True), max(2, repeats // 2), device=device)
        mem = torch.cuda.max_memory_allocated() / 2 ** 30 if device == "cuda" else float("nan")
        rows.append(dict(config=name, params_m=(codec.count_parameters(model) + model.rvq.codebooks.numel()) / 1e6,
                         rtf_encode=enc / seconds, rtf_decode=dec / seconds, step_recon=plain, step_gan=adv, mem_gb=mem))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("codec", help="codec speed per config")
    c.add_argument("--configs", default="tiny,toy,paper")
    c.add_argument("--device", default="cpu")
    c.add_argument("--seconds", type=float, default=10.0, help="audio length for the encode/decode RTF")
    c.add_argument("--batch", type=int, default=8, help="training batch (clips of 1 s)")
    c.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no GPU is visible", file=sys.stderr)
        return 2
    dev = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.processor() or platform.machine()}, " \
                                                                     f"{torch.get_num_threads()} threads"
    print(f"# codec speed on {dev}, torch {torch.__version__}; RTF for {args.seconds:g} s of audio; "
          f"training step: batch {args.batch} x 1 s")
    print("| config | params (M) | encode RTF | decode RTF | train step, recon. losses (s) | train step, + GAN (s) |"
          + (" peak GPU mem (GB) |" if args.device == "cuda" else ""))
    print("|---|---|---|---|---|---|" + ("---|" if args.device == "cuda" else ""))
    for r in bench_codec(args.configs.split(","), args.device, args.seconds, args.batch, args.repeats):
        print(f"| {r['config']} | {r['params_m']:.1f} | {r['rtf_encode']:.3f} | {r['rtf_decode']:.3f} | "
              f"{r['step_recon']:.2f} | {r['step_gan']:.2f} |" + (f" {r['mem_gb']:.1f} |" if args.device == "cuda" else ""),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
