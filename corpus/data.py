"""Data pipeline (paper §4.1): audio + text -> phonemes, phoneme durations, frame-level pitch (and later codec IDs).

NaturalSpeech 2 trains on four things per utterance: the phoneme sequence, each phoneme's duration in codec frames,
the frame-level pitch, and the codec's token IDs (from which the latent `z` is rebuilt with Eq. 1). This file makes
the first three and serves all four to training:

    python -m corpus.data prepare --corpus toy                     # generate the eSpeak toy corpus + features (seconds)
    python -m corpus.data prepare --corpus libritts --root LibriTTS           # phonemes by g2p_en, durations by align.py
    python -m corpus.data prepare --corpus libritts --root LibriSpeech --subsets train-clean-100   # LibriSpeech layout
    python -m corpus.data encode --codec checkpoints/toy/codec.pt  # add the codec's token IDs (after train.py codec)
    python -m corpus.data stats                                    # hours, speakers, phoneme inventory and coverage
    python -m corpus.data relocate --data data/libritts --root LibriTTS=/new/place/LibriTTS   # a moved download

The per-utterance conventions (16 kHz, 12.5 ms frames, durations summing to the frame count, interpolated log-F0)
and the code that makes one utterance's features live in `corpus/features.py`; the phoneme inventory (and the front end that
produced it) is part of the data: saved in the manifest, later in every checkpoint, so that synthesis uses the same
front end as training.

Feature cache layout (`--out`, default data/<corpus>):
    manifest.json         corpus, front end, phoneme inventory, speakers (train / held-out), utterances with splits
    wavs/<id>.wav         16 kHz audio (toy corpus only; LibriTTS audio is read from --root and resampled: the
                          manifest keeps roots {NAME: folder} and each file as NAME:path under it, `features.audio_path`)
    feats/<id>.npz        phonemes (int16 IDs), durations (int16 frames), lf0 (float32), voiced (bool), speaker, text,
                          and after `encode`: codes (int16, (R, T)) + codec_sha (the codec that made them)
Every file is written atomically (temp file + rename) and `prepare` skips utterances already done, so an
interrupted run continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from corpus import layouts, libritts, toy, toy_text
from corpus.features import (HOP, PAUSE, SAMPLE_RATE, AudioError, atomic_write, audio_path, features, file_hash,
                             load_audio, load_features, read_span, run_pool, save_features,
                             write_wav)
from corpus.text import PhonemeSet, TextError


# ---- Corpora --------------------------------------------------------------------------------------------------
def _toy_worker(args):
    """Render one planned utterance, extract its features, write wav + npz (npz last: it marks 'done').
    -> (id, None) or, when eSpeak's audio is unusable (clipped, no voiced frame), (id, the reason)."""
    utt, voice, inventory, out = args
    try:
        wav, phonemes, durations = toy.render(utt["text"], toy.Voice(**voice), utt["seed"], HOP)
        feats = features(wav, PhonemeSet.from_list(inventory).encode(phonemes), durations, utt["speaker"], utt["text"])
    except ValueError as e:                         # AudioError included
        return utt["id"], str(e)
    write_wav(out / "wavs" / f"{utt['id']}.wav", wav)
    save_features(out / "feats" / f"{utt['id']}.npz", feats)
    return utt["id"], None


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
        atomic_write(path, lambda f: f.write(json.dumps({name: cache}, ensure_ascii=False).encode()))
    return {t: cache[t] for t in texts}


def prepare_toy(out: Path, seed=0, utts_per_voice=16, heldout_utts=8, jobs=None, splits=None, drawn=0,
                small=0) -> dict:
    """Render the toy corpus into `out` (resumable), with `drawn` more training voices of drawn timbres and `small`
    of small ones (toy.drawn_voices). `splits` (e.g. ["valid", "test"]): render only those; the
    phoneme inventory still comes from every planned text, so a later full build extends this one (same IDs).
    The manifest lists every planned utterance whose features exist."""
    plan = toy.plan(seed, utts_per_voice, heldout_utts=heldout_utts, drawn=drawn, small=small)
    if set(splits or ()) - {"train", "valid", "test", "confirm"}:
        raise ValueError(f"unknown split in {sorted(splits)}: choose from train, valid, test, confirm")
    phonemes = phonemize_all(out, sorted({u["text"] for u in plan["utterances"]}))
    inventory = PhonemeSet(sorted({p for ps in phonemes.values() for p in ps})).to_list()
    todo = [(u, plan["voices"][u["speaker"]], inventory, out) for u in plan["utterances"]
            if (splits is None or u["split"] in splits) and not (out / "feats" / f"{u['id']}.npz").exists()]
    skipped = [dict(id=uid, reason=reason) for uid, reason in run_pool(_toy_worker, todo, jobs, desc="toy corpus")
               if reason]
    for s in skipped:
        print(f"  skipped {s['id']}: {s['reason']}")
    utterances = [u for u in plan["utterances"] if (out / "feats" / f"{u['id']}.npz").exists()]
    for u in utterances:
        u["wav"] = f"wavs/{u['id']}.wav"
        u["n_frames"] = int(load_features(out / "feats" / f"{u['id']}.npz")["lf0"].shape[0])
    return dict(corpus="toy", seed=seed, front_end=toy.EspeakPhonemizer.name, phonemes=inventory,
                voices=plan["voices"], speakers=plan["speakers"], utterances=utterances, skipped=skipped)


def write_manifest(out: Path, manifest: dict):
    manifest = dict(manifest, version=1, sample_rate=SAMPLE_RATE, hop=HOP)
    atomic_write(out / "manifest.json", lambda f: f.write(json.dumps(manifest, indent=1, ensure_ascii=False).encode()))


def read_manifest(root) -> dict:
    path = Path(root) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"no feature cache at {root} (missing manifest.json): run `python -m corpus.data prepare`")
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


def duration_stats(root, manifest: dict) -> dict:
    """Phoneme durations over the whole cache, a check of the alignment that needs no ground truth: for the
    phonemes other than the pause, median / 95th percentile / longest in ms, the share of one frame (a phoneme
    squeezed to the minimum) and of ≥ 500 ms (a phoneme that absorbed its neighbours); the pauses' share of frames.
    A collapsed aligner shows many 1-frame phonemes next to a few of seconds."""
    ms = 1000 * manifest["hop"] / manifest["sample_rate"]
    pause = manifest["phonemes"].index(PAUSE) if PAUSE in manifest["phonemes"] else -1
    d, pause_frames, frames = [], 0, 0
    for u in manifest["utterances"]:
        with np.load(Path(root) / "feats" / f"{u['id']}.npz") as z:
            ids, dur = z["phonemes"].astype(np.int64), z["durations"].astype(np.int64)
        d.append(dur[ids != pause])
        pause_frames, frames = pause_frames + int(dur[ids == pause].sum()), frames + int(dur.sum())
    d = np.concatenate(d) * ms if d else np.zeros(1)
    return dict(median_ms=float(np.median(d)), p95_ms=float(np.percentile(d, 95)), max_ms=float(d.max()),
                one_frame=float(np.mean(d <= ms)), over_500ms=float(np.mean(d >= 500)),
                pause_share=pause_frames / max(frames, 1))


def stats(manifest: dict, root=None) -> dict:
    """Hours, speakers and utterances per split, phoneme inventory; with `root` (the cache folder), how often each
    phoneme occurs in the training split, the duration check (`duration_stats`) and, for the toy corpus, which
    front-end phonemes the inventory lacks."""
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
                durations=duration_stats(root, manifest) if root is not None and per else None,
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
    if st.get("durations"):
        d = st["durations"]
        lines.append(f"  phoneme durations (pauses aside): median {d['median_ms']:.0f} ms, 95% ≤ {d['p95_ms']:.0f} ms, "
                     f"longest {d['max_ms']:.0f} ms; {d['one_frame']:.0%} one frame, {d['over_500ms']:.1%} ≥ 500 ms; "
                     f"pauses {d['pause_share']:.0%} of frames")
    if st.get("front_end_missing") is not None:
        missing = st["front_end_missing"]
        lines.append(f"  eSpeak en-us phonemes of English words (corpus/toy_words.json) missing from the inventory: "
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
    import torch
    from tqdm import tqdm
    import codec as codec_lib
    root, ckpt = Path(root), Path(ckpt)
    model = codec_lib.load_codec(ckpt, device)
    if model.cfg.hop != HOP or model.cfg.sample_rate != SAMPLE_RATE:
        raise ValueError(f"{ckpt}: codec hop/rate {model.cfg.hop}/{model.cfg.sample_rate} != cache {HOP}/{SAMPLE_RATE}")
    sha = file_hash(ckpt)
    manifest = read_manifest(root)
    for u in tqdm(manifest["utterances"], desc="encode", unit="utt"):
        path = root / "feats" / f"{u['id']}.npz"
        f = load_features(path)
        if "codes" in f and str(f["codec_sha"]) == sha:
            continue
        wav = load_audio(audio_path(root, u, manifest.get("roots")))[: u["n_frames"] * HOP]   # cropped as in prepare
        with torch.no_grad():
            _, ids = model.encode(torch.from_numpy(wav)[None].to(device))  # (1, R, T)
        if ids.shape[-1] != u["n_frames"]:
            raise ValueError(f"{u['id']}: codec gave {ids.shape[-1]} frames, the cache has {u['n_frames']}")
        save_features(path, dict(f, codes=ids[0].cpu().numpy().astype(np.int16), codec_sha=np.str_(sha)))
    cfg = model.cfg
    manifest["codec"] = dict(checkpoint=str(ckpt), sha256=sha, n_q=cfg.n_q, codebook_size=cfg.codebook_size, dim=cfg.dim)
    write_manifest(root, manifest)
    return manifest["codec"]


# ---- Serving the cache to training ----------------------------------------------------------------------------
class FeatureDataset:
    """A torch-style Dataset over one split of a feature cache. Items are dicts of tensors:
    phonemes (N,) long, durations (N,) long, lf0 (T,) float, voiced (T,) bool, speaker () long, and codes (R, T)
    long once `corpus/data.py encode` has added codec IDs (with_codes=True requires them). Utterances shorter than
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
                raise KeyError(f"{u['id']} has no codec IDs: run `python -m corpus.data encode --codec CKPT` first")
            item["codes"] = torch.from_numpy(f["codes"].astype(np.int64))
        return item


class WaveSegments:
    """Random fixed-length audio crops of one split, for codec training; a torch Dataset indexed by step (`loader`).
    `batch(step)` is a pure function of (seed, step, rank): a resumed run, or a worker in any order, sees exactly the
    batches an uninterrupted one would, with no sampler state to save. Audio is held in memory as int16 when the
    split is small (the toy corpus: ~110 MB), otherwise only each crop's span is read on demand (features.read_span)."""

    def __init__(self, root, split: str = "train", segment: int = 16000, batch_size: int = 8, seed: int = 0,
                 in_memory_limit_hours: float = 4.0, rank: int = 0, world: int = 1):
        self.root, self.segment, self.batch_size, self.seed, self.rank, self.world = \
            Path(root), segment, batch_size, seed, rank, world
        manifest = read_manifest(root)
        self.roots, self.utts = manifest.get("roots", {}), [u for u in manifest["utterances"] if u["split"] == split]
        if not self.utts:
            raise ValueError(f"split {split!r} of {root} is empty")
        hours = sum(u["n_frames"] for u in self.utts) * HOP / SAMPLE_RATE / 3600
        self.cache = [(np.clip(load_audio(audio_path(root, u, self.roots)), -1, 1) * 32767).astype(np.int16)
                      for u in self.utts] if hours <= in_memory_limit_hours else None

    def batch(self, step: int):
        """(batch_size, segment) float32 tensor; clips shorter than a segment are zero-padded at the end. With
        several ranks, a global batch of batch_size × world crops is drawn and this rank takes its slice."""
        import torch
        rng = np.random.default_rng([self.seed, step])
        out = np.zeros((self.batch_size, self.segment), np.float32)
        mine = range(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        for k, i in enumerate(rng.integers(len(self.utts), size=self.batch_size * self.world)):
            n = self.utts[i]["n_frames"] * HOP if self.cache is None else len(self.cache[i])
            start = int(rng.integers(max(1, n - self.segment + 1)))
            if k in mine:
                piece = self.cache[i][start:start + self.segment] / 32767.0 if self.cache is not None else \
                    read_span(audio_path(self.root, self.utts[i], self.roots), start, self.segment)
                out[k - mine.start, :len(piece)] = piece
        return torch.from_numpy(out)

    __getitem__ = batch                                     # the batch of a step (a DataLoader needs no length)


class StepBatches:
    """Training batch number `step` of one rank, as a pure function of (seed, rank, step): a resumed run, or a
    DataLoader worker in any order, builds exactly the batch an uninterrupted run would, with no sampler state.

    - `frames_per_batch` = 0: `batch_size` utterances drawn uniformly at random; with `world` ranks, rank r takes
      the r-th slice of a global draw of batch_size × world (so N ranks of batch B see what one rank of N·B does).
    - `frames_per_batch` > 0 (the paper batches by frames: 6K per GPU): length-bucketed batches of at most that many
      padded frames. A random anchor in the length-sorted order opens a window of `window` utterances of similar
      length; they are taken in random order while (count + 1) × longest ≤ frames_per_batch (at least one), so
      long utterances come few to a batch and short ones many, with little padding. Each rank draws its own.
    A torch Dataset indexed by step (use `loader`)."""

    def __init__(self, ds: "FeatureDataset", batch_size: int = 16, frames_per_batch: int = 0, seed: int = 0,
                 rank: int = 0, world: int = 1, window: int = 64):
        self.ds, self.batch_size, self.frames_per_batch = ds, batch_size, frames_per_batch
        self.seed, self.rank, self.world, self.window = seed, rank, world, window
        self.lengths = np.array([u["n_frames"] for u in ds.utts])
        self.by_length = np.argsort(self.lengths, kind="stable")

    def indices(self, step: int) -> list[int]:
        if self.frames_per_batch <= 0:                  # this rank's slice of a global batch of batch_size × world
            rng = np.random.default_rng([self.seed, step])
            return rng.integers(len(self.ds), size=self.batch_size * self.world)[
                self.rank * self.batch_size:(self.rank + 1) * self.batch_size].tolist()
        rng = np.random.default_rng([self.seed, step, self.rank])
        start = min(int(rng.integers(len(self.ds))), max(0, len(self.ds) - self.window))
        picked, longest = [], 0
        for i in rng.permutation(self.by_length[start:start + self.window]):
            longest_if = max(longest, int(self.lengths[i]))
            if picked and (len(picked) + 1) * longest_if > self.frames_per_batch:
                break
            picked.append(int(i))
            longest = longest_if
        return picked

    def __len__(self):
        return 2 ** 62

    def __getitem__(self, step: int) -> dict:
        return collate([self.ds[i] for i in self.indices(step)])


def loader(batches, start: int, stop: int, workers: int = 0, pin_memory: bool = False):
    """The batches of steps start..stop-1 of a step-indexed dataset (`StepBatches`, `WaveSegments`), in order, from a
    torch DataLoader: with `workers` > 0 they are read (and collated) in that many worker processes, 4 batches ahead
    each, while the model trains."""
    import torch
    # its own generator: a DataLoader draws a worker seed from the global RNG when iterated, which would shift
    # the training's random stream at every resume
    return torch.utils.data.DataLoader(batches, batch_size=None, sampler=range(start, stop), num_workers=workers,
                                       prefetch_factor=4 if workers else None, pin_memory=pin_memory,
                                       persistent_workers=False, generator=torch.Generator().manual_seed(0))


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


# ---- Command line ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m corpus.data",
                                 description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="build a feature cache (resumable: re-run to continue)")
    p.add_argument("--corpus", choices=["toy", "libritts"], default="toy")
    p.add_argument("--out", type=Path, help="cache folder (default data/<corpus>)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="toy: corpus seed (voices, sentences, eSpeak)")
    p.add_argument("--utts-per-voice", type=int, default=16, help="toy: training utterances per training voice "
                   "(default 16, about 50 min in all; 160 makes about 8 h)")
    p.add_argument("--heldout-utts", type=int, default=8, help="toy: test utterances per held-out voice")
    p.add_argument("--drawn-voices", type=int, default=0, help="toy: this many more training voices with new "
                   "timbres drawn from the stock variants (corpus/timbres.py), --utts-per-voice each")
    p.add_argument("--small-voices", type=int, default=0, help="toy: and this many of small timbres (shorter vocal "
                   "tracts, higher pitch: children's voices), after the drawn ones")
    p.add_argument("--splits", help="toy: render only these comma-separated splits (train, valid, test, confirm); "
                   "make demo needs valid,test")
    libritts.add_arguments(p)
    e = sub.add_parser("encode", help="add codec token IDs to a feature cache (resumable)")
    e.add_argument("--codec", type=Path, required=True, help="codec checkpoint (train.py codec / export)")
    e.add_argument("--data", type=Path, default=Path("data/toy"))
    e.add_argument("--device", default="cpu")
    s = sub.add_parser("stats", help="print corpus statistics of a feature cache")
    s.add_argument("--data", type=Path, default=Path("data/toy"))
    r = sub.add_parser("relocate", help="read a cache's audio from where its corpus folders are now")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--root", action="append", required=True, metavar="NAME=FOLDER",
                   help="a root of the cache (manifest.json 'roots') and its folder now; repeatable")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.cmd == "prepare":
            out = args.out or Path("data") / args.corpus
            if args.corpus == "toy":
                if args.utts_per_voice < 1 or args.heldout_utts < 1 or min(args.drawn_voices, args.small_voices) < 0:
                    raise ValueError("--utts-per-voice and --heldout-utts must be at least 1, --drawn-voices and "
                                     "--small-voices at least 0")
                splits = [x.strip() for x in args.splits.split(",") if x.strip()] if args.splits else None
                manifest = prepare_toy(out, args.seed, args.utts_per_voice, args.heldout_utts, args.jobs, splits,
                                       args.drawn_voices, args.small_voices)
            else:
                manifest = libritts.prepare_from_args(args, out)
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
        elif args.cmd == "relocate":
            write_manifest(args.data, layouts.relocate(read_manifest(args.data), args.root))
            print(f"{args.data}: audio read from {', '.join(args.root)}")
    except (AudioError, TextError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
