"""Singing from a score with a speech prompt (NaturalSpeech 2, §5).

In §5 NaturalSpeech 2 sings zero-shot: the phonemes, their durations and the pitch are *given* by a score instead
of predicted by the duration and pitch predictors, and a speech prompt sets the voice. This module turns a score
into exactly those prior inputs: phoneme tokens, integer durations in codec frames (80 per second: a 200-sample
hop at 16 kHz, 12.5 ms) and a frame-level F0 contour in Hz.

    read_score(path) -> Score;  render(score, phonemize) -> dict(phonemes, durations, f0_hz, ...)

Note names, MIDI numbers and Hz, and the F0 error in cents, are corpus/pitch.py's (and importable from here).

The text score format (this docstring is its reference)
-------------------------------------------------------
UTF-8 text, one item per line. Blank lines are ignored; `#` at the start of a line or after whitespace starts a
comment (so `C#4` is a note, not a comment). Two directives:
    title Twinkle, Twinkle, Little Star   the song's title (optional; Score.title)
    tempo 100                             quarter-note beats per minute, 20 to 400; 100 when absent. It may come
                                          again mid-song: the new tempo holds from that line on.
Every other line is one note, three fields separated by whitespace:  LYRIC NOTE BEATS
  LYRIC  the syllable sung on this note.
           Twin-  a syllable ending in `-`: the word goes on with the next syllable (`Twin-` `kle` = "Twinkle").
           ~      the previous syllable holds on over this note: a tie when the pitch is the same, a slur
                  (melisma) when it differs; the vowel goes on, no new consonants.
           rest   (lower case, or `_`) a rest. Its NOTE is `-` (a pitch is accepted and ignored) or left out.
  NOTE   a MIDI number (`60`; fractional `60.5` is a quarter tone up) or a scientific pitch name: a letter A-G,
         optionally `#` (sharp) or `b` (flat), and an octave: C4 = 60, C#4 = Db4 = 61, Bb3 = 58, A4 = 69 = 440 Hz.
         Sung notes lie within A0-C8 (MIDI 21-108).
  BEATS  the length in beats: a positive number or fraction (`1`, `0.5`, `1/2`, `3/2`, `1.5`).
For example:
    tempo 100
    Twin- C4 1
    kle   C4 1
    star  G4 1
    ~     A4 1    # a slur: "star" goes on, up to A4
    rest  -  1
Every error is a ScoreError (a ValueError) with a one-line message naming the file and line: an unknown note, a
note outside A0-C8, beats that are not a positive number, a wrong number of fields, `~` first or after a rest, a
word still open (`-`) at a rest or at the end, a tempo outside 20-400, no sung note, a score longer than
`max_seconds` (60 s by default); and, when rendered, a note shorter than 2 frames (25 ms).

MIDI files (`.mid`, `.midi`: `read_midi`) give the same Score: the first non-drum instrument with notes, kept
monophonic, lyric events as the syllables (see read_midi).

From a score to the model's inputs (`render`): each word is phonemized alone and split into its syllables at
vowel nuclei (corpus/syllables.py); onset consonants sit at the start of their note, coda consonants at the end
of the syllable's last note, the vowel holds the rest; rests are pause tokens. The contour is each note's pitch
with a short glide into it, a delayed vibrato on long notes, and log-F0 interpolation through rests (the model's
pitch input is interpolated log-F0).
"""
from __future__ import annotations

import math
import re
import warnings as py_warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from corpus.pitch import midi_to_hz, note_number, parse_number
from corpus.pitch import f0_rmse_cents, hz_to_midi, octave_errors  # noqa: F401 - used as score.f0_rmse_cents too
from corpus.syllables import syllabify, syllable_frames

FPS = 80.0                    # codec frames per second: 16 kHz audio, a 200-sample hop
DEFAULT_TEMPO = 100.0         # quarter-note beats per minute when a score names none
TEMPO_RANGE = (20.0, 400.0)   # beats per minute accepted by `tempo`
MIDI_RANGE = (21.0, 108.0)    # A0-C8, the piano's keys: sung notes must lie within
REST, HOLD = "rest", "~"      # the lyric of a rest (`rest` or `_` in a file); hold the previous syllable
LYRIC_WINDOW_S = 0.03         # a MIDI lyric belongs to the note whose onset is at most this far away
MIN_GAP_BEATS = 1 / 8         # a silence between two MIDI notes this long (or longer) is a rest
GLIDE_S = 0.0375              # glide from the previous pitch into a new note (3 frames at 80 fps)
VIBRATO_MIN_S = 0.3           # vibrato only on a sustained pitch longer than this
VIBRATO_FADE_S = 0.1          # vibrato depth fades in over this long
SILENT = {"_", "_?", ",", ".", "?", "!", "", " "}  # front-end tokens that are not sounds of a word


class ScoreError(ValueError):
    """A score that cannot be sung; the message is one line naming the file and the line (or MIDI note)."""


@dataclass
class Note:
    lyric: str                # a syllable ('Twin-', 'kle'), HOLD ('~') or REST
    midi: float               # MIDI note number (60 = C4); nan for a rest
    beats: float              # length in quarter-note beats
    tempo: float              # beats per minute in force at this note
    where: str                # 'line 7' or 'at 1.20 s', for messages

    @property
    def seconds(self) -> float:
        return self.beats * 60.0 / self.tempo


@dataclass
class Score:
    notes: list = field(default_factory=list)     # Note, in order
    title: str = ""
    source: str = "<score>"                       # file name, for messages
    warnings: list = field(default_factory=list)  # what a reader fixed up (MIDI overlaps, stray lyrics)

    @property
    def seconds(self) -> float:
        return sum(note.seconds for note in self.notes)


def _error(source: str, where: str, message: str) -> ScoreError:
    return ScoreError(f"{source} {where}: {message}".replace("\n", " "))


# --------------------------------------------------------------------------- reading a score
def _note_line(fields: list, tempo: float, source: str, where: str) -> Note:
    """One `LYRIC NOTE BEATS` line -> Note (a rest may leave NOTE out)."""
    lyric = REST if fields[0] in ("rest", "_") else fields[0]
    if len(fields) != 3 and not (lyric == REST and len(fields) == 2):
        raise _error(source, where, f"expected LYRIC NOTE BEATS, got {len(fields)} field(s): {' '.join(fields)!r}")
    beats = parse_number(fields[-1])
    if not beats > 0 or not math.isfinite(beats):
        raise _error(source, where, f"bad beats {fields[-1]!r} (a positive number like 1, 0.5, 1/2 or 3/2)")
    if lyric == REST:
        if len(fields) == 3 and fields[1] != "-":
            _pitch(fields[1], source, where)             # a pitch on a rest is ignored, but must be one
        return Note(REST, float("nan"), beats, tempo, where)
    if fields[1] == "-":
        raise _error(source, where, "'-' is the NOTE of a rest; a sung note needs a pitch like 60 or C4")
    if not lyric.rstrip("-"):
        raise _error(source, where, f"lyric {lyric!r} has no syllable")
    return Note(lyric, _pitch(fields[1], source, where), beats, tempo, where)


def _pitch(name: str, source: str, where: str) -> float:
    """note_number, with its errors and the A0-C8 range as ScoreErrors."""
    try:
        midi = note_number(name)
    except ValueError as err:
        raise _error(source, where, str(err)) from None
    if not MIDI_RANGE[0] <= midi <= MIDI_RANGE[1]:
        raise _error(source, where, f"note {name!r} (MIDI {midi:g}) is out of range: sung notes lie within "
                                    f"A0-C8 (MIDI 21-108)")
    return midi


def parse_score(text: str, source: str = "<score>", max_seconds: float = 60.0) -> Score:
    """The text format (module docstring) -> a checked Score."""
    score, tempo = Score(source=source), DEFAULT_TEMPO
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        fields, where = re.sub(r"(^|\s)#.*", "", line).split(), f"line {number}"
        if not fields:
            continue
        if fields[0] == "title":
            score.title = " ".join(fields[1:])
        elif fields[0] == "tempo":
            tempo = parse_number(fields[1]) if len(fields) == 2 else float("nan")
            if not TEMPO_RANGE[0] <= tempo <= TEMPO_RANGE[1]:
                raise _error(source, where, f"bad tempo {' '.join(fields[1:])!r}: beats per minute "
                                            f"must be within 20-400")
        else:
            score.notes.append(_note_line(fields, tempo, source, where))
    check(score, max_seconds, end=f"line {len(lines)}")
    return score


def check(score: Score, max_seconds: float = 60.0, end: str = "at the end") -> None:
    """The rules every score obeys (holds follow a syllable, words close before rests and the end, something is
    sung, at most max_seconds); ScoreError at the first broken one. `end` names where the score ends."""
    seconds, previous, open_word = 0.0, None, None
    for note in score.notes:
        if note.lyric == HOLD and (previous is None or previous.lyric == REST):
            raise _error(score.source, note.where, "'~' (or a MIDI note without a lyric) holds the previous "
                                                   "syllable, but there is none here (first note or after a rest)")
        if note.lyric == REST and open_word:
            raise _error(score.source, note.where, f"the word is still open at this rest: {open_word.lyric!r} "
                                                   f"({open_word.where}) ends in '-'")
        seconds += note.seconds
        if seconds > max_seconds + 1e-9:
            raise _error(score.source, note.where, f"the score is longer than max_seconds={max_seconds:g} s "
                                                   f"(reaches {seconds:.2f} s here)")
        if note.lyric != HOLD:
            open_word = note if note.lyric.endswith("-") else None
        previous = note
    if open_word:
        raise _error(score.source, open_word.where, f"the word {open_word.lyric!r} is still open at the end of "
                                                    f"the score (drop the '-')")
    if all(note.lyric == REST for note in score.notes):
        raise _error(score.source, end, "the score has no sung note")


def read_midi(path, max_seconds: float = 60.0) -> Score:
    """A MIDI file with lyric events -> a checked Score.

    The first non-drum instrument with notes is the voice. It is made monophonic: where notes overlap the highest
    is kept (a lower note is cut where a higher one starts; one starting under a higher note is dropped), each case
    listed in Score.warnings. A lyric belongs to the note whose onset is within 30 ms; a note without one holds
    the previous syllable (`~`); a lyric ending in '-' goes on with the next one, as in the text format. A gap of
    1/8 beat or more between notes is a rest, a shorter one lengthens the note before it; silence before the first
    note is dropped. The tempo is the file's first; lengths are the file's seconds (tempo changes included).
    Pitch bends are ignored.
    """
    import pretty_midi
    source, warnings = str(path), []
    try:
        with py_warnings.catch_warnings():                   # pretty_midi warns about odd meta events
            py_warnings.simplefilter("ignore")
            pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as err:                                  # noqa: BLE001 - any unreadable file
        detail = (str(err).splitlines() or [""])[0]
        raise ScoreError(f"{source}: not a readable MIDI file ({type(err).__name__}: {detail})") from None
    voice = next((i for i in pm.instruments if not i.is_drum and i.notes), None)
    if voice is None:
        raise ScoreError(f"{source}: no notes (no non-drum instrument has any)")
    lyrics = [(lyric.time, lyric.text.strip()) for lyric in pm.lyrics]
    if not lyrics:
        raise ScoreError(f"{source}: no lyrics (the syllables must be lyric events at the notes' onsets)")
    tempo = float(pm.get_tempo_changes()[1][0]) if len(pm.get_tempo_changes()[1]) else 120.0
    kept = []                                                 # [start, end, pitch] of the notes sung
    for n in sorted(voice.notes, key=lambda n: (n.start, -n.pitch)):
        if kept and n.start < kept[-1][1] - 1e-6:
            if n.pitch <= kept[-1][2]:
                warnings.append(f"{source} at {n.start:.2f} s: overlapping notes, dropped MIDI {n.pitch} under "
                                f"MIDI {kept[-1][2]}")
                continue
            warnings.append(f"{source} at {n.start:.2f} s: overlapping notes, cut MIDI {kept[-1][2]} where "
                            f"MIDI {n.pitch} starts")
            kept[-1][1] = n.start
            if kept[-1][1] - kept[-1][0] < 1e-6:
                kept.pop()
        kept.append([n.start, n.end, n.pitch])
    gap = MIN_GAP_BEATS * 60.0 / tempo
    score, used = Score(source=source, warnings=warnings), set()
    for k, (start, end, pitch) in enumerate(kept):
        after = kept[k + 1][0] if k + 1 < len(kept) else end
        near = min(range(len(lyrics)), key=lambda i: abs(lyrics[i][0] - start))
        lyric = lyrics[near][1] if abs(lyrics[near][0] - start) <= LYRIC_WINDOW_S else ""
        if lyric:
            used.add(near)
        lyric = HOLD if lyric in ("", "-", HOLD) else lyric
        sung = end if after - end >= gap else after
        score.notes.append(Note(lyric, float(pitch), (sung - start) * tempo / 60.0, tempo, f"at {start:.2f} s"))
        if after - end >= gap:
            score.notes.append(Note(REST, float("nan"), (after - end) * tempo / 60.0, tempo, f"at {end:.2f} s"))
    warnings += [f"{source} at {t:.2f} s: lyric {s!r} is at no note's onset; ignored"
                 for i, (t, s) in enumerate(lyrics) if i not in used and s]
    check(score, max_seconds)
    return score


def read_score(path, max_seconds: float = 60.0) -> Score:
    """A score file -> Score: `.mid`/`.midi` through read_midi, anything else in the text format."""
    path = Path(path)
    if not path.is_file():
        raise ScoreError(f"{path}: no such file")
    if path.suffix.lower() in (".mid", ".midi"):
        return read_midi(path, max_seconds)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ScoreError(f"{path}: not UTF-8 text (bad byte at offset {err.start})") from None
    except OSError as err:
        raise ScoreError(f"{path}: cannot read it ({err.strerror})") from None
    return parse_score(text, str(path), max_seconds)


# --------------------------------------------------------------------------- from a score to the prior's inputs
def note_frames(score: Score, fps: float = FPS) -> np.ndarray:
    """(N + 1,) int64: the frame where each note starts, then the total frame count. Each is the note's start
    in seconds (tempo changes included) times fps, rounded, so the total is round(score.seconds * fps).
    ScoreError for a note of fewer than 2 frames."""
    bounds = np.rint(np.cumsum([0.0] + [note.seconds for note in score.notes]) * fps).astype(np.int64)
    for note, frames in zip(score.notes, np.diff(bounds)):
        if frames < 2:
            raise _error(score.source, note.where, f"note too short: {frames} frame(s) at {fps:g} frames/s "
                                                   f"(2 at least)")
    return bounds


def _words(notes: list) -> list:
    """Note indices grouped as sung: [(REST, [k, ...]) for a run of rests | ('word', [[k, tied k, ...] per
    syllable])], in order."""
    items, open_word = [], False
    for k, note in enumerate(notes):
        if note.lyric == REST and items and items[-1][0] == REST:
            items[-1][1].append(k)
        elif note.lyric == REST:
            items.append((REST, [k]))
        elif note.lyric == HOLD:
            items[-1][1][-1].append(k)
        elif open_word:
            items[-1][1].append([k])
        else:
            items.append(("word", [[k]]))
        if note.lyric != HOLD:
            open_word = note.lyric.endswith("-")
    return items


def _word_phonemes(phonemize, word: str, pause: str, source: str, where: str) -> list:
    """phonemize(word) without its pause and punctuation tokens; ScoreError when nothing is left."""
    try:
        tokens = phonemize(word)
    except ValueError as err:
        raise _error(source, where, f"cannot phonemize {word!r}: {err}") from None
    sounds = [t for t in tokens if t not in SILENT and t != pause]
    if not sounds:
        raise _error(source, where, f"{word!r} has nothing to sing (the front end gave {tokens})")
    return sounds


@dataclass(frozen=True)
class Vibrato:
    """When and how fast a sung pitch wavers (its depth, vibrato_cents, is an argument of its own: 0 turns it off)."""
    hz: float = 5.5           # rate: cycles per second
    delay_s: float = 0.15     # it starts this long after the pitch does


def f0_contour(score: Score, bounds: np.ndarray, transpose: float = 0.0, vibrato_cents: float = 30.0,
               vibrato: Vibrato = Vibrato(), fps: float = FPS) -> tuple:
    """(f0_hz, score_f0_hz, note_of_frame), each (T,) with T = bounds[-1] (bounds: note_frames).

    score_f0_hz (float32) is each sung note's 440 * 2**((midi + transpose - 69) / 12), nan on rests;
    note_of_frame (int64) the note's index in score.notes, -1 on rests. f0_hz (float32) is score_f0_hz with, in
    log F0:
      * rests: linear between the neighbouring notes (the nearest note's pitch before the first, after the last);
      * a glide into a note from the note just before it: over its first GLIDE_S (3 frames at 80 fps), at
        fractions 1/4, 2/4, 3/4 of the way from the previous pitch;
      * vibrato on each sustained pitch (a note with the same-pitch `~` notes tied to it) longer than
        VIBRATO_MIN_S: vibrato_cents * min(1, t / VIBRATO_FADE_S) * sin(2 pi vibrato.hz t) cents, where t is the
        time since the pitch started minus vibrato.delay_s (nothing while t < 0).
    """
    notes, total = score.notes, int(bounds[-1])
    score_f0, note_of_frame = np.full(total, np.nan), np.full(total, -1, np.int64)
    segments = []                                          # [first frame, end frame, note index] per pitch
    for k, note in enumerate(notes):
        if note.lyric == REST:
            continue
        a, b = bounds[k], bounds[k + 1]
        score_f0[a:b], note_of_frame[a:b] = midi_to_hz(note.midi + transpose), k
        if note.lyric == HOLD and notes[k - 1].midi == note.midi:
            segments[-1][1] = b                            # a tie: the same pitch goes on
        else:
            segments.append([a, b, k])
    frames, voiced = np.arange(total), note_of_frame >= 0
    log_f0 = np.interp(frames, frames[voiced], np.log(score_f0[voiced]))
    glide = max(1, round(GLIDE_S * fps))
    for a, b, k in segments:
        if k > 0 and notes[k - 1].lyric != REST:
            g, before, target = min(glide, b - a - 1), np.log(score_f0[a - 1]), np.log(score_f0[a])
            log_f0[a:a + g] = before + (target - before) * np.arange(1, g + 1) / (g + 1)
        if (b - a) / fps > VIBRATO_MIN_S:
            t = (frames[a:b] - a) / fps - vibrato.delay_s
            cents = vibrato_cents * np.clip(t / VIBRATO_FADE_S, 0.0, 1.0) * np.sin(2 * np.pi * vibrato.hz * t)
            log_f0[a:b] += cents / 1200.0 * np.log(2.0)
    return np.exp(log_f0).astype(np.float32), score_f0.astype(np.float32), note_of_frame


def render(score: Score, phonemize, transpose: float = 0.0, vibrato_cents: float = 30.0, vibrato: Vibrato = Vibrato(),
           consonant_s: float = 0.06, fps: float = FPS, pause: str = "_") -> dict:
    """A score -> the prior's inputs when singing (§5: durations and pitch given by the score, not predicted).

    `phonemize(text) -> list[str]` is the model's front end; each word (its syllables joined) is phonemized alone,
    its pause and punctuation tokens dropped, and split into syllables (syllabify). Timing: note_frames; within a
    syllable, syllable_frames (consonants of consonant_s, the vowel holds the rest and its `~` notes); a run of
    rests is one `pause` token. Pitch: f0_contour, with transpose (semitones), vibrato_cents and vibrato.
    Returns dict(phonemes: list[str]; durations: (P,) int64 frames, summing to T = round(seconds * fps);
    f0_hz: (T,) float32; score_f0_hz: (T,) float32, nan on rests; note_of_frame: (T,) int64, -1 on rests;
    seconds: float; warnings: list[str], the score's and the syllable splits' and timing's).
    """
    notes, bounds = score.notes, note_frames(score, fps)
    each = max(1, round(consonant_s * fps))
    phonemes, durations, warnings, cache = [], [], list(score.warnings), {}
    for kind, groups in _words(notes):
        if kind == REST:
            phonemes.append(pause)
            durations.append(int(bounds[groups[-1] + 1] - bounds[groups[0]]))
            continue
        word, where = "".join(notes[s[0]].lyric.rstrip("-") for s in groups), notes[groups[0][0]].where
        if word not in cache:
            cache[word] = _word_phonemes(phonemize, word, pause, score.source, where)
        parts, problems = syllabify(cache[word], len(groups))
        warnings += [f"{score.source} {where}: {word!r}: {problem}" for problem in problems]
        sung = []                                          # (onset, nucleus, coda), its note indices
        for part, indices in zip(parts, groups):
            if part is None:
                sung[-1][1].extend(indices)
            else:
                sung.append((part, list(indices)))
        for (onset, nucleus, coda), indices in sung:
            frames, sounds = [int(bounds[k + 1] - bounds[k]) for k in indices], onset + nucleus + coda
            lengths = syllable_frames(onset, nucleus, coda, frames, each)
            if lengths is None:
                raise _error(score.source, notes[indices[0]].where, f"{sum(frames)} frames are too short for "
                                                                    f"/{' '.join(sounds)}/")
            if not lengths[1]:
                warnings.append(f"{score.source} {notes[indices[0]].where}: short note, the vowel of "
                                f"/{' '.join(sounds)}/ keeps less than half of it")
            phonemes += sounds
            durations += lengths[0]
    f0_hz, score_f0_hz, note_of_frame = f0_contour(score, bounds, transpose, vibrato_cents, vibrato, fps)
    return dict(phonemes=phonemes, durations=np.asarray(durations, np.int64), f0_hz=f0_hz,
                score_f0_hz=score_f0_hz, note_of_frame=note_of_frame, seconds=score.seconds, warnings=warnings)
