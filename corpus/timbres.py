"""New eSpeak timbres: more toy speakers than eSpeak ships variants.

NaturalSpeech 2 copies unseen voices because it trained on thousands of speakers (§4.1: MLS, 44K hours). eSpeak NG
ships about a hundred variants, 64 of which the toy corpus trains on. A variant is a small text file
(`espeak-ng-data/voices/!v/<name>`): per formant a frequency, height and width in percent of the default, the
pitch range in Hz, breathiness, roughness and a few more. This module draws new ones: a *base* variant (one of the
training variants, so its character carries over) with every formant frequency scaled by one vocal-tract factor
(shorter tract, higher formants) and a small per-formant jitter, heights and widths jittered, a pitch range that
goes with the tract (higher formants, higher voice, as in people), and a random amount of breath and roughness.

eSpeak reads variants only from its data folder, which lives in the installed package. `data_path()` builds a
private copy made of links (`.cache/espeak-ng-data` in the project: links to every stock file, real files for the
drawn variants), so the installed package is never written to and the stock voices sound exactly as before.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

PRIVATE_ROOT = Path(__file__).resolve().parent.parent / ".cache" / "espeak-ng-data"
N_FORMANTS = 9                                      # eSpeak's formant table: 0..8


def stock_path() -> Path:
    """The data folder of the installed eSpeak NG (package espeakng-loader)."""
    import espeakng_loader
    return Path(espeakng_loader.get_data_path())


def _link_tree(src: Path, dst: Path):
    """dst mirrors src: a real folder for `voices` and `voices/!v` (variants are added there), links elsewhere."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        target = dst / entry.name
        if entry.name in ("voices", "!v") and entry.is_dir():
            _link_tree(entry, target)
        elif not target.exists() and not target.is_symlink():
            try:
                target.symlink_to(entry, target_is_directory=entry.is_dir())
            except OSError:                          # no symlinks (some Windows set-ups): copy instead
                (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, target)


def data_path() -> Path:
    """The private eSpeak data folder (built on first use; cheap to call again)."""
    if not (PRIVATE_ROOT / "phontab").exists() or not (PRIVATE_ROOT / "voices" / "!v").is_dir():
        _link_tree(stock_path(), PRIVATE_ROOT)
    return PRIVATE_ROOT


def install(name: str, text: str):
    """Write variant `name` into the private data folder (atomically; a no-op when it is already there)."""
    path = data_path() / "voices" / "!v" / name
    if path.exists() and not path.is_symlink() and path.read_text() == text:
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


def draw(base: str, name: str, rng: random.Random) -> str:
    """A new variant file built on stock variant `base`: its lines but formants, pitch, breath and roughness.

    Vocal-tract factor v ~ U(0.88, 1.18) scales every formant frequency (× U(0.96, 1.04) each); heights and widths
    × U(0.8, 1.2); pitch base 95·v³ Hz × U(0.85, 1.15) (75–190 Hz for the extremes), range × U(1.4, 1.9).
    """
    lines = (stock_path() / "voices" / "!v" / base).read_text(errors="replace").splitlines()
    formants = _formants(lines)
    keep = [ln for ln in lines if ln.split()[:1] not in (["formant"], ["pitch"], ["name"], ["breath"],
                                                          ["roughness"])]
    tract = rng.uniform(0.88, 1.18)
    out = [f"name {name}"] + keep
    for i in range(N_FORMANTS):
        freq, height, width = formants[i]
        out.append(f"formant {i} {round(freq * tract * rng.uniform(0.96, 1.04))} "
                   f"{round(height * rng.uniform(0.8, 1.2))} {round(width * rng.uniform(0.8, 1.2))}")
    low = 95 * tract ** 3 * rng.uniform(0.85, 1.15)
    out.append(f"pitch {round(low)} {round(low * rng.uniform(1.4, 1.9))}")
    if rng.random() < 0.5:
        out.append("breath " + " ".join(str(rng.randint(0, 3)) for _ in range(8)))
    out.append(f"roughness {rng.randint(0, 3)}")
    return "\n".join(out) + "\n"

