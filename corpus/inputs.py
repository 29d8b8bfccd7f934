"""A user's inputs to zero-shot synthesis (sample.py), checked before any synthesis and taken generously: text (what
an English front end can read, split into sentences), prompt audio (silence trimmed, a long one cropped to its best
stretch of speech), output paths and --list job files. A mistake is a UserError carrying the command line's exit
code (sample.py's docstring lists them); input taken generously gets a one-line note on stderr.
"""
from __future__ import annotations

import csv
import os
import re
import sys
import unicodedata
from pathlib import Path
from typing import NamedTuple

import numpy as np

from corpus import features

EXIT_USAGE, EXIT_CKPT, EXIT_PROMPT, EXIT_TEXT, EXIT_ROWS, EXIT_SOURCE, EXIT_SCORE = 2, 3, 4, 5, 6, 7, 8
MIN_PROMPT_S, MAX_PROMPT_S, CROP_MIN_S = 1.0, 30.0, 10.0
SR = features.SAMPLE_RATE


class UserError(Exception):
    """A user mistake: one line, and the exit code of the command line."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def note(message: str) -> None:
    """A one-line remark on stderr about input taken generously (it does not stop anything)."""
    print(f"note: {message}", file=sys.stderr)


# -- text ----------------------------------------------------------------------------------------------------------
def split_sentences(text: str) -> list[str]:
    """Sentence boundaries: . ! ? followed by space; pieces with no letters or digits are dropped."""
    if not isinstance(text, str) or not text.strip():
        raise UserError("the text is empty: give a sentence to speak", EXIT_TEXT)
    pieces = [p.strip() for p in re.split(r"(?<=[.!?])\s+", text.strip())]
    pieces = [p for p in pieces if re.search(r"\w", p)]
    if not pieces:
        raise UserError(f"the text {text!r} has nothing to pronounce", EXIT_TEXT)
    return pieces

def readable_text(text: str) -> tuple[str, str]:
    """(what an English front end can read, the characters left out): Latin letters, ASCII digits, punctuation,
    spaces and common symbols are kept; other scripts, emoji and control characters are left out. Raises a
    UserError (exit 5) when no Latin letter or digit remains."""
    if not isinstance(text, str) or not text.strip():
        raise UserError("the text is empty: give a sentence to speak", EXIT_TEXT)
    kept, dropped = [], []
    for ch in unicodedata.normalize("NFKC", text):
        cat = unicodedata.category(ch)
        if ch.isascii() or (ch.isalpha() and "LATIN" in unicodedata.name(ch, "")) or cat[0] in "PZ" or cat in ("Sc", "Sm"):
            kept.append(ch if ch.isprintable() else " ")
        elif not ch.isspace():
            kept.append(" ")
            dropped.append(ch)
    readable = "".join(kept)
    if not any(ch.isascii() and ch.isalnum() or ch.isalpha() for ch in readable):
        shown = text.strip() if len(text.strip()) <= 40 else text.strip()[:40] + "..."
        raise UserError(f"the text {shown!r} " + ("has no English letters or digits to read (this model speaks "
                        "English)" if dropped else "has nothing to pronounce"), EXIT_TEXT)
    return readable, "".join(dict.fromkeys(dropped))


# -- prompt audio --------------------------------------------------------------------------------------------------
def best_speech_window(wav: np.ndarray, sr: int = SR, max_s: float = MAX_PROMPT_S,
                       min_s: float = CROP_MIN_S) -> tuple[int, int]:
    """(start, end) samples of the stretch of at most `max_s` seconds with the most speech (10 ms frames within
    40 dB of the loudest): the first window of `max_s` seconds with the most speech frames, its end moved back to
    its last pause and its start forward to a pause within its first second, so that no word is cut, as long as at
    least `min_s` seconds remain. Audio of at most `max_s` seconds is returned whole."""
    hop = sr // 100
    n = len(wav) // hop
    width = int(max_s * 100)
    if n <= width:
        return 0, len(wav)
    energy = 10 * np.log10(np.mean(wav[: n * hop].reshape(n, hop) ** 2, 1) + 1e-12)
    speech = energy > energy.max() - 40
    quiet = energy < energy.max() - 50                                     # pauses between words
    counts = np.concatenate([[0], np.cumsum(speech)])
    start = int(np.argmax(counts[width:] - counts[:-width]))                # the first best window
    end = start + width
    floor = start + int(min_s * 100)
    pauses = np.flatnonzero(quiet[floor:end])
    if len(pauses) and not quiet[end - 1]:
        end = floor + int(pauses[-1]) + 1
    later = np.flatnonzero(quiet[start:start + 100])                        # within the first second
    if len(later) and not quiet[start] and end - (start + int(later[0])) >= min_s * 100:
        start += int(later[0])
    return start * hop, end * hop

def prompt_audio(path) -> np.ndarray:
    """Prompt audio -> mono float32 at SR, silence trimmed; a clipped file is used (noted), one longer than
    MAX_PROMPT_S is cropped to its best stretch of speech (noted); shorter than MIN_PROMPT_S is a UserError."""
    try:
        wav = features.load_audio(path, max_clipped=1.0)
    except features.AudioError as e:
        raise UserError(f"prompt: {e}", EXIT_PROMPT) from None
    if features.clipped_fraction(wav) > 1e-3:
        note(f"prompt {path} is clipped ({features.clipped_fraction(wav):.1%} of samples at full scale); using it "
             f"anyway (a clean recording copies the voice better)")
    wav = features.trim_silence(wav)
    seconds = len(wav) / SR
    if seconds > MAX_PROMPT_S:
        start, end = best_speech_window(wav)
        wav = features.trim_silence(wav[start:end])
        note(f"prompt {path} has {seconds:.1f} s of speech; using {start / SR:.1f}-{end / SR:.1f} s "
             f"({len(wav) / SR:.1f} s; give at most {MAX_PROMPT_S:g} s to choose yourself)")
        seconds = len(wav) / SR
    if seconds < MIN_PROMPT_S:
        raise UserError(f"prompt {path} has {seconds:.2f} s of speech after trimming silence; give "
                        f"{MIN_PROMPT_S:g}-{MAX_PROMPT_S:g} s (3 s works well)", EXIT_PROMPT)
    return wav


# -- output paths and --list files ---------------------------------------------------------------------------------
def check_out(path: Path, what: str = "--out") -> None:
    """Refuse, before any synthesis, an output path that cannot be written (UserError, exit 2)."""
    import soundfile as sf
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder: give a file name such as {path / 'out.wav'}", EXIT_USAGE)
    ext = path.suffix.lstrip(".").upper()
    if ext not in sf.available_formats():
        raise UserError(f"{what} {path}: unknown audio format {path.suffix or '(no extension)'!r}; use .wav, .flac "
                        f"or .ogg", EXIT_USAGE)
    parent = path.parent
    existing = next((p for p in [parent, *parent.parents] if p.exists()), Path("."))
    if not existing.is_dir():
        raise UserError(f"{what} {path}: {existing} is a file, not a folder", EXIT_USAGE)
    if not os.access(existing, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{what} {path} cannot be written (permission denied)", EXIT_USAGE)

class ListRow(NamedTuple):
    """One row of a --list file (the single --text/--prompt/--out is row 0)."""
    line: int
    text: str
    prompt: object                      # the prompt audio path; its codec latent once checked (`checked_rows`)
    out: Path

class Failure(NamedTuple):
    """A --list row that failed, and why."""
    line: int
    reason: str

def report(failed: list, path, line: int, reason: str) -> None:
    """A failed --list row: kept in `failed` for the summary, and printed on stderr now."""
    failed.append(Failure(line, reason))
    print(f"error: {path} line {line}: {reason}", file=sys.stderr)

def read_list(path: Path) -> tuple[list, list]:
    """A TSV of text<TAB>prompt<TAB>out rows ('#' starts a comment) -> ([ListRow], [Failure] of malformed rows). A
    missing, unreadable or row-less file is a UserError (exit 2)."""
    if not Path(path).is_file():
        raise UserError(f"--list file {path} not found", EXIT_USAGE)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            table = list(csv.reader(f, delimiter="\t"))
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"--list {path} is not a UTF-8 tab-separated file ({e})", EXIT_USAGE) from None
    rows, failed = [], []
    for line, r in enumerate(table, 1):
        if not r or not "".join(r).strip() or r[0].startswith("#"):
            continue
        if len(r) != 3 or not all(x.strip() for x in r):
            report(failed, path, line, f"every row needs text<TAB>prompt<TAB>out (got {len(r)} field(s))")
            continue
        rows.append(ListRow(line, r[0], Path(r[1].strip()), Path(r[2].strip())))
    if not rows and not failed:
        raise UserError(f"--list {path} has no rows: every row needs text<TAB>prompt<TAB>out", EXIT_USAGE)
    return rows, failed
