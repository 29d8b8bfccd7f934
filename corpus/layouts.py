"""Where the utterances of a real-speech corpus are (paper §4.1): the LibriTTS and LibriSpeech layouts, several roots
in one feature cache, and the cache's audio paths relative to named roots (`relative_audio`, `relocate`).

Two layouts are read as they come from their downloads:

    LibriTTS     <root>/<subset>/<speaker>/<chapter>/<speaker>_<chapter>_<paragraph>_<sentence>.wav
                                                     ... .normalized.txt          (the text, one file per utterance)
    LibriSpeech  <root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac
                                                     <speaker>-<chapter>.trans.txt  (lines `ID TEXT`, upper case,
                                                                                      no punctuation)

The audio may be in any format soundfile reads (`AUDIO_SUFFIXES`: FLAC, WAV, Ogg Opus or Vorbis, MP3, AIFF); where
one utterance has several files, the first in that order is read. The layout of a root is detected from its
transcript files (`detect_layout`: `*.trans.txt` -> LibriSpeech, `*.normalized.txt` or `*.trans.tsv` -> LibriTTS)
or given. Subsets: `train-*` -> the train split, `dev-*` -> valid, any other (`test-*`) -> test; named speakers can
be held out as the test split whatever their subset (`hold_out_speakers`), for a corpus without a test subset: Mini
LibriSpeech's four are `TEST_SPEAKER_SETS["mini-librispeech"]`.

Several roots (`find_utterances` with more than one): every utterance id and speaker id is prefixed with its root's
tag, the root folder's name (`LibriSpeech.19-198-0000`, speaker `LibriSpeech.19`), so that ids stay unique and two
corpora's speaker numbers never name one voice; with one root, ids and speakers are the corpus's own. An entry that
cannot be used (audio without a transcript, a transcript line without audio, an empty transcript, the same id in two
folders) is returned among the skipped entries with its reason.
"""
from __future__ import annotations

import re
from pathlib import Path

AUDIO_SUFFIXES = (".flac", ".wav", ".opus", ".ogg", ".mp3", ".aiff", ".aif")
LAYOUTS = ("libritts", "librispeech")
# Held-out (zero-shot) speakers of corpora without a test subset, by name (`prepare --test-speakers NAME`). Mini
# LibriSpeech train-clean-5 (28 readers): two women (4640, 7859) and two men (2136, 8629) with 9-14 utterances of
# 4-10 s each, the length of the paper's test utterances (docs/libritts.md).
TEST_SPEAKER_SETS = {"mini-librispeech": ("4640", "7859", "2136", "8629")}


def split_of(subset: str) -> str:
    """The split a subset's utterances go to: train-* -> train, dev-* -> valid, else test."""
    return "train" if subset.startswith("train") else "valid" if subset.startswith("dev") else "test"


def _audio_by_stem(folder: Path) -> dict:
    """{file stem: audio path} of the audio files in one folder (the first of AUDIO_SUFFIXES where several)."""
    found, audio = {}, [p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES]
    for p in sorted(audio, key=lambda p: (AUDIO_SUFFIXES.index(p.suffix.lower()), p.name)):
        found.setdefault(p.stem, p)
    return found


def _utterance(uid: str, speaker: str, split: str, audio: Path, text: str) -> dict:
    return dict(id=uid, speaker=speaker, split=split, wav=str(audio), text=text)


def _chapters(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*/*") if p.is_dir())


def libritts_subset(folder: Path, split: str) -> tuple[list[dict], list[dict]]:
    """(utterances, skipped entries) of one subset folder in the LibriTTS layout: each audio file's text is its
    `.normalized.txt`; one that is missing, unreadable or empty is skipped."""
    utts, skipped = [], []
    for chapter in _chapters(folder):
        for uid, audio in sorted(_audio_by_stem(chapter).items()):
            txt = audio.with_suffix(".normalized.txt")
            try:
                text = txt.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as e:
                skipped.append(dict(id=uid, reason=f"no readable transcript {txt.name} ({type(e).__name__})"))
                continue
            if not text:
                skipped.append(dict(id=uid, reason="empty transcript"))
                continue
            utts.append(_utterance(uid, uid.split("_")[0], split, audio, text))
    return utts, skipped


def _read_trans(path: Path) -> dict:
    """{utterance id: text} of a LibriSpeech `<speaker>-<chapter>.trans.txt` (lines `ID TEXT`)."""
    said = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        uid, _, text = line.strip().partition(" ")
        if uid:
            said[uid] = text.strip()
    return said


def librispeech_subset(folder: Path, split: str) -> tuple[list[dict], list[dict]]:
    """(utterances, skipped entries) of one subset folder in the LibriSpeech layout: texts from each chapter's
    `<speaker>-<chapter>.trans.txt`. Audio without a line, a line without audio, an empty line's text, and every
    file of a chapter whose transcript file is missing or unreadable are skipped."""
    utts, skipped = [], []
    for chapter in _chapters(folder):
        audio = _audio_by_stem(chapter)
        trans = chapter / f"{chapter.parent.name}-{chapter.name}.trans.txt"
        try:
            said = _read_trans(trans)
        except (OSError, UnicodeDecodeError) as e:
            skipped += [dict(id=uid, reason=f"no readable transcript file {trans.name} ({type(e).__name__})")
                        for uid in sorted(audio)]
            continue
        for uid in sorted(set(audio) | set(said)):
            if uid not in audio:
                skipped.append(dict(id=uid, reason=f"no audio file for its line in {trans.name}"))
            elif uid not in said:
                skipped.append(dict(id=uid, reason=f"no line in {trans.name}"))
            elif not said[uid]:
                skipped.append(dict(id=uid, reason="empty transcript"))
            else:
                utts.append(_utterance(uid, uid.split("-")[0], split, audio[uid], said[uid]))
    return utts, skipped


READERS = {"libritts": libritts_subset, "librispeech": librispeech_subset}


def detect_layout(root: Path, subsets: list[str]) -> str:
    """'librispeech' when the subsets hold `*.trans.txt` files, 'libritts' when they hold `*.normalized.txt` or
    `*.trans.tsv` files; ValueError when neither."""
    for pattern, layout in (("*.trans.txt", "librispeech"), ("*.normalized.txt", "libritts"),
                            ("*.trans.tsv", "libritts")):
        if any(next((Path(root) / s).glob(f"*/*/{pattern}"), None) for s in subsets):
            return layout
    raise ValueError(f"cannot tell the layout of {root}: no *.trans.txt (LibriSpeech) nor *.normalized.txt or "
                     f"*.trans.tsv (LibriTTS) under {', '.join(subsets)}; give --layout")


def root_tags(roots: list[Path]) -> list[str]:
    """One tag per root: its folder's name (letters, digits, - and _ kept), numbered from the second use on."""
    tags = []
    for k, root in enumerate(roots):
        name = re.sub(r"[^\w-]", "", Path(root).resolve().name) or f"root{k + 1}"
        tags.append(name if name not in tags else f"{name}{k + 1}")
    return tags


def _tagged(entries: list[dict], tag: str) -> list[dict]:
    for e in entries:
        e["id"] = f"{tag}.{e['id']}"
        if "speaker" in e:
            e["speaker"] = f"{tag}.{e['speaker']}"
    return entries


def find_utterances(roots: list[Path], subsets: list[list[str]], layout: str = "auto") -> tuple[list, list, list]:
    """(utterances with id/speaker/split/wav/text, skipped entries with their reason, one {root, name, tag, layout,
    subsets} per root) of `subsets[k]` under `roots[k]` (wav: the file's absolute path under the root's resolved
    path; name: the root's name in a cache, `root_tags`); `layout`: 'auto' (per root, `detect_layout`), 'libritts'
    or 'librispeech'. A subset that is not there raises FileNotFoundError; an id found in two folders is skipped
    (both)."""
    if layout not in ("auto",) + LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: choose auto, {', '.join(LAYOUTS)}")
    names = root_tags(roots)
    tags = names if len(roots) > 1 else [""]
    utts, skipped, sources = [], [], []
    for root, subs, tag, name in zip(roots, subsets, tags, names):
        root = Path(root).resolve()
        for s in subs:
            if not (root / s).is_dir():
                raise FileNotFoundError(f"subset {s!r} not found at {root / s}")
        kind = detect_layout(root, subs) if layout == "auto" else layout
        sources.append(dict(root=str(root), name=name, tag=tag, layout=kind, subsets=list(subs)))
        for s in subs:
            found, bad = READERS[kind](root / s, split_of(s))
            utts += _tagged(found, tag) if tag else found
            skipped += _tagged(bad, tag) if tag else bad
    files = {}
    for u in utts:
        files.setdefault(u["id"], []).append(u["wav"])
    unique = [u for u in utts if len(files[u["id"]]) == 1]
    skipped += [dict(id=i, reason=f"the same id in two folders ({', '.join(f)})")
                for i, f in files.items() if len(f) > 1]
    if not unique and not skipped:
        raise FileNotFoundError(f"no utterances (audio with transcripts) under {', '.join(map(str, roots))}")
    return unique, skipped, sources


def test_speaker_names(text: str) -> list[str]:
    """`--test-speakers` -> speaker names: comma-separated ids, a name of TEST_SPEAKER_SETS standing for its ids."""
    names = []
    for x in (x.strip() for x in text.split(",")):
        names += [n for n in TEST_SPEAKER_SETS.get(x, [x]) if n and n not in names]
    return names


def match_speakers(speakers, names: list[str], option: str = "--test-speakers") -> list[str]:
    """The speakers (ids as a cache has them) that `names` name, sorted: a name is such an id (`LibriSpeech.4640`
    with several roots) or, where one root alone has such a speaker, its id in its corpus (`4640`). ValueError,
    starting with `option`, for a name that matches no speaker or speakers of two roots."""
    speakers, chosen = sorted(set(speakers)), set()
    for name in names:
        found = [s for s in speakers if s == name] or [s for s in speakers if s.partition(".")[2] == name]
        if len(found) != 1:
            raise ValueError(f"{option} {name}: " + (f"no such speaker (the speakers are e.g. "
                             f"{', '.join(speakers[:4])})" if not found else f"ambiguous ({', '.join(found)})"))
        chosen |= set(found)
    return sorted(chosen)


def hold_out_speakers(utts: list[dict], names: list[str]) -> list[str]:
    """Move every utterance of the speakers that `names` name (`match_speakers`) to the test split, whatever its
    subset; returns those speakers' ids, sorted."""
    chosen = match_speakers((u["speaker"] for u in utts), names)
    for u in utts:
        if u["speaker"] in chosen:
            u["split"] = "test"
    return chosen


# ---------------------------------------------------------------------------------------------------------------
# Audio paths in a feature cache: relative to a named root, so that a moved download is found again
# ---------------------------------------------------------------------------------------------------------------
def relative_audio(utts: list[dict], sources: list[dict]) -> dict:
    """Rewrite each utterance's absolute `wav` (as `find_utterances` gives it) as `NAME:path/under/the/root`;
    returns the roots {NAME: absolute path}, the manifest's `roots` (corpus/features.py `audio_path` reads both)."""
    roots = {s["name"]: s["root"] for s in sources}
    for u in utts:
        wav = Path(u["wav"])
        name = next(n for n, r in roots.items() if wav.is_relative_to(r))
        u["wav"] = f"{name}:{wav.relative_to(roots[name]).as_posix()}"
    return roots


def relocate(manifest: dict, moves: list[str]) -> dict:
    """The manifest with each root NAME of `moves` ["NAME=FOLDER", ...] pointing at its new folder (`roots` and the
    matching `sources` entry). ValueError, in one line, for a cache without roots (absolute audio paths), a move
    not of the form NAME=FOLDER, an unknown NAME, or a folder that lacks any of that root's audio files."""
    bad = [m for m in moves if not all(m.partition("=")[::2])]
    if bad:
        raise ValueError(f"--root {bad[0]}: give NAME=FOLDER (NAME: a root of the cache, manifest.json 'roots')")
    moves = dict(m.partition("=")[::2] for m in moves)
    roots = manifest.get("roots")
    if not roots:
        raise ValueError("this cache stores absolute audio paths (no roots): run prepare again with the new --root "
                         "(finished stages are skipped)")
    for name, folder in moves.items():
        if name not in roots:
            raise ValueError(f"no root named {name!r} in this cache; its roots: {', '.join(sorted(roots))}")
        folder = Path(folder).expanduser().resolve()
        rel = [u["wav"].partition(":")[2] for u in manifest["utterances"] if u["wav"].partition(":")[0] == name]
        missing = [r for r in rel if not (folder / r).is_file()]
        if missing:
            raise ValueError(f"--root {name}={folder}: {len(missing)} of the {len(rel)} audio files of {name} are "
                             f"not there (first: {missing[0]})")
        roots[name] = str(folder)
        for s in manifest.get("sources", []):
            s["root"] = str(folder) if s.get("name") == name else s["root"]
    return manifest

