"""Zero-shot text-to-speech (paper §4.3): a sentence and a few seconds of someone's voice -> that voice saying it;
and the §5 tasks with the same model (section5.py): voice conversion, speech enhancement, singing.

    python sample.py --ckpt checkpoints/toy/ldm.pt --text "Hello there." --prompt voice.wav --out out.wav
    python sample.py --ckpt checkpoints/toy/ldm.pt --list jobs.tsv          # rows: text <TAB> prompt.wav <TAB> out.wav
    python sample.py --convert src.wav --source-text "what src says" --prompt target_voice.wav --out vc.wav
    python sample.py --enhance noisy.wav --source-text "what it says" --prompt clean_voice.wav --out clean.wav
    python sample.py --score examples/twinkle.txt --prompt voice.wav --out song.wav     # or a MIDI file with lyrics
    python sample.py --pitch-from sung.wav --text "its lyrics" --prompt voice.wav --out copy.wav

Pipeline: text -> the checkpoint's own front end (eSpeak phonemes for the toy corpus, g2p_en ARPAbet for LibriTTS)
-> phoneme IDs of the checkpoint's inventory; prompt audio -> mono 16 kHz, silence trimmed -> codec latent; then
NaturalSpeech2.generate (predicted durations and pitch, the chosen sampler) -> latent -> codec decoder -> wav.
Long text is split at sentence boundaries; the pieces are joined with a short pause. Sentences (of one text or of
a --list) are synthesised --batch-size at a time; each draws its own noise, so the audio does not depend on batching.

Inputs are checked before any synthesis and taken generously (corpus/inputs.py), with a one-line note on stderr: a
prompt longer than 30 s is cropped to its best stretch of 10-30 s of speech; a clipped prompt is used; characters
an English front end cannot read (another script, emoji) are skipped; a phoneme the model never saw is read as the
closest one it knows (text.closest_known).

Exit codes: 0 done; 2 bad command line (an option out of range, an --out that cannot be written, an unreadable
--list file); 3 checkpoint problem (missing, corrupt, wrong stage, codec mismatch); 4 prompt audio problem
(unreadable, silent, shorter than 1 s after trimming); 5 text problem (empty, nothing pronounceable in English);
6 batch mode: some rows failed (each is reported with its line number and reason; every good row is written);
7 source audio problem (--convert/--enhance/--pitch-from: unreadable, silent, shorter than 0.5 s or longer than
30 s after trimming, too short for its transcript); 8 score problem (malformed line, with its line number; a note
outside A0-C8; longer than 60 s).
Errors are one line, no traceback.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

import diffusion
import section5
from corpus import features, inputs
from corpus.inputs import (EXIT_CKPT, EXIT_PROMPT, EXIT_ROWS, EXIT_SCORE, EXIT_SOURCE, EXIT_TEXT, EXIT_USAGE, SR,
                           ListRow, UserError, check_out, note, read_list, report)
from model import Prosody, Sampling, load_ns2

# Accepted ranges of the numeric options: outside them a value is a mistake, not a setting (exit 2).
LIMITS = {"steps": (1, 10_000), "temperature": (1e-3, 100.0), "duration_scale": (0.1, 10.0),
          "pitch_shift": (-36.0, 36.0), "guidance": (0.0, 20.0), "batch_size": (1, 1024), "noise": (0.0, 1.0),
          "vibrato": (0.0, 200.0)}
GAP_S = 0.15                                     # pause between sentences of a long text


def front_end(name: str):
    """The text -> phonemes function a checkpoint was trained with (`text.front_end`)."""
    from corpus import text
    try:
        return text.front_end(name)
    except ValueError:
        raise UserError(f"the checkpoint uses an unknown text front end {name!r}", EXIT_CKPT) from None


class Job(NamedTuple):
    """One piece of text to speak in one voice (`Synthesizer.many`); a plain tuple in this order works too."""
    text: str
    prompt: object                      # a prompt audio path, or its codec latent (1, D, Tp)
    seed: int = 0                       # sentence k of the text uses seed + k
    oracle: dict | None = None          # oracle prosody: dict(phonemes (N,) IDs, durations (N,) frames, lf0 (T,)
                                        # or None)


class Row(NamedTuple):
    """One sentence of one job, as it goes through the model."""
    job: int                            # index of its job
    ids: torch.Tensor                   # (N,) phoneme IDs
    prompt: torch.Tensor                # (D, Tp) prompt latent
    seed: int
    oracle: dict | None


class Piece(NamedTuple):
    """One synthesised sentence."""
    wav: np.ndarray                     # float32 at features.SAMPLE_RATE
    ids: list                           # phoneme IDs
    durations: list                     # frames per phoneme
    f0_hz: list                         # the pitch the model was given, per frame


class Synthesizer:
    """Loads an ldm checkpoint and its codec once; `__call__(text, prompt_path, ...)` -> wav (float32,
    features.SAMPLE_RATE)."""

    def __init__(self, ckpt, codec_path=None, device: str = "cpu"):
        import codec as codec_lib
        from corpus.text import PhonemeSet
        try:
            self.model, self.meta = load_ns2(ckpt, device)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e), EXIT_CKPT) from None
        info = self.meta.get("codec") or {}
        codec_path = Path(codec_path or info.get("checkpoint", ""))
        if not codec_path.is_file():
            raise UserError(f"codec checkpoint {codec_path} not found: pass --codec (the codec this model was "
                            f"trained on)", EXIT_CKPT)
        if info.get("sha256") and features.file_hash(codec_path) != info["sha256"]:
            raise UserError(f"{codec_path} is not the codec this model was trained on (sha256 {info['sha256']}...)",
                            EXIT_CKPT)
        try:
            self.codec = codec_lib.load_codec(codec_path, device)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e), EXIT_CKPT) from None
        self.phonemize = front_end(self.meta["front_end"])
        self.phoneme_set = PhonemeSet.from_list(self.meta["phonemes"])
        self.device = device
        self._ids, self._noted = {}, set()            # phonemized sentences; what was already noted on stderr

    def prompt_latent(self, path) -> torch.Tensor:
        """Prompt audio (`inputs.prompt_audio`: mono, silence trimmed, a long one cropped) -> codec latent
        (1, D, Tp)."""
        wav = inputs.prompt_audio(path)
        z, _ = self.codec.encode(torch.from_numpy(wav)[None].to(self.device))
        return z                                                              # (1, D, Tp)

    def sentences(self, text: str) -> list[str]:
        """The readable part of `text` (others noted) split into sentences."""
        readable, dropped = inputs.readable_text(text)
        if dropped and dropped not in self._noted:
            self._noted.add(dropped)
            note(f"skipped characters an English front end cannot read: {' '.join(dropped)}")
        return inputs.split_sentences(readable)

    def phoneme_ids(self, sentence: str) -> torch.Tensor:
        """(1, N) IDs of the checkpoint's inventory; a phoneme it lacks is read as the closest known (noted once)."""
        if sentence not in self._ids:
            try:
                phonemes = self.phonemize(sentence)
            except ValueError as e:                                           # TextError is a ValueError
                raise UserError(f"text: {e}", EXIT_TEXT) from None
            phonemes, changed = self.phoneme_set.map_unknown(phonemes)
            for unseen, near in changed.items():
                if unseen not in self._noted:
                    self._noted.add(unseen)
                    note(f"phoneme {unseen!r} (in {sentence[:40]!r}) is not in this model's inventory: read as "
                         + (" ".join(repr(p) for p in near) + " (the closest it knows)" if near else "nothing"))
            if not any(p not in ("_", ",", ".", "?", "!") for p in phonemes):
                raise UserError(f"text: {sentence!r} has nothing this model can pronounce", EXIT_TEXT)
            self._ids[sentence] = self.phoneme_set.encode(phonemes)
        return torch.tensor([self._ids[sentence]], device=self.device)

    def __call__(self, text: str, prompt, sampling: Sampling | None = None, seed: int = 0, return_info=False,
                 **settings):
        """-> wav (float32, features.SAMPLE_RATE); with return_info, (wav, dict(phonemes, durations, f0_hz)): the
        predicted frames per phoneme and the pitch predictor's F0 per frame (Hz, unvoiced frames interpolated, as
        in training). `sampling` (`model.Sampling`, or its fields by name: `steps=20, sampler="ode"`): sampler and
        steps left out: `diffusion.DEFAULT_SAMPLING` (the paper's: sampler="ode", steps=150); `pitch_shift` in
        semitones. Sentence k uses seed `seed + k`."""
        return self.many([Job(text, prompt, seed)], sampling, return_info=return_info, **settings)[0]

    @torch.no_grad()
    def many(self, jobs: list, sampling: Sampling | None = None, batch_size: int = 8, return_info=False,
             progress: str | None = None, **settings) -> list:
        """jobs = [`Job`(text, prompt path or latent, seed[, oracle])] -> one result per job, as `__call__` gives
        it. A job's oracle prosody (a diagnostic, `evaluation/demo.py --oracle`; §5 singing) replaces the text's
        phonemes by its own, and the model's durations (and pitch) by its own.

        Every sentence of every job is one row; rows go through the model `batch_size` at a time, longest first
        (less padding). Each row has its own noise stream (`seeds`), and every layer masks padding, so the audio
        is what one-at-a-time synthesis gives (tests/test_sample.py checks it); on a 2-core CPU a batch of 8 is
        about 2x faster per sentence than one by one (demo sentences, 150 steps: 3.2 s instead of 6.0 s).
        `progress`: a tqdm label, or None for no bar."""
        from tqdm import tqdm
        if batch_size < 1:
            raise UserError("the batch size must be at least 1", EXIT_USAGE)
        sampling = replace(sampling or Sampling(), **settings)
        jobs = [Job(*job) for job in jobs]
        rows = self._rows(jobs)
        order = sorted(range(len(rows)), key=lambda r: -len(rows[r].ids))
        done = {}
        bar = tqdm(total=len(rows), desc=progress, unit="sentence", disable=progress is None, mininterval=0.5)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            done.update(zip(chunk, self._synthesize([rows[r] for r in chunk], sampling)))
            bar.update(len(chunk))
        bar.close()
        by_job = [[] for _ in jobs]
        for r, row in enumerate(rows):                                       # rows are in sentence order
            by_job[row.job].append(done[r])
        return [self._joined(parts, return_info) for parts in by_job]

    def _rows(self, jobs: list) -> list:
        """Every sentence of every job as a `Row` (one row per job with oracle prosody), in sentence order."""
        latents, rows = {}, []
        for j, job in enumerate(jobs):
            key = id(job.prompt) if torch.is_tensor(job.prompt) else str(job.prompt)
            if key not in latents:
                latents[key] = job.prompt if torch.is_tensor(job.prompt) else self.prompt_latent(job.prompt)
            prompt = latents[key][0]
            if job.oracle is not None:
                given = torch.as_tensor(job.oracle["phonemes"]).long().to(self.device)
                rows.append(Row(j, given, prompt, job.seed, job.oracle))
                continue
            rows += [Row(j, self.phoneme_ids(sentence)[0], prompt, job.seed + k, None)
                     for k, sentence in enumerate(self.sentences(job.text))]
        return rows

    def _synthesize(self, chunk: list, sampling: Sampling) -> list:
        """One batch of rows through the model and the codec decoder -> one `Piece` per row."""
        pad = torch.nn.utils.rnn.pad_sequence
        ids = pad([row.ids for row in chunk], batch_first=True)                           # 0 = <pad>
        z_prompt = pad([row.prompt.T for row in chunk], batch_first=True).transpose(1, 2)
        prompt_mask = torch.arange(z_prompt.shape[-1], device=self.device)[None] < torch.tensor(
            [row.prompt.shape[-1] for row in chunk], device=self.device)[:, None]
        gen = self.model.generate(ids, z_prompt, sampling, prompt_mask=prompt_mask, seeds=[row.seed for row in chunk],
                                  prosody=oracle_prosody([row.oracle for row in chunk], self.device))
        pieces = []
        for i, row in enumerate(chunk):
            frames, n = int(gen["frame_mask"][i].sum()), len(row.ids)
            if frames == 0:
                raise UserError("the model predicted 0 frames for a sentence: an untrained or broken duration "
                                "predictor? (try another checkpoint, or --duration-scale)", EXIT_CKPT)
            wav = self.codec.decode(gen["latent"][i:i + 1, :, :frames])[0, : frames * self.codec.cfg.hop]
            pieces.append(Piece(wav.float().cpu().numpy(), row.ids.tolist(), gen["durations"][i, :n].tolist(),
                                torch.exp(gen["lf0"][i, :frames]).tolist()))
        return pieces

    def _joined(self, parts: list, return_info: bool):
        """A job's sentences, joined with GAP_S of silence: wav, or (wav, info) with return_info."""
        gap = np.zeros(int(GAP_S * SR), np.float32)
        wav = np.concatenate([x for part in parts for x in (part.wav, gap)][:-1])
        if not return_info:
            return wav
        return wav, dict(phonemes=[ph for part in parts for ph in self.phoneme_set.decode(part.ids)],
                         durations=[d for part in parts for d in part.durations],
                         f0_hz=[f for part in parts for f in part.f0_hz])


def oracle_prosody(oracles: list, device="cpu") -> Prosody | None:
    """Rows' oracle prosody (dicts, or all None) -> padded durations (B, N) and lf0 (B, T) for generate(), or None."""
    if all(o is None for o in oracles):
        return None
    if any(o is None for o in oracles):
        raise ValueError("give oracle prosody for every job or for none")
    pad = torch.nn.utils.rnn.pad_sequence
    durations = pad([torch.as_tensor(o["durations"]).long() for o in oracles], batch_first=True)
    with_pitch = [o.get("lf0") is not None for o in oracles]
    if any(with_pitch) and not all(with_pitch):
        raise ValueError("give an oracle pitch contour for every job or for none")
    lf0 = pad([torch.as_tensor(o["lf0"]).float() for o in oracles], batch_first=True) if all(with_pitch) else None
    return Prosody(durations.to(device), None if lf0 is None else lf0.to(device))


def check_options(args) -> None:
    """Numeric options inside LIMITS (and finite), or a one-line UserError (exit 2)."""
    for name, (lo, hi) in LIMITS.items():
        value = getattr(args, name)
        if value is None:
            continue
        if not math.isfinite(value) or not lo <= value <= hi:
            flag = "--" + name.replace("_", "-")
            why = " (τ must be > 0: the start noise has variance 1/τ)" if name == "temperature" else ""
            raise UserError(f"{flag} {value} is out of range: give {lo:g} to {hi:g}{why}", EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", type=Path, default=Path("checkpoints/toy/ldm.pt"), help="ldm checkpoint (train.py ldm)")
    ap.add_argument("--codec", type=Path, default=None, help="codec checkpoint (default: the one the ldm names)")
    ap.add_argument("--text", help="what to say")
    ap.add_argument("--prompt", type=Path, help="a few seconds of the voice to use (any format soundfile reads)")
    ap.add_argument("--out", type=Path, default=Path("out.wav"))
    ap.add_argument("--list", type=Path, help="batch mode: a TSV file of text, prompt, out rows")
    ap.add_argument("--steps", type=int, default=None, help=f"sampler steps, 1-10000 (default: "
                    f"{diffusion.DEFAULT_SAMPLING[1]} with the default sampler, 150 with another, the paper's Euler "
                    f"setting; the §5 tasks: {section5.STEPS}, --score {section5.SING_STEPS})")
    ap.add_argument("--sampler", choices=sorted(diffusion.SAMPLERS), default=None,
                    help=f"TTS sampler (default {diffusion.DEFAULT_SAMPLING[0]}: DPM-Solver++(2M); the paper's: ode; "
                    "the §5 tasks always run the Euler ODE)")
    ap.add_argument("--temperature", type=float, default=None, help="τ of the start noise N(0, 1/τ) (default: the "
                    "model's; the paper 1.44, the toy preset 5; > 0, at most 100)")
    ap.add_argument("--duration-scale", type=float, default=1.0, help="> 1 speaks slower (0.1-10)")
    ap.add_argument("--pitch-shift", type=float, default=0.0, help="semitones (-36 to 36)")
    ap.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance on the prompt (1 = off; 0-20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=8,
                    help="sentences synthesised together (faster; the audio is the same as one at a time)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    s5 = ap.add_argument_group("paper §5 (section5.py): voice conversion, speech enhancement, singing")
    s5.add_argument("--convert", type=Path, metavar="SRC", help="say SRC's words, with its timing, in --prompt's voice")
    s5.add_argument("--enhance", type=Path, metavar="NOISY", help="a clean version of NOISY (--prompt: clean speech "
                    "of the same voice, or another clean voice)")
    s5.add_argument("--source-text", help="transcript of the --convert/--enhance source (its phonemes are aligned)")
    s5.add_argument("--noisy-prompt", type=Path, help="--enhance: audio sharing the source's noise, e.g. another "
                    "stretch of the same recording (default: the source itself)")
    s5.add_argument("--noise", type=float, default=0.0, help="--convert/--enhance: share of fresh noise blended "
                    "into the inverted z_1 (0 = the paper; larger moves further from the source; 0-1)")
    s5.add_argument("--score", type=Path, help="sing this score in --prompt's voice: the text format of corpus/score.py "
                    "(see examples/twinkle.txt) or a MIDI file with lyrics")
    s5.add_argument("--pitch-from", type=Path, metavar="REF", help="say/sing --text with REF's melody and timing")
    s5.add_argument("--transpose", default="0", help="--score/--pitch-from: semitones, or 'auto' (the key of "
                    "the prompt's voice: the melody's median moved to the prompt's median F0, in whole semitones)")
    s5.add_argument("--vibrato", type=float, default=30.0, help="--score: vibrato depth in cents (0 = none)")
    s5.add_argument("--aligner", type=Path, help="aligner for --convert/--enhance/--pitch-from (default: aligner.pt "
                    "beside --ckpt)")
    return ap


def parse_args(argv=None) -> argparse.Namespace:
    """The command line, checked: one task and the inputs it needs. args.task is "tts" or the §5 task ("convert",
    "enhance", "score", "pitch_from"); args.steps (and for TTS args.sampler) filled in."""
    ap = build_parser()
    args = ap.parse_args(argv)
    task = [name for name in ("convert", "enhance", "score", "pitch_from") if getattr(args, name) is not None]
    if len(task) > 1 or (task and args.list is not None):
        ap.error("give one of --convert, --enhance, --score, --pitch-from, --list")
    if task:
        need = {"convert": ("prompt", "source_text"), "enhance": ("prompt", "source_text"), "score": ("prompt",),
                "pitch_from": ("prompt", "text")}[task[0]]
        missing = ["--" + n.replace("_", "-") for n in need if getattr(args, n) is None]
        if missing:
            ap.error(f"--{task[0].replace('_', '-')} needs {' and '.join(missing)}")
    elif args.list is None and (args.text is None or args.prompt is None) or \
            args.list is not None and (args.text is not None or args.prompt is not None):
        ap.error("give --text and --prompt, or --list")
    args.task = task[0] if task else "tts"
    if task and args.steps is None:
        args.steps = section5.SING_STEPS if args.task == "score" else section5.STEPS
    elif not task:
        args.sampler, args.steps = diffusion.sampling_setting(args.sampler, args.steps)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        check_options(args)
        return run_tts(args) if args.task == "tts" else run_section5(args.task, args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code


def run_tts(args) -> int:
    """--text and --prompt, or --list -> wav files; exit code (EXIT_ROWS when some rows of a --list failed, every
    good row written)."""
    if args.list is None:
        check_out(args.out)                              # before loading the model
        rows, failed = [ListRow(0, args.text, args.prompt, args.out)], []
    else:
        rows, failed = read_list(args.list)
    n_rows = len(rows) + len(failed)
    synth = Synthesizer(args.ckpt, args.codec, args.device)
    rows = checked_rows(synth, rows, args.list, failed)
    t0 = time.time()
    n_sentences = sum(len(synth.sentences(row.text)) for row in rows)
    sampling = Sampling(args.steps, args.sampler, args.temperature, args.duration_scale, args.pitch_shift,
                        args.guidance)
    wavs = synth.many([Job(row.text, row.prompt, args.seed) for row in rows], sampling, args.batch_size,
                      progress="synthesise" if n_sentences > 1 else None)
    written = write_wavs(rows, wavs, args.list, failed)
    print(f"{written} file(s) in {time.time() - t0:.1f} s")
    if failed:
        lines = ", ".join(str(f.line) for f in sorted(failed))
        print(f"error: {len(failed)} of {n_rows} rows of {args.list} failed (lines {lines}); the other {written} "
              f"were written", file=sys.stderr)
        return EXIT_ROWS
    return 0


def checked_rows(synth: Synthesizer, rows: list, list_path, failed: list) -> list:
    """Every row checked before any synthesis (its --out, text and prompt), its prompt as a codec latent (each file
    encoded once). A bad row of a --list is reported (`report`) and left out; a bad single row raises."""
    good, latents = [], {}
    for row in rows:
        try:
            if list_path is not None:                  # a single --out was checked before loading the model
                check_out(row.out, "out")
            for sentence in synth.sentences(row.text):
                synth.phoneme_ids(sentence)
            if str(row.prompt) not in latents:
                latents[str(row.prompt)] = synth.prompt_latent(row.prompt)
            good.append(row._replace(prompt=latents[str(row.prompt)]))
        except UserError as e:
            if list_path is None:
                raise
            report(failed, list_path, row.line, str(e))
    return good


def write_wavs(rows: list, wavs: list, list_path, failed: list) -> int:
    """Each row's wav to its out path -> how many were written; a failed write of a --list row is reported."""
    import soundfile as sf
    written = 0
    for row, wav in zip(rows, wavs):
        try:
            Path(row.out).parent.mkdir(parents=True, exist_ok=True)
            sf.write(row.out, wav, SR)
        except (OSError, RuntimeError) as e:           # soundfile raises RuntimeError (LibsndfileError)
            if list_path is None:
                raise UserError(f"cannot write {row.out}: {e}", EXIT_USAGE) from None
            report(failed, list_path, row.line, f"cannot write {row.out}: {e}")
            continue
        written += 1
        print(f"{row.out}: {len(wav) / SR:.2f} s")
    return written


def run_section5(task: str, args) -> int:
    """--convert, --enhance, --score or --pitch-from (section5.run) -> one wav at --out; exit code."""
    import soundfile as sf
    kinds = dict(usage=EXIT_USAGE, ckpt=EXIT_CKPT, source=EXIT_SOURCE, score=EXIT_SCORE, text=EXIT_TEXT)
    try:
        check_out(args.out)
        synth = Synthesizer(args.ckpt, args.codec, args.device)
        t0 = time.time()
        wav = section5.run(task, args, synth)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(args.out, wav, SR)
        print(f"{args.out}: {len(wav) / SR:.2f} s ({time.time() - t0:.1f} s)")
    except section5.TaskError as e:
        print(f"error: {e}", file=sys.stderr)
        return kinds[e.kind]
    except features.AudioError as e:
        print(f"error: prompt: {e}", file=sys.stderr)
        return EXIT_PROMPT
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
