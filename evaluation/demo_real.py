"""make demo's real-voice stage: the real-speech model (checkpoints/real/) speaks one sentence it never trained on in
each of the two native voices of examples/ (3-5 s cuts of LibriSpeech speakers held out of its training), and
each output is scored: its speaker similarity to its prompt (Resemblyzer, as SIM in the tables) and the words the
offline recogniser (pocketsphinx) hears, with their word error rate.

    python -m evaluation.demo --stage real            # writes out/real/<voice>.wav and results.md
"""
from __future__ import annotations

from pathlib import Path

import soundfile as sf

import sample
from corpus import features
from evaluation import asr, metrics

ROOT = Path(__file__).resolve().parents[1]
REAL_LDM = ROOT / "checkpoints" / "real" / "ldm.pt"
VOICES = {"female_4640": ROOT / "examples" / "libri_female_4640.wav",
          "male_2136": ROOT / "examples" / "libri_male_2136.wav"}
TEXT = "The garden was quiet after the rain, and the birds began to sing again."


def run_real(out: Path, ckpt: Path = REAL_LDM, text: str = TEXT, seed: int = 0) -> list[dict]:
    """One row per example voice: voice, prompt, SIM to the prompt, what pocketsphinx heard, WER; wavs to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    synth = sample.Synthesizer(ckpt)
    rows = []
    for name, prompt in VOICES.items():
        wav = synth(text, prompt, seed=seed)
        sf.write(out / f"{name}.wav", wav, features.SAMPLE_RATE)
        sim = metrics.cosine(metrics.speaker_embedding(wav), metrics.speaker_embedding(features.load_audio(prompt)))
        heard = asr.transcribe(wav)
        rows.append(dict(voice=name, prompt=str(prompt.relative_to(ROOT)), seconds=len(wav) / features.SAMPLE_RATE,
                         sim_prompt=sim, heard=heard, wer=asr.word_error_rate([text], [heard])))
    return rows


def format_rows(rows: list[dict], text: str = TEXT) -> str:
    lines = [f'"{text}"', "", "| voice (prompt) | length s | SIM to prompt ↑ | pocketsphinx heard | WER ↓ |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['voice']} ({r['prompt']}) | {r['seconds']:.1f} | {r['sim_prompt']:.3f} | {r['heard']} | "
              f"{r['wer']:.2f} |" for r in rows]
    return "\n".join(lines)


def run_stage(out: Path) -> str:
    """The stage: wavs and results.md in `out`; returns the table."""
    table = format_rows(run_real(out))
    (out / "results.md").write_text(table + "\n")
    return table
