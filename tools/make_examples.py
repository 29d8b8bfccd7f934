"""Write the example prompts of examples/ (examples/README.md says what each is and where it comes from).

    python -m tools.make_examples toy                                   # the toy voice's prompt and truth
    python -m tools.make_examples real --librispeech PATH/LibriSpeech   # two native prompts from LibriSpeech

`toy`: a held-out toy voice (an eSpeak timbre no training voice uses) saying a sentence, the prompt; the same
voice saying "Please bring the violin.", the ground truth the README's commands compare against, and that in white
noise at 10 dB SNR (the enhancement example); a low held-out voice saying the prompt's sentence (the conversion
example's target). eSpeak renders them reproducibly (corpus/toy.py), so the files are the same on every run.

`real`: a 3-5 second cut of one utterance of each of two held-out native speakers (a woman and a man of
`--test-speakers mini-librispeech`, corpus/layouts.py), cut at the quietest 20 ms near each end so no word is
clipped, at 16 kHz.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from corpus import features, toy

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TOY_VOICE = "ho04_grandma"                      # a higher held-out voice: the harder case for the toy model
TOY_PROMPT_TEXT = "The old man sat by the window and watched the rain fall on the street."
TOY_TRUTH_TEXT = "Please bring the violin."
TOY_LOW_VOICE = "ho10_edward2"                  # a low held-out voice, the target of the conversion example
TOY_SNR_DB = 10                                 # toy_noisy.wav: toy_truth.wav in white noise at this SNR
REAL = {                                         # file -> (utterance, what it says); speakers held out of training
    "libri_female_4640.wav": ("train-clean-5/4640/19188/4640-19188-0004", "entered the tap room they emerged"),
    "libri_male_2136.wav": ("train-clean-5/2136/5147/2136-5147-0004", "but she may also be about the most"),
}


def write_toy(out: Path) -> list[Path]:
    voices = {v.name: v for v in toy.make_voices(toy.HELDOUT_VARIANTS, 0, "ho")}
    written = []
    for name, voice, text, seed in (("toy_prompt.wav", TOY_VOICE, TOY_PROMPT_TEXT, 1),
                                    ("toy_truth.wav", TOY_VOICE, TOY_TRUTH_TEXT, 2),
                                    ("toy_prompt_low.wav", TOY_LOW_VOICE, TOY_PROMPT_TEXT, 3)):
        wav, _, _ = toy.render(text, voices[voice], seed)
        sf.write(out / name, wav, features.SAMPLE_RATE, subtype="PCM_16")
        written.append(out / name)
    truth = features.load_audio(out / "toy_truth.wav")
    noise = np.random.default_rng(0).standard_normal(len(truth)).astype(np.float32)
    noise *= np.sqrt(np.mean(truth ** 2) / np.mean(noise ** 2) / 10 ** (TOY_SNR_DB / 10))
    sf.write(out / "toy_noisy.wav", truth + noise, features.SAMPLE_RATE, subtype="PCM_16")
    return written + [out / "toy_noisy.wav"]


def quietest(wav: np.ndarray, lo: float, hi: float, sr: int) -> int:
    """The start sample of the quietest 20 ms window between `lo` and `hi` seconds."""
    win = sr // 50
    starts = range(int(lo * sr), min(int(hi * sr), len(wav) - win), win // 4)
    return min(starts, key=lambda s: float(np.sum(wav[s:s + win] ** 2)))


def cut(wav: np.ndarray, sr: int, seconds: float = 4.0) -> np.ndarray:
    """About `seconds` of speech: from the quietest point in the first 0.4 s to the quietest in `seconds` ± 0.6 s."""
    a = quietest(wav, 0.0, 0.4, sr)
    b = quietest(wav, a / sr + seconds - 0.6, a / sr + seconds + 0.6, sr)
    return wav[a:b]


def write_real(out: Path, root: Path) -> list[Path]:
    written = []
    for name, (stem, _) in REAL.items():
        hits = sorted(root.glob(stem + ".*"))
        if not hits:
            raise FileNotFoundError(f"{root / stem}.*: not found (give the LibriSpeech folder that holds train-clean-5)")
        wav = cut(features.load_audio(hits[0]), features.SAMPLE_RATE)
        sf.write(out / name, wav, features.SAMPLE_RATE, subtype="PCM_16")
        written.append(out / name)
    return written


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tools.make_examples", description=__doc__.split("\n")[0])
    ap.add_argument("which", choices=["toy", "real"])
    ap.add_argument("--librispeech", type=Path, help="real: the LibriSpeech folder (holding train-clean-5)")
    ap.add_argument("--out", type=Path, default=EXAMPLES)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.which == "real" and args.librispeech is None:
            raise ValueError("real needs --librispeech PATH")
        args.out.mkdir(parents=True, exist_ok=True)
        written = write_toy(args.out) if args.which == "toy" else write_real(args.out, args.librispeech)
    except (ValueError, FileNotFoundError, features.AudioError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"{path}: {sf.info(str(path)).duration:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
