"""Data pipeline (paper §4.1): audio + text -> phonemes, phoneme durations, frame-level pitch (and later codec IDs).

NaturalSpeech 2 trains on four things per utterance: the phoneme sequence, each phoneme's duration in codec frames,
the frame-level pitch, and the codec's token IDs (from which the latent `z` is rebuilt with Eq. 1). This file makes
the first three and serves all four to training:

    python data.py prepare --corpus toy                     # generate the eSpeak toy corpus + features (seconds)
    python data.py prepare --corpus libritts --root LibriTTS --textgrids MFA_OUT
    python data.py encode --codec checkpoints/toy/codec.pt  # add the codec's token IDs (after train.py codec)
    python data.py stats                                    # hours, speakers, phoneme inventory and coverage

Conventions, shared with every other file:
- audio is 16 kHz mono float32; a codec frame is `HOP` = 200 samples = 12.5 ms (80 frames/s, §3.1);
- an utterance of `T` frames has exactly `T * HOP` samples, its durations sum exactly to `T`, its pitch has `T` values;
- pitch is log-F0 with unvoiced frames linearly interpolated, plus a voiced flag: `log(0)` never happens;
- the phoneme inventory (and the front end that produced it) is part of the data: saved in the manifest, later in
  every checkpoint, so that synthesis uses the same front end as training.

Feature cache layout (`--out`, default data/<corpus>):
    manifest.json         corpus, front end, phoneme inventory, speakers (train / held-out), utterances with splits
    wavs/<id>.wav         16 kHz audio (toy corpus only; LibriTTS audio is read from --root and resampled)
    feats/<id>.npz        phonemes (int16 IDs), durations (int16 frames), lf0 (float32), voiced (bool), speaker, text,
                          and after `encode`: codes (int16, (R, T)) + codec_sha (the codec that made them)
Every file is written atomically (temp file + rename) and `prepare` skips utterances already done, so an
interrupted run continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

import toy
import toy_text
from text import PhonemeSet, TextError

SAMPLE_RATE = toy.SAMPLE_RATE   # 16 kHz
HOP = 200                       # samples per codec frame: 12.5 ms
PAUSE = toy.PAUSE               # one pause token for every corpus
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
        wav = toy.resample(wav, sr, sample_rate)
    return check_audio(wav, str(path), max_clipped)


def write_wav(path: Path, wav: np.ndarray, sample_rate: int = SAMPLE_RATE):
    import soundfile as sf
    _atomic(path, lambda f: sf.write(f, wav, sample_rate, subtype="PCM_16", format="WAV"))


def _atomic(path: Path, write):
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
    _atomic(path, lambda f: np.savez(f, **feats))


def load_features(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ----------------------------------------------------------------------------------------------------------------
# Corpora
# ----------------------------------------------------------------------------------------------------------------
def _toy_worker(args):
    """Render one planned utterance, extract its features, write wav + npz (npz last: it marks 'done')."""
    utt, voice, inventory, out = args
    wav, phonemes, durations = toy.render(utt["text"], toy.Voice(**voice), utt["seed"], HOP)
    feats = features(wav, PhonemeSet.from_list(inventory).encode(phonemes), durations, utt["speaker"], utt["text"])
    write_wav(out / "wavs" / f"{utt['id']}.wav", wav)
    save_features(out / "feats" / f"{utt['id']}.npz", feats)
    return utt["id"], len(durations), len(wav) // HOP


def phonemize_all(out: Path, texts: list, chunk: int = 64) -> dict:
    """{text: eSpeak phonemes} for every text (one fresh eSpeak engine per `chunk` texts), cached in
    out/phonemes.json (a re-run, or a later build of more splits, phonemizes nothing twice)."""
    from tqdm import tqdm
    path, name = out / "phonemes.json", toy.EspeakPhonemizer.name
    cache = json.loads(path.read_text()).get(name, {}) if path.exists() else {}
    todo = [t for t in texts if t not in cache]
    if todo:
        phonemizer = toy.EspeakPhonemizer()
        with tqdm(total=len(todo), desc="phonemize", unit="text") as bar:
            for s in range(0, len(todo), chunk):
                part = todo[s:s + chunk]
                for text, phonemes in zip(part, phonemizer.many(part)):
                    if not phonemes:
                        raise ValueError(f"text {text!r} has nothing to pronounce")
                    cache[text] = phonemes
                bar.update(len(part))
        out.mkdir(parents=True, exist_ok=True)
        _atomic(path, lambda f: f.write(json.dumps({name: cache}, ensure_ascii=False).encode()))
    return {t: cache[t] for t in texts}


def prepare_toy(out: Path, seed=0, utts_per_voice=16, heldout_utts=8, jobs=None, splits=None) -> dict:
    """Render the toy corpus into `out` (resumable). `splits` (e.g. ["valid", "test"]): render only those; the
    phoneme inventory still comes from every planned text, so a later full build extends this one (same IDs).
    The manifest lists every planned utterance whose features exist."""
    plan = toy.plan(seed, utts_per_voice, heldout_utts=heldout_utts)
    if set(splits or ()) - {"train", "valid", "test"}:
        raise ValueError(f"unknown split in {sorted(splits)}: choose from train, valid, test")
    phonemes = phonemize_all(out, sorted({u["text"] for u in plan["utterances"]}))
    inventory = PhonemeSet(sorted({p for ps in phonemes.values() for p in ps})).to_list()
    todo = [(u, plan["voices"][u["speaker"]], inventory, out) for u in plan["utterances"]
            if (splits is None or u["split"] in splits) and not (out / "feats" / f"{u['id']}.npz").exists()]
    _run_pool(_toy_worker, todo, jobs, desc="toy corpus")
    utterances = [u for u in plan["utterances"] if (out / "feats" / f"{u['id']}.npz").exists()]
    for u in utterances:
        u["wav"] = f"wavs/{u['id']}.wav"
        u["n_frames"] = int(load_features(out / "feats" / f"{u['id']}.npz")["lf0"].shape[0])
    return dict(corpus="toy", seed=seed, front_end=toy.EspeakPhonemizer.name, phonemes=inventory,
                voices=plan["voices"], speakers=plan["speakers"], utterances=utterances, skipped=[])


def _run_pool(fn, todo, jobs, desc, unit="utt"):
    """Map `fn` over `todo` with a progress bar, in `jobs` processes (1 = in this process)."""
    from tqdm import tqdm
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1 or len(todo) < 8:
        return [fn(a) for a in tqdm(todo, desc=desc, unit=unit)]
    import multiprocessing as mp
    with mp.get_context("spawn").Pool(jobs) as pool:
        return list(tqdm(pool.imap_unordered(fn, todo, chunksize=4), total=len(todo), desc=desc, unit=unit))


def write_manifest(out: Path, manifest: dict):
    manifest = dict(manifest, version=1, sample_rate=SAMPLE_RATE, hop=HOP)
    _atomic(out / "manifest.json", lambda f: f.write(json.dumps(manifest, indent=1, ensure_ascii=False).encode()))


def read_manifest(root) -> dict:
    path = Path(root) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"no feature cache at {root} (missing manifest.json): run `python data.py prepare`")
    return json.loads(path.read_text())


def phoneme_counts(root, manifest: dict, split: str = "train") -> dict:
    """{phoneme: occurrences in `split`} for every symbol of the inventory (0 for those never seen)."""
    symbols = manifest["phonemes"]
    counts = np.zeros(len(symbols), np.int64)
    for u in manifest["utterances"]:
        if u["split"] == split:
            with np.load(Path(root) / "feats" / f"{u['id']}.npz") as z:
                counts += np.bincount(z["phonemes"].astype(np.int64), minlength=len(symbols))
    return {p: int(n) for p, n in zip(symbols[1:], counts[1:])}


def stats(manifest: dict, root=None) -> dict:
    """Hours, speakers and utterances per split, phoneme inventory; with `root` (the cache folder), how often each
    phoneme occurs in the training split and, for the toy corpus, which front-end phonemes the inventory lacks."""
    per = {}
    for u in manifest["utterances"]:
        s = per.setdefault(u["split"], {"utterances": 0, "hours": 0.0, "speakers": set()})
        s["utterances"] += 1
        s["hours"] += u["n_frames"] * manifest["hop"] / manifest["sample_rate"] / 3600
        s["speakers"].add(u["speaker"])
    for s in per.values():
        s["speakers"] = len(s["speakers"])
    return dict(corpus=manifest["corpus"], front_end=manifest["front_end"], splits=per,
                train_speakers=len(manifest["speakers"]["train"]), heldout_speakers=len(manifest["speakers"]["heldout"]),
                phonemes=manifest["phonemes"][1:], skipped=len(manifest.get("skipped", [])), codec=manifest.get("codec"),
                train_counts=phoneme_counts(root, manifest) if root is not None and "train" in per else None,
                front_end_missing=sorted(set(toy_text.coverage_vocabulary()["kept"]) - set(manifest["phonemes"]))
                if manifest["corpus"] == "toy" else None)


def format_stats(st: dict) -> str:
    lines = [f"corpus {st['corpus']}  front end {st['front_end']}  "
             f"speakers: {st['train_speakers']} train, {st['heldout_speakers']} held out"]
    for name, s in st["splits"].items():
        lines.append(f"  {name:6s} {s['utterances']:6d} utterances {s['hours'] * 60:8.1f} min  {s['speakers']} speakers")
    lines.append(f"  {len(st['phonemes'])} phonemes: {' '.join(st['phonemes'])}")
    if st.get("train_counts"):
        counts = sorted((n, p) for p, n in st["train_counts"].items() if p != PAUSE)
        lines.append(f"  coverage of the train split: every phoneme at least {counts[0][0]} times; fewest: "
                     + ", ".join(f"{p} {n}" for n, p in counts[:8]))
    if st.get("front_end_missing") is not None:
        missing = st["front_end_missing"]
        lines.append(f"  eSpeak en-us phonemes of English words (toy_words.json) missing from the inventory: "
                     f"{' '.join(missing) if missing else 'none'}")
    if st.get("codec"):
        lines.append(f"  codec IDs: {st['codec']['n_q']} x {st['codec']['codebook_size']} from {st['codec']['checkpoint']}")
    if st["skipped"]:
        lines.append(f"  {st['skipped']} utterances skipped (see manifest.json 'skipped')")
    return "\n".join(lines)


def encode_cache(root, ckpt, device: str = "cpu") -> dict:
    """Add the codec's token IDs to every utterance of a feature cache: feats/<id>.npz gains `codes` (int16,
    (R, T)) and `codec_sha` (which codec made them). The diffusion stage rebuilds z = Σ_j C_j[i_j] from these IDs
    and the codebooks (§3.1), as the paper stores IDs, not continuous latents. Resumable: files already encoded by
    the same checkpoint are skipped; a different checkpoint re-encodes everything.
    """
    import hashlib
    import torch
    from tqdm import tqdm
    import codec as codec_lib
    root, ckpt = Path(root), Path(ckpt)
    model = codec_lib.load_codec(ckpt, device)
    if model.cfg.hop != HOP or model.cfg.sample_rate != SAMPLE_RATE:
        raise ValueError(f"{ckpt}: codec hop/rate {model.cfg.hop}/{model.cfg.sample_rate} != cache {HOP}/{SAMPLE_RATE}")
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()[:16]
    manifest = read_manifest(root)
    for u in tqdm(manifest["utterances"], desc="encode", unit="utt"):
        path = root / "feats" / f"{u['id']}.npz"
        f = load_features(path)
        if "codes" in f and str(f["codec_sha"]) == sha:
            continue
        wav = load_audio(root / u["wav"])[: u["n_frames"] * HOP]          # LibriTTS: cropped as in prepare
        with torch.no_grad():
            _, ids = model.encode(torch.from_numpy(wav)[None].to(device))  # (1, R, T)
        if ids.shape[-1] != u["n_frames"]:
            raise ValueError(f"{u['id']}: codec gave {ids.shape[-1]} frames, the cache has {u['n_frames']}")
        save_features(path, dict(f, codes=ids[0].cpu().numpy().astype(np.int16), codec_sha=np.str_(sha)))
    cfg = model.cfg
    manifest["codec"] = dict(checkpoint=str(ckpt), sha256=sha, n_q=cfg.n_q, codebook_size=cfg.codebook_size, dim=cfg.dim)
    write_manifest(root, manifest)
    return manifest["codec"]


# ----------------------------------------------------------------------------------------------------------------
# Serving the cache to training
# ----------------------------------------------------------------------------------------------------------------
class FeatureDataset:
    """A torch-style Dataset over one split of a feature cache. Items are dicts of tensors:
    phonemes (N,) long, durations (N,) long, lf0 (T,) float, voiced (T,) bool, speaker () long, and codes (R, T)
    long once `data.py encode` has added codec IDs (with_codes=True requires them). Utterances shorter than
    `min_frames` are left out (the diffusion stage needs room for a prompt and a target)."""

    def __init__(self, root, split: str = "train", with_codes: bool = False, min_frames: int = 0):
        self.root = Path(root)
        self.manifest = read_manifest(root)
        self.utts = [u for u in self.manifest["utterances"] if u["split"] == split and u["n_frames"] >= min_frames]
        if not self.utts:
            raise ValueError(f"split {split!r} of {root} has no utterance of at least {min_frames} frames")
        self.speakers = sorted({u["speaker"] for u in self.manifest["utterances"]})
        self.phoneme_set = PhonemeSet.from_list(self.manifest["phonemes"])
        self.with_codes = with_codes

    def __len__(self):
        return len(self.utts)

    def __getitem__(self, i) -> dict:
        import torch
        u = self.utts[i]
        f = load_features(self.root / "feats" / f"{u['id']}.npz")
        item = dict(id=u["id"], speaker=torch.tensor(self.speakers.index(u["speaker"])),
                    phonemes=torch.from_numpy(f["phonemes"].astype(np.int64)),
                    durations=torch.from_numpy(f["durations"].astype(np.int64)),
                    lf0=torch.from_numpy(f["lf0"]), voiced=torch.from_numpy(f["voiced"]))
        if self.with_codes:
            if "codes" not in f:
                raise KeyError(f"{u['id']} has no codec IDs: run `python data.py encode --codec CKPT` first")
            item["codes"] = torch.from_numpy(f["codes"].astype(np.int64))
        return item


class WaveSegments:
    """Random fixed-length audio crops of one split, for codec training.

    `batch(step)` is a pure function of (seed, step): a resumed run sees exactly the batches an uninterrupted
    one would, with no sampler state to save. Audio is held in memory as int16 when the split is small (the toy
    corpus: ~110 MB), otherwise read (and resampled) on demand.
    """

    def __init__(self, root, split: str = "train", segment: int = 16000, batch_size: int = 8, seed: int = 0,
                 in_memory_limit_hours: float = 4.0):
        self.root, self.segment, self.batch_size, self.seed = Path(root), segment, batch_size, seed
        self.utts = [u for u in read_manifest(root)["utterances"] if u["split"] == split]
        if not self.utts:
            raise ValueError(f"split {split!r} of {root} is empty")
        hours = sum(u["n_frames"] for u in self.utts) * HOP / SAMPLE_RATE / 3600
        self.cache = [self._read(u) for u in self.utts] if hours <= in_memory_limit_hours else None

    def _read(self, u) -> np.ndarray:
        wav = load_audio(self.root / u["wav"])                  # absolute paths (LibriTTS) stay absolute
        return (np.clip(wav, -1, 1) * 32767).astype(np.int16)

    def batch(self, step: int):
        """(batch_size, segment) float32 tensor; clips shorter than a segment are zero-padded at the end."""
        import torch
        rng = np.random.default_rng([self.seed, step])
        out = np.zeros((self.batch_size, self.segment), np.float32)
        for b, i in enumerate(rng.integers(len(self.utts), size=self.batch_size)):
            wav = self.cache[i] if self.cache is not None else self._read(self.utts[i])
            start = rng.integers(max(1, len(wav) - self.segment + 1))
            piece = wav[start:start + self.segment]
            out[b, :len(piece)] = piece / 32767.0
        return torch.from_numpy(out)


def collate(items: list[dict]) -> dict:
    """Pad a list of items into a batch. Masks are True on real positions, False on padding:
    phonemes/durations (B, N) with phoneme_mask (B, N); lf0/voiced (B, T) with frame_mask (B, T); codes (B, R, T).
    Padding values: phoneme ID 0 (= <pad>), duration 0, lf0 0, voiced False, code 0 (masked everywhere it matters).
    """
    import torch
    B = len(items)
    N = max(len(it["phonemes"]) for it in items)
    T = max(len(it["lf0"]) for it in items)
    batch = dict(ids=[it["id"] for it in items], speaker=torch.stack([it["speaker"] for it in items]),
                 phonemes=torch.zeros(B, N, dtype=torch.long), durations=torch.zeros(B, N, dtype=torch.long),
                 phoneme_mask=torch.zeros(B, N, dtype=torch.bool), lf0=torch.zeros(B, T),
                 voiced=torch.zeros(B, T, dtype=torch.bool), frame_mask=torch.zeros(B, T, dtype=torch.bool))
    if "codes" in items[0]:
        batch["codes"] = torch.zeros(B, items[0]["codes"].shape[0], T, dtype=torch.long)   # (B, R, T)
    for b, it in enumerate(items):
        n, t = len(it["phonemes"]), len(it["lf0"])
        batch["phonemes"][b, :n] = it["phonemes"]
        batch["durations"][b, :n] = it["durations"]
        batch["phoneme_mask"][b, :n] = True
        batch["lf0"][b, :t] = it["lf0"]
        batch["voiced"][b, :t] = it["voiced"]
        batch["frame_mask"][b, :t] = True
        if "codes" in batch:
            batch["codes"][b, :, :t] = it["codes"]
    return batch


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="build a feature cache (resumable: re-run to continue)")
    p.add_argument("--corpus", choices=["toy", "libritts"], default="toy")
    p.add_argument("--out", type=Path, help="cache folder (default data/<corpus>)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="toy: corpus seed (voices, sentences, eSpeak)")
    p.add_argument("--utts-per-voice", type=int, default=16, help="toy: training utterances per training voice "
                   "(default 16, about 50 min in all; 160 makes about 8 h)")
    p.add_argument("--heldout-utts", type=int, default=8, help="toy: test utterances per held-out voice")
    p.add_argument("--splits", help="toy: render only these comma-separated splits (train, valid, test); "
                   "make demo needs valid,test")
    p.add_argument("--root", type=Path, help="libritts: the LibriTTS folder (holding train-clean-100, ...)")
    p.add_argument("--subsets", default="train-clean-100,dev-clean,test-clean", help="libritts: comma-separated")
    p.add_argument("--textgrids", type=Path, help="libritts: Montreal Forced Aligner output (phone durations)")
    e = sub.add_parser("encode", help="add codec token IDs to a feature cache (resumable)")
    e.add_argument("--codec", type=Path, required=True, help="codec checkpoint (train.py codec / export)")
    e.add_argument("--data", type=Path, default=Path("data/toy"))
    e.add_argument("--device", default="cpu")
    s = sub.add_parser("stats", help="print corpus statistics of a feature cache")
    s.add_argument("--data", type=Path, default=Path("data/toy"))
    args = ap.parse_args(argv)
    try:
        if args.cmd == "prepare":
            out = args.out or Path("data") / args.corpus
            if args.corpus == "toy":
                if args.utts_per_voice < 1 or args.heldout_utts < 1:
                    raise ValueError("--utts-per-voice and --heldout-utts must be at least 1")
                splits = [x.strip() for x in args.splits.split(",") if x.strip()] if args.splits else None
                manifest = prepare_toy(out, args.seed, args.utts_per_voice, args.heldout_utts, args.jobs, splits)
            else:
                import libritts
                manifest = libritts.prepare(args.root, out, args.subsets.split(","), args.textgrids, args.jobs)
            if (out / "manifest.json").exists() and read_manifest(out).get("codec"):
                manifest["codec"] = read_manifest(out)["codec"]           # codes already in the npz files stay valid
            write_manifest(out, manifest)
            print(format_stats(stats(read_manifest(out), out)))
            print(f"feature cache: {out}/manifest.json")
        elif args.cmd == "encode":
            info = encode_cache(args.data, args.codec, args.device)
            print(f"codec IDs ({info['n_q']} x {info['codebook_size']} codes per frame) added to {args.data}")
        elif args.cmd == "stats":
            print(format_stats(stats(read_manifest(args.data), args.data)))
    except (AudioError, TextError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
