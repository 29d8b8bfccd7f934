"""The codec stage's audio batches, timed (`python -m evaluation.bench loader --audio N`): a table, not a test.

Seconds per batch of 1 s crops (corpus/data.py `WaveSegments`, as training/codec_stage.py draws them) from a folder
of synthetic 24 kHz WAVs of 6-10 s written to a temporary folder, read three ways: whole files read and resampled in
the training process and a crop cut from each (how the stage read a split too big for memory before span reads);
each crop's span alone read and resampled there (`features.read_span`); span reads by DataLoader worker processes
(`data.loader`, the `workers` field of the codec's train config), timed from the first batch on.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_cache(folder: Path, files: int, rate: int = 24000) -> list[dict]:
    """`files` WAVs of 6-10 s of noise at `rate` and a manifest listing them as the train split; its utterances."""
    from corpus.features import HOP, SAMPLE_RATE, write_wav
    rng, utts = np.random.default_rng(0), []
    for k in range(files):
        n = int(rng.uniform(6, 10) * rate)
        write_wav(folder / f"{k}.wav", 0.1 * rng.standard_normal(n), rate)
        utts.append(dict(id=str(k), split="train", wav=f"{k}.wav", n_frames=n * SAMPLE_RATE // rate // HOP))
    (folder / "manifest.json").write_text(json.dumps(dict(utterances=utts)))
    return utts


def per_batch(batches, steps: int) -> float:
    """Mean seconds per batch of `steps` batches taken from the iterator `batches` after its first."""
    next(batches)
    t = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return (time.perf_counter() - t) / steps


def bench_audio(files: int, batch: int, workers: list[int], steps: int) -> list[tuple[str, float]]:
    """[(how the batches were read, seconds per batch)] of `batch` 1 s crops (see the module docstring)."""
    from corpus import data, features
    with tempfile.TemporaryDirectory() as tmp:
        utts = synthetic_cache(Path(tmp), files)
        segments = data.WaveSegments(tmp, "train", features.SAMPLE_RATE, batch, in_memory_limit_hours=0)

        def whole_files():                              # the same draw as WaveSegments: file, then start
            for step in range(steps + 1):
                rng, out = np.random.default_rng([0, step]), []
                for i in rng.integers(len(utts), size=batch):
                    wav = features.load_audio(Path(tmp) / utts[i]["wav"])
                    start = rng.integers(max(1, utts[i]["n_frames"] * features.HOP - features.SAMPLE_RATE + 1))
                    out.append(wav[start:start + features.SAMPLE_RATE])
                yield out

        rows = [("whole files, in the training process", per_batch(whole_files(), steps)),
                ("spans, in the training process", per_batch(iter(data.loader(segments, 0, steps + 1)), steps))]
        rows += [(f"spans, {w} DataLoader workers", per_batch(iter(data.loader(segments, 0, steps + 1, w)), steps))
                 for w in workers]
    return rows


def table(args, machine: str) -> str:
    """The table of `bench loader --audio N`: N files, --batch crops, --workers (0 left out: the in-process rows)."""
    workers = [int(w) for w in args.workers.split(",") if int(w)]
    rows = bench_audio(args.audio, args.batch_size, workers, args.steps)
    return (f"# codec batches on {machine}: {args.batch_size} crops of 1 s from {args.audio} synthetic 24 kHz WAVs "
            f"of 6-10 s, mean of {args.steps} batches\n| read | s per batch |\n|---|---|\n"
            + "\n".join(f"| {name} | {sec:.3f} |" for name, sec in rows))
