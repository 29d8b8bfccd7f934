"""Feature pipeline: audio checks, pitch, durations, the cache (resumable), Dataset/collate, CLI errors."""
import io
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from corpus import data
from corpus import toy
from corpus import features

ROOT = data.Path(__file__).resolve().parents[1]


def harmonic_tone(f0, seconds=1.0, sr=16000, n_harmonics=6):
    t = np.arange(int(seconds * sr)) / sr
    return sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, n_harmonics + 1)).astype(np.float32) * 0.3


@pytest.mark.parametrize("f0", [110.0, 150.0, 237.0, 400.0])
def test_pitch_of_harmonic_tone_within_one_percent(f0):
    wav = harmonic_tone(f0)[: 79 * features.HOP]
    lf0, voiced = features.extract_pitch(wav)
    assert lf0.shape == voiced.shape == (79,)
    assert voiced[2:-2].all()
    est = np.exp(lf0[voiced])
    assert np.abs(np.median(est) / f0 - 1) < 0.01
    assert np.abs(est[2:-2] / f0 - 1).max() < 0.01


def test_pitch_frames_sit_on_codec_frames():
    """A tone that jumps 120 -> 240 Hz at frame 40 changes pitch at frame 40, not half a frame off."""
    a, b = harmonic_tone(120.0, 40 * features.HOP / 16000), harmonic_tone(240.0, 40 * features.HOP / 16000)
    lf0, voiced = features.extract_pitch(np.concatenate([a, b]))
    f = np.exp(lf0)
    assert abs(f[37] / 120 - 1) < 0.02 and abs(f[42] / 240 - 1) < 0.02
    assert np.argmax(np.diff(f)) in (38, 39, 40)


def test_unvoiced_frames_are_interpolated_never_log_zero():
    f0 = np.array([0, 0, 100, 0, 0, 0, 200, 0], float)
    lf0 = features.interpolate_log_f0(f0, f0 > 0)
    assert np.isfinite(lf0).all()
    assert np.allclose(np.exp(lf0[[0, 1, 2, 6, 7]]), [100, 100, 100, 200, 200])
    assert np.allclose(lf0[4], (np.log(100) + np.log(200)) / 2)      # linear in log F0
    with pytest.raises(features.AudioError, match="no voiced"):
        features.extract_pitch(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))


def test_load_audio_downmixes_and_resamples(tmp_path):
    tone = harmonic_tone(200.0, 1.0, sr=44100)
    sf.write(tmp_path / "stereo44k.wav", np.stack([tone, 0.5 * tone], 1), 44100)
    wav = features.load_audio(tmp_path / "stereo44k.wav")
    assert wav.ndim == 1 and wav.dtype == np.float32 and abs(len(wav) - 16000) <= 1
    lf0, _ = features.extract_pitch(wav[: len(wav) // 200 * 200])
    assert abs(np.median(np.exp(lf0)) / 200 - 1) < 0.01                 # resampling kept the pitch


@pytest.mark.parametrize("make, message", [
    (lambda: np.zeros(16000, np.float32), "silent"),
    (lambda: np.clip(harmonic_tone(150.0) * 10, -1, 1), "clipped"),
    (lambda: np.zeros(0, np.float32), "empty"),
    (lambda: np.where(np.arange(16000) == 5, np.nan, harmonic_tone(150.0)).astype(np.float32), "NaN"),
])
def test_bad_audio_gets_a_clear_error(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    sf.write(path, make(), 16000, subtype="FLOAT")
    with pytest.raises(features.AudioError, match=message):
        features.load_audio(path)


def test_unreadable_audio(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(features.AudioError, match="cannot read"):
        features.load_audio(tmp_path / "junk.wav")
    with pytest.raises(features.AudioError, match="cannot read"):
        features.load_audio(tmp_path / "missing.wav")


def test_features_reject_broken_durations():
    wav = harmonic_tone(150.0)[: 80 * features.HOP]
    with pytest.raises(ValueError, match="sum to 80"):
        features.features(wav, [1, 2, 3], [10, 20, 30], "s", "t")
    with pytest.raises(ValueError, match="multiple of the hop"):
        features.features(wav[:-1], [1], [80], "s", "t")


def test_every_item_durations_sum_to_frame_count(toy_cache):
    manifest = data.read_manifest(toy_cache)
    for u in manifest["utterances"]:
        f = features.load_features(toy_cache / "feats" / f"{u['id']}.npz")
        n_samples = sf.info(toy_cache / u["wav"]).frames
        assert f["durations"].sum() == len(f["lf0"]) == len(f["voiced"]) == u["n_frames"] == n_samples // features.HOP
        assert n_samples % features.HOP == 0 and len(f["durations"]) == len(f["phonemes"]) and (f["durations"] >= 0).all()
        assert np.isfinite(f["lf0"]).all() and str(f["speaker"]) == u["speaker"] and str(f["text"]) == u["text"]


def test_manifest_and_stats(toy_cache):
    st = data.stats(data.read_manifest(toy_cache))
    assert st["train_speakers"] == 64 and st["heldout_speakers"] == 12
    assert set(st["splits"]) == {"train", "valid", "test", "confirm"} and st["splits"]["test"]["speakers"] == 12
    assert st["splits"]["confirm"]["speakers"] == 12                     # the second held-out set
    assert "_" in st["phonemes"] and len(st["phonemes"]) > 40
    assert "12 held out" in data.format_stats(st)


def test_stats_count_phonemes_of_the_training_split(toy_cache):
    manifest = data.read_manifest(toy_cache)
    st = data.stats(manifest, toy_cache)
    counts = st["train_counts"]
    expected = {}
    for u in manifest["utterances"]:
        if u["split"] == "train":
            for i in features.load_features(toy_cache / "feats" / f"{u['id']}.npz")["phonemes"]:
                expected[manifest["phonemes"][i]] = expected.get(manifest["phonemes"][i], 0) + 1
    assert {p: n for p, n in counts.items() if n} == expected and set(counts) == set(manifest["phonemes"][1:])
    assert st["front_end_missing"] == []                # the inventory has every phoneme corpus/toy_words.json keeps
    text = data.format_stats(st)
    assert "coverage of the train split: every phoneme at least" in text and "missing from the inventory: none" in text


def test_dataset_and_collate_masks(toy_cache):
    ds = data.FeatureDataset(toy_cache, "train")
    items = [ds[i] for i in range(4)]
    batch = data.collate(items)
    B, N = batch["phonemes"].shape
    T = batch["lf0"].shape[1]
    assert B == 4 and N == max(len(it["phonemes"]) for it in items) and T == max(len(it["lf0"]) for it in items)
    for b, it in enumerate(items):
        n, t = len(it["phonemes"]), len(it["lf0"])
        assert batch["phoneme_mask"][b].sum() == n and batch["frame_mask"][b].sum() == t
        assert batch["phoneme_mask"][b, :n].all() and not batch["phoneme_mask"][b, n:].any()
        assert (batch["phonemes"][b, n:] == 0).all() and (batch["lf0"][b, t:] == 0).all()
        assert not batch["voiced"][b, t:].any()
        assert batch["durations"][b].sum() == t          # padding phonemes have duration 0
        assert ds.phoneme_set.decode(batch["phonemes"][b, :n]) == ds.phoneme_set.decode(it["phonemes"])
    with pytest.raises(KeyError, match="python -m corpus.data encode"):
        data.FeatureDataset(toy_cache, "train", with_codes=True)[0]
    with pytest.raises(ValueError, match="no utterance"):
        data.FeatureDataset(toy_cache, "nosuchsplit")
    lengths = sorted(u["n_frames"] for u in ds.utts)
    short = data.FeatureDataset(toy_cache, "train", min_frames=lengths[10])
    assert len(short) == sum(n >= lengths[10] for n in lengths) < len(ds)


def test_collate_pads_codes():
    import torch
    items = [dict(id=str(t), speaker=torch.tensor(0), phonemes=torch.ones(2, dtype=torch.long),
                  durations=torch.tensor([t - 1, 1]), lf0=torch.ones(t), voiced=torch.ones(t, dtype=torch.bool),
                  codes=torch.full((3, t), 7)) for t in (5, 9)]
    batch = data.collate(items)
    assert batch["codes"].shape == (2, 3, 9)
    assert (batch["codes"][0, :, :5] == 7).all() and (batch["codes"][0, :, 5:] == 0).all()


def test_prepare_resumes_where_it_stopped(tmp_path, toy_cache):
    """Remove some outputs (an interrupted run): a re-run redoes only those, and gets identical files."""
    import shutil
    out = tmp_path / "toy"
    shutil.copytree(toy_cache, out)
    (out / "manifest.json").unlink()
    feats = sorted((out / "feats").glob("*.npz"))
    removed = [feats[3], feats[50], feats[-1]]
    before = {p: p.read_bytes() for p in removed}
    for p in removed:
        p.unlink()
    untouched = feats[10]
    mtime = untouched.stat().st_mtime_ns
    data.write_manifest(out, data.prepare_toy(out, seed=0, utts_per_voice=1, heldout_utts=2, jobs=1))
    assert untouched.stat().st_mtime_ns == mtime
    for p in removed:
        new = features.load_features(p)
        old = np.load(io.BytesIO(before[p]))
        for k in ("phonemes", "durations", "lf0", "voiced"):
            assert np.array_equal(new[k], old[k]), (p.name, k)
    assert data.read_manifest(out)["utterances"] == data.read_manifest(toy_cache)["utterances"]
    assert not list(out.rglob("*.tmp"))                        # atomic writes leave no temp files


def test_prepare_some_splits_then_the_rest(tmp_path, toy_cache, monkeypatch):
    """make demo builds only valid + test; a later full build extends it with the same phoneme IDs. The phonemes
    of every planned text are cached in phonemes.json: with the cache, nothing is phonemized again."""
    import shutil
    out = tmp_path / "toy"
    out.mkdir()
    shutil.copy(toy_cache / "phonemes.json", out)
    monkeypatch.setattr(toy.EspeakPhonemizer, "__call__", lambda self, t: pytest.fail("phonemized again"))
    part = data.prepare_toy(out, seed=0, utts_per_voice=1, heldout_utts=2, jobs=1, splits=["test"])
    full = data.read_manifest(toy_cache)
    assert part["phonemes"] == full["phonemes"]                          # the inventory of the whole plan
    assert part["utterances"] == [u for u in full["utterances"] if u["split"] == "test"]
    for u in part["utterances"]:                                         # the same features as a full build's
        assert np.array_equal(features.load_features(out / "feats" / f"{u['id']}.npz")["phonemes"],
                              features.load_features(toy_cache / "feats" / f"{u['id']}.npz")["phonemes"])
    for sub in ("feats", "wavs"):                                        # stand in for rendering the rest
        for f in (toy_cache / sub).iterdir():
            if not (out / sub / f.name).exists():
                shutil.copy(f, out / sub / f.name)
    assert data.prepare_toy(out, seed=0, utts_per_voice=1, heldout_utts=2, jobs=1)["utterances"] == full["utterances"]
    with pytest.raises(ValueError, match="unknown split"):
        data.prepare_toy(out, seed=0, utts_per_voice=1, heldout_utts=2, jobs=1, splits=["tset"])


def test_toy_prepare_reports_and_skips_an_unusable_utterance(toy_cache, tmp_path, monkeypatch, capsys):
    """One utterance eSpeak renders badly (here: made to clip) is listed with its reason in the manifest and left
    out; the others are prepared."""
    import shutil
    out = tmp_path / "toy"
    out.mkdir()
    shutil.copy(toy_cache / "phonemes.json", out)
    tests = [u["id"] for u in data.read_manifest(toy_cache)["utterances"] if u["split"] == "test"]
    for uid in tests[1:]:                                                # stand in for rendering all but one
        for sub, ext in (("feats", "npz"), ("wavs", "wav")):
            (out / sub).mkdir(exist_ok=True)
            shutil.copy(toy_cache / sub / f"{uid}.{ext}", out / sub)

    def clipping(text, voice, seed=0, hop=200):
        raise ValueError(f"voice {voice.name} saturates eSpeak's 16-bit output")
    monkeypatch.setattr(toy, "render", clipping)
    part = data.prepare_toy(out, seed=0, utts_per_voice=1, heldout_utts=2, jobs=1, splits=["test"])
    assert [s["id"] for s in part["skipped"]] == tests[:1] and "saturates" in part["skipped"][0]["reason"]
    assert [u["id"] for u in part["utterances"]] == tests[1:]
    assert f"skipped {tests[0]}" in capsys.readouterr().out


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "corpus.data", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("args, message", [
    (["stats", "--data", "/nonexistent/cache"], "no feature cache"),
    (["prepare", "--corpus", "toy", "--utts-per-voice", "0", "--out", "/tmp/x"], "at least 1"),
    (["prepare", "--corpus", "libritts", "--out", "/tmp/x"], "--root"),
])
def test_cli_user_errors_are_one_line(args, message):
    r = run_cli(*args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_help():
    r = run_cli("prepare", "--help")
    assert r.returncode == 0 and "--utts-per-voice" in r.stdout


def test_step_batches_are_a_pure_function_of_seed_rank_and_step(toy_cache):
    ds = data.FeatureDataset(toy_cache, "train")
    a, b = data.StepBatches(ds, 4, seed=3), data.StepBatches(ds, 4, seed=3)
    assert [a.indices(s) for s in (7, 0, 7)] == [b.indices(7), b.indices(0), b.indices(7)]
    assert a.indices(7) != a.indices(8)
    both = data.StepBatches(ds, 8, seed=3).indices(7)                     # 2 ranks of 4 = the halves of 1 rank of 8
    assert [data.StepBatches(ds, 4, seed=3, rank=r, world=2).indices(7) for r in (0, 1)] == [both[:4], both[4:]]
    assert all(len(a.indices(s)) == 4 for s in range(20))


def test_frame_budget_batches_fill_the_budget_with_similar_lengths(toy_cache):
    ds = data.FeatureDataset(toy_cache, "train")
    budget = 1200
    sb = data.StepBatches(ds, frames_per_batch=budget, seed=0, window=16)
    lengths = sb.lengths
    fill, sizes = [], set()
    for step in range(200):
        idx = sb.indices(step)
        longest = max(lengths[i] for i in idx)
        assert len(idx) == 1 or len(idx) * longest <= budget
        fill.append(lengths[idx].sum() / budget)
        sizes.add(len(idx))
    assert np.mean(fill) > 0.6 and len(sizes) > 1           # batches are mostly real frames, and vary in size
    batch = sb[5]
    assert batch["frame_mask"].shape[0] == len(sb.indices(5)) and batch["frame_mask"].numel() <= budget


def test_loader_with_workers_gives_the_same_batches_in_order(toy_cache):
    import torch
    ds = data.FeatureDataset(toy_cache, "train")
    sb = data.StepBatches(ds, 3, seed=1)
    plain = [sb[s] for s in range(5, 9)]
    for got, want in zip(data.loader(sb, 5, 9, workers=2), plain):
        assert got["ids"] == want["ids"] and torch.equal(got["lf0"], want["lf0"])


def test_duration_stats_flag_a_collapsed_alignment(tmp_path):
    (tmp_path / "feats").mkdir()
    manifest = dict(hop=200, sample_rate=16000, phonemes=["<pad>", "_", "A", "B"],
                    utterances=[dict(id="good"), dict(id="collapsed")])
    np.savez(tmp_path / "feats" / "good.npz", phonemes=np.array([1, 2, 3, 2, 1]), durations=np.array([8, 6, 6, 6, 8]))
    np.savez(tmp_path / "feats" / "collapsed.npz", phonemes=np.array([1, 2, 3, 2, 1]),
             durations=np.array([1, 1, 60, 1, 1]))
    d = data.duration_stats(tmp_path, manifest)
    assert d["one_frame"] == pytest.approx(2 / 6) and d["over_500ms"] == pytest.approx(1 / 6)
    assert d["max_ms"] == 750 and d["median_ms"] == 75 and d["pause_share"] == pytest.approx(18 / 98)
