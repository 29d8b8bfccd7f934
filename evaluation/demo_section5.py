"""Paper §5 measured on the toy corpus's held-out voices: singing, voice conversion, speech enhancement.

    python -m evaluation.demo_section5 sing --data data/toy --out out/sing      # F0 vs score (cents), SIM vs speech with the same prompt
    python -m evaluation.demo_section5 vc   --data data/toy --out out/vc        # SIM to target / source voice before and after, PER, MCD
    python -m evaluation.demo_section5 se   --data data/toy --out out/se        # PESQ / STOI before and after, vs noisereduce
    python -m evaluation.demo_section5 invert --data data/toy                   # where the forward ODE starts: z_1 and the round trip
    python -m evaluation.demo_section5 pitch-from --data data/toy               # a recording's melody and timing in another voice

The toy corpus gives ground truth for all three: eSpeak renders any sentence in any held-out voice (VC: the source's
sentence in the target voice), and the clean utterance under the added noise (SE). Durations of the sources are the
corpus's exact ones (eSpeak's phoneme events), as §5's "from the transcript" with a perfect aligner; `sample.py`
takes them from the aligner instead. Each task writes results.md (tables), results.json and wavs under --out;
`sing` also a spectrogram + F0-vs-score plot. Needs `corpus/data.py prepare` of the toy corpus (its test split).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

import sample
import section5
from corpus import features
from evaluation.heldout import heldout, mean_rows, sim, source_of, vowels_voiced
from model import Prosody, Sampling

SR = features.SAMPLE_RATE


# ---------------------------------------------------------------------------------------------------------------
def run_invert(synth, root: Path, starts=(0.001, 0.01, 0.03, 0.05), steps: int = section5.STEPS,
               voices: int = 4) -> dict:
    """The source-aware step alone, for each start time t_invert of the forward ODE: held-out utterances (utterance
    1 of the first `voices` voices, the source as its own prompt, exact durations and pitch) carried to z_1 and back
    with the same condition. Reports z_1's standard deviation (the reverse process starts from N(0, I)) and the
    round trip's relative L1 error on the normalised latent, against regenerating from fresh noise."""
    m = synth.model
    by_spk, _ = heldout(root)
    srcs = [source_of(synth, root, by_spk[s][1]) for s in sorted(by_spk)[:voices]]
    rows, sde = [], m.cfg.sde
    for t0 in starts:
        m.cfg.sde = replace(sde, t_invert=t0)
        try:
            got = []
            for k, src in enumerate(srcs):
                ids, dur, lf0 = src.ids[None], src.durations[None], src.lf0[None]
                z1 = m.invert(ids, src.latent, src.latent, dur, lf0, steps=steps)
                rel = lambda z: float(((m.normalize(z) - m.normalize(src.latent)).abs().mean()
                                       / m.normalize(src.latent).abs().mean()))
                sampling, prosody = Sampling(steps, section5.SAMPLER), Prosody(dur, lf0)
                back = m.generate(ids, src.latent, sampling, prosody=prosody, start=z1)["latent"]
                fresh = m.generate(ids, src.latent, sampling, prosody=prosody, seeds=[k])["latent"]
                got.append((float(z1.std()), rel(back), rel(fresh)))
        finally:
            m.cfg.sde = sde
        z_std, back, fresh = np.mean(got, 0)
        rows.append(dict(t_invert=t0, z1_std=z_std, round_trip=back, fresh=fresh))
    table = ["| forward ODE starts at | z_1 std (want 1) | round trip, rel. L1 ↓ | fresh noise, rel. L1 |",
             "|---|---|---|---|"] + [f"| t = {r['t_invert']:g} | {r['z1_std']:.2f} | {r['round_trip']:.3f} | "
                                     f"{r['fresh']:.3f} |" for r in rows]
    return dict(task="invert", steps=steps, items=len(srcs), rows=rows, table="\n".join(table))


# ---------------------------------------------------------------------------------------------------------------
def run_vc(synth, root: Path, out: Path, per_voice: int = 2, steps: int = section5.STEPS, noise: float = 0.0,
           voices: int = 12, aligner=None) -> dict:
    """Each held-out voice A converted to the next voice B: sources = A's test utterances 1..per_voice, target
    prompt = B's utterance 0, ground truth = the source sentence rendered by B, source-voice reference = A's
    utterance 0 (not the source itself). Zero-shot TTS of the same sentence with the same prompt and durations is
    the comparison row. With `aligner` (a loaded align.Aligner), a second conversion row takes the source's
    phonemes from its text and their durations from the aligner, as `sample.py --convert` does."""
    import soundfile as sf
    from tqdm import tqdm
    from evaluation import asr
    from evaluation import metrics as ev
    from corpus import toy
    by_spk, voice_info = heldout(root)
    rec = asr.Recognizer("checkpoints/toy/asr.pt")
    names, rows = sorted(by_spk), []
    jobs = [(a, names[(i + 1) % len(names)], u) for i, a in enumerate(names[:voices]) for u in by_spk[a][1:1 + per_voice]]
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    for a, b, u in tqdm(jobs, desc="voice conversion", unit="utt"):
        src = source_of(synth, root, u)
        target = features.load_audio(features.audio_path(root, by_spk[b][0]))
        own = features.load_audio(features.audio_path(root, by_spk[a][0]))
        prompt = synth.prompt_latent(features.audio_path(root, by_spk[b][0]))
        vc = section5.convert(synth, src, prompt, steps, noise)["wav"]
        ids = src.ids.tolist()
        tts = synth.many([("", prompt, 0, dict(phonemes=ids, durations=src.durations.numpy(), lf0=None))],
                         steps=steps, sampler=section5.SAMPLER)[0]
        gt, _, _ = toy.render(u["text"], toy.Voice(**voice_info[b]), u["seed"])
        extra = {}
        if aligner is not None:
            aligned = section5.prepare_source(synth, src.wav, u["text"], aligner)
            extra["aligner"] = section5.convert(synth, aligned, prompt, steps, noise)["wav"]
        ref = [p for p in synth.phoneme_set.decode(ids) if p not in asr.IGNORED]
        per = lambda w: asr.phoneme_error_rate([ref], [rec(w)])
        rows.append(dict(pair=f"{a}->{b}", sim_target_before=sim(src.wav, target), sim_target_after=sim(vc, target),
                         sim_target_tts=sim(tts, target), sim_target_gt=sim(gt, target),
                         sim_source_before=sim(src.wav, own), sim_source_after=sim(vc, own),
                         sim_source_tts=sim(tts, own), sim_source_gt=sim(gt, own),
                         per_before=per(src.wav), per_after=per(vc), per_tts=per(tts), per_gt=per(gt),
                         mcd_before=ev.mcd(gt, src.wav), mcd_after=ev.mcd(gt, vc), mcd_tts=ev.mcd(gt, tts),
                         **{f"voiced_{k}": vowels_voiced(w, synth.phoneme_set.decode(ids), src.durations)
                            for k, w in (("before", src.wav), ("after", vc), ("tts", tts))}))
        for k, w in extra.items():
            rows[-1].update({f"sim_target_{k}": sim(w, target), f"sim_source_{k}": sim(w, own), f"per_{k}": per(w),
                             f"mcd_{k}": ev.mcd(gt, w)})
        for tag, w in (("source", src.wav), ("converted", vc), ("tts", tts), ("gt", gt)):
            sf.write(out / "wavs" / f"{u['id']}_to_{b}_{tag}.wav", w, SR)
    m = mean_rows(rows)
    table = ["| speech | SIM to target voice ↑ | SIM to source voice ↓ | PER ↓ | MCD-DTW to GT ↓ | vowel frames voiced |",
             "|---|---|---|---|---|---|"]
    for name, key in (("source (before)", "before"), ("converted (§5 VC)", "after"),
                      *((("converted, durations from the aligner (as sample.py)", "aligner"),) if aligner else ()),
                      ("zero-shot TTS, same prompt + durations", "tts"), ("ground truth (target voice)", "gt")):
        mcd = f"{m['mcd_' + key]:.2f}" if "mcd_" + key in m else "0"
        voiced = f"{m['voiced_' + key]:.0%}" if "voiced_" + key in m else "—"
        table.append(f"| {name} | {m['sim_target_' + key]:.3f} | {m['sim_source_' + key]:.3f} | "
                     f"{m['per_' + key]:.3f} | {mcd} | {voiced} |")
    return dict(task="vc", items=len(rows), steps=steps, noise=noise, means=m, rows=rows, table="\n".join(table))


# ---------------------------------------------------------------------------------------------------------------
def babble(root: Path, n_samples: int, seed: int, talkers: int = 4) -> np.ndarray:
    """Other voices talking at once: `talkers` training utterances of different speakers, summed and looped."""
    from corpus import data
    train = [u for u in data.read_manifest(root)["utterances"] if u["split"] in ("train", "valid")]
    rng = np.random.default_rng(seed)
    out = np.zeros(n_samples, np.float32)
    for k in rng.choice(len(train), talkers, replace=False):
        w = features.load_audio(features.audio_path(root, train[k]))
        out += np.resize(w / (np.std(w) + 1e-9), n_samples)
    return out


def add_noise(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """clean + noise scaled to the given SNR (power over the whole utterance), peak-limited to ±1."""
    p_s, p_n = np.mean(clean ** 2), np.mean(noise ** 2) + 1e-12
    noisy = clean + noise * np.sqrt(p_s / (p_n * 10 ** (snr_db / 10)))
    return (noisy / max(1.0, np.abs(noisy).max())).astype(np.float32)


def run_se(synth, root: Path, out: Path, voices: int = 6, snrs=(0, 5, 10), steps: int = section5.STEPS,
           noise: float = 0.0) -> dict:
    """Held-out utterances (utterance 1 of the first `voices` voices) under white noise and babble at each SNR.
    Diffusion SE: the noisy source as its own noisy prompt, the voice's clean utterance 0 as the clean prompt,
    the source's exact phonemes and durations, pitch from the noisy audio (PyWorld). Baseline: spectral gating
    (PyPI noisereduce, non-stationary mode), on the same noisy audio. References: zero-shot TTS with the same
    condition and clean prompt from fresh noise (what the source-aware step adds), and the clean speech through
    the codec (the upper bound of any latent model on this codec)."""
    import noisereduce
    import soundfile as sf
    from tqdm import tqdm
    from evaluation import metrics as ev
    by_spk, _ = heldout(root)
    names = sorted(by_spk)[:voices]
    rows = []
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    jobs = [(s, kind, snr) for s in names for kind in ("white", "babble") for snr in snrs]
    for s, kind, snr in tqdm(jobs, desc="speech enhancement", unit="item"):
        u = by_spk[s][1]
        clean = features.load_audio(features.audio_path(root, u))
        seed = zlib.crc32(f"{u['id']}/{kind}/{snr}".encode())           # the same noise on every run
        n = np.random.default_rng(seed).standard_normal(len(clean)).astype(np.float32) if kind == "white" \
            else babble(root, len(clean), seed)
        noisy = add_noise(clean, n, snr)
        try:
            src = source_of(synth, root, u, noisy)
        except ValueError as e:                          # one bad item is reported and skipped
            print(f"skipped {u['id']} ({kind}, {snr} dB): {e}", file=sys.stderr)
            continue
        prompt = synth.prompt_latent(features.audio_path(root, by_spk[s][0]))
        enhanced = section5.enhance(synth, src, prompt, steps=steps, noise=noise)["wav"]
        gated = noisereduce.reduce_noise(y=noisy, sr=SR, stationary=False).astype(np.float32)
        tts = synth.many([("", prompt, 0, dict(phonemes=src.ids.tolist(), durations=src.durations.numpy(),
                                               lf0=src.lf0.numpy()))], steps=steps, sampler=section5.SAMPLER)[0]
        with torch.no_grad():
            resyn = synth.codec.decode(synth.codec.encode(torch.from_numpy(clean)[None])[0])[0].numpy()
        r = dict(id=u["id"], noise=kind, snr=float(snr))
        for tag, w in (("noisy", noisy), ("diffusion", enhanced), ("noisereduce", gated), ("tts", tts),
                       ("codec", resyn[:len(clean)])):
            r.update({f"pesq_{tag}": ev.pesq_wb(clean, w), f"stoi_{tag}": ev.stoi(clean, w)})
            sf.write(out / "wavs" / f"{u['id']}_{kind}{snr}_{tag}.wav", w, SR)
        rows.append(r)
    table = ["| noise | SNR | PESQ: noisy | noisereduce | §5 SE | TTS | STOI: noisy | noisereduce | §5 SE | TTS |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    cols = ("noisy", "noisereduce", "diffusion", "tts")
    for kind in ("white", "babble"):
        for snr in snrs:
            m = mean_rows([r for r in rows if r["noise"] == kind and r["snr"] == snr])
            table.append(f"| {kind} | {snr} dB | " + " | ".join(f"{m['pesq_' + c]:.2f}" for c in cols) + " | "
                         + " | ".join(f"{m['stoi_' + c]:.3f}" for c in cols) + " |")
    m = mean_rows(rows)
    table.append(f"\nUpper bound (the clean speech through the codec): PESQ {m['pesq_codec']:.2f}, STOI "
                 f"{m['stoi_codec']:.3f}. TTS: the same model and clean prompt with the source's phonemes, durations "
                 f"and pitch from fresh noise, i.e. without the source-aware step.")
    return dict(task="se", items=len(rows), steps=steps, noise=noise, rows=rows, means=mean_rows(rows),
                table="\n".join(table))


# ---------------------------------------------------------------------------------------------------------------
def plot_song(path: Path, wav: np.ndarray, given_hz: np.ndarray, score_hz: np.ndarray, title: str):
    """Log-mel spectrogram of the sung output over its F0 (PyWorld) against the score's notes and the contour given."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import codec as codec_lib
    from evaluation import metrics as ev
    fig, axes = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    lm = codec_lib.log_mel(torch.from_numpy(wav)[None], 1024, 200)[0].numpy()
    axes[0].imshow(lm, origin="lower", aspect="auto", extent=(0, len(wav) / SR, 0, lm.shape[0]), cmap="magma",
                   vmin=-10, vmax=lm.max())
    axes[0].set_ylabel("mel band")
    axes[0].set_title(title, fontsize=9)
    f0, v = ev.f0_hz(wav)
    t = np.arange(len(score_hz)) / 80.0
    axes[1].plot(t, score_hz, color="0.6", lw=4, label="score")
    axes[1].plot(t, given_hz, color="C0", lw=1, label="contour given (vibrato, glides)")
    axes[1].plot(np.arange(len(f0)) / 80.0, np.where(v, f0, np.nan), ".", ms=2, color="C3", label="sung (PyWorld)")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("F0 (Hz)")
    axes[1].set_xlabel("time (s)")
    axes[1].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def first_phrase(song):
    """The score up to its first rest (a sung line)."""
    end = next((k for k, n in enumerate(song.notes) if n.lyric == "rest"), len(song.notes))
    return replace(song, notes=song.notes[:end])


@dataclass(frozen=True)
class Singing:
    """What `run_sing` sings and how."""
    score: Path = Path("examples/twinkle.txt")
    vibrato: float = 30.0                           # cents
    line_only: bool = False                         # only the score's first line (`first_phrase`)
    modes: tuple = ("auto", "octaves", "as written")
    plot_to: Path | None = None                     # the first voice's plot (`plot_song`)


def lyrics(song) -> str:
    """A score's lyrics as text: "Twin-" + "kle" -> "Twinkle"."""
    words = ""
    for n in song.notes:
        if n.lyric not in ("rest", "~"):
            words += n.lyric[:-1] if n.lyric.endswith("-") else n.lyric + " "
    return words


def run_sing(synth, root: Path, out: Path, singing: Singing = Singing(), voices: int = 6,
             steps: int = section5.SING_STEPS) -> dict:
    """The score sung by each held-out voice (prompt: its utterance 0) in each of `singing.modes`: "auto",
    transposed to the voice's key (the melody's median on the prompt's median F0, section5.auto_transpose);
    "octaves", by whole octaves towards it; "as written". F0 error in cents against the score's notes on the
    output's voiced frames inside notes; SIM to the prompt, against zero-shot speech of the score's words with the
    same prompt (`sung_row`)."""
    import soundfile as sf
    from tqdm import tqdm
    from corpus import score as score_lib
    by_spk, _ = heldout(root)
    song = score_lib.read_score(singing.score)
    song = first_phrase(song) if singing.line_only else song
    rows = []
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    plain = score_lib.render(song, synth.phonemize, vibrato_cents=0.0)     # the notes as written, for auto_transpose
    for s in tqdm(sorted(by_spk)[:voices], desc="sing", unit="voice"):
        p = features.audio_path(root, by_spk[s][0])
        prompt_wav = features.load_audio(p)
        voice_hz = section5.prompt_median_f0(prompt_wav)
        prompt = synth.prompt_latent(p)
        speech, info = synth.many([(lyrics(song), prompt, 0)], steps=section5.STEPS, sampler=section5.SAMPLER,
                                  return_info=True)[0]
        speech_scores = dict(speech_vowels_voiced=vowels_voiced(speech, info["phonemes"], info["durations"]),
                             sim_speech=sim(speech, prompt_wav))
        for mode in singing.modes:
            shift = 0.0 if mode == "as written" else section5.auto_transpose(plain["score_f0_hz"], voice_hz,
                                                                              octaves=mode == "octaves")
            sung = score_lib.render(song, synth.phonemize, transpose=shift, vibrato_cents=singing.vibrato)
            wav = section5.sing_frames(synth, sung["phonemes"], sung["durations"], sung["f0_hz"], prompt, steps)
            rows.append(dict(voice=s, mode=mode, prompt_f0=voice_hz, shift=shift,
                             **sung_row(wav, sung, prompt_wav, speech_scores)))
            sf.write(out / "wavs" / f"{s}_{mode.replace(' ', '_')}.wav", wav, SR)
            if singing.plot_to is not None and mode == "auto" and len(rows) == 1:
                plot_song(singing.plot_to, wav, sung["f0_hz"], sung["score_f0_hz"], f"{song.title}: held-out voice "
                          f"{s} (prompt median F0 {voice_hz:.0f} Hz, transposed {shift:+g} semitones)")
    summary = {mode: mean_rows([r for r in rows if r["mode"] == mode]) for mode in singing.modes}
    return dict(task="sing", score=str(singing.score), steps=steps, vibrato=singing.vibrato, rows=rows,
                means=summary, table=sing_table(rows))


def sung_row(wav: np.ndarray, sung: dict, prompt_wav: np.ndarray, speech_scores: dict) -> dict:
    """One sung output's scores: F0 against the (transposed) notes in cents and octave errors, on its voiced frames
    inside notes; F0 RMSE against the contour given; vowel frames voiced; SIM to the prompt (speech_scores: the
    same of zero-shot speech, for comparison)."""
    from evaluation import metrics as ev
    from corpus import score as score_lib
    f0, voiced = ev.f0_hz(wav)
    ref = sung["score_f0_hz"]                        # the notes, transposed
    n = min(len(f0), len(ref))
    cents = np.abs(1200 * np.log2(f0[:n] / ref[:n]))[voiced[:n] & np.isfinite(ref[:n])]
    return dict(rmse_cents=score_lib.f0_rmse_cents(f0[:n], ref[:n], voiced[:n]),
                median_cents=float(np.median(cents)), within_50=float(np.mean(cents <= 50)),
                vowels_voiced=vowels_voiced(wav, sung["phonemes"], sung["durations"]),
                speech_vowels_voiced=speech_scores["speech_vowels_voiced"],
                rmse_given=score_lib.f0_rmse_cents(f0[:n], sung["f0_hz"][:n], voiced[:n]),
                octave_errors=score_lib.octave_errors(f0[:n], ref[:n], voiced[:n]),
                voiced_in_notes=float(np.mean(voiced[:n][np.isfinite(ref[:n])])),
                sim_sung=sim(wav, prompt_wav), sim_speech=speech_scores["sim_speech"])


def sing_table(rows: list) -> str:
    table = ["| held-out voice | prompt F0 | transposed | F0 RMSE vs score (cents) | median (cents) | ≤ 50 cents | "
             "octave errors | vowel frames voiced: sung / speech | SIM sung | SIM speech |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['voice']} | {r['prompt_f0']:.0f} Hz | {r['shift']:+g} ({r['mode']}) | "
                     f"{r['rmse_cents']:.0f} | {r['median_cents']:.0f} | {r['within_50']:.0%} | "
                     f"{r['octave_errors']:.0%} | {r['vowels_voiced']:.0%} / {r['speech_vowels_voiced']:.0%} | "
                     f"{r['sim_sung']:.3f} | {r['sim_speech']:.3f} |")
    return "\n".join(table)


def run_pitch_from(synth, root: Path, out: Path, aligner, voices: int = 12, steps: int = section5.SING_STEPS) -> dict:
    """`sample.py --pitch-from` measured: each held-out voice A's utterance 1 (spoken; its text as the lyrics) gives
    the melody and timing, the next voice B's utterance 0 is the prompt; the melody as recorded, and moved to B's
    key (`--transpose auto`). F0 error in cents of the output against the (moved) reference F0, on frames voiced in
    both; SIM to B's prompt and to A's recording."""
    import soundfile as sf
    from tqdm import tqdm
    from evaluation import metrics as ev
    from corpus import score as score_lib
    by_spk, _ = heldout(root)
    names, rows = sorted(by_spk), []
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(tqdm(names[:voices], desc="pitch from a recording", unit="utt")):
        b, u = names[(i + 1) % len(names)], by_spk[a][1]
        ref = features.load_audio(features.audio_path(root, u))
        prompt_path = features.audio_path(root, by_spk[b][0])
        prompt_wav, prompt = features.load_audio(prompt_path), synth.prompt_latent(prompt_path)
        ref_f0, ref_voiced = ev.f0_hz(ref)
        for mode in ("as recorded", "auto"):
            shift = 0.0 if mode == "as recorded" else section5.auto_transpose(
                np.where(ref_voiced, ref_f0, np.nan), section5.prompt_median_f0(prompt_wav))
            copied = section5.pitch_from(synth, aligner, ref, u["text"], shift)
            wav = section5.sing_frames(synth, copied["phonemes"], copied["durations"], copied["f0_hz"], prompt,
                                       steps)
            f0, voiced = ev.f0_hz(wav)
            n = min(len(f0), len(ref_f0))
            ref_hz = np.where(ref_voiced[:n], ref_f0[:n] * 2 ** (shift / 12), np.nan)
            rows.append(dict(pair=f"{a}->{b}", mode=mode, shift=shift,
                             rmse_cents=score_lib.f0_rmse_cents(f0[:n], ref_hz, voiced[:n]),
                             octave_errors=score_lib.octave_errors(f0[:n], ref_hz, voiced[:n]),
                             sim_prompt=sim(wav, prompt_wav), sim_reference=sim(wav, ref),
                             length_ratio=len(wav) / len(ref)))
            sf.write(out / "wavs" / f"{u['id']}_in_{b}_{mode.replace(' ', '_')}.wav", wav, SR)
    table = ["| melody | F0 RMSE vs the recording (cents) | octave errors | SIM to prompt voice | "
             "SIM to the recording's voice | length / recording |", "|---|---|---|---|---|---|"]
    means = {}
    for mode in ("as recorded", "auto"):
        m = means[mode] = mean_rows([r for r in rows if r["mode"] == mode])
        table.append(f"| {mode} | {m['rmse_cents']:.0f} | {m['octave_errors']:.1%} | {m['sim_prompt']:.3f} | "
                     f"{m['sim_reference']:.3f} | {m['length_ratio']:.3f} |")
    return dict(task="pitch-from", items=len(rows), steps=steps, rows=rows, means=means, table="\n".join(table))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m evaluation.demo_section5",
                                 description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", choices=["sing", "vc", "se", "invert", "pitch-from"])
    ap.add_argument("--data", type=Path, default=Path("data/toy"))
    ap.add_argument("--out", type=Path, default=None, help="default: out/<task>")
    ap.add_argument("--ckpt", type=Path, default=Path("checkpoints/toy/ldm.pt"))
    ap.add_argument("--steps", type=int, default=None, help=f"sampler steps (default {section5.STEPS}; sing and "
                    f"pitch-from: {section5.SING_STEPS})")
    ap.add_argument("--voices", type=int, default=None, help="held-out voices (default: vc and pitch-from 12, sing "
                    "and se 6, invert 4)")
    ap.add_argument("--per-voice", type=int, default=2, help="vc: sources per voice")
    ap.add_argument("--noise", type=float, default=0.0, help="vc/se: fresh-noise share in z_1 (0 = paper)")
    ap.add_argument("--score", type=Path, default=Singing.score, help="sing: the score")
    ap.add_argument("--plot", type=Path, default=None, help="sing: the first voice's plot (default OUT/song.png)")
    ap.add_argument("--line", action="store_true", help="sing: only the score's first line (up to its first rest)")
    return ap


VOICES = {"vc": 12, "pitch-from": 12, "sing": 6, "se": 6, "invert": 4}     # held-out voices unless --voices


def run_task(args, synth, out: Path) -> dict:
    """The command line's task with its settings (steps: section5's, unless --steps)."""
    voices = args.voices or VOICES[args.task]
    steps = args.steps or (section5.SING_STEPS if args.task in ("sing", "pitch-from") else section5.STEPS)
    if args.task == "invert":
        return run_invert(synth, args.data, steps=steps, voices=voices)
    if args.task == "se":
        return run_se(synth, args.data, out, voices, steps=steps, noise=args.noise)
    if args.task == "sing":
        singing = Singing(args.score, line_only=args.line, plot_to=args.plot or out / "song.png")
        return run_sing(synth, args.data, out, singing, voices, steps)
    aligner = section5.load_aligner(section5.default_aligner(args.ckpt), synth)
    if args.task == "vc":
        return run_vc(synth, args.data, out, args.per_voice, steps, args.noise, voices, aligner)
    return run_pitch_from(synth, args.data, out, aligner, voices, steps)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or Path("out") / args.task
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    try:
        res = run_task(args, sample.Synthesizer(args.ckpt), out)
    except (sample.UserError, ValueError, FileNotFoundError) as e:        # incl. section5.TaskError
        print(f"error: {e}", file=sys.stderr)
        return 2
    res["seconds"] = time.time() - t0
    (out / "results.json").write_text(json.dumps(res, indent=1, default=float))
    (out / "results.md").write_text(res["table"] + "\n")
    print(res["table"])
    for mode, m in (res["means"].items() if args.task == "sing" else ()):
        print(f"mean ({mode}): F0 RMSE {m['rmse_cents']:.0f} cents (median {m['median_cents']:.0f}, "
              f"{m['within_50']:.0%} within 50), octave errors {m['octave_errors']:.0%}, vowel frames voiced "
              f"{m['vowels_voiced']:.0%} (speech {m['speech_vowels_voiced']:.0%}), SIM sung {m['sim_sung']:.3f} "
              f"vs speech {m['sim_speech']:.3f}")
    print(f"{res['task']}: {time.time() - t0:.0f} s; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
