"""New eSpeak timbres: more toy speakers than eSpeak ships variants.

NaturalSpeech 2 copies unseen voices because it trained on thousands of speakers (§4.1: MLS, 44K hours). eSpeak NG
ships about a hundred variants, 64 of which the toy corpus trains on. A variant is a small text file
(`espeak-ng-data/voices/!v/<name>`): per formant a frequency, height and width in percent of the default, the
pitch range in Hz, breathiness, roughness and a few more. This module draws new ones: a *base* variant (one of the
training variants, so its character carries over) with every formant frequency scaled by one vocal-tract factor
(shorter tract, higher formants) and a small per-formant jitter, heights and widths jittered, a pitch range that
goes with the tract (higher formants, higher voice, as in people), and a random amount of breath and roughness.

eSpeak reads variants only from its data folder, which lives in the installed package. `data_path()` builds a
private copy made of links (`.cache/espeak-ng-data` in the project: links to every stock entry, real files for the
new variants in `drawn/`), so the installed package is never written to and the stock voices sound exactly as
before.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

PRIVATE_ROOT = Path(__file__).resolve().parent.parent / ".cache" / "espeak-ng-data"
N_FORMANTS = 9                                      # eSpeak's formant table: 0..8
DRAWN = "drawn"                                     # the private folder's sub-folder of new variants


def stock_path() -> Path:
    """The data folder of the installed eSpeak NG (package espeakng-loader)."""
    import espeakng_loader
    return Path(espeakng_loader.get_data_path())


def _mirror(src: Path, dst: Path, real: tuple = ()):
    """dst mirrors src with links, but the sub-folders named in `real` are real folders mirrored in turn."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        target = dst / entry.name
        if target.is_symlink() and not target.exists():  # a link into a venv that has moved
            target.unlink()
        if entry.name in real and entry.is_dir():
            _mirror(entry, target, real)
        elif not target.exists() and not target.is_symlink():
            try:
                target.symlink_to(entry, target_is_directory=entry.is_dir())
            except FileExistsError:                  # another process made it meanwhile
                pass
            except OSError:                          # no symlinks (some Windows set-ups): copy instead
                (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, target)


def data_path() -> Path:
    """The private eSpeak data folder: links to the stock one's entries, and `drawn/` for new variants (built on
    first use; cheap to call again). `voices/` and `voices/!v/` are real folders of links, so that the path
    `voices/!v/../../drawn/<name>` (`selector`) leads to drawn/. The new variants stay out of `voices/`: eSpeak
    lists at most 349 voices and variants from there, and a longer list silently drops stock ones (en-us too)."""
    if not (PRIVATE_ROOT / DRAWN).is_dir() or not (PRIVATE_ROOT / "phontab").exists():
        _mirror(stock_path(), PRIVATE_ROOT, real=("voices", "!v"))
        (PRIVATE_ROOT / DRAWN).mkdir(exist_ok=True)
    return PRIVATE_ROOT


def selector(name: str) -> str:
    """How eSpeak is told to use new variant `name` ("en-us+" + this): a path from voices/!v to drawn/<name>."""
    return f"../../{DRAWN}/{name}"


def install(name: str, text: str):
    """Write new variant `name` into the private data folder (atomically; a no-op when it is already there)."""
    path = data_path() / DRAWN / name
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _formants(lines: list[str]) -> dict[int, list[int]]:
    """{formant index: [freq %, height %, width %]} of a variant file (100 100 100 where it does not say)."""
    table = {i: [100, 100, 100] for i in range(N_FORMANTS)}
    for line in lines:
        parts = line.split()
        if len(parts) >= 5 and parts[0] == "formant" and parts[1].isdigit() and int(parts[1]) < N_FORMANTS:
            table[int(parts[1])] = [int(float(x)) for x in parts[2:5]]
    return table


def _rebuilt(base: str, name: str, formant, pitch: tuple[int, int], extra: list[str]) -> str:
    """Variant file text: `base`'s lines with name, formants (formant(i, [freq, height, width]) -> the new three),
    pitch range and the `extra` lines replaced."""
    lines = (stock_path() / "voices" / "!v" / base).read_text(errors="replace").splitlines()
    table = _formants(lines)
    drop = ("formant", "pitch", "name", "breath", "roughness")
    out = [f"name {name}"] + [ln for ln in lines if not ln.split()[:1] or ln.split()[0] not in drop]
    out += [f"formant {i} " + " ".join(str(round(x)) for x in formant(i, table[i])) for i in range(N_FORMANTS)]
    return "\n".join(out + [f"pitch {pitch[0]} {pitch[1]}"] + extra) + "\n"


def raised(base: str, name: str, factor: float = 1.15, pitch: tuple[int, int] = (165, 270)) -> str:
    """A fixed (not drawn) higher timbre on stock variant `base`: every formant frequency × `factor`, the pitch
    range `pitch` Hz: a shorter vocal tract and a higher voice, as from a man's voice to a woman's."""
    return _rebuilt(base, name, lambda i, f: (f[0] * factor, f[1], f[2]), pitch, [])


ADULT_TRACT = (0.88, 1.18)
SMALL_TRACT = (1.25, 1.5)
SMALL_PITCH = (280, 460)       # caps on a small timbre's pitch range in Hz: higher, PyWorld's F0 tracker finds little


def uses_klatt(base: str) -> bool:
    """Whether stock variant `base` speaks through eSpeak's Klatt synthesiser (a `klatt` line), whose output at a
    child's pitch reaches full scale whatever the formant heights."""
    lines = (stock_path() / "voices" / "!v" / base).read_text(errors="replace").splitlines()
    return any(ln.split()[:1] == ["klatt"] for ln in lines)


def draw(base: str, name: str, rng: random.Random, tract_range: tuple[float, float] = ADULT_TRACT) -> str:
    """A new variant file built on stock variant `base`: its lines but formants, pitch, breath and roughness.

    Vocal-tract factor v ~ U(tract_range) scales every formant frequency (× U(0.96, 1.04) each); heights and widths
    × U(0.8, 1.2); pitch base 95·v³ Hz × U(0.85, 1.15), top × U(1.4, 1.9). With ADULT_TRACT (0.88–1.18) the base
    spans 55–180 Hz; with SMALL_TRACT (1.25–1.5: a child's or a small adult's shorter tract, like eSpeak's `zac`
    variant, formants × 1.45, 240–390 Hz) 160–280 Hz (SMALL_PITCH caps the base and the top), and heights
    × (1.18 / v)⁴ more, as more glottal pulses a second would otherwise push eSpeak's output past full scale.
    """
    tract = rng.uniform(*tract_range)
    jitter = [(rng.uniform(0.96, 1.04), rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2)) for _ in range(N_FORMANTS)]
    low = 95 * tract ** 3 * rng.uniform(0.85, 1.15)
    pitch = (round(low), round(low * rng.uniform(1.4, 1.9)))
    if tract > ADULT_TRACT[1]:
        pitch = (min(pitch[0], SMALL_PITCH[0]), min(pitch[1], SMALL_PITCH[1]))
    extra = ["breath " + " ".join(str(rng.randint(0, 3)) for _ in range(8))] if rng.random() < 0.5 else []
    gain = min(1.0, (ADULT_TRACT[1] / tract) ** 4)
    return _rebuilt(base, name,
                    lambda i, f: (f[0] * tract * jitter[i][0], f[1] * jitter[i][1] * gain, f[2] * jitter[i][2]),
                    pitch, extra + [f"roughness {rng.randint(0, 3)}"])

