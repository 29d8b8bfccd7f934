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

Inputs are taken generously, with a one-line note on stderr: a prompt longer than 30 s is cropped to its best
stretch of 10-30 s of speech; a clipped prompt is used; characters an English front end cannot read (another
script, emoji) are skipped; a phoneme the model never saw is read as the closest one it knows (text.closest_known).

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
import csv
import math
import os
import re
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
import torch
import diffusion
from corpus import features

EXIT_USAGE, EXIT_CKPT, EXIT_PROMPT, EXIT_TEXT, EXIT_ROWS, EXIT_SOURCE, EXIT_SCORE = 2, 3, 4, 5, 6, 7, 8
MIN_PROMPT_S, MAX_PROMPT_S, CROP_MIN_S = 1.0, 30.0, 10.0
# Accepted ranges of the numeric options: outside them a value is a mistake, not a setting (exit 2).
LIMITS = {"steps": (1, 10_000), "temperature": (1e-3, 100.0), "duration_scale": (0.1, 10.0),
          "pitch_shift": (-36.0, 36.0), "guidance": (0.0, 20.0), "batch_size": (1, 1024), "noise": (0.0, 1.0),
          "vibrato": (0.0, 200.0)}
GAP_S = 0.15                                     # pause between sentences of a long text


class UserError(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def front_end(name: str):
    """The text -> phonemes function a checkpoint was trained with (`text.front_end`)."""
    from corpus import text
    try:
        return text.front_end(name)
    except ValueError:
        raise UserError(f"the checkpoint uses an unknown text front end {name!r}", EXIT_CKPT) from None


def split_sentences(text: str) -> list[str]:
    """Sentence boundaries: . ! ? followed by space; pieces with no letters or digits are dropped."""
    if not isinstance(text, str) or not text.strip():
        raise UserError("the text is empty: give a sentence to speak", EXIT_TEXT)
    pieces = [p.strip() for p in re.split(r"(?<=[.!?])\s+", text.strip())]
    pieces = [p for p in pieces if re.search(r"\w", p)]
    if not pieces:
        raise UserError(f"the text {text!r} has nothing to pronounce", EXIT_TEXT)
    return pieces


def readable_text(text: str) -> tuple[str, str]:
    """(what an English front end can read, the characters left out): Latin letters, ASCII digits, punctuation,
    spaces and common symbols are kept; other scripts, emoji and control characters are left out. Raises a
    UserError (exit 5) when no Latin letter or digit remains."""
    if not isinstance(text, str) or not text.strip():
        raise UserError("the text is empty: give a sentence to speak", EXIT_TEXT)
    kept, dropped = [], []
    for ch in unicodedata.normalize("NFKC", text):
        cat = unicodedata.category(ch)
        if ch.isascii() or (ch.isalpha() and "LATIN" in unicodedata.name(ch, "")) or cat[0] in "PZ" or cat in ("Sc", "Sm"):
            kept.append(ch if ch.isprintable() else " ")
        elif not ch.isspace():
            kept.append(" ")
            dropped.append(ch)
    readable = "".join(kept)
    if not any(ch.isascii() and ch.isalnum() or ch.isalpha() for ch in readable):
        shown = text.strip() if len(text.strip()) <= 40 else text.strip()[:40] + "..."
        raise UserError(f"the text {shown!r} " + ("has no English letters or digits to read (this model speaks "
                        "English)" if dropped else "has nothing to pronounce"), EXIT_TEXT)
    return readable, "".join(dict.fromkeys(dropped))


def best_speech_window(wav: np.ndarray, sr: int = 16000, max_s: float = MAX_PROMPT_S,
                       min_s: float = CROP_MIN_S) -> tuple[int, int]:
    """(start, end) samples of the stretch of at most `max_s` seconds with the most speech (10 ms frames within
    40 dB of the loudest): the first window of `max_s` seconds with the most speech frames, its end moved back to
    its last pause and its start forward to a pause within its first second, so that no word is cut, as long as at
    least `min_s` seconds remain. Audio of at most `max_s` seconds is returned whole."""
    hop = sr // 100
    n = len(wav) // hop
    width = int(max_s * 100)
    if n <= width:
        return 0, len(wav)
    energy = 10 * np.log10(np.mean(wav[: n * hop].reshape(n, hop) ** 2, 1) + 1e-12)
    speech = energy > energy.max() - 40
    quiet = energy < energy.max() - 50                                     # pauses between words
    counts = np.concatenate([[0], np.cumsum(speech)])
    start = int(np.argmax(counts[width:] - counts[:-width]))                # the first best window
    end = start + width
    floor = start + int(min_s * 100)
    pauses = np.flatnonzero(quiet[floor:end])
    if len(pauses) and not quiet[end - 1]:
        end = floor + int(pauses[-1]) + 1
    later = np.flatnonzero(quiet[start:start + 100])                        # within the first second
    if len(later) and not quiet[start] and end - (start + int(later[0])) >= min_s * 100:
        start += int(later[0])
    return start * hop, end * hop


def check_out(path: Path, what: str = "--out") -> None:
    """Refuse, before any synthesis, an output path that cannot be written (UserError, exit 2)."""
    import soundfile as sf
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder: give a file name such as {path / 'out.wav'}", EXIT_USAGE)
    ext = path.suffix.lstrip(".").upper()
    if ext not in sf.available_formats():
        raise UserError(f"{what} {path}: unknown audio format {path.suffix or '(no extension)'!r}; use .wav, .flac "
                        f"or .ogg", EXIT_USAGE)
    parent = path.parent
    existing = next((p for p in [parent, *parent.parents] if p.exists()), Path("."))
    if not existing.is_dir():
        raise UserError(f"{what} {path}: {existing} is a file, not a folder", EXIT_USAGE)
    if not os.access(existing, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{what} {path} cannot be written (permission denied)", EXIT_USAGE)


def note(message: str) -> None:
    """A one-line remark on stderr about input taken generously (it does not stop anything)."""
    print(f"note: {message}", file=sys.stderr)


class Synthesizer:
    """Loads an ldm checkpoint and its codec once; `__call__(text, prompt_path, ...)` -> (wav float32, 16 kHz)."""

    def __init__(self, ckpt, codec_path=None, device: str = "cpu"):
        import codec as codec_lib
        import model as ns2
        from corpus.text import PhonemeSet
        try:
            self.model, self.meta = ns2.load_ns2(ckpt, device)
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
        """Prompt audio -> codec latent (1, D, Tp): mono 16 kHz, silence trimmed; a clipped file is used (noted),
        one longer than MAX_PROMPT_S is cropped to its best stretch of speech (noted)."""
        try:
            wav = features.load_audio(path, max_clipped=1.0)
        except features.AudioError as e:
            raise UserError(f"prompt: {e}", EXIT_PROMPT) from None
        if features.clipped_fraction(wav) > 1e-3:
            note(f"prompt {path} is clipped ({features.clipped_fraction(wav):.1%} of samples at full scale); using it "
                 f"anyway (a clean recording copies the voice better)")
        wav = features.trim_silence(wav)
        seconds = len(wav) / 16000
        if seconds > MAX_PROMPT_S:
            start, end = best_speech_window(wav)
            wav = features.trim_silence(wav[start:end])
            note(f"prompt {path} has {seconds:.1f} s of speech; using {start / 16000:.1f}-{end / 16000:.1f} s "
                 f"({len(wav) / 16000:.1f} s; give at most {MAX_PROMPT_S:g} s to choose yourself)")
            seconds = len(wav) / 16000
        if seconds < MIN_PROMPT_S:
            raise UserError(f"prompt {path} has {seconds:.2f} s of speech after trimming silence; give "
                            f"{MIN_PROMPT_S:g}-{MAX_PROMPT_S:g} s (3 s works well)", EXIT_PROMPT)
        z, _ = self.codec.encode(torch.from_numpy(wav)[None].to(self.device))
        return z                                                              # (1, D, Tp)

    def sentences(self, text: str) -> list[str]:
        """The readable part of `text` (others noted) split into sentences."""
        readable, dropped = readable_text(text)
        if dropped and dropped not in self._noted:
            self._noted.add(dropped)
            note(f"skipped characters an English front end cannot read: {' '.join(dropped)}")
        return split_sentences(readable)

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

    def __call__(self, text: str, prompt, steps=None, sampler=None, temperature=None, duration_scale=1.0,
                 pitch_shift=0.0, guidance=1.0, seed=0, return_info=False):
        """-> wav (float32, 16 kHz); with return_info, (wav, dict(phonemes, durations, f0_hz)): the predicted frames
        per phoneme and the pitch predictor's F0 per frame (Hz, unvoiced frames interpolated, as in training).
        `sampler`/`steps` left out: `diffusion.DEFAULT_SAMPLING` (the paper's: sampler="ode", steps=150).
        `pitch_shift` in semitones (converted to log-F0: n/12 · log 2). Sentence k uses seed `seed + k`."""
        return self.many([(text, prompt, seed)], steps, sampler, temperature, duration_scale, pitch_shift, guidance,
                         return_info=return_info)[0]

    @torch.no_grad()
    def many(self, jobs: list, steps=None, sampler=None, temperature=None, duration_scale=1.0, pitch_shift=0.0,
             guidance=1.0, batch_size: int = 8, return_info=False, progress: str | None = None) -> list:
        """jobs = [(text, prompt path or latent, seed)] -> one result per job, as `__call__` gives it.
        A job may carry a 4th item, oracle prosody (a diagnostic, `evaluation/demo.py --oracle`): dict(phonemes (N,) IDs,
        durations (N,) frames, lf0 (T,) log-F0 or None); its phonemes replace the text's, the model's durations
        (and pitch) are replaced by these.

        Every sentence of every job is one row; rows go through the model `batch_size` at a time, longest first
        (less padding). Each row has its own noise stream (`seeds`), and every layer masks padding, so the audio
        is what one-at-a-time synthesis gives (tests/test_sample.py checks it); on a 2-core CPU a batch of 8 is
        about 2x faster per sentence than one by one (demo sentences, 150 steps: 3.2 s instead of 6.0 s).
        `progress`: a tqdm label, or None for no bar."""
        if batch_size < 1:
            raise UserError("the batch size must be at least 1", 2)
        latents, rows = {}, []                # rows: (job, phoneme IDs (N,), prompt (D, Tp), seed, oracle or None)
        for j, (text, prompt, seed, *oracle) in enumerate(jobs):
            key = id(prompt) if torch.is_tensor(prompt) else str(prompt)
            if key not in latents:
                latents[key] = prompt if torch.is_tensor(prompt) else self.prompt_latent(prompt)
            if oracle:
                given = torch.as_tensor(oracle[0]["phonemes"]).long().to(self.device)
                rows.append((j, given, latents[key][0], seed, oracle[0]))
                continue
            rows += [(j, self.phoneme_ids(sentence)[0], latents[key][0], seed + k, None)
                     for k, sentence in enumerate(self.sentences(text))]
        order = sorted(range(len(rows)), key=lambda r: -len(rows[r][1]))
        done = {}
        from tqdm import tqdm
        bar = tqdm(total=len(rows), desc=progress, unit="sentence", disable=progress is None, mininterval=0.5)
        for start in range(0, len(order), batch_size):
            chunk = [rows[r] for r in order[start:start + batch_size]]
            ids = torch.nn.utils.rnn.pad_sequence([c[1] for c in chunk], batch_first=True)        # 0 = <pad>
            z_prompt = torch.nn.utils.rnn.pad_sequence([c[2].T for c in chunk], batch_first=True).transpose(1, 2)
            prompt_mask = torch.arange(z_prompt.shape[-1], device=self.device)[None] < torch.tensor(
                [c[2].shape[-1] for c in chunk], device=self.device)[:, None]
            oracle = {k: v.to(self.device) for k, v in oracle_prosody([c[4] for c in chunk]).items()}
            gen = self.model.generate(ids, z_prompt, prompt_mask=prompt_mask, steps=steps, sampler=sampler,
                                      temperature=temperature, duration_scale=duration_scale,
                                      pitch_shift=pitch_shift / 12 * math.log(2), guidance=guidance,
                                      seeds=[c[3] for c in chunk], **oracle)
            for i, r in enumerate(order[start:start + batch_size]):
                frames, n = int(gen["frame_mask"][i].sum()), len(rows[r][1])
                if frames == 0:
                    raise UserError("the model predicted 0 frames for a sentence: an untrained or broken duration "
                                    "predictor? (try another checkpoint, or --duration-scale)", EXIT_CKPT)
                wav = self.codec.decode(gen["latent"][i:i + 1, :, :frames])[0, : frames * self.codec.cfg.hop]
                done[r] = (wav.float().cpu().numpy(), rows[r][1].tolist(), gen["durations"][i, :n].tolist(),
                           torch.exp(gen["lf0"][i, :frames]).tolist())
            bar.update(len(chunk))
        bar.close()
        results, gap = [], np.zeros(int(GAP_S * 16000), np.float32)
        by_job = [[] for _ in jobs]
        for r, row in enumerate(rows):                                       # rows are in sentence order
            by_job[row[0]].append(done[r])
        for parts in by_job:
            wav = np.concatenate([x for part in parts for x in (part[0], gap)][:-1])
            info = dict(phonemes=[ph for part in parts for ph in self.phoneme_set.decode(part[1])],
                        durations=[d for part in parts for d in part[2]], f0_hz=[f for part in parts for f in part[3]])
            results.append((wav, info) if return_info else wav)
        return results


def oracle_prosody(oracles: list) -> dict:
    """Rows' oracle prosody (dicts, or all None) -> padded durations (B, N) and lf0 (B, T) for generate()."""
    if all(o is None for o in oracles):
        return {}
    if any(o is None for o in oracles):
        raise ValueError("give oracle prosody for every job or for none")
    pad = torch.nn.utils.rnn.pad_sequence
    out = dict(durations=pad([torch.as_tensor(o["durations"]).long() for o in oracles], batch_first=True))
    with_pitch = [o.get("lf0") is not None for o in oracles]
    if any(with_pitch) and not all(with_pitch):
        raise ValueError("give an oracle pitch contour for every job or for none")
    if all(with_pitch):
        out["lf0"] = pad([torch.as_tensor(o["lf0"]).float() for o in oracles], batch_first=True)
    return out


def main(argv=None):
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
                    f"setting; the §5 tasks: 150, --score 300)")
    ap.add_argument("--sampler", choices=sorted(diffusion.SAMPLERS), default=None,
                    help=f"TTS sampler (default {diffusion.DEFAULT_SAMPLING[0]}: DPM-Solver++(2M); the paper's: ode; "
                    "the §5 tasks always run the Euler ODE)")
    ap.add_argument("--temperature", type=float, default=None, help="τ of the start noise N(0, 1/τ) (paper: 1.44; > 0, at most 100)")
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
    s5.add_argument("--transpose", default="0", help="--score/--pitch-from: semitones, or 'auto' (whole octaves "
                    "towards the prompt's own pitch)")
    s5.add_argument("--vibrato", type=float, default=30.0, help="--score: vibrato depth in cents (0 = none)")
    s5.add_argument("--aligner", type=Path, help="aligner for --convert/--enhance/--pitch-from (default: aligner.pt "
                    "beside --ckpt)")
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
    elif (args.list is None) == (args.text is None and args.prompt is None) or \
            (args.list is None and (args.text is None or args.prompt is None)):
        ap.error("give --text and --prompt, or --list")
    if task:
        import section5
        if args.steps is None:
            args.steps = section5.SING_STEPS if task[0] == "score" else section5.STEPS
    else:
        args.sampler, args.steps = diffusion.sampling_setting(args.sampler, args.steps)
    try:
        check_options(args)
        if task:
            return run_section5(task[0], args)
        if args.list is None:
            check_out(args.out)
            rows, bad = [(0, args.text, args.prompt, args.out)], []
            n_rows = 1
        else:
            rows, bad = read_list(args.list)
        n_rows = len(rows) + len(bad)
        synth = Synthesizer(args.ckpt, args.codec, args.device)
        jobs, latents = [], {}
        for line, text, prompt, out in rows:               # check every row first: a bad one is reported, not fatal
            try:
                if args.list is not None:                  # a single --out was checked before loading the model
                    check_out(out, "out")
                for sentence in synth.sentences(text):
                    synth.phoneme_ids(sentence)
                if str(prompt) not in latents:
                    latents[str(prompt)] = synth.prompt_latent(prompt)
                jobs.append((line, text, latents[str(prompt)], out))
            except UserError as e:
                if args.list is None:
                    raise
                bad.append((line, str(e)))
                print(f"error: {args.list} line {line}: {e}", file=sys.stderr)
        import soundfile as sf
        t0 = time.time()
        n_sentences = sum(len(synth.sentences(text)) for _, text, _, _ in jobs)
        wavs = synth.many([(text, z, args.seed) for _, text, z, _ in jobs], args.steps, args.sampler,
                          args.temperature, args.duration_scale, args.pitch_shift, args.guidance, args.batch_size,
                          progress="synthesise" if n_sentences > 1 else None)
        written = 0
        for (line, _, _, out), wav in zip(jobs, wavs):
            try:
                Path(out).parent.mkdir(parents=True, exist_ok=True)
                sf.write(out, wav, 16000)
            except (OSError, RuntimeError) as e:           # soundfile raises RuntimeError (LibsndfileError)
                if args.list is None:
                    raise UserError(f"cannot write {out}: {e}", EXIT_USAGE) from None
                bad.append((line, f"cannot write {out}: {e}"))
                print(f"error: {args.list} line {line}: cannot write {out}: {e}", file=sys.stderr)
                continue
            written += 1
            print(f"{out}: {len(wav) / 16000:.2f} s")
        print(f"{written} file(s) in {time.time() - t0:.1f} s")
        if bad:
            lines = ", ".join(str(n) for n, _ in sorted(bad))
            print(f"error: {len(bad)} of {n_rows} rows of {args.list} failed (lines {lines}); the other {written} were written", file=sys.stderr)
            return EXIT_ROWS
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    return 0


def run_section5(task: str, args) -> int:
    """--convert, --enhance, --score or --pitch-from (section5.run) -> one wav at --out; exit code."""
    import section5
    import soundfile as sf
    kinds = dict(usage=EXIT_USAGE, ckpt=EXIT_CKPT, source=EXIT_SOURCE, score=EXIT_SCORE, text=EXIT_TEXT)
    try:
        check_out(args.out)
        synth = Synthesizer(args.ckpt, args.codec, args.device)
        t0 = time.time()
        wav = section5.run(task, args, synth)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(args.out, wav, 16000)
        print(f"{args.out}: {len(wav) / 16000:.2f} s ({time.time() - t0:.1f} s)")
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


def read_list(path: Path) -> tuple[list, list]:
    """A TSV of text<TAB>prompt<TAB>out rows ('#' starts a comment) -> ([(line, text, prompt, out)], [(line,
    reason)] for malformed rows). A missing, unreadable or row-less file is a UserError (exit 2)."""
    if not Path(path).is_file():
        raise UserError(f"--list file {path} not found", EXIT_USAGE)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            table = list(csv.reader(f, delimiter="\t"))
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"--list {path} is not a UTF-8 tab-separated file ({e})", EXIT_USAGE) from None
    rows, bad = [], []
    for line, r in enumerate(table, 1):
        if not r or not "".join(r).strip() or r[0].startswith("#"):
            continue
        if len(r) != 3 or not all(x.strip() for x in r):
            bad.append((line, f"every row needs text<TAB>prompt<TAB>out (got {len(r)} field(s))"))
            print(f"error: {path} line {line}: {bad[-1][1]}", file=sys.stderr)
            continue
        rows.append((line, r[0], Path(r[1].strip()), Path(r[2].strip())))
    if not rows and not bad:
        raise UserError(f"--list {path} has no rows: every row needs text<TAB>prompt<TAB>out", EXIT_USAGE)
    return rows, bad


if __name__ == "__main__":
    sys.exit(main())
