"""Per-utterance audio and features, shared by every corpus (paper §4.1): read and check audio, resample, PyWorld
pitch on the codec's frame grid, the feature record of one utterance and its file, atomic writes, a process pool.

Conventions, shared with every other file:
- audio is 16 kHz mono float32; a codec frame is `HOP` = 200 samples = 12.5 ms (80 frames/s, §3.1);
- an utterance of `T` frames has exactly `T * HOP` samples, its durations sum exactly to `T`, its pitch has `T` values;
- pitch is log-F0 with unvoiced frames linearly interpolated, plus a voiced flag: `log(0)` never happens;
- one pause token, `PAUSE`, for every corpus and front end.
Nothing here knows a corpus: `corpus/toy.py` and `corpus/libritts.py` build utterances with it, `corpus/data.py` builds caches.
"""
from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000             # the project's audio rate (the codec's, §3.1)
HOP = 200                       # samples per codec frame: 12.5 ms
PAUSE = "_"                     # the pause token of every corpus (eSpeak's pause phonemes, punctuation, silences)
F0_FLOOR, F0_CEIL = 50.0, 800.0


class AudioError(ValueError):
    """Audio that cannot be used (unreadable, empty, silent, clipped, NaN)."""


# ----------------------------------------------------------------------------------------------------------------
# Audio: read, down-mix, resample, check
# ----------------------------------------------------------------------------------------------------------------
def clipped_fraction(wav: np.ndarray) -> float:
    """Share of samples at full scale (|x| >= 0.999)."""
    return float((np.abs(wav) >= 0.999).mean()) if wav.size else 0.0


def check_audio(wav: np.ndarray, name: str = "audio", max_clipped: float = 1e-3) -> np.ndarray:
    """Reject audio a model should never see; return it unchanged otherwise.

    - empty, NaN or inf samples -> AudioError
    - silent (peak below 1e-4, i.e. -80 dBFS) -> AudioError
    - clipped (more than `max_clipped` of samples at full scale, |x| >= 0.999; default 0.1%) -> AudioError: in
      training data, clipping adds harmonics the codec would learn to reproduce, and the pitch tracker misreads it.
      A prompt is only listened to: sample.py passes max_clipped=1 and warns instead.
    """
    if wav.size == 0:
        raise AudioError(f"{name}: audio is empty")
    if not np.isfinite(wav).all():
        raise AudioError(f"{name}: audio contains NaN or inf samples")
    peak = float(np.abs(wav).max())
    if peak < 1e-4:
        raise AudioError(f"{name}: audio is silent (peak {peak:.1e})")
    clipped = clipped_fraction(wav)
    if clipped > max_clipped:
        raise AudioError(f"{name}: audio is clipped ({clipped:.2%} of samples at full scale)")
    return wav


def read_span(path, start: int, n: int):
    """Samples start..start+n (fewer at the end) of a file's mono audio at 16 kHz as `features.load_audio` gives
    them, read from that span of the file alone at its own rate: whole blocks of the resampler's input with a margin
    for its filter on each side, resampled, then cut to the span. Clipped to ±1, unchecked (a crop may be silent)."""
    import soundfile as sf
    from math import gcd
    try:
        with sf.SoundFile(str(path)) as f:
            sr, frames = f.samplerate, f.frames
            up, down = SAMPLE_RATE // gcd(sr, SAMPLE_RATE), sr // gcd(sr, SAMPLE_RATE)  # down in -> up out samples
            margin = 10 * max(up, down) // (up * down) + 2 if up != down else 0      # blocks (resample_poly's filter)
            first, last = max(0, start // up - margin), -(-(start + n) // up) + margin
            f.seek(min(first * down, frames))
            x = f.read(max(0, min(last * down, frames) - first * down), dtype="float32", always_2d=True).mean(axis=1)
    except Exception as e:  # soundfile raises several types for missing / corrupt files
        raise AudioError(f"{path}: cannot read audio ({e})") from None
    wav = resample(x, sr, SAMPLE_RATE)
    return np.clip(wav[start - first * up:start - first * up + n], -1, 1)


def audio_path(cache, u: dict, roots: dict | None = None) -> Path:
    """The audio file of the cached utterance `u`: `NAME:path` is that path under the manifest's roots[NAME] (real
    corpora; `python -m corpus.data relocate` moves a root); any other `wav` is relative to the cache folder (the toy
    corpus) or absolute (caches written without roots). `roots`: the manifest's, read from the cache if not given."""
    name, colon, rel = u["wav"].partition(":")
    if colon and roots is None:
        manifest = Path(cache) / "manifest.json"
        roots = _roots_of(str(manifest.resolve()), manifest.stat().st_mtime_ns)
    return Path(roots[name]) / rel if colon and name in (roots or {}) else Path(cache) / u["wav"]


_roots_of = functools.lru_cache(4)(lambda manifest, mtime_ns: json.loads(Path(manifest).read_text()).get("roots", {}))


def load_audio(path, sample_rate: int = SAMPLE_RATE, max_clipped: float = 1e-3) -> np.ndarray:
    """Read any file soundfile reads -> mono float32 at `sample_rate`.

    Documented conversions (not errors): several channels are averaged to mono; another sample rate is resampled
    with an anti-aliased polyphase filter. Unusable audio raises AudioError (see `check_audio`).
    """
    import soundfile as sf
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)   # (samples, channels)
    except Exception as e:  # soundfile raises several types for missing / corrupt files
        raise AudioError(f"{path}: cannot read audio ({e})") from None
    wav = wav.mean(axis=1)                                              # (samples,) down-mix
    if wav.size and np.isfinite(wav).all():
        wav = resample(wav, sr, sample_rate)
    return check_audio(wav, str(path), max_clipped)


def trim_silence(wav: np.ndarray, sr: int = 16000, threshold_db: float = -40.0) -> np.ndarray:
    """Drop leading/trailing 10 ms frames quieter than `threshold_db` relative to the loudest frame."""
    hop = sr // 100
    n = len(wav) // hop
    if n == 0:
        return wav
    energy = 10 * np.log10(np.mean(wav[: n * hop].reshape(n, hop) ** 2, 1) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() + threshold_db)
    return wav[loud[0] * hop: (loud[-1] + 1) * hop]


def write_wav(path: Path, wav: np.ndarray, sample_rate: int = SAMPLE_RATE):
    import soundfile as sf
    atomic_write(path, lambda f: sf.write(f, wav, sample_rate, subtype="PCM_16", format="WAV"))


def atomic_write(path: Path, write):
    """Write through a temp file in the same folder, then rename: a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def file_hash(path) -> str:
    """The first 16 hex digits of a file's SHA-256: how a cache, a checkpoint and a run name the codec they came from."""
    import hashlib
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Anti-aliased polyphase resampling (scipy's Kaiser-windowed FIR); float in, float32 out."""
    if sr_in == sr_out:
        return x.astype(np.float32)
    from math import gcd
    from scipy.signal import resample_poly
    g = gcd(sr_in, sr_out)
    return resample_poly(x.astype(np.float64), sr_out // g, sr_in // g).astype(np.float32)



# ----------------------------------------------------------------------------------------------------------------
# Pitch (§4.1: "frame-level pitch by PyWorld")
# ----------------------------------------------------------------------------------------------------------------
def extract_pitch(wav: np.ndarray, sample_rate: int = SAMPLE_RATE, hop: int = HOP):
    """Frame-level F0 with PyWorld (DIO + StoneMask) on the codec's frame grid.

    Returns (lf0, voiced), both of length T = len(wav) // hop:
      lf0[t]    = log F0 at the centre of frame t (samples t*hop .. (t+1)*hop), unvoiced frames filled by linear
                  interpolation of log F0 between voiced neighbours (held constant at the ends);
      voiced[t] = True where the tracker found voicing.
    PyWorld's frame k sits at time k * frame_period; dropping the first hop/2 samples moves frame k onto the
    *centre* of codec frame k. Raises AudioError when no frame is voiced (nothing to interpolate from).
    """
    import pyworld
    T = len(wav) // hop
    x = np.ascontiguousarray(wav[hop // 2:], dtype=np.float64)
    period_ms = 1000.0 * hop / sample_rate                   # 12.5 ms
    f0, times = pyworld.dio(x, sample_rate, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=period_ms)
    f0 = pyworld.stonemask(x, f0, times, sample_rate)
    f0 = np.pad(f0, (0, max(0, T - len(f0))))[:T]
    voiced = f0 > 0
    if not voiced.any():
        raise AudioError("no voiced frame found: pitch cannot be estimated")
    return interpolate_log_f0(f0, voiced), voiced


def interpolate_log_f0(f0: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """log F0 on voiced frames, linear interpolation across unvoiced ones: never log(0)."""
    idx = np.flatnonzero(voiced)
    lf0 = np.log(f0[idx])
    return np.interp(np.arange(len(f0)), idx, lf0).astype(np.float32)


def features(wav, phoneme_ids, durations, speaker, text, hop: int = HOP) -> dict:
    """Everything training needs for one utterance, checked for the invariants the model relies on."""
    T = len(wav) // hop
    if len(wav) != T * hop:
        raise ValueError(f"audio length {len(wav)} is not a multiple of the hop {hop}")
    durations = np.asarray(durations, np.int64)
    if durations.sum() != T or (durations < 0).any() or len(durations) != len(phoneme_ids):
        raise ValueError(f"durations must be >= 0, one per phoneme, and sum to {T} frames (sum {durations.sum()})")
    lf0, voiced = extract_pitch(wav, hop=hop)
    return dict(phonemes=np.asarray(phoneme_ids, np.int16), durations=durations.astype(np.int16), lf0=lf0,
                voiced=voiced, speaker=np.str_(speaker), text=np.str_(text))


def save_features(path: Path, feats: dict):
    atomic_write(path, lambda f: np.savez(f, **feats))


def load_features(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def imap_pool(fn, todo, jobs, desc, unit="utt"):
    """Yield fn(a) for every a in `todo` as results come (in any order), with a progress bar, in `jobs` processes
    (1 = in this process)."""
    from tqdm import tqdm
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1 or len(todo) < 8:
        yield from (fn(a) for a in tqdm(todo, desc=desc, unit=unit))
        return
    import multiprocessing as mp
    with mp.get_context("spawn").Pool(jobs) as pool:
        yield from tqdm(pool.imap_unordered(fn, todo, chunksize=4), total=len(todo), desc=desc, unit=unit)


def run_pool(fn, todo, jobs, desc, unit="utt") -> list:
    """[fn(a) for a in todo] in any order (`imap_pool`)."""
    return list(imap_pool(fn, todo, jobs, desc, unit))
