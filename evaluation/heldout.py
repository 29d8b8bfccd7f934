"""The toy corpus's held-out voices as an evaluation set, and the scores of one output that the demos share
(evaluation/demo.py, evaluation/demo_section5.py): the test utterances by voice, a §5 source with its exact
phonemes and durations, SIM with a miss scored as dissimilar, the share of vowel frames voiced, means of rows;
and each codec's resynthesis per held-out voice:

    python -m evaluation.heldout shipped=checkpoints/toy/codec.pt other=PATH --data data/toy --per-voice 3
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import section5
from corpus import features


def heldout(root: Path) -> tuple[dict, dict]:
    """({speaker: [test utterances by ID]}, voices) of a toy cache's held-out voices."""
    from corpus import data
    manifest = data.read_manifest(root)
    by_spk = {}
    for u in sorted((u for u in manifest["utterances"] if u["split"] == "test"), key=lambda u: u["id"]):
        by_spk.setdefault(u["speaker"], []).append(u)
    if not by_spk:
        raise ValueError(f"{root} has no test split (held-out voices): run python -m corpus.data prepare --corpus toy")
    return by_spk, manifest["voices"]


def source_of(synth, root: Path, u: dict, wav=None):
    """A section5.Source of a cached utterance with its exact phonemes and durations (wav: e.g. a noisy copy)."""
    f = features.load_features(root / "feats" / f"{u['id']}.npz")
    wav = features.load_audio(features.audio_path(root, u)) if wav is None else wav
    return section5.prepare_source(synth, wav, ids=f["phonemes"].astype(np.int64),
                                   durations=f["durations"].astype(np.int64))


def sim(a, b) -> float:
    """SIM: the cosine of two clips' speaker embeddings (Resemblyzer); 0 when one has too little speech."""
    from evaluation import metrics as ev
    try:
        return ev.cosine(ev.speaker_embedding(a), ev.speaker_embedding(b))
    except ValueError:                                   # too little speech in the output: scored as dissimilar
        return 0.0


def mean_rows(rows: list) -> dict:
    """The mean (NaNs left out) of every numeric column of a list of row dicts."""
    return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0] if not isinstance(rows[0][k], str)}


def vowels_voiced(wav: np.ndarray, phonemes: list, durations) -> float:
    """Share of the frames of vowels (text.is_vowel) in which PyWorld finds voicing: held notes need a voice."""
    from evaluation import metrics as ev
    from corpus.text import is_vowel
    _, voiced = ev.f0_hz(wav)
    bounds = np.concatenate([[0], np.cumsum(np.asarray(durations, np.int64))])
    vowel = np.zeros(len(voiced), bool)
    for p, a, b in zip(phonemes, bounds[:-1], bounds[1:]):
        vowel[a:b] = is_vowel(p)
    return float(voiced[vowel].mean()) if vowel.any() else float("nan")


def resynthesise(codec, wav: np.ndarray) -> np.ndarray:
    """A waveform through the codec (encode, decode), cut to its length."""
    import torch
    with torch.no_grad():
        return codec.decode(codec.encode(torch.from_numpy(wav)[None])[0])[0, :len(wav)].numpy()


def codec_by_voice(codecs: dict, root: Path, per_voice: int = 3) -> dict:
    """Each codec's resynthesis of the first `per_voice` test utterances of every held-out voice, scored against the
    ground truth: {voice: {"gt": {f0, voiced}, name: {pesq, stoi, f0_diff, voiced, sim}}} (means over the clips).
    f0_diff is the relative difference of the mean voiced F0 (PyWorld) to the ground truth's, voiced the share of
    frames voiced, sim the speaker-embedding cosine to the ground truth. A voice the codec cannot reproduce shows
    here, where a mean over all clips hides it."""
    from evaluation import metrics as ev
    by_spk, _ = heldout(root)
    table = {}
    for spk, utts in by_spk.items():
        gts = [features.load_audio(features.audio_path(root, u)) for u in utts[:per_voice]]
        f0s = [ev.f0_hz(w) for w in gts]
        gt_f0 = float(np.mean([f[v].mean() for f, v in f0s if v.any()] or [np.nan]))
        table[spk] = {"gt": dict(f0=gt_f0, voiced=float(np.mean([v.mean() for _, v in f0s])))}
        for name, model in codecs.items():
            rows = []
            for gt in gts:
                est = resynthesise(model, gt)
                f, v = ev.f0_hz(est)
                rows.append(dict(ev.codec_metrics(gt, est), f0=f[v].mean() if v.any() else np.nan,
                                 voiced=float(v.mean()), sim=sim(gt, est)))
            m = mean_rows(rows)
            table[spk][name] = dict(pesq=m["pesq"], stoi=m["stoi"], f0_diff=m["f0"] / gt_f0 - 1,
                                    voiced=m["voiced"], sim=m["sim"])
    return table


def format_codec_by_voice(table: dict) -> str:
    """`codec_by_voice` as a markdown table, one row per voice and a row of means (F0: of |difference|)."""
    names = [k for k in next(iter(table.values())) if k != "gt"]
    head = "| voice | GT F0 Hz | GT voiced | " + " | ".join(f"{n}: PESQ / STOI / F0 / voiced / SIM" for n in names)
    lines = [head + " |", "|---" * (3 + len(names)) + "|"]
    cell = "{pesq:.2f} / {stoi:.3f} / {f0_diff:+.0%} / {voiced:.0%} / {sim:.3f}"
    for spk, row in table.items():
        lines.append(f"| {spk} | {row['gt']['f0']:.0f} | {row['gt']['voiced']:.0%} | "
                     + " | ".join(cell.format(**row[n]) for n in names) + " |")
    means = {n: {k: float(np.nanmean([abs(r[n][k]) if k == "f0_diff" else r[n][k] for r in table.values()]))
                 for k in ("pesq", "stoi", "f0_diff", "voiced", "sim")} for n in names}
    mean_cell = cell.replace("{f0_diff:+.0%}", "±{f0_diff:.1%}")
    lines.append("| mean | | | " + " | ".join(mean_cell.format(**means[n]) for n in names) + " |")
    return "\n".join(lines)


def build_parser():
    import argparse
    ap = argparse.ArgumentParser(prog="python -m evaluation.heldout", description="Codec resynthesis per held-out "
                                 "voice (PESQ, STOI, mean-F0 difference, voiced share, SIM to the ground truth)")
    ap.add_argument("ckpt", nargs="+", help="codec checkpoints, NAME=PATH or PATH")
    ap.add_argument("--data", type=Path, default=Path("data/toy"), help="feature cache with a test split")
    ap.add_argument("--per-voice", type=int, default=3, help="test utterances per voice (default 3)")
    return ap


def main(argv=None) -> int:
    """Command line: the per-voice codec table of one or more codecs."""
    import codec
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.per_voice < 1:
        ap.error("--per-voice must be at least 1")
    pairs = [c.split("=", 1) if "=" in c else (Path(c).stem, c) for c in args.ckpt]
    try:
        codecs = {name: codec.load_codec(Path(path)).eval() for name, path in pairs}
        table = codec_by_voice(codecs, args.data, args.per_voice)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_codec_by_voice(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
