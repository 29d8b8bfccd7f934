"""LibriTTS reader (paper §4.1 on real speech): official layout -> the same feature cache as the toy corpus.

LibriTTS (585 h, 24 kHz, 2,456 speakers) is read from its official layout, which the user downloads:

    <root>/<subset>/<speaker>/<chapter>/<speaker>_<chapter>_<paragraph>_<sentence>.wav
                                        ... .normalized.txt   (the text)

Phonemes and their durations come from a forced alignment: Montreal Forced Aligner (MFA) TextGrids with an ARPAbet
`phones` tier (e.g. the `english_us_arpa` model), one `<utterance id>.TextGrid` per utterance anywhere under
`--textgrids`. Its phones are the stress-marked ARPAbet that g2p_en emits, so at synthesis time text goes through
`text.EnglishG2P` and lands in the same inventory. Silences (`""`, `sil`, `sp`) become the pause token; an
utterance whose alignment contains `spn` (an out-of-vocabulary word MFA could not align) is skipped.

Splits: `train-*` subsets -> train, `dev-*` -> valid, `test-*` -> test; the test speakers are disjoint from the
training speakers in LibriTTS, so they are the held-out (zero-shot) speakers.
Audio is resampled to 16 kHz and cropped to a whole number of 12.5 ms frames (at most 199 samples, < 12.5 ms, are
dropped from the end); no silence is trimmed, so durations always sum to the frame count.
"""
from __future__ import annotations

import re
from pathlib import Path


import toy
from text import PHONEMES, PhonemeSet
import features

FRONT_END = "g2p_en-arpabet"
SILENCES = {"", "sil", "sp"}


def inventory() -> PhonemeSet:
    """The fixed LibriTTS inventory: the pause token + the 69 stress-marked ARPAbet phonemes."""
    return PhonemeSet([features.PAUSE] + PHONEMES)


def read_textgrid_phones(path: Path) -> list[tuple[float, float, str]]:
    """(start s, end s, label) of every interval of the `phones` tier of a long-format (ooTextFile) TextGrid."""
    txt = Path(path).read_text(encoding="utf-8", errors="replace")
    tiers = re.split(r"\bitem \[\d+\]:", txt)[1:]
    for tier in tiers:
        if re.search(r'name = "phones"', tier):
            found = re.findall(r'xmin = ([\d.eE+-]+)\s*xmax = ([\d.eE+-]+)\s*text = "((?:[^"]|"")*)"', tier)
            return [(float(a), float(b), t.replace('""', '"').strip()) for a, b, t in found]
    raise ValueError(f"{path}: no 'phones' tier in long TextGrid format (expected Montreal Forced Aligner output)")


def phones_to_frames(intervals, n_frames: int, hop: int = features.HOP):
    """TextGrid intervals -> (phonemes, durations in frames summing exactly to n_frames). Silences -> pause."""
    phonemes, starts = [], []
    for start, _, label in intervals:
        label = features.PAUSE if label.lower() in SILENCES else label.upper()
        if label == "SPN":
            raise ValueError("alignment contains 'spn' (unaligned out-of-vocabulary word)")
        if phonemes and label == features.PAUSE and phonemes[-1] == features.PAUSE:
            continue
        phonemes.append(label)
        starts.append(start * features.SAMPLE_RATE)
    return phonemes, toy.frame_durations(starts, features.SAMPLE_RATE, n_frames, hop)


def find_utterances(root: Path, subsets: list[str]) -> list[dict]:
    root = Path(root)
    utts = []
    for subset in subsets:
        folder = root / subset
        if not folder.is_dir():
            raise FileNotFoundError(f"LibriTTS subset {subset!r} not found at {folder}")
        split = "train" if subset.startswith("train") else "valid" if subset.startswith("dev") else "test"
        for wav in sorted(folder.glob("*/*/*.wav")):
            txt = wav.with_suffix(".normalized.txt")
            if txt.exists():
                utts.append(dict(id=wav.stem, speaker=wav.stem.split("_")[0], split=split, wav=str(wav.resolve()),
                                 text=txt.read_text(encoding="utf-8").strip()))
    if not utts:
        raise FileNotFoundError(f"no LibriTTS utterances (*.wav + *.normalized.txt) under {root} / {subsets}")
    return utts


def _worker(args):
    """One utterance -> feats/<id>.npz. Returns (id, n_frames, None) or (id, None, reason it was skipped)."""
    utt, textgrid, out = args
    try:
        wav = features.load_audio(utt["wav"])
        T = len(wav) // features.HOP
        wav = wav[:T * features.HOP]
        phonemes, durations = phones_to_frames(read_textgrid_phones(textgrid), T)
        ids = inventory().encode(phonemes)
        features.save_features(out / "feats" / f"{utt['id']}.npz",
                           features.features(wav, ids, durations, utt["speaker"], utt["text"]))
        return utt["id"], T, None
    except (ValueError, OSError) as e:     # AudioError and TextError are ValueErrors
        return utt["id"], None, str(e)


def prepare(root: Path, out: Path, subsets: list[str], textgrids: Path | None, jobs=None) -> dict:
    if root is None:
        raise ValueError("--corpus libritts needs --root (the LibriTTS folder)")
    if textgrids is None or not Path(textgrids).is_dir():
        raise ValueError("LibriTTS durations need a forced alignment: pass --textgrids DIR with Montreal Forced "
                         "Aligner TextGrids (ARPAbet phones); a built-in aligner is not part of this project yet")
    utts = find_utterances(root, subsets)
    grids = {p.stem: p for p in Path(textgrids).rglob("*.TextGrid")}
    skipped = [dict(id=u["id"], reason="no TextGrid") for u in utts if u["id"] not in grids]
    utts = [u for u in utts if u["id"] in grids]
    todo = [(u, grids[u["id"]], out) for u in utts if not (out / "feats" / f"{u['id']}.npz").exists()]
    results = features.run_pool(_worker, todo, jobs, desc="libritts")
    skipped += [dict(id=i, reason=r) for i, _, r in results if r is not None]
    bad = {s["id"] for s in skipped}
    kept = [u for u in utts if u["id"] not in bad]
    for u in kept:
        u["n_frames"] = int(features.load_features(out / "feats" / f"{u['id']}.npz")["lf0"].shape[0])
    if not kept:
        raise ValueError(f"every utterance was skipped; first reasons: {[s['reason'] for s in skipped[:3]]}")
    speakers = {"train": sorted({u["speaker"] for u in kept if u["split"] != "test"}),
                "heldout": sorted({u["speaker"] for u in kept if u["split"] == "test"})}
    return dict(corpus="libritts", front_end=FRONT_END, phonemes=inventory().to_list(), speakers=speakers,
                utterances=kept, skipped=skipped)
