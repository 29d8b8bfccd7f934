"""Paper §5: voice conversion, speech enhancement and singing with the trained zero-shot TTS model, no retraining.

Voice conversion and speech enhancement are two-step "source-aware, then target-aware" diffusion:

    source-aware   z_1 = z_0 + ∫₀¹ −½ (z_t + Σ_t⁻¹(ρ(ŝ_θ(z_t, t, c_src), t) − z_t)) β_t dt      (the forward ODE,
                   z_0 = the source's codec latent, c_src its own phonemes, durations and pitch, prompt = source)
    target-aware   the reverse probability-flow ODE from that z_1 (no fresh noise), with the target's condition:
                   VC: the source's phonemes and durations, pitch predicted for the target prompt, target prompt;
                   SE: the source's phonemes, durations and pitch, a clean prompt (the noisy one was used above).

Singing: the score gives the phonemes, their durations and the frame-level pitch (corpus/score.py), which replace the
duration and pitch predictors' outputs; the prompt is ordinary speech. `pitch_from` copies the melody and timing of
a recording instead: its pitch contour, and phoneme durations from the aligner on its lyrics.

What the user supplies (sample.py):
    VC   --convert SRC.wav --source-text "its transcript" --prompt TARGET.wav
    SE   --enhance NOISY.wav --source-text "its transcript" --prompt CLEAN.wav [--noisy-prompt NOISY_PROMPT.wav]
         (the noisy prompt shares the source's noise, e.g. another stretch of the same recording; default: the
         noisy source itself)
    sing --score SONG.txt|SONG.mid --prompt VOICE.wav      or     --pitch-from SUNG.wav --text "its lyrics" --prompt
The source's phoneme durations come from the built-in aligner (align.py; --aligner, default the one shipped beside
the model: checkpoints/toy/aligner.pt for the toy model, the aligner.pt that `corpus/data.py prepare` wrote for LibriTTS).

Departures from the paper (docs/departures.md): the forward ODE starts at t = 0.03, not 0 (diffusion.inversion_grid);
`noise` > 0 blends fresh noise into the inverted z_1 (an option, 0 = the paper); a long score is sung phrase by phrase
(split at its rests), because the toy model never saw utterances longer than ~6 s.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from corpus import features
from corpus.inputs import note
from model import Prosody, Sampling

SOURCE_MIN_S, SOURCE_MAX_S = 0.5, 30.0       # a VC/SE source shorter or longer than this is refused
SAMPLER, STEPS = "ode", 150                   # §5 runs the paper's Euler ODE: the reverse steps mirror the inversion's
SING_STEPS = 300                              # §5: singing uses more sampling steps than speech (150)


class TaskError(ValueError):
    """A user mistake in a §5 task: one line, and the kind of input at fault (sample.py maps it to an exit code):
    "usage" (an option), "ckpt" (a checkpoint or aligner), "source" (VC/SE source audio), "score", "text"."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class Source:
    """A VC/SE source ready for the source-aware step: phoneme IDs (N,), durations (N,) codec frames summing to T,
    its codec latent (1, D, T), log-F0 per frame (T,) (unvoiced frames interpolated), the audio itself."""
    ids: torch.Tensor
    durations: torch.Tensor
    latent: torch.Tensor
    lf0: torch.Tensor
    wav: np.ndarray


def load_source(path, what: str = "source") -> np.ndarray:
    """Source audio -> mono 16 kHz float32, leading/trailing silence trimmed, SOURCE_MIN_S-SOURCE_MAX_S long."""
    try:
        wav = features.load_audio(path, max_clipped=1.0)
    except features.AudioError as e:
        raise TaskError(f"{what}: {e}", "source") from None
    wav = features.trim_silence(wav)
    seconds = len(wav) / features.SAMPLE_RATE
    if not SOURCE_MIN_S <= seconds <= SOURCE_MAX_S:
        raise TaskError(f"{what} {path} has {seconds:.2f} s of sound after trimming silence; give "
                        f"{SOURCE_MIN_S:g}-{SOURCE_MAX_S:g} s (split a longer recording)", "source")
    return wav


def default_aligner(ckpt: Path) -> Path:
    """The aligner shipped beside a model checkpoint (checkpoints/toy/aligner.pt beside checkpoints/toy/ldm.pt)."""
    return Path(ckpt).parent / "aligner.pt"


def load_aligner(path, synth):
    """An aligner checkpoint whose phoneme inventory and front end are the model's, or a TaskError (kind "ckpt")."""
    import align
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"no aligner at {path}: give --aligner (align.py fit, or the aligner.pt that corpus/data.py "
                        f"prepare wrote into the model's data cache)", "ckpt")
    try:
        net, inventory = align.load(path)
    except Exception as e:                                       # a corrupt file: torch raises many kinds
        raise TaskError(f"{path} is not a readable aligner checkpoint ({type(e).__name__})", "ckpt") from None
    if inventory != synth.phoneme_set.to_list():
        raise TaskError(f"aligner {path} was fitted on another phoneme inventory than the model's", "ckpt")
    return net


def align_text(synth, aligner, wav: np.ndarray, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Phoneme IDs (N,) of `text` in the model's inventory and their durations (N,) in codec frames for `wav`
    (summing to len(wav) // hop), by the built-in aligner (align.py: forward-sum alignment + MAS)."""
    import align
    sentences = synth.sentences(text)
    if not sentences:
        raise TaskError("the source text has nothing an English front end can read", "text")
    ids = torch.cat([synth.phoneme_ids(s)[0] for s in sentences]).cpu().numpy()      # (N,)
    T = len(wav) // features.HOP
    if T < len(ids):
        raise TaskError(f"{len(wav) / features.SAMPLE_RATE:.2f} s of audio is too short for the {len(ids)} "
                        f"phonemes of its text: is it the right transcript?", "source")
    with torch.no_grad():
        (native,) = align.durations(aligner, [(ids, align.mel_frames(wav, aligner.cfg))])
    d = align.to_codec_frames(native, T, aligner.cfg.hop)
    return torch.as_tensor(ids).long(), torch.as_tensor(d).long()


def source_lf0(wav: np.ndarray, what: str = "source") -> torch.Tensor:
    """log F0 per codec frame (T,), PyWorld, unvoiced frames interpolated (the prior's pitch input)."""
    try:
        lf0, _ = features.extract_pitch(wav)
    except features.AudioError as e:
        raise TaskError(f"{what}: {e}", "source") from None
    return torch.from_numpy(lf0)


def prepare_source(synth, wav: np.ndarray, text: str | None = None, aligner=None, ids=None,
                   durations=None) -> Source:
    """A Source from audio and either its transcript + an aligner, or known phoneme IDs and durations (the toy
    corpus's exact ones, for measuring). The audio is cut to a whole number of codec frames."""
    T = len(wav) // features.HOP
    wav = wav[: T * features.HOP]
    if durations is None:
        if text is None or aligner is None:
            raise TaskError("the source needs its transcript (--source-text) and an aligner", "usage")
        ids, durations = align_text(synth, aligner, wav, text)
    ids, durations = torch.as_tensor(ids).long(), torch.as_tensor(durations).long()
    if int(durations.sum()) != T:
        raise ValueError(f"durations sum to {int(durations.sum())} frames, the source has {T}")
    with torch.no_grad():
        latent, _ = synth.codec.encode(torch.from_numpy(wav)[None].to(synth.device))
    latent = latent[:, :, :T]
    try:
        lf0 = source_lf0(wav)
    except TaskError:                                  # e.g. speech buried in noise: PyWorld finds no voicing
        lf0 = predicted_lf0(synth, ids, durations, latent)
        note("no voiced frame found in the source: its pitch is predicted (from the source as the prompt)")
    return Source(ids, durations, latent, lf0, wav)


def predicted_lf0(synth, ids: torch.Tensor, durations: torch.Tensor, prompt_latent: torch.Tensor) -> torch.Tensor:
    """The pitch predictor's log-F0 per frame (T,) for given phonemes and durations, in the prompt's voice."""
    m, dev = synth.model, synth.device
    ids, durations = ids[None].to(dev), durations[None].to(dev)
    mask = torch.ones(1, prompt_latent.shape[-1], dtype=torch.bool, device=dev)
    with torch.no_grad():
        prompt_h = m.encode_prompt(m.normalize(prompt_latent), mask)
        return m.prior(ids, ids != 0, prompt_h, mask, durations=durations)["lf0"][0].cpu()


def _decode(synth, latent: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return synth.codec.decode(latent)[0].float().cpu().numpy()


def _two_step(synth, src: Source, source_prompt, target_prompt, lf0_target, steps: int, noise: float,
              seed: int) -> dict:
    """Source-aware inversion with `source_prompt`, then the target-aware reverse ODE with `target_prompt`."""
    model, dev = synth.model, synth.device
    ids, dur = src.ids[None].to(dev), src.durations[None].to(dev)
    z1 = model.invert(ids, src.latent, source_prompt, dur, src.lf0[None].to(dev), steps=steps)
    if noise > 0:
        # Departure from the paper (an option, default 0): a share of fresh noise, z_1 ← √(1 − λ²) z_1 + λ ε.
        eps = torch.randn(z1.shape, generator=torch.Generator().manual_seed(seed)).to(dev)
        z1 = (1 - noise ** 2) ** 0.5 * z1 + noise * eps / model.cfg.sde.temperature ** 0.5
    lf0 = None if lf0_target is None else lf0_target[None].to(dev)
    out = model.generate(ids, target_prompt, Sampling(steps, SAMPLER), prosody=Prosody(dur, lf0), start=z1)
    return dict(wav=_decode(synth, out["latent"]), z1=z1, lf0=out["lf0"][0].cpu())


def convert(synth, src: Source, target_prompt: torch.Tensor, steps: int = STEPS, noise: float = 0.0,
            seed: int = 0) -> dict:
    """Voice conversion (§5): the source's words and timing in the target prompt's voice, with pitch predicted for
    that voice. target_prompt (1, D, Tp): a codec latent (Synthesizer.prompt_latent). -> dict(wav, z1, lf0)."""
    return _two_step(synth, src, src.latent, target_prompt, None, steps, noise, seed)


def enhance(synth, src: Source, clean_prompt: torch.Tensor, noisy_prompt: torch.Tensor | None = None,
            steps: int = STEPS, noise: float = 0.0, seed: int = 0) -> dict:
    """Speech enhancement (§5): invert the noisy source with a noisy prompt sharing its noise (default: the source
    itself), then regenerate with a clean prompt and the source's phonemes, durations and pitch. -> dict(wav, ...)."""
    noisy = src.latent if noisy_prompt is None else noisy_prompt
    return _two_step(synth, src, noisy, clean_prompt, src.lf0, steps, noise, seed)


def phrases(durations: np.ndarray, ids: list, pause_id: int, min_pause: int = 8) -> list[tuple[int, int]]:
    """Split a sung sequence at its pauses of ≥ min_pause frames: [(first phoneme, end phoneme)] of each phrase,
    pauses excluded. Every phoneme that is not such a pause belongs to exactly one phrase."""
    cut = [i for i, (p, d) in enumerate(zip(ids, durations)) if p == pause_id and d >= min_pause]
    out, start = [], 0
    for i in cut + [len(ids)]:
        if i > start:
            out.append((start, i))
        start = i + 1
    return out


def sing_frames(synth, phonemes: list, durations: np.ndarray, f0_hz: np.ndarray, prompt, steps: int = SING_STEPS,
                seed: int = 0, batch_size: int = 8) -> np.ndarray:
    """Sing given phonemes with given durations (codec frames) and F0 (Hz per frame) in the prompt's voice:
    phrase by phrase (`phrases`), pauses rendered as silence, so the output is exactly Σ durations frames long."""
    ids, changed = synth.phoneme_set.map_unknown(list(phonemes))
    ids = synth.phoneme_set.encode(ids)
    durations = np.asarray(durations, np.int64)
    bounds = np.concatenate([[0], np.cumsum(durations)])
    lf0 = np.log(np.maximum(np.asarray(f0_hz, np.float64), 1.0)).astype(np.float32)
    pause_id = synth.phoneme_set.encode([features.PAUSE])[0]
    parts = phrases(durations, ids, pause_id)
    jobs = [("", prompt, seed + k, dict(phonemes=ids[a:b], durations=durations[a:b],
                                        lf0=lf0[bounds[a]:bounds[b]]))
            for k, (a, b) in enumerate(parts)]
    wavs = synth.many(jobs, steps=steps, sampler=SAMPLER, batch_size=batch_size,
                      progress="sing" if len(jobs) > 1 else None)
    out = np.zeros(int(bounds[-1]) * features.HOP, np.float32)
    for (a, b), w in zip(parts, wavs):
        n = min(len(w), (bounds[b] - bounds[a]) * features.HOP)
        out[bounds[a] * features.HOP: bounds[a] * features.HOP + n] = w[:n]
    return out


def auto_transpose(score_hz: np.ndarray, voice_hz: float, octaves: bool = False) -> float:
    """Semitones that move the score's median pitch to the voice's median (rounded: a change of key), or with
    `octaves`, whole octaves (0, ±12, ...) towards it (the melody's notes unchanged)."""
    step = 12.0 if octaves else 1.0
    return step * round(12.0 / step * np.log2(voice_hz / float(np.nanmedian(score_hz))))


def prompt_median_f0(wav: np.ndarray) -> float:
    """Median F0 (Hz) of a prompt's voiced frames (PyWorld)."""
    lf0, voiced = features.extract_pitch(wav)
    return float(np.exp(np.median(lf0[voiced])))


def pitch_from(synth, aligner, ref_wav: np.ndarray, text: str, transpose: float = 0.0) -> dict:
    """The melody and timing of a sung or spoken recording: phoneme durations from the aligner on its lyrics, F0
    from the recording (PyWorld; unvoiced frames interpolated). -> dict(phonemes, durations, f0_hz)."""
    ids, durations = align_text(synth, aligner, ref_wav, text)
    lf0 = source_lf0(ref_wav, "--pitch-from")
    f0 = np.exp(lf0.numpy().astype(np.float64) + transpose / 12 * np.log(2))
    return dict(phonemes=synth.phoneme_set.decode(ids.tolist()), durations=durations.numpy(), f0_hz=f0)


def transpose_of(option: str, score_hz: np.ndarray, voice_hz: float) -> float:
    """--transpose: a number of semitones (-36 to 36), or 'auto' (`auto_transpose`: the voice's key)."""
    if option == "auto":
        return auto_transpose(score_hz, voice_hz)
    try:
        value = float(option)
    except ValueError:
        raise TaskError(f"--transpose {option!r}: give semitones (e.g. -12) or 'auto'", "usage") from None
    if not np.isfinite(value) or abs(value) > 36:
        raise TaskError(f"--transpose {value:g} is out of range: give -36 to 36 semitones, or 'auto'", "usage")
    return value


def run(task: str, args, synth) -> np.ndarray:
    """One §5 task of sample.py's command line ("convert", "enhance", "score", "pitch_from") -> the wav (16 kHz).
    A user mistake is a TaskError (or the Synthesizer's own error about the prompt)."""
    from corpus import score as score_lib
    prompt = synth.prompt_latent(args.prompt)
    if task in ("convert", "enhance", "pitch_from"):
        aligner = load_aligner(args.aligner or default_aligner(args.ckpt), synth)
    if task in ("convert", "enhance"):
        src = prepare_source(synth, load_source(getattr(args, task), f"--{task}"), args.source_text, aligner)
        if task == "convert":
            return convert(synth, src, prompt, args.steps, args.noise, args.seed)["wav"]
        noisy = None if args.noisy_prompt is None else synth.prompt_latent(args.noisy_prompt)
        return enhance(synth, src, prompt, noisy, args.steps, args.noise, args.seed)["wav"]
    voice_hz = prompt_median_f0(features.load_audio(args.prompt, max_clipped=1.0))
    if task == "score":
        try:
            song = score_lib.read_score(args.score)
            plain = score_lib.render(song, synth.phonemize, vibrato_cents=0.0)
            shift = transpose_of(args.transpose, plain["score_f0_hz"], voice_hz)
            sung = score_lib.render(song, synth.phonemize, transpose=shift, vibrato_cents=args.vibrato)
        except score_lib.ScoreError as e:
            raise TaskError(str(e), "score") from None
        for w in song.warnings + sung["warnings"]:
            note(w)
    else:
        ref = load_source(args.pitch_from, "--pitch-from")
        shift = transpose_of(args.transpose, np.exp(source_lf0(ref, "--pitch-from").numpy()), voice_hz)
        sung = pitch_from(synth, aligner, ref, args.text, shift)
    if shift:
        note(f"transposed by {shift:+g} semitones (the prompt's median F0 is {voice_hz:.0f} Hz)")
    return sing_frames(synth, sung["phonemes"], sung["durations"], sung["f0_hz"], prompt, args.steps, args.seed,
                       args.batch_size)
