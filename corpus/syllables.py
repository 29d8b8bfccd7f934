"""Syllables of a sung word (NaturalSpeech 2, §5): a word's phonemes cut into the syllables its notes carry, and a
syllable's phonemes timed over its notes' frames. corpus/score.py's render uses both.

    syllabify(['EH1', 'K', 'S', 'T', 'R', 'AH0'], 2) -> ([([], ['EH1'], ['K']), (['S', 'T', 'R'], ['AH0'], [])], [])
"""
from __future__ import annotations

from corpus.text import is_vowel


def syllabify(phonemes: list, n: int) -> tuple:
    """One word's phonemes -> ([(onset, nucleus, coda) or None for each of its n syllables], problems).

    Syllables are cut at vowel nuclei (text.is_vowel). Between two nuclei a single consonant starts the next
    syllable; of two or more, the first closes the previous syllable and the rest start the next. Consonants
    before the first nucleus are its onset, those after the last the last syllable's coda. More nuclei than
    syllables: the extra nuclei (and the consonants between them) join the last syllable's nucleus. Fewer: the
    syllables left without one are None (score.render holds the syllable before over their notes). No vowel at all:
    the last sound is the nucleus. `problems` names each of these cases, for score.render's warnings.
    """
    problems, nuclei = [], [i for i, p in enumerate(phonemes) if is_vowel(p)]
    if not nuclei:
        nuclei = [len(phonemes) - 1]
        problems.append(f"no vowel in /{' '.join(phonemes)}/, {phonemes[-1]!r} is held")
    if len(nuclei) > n:
        problems.append(f"{len(nuclei)} vowels for {n} syllable(s), the extra ones join the last syllable")
    elif len(nuclei) < n:
        problems.append(f"{len(nuclei)} vowel(s) for {n} syllables, those without one hold the one before")
    groups = [[i, i] for i in nuclei[:n]]                   # first and last phoneme of each nucleus
    groups[-1][1] = nuclei[-1]
    cuts = [0] + [end + 1 + (start - end - 1 >= 2) for (_, end), (start, _) in zip(groups, groups[1:])]
    cuts.append(len(phonemes))
    parts = [(phonemes[cuts[g]:first], phonemes[first:last + 1], phonemes[last + 1:cuts[g + 1]])
             for g, (first, last) in enumerate(groups)]
    return parts + [None] * (n - len(parts)), problems


def _consonant_frames(count: int, budget: int, each: int) -> list:
    """`count` consonants of `each` frames, shrunk evenly to fit in `budget` frames (but never under 1 frame)."""
    if count * each <= budget:
        return [each] * count
    q, r = divmod(budget, count)
    return [max(1, q + (i < r)) for i in range(count)]


def syllable_frames(onset: list, nucleus: list, coda: list, frames: list, each: int):
    """Frames of each phoneme of a syllable sung over notes of `frames` frames: (lengths, vowel kept half), or
    None if the notes are too short. Onset consonants take `each` frames at the start of the first note, coda
    consonants at the end of the last, shrunk so that the vowel keeps at least half of each of those notes (when
    one frame each still fits); the nucleus phonemes share all the remaining frames evenly."""
    if len(frames) == 1:                                   # onset and coda share the note's half
        both = _consonant_frames(len(onset) + len(coda), frames[0] // 2, each)
        on, off, half = both[:len(onset)], both[len(onset):], sum(both) <= frames[0] // 2
    else:
        on, off = (_consonant_frames(len(c), n // 2, each) for c, n in ((onset, frames[0]), (coda, frames[-1])))
        half = sum(on) <= frames[0] // 2 and sum(off) <= frames[-1] // 2
    vowel, m = sum(frames) - sum(on) - sum(off), len(nucleus)
    if vowel < m:
        return None
    return on + [vowel // m + (i < vowel % m) for i in range(m)] + off, half
