"""The toy corpus's sentences: a deterministic generator whose words cover every phoneme of English.

The toy corpus (corpus/toy.py) is read by eSpeak NG with its `en-us` front end; a model trained on it can only say the
phonemes its training split contains. So besides natural sentence shapes over a small vocabulary, the generator
fills word-list shapes ("The next words are bonfire, typewritten, and before.") with words from corpus/toy_words.json,
chosen by tools/toy_words.py over the whole CMU dictionary: for each phoneme the `en-us` front end emits for English
words (all but a few rare ones), the most frequent words holding it. Each list word is drawn for the phoneme counted
least so far, so every phoneme reaches about 30 occurrences in the default training split (`python -m corpus.data stats`
prints the coverage). No eSpeak call is made here: the word phonemes are stored in corpus/toy_words.json.
"""
from __future__ import annotations

import json
import os
import random
import re

# ----------------------------------------------------------------------------------------------------------------
# Sentences: a small deterministic generator. Natural sentence shapes over a small vocabulary, and word-list shapes
# whose words are chosen to cover every phoneme the `en-us` front end emits for English (corpus/toy_words.json, made by
# tools/toy_words.py from the CMU dictionary): each list word is picked for the phoneme seen least so far.
# ----------------------------------------------------------------------------------------------------------------
_WORDS = {
    "adj": "quiet bright yellow cheerful tired clever ancient wooden frozen gentle noisy smooth purple curious "
           "heavy hungry lazy lucky modern polite rough shiny sleepy tiny usual vivid warm young zealous awkward "
           "beige thorough genuine pleasant",
    "noun": "teacher garden violin kitten engine village farmer mirror pilot window blanket rabbit station "
            "library dolphin journey measure treasure bridge thunder pencil orchestra chimney giraffe oyster "
            "mountain voyage cushion shepherd vision feather judge wagon",
    "verb": "painted carried watched visited borrowed measured followed pushed cleaned noticed joined shared "
            "thanked passed reached enjoyed opened fixed chose showed",
    "adv": "slowly quietly yesterday often happily nearly sometimes early together outside gracefully again",
    "place": "near the harbour|behind the old church|under a thick blanket|across the frozen river|at the "
             "village fair|inside the mountain cave|by the yellow window|on the noisy train|beyond the "
             "northern hills|in the busy kitchen",
    "name": "Joseph Martha Oliver Ruth Timothy Grace Hugo Judith Vincent Zoe Charles Sheila Boyd Nigel",
    "time": "on Monday|at noon|every morning|last autumn|in the evening|before the storm|after lunch|in June",
}
WORD_LISTS = {k: v.split("|") if "|" in v else v.split() for k, v in _WORDS.items()}
_SHAPES = [
    "The {adj} {noun} {verb} the {noun2} {place}.",
    "{name} {verb} a {adj} {noun} {time}.",
    "Did the {noun} {adv} watch the {adj} {noun2} {place}?",
    "{name} and {name2} {adv} {verb} {num} {adj} {noun}s.",
    "Why does the {adj} {noun} sound so {adj2} {time}?",
    "{time}, the {noun} {verb} the {adj} {noun2}, and {name} laughed.",
    "Please bring the {adj} {noun} to {name} {time}.",
    "There were {num} {noun}s {place}, all of them {adj}.",
    "{name} thought the {noun} was {adj}, but the {noun2} was {adj2}.",
    "Measure the {noun} {adv}, then leave it {place}.",
]
_LIST_SHAPES = [                       # {w}: a coverage word
    "{name} wrote {w}, {w} and {w} on the card.",
    "The next words are {w}, {w}, and {w}.",
    "Say {w} and {w} to {name} {time}.",
    "Was it {w} or {w}?",
    "{w}, {w}, {w}: {name} read them all {adv}.",
    "We heard {w} and {w} {place}, then {w}.",
]
LIST_SHARE = 0.7                       # share of sentences drawn from the word-list shapes
_VOCAB = None


def coverage_vocabulary() -> dict:
    """corpus/toy_words.json: kept phonemes {phoneme: CMU words holding it}, words_for {phoneme: words}, phonemes_of
    {word: its phonemes alone}, dropped {phoneme: CMU words} (left to text.closest_known)."""
    global _VOCAB
    if _VOCAB is None:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "toy_words.json"), encoding="utf-8") as f:
            _VOCAB = json.load(f)
    return _VOCAB


def sentence(rng: random.Random, counts: dict | None = None) -> str:
    """One sentence: a natural shape, or (with probability LIST_SHARE when `counts` is given) a word-list shape
    whose every word is drawn for the kept phoneme with the lowest count in `counts`. `counts` (phoneme ->
    occurrences so far) is updated with the phonemes of every word of the sentence."""
    vocab = coverage_vocabulary()
    fill = {k: rng.choice(WORD_LISTS[k]) for k in WORD_LISTS}
    fill.update(noun2=rng.choice(WORD_LISTS["noun"]), adj2=rng.choice(WORD_LISTS["adj"]),
                name2=rng.choice(WORD_LISTS["name"]), num=str(rng.randint(2, 99)))
    if counts is not None and rng.random() < LIST_SHARE:
        shape, picks = rng.choice(_LIST_SHAPES), []
        for _ in range(shape.count("{w}")):
            low = min(counts.get(p, 0) for p in vocab["kept"])
            target = rng.choice([p for p in vocab["kept"] if counts.get(p, 0) == low])
            word = rng.choice(vocab["words_for"][target])
            for p in vocab["phonemes_of"][word]:
                counts[p] = counts.get(p, 0) + 1
            picks.append(word)
        s = re.sub(r"\{w\}", lambda _: picks.pop(0), shape).format(**fill)
    else:
        s = rng.choice(_SHAPES).format(**fill)
        for w in re.findall(r"[A-Za-z]+", s) if counts is not None else ():
            for p in vocab["phonemes_of"].get(w.lower(), ()):
                counts[p] = counts.get(p, 0) + 1
    return s[0].upper() + s[1:]


def sentences(n: int, seed: int, exclude: set[str] = frozenset()) -> list[str]:
    """`n` distinct sentences for `seed`, none of them in `exclude` (to keep test texts unseen in training).
    Deterministic; phoneme counts run over the whole stream, so any prefix of it (the training split is the
    first part) is balanced."""
    rng, out, seen, counts = random.Random(seed), [], set(exclude), {}
    while len(out) < n:
        s = sentence(rng, counts)
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out
