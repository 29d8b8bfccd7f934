"""The toy corpus's held-out voices as an evaluation set, and the scores of one output that the demos share
(evaluation/demo.py, evaluation/demo_section5.py): the test utterances by voice, a §5 source with its exact
phonemes and durations, SIM with a miss scored as dissimilar, the share of vowel frames voiced, means of rows.
"""
from __future__ import annotations

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
