"""The codec stage's audio batches (corpus/data.py `WaveSegments`): only each crop's span read and resampled, the
same batches from DataLoader workers, and an exact resume of a codec run whose batches come from workers."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from corpus import data, features
from training.codec_stage import train_codec
from training.presets import CodecTrainConfig, preset


@pytest.mark.parametrize("rate", [24000, 16000, 22050])
def test_span_read_equals_the_crop_of_the_whole_file_read(tmp_path, rate):
    path = tmp_path / f"x{rate}.wav"
    sf.write(path, 0.3 * np.random.default_rng(rate).standard_normal(int(3.3 * rate)), rate, subtype="PCM_16")
    whole = features.load_audio(path)
    n = 16000
    for start in (0, 1, 7, 12345, len(whole) - n, len(whole) - 5000, len(whole) - 1):
        span = features.read_span(path, start, n)
        crop = np.clip(whole, -1, 1)[start:start + n]                  # span reads are clipped to ±1
        assert span.dtype == np.float32 and len(span) == len(crop), start
        assert np.abs(span - crop).max() < 1e-5, start           # the resampler's edges lie outside the span read


def spans(cache, **kw):
    """WaveSegments of the train split that read each crop's span (no audio held in memory)."""
    return data.WaveSegments(cache, "train", 8000, 4, seed=3, in_memory_limit_hours=0, **kw)


def test_span_reads_give_the_in_memory_batches(toy_cache):
    held = data.WaveSegments(toy_cache, "train", 8000, 4, seed=3)
    assert held.cache is not None and spans(toy_cache).cache is None
    for step in (0, 5):                                             # int16 in memory: within one quantization step
        assert (held.batch(step) - spans(toy_cache).batch(step)).abs().max() < 2 / 32767


def test_workers_give_the_batches_of_the_training_process(toy_cache):
    segments = spans(toy_cache)
    expected = [segments.batch(s) for s in range(5, 11)]
    for workers in (0, 2):
        got = list(data.loader(segments, 5, 11, workers))
        assert len(got) == 6 and all(torch.equal(a, b) for a, b in zip(got, expected)), workers
    ranks = [spans(toy_cache, rank=r, world=2).batch(4) for r in (0, 1)]     # each rank its slice of one draw
    assert torch.equal(torch.cat(ranks), data.WaveSegments(toy_cache, "train", 8000, 8, seed=3,
                                                           in_memory_limit_hours=0).batch(4))


def log_rows(path):
    return [{k: v for k, v in json.loads(line).items() if k != "sec"} for line in open(path) if '"val"' not in line]


def test_codec_run_with_workers_resumes_exactly(toy_cache, tmp_path, monkeypatch):
    whole = data.WaveSegments
    monkeypatch.setattr(data, "WaveSegments", lambda *a, **k: whole(*a, in_memory_limit_hours=0, **k))
    cfg = preset("tiny").codec
    tcfg = lambda steps, workers: CodecTrainConfig(**{**vars(preset("tiny").codec_train), "min_lr_ratio": 1.0,
                                                      "steps": steps, "val_every": 100, "workers": workers})
    train_codec(cfg, tcfg(4, 0), toy_cache, tmp_path / "a", progress=False)
    train_codec(cfg, tcfg(3, 2), toy_cache, tmp_path / "b", progress=False)
    train_codec(cfg, tcfg(4, 2), toy_cache, tmp_path / "b", resume=True, progress=False)
    assert log_rows(tmp_path / "a" / "log.jsonl") == log_rows(tmp_path / "b" / "log.jsonl")
    ca = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    cb = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert ca["step"] == cb["step"] == 4 and all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])


def test_libritts_preset_reads_codec_batches_with_workers():
    assert preset("libritts").codec_train.workers == 4 and preset("toy").codec_train.workers == 0


def test_toy_audio_paths_stay_inside_the_cache(toy_cache):
    manifest = data.read_manifest(toy_cache)
    assert "roots" not in manifest
    assert all(features.audio_path(toy_cache, u) == toy_cache / "wavs" / f"{u['id']}.wav" for u in manifest["utterances"])
