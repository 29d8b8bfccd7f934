"""Zero-shot text-to-speech (paper §4.3): a sentence and a few seconds of someone's voice -> that voice saying it.

    python sample.py --ckpt checkpoints/toy/ldm.pt --text "Hello there." --prompt voice.wav --out out.wav
    python sample.py --ckpt checkpoints/toy/ldm.pt --list jobs.tsv          # rows: text <TAB> prompt.wav <TAB> out.wav

Pipeline: text -> the checkpoint's own front end (eSpeak phonemes for the toy corpus, g2p_en ARPAbet for LibriTTS)
-> phoneme IDs of the checkpoint's inventory; prompt audio -> mono 16 kHz, silence trimmed -> codec latent; then
NaturalSpeech2.generate (predicted durations and pitch, the chosen sampler) -> latent -> codec decoder -> wav.
Long text is split at sentence boundaries; the pieces are joined with a short pause.

Exit codes: 0 done; 2 bad command line; 3 checkpoint problem (missing, corrupt, wrong stage, codec mismatch);
4 prompt audio problem (unreadable, silent, clipped, shorter than 1 s after trimming or longer than 30 s);
5 text problem (empty, nothing pronounceable, a phoneme the model never saw). Errors are one line, no traceback.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

EXIT_CKPT, EXIT_PROMPT, EXIT_TEXT = 3, 4, 5
MIN_PROMPT_S, MAX_PROMPT_S = 1.0, 30.0
GAP_S = 0.15                                     # pause between sentences of a long text


class UserError(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def front_end(name: str):
    """The text -> phonemes function a checkpoint was trained with."""
    if name == "espeak-en-us-ipa":
        import toy
        return toy.EspeakPhonemizer()
    if name == "g2p_en-arpabet":
        import data
        from text import EnglishG2P, PUNCTUATION
        g2p = EnglishG2P()
        return lambda t: [data.PAUSE if p in PUNCTUATION else p for p in g2p(t)]
    raise UserError(f"the checkpoint uses an unknown text front end {name!r}", EXIT_CKPT)


def split_sentences(text: str) -> list[str]:
    """Sentence boundaries: . ! ? followed by space; pieces with no letters or digits are dropped."""
    if not isinstance(text, str) or not text.strip():
        raise UserError("the text is empty: give a sentence to speak", EXIT_TEXT)
    pieces = [p.strip() for p in re.split(r"(?<=[.!?])\s+", text.strip())]
    pieces = [p for p in pieces if re.search(r"\w", p)]
    if not pieces:
        raise UserError(f"the text {text!r} has nothing to pronounce", EXIT_TEXT)
    return pieces


def trim_silence(wav: np.ndarray, sr: int = 16000, threshold_db: float = -40.0) -> np.ndarray:
    """Drop leading/trailing 10 ms frames quieter than `threshold_db` relative to the loudest frame."""
    hop = sr // 100
    n = len(wav) // hop
    if n == 0:
        return wav
    energy = 10 * np.log10(np.mean(wav[: n * hop].reshape(n, hop) ** 2, 1) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() + threshold_db)
    return wav[loud[0] * hop: (loud[-1] + 1) * hop]


class Synthesizer:
    """Loads an ldm checkpoint and its codec once; `__call__(text, prompt_path, ...)` -> (wav float32, 16 kHz)."""

    def __init__(self, ckpt, codec_path=None, device: str = "cpu"):
        import codec as codec_lib
        import model as ns2
        from text import PhonemeSet
        try:
            self.model, self.meta = ns2.load_ns2(ckpt, device)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e), EXIT_CKPT) from None
        info = self.meta.get("codec") or {}
        codec_path = Path(codec_path or info.get("checkpoint", ""))
        if not codec_path.is_file():
            raise UserError(f"codec checkpoint {codec_path} not found: pass --codec (the codec this model was "
                            f"trained on)", EXIT_CKPT)
        if info.get("sha256") and hashlib.sha256(codec_path.read_bytes()).hexdigest()[:16] != info["sha256"]:
            raise UserError(f"{codec_path} is not the codec this model was trained on (sha256 {info['sha256']}...)",
                            EXIT_CKPT)
        try:
            self.codec = codec_lib.load_codec(codec_path, device)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e), EXIT_CKPT) from None
        self.phonemize = front_end(self.meta["front_end"])
        self.phoneme_set = PhonemeSet.from_list(self.meta["phonemes"])
        self.device = device

    def prompt_latent(self, path) -> torch.Tensor:
        import data
        try:
            wav = data.load_audio(path)
        except data.AudioError as e:
            raise UserError(f"prompt: {e}", EXIT_PROMPT) from None
        wav = trim_silence(wav)
        seconds = len(wav) / 16000
        if not MIN_PROMPT_S <= seconds <= MAX_PROMPT_S:
            raise UserError(f"prompt {path} has {seconds:.2f} s of speech after trimming silence; give "
                            f"{MIN_PROMPT_S:g}-{MAX_PROMPT_S:g} s (3 s works well)", EXIT_PROMPT)
        z, _ = self.codec.encode(torch.from_numpy(wav)[None].to(self.device))
        return z                                                              # (1, D, Tp)

    def phoneme_ids(self, sentence: str) -> torch.Tensor:
        try:
            ids = self.phoneme_set.encode(self.phonemize(sentence))
        except ValueError as e:                                               # TextError is a ValueError
            raise UserError(f"text: {e}", EXIT_TEXT) from None
        return torch.tensor([ids], device=self.device)

    @torch.no_grad()
    def __call__(self, text: str, prompt, steps=150, sampler="ode", temperature=None, duration_scale=1.0,
                 pitch_shift=0.0, guidance=1.0, seed=0, return_info=False):
        """-> wav (float32, 16 kHz); with return_info, (wav, dict(phonemes, durations, f0_hz)): the predicted frames
        per phoneme and the pitch predictor's F0 per frame (Hz, unvoiced frames interpolated, as in training).
        `pitch_shift` in semitones (converted to log-F0: n/12 · log 2)."""
        z_prompt = self.prompt_latent(prompt) if not torch.is_tensor(prompt) else prompt
        pieces, gap = [], np.zeros(int(GAP_S * 16000), np.float32)
        info = dict(phonemes=[], durations=[], f0_hz=[])
        for k, sentence in enumerate(split_sentences(text)):
            ids = self.phoneme_ids(sentence)
            gen = self.model.generate(ids, z_prompt, steps=steps, sampler=sampler,
                                      temperature=temperature, duration_scale=duration_scale,
                                      pitch_shift=pitch_shift / 12 * math.log(2), guidance=guidance,
                                      generator=torch.Generator().manual_seed(seed + k))
            frames = int(gen["frame_mask"].sum())
            if frames == 0:
                raise UserError(f"the model predicted 0 frames for {sentence!r}: an untrained or broken duration "
                                f"predictor? (try another checkpoint, or --duration-scale)", EXIT_CKPT)
            wav = self.codec.decode(gen["latent"])[0, : frames * self.codec.cfg.hop]
            pieces += [wav.float().cpu().numpy(), gap]
            info["phonemes"] += self.phoneme_set.decode(ids[0].tolist())
            info["durations"] += gen["durations"][0].tolist()
            info["f0_hz"] += torch.exp(gen["lf0"][0, :frames]).tolist()
        wav = np.concatenate(pieces[:-1])
        return (wav, info) if return_info else wav


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", type=Path, default=Path("checkpoints/toy/ldm.pt"), help="ldm checkpoint (train.py ldm)")
    ap.add_argument("--codec", type=Path, default=None, help="codec checkpoint (default: the one the ldm names)")
    ap.add_argument("--text", help="what to say")
    ap.add_argument("--prompt", type=Path, help="a few seconds of the voice to use (any format soundfile reads)")
    ap.add_argument("--out", type=Path, default=Path("out.wav"))
    ap.add_argument("--list", type=Path, help="batch mode: a TSV file of text, prompt, out rows")
    ap.add_argument("--steps", type=int, default=150, help="sampler steps (paper: 150)")
    ap.add_argument("--sampler", choices=["ode", "heun", "sde"], default="ode")
    ap.add_argument("--temperature", type=float, default=None, help="τ of the start noise N(0, 1/τ) (paper: 1.44)")
    ap.add_argument("--duration-scale", type=float, default=1.0, help="> 1 speaks slower")
    ap.add_argument("--pitch-shift", type=float, default=0.0, help="semitones")
    ap.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance on the prompt (1 = off)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    if (args.list is None) == (args.text is None and args.prompt is None) or \
            (args.list is None and (args.text is None or args.prompt is None)):
        ap.error("give --text and --prompt, or --list")
    if args.steps < 1:
        ap.error("--steps must be at least 1")
    try:
        jobs = [(args.text, args.prompt, args.out)] if args.list is None else read_list(args.list)
        synth = Synthesizer(args.ckpt, args.codec, args.device)
        import soundfile as sf
        for text, prompt, out in jobs:
            t0 = time.time()
            wav = synth(text, prompt, args.steps, args.sampler, args.temperature, args.duration_scale,
                        args.pitch_shift, args.guidance, args.seed)
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            sf.write(out, wav, 16000)
            print(f"{out}: {len(wav) / 16000:.2f} s in {time.time() - t0:.1f} s")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    return 0


def read_list(path: Path) -> list[tuple]:
    if not path.is_file():
        raise UserError(f"--list file {path} not found", 2)
    rows = [r for r in csv.reader(open(path, encoding="utf-8"), delimiter="\t") if r and not r[0].startswith("#")]
    bad = [i + 1 for i, r in enumerate(rows) if len(r) != 3]
    if bad or not rows:
        raise UserError(f"--list {path}: every row needs text<TAB>prompt<TAB>out (bad rows: {bad or 'no rows'})", 2)
    return [(t, Path(p), Path(o)) for t, p, o in rows]


if __name__ == "__main__":
    sys.exit(main())
