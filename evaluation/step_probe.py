"""The training-step probe of `python -m evaluation.bench step`: bench runs this file's text with `python -c`
inside the source tree being measured (its cwd and PYTHONPATH), so that it times that tree's code. It uses only the
API every version has (NaturalSpeech2, loss; the preset's config from training.presets, or in older trees from
model.make_ns2_config), and prints one JSON line: the median step time, the parameter count, the most expensive
operations of one profiled step (if asked), the losses of one batch in eval mode and their largest relative change
under bf16 autocast.

    python -c "$(cat evaluation/step_probe.py)" '{"config": "tiny", "latent_dim": 16, ...}'   # see bench.STEP_SHAPES
"""
import json
import statistics
import sys
import time
from dataclasses import replace

import torch


def padded_batch(B: int, T: int, N: int) -> dict:
    """A loss batch of B utterances padded to T frames and N phonemes, lengths drawn from 0.7 T .. T (the first
    one full), durations spread evenly and cut at each utterance's end; random phonemes, log-F0 and codes."""
    d = torch.full((B, N), T // N)
    d[:, : T - int(d[0].sum())] += 1
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(int(0.7 * T), T + 1, (B,), generator=g)        # padded batch, as a real one
    lengths[0] = T
    fmask = torch.arange(T)[None] < lengths[:, None]
    ends = d.cumsum(1)
    pmask = ends - d < lengths[:, None]
    d = torch.where(pmask, torch.minimum(d, lengths[:, None] - (ends - d)), 0)
    return dict(phonemes=torch.randint(1, 84, (B, N), generator=g) * pmask, durations=d, phoneme_mask=pmask,
                frame_mask=fmask, lf0=torch.full((B, T), 5.0) + 0.1 * torch.randn(B, T, generator=g),
                codes=torch.randint(0, 1024, (B, 16, T), generator=g))


def eval_losses(net, b: dict, amp: str) -> tuple[dict, dict]:
    """The losses of one batch in eval mode (fixed noise), in fp32 and under the autocast setting."""
    net.eval()
    with torch.no_grad():
        losses = {k: float(v) for k, v in net.loss(b, torch.Generator().manual_seed(0)).items()}
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
            losses_amp = {k: float(v) for k, v in net.loss(b, torch.Generator().manual_seed(0)).items()}
    net.train()
    return losses, losses_amp


def optimizer(net):
    """The AdamW the measured tree's training stages build (`training.presets.adamw`), or plain AdamW in a tree
    without one."""
    try:
        from training.presets import LDMTrainConfig, adamw
    except ImportError:
        return torch.optim.AdamW(net.parameters(), 1e-4)
    return adamw(net.parameters(), LDMTrainConfig(lr=1e-4))


def training_step(net, b: dict, amp, make_optimizer=optimizer):
    """A function that runs one AdamW training step of `net` on batch `b` (every loss term) under autocast `amp`,
    with the optimizer `make_optimizer(net)` (default: the one of the tree's training loop)."""
    opt = make_optimizer(net)

    def step():
        with amp:
            loss = net.loss(b)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def time_steps(step, warmup: int, repeats: int) -> list:
    """Seconds of each of `repeats` calls of `step`, after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return times


def main(a: dict) -> dict:
    torch.set_num_threads(a["threads"])
    import model as ns2
    try:
        from training.presets import model_config
    except ImportError:
        model_config = ns2.make_ns2_config
    torch.manual_seed(0)
    cfg = model_config(a["config"], n_phonemes=84, latent_dim=a["latent_dim"])
    cfg = replace(cfg, prior=replace(cfg.prior, **a["prior"]), denoiser=replace(cfg.denoiser, **a["denoiser"]),
                  **a["top"])
    net = ns2.NaturalSpeech2(cfg, torch.randn(16, 1024, a["latent_dim"]) * 0.3)
    b = padded_batch(a["batch"], a["frames"], a["phonemes"])
    losses, losses_amp = eval_losses(net, b, a["amp"])
    step = training_step(net, b, torch.autocast("cpu", dtype=torch.bfloat16, enabled=a["amp"] == "bf16"))
    times = time_steps(step, a["warmup"], a["repeats"])
    top = []
    if a.get("profile"):
        from torch.profiler import profile
        with profile() as prof:
            step()
        ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in ops)
        top = [(e.key, e.self_cpu_time_total / total) for e in ops[:a["profile"]]]
    return dict(step=statistics.median(times), params_m=sum(p.numel() for p in net.parameters()) / 1e6, top=top,
                losses=losses, amp_rel_diff=max(abs(losses_amp[k] / losses[k] - 1) for k in losses))


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
