"""The built-in aligner (align.py, paper §4.1) from the command line: fit it on a prepared cache, measure its phoneme
boundaries against the toy corpus's exact eSpeak timings, plot an alignment.

    python -m evaluation.alignment fit  --data data/toy --out runs/aligner.pt     # fit on a cache's training split
    python -m evaluation.alignment eval --ckpt runs/aligner.pt --data data/toy    # boundary error vs eSpeak's timings
    python -m evaluation.alignment plot --ckpt runs/aligner.pt --wav a.wav --text "..." --out a.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

import align
from codec import log_mel
from corpus.features import HOP, SAMPLE_RATE
from training.presets import PRESETS, parse_overrides, preset


def plot(net: align.Aligner, phonemes: list[str], ids: np.ndarray, wav: np.ndarray, out: Path, title: str = ""):
    """The log-mel spectrogram with the hard alignment's phoneme boundaries and labels over it, and the soft
    alignment A_soft (phonemes × frames) with the monotonic path on it, to `out` (png)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    mel = align.mel_frames(wav, net.cfg)
    b = align.collate([(ids, mel)])
    with torch.no_grad():
        log_attn = net(b["phonemes"], b["phoneme_mask"], b["mel"], b["frame_mask"])
    hard = align.hard_alignment(log_attn, b["phoneme_mask"], b["frame_mask"])[0]
    d = hard.sum(0).long().numpy()
    sec = net.cfg.hop / SAMPLE_RATE
    T = mel.shape[1]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(min(24, 2 + T * sec * 4), 6.5), sharex=True)
    raw = log_mel(torch.as_tensor(np.asarray(wav, np.float32))[None], net.cfg.n_fft, net.cfg.hop, net.cfg.n_mels)[0]
    a1.imshow(raw[:, :T].numpy(), origin="lower", aspect="auto", extent=(0, T * sec, 0, raw.shape[0]), cmap="magma")
    starts = np.concatenate([[0], np.cumsum(d)])
    for k, p in enumerate(phonemes):
        a1.axvline(starts[k] * sec, color="white", lw=0.6)
        a1.text((starts[k] + starts[k + 1]) / 2 * sec, raw.shape[0] * 0.9, p, color="white", ha="center",
                fontsize=7, rotation=90)
    a1.set_ylabel("mel bin")
    a1.set_title(title or "alignment")
    a2.imshow(log_attn[0].exp().T.numpy(), origin="lower", aspect="auto", extent=(0, T * sec, 0, len(phonemes)),
              cmap="viridis")
    a2.plot((np.arange(T) + 0.5) * sec, hard.argmax(1).numpy() + 0.5, color="red", lw=0.8)
    a2.set_ylabel("phoneme index")
    a2.set_xlabel("time (s)")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)




def boundary_errors(pred_durations: list[np.ndarray], true_starts_s: list[np.ndarray], hop: int = HOP) -> dict:
    """Phoneme boundary error of aligned durations against true start times (seconds), over every inner boundary
    (the start of phonemes 2..N; the first start is 0 for both):
        err_n = |hop · Σ_{m<n} d_m / sample_rate − s_n|
    Returns mean and median in ms, share within 10/20/25 ms, and the number of boundaries."""
    errs = []
    for d, s in zip(pred_durations, true_starts_s):
        starts = np.cumsum(np.asarray(d))[:-1] * hop / SAMPLE_RATE
        errs.append(np.abs(starts - np.asarray(s, np.float64)[1:]) * 1000)
    e = np.concatenate(errs) if errs else np.zeros(0)
    return dict(mean_ms=float(e.mean()), median_ms=float(np.median(e)), within_10ms=float((e <= 10).mean()),
                within_20ms=float((e <= 20).mean()), within_25ms=float((e <= 25).mean()), boundaries=int(len(e)))




def toy_true_starts(root, utts: list) -> list[np.ndarray]:
    """Exact phoneme start times (s) of toy utterances, from eSpeak's phoneme events when re-rendered (rendering is
    reproducible: `toy.synth`)."""
    from corpus import toy
    voices = json.loads((Path(root) / "manifest.json").read_text())["voices"]
    out = []
    for u in utts:
        _, rate, events = toy.synth(u["text"], toy.Voice(**voices[u["speaker"]]), u["seed"])
        starts = np.array([s for _, s in toy.merge_pauses(events)], np.float64) / rate
        starts[0] = 0.0
        out.append(starts)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evaluation.alignment",
                                description="Built-in phoneme aligner: fit on a prepared cache, measure it.")
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="train an aligner on a cache's training split")
    f.add_argument("--data", type=Path, required=True, help="a prepared cache with wavs (e.g. data/toy)")
    f.add_argument("--out", type=Path, required=True, help="checkpoint to write (e.g. runs/aligner.pt)")
    f.add_argument("--config", default="toy", choices=sorted(PRESETS), help="preset (training/presets.py)")
    f.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    e = sub.add_parser("eval", help="boundary error against eSpeak's exact timings (toy corpus)")
    e.add_argument("--ckpt", type=Path, required=True)
    e.add_argument("--data", type=Path, required=True)
    e.add_argument("--split", default="test", help="test = held-out voices (default)")
    e.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    g = sub.add_parser("plot", help="plot the alignment of one recording and its transcript")
    g.add_argument("--ckpt", type=Path, required=True)
    g.add_argument("--wav", type=Path, required=True)
    g.add_argument("--text", required=True, help="its transcript")
    g.add_argument("--out", type=Path, required=True, help="png to write")
    return p


def fit_command(args, overrides: list[str]):
    if args.threads:
        torch.set_num_threads(args.threads)
    (cfg,) = parse_overrides(overrides, preset(args.config).aligner)
    _, items = align.cache_items(args.data, "train", cfg)
    manifest = json.loads((args.data / "manifest.json").read_text())
    align.save(align.fit(items, manifest["phonemes"], cfg), args.out, manifest["phonemes"], manifest["front_end"])
    print(f"aligner: {args.out} ({len(items)} utterances, {cfg.steps} steps)")


def plot_command(args):
    from corpus import features
    from corpus.text import EnglishG2P, PhonemeSet, front_end, g2p_phonemes
    net, inventory = align.load(args.ckpt)
    if not net.front_end:
        raise ValueError(f"{args.ckpt} does not name its text front end")
    wav = features.load_audio(args.wav)
    phonemes = align.aligner_tokens(g2p_phonemes(args.text, word_pauses=True) if net.front_end == EnglishG2P.name
                                    else front_end(net.front_end)(args.text))
    ids = np.asarray(PhonemeSet.from_list(inventory).encode(phonemes))
    if len(wav) // net.cfg.hop < len(ids):
        raise ValueError(f"{args.wav} is too short for {len(ids)} phonemes")
    plot(net, phonemes, ids, wav, args.out, f"{args.wav.name}: {args.text}")
    print(f"wrote {args.out}")


def eval_command(args):
    net, phonemes = align.load(args.ckpt)
    if phonemes != json.loads((args.data / "manifest.json").read_text())["phonemes"]:
        raise ValueError(f"{args.ckpt} was fitted on another phoneme inventory than {args.data}'s")
    utts, items = align.cache_items(args.data, args.split, net.cfg)
    truth, native = toy_true_starts(args.data, utts), align.durations(net, items)
    codec = [align.to_codec_frames(d, int(np.sum(d)) * net.cfg.hop // HOP, net.cfg.hop) for d in native]
    rows = {f"aligner frames ({1000 * net.cfg.hop / SAMPLE_RATE:g} ms)": boundary_errors(native, truth, net.cfg.hop),
            f"codec frames ({1000 * HOP / SAMPLE_RATE:g} ms, as cached)": boundary_errors(codec, truth)}
    print(f"{len(utts)} utterances of split {args.split!r}, {rows[next(iter(rows))]['boundaries']} phoneme "
          "boundaries, against eSpeak's exact phoneme events")
    print("| durations in | mean | median | ≤ 10 ms | ≤ 20 ms | ≤ 25 ms |\n|---|---|---|---|---|---|")
    for name, m in rows.items():
        print(f"| {name} | {m['mean_ms']:.1f} ms | {m['median_ms']:.1f} ms | {m['within_10ms']:.0%} | "
              f"{m['within_20ms']:.0%} | {m['within_25ms']:.0%} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def main(argv=None) -> int:
    p = build_parser()
    args, rest = p.parse_known_args(argv)
    if rest and args.cmd != "fit":
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.cmd == "fit":
            fit_command(args, rest)
        elif args.cmd == "plot":
            plot_command(args)
        else:
            eval_command(args)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
