"""Evaluation metrics of the project (paper §4.4): small library functions, one number per clip.

Every metric compares a reference waveform `ref` (ground truth, 16 kHz mono) with an estimate `est` (the codec's
reconstruction, or synthesised speech) and returns a plain float; `mean_metrics` averages rows of them over clips.
Codec reconstruction metrics (all four: `codec_metrics`):

    mel      mean |log mel(ref) − log mel(est)|, with the codec's own log-mel       0 = identical, lower is better
    si_sdr   scale-invariant signal-to-distortion ratio (Le Roux et al. 2019), dB  higher is better, capped at 100
    pesq     wide-band PESQ (ITU-T P.862.2), MOS-LQO                               about 1.0 (bad) .. 4.64 (identical)
    stoi     short-time objective intelligibility (Taal et al. 2011)              0 .. 1, higher is better

TTS metrics: `mcd` (mel-cepstral distortion after DTW), `prosody_vs_prompt` (the paper's Table 4),
`prosody_vs_ground_truth` (Table 12), `speaker_embedding` + `cosine` (SIM), `speaker_id_accuracy`. Intelligibility
(PER, WER) is in evaluation/asr.py; evaluation/demo.py composes both into the zero-shot results table.

Inputs are 1-D numpy arrays or torch tensors. Pairs whose lengths differ by at most 1 % or one 200-sample codec hop
are cropped to the shorter one; anything else (NaN/inf, empty, 2-D, longer mismatches) raises ValueError, so a
mismatched pair never yields a silently wrong number.

Command line (`predictors` and `history` are evaluation/diagnostics.py's):
    python -m evaluation.metrics codec --ckpt checkpoints/toy/codec.pt --data data/toy   # bitrate/quality table
    python -m evaluation.metrics compare --ref truth.wav --est gen.wav [--prompt p.wav] [--text "..."]   # one pair
    python -m evaluation.metrics predictors --ckpt checkpoints/toy/ldm.pt --split test   # predictor bias and L1
    python -m evaluation.metrics history --ckpt checkpoints/toy/ldm.pt --out val.png     # stored validation history
    python -m evaluation.metrics attention --ckpt checkpoints/toy/ldm.pt --out att.png   # prompt query attention

Usage:
    rows = [codec_metrics(wav, codec_output) for wav, codec_output in pairs]
    print(mean_metrics(rows))                   # {"mel": ..., "si_sdr": ..., "pesq": ..., "stoi": ...}
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

import codec
from corpus import features
from corpus.features import SAMPLE_RATE   # the project's audio rate; wide-band PESQ is defined only at 16 kHz
from evaluation import diagnostics

LENGTH_TOLERANCE = 0.01   # relative length difference that is cropped instead of refused
HOP_SLACK = 200           # ... or up to one codec hop, whichever is larger (codecs pad to a multiple of 200)
SI_SDR_CAP = 100.0        # dB returned for a perfect (or perfectly scaled) copy instead of +inf


def _as_array(x, name: str, dtype) -> np.ndarray:
    """One signal -> 1-D finite numpy array of `dtype`; ValueError otherwise."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D waveform, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = x.astype(dtype)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf samples")
    return x


def _pair(ref, est, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert a (reference, estimate) pair; crop both to the shorter length if they differ by ≤ 1 %
    or by at most one codec hop (200 samples) of padding."""
    ref, est = _as_array(ref, "ref", dtype), _as_array(est, "est", dtype)
    n, m = len(ref), len(est)
    if abs(n - m) > max(LENGTH_TOLERANCE * max(n, m), HOP_SLACK):
        raise ValueError(f"ref has {n} samples but est has {m}: they differ by more than "
                         f"{LENGTH_TOLERANCE:.0%}, so they are probably not the same utterance")
    k = min(n, m)
    return ref[:k], est[:k]


def _check_rate(sample_rate: int, metric: str) -> None:
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"{metric} is computed at {SAMPLE_RATE} Hz only, got sample_rate={sample_rate}: resample first")


def si_sdr(ref, est) -> float:
    """Scale-invariant SDR in dB, after removing the mean of both signals (Le Roux et al. 2019):

        α = <est, ref> / ||ref||²,    SI-SDR = 10 log10(||α ref||² / ||α ref − est||²)

    Any rescaling of est leaves it unchanged; for est = ref + noise uncorrelated with ref it equals the SNR.
    Range: (−∞, 100]; an exact (scaled) copy gives the cap of 100 dB instead of +inf.
    """
    ref, est = _pair(ref, est)
    ref, est = ref - ref.mean(), est - est.mean()
    ref_energy = np.dot(ref, ref)
    if ref_energy == 0:
        raise ValueError("ref is silent (constant): SI-SDR is undefined")
    target = np.dot(est, ref) / ref_energy * ref
    error = np.dot(target - est, target - est)
    if error == 0:
        return SI_SDR_CAP
    return float(min(SI_SDR_CAP, 10 * np.log10(np.dot(target, target) / error)))


def mel_distance(ref, est, sample_rate: int = SAMPLE_RATE) -> float:
    """Mean absolute log-mel difference, mean_{mel, frame} |log mel(ref) − log mel(est)|, in nats (≥ 0, 0 = identical).

    Uses the codec's own features, `codec.log_mel(wav, n_fft=1024)`: 80 HTK mel bands, hop 256,
    log(max(mel magnitude, codec.MAG_FLOOR)), so differences below the floor (digital silence) do not count.
    """
    _check_rate(sample_rate, "mel_distance")
    ref, est = _pair(ref, est, np.float32)
    mels = codec.log_mel(torch.from_numpy(np.stack([ref, est])), n_fft=1024)
    return float((mels[0] - mels[1]).abs().mean())


def pesq_wb(ref, est, sample_rate: int = SAMPLE_RATE) -> float:
    """Wide-band PESQ (ITU-T P.862.2) from PyPI `pesq`: pesq(16000, ref, est, 'wb').

    MOS-LQO from about 1.0 (bad) to 4.64 (identical). PESQ aligns the pair itself, so small delays barely count.
    Needs 16 kHz, at least 0.25 s and audible speech in ref; ValueError otherwise.
    """
    from pesq import pesq, PesqError
    _check_rate(sample_rate, "wide-band PESQ")
    ref, est = _pair(ref, est)
    if not np.any(ref) or not np.any(est):
        raise ValueError("PESQ needs speech: ref or est is all zeros")
    try:
        return float(pesq(SAMPLE_RATE, ref, est, "wb"))
    except PesqError as e:
        raise ValueError(f"PESQ refused this pair ({len(ref) / SAMPLE_RATE:.2f} s): "
                         f"{e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else e}; "
                         "it needs at least 0.25 s of audio containing speech") from None


def stoi(ref, est, sample_rate: int = SAMPLE_RATE) -> float:
    """STOI (Taal et al. 2011) from PyPI `pystoi`: mean correlation of one-third-octave band envelopes over ~384 ms
    windows, after removing silent frames. Range [0, 1], higher = more intelligible; ~1 for identical audio."""
    from pystoi import stoi as _stoi
    ref, est = _pair(ref, est)
    return float(_stoi(ref, est, sample_rate, extended=False))


def codec_metrics(ref, est, sample_rate: int = SAMPLE_RATE) -> dict:
    """All four codec reconstruction metrics of one clip: {"mel", "si_sdr", "pesq", "stoi"}."""
    return {"mel": mel_distance(ref, est, sample_rate), "si_sdr": si_sdr(ref, est),
            "pesq": pesq_wb(ref, est, sample_rate), "stoi": stoi(ref, est, sample_rate)}


def mean_metrics(rows: list[dict]) -> dict:
    """Key-wise mean of several metric dicts (e.g. one `codec_metrics` row per test clip); all must share keys."""
    if not rows:
        raise ValueError("no rows to average")
    keys = set(rows[0])
    if any(set(r) != keys for r in rows):
        raise ValueError("the rows do not all have the same metric names")
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


# ---------------------------------------------------------------------------------------------------------------
# TTS metrics (§4.4): MCD with DTW, prosody against the prompt and against the ground truth
# ---------------------------------------------------------------------------------------------------------------
def mel_cepstrum(wav, n_ceps: int = 13) -> np.ndarray:
    """Mel-cepstrum (frames, n_ceps) of the project's log-mel (natural-log magnitudes, K = 80 bands, n_fft 1024,
    hop 256), without c_0 (the energy term):
        c_n = (1/K) Σ_k log|X_mel(k)| · cos(π n (k + ½) / K)
    i.e. the real cepstrum of the evenly extended log spectrum (DCT-II / 2K), the scale MCD's 10/ln10·√(2Σ) formula
    assumes. (An orthonormal DCT would inflate MCD by √(2K) ≈ 12.6.)"""
    from scipy.fft import dct
    lm = codec.log_mel(torch.as_tensor(_as_array(wav, "wav", np.float32))[None], 1024)[0].numpy()   # (80, frames)
    return (dct(lm, type=2, axis=0) / (2 * lm.shape[0]))[1:n_ceps + 1].T


def dtw_path(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic time warping of frame sequences a (N, d), b (M, d) under Euclidean frame distance -> index pairs
    (i_k, j_k) of the minimum-cost monotone alignment (steps (1,0), (0,1), (1,1)):
        D(i, j) = ||a_i − b_j|| + min(D(i−1, j), D(i, j−1), D(i−1, j−1)),   D(0, 0) = 0
    Cells on one anti-diagonal i + j = k depend only on the two before it, so each is filled in one numpy step."""
    cost = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    N, M = cost.shape
    acc = np.full((N + 1, M + 1), np.inf)
    acc[0, 0] = 0
    for k in range(2, N + M + 1):
        i = np.arange(max(1, k - M), min(N, k - 1) + 1)
        j = k - i
        acc[i, j] = cost[i - 1, j - 1] + np.minimum(np.minimum(acc[i - 1, j], acc[i, j - 1]), acc[i - 1, j - 1])
    i, j, path = N, M, []
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        i, j = min(((i - 1, j), (i, j - 1), (i - 1, j - 1)), key=lambda ij: acc[ij])
    path = np.array(path[::-1])
    return path[:, 0], path[:, 1]


def aligned_cepstra(ref, est) -> tuple:
    """Mel-cepstra of ref and est and their DTW path: (a, b, i, j), frame a[i_k] aligned with b[j_k]."""
    a, b = mel_cepstrum(ref), mel_cepstrum(est)
    return (a, b) + dtw_path(a, b)


def mcd(ref, est, aligned: tuple | None = None) -> float:
    """Mel-cepstral distortion in dB after DTW alignment:
        MCD = (10 / ln 10) · mean over aligned frames of √(2 Σ_d (c_d − ĉ_d)²)
    0 for identical audio; it compares spectral envelopes, so it needs no equal lengths. `aligned`: the
    `aligned_cepstra(ref, est)` already computed (prosody_vs_ground_truth reuses its alignment)."""
    a, b, i, j = aligned or aligned_cepstra(ref, est)
    return float(10 / np.log(10) * np.mean(np.sqrt(2 * ((a[i] - b[j]) ** 2).sum(1))))


def f0_hz(wav) -> tuple[np.ndarray, np.ndarray]:
    """Frame-level F0 in Hz (PyWorld via features.extract_pitch, 12.5 ms frames) and the voiced flags."""
    wav = _as_array(wav, "wav", np.float32)
    try:
        lf0, voiced = features.extract_pitch(wav[: len(wav) // features.HOP * features.HOP])
    except ValueError:                             # silent, or no voiced frame (a broken synthesis): all unvoiced
        n = len(wav) // features.HOP
        return np.full(n, np.nan), np.zeros(n, bool)
    return np.exp(lf0), voiced


def prosody_vs_prompt(gen_wav, prompt_wav, gen_durations=None, prompt_durations=None) -> dict:
    """Table 4 of the paper, one utterance: |mean − mean| and |std − std| of the voiced F0 (Hz) of generated speech
    and prompt; the same for phoneme durations (frames) when both are given. Lower is better."""
    (fg, vg), (fp, vp) = f0_hz(gen_wav), f0_hz(prompt_wav)
    if not (vg.any() and vp.any()):                # nothing voiced: NaN, never a number made up
        out = dict(pitch_mean_diff=np.nan, pitch_std_diff=np.nan)
    else:
        out = dict(pitch_mean_diff=abs(fg[vg].mean() - fp[vp].mean()), pitch_std_diff=abs(fg[vg].std() - fp[vp].std()))
    if gen_durations is not None and prompt_durations is not None:
        dg, dp = np.asarray(gen_durations, float), np.asarray(prompt_durations, float)
        out.update(duration_mean_diff=abs(dg.mean() - dp.mean()), duration_std_diff=abs(dg.std() - dp.std()))
    return {k: float(v) for k, v in out.items()}


def pearson(a, b) -> float:
    """Pearson correlation; NaN (without numpy's divide warning) when fewer than 3 points or either is constant."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 and a.std() > 0 and b.std() > 0 else float("nan")


def prosody_vs_ground_truth(gen_wav, gt_wav, gen_durations=None, gt_durations=None) -> dict:
    """Table 12 of the paper, one utterance: Pearson correlation and RMSE (Hz) of the F0 contours of generated speech
    and ground truth, aligned by DTW on mel-cepstra, over frames voiced in both; the same for phoneme durations
    (frames; same phoneme sequence, no alignment needed) when given. Correlation: higher is better, RMSE: lower.
    Also returns `mcd` (ground truth as reference), from the same alignment."""
    (fg, vg), (ft, vt) = f0_hz(gen_wav), f0_hz(gt_wav)
    aligned = aligned_cepstra(gt_wav, gen_wav)
    i, j = aligned[2:]
    # mel-cepstra frames (hop 256) -> pitch frames (hop 200)
    i, j = np.minimum(i * 256 // 200, len(ft) - 1), np.minimum(j * 256 // 200, len(fg) - 1)
    both = vt[i] & vg[j]
    a, b = ft[i][both], fg[j][both]
    out = dict(mcd=mcd(gt_wav, gen_wav, aligned), pitch_corr=pearson(a, b),
               pitch_rmse=np.sqrt(np.mean((a - b) ** 2)) if both.any() else np.nan)
    if gen_durations is not None and gt_durations is not None:
        dg, dt = np.asarray(gen_durations, float), np.asarray(gt_durations, float)
        if dg.shape != dt.shape:
            raise ValueError("duration sequences must cover the same phonemes")
        out.update(duration_corr=pearson(dg, dt), duration_rmse=np.sqrt(np.mean((dg - dt) ** 2)))
    return {k: float(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------------------------
# Speaker similarity (§4.4); intelligibility (PER, WER) is in evaluation/asr.py
# ---------------------------------------------------------------------------------------------------------------
_SPEAKER_ENCODER = []


def speaker_embedding(wav) -> np.ndarray:
    """A 256-d unit-norm speaker embedding (Resemblyzer's GE2E d-vector, weights shipped in its wheel, CPU).

    Departure from the paper: §4.4 scores similarity with a WavLM-TDNN speaker verification model, whose weights
    would have to be downloaded; Resemblyzer works offline. Absolute values are not comparable with the paper's."""
    from resemblyzer import VoiceEncoder, preprocess_wav
    if not _SPEAKER_ENCODER:
        _SPEAKER_ENCODER.append(VoiceEncoder(device="cpu", verbose=False))
    wav = _as_array(wav, "wav", np.float32)
    if np.abs(wav).max() > 1e-4:
        wav = preprocess_wav(wav, source_sr=SAMPLE_RATE)                  # volume-normalised, VAD-trimmed
    if len(wav) < SAMPLE_RATE // 4 or np.abs(wav).max() <= 1e-4:
        raise ValueError("too little speech for a speaker embedding (< 0.25 s after trimming silence)")
    return _SPEAKER_ENCODER[0].embed_utterance(wav)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """SIM = a·b / (|a| |b|): 1 for the same direction."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def speaker_id_accuracy(embeddings, labels, enrolled: dict) -> float:
    """Closed-set speaker identification: each embedding is assigned the enrolled speaker with the highest cosine
    similarity; returns the fraction assigned to their own label. `enrolled`: {speaker: embedding}."""
    names = list(enrolled)
    E = np.stack([enrolled[n] for n in names])
    E = E / np.linalg.norm(E, axis=1, keepdims=True)
    hits = [e is not None and names[int(np.argmax(E @ (e / np.linalg.norm(e))))] == lab   # None (no speech): a miss
            for e, lab in zip(embeddings, labels)]
    return float(np.mean(hits))


# ---------------------------------------------------------------------------------------------------------------
# Codec evaluation and the command line (`history` and `predictors` run evaluation/diagnostics.py)
# ---------------------------------------------------------------------------------------------------------------
def heldout_clips(root, n: int, split: str = "test") -> list:
    """Up to n whole utterances of a split (test = held-out voices), one per speaker first: [(id, wav)]."""
    from corpus import data
    utts = [u for u in data.read_manifest(root)["utterances"] if u["split"] == split]
    firsts = {}
    for u in utts:
        firsts.setdefault(u["speaker"], u)
    chosen = (list(firsts.values()) + [u for u in utts if u not in firsts.values()])[:n]
    return [(u["id"], features.load_audio(features.audio_path(root, u))) for u in chosen]


def evaluate_codec(model, clips, n_qs=(1, 4, 8, 16), device="cpu", n_wavs: int = 3) -> dict:
    """Reconstruct each (id, wav) clip with the first n quantizers for every n in `n_qs`.

    Returns {"rows": [{n_q, kbps, mel, si_sdr, pesq, stoi}], "perplexity": [...], "dead": [...], "audio": {...}}
    where the bitrate is n · log2(V) · frames/s, perplexity is per quantizer over all clips' codes (at full R),
    "dead" is each quantizer's fraction of codes never used on these clips, and "audio" holds the first `n_wavs`
    reconstructions at each n ({"<id>_R<n>": waveform}).
    """
    cfg, rows, ids_all, audio = model.cfg, [], [], {}
    frames_per_s = cfg.sample_rate / cfg.hop
    for n in n_qs:
        per_clip = []
        for k, (uid, wav) in enumerate(clips):
            _, ids = model.encode(torch.from_numpy(wav)[None].to(device), n_q=n)       # (1, n, T)
            rec = model.decode_ids(ids)[0, :len(wav)].float().cpu().numpy()
            per_clip.append(codec_metrics(wav, rec))
            if n == cfg.n_q:
                ids_all.append(ids)
            if k < n_wavs:
                audio[f"{uid}_R{n}"] = rec
        rows.append(dict(n_q=n, kbps=n * np.log2(cfg.codebook_size) * frames_per_s / 1000, **mean_metrics(per_clip)))
    ids = torch.cat(ids_all, -1) if ids_all else model.encode(torch.from_numpy(clips[0][1])[None].to(device))[1]
    used = [len(torch.unique(ids[:, j])) for j in range(ids.shape[1])]
    return dict(rows=rows, perplexity=[round(float(p), 1) for p in model.rvq.perplexity(ids)],
                dead=[round(1 - u / cfg.codebook_size, 3) for u in used], audio=audio)


def format_codec_table(result: dict) -> str:
    lines = ["| quantizers R | kbit/s | mel distance ↓ | SI-SDR dB ↑ | PESQ ↑ | STOI ↑ |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['n_q']} | {r['kbps']:.1f} | {r['mel']:.3f} | {r['si_sdr']:.2f} | {r['pesq']:.2f} | {r['stoi']:.3f} |"
              for r in result["rows"]]
    lines.append(f"\nperplexity per quantizer: {result['perplexity']}")
    lines.append(f"fraction of codes never used, per quantizer: {result['dead']} (max {max(result['dead']):.0%})")
    return "\n".join(lines)


def compare(ref_path, est_path, prompt_path=None, text=None) -> dict:
    """All metrics of one pair of files (any format features.load_audio reads): SIM, MCD, Table 12 prosody, and the
    codec metrics when the lengths match (a reconstruction); with a prompt, SIM and Table 4 prosody to it."""
    ref, est = features.load_audio(ref_path), features.load_audio(est_path)
    e_ref, e_est = speaker_embedding(ref), speaker_embedding(est)
    out = dict(sim_ref=cosine(e_est, e_ref), **prosody_vs_ground_truth(est, ref))        # with MCD
    if abs(len(ref) - len(est)) <= max(HOP_SLACK, LENGTH_TOLERANCE * len(ref)):
        out.update(codec_metrics(ref, est))
    if prompt_path is not None:
        prompt = features.load_audio(prompt_path)
        out.update(sim_prompt=cosine(e_est, speaker_embedding(prompt)), **prosody_vs_prompt(est, prompt))
    if text:
        from evaluation import asr
        heard = asr.transcribe(est)
        out.update(heard=heard, wer=asr.word_error_rate([text], [heard]))
    return out


def codec_cli(args):
    """`codec`: the bitrate/quality table on a split, the first 3 clips' wavs (original and at each number of
    quantizers), results.json and the quality-vs-steps plot."""
    import soundfile as sf
    from corpus import data
    model = codec.load_codec(args.ckpt)
    n_qs = [int(n) for n in args.n_q.split(",")]
    if not all(1 <= n <= model.cfg.n_q for n in n_qs):
        raise ValueError(f"--n-q values must be in 1..{model.cfg.n_q}")
    utts = [u for u in data.read_manifest(args.data)["utterances"] if u["split"] == args.split]
    if not utts:
        raise ValueError(f"split {args.split!r} of {args.data} is empty")
    utts = utts[:: max(1, len(utts) // args.max_utts)][: args.max_utts] if args.max_utts else utts
    clips = [(u["id"], features.load_audio(features.audio_path(args.data, u))) for u in utts]
    result = evaluate_codec(model, clips, n_qs)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, wav in [(f"{uid}_original", wav) for uid, wav in clips[:3]] + list(result.pop("audio").items()):
        sf.write(args.out / f"{name}.wav", wav, model.cfg.sample_rate)
    history = diagnostics.plot_history(args.ckpt, args.out / "quality_vs_steps.png")
    (args.out / "results.json").write_text(json.dumps(dict(result, clips=len(clips), ckpt=str(args.ckpt)), indent=1))
    print(f"{len(clips)} clips of split {args.split!r} ({args.data}), codec {args.ckpt}")
    print(format_codec_table(result))
    print(f"wavs, results.json{', quality_vs_steps.png' if history else ''} in {args.out}")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m evaluation.metrics", description="Evaluation (paper §4)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("codec", help="codec reconstruction quality on held-out voices, by number of quantizers")
    c.add_argument("--ckpt", type=Path, required=True)
    c.add_argument("--data", type=Path, default=Path("data/toy"))
    c.add_argument("--split", default="test", help="test = held-out voices (default)")
    c.add_argument("--n-q", default="1,4,8,16", help="comma-separated numbers of quantizers")
    c.add_argument("--max-utts", type=int, default=48, help="clips to score (0 = all)")
    c.add_argument("--out", type=Path, default=Path("out/codec"), help="wavs, results.json, quality plot")
    p = sub.add_parser("compare", help="every metric for one generated clip against a reference (and its prompt)")
    p.add_argument("--ref", type=Path, required=True, help="reference (ground-truth) speech")
    p.add_argument("--est", type=Path, required=True, help="generated or reconstructed speech")
    p.add_argument("--prompt", type=Path, help="the prompt the speech was generated from (SIM and pitch vs prompt)")
    p.add_argument("--text", help="what was said (adds pocketsphinx WER)")
    r = sub.add_parser("predictors", help="bias and L1 of an ldm checkpoint's duration/pitch predictors on a split")
    r.add_argument("--ckpt", type=Path, required=True, help="ldm checkpoint (train.py ldm or its export)")
    r.add_argument("--data", type=Path, default=Path("data/toy"), help="feature cache with the codec's IDs")
    r.add_argument("--split", default="test", help="test = held-out voices (default), valid = training voices")
    r.add_argument("--max-utts", type=int, default=96, help="utterances to score (0 = all)")
    a = sub.add_parser("attention", help="do the m prompt queries of an ldm checkpoint attend to different frames?")
    a.add_argument("--ckpt", type=Path, required=True, help="ldm checkpoint")
    a.add_argument("--data", type=Path, default=Path("data/toy"), help="feature cache with the codec's IDs")
    a.add_argument("--split", default="test", help="test = held-out voices (default)")
    a.add_argument("--frames", type=int, default=240, help="prompt length in frames (240 = 3 s)")
    a.add_argument("--out", type=Path, help="PNG of the attention of every head over the first prompt")
    h = sub.add_parser("history", help="plot the validation history stored in a codec or ldm checkpoint")
    h.add_argument("--ckpt", type=Path, required=True)
    h.add_argument("--out", type=Path, required=True, help="PNG file")
    return ap


COMMANDS = {"codec": codec_cli, "predictors": diagnostics.predictors_cli, "history": diagnostics.history_cli,
            "attention": diagnostics.attention_cli,
            "compare": lambda a: print(json.dumps(compare(a.ref, a.est, a.prompt, a.text), indent=1))}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.cmd](args)
        return 0
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
