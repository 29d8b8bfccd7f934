"""Real-speech reader (paper §4.1): LibriTTS or LibriSpeech folders -> the same feature cache as the toy corpus.

LibriTTS (585 h, 24 kHz, 2,456 speakers) and LibriSpeech (960 h, 16 kHz FLAC, upper-case unpunctuated transcripts)
are read from their official layouts, as the user downloads them (`corpus/layouts.py` finds the utterances; the
layout of each root is told by its transcript files, or given with --layout); several roots make one cache:

    <root>/<subset>/<speaker>/<chapter>/<speaker>_<chapter>_<paragraph>_<sentence>.wav  + ... .normalized.txt
    <root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac  + <speaker>-<chapter>.trans.txt

Phonemes come from g2p_en (`text.g2p_phonemes`: stress-marked ARPAbet, punctuation and the sentence's ends as pauses,
and an optional pause between words: the aligner keeps it as a pause where the speaker paused for ≥ 50 ms; g2p_en
lower-cases the text first, so LibriSpeech's upper case reads as sentence case, and its unpunctuated sentences get
their pauses from the optional ones). Durations come from the built-in aligner (`align.py`), fitted on the corpus
being prepared or given already fitted (--aligner-ckpt: the aligner.pt of another cache, so that a test subset can
be prepared alone); or, with `--textgrids DIR`, from Montreal Forced Aligner TextGrids with an ARPAbet `phones`
tier (one `<audio file name>.TextGrid` per utterance anywhere under DIR; silences `""`, `sil`, `sp` become the
pause; an utterance with `spn`, a word MFA could not align, is skipped). Pitch is PyWorld's, as for every corpus.

    python -m corpus.data prepare --corpus libritts --root LibriTTS --out data/libritts              # built-in aligner
    python -m corpus.data prepare --corpus libritts --root LibriTTS --textgrids MFA_OUT              # MFA durations
    python -m corpus.data prepare --corpus libritts --root LibriSpeech --subsets train-clean-5 \
        --root LibriTTS --subsets train-clean-100 --out data/both                   # two corpora, one cache
    python -m corpus.data prepare --corpus libritts --root LibriTTS --subsets test-clean \
        --aligner-ckpt data/libritts/aligner.pt --out data/libritts_test            # a test subset alone
    python -m corpus.data prepare --corpus libritts --root LibriSpeech --subsets train-clean-5 \
        --test-speakers mini-librispeech --out data/minils                          # 4 readers held out as test

Three resumable stages, each with a progress bar: (1) scan: read every utterance once, check it, phonemize it
(out/scan.jsonl, appended as it goes); (2) fit the aligner on the training split (out/aligner.pt; skipped when it
exists; a fitted one given is copied there); (3) features: durations, pitch, feats/<id>.npz (skipped when it exists).
A bad entry (unreadable, empty, silent, clipped or non-finite audio; a missing or empty transcript; nothing
pronounceable; fewer frames than phonemes; no voiced frame) is skipped, counted and listed with its reason in the
manifest, never a crash.

Splits: `train-*` subsets -> train, `dev-*` -> valid, `test-*` -> test; the test speakers are disjoint from the
training speakers in LibriTTS and LibriSpeech, so they are the held-out (zero-shot) speakers. `--test-speakers`
holds named speakers out as well, whatever their subset (a corpus without a test subset, such as Mini LibriSpeech:
`--test-speakers mini-librispeech`): their utterances go to the test split and the aligner is fitted without them
(out/test_speakers.json records them; a cache whose aligner was fitted with others held out refuses new ones).
Audio is resampled to 16 kHz and cropped to a whole number of 12.5 ms frames (at most 199 samples dropped from the
end); no silence is trimmed. The manifest keeps each file's path under its root (`NAME:path`, with `roots`: {NAME:
folder}), so that a moved download is found again with `python -m corpus.data relocate --root NAME=FOLDER`.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np

from corpus import features, layouts
from corpus.features import HOP, PAUSE, SAMPLE_RATE
from corpus.text import PHONEMES, PhonemeSet, g2p_phonemes

FRONT_END = "g2p_en-arpabet"
SILENCES = {"", "sil", "sp"}


def inventory() -> PhonemeSet:
    """The fixed LibriTTS inventory: the pause token + the 69 stress-marked ARPAbet phonemes."""
    return PhonemeSet([PAUSE] + PHONEMES)


# ---------------------------------------------------------------------------------------------------------------
# Montreal Forced Aligner TextGrids (optional)
# ---------------------------------------------------------------------------------------------------------------
def read_textgrid_phones(path: Path) -> list[tuple[float, float, str]]:
    """(start s, end s, label) of every interval of the `phones` tier of a long-format (ooTextFile) TextGrid."""
    txt = Path(path).read_text(encoding="utf-8", errors="replace")
    tiers = re.split(r"\bitem \[\d+\]:", txt)[1:]
    for tier in tiers:
        if re.search(r'name = "phones"', tier):
            found = re.findall(r'xmin = ([\d.eE+-]+)\s*xmax = ([\d.eE+-]+)\s*text = "((?:[^"]|"")*)"', tier)
            return [(float(a), float(b), t.replace('""', '"').strip()) for a, b, t in found]
    raise ValueError(f"{path}: no 'phones' tier in long TextGrid format (expected Montreal Forced Aligner output)")


def phones_to_frames(intervals, n_frames: int, hop: int = HOP):
    """TextGrid intervals -> (phonemes, durations in frames summing exactly to n_frames). Silences -> pause."""
    from corpus import toy
    phonemes, starts = [], []
    for start, _, label in intervals:
        label = PAUSE if label.lower() in SILENCES else label.upper()
        if label == "SPN":
            raise ValueError("alignment contains 'spn' (unaligned out-of-vocabulary word)")
        if phonemes and label == PAUSE and phonemes[-1] == PAUSE:
            continue
        phonemes.append(label)
        starts.append(start * SAMPLE_RATE)
    return phonemes, toy.frame_durations(starts, SAMPLE_RATE, n_frames, hop)


# ---------------------------------------------------------------------------------------------------------------
# Stage 1: scan (the utterances are found by corpus/layouts.py)
# ---------------------------------------------------------------------------------------------------------------
def load_cropped(path) -> np.ndarray:
    """16 kHz mono audio cropped to a whole number of frames."""
    wav = features.load_audio(path)
    return wav[: len(wav) // HOP * HOP]


def scan_one(utt: dict) -> dict:
    """Check one utterance and phonemize it: {id, n_frames, phonemes} or {id, reason}."""
    try:
        T = len(load_cropped(utt["wav"])) // HOP
        phonemes = g2p_phonemes(utt["text"], word_pauses=True)
        if T < len(phonemes):
            raise ValueError(f"too short for its text: {T} frames for {len(phonemes)} phonemes")
        return dict(id=utt["id"], n_frames=T, phonemes=phonemes)
    except (ValueError, OSError) as e:        # AudioError and TextError are ValueErrors
        return dict(id=utt["id"], reason=str(e))


def scan(utts: list[dict], out: Path, jobs=None) -> dict:
    """{id: scan_one result} for every utterance, appended to out/scan.jsonl as results come (resumable)."""
    path = Path(out) / "scan.jsonl"
    done = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
                done[r["id"]] = r
            except (json.JSONDecodeError, KeyError):
                continue                                      # a line cut short by an interruption
    todo = [u for u in utts if u["id"] not in done]
    if todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            for r in features.imap_pool(scan_one, todo, jobs, desc="scan"):
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
                f.flush()
                done[r["id"]] = r
    return done


# ---------------------------------------------------------------------------------------------------------------
# Stages 2 and 3: the aligner and the features
# ---------------------------------------------------------------------------------------------------------------
def _mel_item(args):
    import align
    utt, ids, cfg = args
    return ids, align.mel_frames(load_cropped(utt["wav"]), cfg).half()


def _anchor_item(args):
    import align
    from corpus import toy
    utt, voice, cfg = args
    wav, _, _ = toy.render(utt["text"], toy.Voice(**voice), utt["seed"], HOP)
    ids = inventory().encode(align.aligner_tokens(g2p_phonemes(utt["text"], word_pauses=True)))
    return np.asarray(ids), align.mel_frames(wav, cfg).half()


def anchor_items(n: int, cfg, jobs=None) -> list:
    """`n` synthetic utterances for the aligner's training set: toy-corpus sentences in its training voices, rendered
    by eSpeak and read by this corpus's front end (g2p_en), as [(phoneme IDs, mel_frames)].

    Why: on a small real corpus (416 utterances of accented, slow read speech with long pauses) the aligner alone
    collapses: a few phonemes take seconds each, every other one a single frame (docs/libritts.md). eSpeak's voices
    say every phoneme the same way each time; mixed in, they anchor each phoneme's key to its sound, and the real
    utterances then adapt the mel encoder to real voices. Beyond the paper and RAD-TTS (a single-speaker corpus
    of 24 h needs no anchor); for LibriTTS it costs a minute and can be switched off (`anchor_utts=0`)."""
    from corpus import toy
    if n <= 0:
        return []
    plan = toy.plan(cfg.seed, utts_per_voice=-(-n // len(toy.TRAIN_VARIANTS)))
    train = [u for u in plan["utterances"] if u["split"] == "train"]
    pick = sorted(set(np.linspace(0, len(train) - 1, n).round().astype(int).tolist()))
    items = features.run_pool(_anchor_item, [(train[i], plan["voices"][train[i]["speaker"]], cfg) for i in pick],
                              jobs, desc="aligner anchors (eSpeak)")
    return [(ids, mel) for ids, mel in items if mel.shape[1] >= len(ids)]


def fit_aligner(utts: list[dict], scanned: dict, out: Path, cfg, jobs=None, max_utts: int = 5000,
                device: str = "cpu"):
    """Fit the built-in aligner of config `cfg` (align.AlignerConfig) on (up to `max_utts` of) the training
    utterances and `anchor_items`; out/aligner.pt."""
    import align
    import torch
    pset = inventory()
    train = [u for u in utts if u["split"] == "train" and "phonemes" in scanned[u["id"]]]
    if not train:
        raise ValueError("no usable training utterance to fit the aligner on: add a train-* subset, or give an "
                         "already fitted aligner with --aligner-ckpt")
    pick = np.random.default_rng(cfg.seed).permutation(len(train))[:max_utts]
    todo = [(train[i], np.asarray(pset.encode(align.aligner_tokens(scanned[train[i]["id"]]["phonemes"]))), cfg)
            for i in sorted(pick)]
    items = features.run_pool(_mel_item, todo, jobs, desc="aligner mels")          # mels kept in float16
    items += anchor_items(cfg.anchor_utts, cfg, jobs)
    torch.set_num_threads(max(1, jobs or torch.get_num_threads()))
    net = align.fit(items, pset.to_list(), cfg, device=device)
    align.save(net, Path(out) / "aligner.pt", pset.to_list(), FRONT_END)
    return net


def use_fitted_aligner(path: Path, out: Path) -> None:
    """Check that `path` is an aligner checkpoint for this corpus's front end and inventory (as `fit_aligner` saves
    one), and copy it to out/aligner.pt, the aligner the cache's durations come from. ValueError, in one line, for a
    missing or unreadable file, another front end or inventory, or a cache that already holds another aligner."""
    import align
    path, ckpt = Path(path), Path(out) / "aligner.pt"
    if not path.is_file():
        raise ValueError(f"--aligner-ckpt {path}: no such file")
    try:
        net, phonemes = align.load(path)
    except Exception as e:                       # torch raises several types for a file that is not a checkpoint
        raise ValueError(f"--aligner-ckpt {path}: not an aligner checkpoint ({type(e).__name__})") from None
    if phonemes != inventory().to_list() or net.front_end not in ("", FRONT_END):
        raise ValueError(f"--aligner-ckpt {path}: fitted on another front end ({net.front_end or 'unnamed'}, "
                         f"{len(phonemes)} symbols); this corpus needs {FRONT_END} ({len(inventory())} symbols)")
    if ckpt.exists() and features.file_hash(ckpt) != features.file_hash(path):
        raise ValueError(f"{ckpt} exists and is another aligner (the cache's durations come from it): "
                         f"prepare into a new --out")
    if not ckpt.exists():
        features.atomic_write(ckpt, lambda f: f.write(path.read_bytes()))


_ALIGNER = {}


def features_one(args) -> tuple[str, int | None, str | None]:
    """One utterance -> feats/<id>.npz: (id, n_frames, None), or (id, None, reason) when it is skipped."""
    utt, phonemes, durations_from, out = args
    try:
        wav = load_cropped(utt["wav"])
        T = len(wav) // HOP
        if isinstance(durations_from, Path) and durations_from.suffix == ".TextGrid":
            phonemes, durations = phones_to_frames(read_textgrid_phones(durations_from), T)
            ids = np.asarray(inventory().encode(phonemes))
        else:
            import align
            import torch
            torch.set_num_threads(1)
            if durations_from not in _ALIGNER:
                _ALIGNER[durations_from] = align.load(durations_from)[0]
            net = _ALIGNER[durations_from]
            ids = np.asarray(inventory().encode(align.aligner_tokens(phonemes)))
            (native,) = align.durations(net, [(ids, align.mel_frames(wav, net.cfg))])
            phonemes, durations = align.drop_short_pauses(phonemes, align.to_codec_frames(native, T, net.cfg.hop))
            ids = np.asarray(inventory().encode(phonemes))
        features.save_features(Path(out) / "feats" / f"{utt['id']}.npz",
                               features.features(wav, ids, durations, utt["speaker"], utt["text"]))
        return utt["id"], T, None
    except (ValueError, OSError) as e:
        return utt["id"], None, str(e)


def hold_out_valid(utts: list[dict], speakers: int = 32):
    """Without a dev-* subset: the last utterance of each of (up to) `speakers` training speakers that have at least
    two becomes the valid split (seen voices, unseen sentences), so that training can validate."""
    by_speaker = {}
    for u in utts:
        if u["split"] == "train":
            by_speaker.setdefault(u["speaker"], []).append(u)
    chosen = [us[-1] for us in by_speaker.values() if len(us) >= 2][:speakers]
    for u in chosen:
        u["split"] = "valid"
    if chosen:
        print(f"libritts: no dev-* subset given: {len(chosen)} training utterances (one per speaker) are the valid split")


def _aligner_source(utts: list[dict], out: Path, jobs, aligner, device: str) -> tuple[list, dict, list, dict]:
    """Stages 1 and 2 with the built-in aligner: scan the transcripts, then fit out/aligner.pt unless it exists
    (`aligner`: an AlignerConfig, default the `libritts` preset's), or take an already fitted one (`aligner`: its
    path, `use_fitted_aligner`). Returns (the usable utterances, {id: (phonemes, aligner checkpoint)}, the skipped
    ones, {stage: seconds})."""
    if isinstance(aligner, (str, Path)):
        use_fitted_aligner(aligner, out)
    t_scan = time.time()
    scanned = scan(utts, out, jobs)
    t_scan = time.time() - t_scan
    skipped = [dict(id=u["id"], reason=scanned[u["id"]]["reason"]) for u in utts if "reason" in scanned[u["id"]]]
    utts = [u for u in utts if "phonemes" in scanned[u["id"]]]
    ckpt = out / "aligner.pt"
    t_fit = time.time()
    if not ckpt.exists():
        if aligner is None:
            from training.presets import preset
            aligner = preset("libritts").aligner
        fit_aligner(utts, scanned, out, aligner, jobs, device=device)
    t_fit = time.time() - t_fit
    source = {u["id"]: (scanned[u["id"]]["phonemes"], ckpt) for u in utts}
    return utts, source, skipped, dict(scan=t_scan, fit=t_fit)


def _report(kept: list[dict], skipped: list[dict], minutes: float, seconds: dict) -> None:
    """Print what prepare kept and skipped, and (with the built-in aligner) how long each stage took."""
    hours = sum(u["n_frames"] for u in kept) * HOP / SAMPLE_RATE / 3600
    print(f"libritts: {len(kept)} utterances ({hours:.2f} h) kept, {len(skipped)} skipped, in {minutes:.1f} min")
    if "scan" in seconds:
        rate = lambda sec: f"{hours / (sec / 60):.2f} h of audio per minute" if sec > 1 else "already done"
        print(f"  scan {seconds['scan']:.0f} s ({rate(seconds['scan'])}), aligner fit {seconds['fit'] / 60:.1f} min, "
              f"features {seconds['features']:.0f} s ({rate(seconds['features'])})")
    for s in skipped[:10]:
        print(f"  skipped {s['id']}: {s['reason']}")
    if len(skipped) > 10:
        print(f"  ... and {len(skipped) - 10} more (manifest.json 'skipped')")


def _textgrid_source(utts: list[dict], textgrids: Path) -> tuple[list, dict, list]:
    """(the utterances with a TextGrid, {id: (None, its TextGrid)}, the others as skipped): a TextGrid is found by
    the name of its utterance's audio file (as MFA names it), anywhere under the folder `textgrids`."""
    grids = {p.stem: p for p in Path(textgrids).rglob("*.TextGrid")}
    skipped = [dict(id=u["id"], reason="no TextGrid") for u in utts if Path(u["wav"]).stem not in grids]
    utts = [u for u in utts if Path(u["wav"]).stem in grids]
    return utts, {u["id"]: (None, grids[Path(u["wav"]).stem]) for u in utts}, skipped


def record_test_speakers(out: Path, held: list[str]) -> None:
    """out/test_speakers.json: the speakers held out of the aligner fitted in this cache. ValueError when the
    cache's aligner was fitted with other speakers held out (or before this record existed, with some named now):
    its durations would come from an aligner that heard the test speakers."""
    path = Path(out) / "test_speakers.json"
    before = json.loads(path.read_text()) if path.exists() else None
    if before is None and held and (Path(out) / "aligner.pt").exists():
        raise ValueError(f"{out}/aligner.pt was fitted before --test-speakers were named (on their speech too): "
                         f"prepare into a new --out")
    if before is not None and before != held:
        raise ValueError(f"{out} holds out --test-speakers {','.join(before) or '(none)'} from its aligner, not "
                         f"{','.join(held) or '(none)'}: prepare into a new --out")
    if before is None:
        features.atomic_write(path, lambda f: f.write(json.dumps(held).encode()))


def prepare(root, out: Path, subsets: list, aligner=None, jobs=None, device: str = "cpu", layout: str = "auto",
            test_speakers: list | tuple = ()) -> dict:
    """The whole reader (see the module docstring); returns the manifest (written by corpus/data.py).

    `root`: a corpus folder, or a list of them (`layouts.find_utterances`: ids and speakers then carry each root's
    tag); `subsets`: the subset names read under every root, or one list of names per root; `layout`: 'auto' (per
    root), 'libritts' or 'librispeech'. `aligner`, where the durations come from: the AlignerConfig of the built-in
    aligner to fit (default: the `libritts` preset's), the path of one already fitted (`use_fitted_aligner`), or a
    folder of Montreal Forced Aligner TextGrids (`_textgrid_source`); `device`: where the aligner is fitted (its
    durations are computed on the CPU, in the feature workers). `test_speakers`: speakers held out as the test
    split, out of the aligner's fit and of training (`layouts.hold_out_speakers`; `record_test_speakers`)."""
    if not root:
        raise ValueError("--corpus libritts needs --root (the LibriTTS or LibriSpeech folder)")
    roots = list(root) if isinstance(root, (list, tuple)) else [root]
    per_root = subsets if subsets and isinstance(subsets[0], (list, tuple)) else [subsets] * len(roots)
    if len(per_root) != len(roots):
        raise ValueError(f"{len(per_root)} lists of subsets for {len(roots)} roots: give one, or one per root")
    out, t0 = Path(out), time.time()
    utts, skipped, sources = layouts.find_utterances(roots, per_root, layout)
    held = layouts.hold_out_speakers(utts, list(test_speakers))
    textgrids = isinstance(aligner, (str, Path)) and Path(aligner).is_dir()
    if aligner is None or not isinstance(aligner, (str, Path)):
        record_test_speakers(out, held)
    seconds = {}                                      # stage -> seconds, reported with the built-in aligner
    if textgrids:
        utts, source, unusable = _textgrid_source(utts, aligner)
    else:
        utts, source, unusable, seconds = _aligner_source(utts, out, jobs, aligner, device)
    skipped += unusable
    todo = [(u, *source[u["id"]], out) for u in utts if not (out / "feats" / f"{u['id']}.npz").exists()]
    t_feat = time.time()
    results = features.run_pool(features_one, todo, jobs, desc="features")
    seconds["features"] = time.time() - t_feat
    skipped += [dict(id=i, reason=r) for i, _, r in results if r is not None]
    bad = {s["id"] for s in skipped}
    kept = [u for u in utts if u["id"] not in bad]
    for u in kept:
        u["n_frames"] = int(features.load_features(out / "feats" / f"{u['id']}.npz")["lf0"].shape[0])
    if not kept:
        raise ValueError(f"every utterance was skipped; first reasons: {[s['reason'] for s in skipped[:3]]}")
    if not any(u["split"] == "valid" for u in kept):
        hold_out_valid(kept)
    _report(kept, skipped, (time.time() - t0) / 60, seconds)
    speakers = {"train": sorted({u["speaker"] for u in kept if u["split"] != "test"}),
                "heldout": sorted({u["speaker"] for u in kept if u["split"] == "test"})}
    roots = layouts.relative_audio(kept, sources)           # wav: NAME:path under the root (relocatable)
    return dict(corpus="libritts", front_end=FRONT_END, phonemes=inventory().to_list(), speakers=speakers,
                utterances=kept, skipped=skipped, sources=sources, roots=roots,
                aligner="textgrids" if textgrids else str(out / "aligner.pt"), test_speakers=held)


# ---------------------------------------------------------------------------------------------------------------
# Command line (`python -m corpus.data prepare --corpus libritts ...`)
# ---------------------------------------------------------------------------------------------------------------
def add_arguments(p) -> None:
    """The options of `prepare --corpus libritts` on the argparse parser `p`."""
    p.add_argument("--root", type=Path, action="append", help="libritts: a corpus folder in the LibriTTS or the "
                   "LibriSpeech layout (holding train-clean-100, ...); repeat it to combine several corpora in one "
                   "cache (ids and speakers then carry the folder's name: LibriSpeech.19-198-0000)")
    p.add_argument("--subsets", action="append", help="libritts: comma-separated subsets (default "
                   "train-clean-100,dev-clean,test-clean); one --subsets for every --root, or one per --root in "
                   "the same order. train-* is the train split, dev-* valid, test-* test (held-out speakers)")
    p.add_argument("--layout", choices=("auto",) + layouts.LAYOUTS, default="auto", help="libritts: the folder "
                   "layout; auto (default) tells each root's by its transcripts: *.trans.txt is LibriSpeech, "
                   "*.normalized.txt or *.trans.tsv LibriTTS. Audio: any format soundfile reads (FLAC, WAV, Opus)")
    p.add_argument("--textgrids", type=Path, help="libritts: Montreal Forced Aligner output (phone durations); "
                   "default: the built-in aligner, fitted on the corpus (align.py)")
    p.add_argument("--aligner-ckpt", type=Path, help="libritts: an already fitted aligner (e.g. the aligner.pt "
                   "of another prepared cache) instead of fitting one; then a test-* subset alone can be prepared")
    p.add_argument("--test-speakers", default="", help="libritts: comma-separated speakers held out as the test "
                   "split, out of the aligner's fit and of training (ids as in the cache, or within their corpus "
                   f"where unambiguous); {', '.join(layouts.TEST_SPEAKER_SETS)} names Mini LibriSpeech's four "
                   f"({','.join(layouts.TEST_SPEAKER_SETS['mini-librispeech'])})")
    p.add_argument("--device", default=None, help="libritts: where the aligner is fitted (default: cuda when there "
                                                    "is a GPU, else cpu)")
    p.add_argument("--aligner", action="append", default=[], metavar="KEY=VALUE",
                   help="libritts: an aligner setting, e.g. --aligner steps=500 (repeatable; align.py AlignerConfig)")


def prepare_from_args(args, out: Path) -> dict:
    """`prepare` with the options of `add_arguments`; ValueError for a combination that cannot work."""
    from training.presets import parse_overrides, preset
    given = args.subsets or ["train-clean-100,dev-clean,test-clean"]
    subsets = [[x.strip() for x in s.split(",") if x.strip()] for s in given]
    if args.root and len(subsets) not in (1, len(args.root)):
        raise ValueError(f"{len(subsets)} --subsets for {len(args.root)} --root: give one, or one per --root")
    if args.aligner_ckpt is not None and (args.aligner or args.textgrids is not None):
        raise ValueError("--aligner-ckpt is a fitted aligner: it goes with neither --aligner settings nor "
                         "--textgrids")
    if args.textgrids is not None and not args.textgrids.is_dir():
        raise ValueError(f"--textgrids {args.textgrids} is not a folder")
    if args.aligner_ckpt is not None or args.textgrids is not None:
        aligner = args.aligner_ckpt or args.textgrids
    else:
        (aligner,) = parse_overrides([f"--{kv}" for kv in args.aligner], preset("libritts").aligner)
    device = args.device or ("cuda" if __import__("torch").cuda.is_available() else "cpu")
    return prepare(args.root, out, subsets if len(subsets) > 1 else subsets[0], aligner, args.jobs, device,
                   args.layout, layouts.test_speaker_names(args.test_speakers))
