"""The eSpeak toy corpus: voices, determinism, exact phoneme timings, front end = training phonemes."""
import subprocess
import sys

import numpy as np
import pytest

from corpus import data
from corpus import toy
from corpus import toy_text
from corpus import features
from corpus import timbres

ROOT = data.Path(__file__).resolve().parents[1]


def test_voices_many_and_heldout_disjoint():
    plan = toy.plan(seed=0, utts_per_voice=1, heldout_utts=1)
    train, heldout = plan["speakers"]["train"], plan["speakers"]["heldout"]
    assert len(train) >= 40 and len(heldout) >= 8
    train_variants = {plan["voices"][v]["variant"] for v in train}
    heldout_variants = {plan["voices"][v]["variant"] for v in heldout}
    assert not train_variants & heldout_variants, "a held-out voice shares its timbre with a training voice"
    assert all(u["split"] == "test" for u in plan["utterances"] if u["speaker"] in heldout)
    assert all(u["split"] != "test" for u in plan["utterances"] if u["speaker"] in train)


def test_test_sentences_unseen_in_training():
    plan = toy.plan(seed=0, utts_per_voice=4, heldout_utts=4)
    train_texts = {u["text"] for u in plan["utterances"] if u["split"] == "train"}
    other = [u["text"] for u in plan["utterances"] if u["split"] != "train"]
    assert other and not train_texts & set(other)


@pytest.mark.slow
def test_sentences_deterministic_and_cover_phonemes():
    assert toy_text.sentences(50, 3) == toy_text.sentences(50, 3)
    assert toy_text.sentences(50, 3) != toy_text.sentences(50, 4)
    phonemizer = toy.EspeakPhonemizer()
    seen = {p.lstrip("ˈˌ") for s in toy_text.sentences(200, 0) for p in phonemizer(s)}
    # every English consonant, including the rare ones, and the main vowels/diphthongs
    for p in "p b t d k ɡ f v θ ð s z ʃ ʒ h tʃ dʒ m n ŋ l ɹ w j æ ɪ ɛ ʌ ʊ iː uː ɑː ɔː ɜː eɪ aɪ oʊ aʊ ɔɪ".split():
        assert p in seen, p


def test_training_split_has_every_front_end_phoneme_30_times():
    """The default corpus's training split holds each phoneme eSpeak en-us emits for English words (all but the
    rare ones corpus/toy_words.json lists as dropped) at least 30 times, and nothing outside that list."""
    from collections import Counter
    plan = toy.plan(seed=0)
    texts = [u["text"] for u in plan["utterances"] if u["split"] == "train"]
    counts = Counter(p for ps in toy.EspeakPhonemizer().many(texts) for p in ps if p != features.PAUSE)
    vocab = toy_text.coverage_vocabulary()
    assert len(vocab["kept"]) >= 100 and not set(vocab["kept"]) & set(vocab["dropped"])
    assert {p: counts[p] for p in vocab["kept"] if counts[p] < 30} == {}
    assert set(counts) <= set(vocab["kept"])
    for p, words in vocab["words_for"].items():
        assert words and all(p in vocab["phonemes_of"][w] for w in words), p


def test_word_phonemes_match_whole_sentences():
    words = ["idea", "for", "coffee", "Bach", "measure"]
    alone = toy.word_phonemes(words)
    assert alone == [[p for p in toy.EspeakPhonemizer()(w + ".") if p != features.PAUSE] for w in words]
    carried = toy.word_phonemes(words, "The next words are {}, and the rest.")
    assert len(carried) == len(words) and all(carried)
    texts = ["Hello there.", "I have an idea for the museum.", " "]
    assert toy.EspeakPhonemizer().many(texts) == [toy.EspeakPhonemizer()(t) for t in texts[:2]] + [[]]


def test_render_is_deterministic_across_processes():
    voice = toy.make_voices(toy.TRAIN_VARIANTS, 0, "tr")[5]
    text = "Joseph measured the frozen river at noon."
    here, _, _ = toy.render(text, voice, seed=11)
    code = ("import sys, numpy as np; from corpus import toy; v = toy.Voice(**%r); "
            "w, _, _ = toy.render(%r, v, seed=11); sys.stdout.buffer.write(w.tobytes())") % (voice.to_dict(), text)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=True).stdout
    assert np.array_equal(np.frombuffer(out, np.float32), here)


@pytest.mark.slow
def test_corpus_files_match_in_process_render(toy_cache):
    """The cache was built by 2 spawned workers in arbitrary order; every utterance (all 76 voices) equals a fresh
    render here, and none is clipped."""
    manifest = data.read_manifest(toy_cache)
    for u in manifest["utterances"]:
        wav, phonemes, durations = toy.render(u["text"], toy.Voice(**manifest["voices"][u["speaker"]]), u["seed"])
        f = features.load_features(toy_cache / "feats" / f"{u['id']}.npz")
        assert np.abs(wav).max() < 0.999
        assert np.abs(features.load_audio(toy_cache / u["wav"]) - wav).max() < 1 / 32768 + 1e-6   # 16-bit rounding
        assert data.PhonemeSet.from_list(manifest["phonemes"]).decode(f["phonemes"]) == phonemes
        assert np.array_equal(f["durations"], durations)


def test_phonemizer_matches_training_phonemes_for_every_voice():
    text = "Did the curious giraffe borrow 42 yellow pencils?"
    expected = toy.EspeakPhonemizer()(text)
    voices = toy.make_voices(toy.TRAIN_VARIANTS, 0, "tr") + toy.make_voices(toy.HELDOUT_VARIANTS, 0, "ho")
    for v in voices[::5]:
        assert toy.render(text, v, seed=1)[1] == expected, v.name


def test_durations_are_frames_and_sum_exactly():
    starts = [0, 130, 450, 451, 1999]
    d = toy.frame_durations(starts, 22050, n_frames=40, hop=200)
    assert d.sum() == 40 and (d >= 0).all() and len(d) == len(starts)


def _high_band_ratio(wav, hop=200):
    """Per frame: energy above 4 kHz / total energy."""
    frames = wav[: len(wav) // hop * hop].reshape(-1, hop) * np.hanning(hop)
    spec = np.abs(np.fft.rfft(frames, n=512, axis=1)) ** 2
    freqs = np.fft.rfftfreq(512, 1 / 16000)
    return spec[:, freqs > 4000].sum(1) / (spec.sum(1) + 1e-12)


def test_phoneme_timing_lines_up_with_audio():
    """Fricative /s/ frames are dominated by > 4 kHz energy, vowel frames are not; shifting the timings breaks it."""
    text = "Sam sees six sisters sipping sweet soup, so Susan smiles."
    voice = toy.make_voices(toy.TRAIN_VARIANTS, 0, "tr")[0]
    wav, phonemes, durations = toy.render(text, voice, seed=0)
    ratio = _high_band_ratio(wav)
    starts = np.concatenate([[0], np.cumsum(durations)[:-1]])

    def frames_of(pred, shift=0):
        idx = [np.arange(s + 1, s + d - 1) + shift for p, s, d in zip(phonemes, starts, durations) if pred(p) and d >= 3]
        return np.clip(np.concatenate(idx), 0, len(ratio) - 1)

    is_s, is_vowel = (lambda p: p == "s"), (lambda p: p.lstrip("ˈˌ")[:1] in "aeiouæɑɔəɚɛɜɪʊʌ")
    s_ratio, v_ratio = ratio[frames_of(is_s)].mean(), ratio[frames_of(is_vowel)].mean()
    assert s_ratio > 0.5 and v_ratio < 0.1, (s_ratio, v_ratio)
    assert ratio[frames_of(is_s, shift=8)].mean() < 0.5 * s_ratio   # misaligned timings would be caught


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="unknown eSpeak variant"):
        toy.render("Hello.", toy.Voice("x", "nonexistent", 50, 50, 175))


def test_phonemizer_bad_text():
    with pytest.raises(ValueError, match="empty"):
        toy.EspeakPhonemizer()("   ")


def test_drawn_and_confirm_voices_leave_the_stock_corpus_alone():
    """Drawn training voices and the confirm split are added without changing one stock utterance (ID, text, seed)
    or voice; the confirm split's timbres are used by no training or test voice; its texts are unseen."""
    base, grown = toy.plan(seed=0, utts_per_voice=2, heldout_utts=2), toy.plan(seed=0, utts_per_voice=2,
                                                                                heldout_utts=2, drawn=5)
    stock = [u for u in grown["utterances"] if not u["speaker"].startswith("dr")]       # confirm included
    assert stock == base["utterances"]
    drawn = [v for v in grown["speakers"]["train"] if v.startswith("dr")]
    assert len(drawn) == 5 and all(grown["voices"][v]["timbre"] for v in drawn)
    assert len({grown["voices"][v]["timbre"] for v in drawn}) == 5        # five different variant files
    assert toy.plan(seed=0, utts_per_voice=2, heldout_utts=2, drawn=5) == grown      # deterministic
    confirm = grown["speakers"]["confirm"]
    used = {grown["voices"][v]["variant"] for v in grown["speakers"]["train"] + grown["speakers"]["heldout"]}
    bases = {grown["voices"][v]["name"].split("_")[1] for v in drawn}
    assert len(confirm) == 12 and not {grown["voices"][v]["variant"] for v in confirm} & (used | bases)
    texts = {u["text"] for u in grown["utterances"] if u["split"] != "confirm"}
    assert not {u["text"] for u in grown["utterances"] if u["split"] == "confirm"} & texts


def test_small_voices_come_after_the_drawn_ones_and_are_higher():
    """Small timbres are added without changing any other utterance or voice; they are built on non-Klatt variants,
    with formants raised by at least SMALL_TRACT's lower end and a pitch range under SMALL_PITCH's caps, above the
    adult drawn voices'; one renders voiced and within 16 bits."""
    grown = toy.plan(seed=0, utts_per_voice=1, heldout_utts=1, drawn=3, small=4)
    assert [u for u in grown["utterances"] if not u["speaker"].startswith("sm")] == \
        toy.plan(seed=0, utts_per_voice=1, heldout_utts=1, drawn=3)["utterances"]
    small = [v for v in grown["speakers"]["train"] if v.startswith("sm")]
    assert len(small) == 4 and grown["speakers"]["train"][-4:] == small

    def pitch(v):
        return [int(x) for x in grown["voices"][v]["timbre"].split("\npitch ")[1].split()[:2]]
    for v in small:
        base = v.split("_", 1)[1]
        assert not timbres.uses_klatt(base)
        assert pitch(v)[0] <= timbres.SMALL_PITCH[0] and pitch(v)[1] <= timbres.SMALL_PITCH[1]
    adult = [v for v in grown["speakers"]["train"] if v.startswith("dr")]
    assert np.mean([pitch(v)[0] for v in small]) > 1.5 * np.mean([pitch(v)[0] for v in adult])
    assert timbres.uses_klatt("klatt")
    wav, _, _ = toy.render("The cat sat on the mat.", toy.Voice(**grown["voices"][small[0]]), 7)
    _, voiced = features.extract_pitch(wav)
    assert voiced.mean() > 0.3 and np.abs(wav).max() < 1.0


def test_drawn_timbre_changes_the_voice_and_is_reproducible():
    """A drawn variant is really used (not silently replaced by the default voice) and renders reproducibly."""
    plan = toy.plan(seed=0, utts_per_voice=1, heldout_utts=1, drawn=2)
    text = "The cat sat on the mat."
    drawn = toy.Voice(**plan["voices"][plan["speakers"]["train"][-1]])
    stock_base = toy.Voice(**dict(plan["voices"][plan["speakers"]["train"][-1]], timbre="",
                                  variant=toy.TRAIN_VARIANTS[1]))
    a, _, _ = toy.render(text, drawn, 7)
    b, _, _ = toy.render(text, drawn, 7)
    c, _, _ = toy.render(text, stock_base, 7)
    assert np.array_equal(a, b)
    assert len(a) != len(c) or np.abs(a - c).max() > 0.05
    _, voiced = features.extract_pitch(a)                               # render gives 16 kHz float audio
    assert voiced.mean() > 0.3                                           # a voice, not noise
