"""Codec reconstruction metrics (evaluation/metrics.py): perfect scores for identical audio, the analytic SI-SDR, monotone noise
ladders on a synthetic and a real toy utterance, and clear errors for inputs that would give meaningless numbers."""
import numpy as np
import pytest
import torch
from scipy.signal import butter, sosfilt

from corpus import features, toy
from evaluation import metrics
from evaluation.metrics import codec_metrics, mean_metrics, mel_distance, pesq_wb, si_sdr, stoi

SR = features.SAMPLE_RATE
SNRS = (30, 10, 0)


def speechlike(seconds: float = 3.0) -> np.ndarray:
    """A voiced 'speech' stand-in: 45 harmonics (∝ 1/√k, up to ~7 kHz) of a pitch gliding 80-160 Hz, gated by a
    4 Hz syllable envelope with true pauses in between. Enough for PESQ's and STOI's speech detectors."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(120 + 40 * np.sin(2 * np.pi * 0.4 * t)) / SR
    x = sum(np.sin(k * phase) / np.sqrt(k) for k in range(1, 46)) * np.sin(np.pi * 4 * t) ** 2
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def add_noise(ref: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    """ref + white Gaussian noise scaled so that 10 log10(||ref||² / ||noise||²) = snr_db exactly."""
    noise = np.random.default_rng(seed).standard_normal(len(ref))
    noise *= np.sqrt(np.sum(ref.astype(np.float64) ** 2) / np.sum(noise ** 2) / 10 ** (snr_db / 10))
    return ref + noise


@pytest.fixture(scope="module")
def signals():
    voice = toy.make_voices(toy.TRAIN_VARIANTS, 0, "tr")[0]
    wav, _, _ = toy.render("The quiet teacher painted the pencil near the harbour.", voice, seed=0)
    return {"tone": speechlike(), "toy": wav}


@pytest.fixture(scope="module")
def ladders(signals):
    """codec_metrics of each signal against itself + noise at 30, 10 and 0 dB SNR."""
    return {name: {snr: codec_metrics(ref, add_noise(ref, snr)) for snr in SNRS} for name, ref in signals.items()}


@pytest.mark.parametrize("name", ["tone", "toy"])
def test_identical_audio_scores_perfect(signals, name):
    ref = signals[name]
    m = codec_metrics(ref, ref.copy())
    assert m["pesq"] >= 4.4 and m["stoi"] > 0.99 and m["si_sdr"] > 60
    assert m["mel"] == pytest.approx(0.0, abs=1e-6)


def test_si_sdr_is_scale_invariant_but_mel_is_not(signals):
    ref = signals["toy"]
    assert si_sdr(ref, 0.5 * ref) > 60 and si_sdr(ref, -2.0 * ref) > 60
    assert mel_distance(ref, 0.5 * ref) > 0.01                     # log mel moves by log 2 wherever above the floor


def test_si_sdr_analytic_values(signals):
    # worked example: zero-mean ref, error orthogonal to it with equal energy -> 10 log10(4 / 4) = 0 dB
    assert si_sdr(np.array([1.0, -1, 1, -1]), np.array([2.0, 0, 0, -2])) == pytest.approx(0.0, abs=1e-9)
    ref = signals["tone"].astype(np.float64)
    ref -= ref.mean()
    noise = np.random.default_rng(2).standard_normal(len(ref))
    noise -= noise.mean() + np.dot(noise, ref) / np.dot(ref, ref) * ref    # exactly uncorrelated: SI-SDR == SNR
    noise *= np.sqrt(np.dot(ref, ref) / np.dot(noise, noise) / 10 ** (7 / 10))
    assert si_sdr(ref, ref + noise) == pytest.approx(7.0, abs=1e-6)
    assert si_sdr(ref, 3.0 * (ref + noise)) == pytest.approx(7.0, abs=1e-6)
    for snr in SNRS:                                                       # random noise: only nearly uncorrelated
        assert si_sdr(ref, add_noise(ref, snr)) == pytest.approx(snr, abs=0.5)


@pytest.mark.parametrize("name", ["tone", "toy"])
def test_noise_ladder_is_monotone(ladders, name):
    hi, mid, lo = (ladders[name][snr] for snr in SNRS)
    assert hi["pesq"] > mid["pesq"] > lo["pesq"]
    assert lo["pesq"] < 1.5                       # 0 dB of white noise: near the bottom of the scale (about 1.0)
    assert hi["stoi"] > mid["stoi"] > lo["stoi"]
    assert hi["mel"] < mid["mel"] < lo["mel"]
    assert hi["si_sdr"] > mid["si_sdr"] > lo["si_sdr"]


@pytest.mark.parametrize("name", ["tone", "toy"])
def test_lowpass_and_delay_lower_the_scores(signals, name):
    ref = signals[name]
    perfect = codec_metrics(ref, ref)
    low = codec_metrics(ref, sosfilt(butter(8, 2000, fs=SR, output="sos"), ref))          # 2 kHz low-pass
    assert low["pesq"] < perfect["pesq"] - 0.2 and low["stoi"] < perfect["stoi"]
    assert low["si_sdr"] < 20 and low["mel"] > 1e-3
    late = codec_metrics(ref, np.concatenate([np.zeros(16), ref[:-16]]))                  # 1 ms delay
    assert late["si_sdr"] < 0 and late["stoi"] < perfect["stoi"] and late["mel"] > 1e-3
    assert late["pesq"] > 4.4                     # PESQ aligns the pair itself: a pure delay costs (almost) nothing


def test_lengths_within_one_percent_are_cropped(signals):
    ref = signals["toy"]
    est = add_noise(ref, 10)[: len(ref) - 200]                                  # one codec hop short: 0.5 %
    n = len(est)
    assert si_sdr(ref, est) == si_sdr(ref[:n], est)
    assert mel_distance(ref, est) == mel_distance(ref[:n], est)
    assert pesq_wb(est, ref) == pesq_wb(est, ref[:n]) and stoi(ref, est) == stoi(ref[:n], est)
    for metric in (si_sdr, mel_distance, pesq_wb, stoi, codec_metrics):
        with pytest.raises(ValueError, match="differ"):
            metric(ref, ref[: int(0.9 * len(ref))])


@pytest.mark.parametrize("bad", [np.full(8000, np.nan), np.full(8000, np.inf), np.zeros((2, 8000)), np.zeros(0)],
                         ids=["nan", "inf", "2-D", "empty"])
def test_bad_input_raises(bad):
    good = speechlike(0.5)
    for metric in (si_sdr, mel_distance, pesq_wb, stoi):
        with pytest.raises(ValueError):
            metric(good, bad)
        with pytest.raises(ValueError):
            metric(bad, good)


def test_torch_tensors_accepted(signals):
    ref = signals["tone"]
    est = add_noise(ref, 10).astype(np.float32)
    expected = codec_metrics(ref, est)
    got = codec_metrics(torch.from_numpy(ref), torch.from_numpy(est))
    assert got == pytest.approx(expected, rel=1e-6)
    assert si_sdr(torch.from_numpy(ref).half(), est) == pytest.approx(expected["si_sdr"], abs=0.1)


def test_pesq_refusals_are_clear_value_errors(signals):
    ref = signals["tone"]
    with pytest.raises(ValueError, match="16000 Hz"):
        pesq_wb(ref, ref, sample_rate=8000)
    with pytest.raises(ValueError, match="0.25 s"):
        pesq_wb(ref[:1600], ref[:1600])                                           # 0.1 s
    with pytest.raises(ValueError, match="speech"):
        pesq_wb(np.zeros(SR), np.zeros(SR))


def test_mean_metrics_is_keywise():
    rows = [{"mel": 1.0, "si_sdr": 10.0, "pesq": 2.0, "stoi": 0.5},
            {"mel": 3.0, "si_sdr": 20.0, "pesq": 4.0, "stoi": 0.7}]
    assert mean_metrics(rows) == pytest.approx({"mel": 2.0, "si_sdr": 15.0, "pesq": 3.0, "stoi": 0.6})
    with pytest.raises(ValueError):
        mean_metrics([])
    with pytest.raises(ValueError):
        mean_metrics([rows[0], {"mel": 1.0}])


# ----------------------------------------------------------------------------- TTS metrics
def _tone(f0, seconds=1.5, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    return (sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)) * env * 0.2).astype(np.float32)


def test_mcd_zero_for_identical_and_grows_with_distortion():
    wav, _, _ = toy.render("The quiet teacher painted the pencil.", toy.make_voices(toy.TRAIN_VARIANTS, 0, "tr")[3], 0)
    assert metrics.mcd(wav, wav) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(0)
    noisy = [metrics.mcd(wav, wav + rng.normal(0, s, len(wav)).astype(np.float32)) for s in (0.001, 0.01, 0.05)]
    assert noisy[0] < noisy[1] < noisy[2]
    slow = features.resample(wav, 16000, 17600)                       # 10% longer, same spectra: DTW absorbs it
    other, _, _ = toy.render("The quiet teacher painted the pencil.", toy.make_voices(toy.TRAIN_VARIANTS, 0, "tr")[30], 0)
    assert metrics.mcd(wav, slow) < metrics.mcd(wav, other)


def test_dtw_path_recovers_a_known_warp():
    a = np.arange(10, dtype=float)[:, None]
    b = np.repeat(a, 2, axis=0)                                   # every frame twice
    i, j = metrics.dtw_path(a, b)
    assert (a[i] == b[j]).all() and i[0] == j[0] == 0 and i[-1] == 9 and j[-1] == 19


def test_dtw_path_is_the_minimum_cost_alignment():
    """The anti-diagonal DTW against the textbook cell-by-cell recursion and backtrack, on random sequences."""
    rng = np.random.default_rng(0)
    for N, M in ((1, 1), (1, 5), (7, 3), (40, 55)):
        a, b = rng.normal(size=(N, 3)), rng.normal(size=(M, 3))
        cost = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
        acc = np.full((N + 1, M + 1), np.inf)
        acc[0, 0] = 0
        for i in range(1, N + 1):
            for j in range(1, M + 1):
                acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
        i, j = metrics.dtw_path(a, b)
        assert i[0] == j[0] == 0 and i[-1] == N - 1 and j[-1] == M - 1
        steps = np.stack([np.diff(i), np.diff(j)], 1)
        assert ((steps >= 0).all(1) & (steps.sum(1) >= 1) & (steps <= 1).all(1)).all()     # monotone, unit steps
        assert cost[i, j].sum() == pytest.approx(acc[N, M])                                 # the minimum cost


def test_prosody_metrics_on_tones():
    base, higher = _tone(150.0), _tone(165.0)                     # +10% pitch
    p = metrics.prosody_vs_prompt(higher, base, [4, 6, 8], [4, 6, 8])
    assert p["pitch_mean_diff"] == pytest.approx(15.0, abs=1.5) and p["duration_mean_diff"] == 0
    g = metrics.prosody_vs_ground_truth(base, base, [3, 5, 7], [3, 5, 7])
    assert g["pitch_rmse"] < 1.0 and g["duration_corr"] == pytest.approx(1.0) and g["duration_rmse"] == 0
    glide_up = (np.sin(2 * np.pi * np.cumsum(np.linspace(120, 220, 24000)) / 16000) * 0.3).astype(np.float32)
    assert metrics.prosody_vs_ground_truth(glide_up, glide_up)["pitch_corr"] > 0.99
    g = metrics.prosody_vs_ground_truth(glide_up, base)                # its MCD: the one `mcd` gives, ground truth as ref
    assert g["mcd"] == pytest.approx(metrics.mcd(base, glide_up)) and g["mcd"] > 1
    with pytest.raises(ValueError, match="same phonemes"):
        metrics.prosody_vs_ground_truth(base, base, [1, 2], [1, 2, 3])


# --- speaker similarity, speaker ID, WER ---------------------------------------------------------------------
def _voice_clips():
    voices = toy.make_voices(toy.HELDOUT_VARIANTS, 0, "ho")
    a, b = voices[0], voices[7]             # f2 and m3 (f2 and f5 sound alike even to the speaker encoder)
    say = lambda text, v, seed: toy.render(text, v, seed)[0]
    return (say("Please bring the warm violin to Hugo.", a, 1), say("The curious oyster pushed the pilot.", a, 2),
            say("Please bring the warm violin to Hugo.", b, 1))


def test_speaker_similarity_identical_same_and_other_voice():
    a1, a2, b1 = _voice_clips()
    ea1, ea2, eb1 = (metrics.speaker_embedding(w) for w in (a1, a2, b1))
    assert metrics.cosine(ea1, metrics.speaker_embedding(a1.copy())) == pytest.approx(1.0, abs=1e-5)
    # same voice, another sentence is closer than another voice, same sentence
    assert metrics.cosine(ea1, ea2) > metrics.cosine(ea1, eb1)
    assert metrics.speaker_id_accuracy([ea2, eb1], ["a", "b"], {"a": ea1, "b": eb1}) == 1.0
    assert metrics.speaker_id_accuracy([ea2], ["b"], {"a": ea1, "b": eb1}) == 0.0
    with pytest.raises(ValueError, match="too little speech"):
        metrics.speaker_embedding(np.zeros(16000, np.float32))


def test_compare_cli(tmp_path, capsys):
    import json
    import soundfile as sf
    a1, a2, _ = _voice_clips()
    sf.write(tmp_path / "a1.wav", a1, 16000)
    sf.write(tmp_path / "a2.wav", a2, 16000)
    assert metrics.main(["compare", "--ref", str(tmp_path / "a1.wav"), "--est", str(tmp_path / "a1.wav"),
                    "--prompt", str(tmp_path / "a2.wav")]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["sim_ref"] == pytest.approx(1, abs=1e-5) and r["mcd"] == 0 and r["si_sdr"] == 100.0
    assert 0 < r["sim_prompt"] < 1 and "pitch_mean_diff" in r
    assert metrics.main(["compare", "--ref", str(tmp_path / "missing.wav"), "--est", str(tmp_path / "a1.wav")]) == 2
    assert "error:" in capsys.readouterr().err


def test_pitch_metrics_of_unvoiced_audio_are_nan_not_errors():
    noise = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)
    silent = np.zeros(16000, np.float32)
    for wav in (noise, silent):
        f0, voiced = metrics.f0_hz(wav)
        assert not voiced.any()
        p = metrics.prosody_vs_prompt(wav, _tone(150.0))
        assert np.isnan(p["pitch_mean_diff"]) and np.isnan(p["pitch_std_diff"])
        assert np.isnan(metrics.prosody_vs_ground_truth(wav, _tone(150.0))["pitch_rmse"])


@pytest.mark.parametrize("args, message", [
    (["--ckpt", "nope.pt"], "no checkpoint at nope.pt"),
    (["--ckpt", "checkpoints/toy/codec.pt"], "not a latent diffusion"),
    (["--ckpt", "checkpoints/toy/ldm.pt", "--data", "/nonexistent"], "no feature cache"),
])
def test_predictors_cli_errors(args, message):
    import subprocess
    import sys
    from pathlib import Path
    r = subprocess.run([sys.executable, "-m", "evaluation.metrics", "predictors", *args], cwd=Path(__file__).resolve().parents[1],
                       capture_output=True, text=True)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_history_cli_plots_a_stored_history(tmp_path, capsys):
    history = [dict(step=s, data=1.0 / s, score=0.5, ce_rvq=2.0, dur=0.3, pitch=0.2) for s in (100, 200)]
    torch.save(dict(kind="ldm", history=history), tmp_path / "ldm.pt")
    assert metrics.main(["history", "--ckpt", str(tmp_path / "ldm.pt"), "--out", str(tmp_path / "plots" / "v.png")]) == 0
    assert (tmp_path / "plots" / "v.png").stat().st_size > 0 and "2 validations, steps 100..200" in capsys.readouterr().out
    torch.save(dict(kind="codec", history=[]), tmp_path / "codec.pt")
    assert metrics.main(["history", "--ckpt", str(tmp_path / "codec.pt"), "--out", str(tmp_path / "c.png")]) == 2
    assert "holds no validation history" in capsys.readouterr().err


def test_pearson_known_values_and_constant_input_without_warning():
    import warnings
    assert metrics.pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert metrics.pearson([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # numpy's divide warning would raise here
        assert np.isnan(metrics.pearson([5, 5, 5, 5], [1, 2, 3, 4]))
        assert np.isnan(metrics.pearson([1, 2], [2, 1]))        # fewer than 3 points


class _Identity:
    """A stand-in codec whose resynthesis is the input itself (encode returns the waveform as its 'latent')."""
    def encode(self, wav):
        return (wav,)

    def decode(self, z):
        return z


class _Higher(_Identity):
    """A stand-in codec that plays everything 25% higher and faster (resampled 16 -> 12.8 kHz, played at 16 kHz,
    zero-padded to the input's length): F0 rises by a quarter."""
    def decode(self, z):
        up = torch.from_numpy(features.resample(z[0].numpy(), SR, SR * 4 // 5))
        return torch.cat([up, torch.zeros(z.shape[-1] - len(up))])[None]


@pytest.mark.slow              # 50 s: 12 voices, two stand-in codecs, PESQ, STOI, PyWorld, Resemblyzer
def test_codec_by_voice_scores_a_perfect_and_a_pitch_raising_codec(toy_cache):
    from evaluation import heldout
    table = heldout.codec_by_voice({"same": _Identity(), "high": _Higher()}, toy_cache, per_voice=1)
    assert len(table) == 12 and all(v.startswith("ho") for v in table)
    for row in table.values():
        assert row["same"]["f0_diff"] == pytest.approx(0, abs=1e-6) and row["same"]["sim"] > 0.999
        assert row["same"]["voiced"] == pytest.approx(row["gt"]["voiced"]) and row["same"]["stoi"] > 0.99
        assert 0.2 < row["high"]["f0_diff"] < 0.35 and row["high"]["stoi"] < 0.5
    text = heldout.format_codec_by_voice(table)
    assert text.count("\n| ho") == 12 and "| mean | | | " in text and "±0.0%" in text


def test_codec_by_voice_cli_error_is_one_line(tmp_path, capsys):
    from evaluation import heldout
    assert heldout.main([f"x={tmp_path / 'missing.pt'}", "--data", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
