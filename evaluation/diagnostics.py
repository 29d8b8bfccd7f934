"""What a trained checkpoint tells about its own training: the validation history it stores, plotted against
training steps, and (an ldm checkpoint) how far its duration and pitch predictors are off on a split of a cache.

    python -m evaluation.metrics history --ckpt checkpoints/toy/ldm.pt --out val.png     # the stored history
    python -m evaluation.metrics predictors --ckpt checkpoints/toy/ldm.pt --split test   # predictor bias and L1

(The commands are part of evaluation/metrics.py's command line, which also plots a codec's history with its table.)
"""
from __future__ import annotations

from pathlib import Path

import torch

CODEC_KEYS = ("pesq", "stoi", "si_sdr", "mel")                 # the panels of a codec's validation history
LDM_KEYS = ("data", "score", "ce_rvq", "dur", "pitch")         # ... and of an ldm's


def plot_history(ckpt, path) -> list[dict]:
    """The validation history stored in a codec or ldm checkpoint (metrics recorded during training) against
    training steps -> PNG at path (its folder made if missing), one panel per metric; returns the history (nothing
    is drawn if it is empty)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    history = (ck.get("history") if isinstance(ck, dict) else None) or []
    if not history:
        return history
    keys = LDM_KEYS if ck.get("kind") == "ldm" else CODEC_KEYS
    fig, axes = plt.subplots(1, len(keys), figsize=(3.5 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys):
        ax.plot([h["step"] for h in history], [h[key] for h in history], marker="o")
        ax.set_title(key)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return history


def history_cli(args):
    """`history`: the validation history stored in a codec or ldm checkpoint, plotted to --out."""
    history = plot_history(args.ckpt, args.out)
    if not history:
        raise ValueError(f"{args.ckpt} holds no validation history")
    print(f"{len(history)} validations, steps {history[0]['step']}..{history[-1]['step']}: {args.out}")


def predictors_cli(args):
    """`predictors`: predictor bias/L1 (`NaturalSpeech2.predictor_errors`) in eval mode and with dropout on, over
    batches of 16 utterances, weighted by batch size."""
    from corpus import data
    import model as ns2
    net, meta = ns2.load_ns2(args.ckpt)
    ds = data.FeatureDataset(args.data, args.split, with_codes=True, min_frames=2 * net.cfg.prompt_min_frames)
    if ds.manifest.get("codec", {}).get("sha256") != meta.get("codec", {}).get("sha256"):
        raise ValueError(f"the codes in {args.data} come from another codec than the one {args.ckpt} was trained on")
    idx = list(range(len(ds)))[: args.max_utts or None]
    batches = [data.collate([ds[i] for i in idx[k:k + 16]]) for k in range(0, len(idx), 16)]
    weights = [len(b["ids"]) / len(idx) for b in batches]
    print(f"{len(idx)} utterances of split {args.split!r}, {args.ckpt} (predictor dropout "
          f"{net.cfg.prior.pred_dropout}); log-F0 and log-duration errors, × 100 ≈ %")
    print("| predictors | bias log-F0 | L1 log-F0 | bias log-dur | L1 log-dur |\n|---|---|---|---|---|")
    for label, dropout in (("eval mode (as at inference)", False), ("dropout on", True)):
        rows = [net.predictor_errors(b, dropout=dropout) for b in batches]
        m = {k: sum(w * r[k] for w, r in zip(weights, rows)) for k in rows[0]}
        print(f"| {label} | {m['bias_lf0']:+.3f} | {m['l1_lf0']:.3f} | {m['bias_logd']:+.3f} | {m['l1_logd']:.3f} |")


@torch.no_grad()
def query_attention(net, latents: list) -> tuple[dict, torch.Tensor]:
    """The diffusion prompting's first attention block (`prompt.QueryAttention`) over prompts: `latents` are codec
    latents (D, Tp), one prompt each. Returns `prompt.query_diversity` averaged over the prompts, plus the weights
    (heads, m, Tp) of the first prompt (for a picture)."""
    from prompt import query_diversity
    net.eval()
    stats, first = [], None
    for z in latents:
        z = net.normalize(z[None].float())
        mask = torch.ones(1, z.shape[-1], dtype=torch.bool)
        w = net.denoiser.query.weights(net.encode_prompt(z, mask), mask)
        first = w[0] if first is None else first
        stats.append(query_diversity(w))
    return {k: sum(s[k] for s in stats) / len(stats) for k in stats[0]}, first


def plot_query_attention(weights: torch.Tensor, path, title: str = ""):
    """Weights (heads, m, Tp) -> PNG: one panel per head, query rows against prompt frames, with a colorbar."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    heads = weights.shape[0]
    fig, axes = plt.subplots(1, heads, figsize=(3.2 * heads, 2.8), squeeze=False)
    for h, ax in enumerate(axes[0]):
        im = ax.imshow(weights[h].numpy(), aspect="auto", origin="lower", cmap="magma",
                       extent=(0, weights.shape[-1] / 80, -0.5, weights.shape[1] - 0.5))
        ax.set_xlabel("prompt time (s)")
        ax.set_ylabel("query")
        ax.set_title(f"head {h}")
        fig.colorbar(im, ax=ax, label="attention weight")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def attention_cli(args):
    """`attention`: how different the m query rows of the prompting's first attention block are, on 3-second
    prompts cut from one utterance per speaker of a split (entropy against uniform, pairwise cosine)."""
    from corpus import data
    import model as ns2
    net, _ = ns2.load_ns2(args.ckpt)
    ds = data.FeatureDataset(args.data, args.split, with_codes=True, min_frames=args.frames)
    firsts = {}
    for i in range(len(ds)):
        item = ds[i]
        firsts.setdefault(int(item["speaker"]), item["codes"][:, :args.frames])
    latents = [net.rvq.decode(codes[None])[0] for codes in firsts.values()]
    stats, w = query_attention(net, latents)
    print(f"{args.ckpt}: {len(latents)} prompts of {args.frames} frames (split {args.split!r}): entropy "
          f"{stats['entropy']:.3f} nats (uniform {stats['uniform']:.3f}), pairwise cosine of the "
          f"{w.shape[1]} query rows {stats['cosine']:.3f}")
    if args.out:
        plot_query_attention(w, args.out, f"{Path(args.ckpt).name}: query attention over one prompt")
        print(f"plot: {args.out}")
