"""Tests for corpus/score.py (with corpus/pitch.py and corpus/syllables.py): the text score format, MIDI with lyrics,
and rendering a score into phonemes, durations in codec frames and an F0 contour (paper §5, singing). No model:
fake front ends, and eSpeak for the example."""
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from corpus import pitch, score, syllables  # noqa: E402
from corpus.score import ScoreError  # noqa: E402

# A fake ARPAbet front end: whole words, with the pause and punctuation tokens a real one adds.
WORDS = {"twinkle": "T W IH1 NG K AH0 L", "star": "S T AA1 R", "la": "L AA1", "doo": "D UW1", "strengths":
         "S T R EH1 NG K TH S", "fire": "F AY1 ER0", "hmm": "HH M", "banana": "B AH0 N AE1 N AH0", "extra":
         "EH1 K S T R AH0"}


def fake_phonemize(text):
    word = text.lower().strip(",.!?")
    return ["_"] + WORDS[word].split() + [","] + ["."]


def parse(body, **kwargs):
    return score.parse_score(body, "song.txt", **kwargs)


# --------------------------------------------------------------------------- helpers
def test_import_is_light():
    """corpus/score.py needs numpy only (pretty_midi when a MIDI file is read): no torch, no project model modules."""
    code = ("import sys; from corpus import score; "
            "print(sorted({'torch', 'pretty_midi', 'model', 'corpus.data', 'train'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_note_numbers_and_hz():
    assert pitch.note_number("C4") == 60 and pitch.note_number("A4") == 69 and pitch.note_number("A0") == 21
    assert pitch.note_number("C#4") == pitch.note_number("Db4") == 61
    assert pitch.note_number("Bb3") == 58 and pitch.note_number("C8") == 108 and pitch.note_number("B#3") == 60
    assert pitch.note_number("60.5") == 60.5
    for bad in ["H4", "C", "4C", "C##4", "nan", "inf", ""]:
        with pytest.raises(ValueError, match="unknown note"):
            pitch.note_number(bad)
    assert pitch.midi_to_hz(69) == pytest.approx(440.0)
    assert pitch.midi_to_hz(60) == pytest.approx(261.6256, abs=1e-3)
    np.testing.assert_allclose(pitch.hz_to_midi(pitch.midi_to_hz([40.0, 60.5, 100.0])), [40.0, 60.5, 100.0])
    assert np.isnan(pitch.hz_to_midi(0.0)) and np.isnan(pitch.hz_to_midi(-5.0))


def test_f0_metrics():
    ref = np.array([440.0, 440.0, np.nan, 440.0, 440.0])
    f0 = np.array([440.0 * 2 ** (100 / 1200), 440.0 * 2 ** (-100 / 1200), 300.0, 880.0, 0.0])
    voiced = np.array([True, True, True, False, True])
    assert pitch.f0_rmse_cents(f0, ref, voiced) == pytest.approx(100.0)  # frames 0, 1 compared
    assert pitch.octave_errors(f0, ref, voiced) == 0.0
    assert pitch.octave_errors(f0, ref, None) == pytest.approx(1 / 3)     # frame 3 (an octave up) too
    assert math.isnan(pitch.f0_rmse_cents(f0, ref, np.zeros(5, bool)))


# --------------------------------------------------------------------------- the text format
def test_parser_reads_every_feature():
    s = parse("""
# a comment line
title  A little  song   # trailing comment
tempo 120
Twin-  C#4  1/2     # sharps in a name are not comments
kle    Db4  0.5
star   60.5 3/2
~      Bb3  1
rest   -    1
_      2
la     E4   1
tempo 60
doo    A4   1.5
~      A4   1
""")
    assert s.title == "A little song"
    assert [n.lyric for n in s.notes] == ["Twin-", "kle", "star", "~", "rest", "rest", "la", "doo", "~"]
    assert [n.midi for n in s.notes if n.lyric != "rest"] == [61, 61, 60.5, 58, 64, 69, 69]
    assert [n.beats for n in s.notes] == [0.5, 0.5, 1.5, 1, 1, 2, 1, 1.5, 1]
    assert [n.tempo for n in s.notes] == [120] * 7 + [60] * 2
    assert s.notes[0].where == "line 5" and s.notes[-1].where == "line 14"
    assert s.seconds == pytest.approx(7.5 * 0.5 + 2.5 * 1.0)


def test_default_tempo():
    assert parse("la C4 1").notes[0].tempo == 100 and parse("la C4 1").seconds == pytest.approx(0.6)


@pytest.mark.parametrize("body, line, message", [
    ("la C4 1\nla H4 1", 2, "unknown note 'H4' (use a MIDI number or a name like A4, C#4, Bb3)"),
    ("la C4 1\n\n# c\nla C9 1", 4, "out of range"),
    ("la G#0 1", 1, "A0-C8 (MIDI 21-108)"),
    ("la 120 1", 1, "out of range"),
    ("la C4 0", 1, "bad beats '0'"),
    ("la C4 -1", 1, "bad beats"),
    ("la C4 1/0", 1, "bad beats"),
    ("la C4 x", 1, "bad beats"),
    ("la C4", 1, "expected LYRIC NOTE BEATS, got 2"),
    ("la C4 1 2", 1, "got 4 field"),
    ("la - 1", 1, "'-' is the NOTE of a rest"),
    ("rest X9 1", 1, "unknown note"),
    ("~ C4 1\nla C4 1", 1, "'~'"),
    ("la C4 1\nrest - 1\n~ C4 1", 3, "after a rest"),
    ("Twin- C4 1\nrest - 1\nkle C4 1", 2, "still open at this rest: 'Twin-' (line 1)"),
    ("la C4 1\nTwin- C4 1\n~ D4 1", 2, "'Twin-' is still open at the end"),
    ("tempo 500\nla C4 1", 1, "bad tempo '500'"),
    ("tempo 10\nla C4 1", 1, "20-400"),
    ("tempo\nla C4 1", 1, "bad tempo"),
    ("title x\nrest - 1\n\n", 3, "no sung note"),
    ("tempo 60\n" + "la C4 20\n" * 4, 5, "longer than max_seconds=60 s (reaches 80.00 s here)"),
    ("tempo 400\nla C4 1/16\n", 2, "note too short"),
])
def test_bad_scores(body, line, message):
    with pytest.raises(ScoreError) as err:
        s = parse(body)
        score.render(s, fake_phonemize)      # too short is found when frames are counted
    text = str(err.value)
    assert text.startswith(f"song.txt line {line}: ") and message in text and "\n" not in text
    assert isinstance(err.value, ValueError)


def test_max_seconds_is_an_argument():
    assert parse("tempo 60\nla C4 20", max_seconds=20.0).seconds == 20.0
    with pytest.raises(ScoreError, match="line 2: the score is longer than max_seconds=10"):
        parse("tempo 60\nla C4 20", max_seconds=10.0)


def test_read_score_files(tmp_path):
    path = tmp_path / "song.txt"
    path.write_text("\ufefftempo 90\nla A4 1\n", encoding="utf-8")       # a byte order mark is fine
    assert score.read_score(path).notes[0].tempo == 90
    with pytest.raises(ScoreError, match="no such file"):
        score.read_score(tmp_path / "missing.txt")
    path.write_bytes(b"la A4 1\n\xff\xfe C4 1\n")
    with pytest.raises(ScoreError, match="not UTF-8") as err:
        score.read_score(path)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- timing
def test_durations_sum_to_the_frames_of_the_score():
    s = parse("tempo 97\nTwin- C4 1/3\nkle D4 2/3\nrest - 0.7\nstar E4 1\n~ F4 5/7\ntempo 131\nla G4 1.3\nrest - "
              "1/5\n_ - 1/3\ndoo A4 0.9\n")
    r = score.render(s, fake_phonemize)
    seconds = (1 / 3 + 2 / 3 + 0.7 + 1 + 5 / 7) * 60 / 97 + (1.3 + 1 / 5 + 1 / 3 + 0.9) * 60 / 131
    total = round(seconds * 80)
    assert r["seconds"] == pytest.approx(seconds)
    assert r["durations"].dtype == np.int64 and r["durations"].sum() == total and (r["durations"] >= 1).all()
    assert len(r["f0_hz"]) == len(r["score_f0_hz"]) == len(r["note_of_frame"]) == total
    assert r["f0_hz"].dtype == np.float32
    # every note starts at its rounded start time
    starts = [round(sum(n.seconds for n in s.notes[:k]) * 80) for k in range(len(s.notes))]
    for k, note in enumerate(s.notes):
        assert r["note_of_frame"][starts[k]] == (-1 if note.lyric == "rest" else k)
    # two rests in a row are one pause; the phonemes are the words' without the front end's pauses and commas
    assert r["phonemes"] == ("T W IH1 NG K AH0 L _ S T AA1 R L AA1 _ D UW1").split()
    assert r["warnings"] == []


def test_vowels_hold_their_notes():
    s = parse("tempo 180\nstrengths C4 3/4\nstar D4 1\nstrengths E4 3\nla F4 1/4\n")
    r = score.render(s, fake_phonemize)
    bounds = score.note_frames(s)
    ends = np.cumsum(r["durations"])
    for k, note in enumerate(s.notes):                       # one syllable per note: find its vowel
        inside = [i for i in range(len(ends)) if bounds[k] < ends[i] <= bounds[k + 1]]
        vowels = [i for i in inside if r["phonemes"][i][-1].isdigit()]
        assert len(vowels) == 1 and r["durations"][vowels[0]] >= (bounds[k + 1] - bounds[k]) / 2
    assert list(r["durations"][:8]) == [2, 2, 2, 10, 1, 1, 1, 1]  # 'strengths' on 20 frames: consonants shrink
    assert r["warnings"] == []
    r = score.render(parse("tempo 180\nstrengths C4 1/2"), fake_phonemize)  # on 13 frames: 1 frame each is too long
    assert list(r["durations"]) == [1, 1, 1, 6, 1, 1, 1, 1] and "keeps less than half" in r["warnings"][0]


def test_rests_give_the_pause_token():
    r = score.render(parse("rest - 1\nla C4 1\nrest - 1/2\nrest - 1/2\nla D4 1\n_ 1"), fake_phonemize, pause="<sil>")
    assert r["phonemes"] == ["<sil>", "L", "AA1", "<sil>", "L", "AA1", "<sil>"]
    assert list(r["durations"][[0, 3, 6]]) == [48, 48, 48]
    assert (r["note_of_frame"][:48] == -1).all() and np.isnan(r["score_f0_hz"][:48]).all()


# --------------------------------------------------------------------------- syllables
def test_two_syllable_word_is_split_at_its_nuclei():
    r = score.render(parse("Twin- C4 1\nkle D4 1"), fake_phonemize)
    assert r["phonemes"] == ["T", "W", "IH1", "NG", "K", "AH0", "L"]
    # T W onset, IH1, NG coda (two consonants between nuclei: the first closes the syllable) | K onset, AH0, L coda
    assert list(r["durations"]) == [5, 5, 33, 5, 5, 38, 5]
    assert syllables.syllabify("B AH0 N AE1 N AH0".split(), 3)[0] == [(["B"], ["AH0"], []), (["N"], ["AE1"], []),
                                                                   (["N"], ["AH0"], [])]
    assert syllables.syllabify("EH1 K S T R AH0".split(), 2)[0] == [([], ["EH1"], ["K"]),
                                                                  (["S", "T", "R"], ["AH0"], [])]


def test_syllable_count_mismatch_is_handled_and_reported():
    # 'fire': two vowels sung as one syllable -> both in the nucleus, sharing the vowel time
    r = score.render(parse("fire C4 1"), fake_phonemize)
    assert r["phonemes"] == ["F", "AY1", "ER0"] and list(r["durations"]) == [5, 22, 21]
    assert "2 vowels for 1 syllable" in r["warnings"][0] and r["warnings"][0].startswith("song.txt line 1: 'fire'")
    # 'star' written as two syllables: the second holds the first (its coda moves to the end)
    r = score.render(parse("st- C4 1\nar D4 1"), fake_phonemize)
    assert r["phonemes"] == ["S", "T", "AA1", "R"] and list(r["durations"]) == [5, 5, 81, 5]
    assert "those without one hold" in r["warnings"][0]
    # no vowel at all: the last sound is held
    r = score.render(parse("hmm C4 1"), fake_phonemize)
    assert r["phonemes"] == ["HH", "M"] and list(r["durations"]) == [5, 43] and "no vowel" in r["warnings"][0]


def test_notes_too_short_for_their_phonemes():
    with pytest.raises(ScoreError, match=r"song.txt line 3: 2 frames are too short for /F AY1 ER0/"):
        score.render(parse("tempo 200\nla C4 1\nfire C4 1/12"), fake_phonemize)


def test_tie_and_slur_extend_the_vowel():
    r = score.render(parse("star C4 1\n~ C4 1\n~ E4 1"), fake_phonemize, vibrato_cents=0)
    assert r["phonemes"] == ["S", "T", "AA1", "R"] and list(r["durations"]) == [5, 5, 144 - 15, 5]
    f0 = r["f0_hz"]
    assert np.allclose(f0[:96], score.midi_to_hz(60)) and np.allclose(f0[100:], score.midi_to_hz(64))
    assert score.midi_to_hz(60) < f0[96] < f0[97] < f0[98] < score.midi_to_hz(64)     # the glide into E4


# --------------------------------------------------------------------------- pitch
def test_contour_is_the_note_pitch_without_vibrato():
    s = parse("la C4 1\nla A4 1/2\nla Bb3 2\n")
    r = score.render(s, fake_phonemize, vibrato_cents=0.0, transpose=2.0)
    bounds = score.note_frames(s)
    for k, note in enumerate(s.notes):
        middle = slice(bounds[k] + 4, bounds[k + 1])
        np.testing.assert_allclose(r["f0_hz"][middle], score.midi_to_hz(note.midi + 2), rtol=1e-6)
        np.testing.assert_allclose(r["score_f0_hz"][bounds[k]:bounds[k + 1]], score.midi_to_hz(note.midi + 2),
                                   rtol=1e-6)
    after_glides = np.ones(len(r["f0_hz"]), bool)
    after_glides[np.concatenate([b + np.arange(3) for b in bounds[1:-1]])] = False
    assert score.f0_rmse_cents(r["f0_hz"], r["score_f0_hz"], after_glides) < 1e-3
    assert score.f0_rmse_cents(r["f0_hz"], r["score_f0_hz"], None) > 100       # the glides: 9 and 11 semitones


def test_vibrato_depth_and_rate():
    s = parse("tempo 60\nla A4 2\nla C4 1/4")
    r = score.render(s, fake_phonemize, vibrato_cents=40.0, vibrato=score.Vibrato(hz=5.0))
    cents = 1200 * np.log2(r["f0_hz"][:160] / 440.0)
    assert np.abs(cents[:12]).max() < 1e-3                           # nothing for the first 0.15 s
    steady = cents[int(0.25 * 80):]                                   # after the 0.1 s fade-in
    assert steady.max() - steady.min() == pytest.approx(80.0, abs=2.0)
    crossings = np.sum((steady[:-1] < 0) & (steady[1:] >= 0))       # upward zero crossings: one per cycle
    assert crossings == pytest.approx(5.0 * len(steady) / 80, abs=1)
    assert r["f0_hz"][-1] == pytest.approx(score.midi_to_hz(60))    # a 0.25 s note: no vibrato
    steady_frames = np.arange(len(r["f0_hz"]))
    steady_frames = (steady_frames >= 20) & (steady_frames < 160)
    assert score.f0_rmse_cents(r["f0_hz"], r["score_f0_hz"], steady_frames) == pytest.approx(40 / np.sqrt(2), abs=1)


def test_rests_interpolate_log_f0():
    r = score.render(parse("la C4 1\nrest - 1\nla C5 1"), fake_phonemize, vibrato_cents=0)
    rest = r["f0_hz"][48:96]
    assert np.all(np.diff(rest) > 0) and rest[0] > score.midi_to_hz(60) and rest[-1] < score.midi_to_hz(72)
    middle = r["f0_hz"][71:73].mean()                                   # halfway in log F0: an octave's middle
    assert 1200 * np.log2(middle / score.midi_to_hz(60)) == pytest.approx(600, abs=20)


# --------------------------------------------------------------------------- MIDI
def write_midi(path, notes, lyrics, tempo=120.0, extra=None):
    import pretty_midi
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    voice = pretty_midi.Instrument(program=0)
    voice.notes = [pretty_midi.Note(velocity=90, pitch=p, start=a, end=b) for p, a, b in notes]
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes = [pretty_midi.Note(velocity=90, pitch=36, start=0.0, end=0.1)]
    pm.instruments = [drums, voice] + (extra or [])
    pm.lyrics = [pretty_midi.Lyric(text, t) for text, t in lyrics]
    pm.write(str(path))


def test_midi_round_trip(tmp_path):
    path = tmp_path / "song.mid"
    # 120 bpm: a beat is 0.5 s. Twin-kle (C4, D4), a slur (no lyric) to E4, a rest of one beat, star (G4)
    notes = [(60, 0.0, 0.5), (62, 0.5, 0.99), (64, 1.0, 1.5), (67, 2.0, 3.0)]   # a 10 ms gap is no rest
    write_midi(path, notes, [("Twin-", 0.0), ("kle", 0.51), ("star", 1.98), ("oops", 1.5)])
    s = score.read_score(path)
    assert [n.lyric for n in s.notes] == ["Twin-", "kle", "~", "rest", "star"]
    assert [n.midi for n in s.notes if n.lyric != "rest"] == [60, 62, 64, 67]
    np.testing.assert_allclose([n.beats for n in s.notes], [1, 1, 1, 1, 2], atol=1e-3)
    assert all(n.tempo == pytest.approx(120) for n in s.notes)
    assert len(s.warnings) == 1 and "'oops'" in s.warnings[0]           # a lyric at no onset
    r = score.render(s, fake_phonemize)
    assert r["phonemes"] == ["T", "W", "IH1", "NG", "K", "AH0", "L", "_", "S", "T", "AA1", "R"]
    assert r["durations"].sum() == 240


def test_midi_overlaps_keep_the_highest(tmp_path):
    path = tmp_path / "chords.midi"
    notes = [(60, 0.0, 1.0), (64, 0.0, 1.0), (67, 0.5, 1.0), (55, 0.7, 1.5)]
    write_midi(path, notes, [("la", 0.0), ("doo", 0.5)])
    s = score.read_midi(path)
    assert [(n.lyric, n.midi) for n in s.notes] == [("la", 64), ("doo", 67)]
    np.testing.assert_allclose([n.seconds for n in s.notes], [0.5, 0.5])
    assert len(s.warnings) == 3 and all("overlapping" in w for w in s.warnings)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"MThd not really"), "not a readable MIDI file"),
    (lambda p: write_midi(p, [], [("la", 0.0)]), "no notes"),
    (lambda p: write_midi(p, [(60, 0.0, 1.0)], []), "no lyrics"),
    (lambda p: write_midi(p, [(60, 0.0, 1.0), (62, 1.0, 2.0)], [("la", 1.0)]), "at 0.00 s: '~'"),
    (lambda p: write_midi(p, [(60, 0.0, 1.0)], [("Twin-", 0.0)]), "still open at the end"),
])
def test_bad_midi(tmp_path, make, message):
    path = tmp_path / "bad.mid"
    make(path)
    with pytest.raises(ScoreError, match=message) as err:
        score.read_score(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


# --------------------------------------------------------------------------- the example, with the toy front end
def test_example_score_renders_with_the_toy_front_end():
    from corpus import text
    import json
    s = score.read_score(REPO / "examples" / "twinkle.txt")
    assert s.title.startswith("Twinkle") and {"~", "rest"} <= {n.lyric for n in s.notes}
    midi = [n.midi for n in s.notes if n.lyric != "rest"]
    assert min(midi) >= 60 and max(midi) <= 69 and 20 < s.seconds < 40
    r = score.render(s, text.front_end("espeak-en-us-ipa"))
    assert r["durations"].sum() == len(r["f0_hz"]) == round(s.seconds * 80) and r["warnings"] == []
    assert r["phonemes"][:6] == ["t", "w", "ˈɪ", "ŋ", "k", "əl"]
    toy = set(json.loads((REPO / "corpus/toy_words.json").read_text())["kept"]) | {"_"}
    unknown = set(r["phonemes"]) - toy
    assert unknown <= {"ˈə"}, unknown           # 'the' said alone is stressed; PhonemeSet.map_unknown reads it
    assert np.isfinite(r["f0_hz"]).all() and (r["f0_hz"] > 200).all() and (r["f0_hz"] < 480).all()
    assert score.octave_errors(r["f0_hz"], r["score_f0_hz"], r["note_of_frame"] >= 0) == 0.0
