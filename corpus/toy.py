"""The embedded toy corpus: many English voices from eSpeak NG, with exact phoneme timings.

NaturalSpeech 2 (§4.1) trains on 44K hours of MLS with phonemes from G2P, durations from an aligner and pitch
from PyWorld. None of that fits in a laptop demo, so this project ships a corpus that *generates itself* in
seconds on any machine: the formant synthesizer eSpeak NG (bundled with its voices in the PyPI package
`espeakng-loader`, driven here through ctypes) reads sentences in many voices. Because we drive the synthesizer,
we get for free what real corpora need an aligner for: the exact phoneme sequence and the start of every phoneme
in samples (eSpeak's PHONEME events). And because it can render *any* text in *any* voice, every evaluation has a
ground truth (same text, same voice), including for voices never seen in training.

A *voice* is an eSpeak variant (a formant set: the timbre) plus a base pitch, a pitch range and a speaking rate.
Held-out voices use variants that no training voice uses, so zero-shot tests meet a timbre the model never heard.
All voices speak with the `en-us` language, so the text front end (text -> phonemes) is the same for every
speaker: `EspeakPhonemizer` returns exactly the phoneme tokens that appear in training.

What the voices say comes from corpus/toy_text.py: sentences whose words cover every phoneme the front end emits for
English (corpus/toy_words.json).

Determinism: eSpeak has internal randomness (e.g. in some variants' voicing); `espeak_ng_SetRandSeed` is called
before every utterance, so an utterance's audio depends only on (voice, text, seed), not on the order of work.
"""
from __future__ import annotations

import ctypes
import os
import pickle
import random
from dataclasses import dataclass, asdict

import numpy as np

from corpus import timbres
from corpus.toy_text import sentences
from corpus.features import PAUSE, SAMPLE_RATE, resample

LANGUAGE = "en-us"

# eSpeak variants kept for the corpus. Dropped: whisper/whisperf/croak/announcer/david/robosoft/caleb/klatt/klatt2
# (PyWorld finds almost no voicing in them), Demonic/UniRobot/anikaRobot/Tweaky/Storm/Mr serious (effects, not
# voices), fast (identical to the default), antonio/iven (they saturate eSpeak's 16-bit output even at volume 40).
# Near-duplicates (e.g. steph2/steph3) stay: they differ once each voice gets its own pitch and rate.
TRAIN_VARIANTS = [
    "Alex", "Alicia", "Andrea", "Andy", "AnxiousAndy", "Denis", "Diogo", "Gene", "Gene2", "Henrique",
    "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "RicishayMax", "RicishayMax2", "Reed", "adam",
    "anika", "kaukovalta", "belinda", "benjamin", "boris", "ed", "edward", "f1", "f3", "f4",
    "grandpa", "gustave", "ian", "RicishayMax3", "iven2", "iven3", "john", "klatt3", "klatt5", "klatt6",
    "linda", "m1", "m2", "m4", "m5", "m6", "m7", "m8", "marcelo", "max",
    "michel", "miguel", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "sandro", "shelby",
    "steph", "steph3", "travis", "victor",
]
# Never used by a training voice: the zero-shot test set. Chosen spread over timbre and pitch.
HELDOUT_VARIANTS = ["f2", "f5", "Annie", "aunty", "grandma", "steph2", "Nguyen", "m3", "Hugo", "klatt4",
                    "edward2", "zac"]
# A second held-out set, the "confirm" split, on variants that neither a training voice nor the held-out set above
# uses: each stock variant at a low pitch, and a higher timbre made from it (timbres.raised). Choices are tuned on
# the test split; this one is scored at the end only, to check that a gain carries over to voices nobody looked at.
CONFIRM_VARIANTS = ["iven4", "mike2", "robert", "robosoft3", "robosoft5", "robosoft7"]
CONFIRM_OFFSET = 500_000                # the confirm utterances' numbers (IDs and eSpeak seeds) start here


@dataclass(frozen=True)
class Voice:
    """One toy speaker: eSpeak variant + prosody settings (eSpeak's 0-100 pitch/range scales, words per minute)."""
    name: str
    variant: str
    pitch: int
    range: int
    rate: int
    timbre: str = ""                  # a drawn variant's file text (corpus/timbres.py); "" for a stock variant

    def to_dict(self):
        return asdict(self)


def make_voices(variants: list[str], seed: int, prefix: str) -> list[Voice]:
    """One voice per variant with pitch/range/rate drawn from a seeded RNG (deterministic for `seed`)."""
    voices = []
    for i, variant in enumerate(variants):
        rng = random.Random(f"{seed}-{prefix}-{i}")
        voices.append(Voice(name=f"{prefix}{i:02d}_{variant}", variant=variant, pitch=rng.randint(30, 70),
                            range=rng.randint(30, 80), rate=rng.randint(145, 195)))
    return voices


def drawn_voices(n: int, seed: int, small: bool = False) -> list[Voice]:
    """`n` training voices with drawn timbres (corpus/timbres.py), each built on a training variant in turn;
    `small`: shorter vocal tracts and higher pitch (timbres.SMALL_TRACT) on the variants without the Klatt
    synthesiser, named sm000_..., drawn from their own RNG stream so that adding them changes no other voice."""
    kind, prefix = ("small", "sm") if small else ("drawn", "dr")
    bases = [v for v in TRAIN_VARIANTS if not timbres.uses_klatt(v)] if small else TRAIN_VARIANTS
    voices = []
    for i in range(n):
        rng = random.Random(f"{seed}-{kind}-{i}")
        base = bases[i % len(bases)]
        name = f"{prefix}{i:03d}_{base}"
        voices.append(Voice(name=name, variant=f"{kind}{seed}_{i:03d}", pitch=rng.randint(30, 70),
                            range=rng.randint(30, 80), rate=rng.randint(145, 195),
                            timbre=timbres.draw(base, name, rng,
                                                timbres.SMALL_TRACT if small else timbres.ADULT_TRACT)))
    return voices


def confirm_voices(seed: int) -> list[Voice]:
    """The confirm split's voices: every CONFIRM_VARIANTS variant at a low eSpeak pitch (15-40), and its raised
    timbre (formants × 1.15, 165-270 Hz) at a pitch of 30-70."""
    voices = []
    for i, variant in enumerate(CONFIRM_VARIANTS):
        for j, (lo, hi) in enumerate(((15, 40), (30, 70))):
            rng = random.Random(f"{seed}-confirm-{i}-{j}")
            name = f"cf{2 * i + j:02d}_{variant}{'_raised' if j else ''}"
            voices.append(Voice(name=name, variant=f"raised_{variant}" if j else variant, pitch=rng.randint(lo, hi),
                                range=rng.randint(30, 80), rate=rng.randint(145, 195),
                                timbre=timbres.raised(variant, name) if j else ""))
    return voices


def plan(seed: int = 0, utts_per_voice: int = 16, valid_per_voice: int = 1, heldout_utts: int = 8,
         drawn: int = 0, small: int = 0) -> dict:
    """Which voice says which sentence: train voices get train + valid utterances, held-out voices test ones;
    `drawn` more training voices with drawn timbres get train utterances only (the valid split stays the stock
    voices', so validation losses compare across corpora); then `small` more of small timbres (drawn_voices).

    Test sentences never occur in the training split (zero-shot means unseen voice *and* unseen text). The drawn
    voices come last in the plan and in the sentence stream, so the stock voices' utterances (ids, texts, seeds)
    are the same whatever `drawn` is.
    """
    train_voices = make_voices(TRAIN_VARIANTS, seed, "tr")
    heldout_voices = make_voices(HELDOUT_VARIANTS, seed, "ho")
    extra_voices = drawn_voices(drawn, seed) + drawn_voices(small, seed, small=True)
    n_train = len(train_voices) * utts_per_voice
    n_other = len(train_voices) * valid_per_voice + len(heldout_voices) * heldout_utts
    texts = sentences(n_train + n_other + len(extra_voices) * utts_per_voice, seed)
    train_texts = iter(texts[:n_train] + texts[n_train + n_other:])
    other_texts = iter(texts[n_train:n_train + n_other])
    utts = []
    for voices, per_split in ((train_voices, {"train": utts_per_voice, "valid": valid_per_voice}),
                              (heldout_voices, {"test": heldout_utts}), (extra_voices, {"train": utts_per_voice})):
        for v in voices:
            for split, n in per_split.items():
                for _ in range(n):
                    k = len(utts)
                    text = next(train_texts if split == "train" else other_texts)
                    utts.append(dict(id=f"{v.name}_{k:05d}", speaker=v.name, text=text, split=split,
                                     seed=seed * 1_000_003 + k))
    confirm = confirm_voices(seed)
    texts = iter(sentences(len(confirm) * heldout_utts, seed + 1, exclude={u["text"] for u in utts}))
    for i in range(len(confirm) * heldout_utts):            # numbered apart: the same whatever `drawn` is
        v, k = confirm[i // heldout_utts], CONFIRM_OFFSET + i
        utts.append(dict(id=f"{v.name}_{k}", speaker=v.name, text=next(texts), split="confirm",
                         seed=seed * 1_000_003 + k))
    return dict(voices={v.name: v.to_dict() for v in train_voices + heldout_voices + extra_voices + confirm},
                speakers={"train": [v.name for v in train_voices + extra_voices],
                          "heldout": [v.name for v in heldout_voices], "confirm": [v.name for v in confirm]},
                utterances=utts)


# ----------------------------------------------------------------------------------------------------------------
# eSpeak NG through ctypes (speak_lib.h): synchronous synthesis into a callback that receives int16 chunks and events.
# ----------------------------------------------------------------------------------------------------------------
class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):       # espeak_EVENT
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_EVENT_LIST_END, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_PHONEME_IPA, _INIT_DONT_EXIT = 0x0001, 0x0002, 0x8000
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}
_CHARS_UTF8 = 1
VOLUME = 40                           # eSpeak's 0-200 scale; at 60, six variants still reached full scale


class Espeak:
    """The eSpeak NG engine of *this* process (the C library keeps global state; one engine per process).

    `synth_here(text, voice, seed)` returns (audio int16 at `self.rate` Hz, [(phoneme, start_sample), ...]);
    phonemes are IPA with stress marks attached (e.g. "ˈeɪ"); pauses are `PAUSE`. Use `synth` below instead: the
    engine keeps state that no API call resets (see there).
    """
    _instance = None

    def __init__(self):
        import espeakng_loader
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(timbres.data_path()).encode(),
                                               _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT)
        if self.rate <= 0:
            raise RuntimeError(f"eSpeak NG failed to initialise (code {self.rate})")
        self._chunks, self._events, self._words = [], [], []
        self._cb = _CALLBACK(self._on_audio)   # keep a reference: ctypes callbacks must outlive the C side's use
        self.lib.espeak_SetSynthCallback(self._cb)
        self.lib.espeak_SetVoiceByName(LANGUAGE.encode())   # load the language's dictionary once (no synthesis)

    @classmethod
    def get(cls) -> "Espeak":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _on_audio(self, wav, n, events):
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_END:
            e = events[i]
            if e.type == _EVENT_PHONEME:
                self._events.append((e.id.string.decode("utf-8", "replace") or PAUSE, e.sample))
            elif e.type == _EVENT_WORD:                 # (character position in the text, 1-based; phonemes so far)
                self._words.append((e.text_position, len(self._events)))
            i += 1
        return 0

    def synth_here(self, text: str, voice: Voice, seed: int):
        variant = timbres.selector(voice.variant) if voice.timbre else voice.variant
        if self.lib.espeak_SetVoiceByName(f"{LANGUAGE}+{variant}".encode()) != 0:
            raise RuntimeError(f"eSpeak could not select voice {LANGUAGE}+{variant}")
        for key in ("rate", "pitch", "range"):
            self.lib.espeak_SetParameter(_PARAM[key], getattr(voice, key), 0)
        self.lib.espeak_SetParameter(_PARAM["volume"], VOLUME, 0)
        self.lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        self._chunks, self._events, self._words = [], [], []
        data = text.encode("utf-8") + b"\0"
        self.lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_UTF8, None, None)
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio, self.rate, list(self._events)


def variants() -> set[str]:
    """Names of the installed eSpeak variants (eSpeak itself silently accepts unknown names)."""
    import espeakng_loader
    return set(os.listdir(os.path.join(espeakng_loader.get_data_path(), "voices", "!v")))


def in_fresh_engine(fn, *args):
    """fn(Espeak engine, *args) run in a forked child of a process that initialised eSpeak but never synthesized.

    Why: `espeak_ng_SetRandSeed` fixes eSpeak's noise generator, but the engine also keeps a pitch-flutter phase in
    a function-local static (`Flutter_ix` in wavegen.c) that nothing resets, not even `espeak_Terminate`: the same
    call gives different audio depending on what the process synthesized before. In a fork the engine starts fresh
    every time, and this process never synthesizes. A fork costs about a millisecond. On systems without fork
    (Windows) the engine runs in-process, and audio then depends on the order of calls.
    """
    if not hasattr(os, "fork"):
        return fn(Espeak.get(), *args)
    Espeak.get()                                      # initialise here (no synthesis): children inherit it ready
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                      # child: run, send the result, exit without cleanup
        try:
            os.close(r)
            try:
                result = (True, fn(Espeak.get(), *args))
            except Exception as e:                    # noqa: BLE001 - re-raised in the parent
                result = (False, e)
            with os.fdopen(w, "wb") as f:
                pickle.dump(result, f)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        payload = f.read()
    os.waitpid(pid, 0)
    if not payload:
        raise RuntimeError("the eSpeak child process died without an answer")
    ok, result = pickle.loads(payload)
    if not ok:
        raise result
    return result


def synth(text: str, voice: Voice, seed: int = 0):
    """Speak `text` -> (audio int16, sample rate, [(phoneme, start sample), ...]), reproducibly: an utterance's
    audio depends only on (text, voice, seed), because it is rendered in a fresh engine (`in_fresh_engine`)."""
    if voice.timbre:
        timbres.install(voice.variant, voice.timbre)
    elif voice.variant not in variants():
        raise ValueError(f"unknown eSpeak variant {voice.variant!r}")
    return in_fresh_engine(Espeak.synth_here, text, voice, seed)


def _words_here(engine: Espeak, words: list[str], carrier: str = "{}.", chunk: int = 200) -> list[list[str]]:
    """Phonemes of each word said in `carrier` (pauses dropped), `chunk` carriers per eSpeak call, one per line.
    A phoneme belongs to a word when the last WORD event before it points inside that word's characters."""
    out = []
    for s in range(0, len(words), chunk):
        part, text, spans = words[s:s + chunk], "", []
        for w in part:
            line = carrier.format(w)
            start = len(text) + line.index(w) + 1     # eSpeak's positions are 1-based characters
            spans.append((start, start + len(w)))
            text += line + "\n"
        engine.synth_here(text, EspeakPhonemizer.voice, 0)
        per = [[] for _ in part]
        bounds = engine._words + [(None, len(engine._events))]
        starts = [a for a, _ in spans]
        for (pos, first), (_, end) in zip(bounds, bounds[1:]):
            k = int(np.searchsorted(starts, pos, side="right")) - 1
            if k >= 0 and pos < spans[k][1]:
                per[k] += [p for p, _ in engine._events[first:end] if p != PAUSE]
        out += per
    return out


def word_phonemes(words: list[str], carrier: str = "{}.") -> list[list[str]]:
    """The `en-us` phonemes of each word, said alone or inside `carrier` (e.g. "The words are {}, and so on."):
    about 2,000 words per second (one eSpeak call per 200 words, in one fresh engine). Used to enumerate what
    the front end can emit over a whole dictionary."""
    return in_fresh_engine(_words_here, list(words), carrier)


def merge_pauses(events: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Consecutive pause events become one pause (eSpeak emits e.g. two empty phonemes at a clause end)."""
    out = []
    for ph, start in events:
        if out and ph == PAUSE and out[-1][0] == PAUSE:
            continue
        out.append((ph, start))
    return out


def frame_durations(starts: list[int], sample_rate: int, n_frames: int, hop: int) -> np.ndarray:
    """Phoneme start samples (at `sample_rate`) -> durations in frames of `hop` samples at SAMPLE_RATE.

    Boundaries are rounded to the nearest frame, the first is pinned to 0 and the last to `n_frames`, so the
    durations are non-negative integers that sum *exactly* to the number of frames (a phoneme shorter than half a
    frame may get 0 frames, as in FastSpeech-style length regulators).
    """
    scale = SAMPLE_RATE / sample_rate / hop
    bounds = np.rint(np.asarray(starts, np.float64) * scale).astype(np.int64)
    bounds[0] = 0
    bounds = np.clip(np.maximum.accumulate(bounds), 0, n_frames)
    return np.diff(np.append(bounds, n_frames))


def render(text: str, voice: Voice, seed: int = 0, hop: int = 200):
    """Speak `text` in `voice`: (wav float32 at 16 kHz padded to a multiple of `hop`, phonemes, frame durations)."""
    audio, rate, events = synth(text, voice, seed)
    if len(audio) == 0 or not events:
        raise ValueError(f"eSpeak produced no audio for {text!r}")
    if np.abs(audio.astype(np.int32)).max() >= 32767:
        raise ValueError(f"voice {voice.name} saturates eSpeak's 16-bit output: lower VOLUME or drop the variant")
    events = merge_pauses(events)
    wav = resample(audio / 32768.0, rate, SAMPLE_RATE)
    n_frames = -(-len(wav) // hop)                              # ceil: pad the tail with silence
    wav = np.pad(wav, (0, n_frames * hop - len(wav)))
    phonemes = [p for p, _ in events]
    durations = frame_durations([s for _, s in events], rate, n_frames, hop)
    return wav, phonemes, durations


class EspeakPhonemizer:
    """Text -> the toy corpus's phoneme tokens, exactly as they appear in training (eSpeak `en-us` events).

    The phonemes do not depend on the variant or prosody, so a fixed neutral voice is used.
    """
    name = "espeak-en-us-ipa"
    voice = Voice("frontend", "m1", 50, 50, 175)

    def __call__(self, text: str) -> list[str]:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text is empty: give a sentence to speak")
        _, _, events = synth(text, self.voice, 0)
        phonemes = [p for p, _ in merge_pauses(events)]
        if not any(p != PAUSE for p in phonemes):
            raise ValueError(f"text {text!r} has nothing to pronounce")
        return phonemes

    def many(self, texts: list[str]) -> list[list[str]]:
        """The phonemes of each text, as __call__ gives them, all in one fresh engine (~3 ms per sentence instead
        of ~15 ms for a fork each); a text with nothing to pronounce gives []."""
        return in_fresh_engine(_phonemize_here, list(texts))


def _phonemize_here(engine: Espeak, texts: list[str]) -> list[list[str]]:
    out = []
    for text in texts:
        engine.synth_here(text, EspeakPhonemizer.voice, 0)
        phonemes = [p for p, _ in merge_pauses(engine._events)]
        out.append(phonemes if any(p != PAUSE for p in phonemes) else [])
    return out
