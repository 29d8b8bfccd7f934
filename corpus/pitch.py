"""Musical pitch for singing (NaturalSpeech 2, §5): note names and MIDI numbers, MIDI <-> Hz, and how far an F0
contour lies from a reference in cents.

    note_number('C#4') -> 61.0;  midi_to_hz(69) -> 440.0;  f0_rmse_cents(f0_hz, ref_hz, voiced) -> cents
"""
from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np

_NAME = re.compile(r"([A-Ga-g])([#b]?)(-?\d+)")
_STEPS = dict(C=0, D=2, E=4, F=5, G=7, A=9, B=11)


def parse_number(text: str) -> float:
    """'1' -> 1.0, '1/2' -> 0.5, '1.5' -> 1.5, '60.5' -> 60.5; nan for anything that is not a number or a fraction."""
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError, OverflowError):
        return float("nan")


def note_number(name: str) -> float:
    """'C4' -> 60.0, 'C#4' -> 61.0, 'Db4' -> 61.0, 'Bb3' -> 58.0, '60.5' -> 60.5 (A4 = 69). ValueError if unknown."""
    match = _NAME.fullmatch(name.strip())
    if match:
        letter, accidental, octave = match.groups()
        return float(12 * (int(octave) + 1) + _STEPS[letter.upper()] + {"#": 1, "b": -1, "": 0}[accidental])
    midi = parse_number(name)
    if not math.isfinite(midi):
        raise ValueError(f"unknown note {name!r} (use a MIDI number or a name like A4, C#4, Bb3)")
    return midi


def midi_to_hz(midi):
    """440 * 2**((midi - 69) / 12): 69 (A4) -> 440.0, 60 (C4) -> 261.63. Scalars or arrays."""
    return 440.0 * np.power(2.0, (np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def hz_to_midi(hz):
    """69 + 12 * log2(hz / 440); nan where hz <= 0 or not finite. Scalars or arrays."""
    hz = np.asarray(hz, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hz > 0, 69.0 + 12.0 * np.log2(np.where(hz > 0, hz, 1.0) / 440.0), np.nan)


def _compared_cents(f0_hz, ref_hz, voiced) -> np.ndarray:
    """1200 * log2(f0 / ref) on frames where `voiced` (None: all), ref is finite and > 0, and f0 > 0."""
    f0, ref = np.asarray(f0_hz, np.float64), np.asarray(ref_hz, np.float64)
    if f0.shape != ref.shape:
        raise ValueError(f"f0 has {f0.shape} frames, the reference {ref.shape}")
    mask = np.isfinite(ref) & (ref > 0) & np.isfinite(f0) & (f0 > 0)
    if voiced is not None:
        mask &= np.asarray(voiced, bool)
    return 1200.0 * np.log2(f0[mask] / ref[mask])


def f0_rmse_cents(f0_hz, ref_hz, voiced) -> float:
    """Root mean square of 1200 * log2(f0 / ref) over the compared frames (see _compared_cents); nan if none."""
    cents = _compared_cents(f0_hz, ref_hz, voiced)
    return float(np.sqrt(np.mean(cents ** 2))) if cents.size else float("nan")


def octave_errors(f0_hz, ref_hz, voiced) -> float:
    """Share of the compared frames more than 600 cents (half an octave) off the reference; nan if none."""
    cents = _compared_cents(f0_hz, ref_hz, voiced)
    return float(np.mean(np.abs(cents) > 600.0)) if cents.size else float("nan")
