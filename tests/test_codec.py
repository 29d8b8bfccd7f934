"""Codec (§3.1): exact shapes, overfitting one clip, exact resume, NaN guard, checkpoints, bad inputs, sizes."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import codec
from evaluation import metrics
from corpus import toy
import train
from dataclasses import replace
from training import loop

from pathlib import Path
from corpus import features
from training.presets import CodecTrainConfig, preset
from training.codec_stage import lr_at, train_codec
ROOT = Path(__file__).resolve().parents[1]


def test_paper_config_has_27M_parameters():
    m = codec.Codec(preset("paper").codec)
    n = codec.count_parameters(m) + m.rvq.codebooks.numel()             # encoder + decoder + codebooks
    assert abs(n / 27e6 - 1) < 0.15, n
    assert m.cfg.hop == 200 and (m.cfg.n_q, m.cfg.codebook_size, m.cfg.dim) == (16, 1024, 256)


@pytest.mark.parametrize("length", [16000, 16037, 199, 1, 400])
def test_shapes_for_odd_lengths(length):
    m = codec.Codec(preset("tiny").codec).eval()
    x = torch.randn(2, length) * 0.1
    T = -(-length // 200)                                                # ceil: the tail is zero-padded
    z, ids = m.encode(x)
    assert z.shape == (2, 16, T) and ids.shape == (2, 4, T)
    assert m.decode(z).shape == (2, T * 200) and m.decode_ids(ids).shape == (2, T * 200)
    assert m(x)["wav"].shape == (2, length)                             # training pass: cropped back
    assert torch.allclose(m.rvq.decode(ids), z)


def test_down_and_up_blocks_are_exact_inverses_in_shape():
    for s in (2, 4, 5, 5, 3):
        assert codec.Down(4, s, (1,))(torch.randn(1, 4, 60 * s)).shape == (1, 8, 60)
        assert codec.Up(8, s, (1,))(torch.randn(1, 8, 60)).shape == (1, 4, 60 * s)


@pytest.mark.parametrize("make, sr, message", [
    (lambda: torch.randn(1, 2, 800), None, "mono"),
    (lambda: torch.randn(1, 800), 22050, "22050 Hz"),
    (lambda: torch.zeros(1, 0), None, "empty"),
    (lambda: torch.full((1, 800), float("nan")), None, "NaN"),
    (lambda: torch.randn(800), None, "batch"),
])
def test_bad_inputs(make, sr, message):
    m = codec.Codec(preset("tiny").codec)
    with pytest.raises(ValueError, match=message):
        m.encode(make(), sample_rate=sr)


def speech_clip(n=4000):
    """The least-silent 0.25 s window of a toy utterance (eSpeak leaves exact zeros in pauses)."""
    wav, _, _ = toy.render("The quiet teacher painted the pencil.", toy.make_voices(toy.TRAIN_VARIANTS, 0, "tr")[0], 0)
    start = min(range(0, len(wav) - n, 400), key=lambda o: (wav[o:o + n] == 0).sum())
    return torch.from_numpy(wav[start:start + n])[None]


@pytest.mark.slow
def test_overfits_one_clip():
    """Mel distance of the reconstruction falls by more than 5x in 400 CPU steps (about 10 s)."""
    torch.manual_seed(0)
    x = speech_clip()
    cfg = replace(preset("tiny").codec, channels=8, n_q=8, codebook_size=128, dilations=(1, 3))
    m = codec.Codec(cfg)
    opt = torch.optim.Adam(m.parameters(), 5e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 400, 1e-4)

    def distance():
        m.eval()
        d = metrics.mel_distance(x[0], m.decode(m.encode(x)[0])[0])
        m.train()
        return d

    before = distance()
    for _ in range(400):
        loss = codec.total_loss(cfg, codec.generator_losses(cfg, x, m(x, n_q=cfg.n_q)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    after = distance()
    assert before / after > 5, (before, after)


def test_generator_losses_dict_and_total():
    cfg = preset("tiny").codec
    m, d = codec.Codec(cfg), codec.Discriminators(cfg)
    x = torch.randn(2, 4000) * 0.1
    losses = codec.generator_losses(cfg, x, m(x), d)
    assert set(losses) == {"time", "mel", "commit", "adv", "feat"}
    expected = sum(getattr(cfg, f"w_{k}") * v for k, v in losses.items())
    assert torch.allclose(codec.total_loss(cfg, losses), expected)
    assert set(codec.generator_losses(cfg, x, m(x))) == {"time", "mel", "commit"}   # warm-up: no GAN terms
    assert codec.mel_loss(x, x, cfg.mel_ffts) == 0
    assert codec.discriminator_loss(d, x, m(x)["wav"]) > 0


def tiny_train_config(**kw):
    return CodecTrainConfig(**{**vars(preset("tiny").codec_train), "min_lr_ratio": 1.0, **kw})


def log_rows(path):
    return [json.loads(line) for line in open(path) if '"val"' not in line]


def test_resume_gives_bit_identical_next_step(toy_cache, tmp_path):
    cfg = preset("tiny").codec
    train_codec(cfg, tiny_train_config(steps=4, val_every=100), toy_cache, tmp_path / "a", progress=False)
    train_codec(cfg, tiny_train_config(steps=3, val_every=100), toy_cache, tmp_path / "b", progress=False)
    train_codec(cfg, tiny_train_config(steps=4, val_every=100), toy_cache, tmp_path / "b", resume=True,
                      progress=False)
    a, b = log_rows(tmp_path / "a" / "log.jsonl"), log_rows(tmp_path / "b" / "log.jsonl")
    strip = lambda r: {k: v for k, v in r.items() if k != "sec"}
    assert [strip(r) for r in a] == [strip(r) for r in b]                 # step 4 (after resume) included, GAN on
    assert "adv" in a[-1] and a[-1]["step"] == 4
    ca = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    cb = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])


def test_nan_loss_stops_without_writing(toy_cache, tmp_path, monkeypatch):
    cfg = preset("tiny").codec
    train_codec(cfg, tiny_train_config(steps=2, val_every=100), toy_cache, tmp_path, progress=False)
    before = (tmp_path / "last.pt").read_bytes()
    real = codec.total_loss
    monkeypatch.setattr(codec, "total_loss", lambda c, l: real(c, l) * float("nan"))
    with pytest.raises(loop.NonFiniteLoss, match="non-finite codec loss at step 2"):
        train_codec(cfg, tiny_train_config(steps=4, val_every=100), toy_cache, tmp_path, resume=True,
                          progress=False)
    assert (tmp_path / "last.pt").read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))


def test_init_starts_from_an_exported_codec(toy_cache, tmp_path):
    cfg = preset("tiny").codec
    train_codec(cfg, tiny_train_config(steps=2, val_every=100), toy_cache, tmp_path / "a", progress=False)
    train.export(tmp_path / "a" / "last.pt", tmp_path / "a.pt")
    start = codec.load_codec(tmp_path / "a.pt")
    train_codec(cfg, tiny_train_config(steps=1, val_every=100, lr=0.0), toy_cache, tmp_path / "b",
                      progress=False, init=tmp_path / "a.pt")
    after = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    weights = [k for k in after if not k.startswith("rvq.")]
    assert all(torch.equal(after[k], start.state_dict()[k]) for k in weights)          # lr 0: the loaded weights
    c0, c1 = start.rvq.codebooks[0], after["rvq.codebooks"][0]                         # one EMA step, not a jump
    moved = (c1 - c0).norm(dim=-1) / c0.norm(dim=-1)
    assert moved.median() < 0.1, moved.median()
    fresh = preset("tiny").codec
    fresh.dim = fresh.dim * 2
    with pytest.raises(ValueError, match="another model config"):
        train_codec(fresh, tiny_train_config(steps=1), toy_cache, tmp_path / "c", progress=False,
                          init=tmp_path / "a.pt")


def test_validation_clips_fall_back_to_the_valid_split(toy_cache, tmp_path, capsys):
    """A training cache built without held-out voices (e.g. `prepare --splits train,valid`) validates the codec on
    its valid split, and one with neither split validates on nothing, rather than failing at the first validation."""
    from corpus import data
    from training import codec_stage
    manifest = data.read_manifest(toy_cache)
    ids = {uid for uid, _ in codec_stage.validation_clips(toy_cache, 3)}
    assert len(ids) == 3 and ids <= {u["id"] for u in manifest["utterances"] if u["split"] == "test"}
    (tmp_path / "wavs").symlink_to(toy_cache / "wavs")
    for keep, split in ((("train", "valid"), "valid"), (("train",), None)):
        data.write_manifest(tmp_path, dict(manifest, utterances=[u for u in manifest["utterances"]
                                                                 if u["split"] in keep]))
        clips = codec_stage.validation_clips(tmp_path, 3)
        wanted = {u["id"] for u in manifest["utterances"] if u["split"] == split}
        assert len(clips) == (3 if split else 0) and {c[0] for c in clips} <= wanted
        assert "no test split" in capsys.readouterr().out
    model = codec.Codec(preset("tiny").codec)
    assert codec_stage.validate(model, [], "cpu").metrics == {}


def test_export_and_load(toy_cache, tmp_path):
    cfg = preset("tiny").codec
    train_codec(cfg, tiny_train_config(steps=2, val_every=2), toy_cache, tmp_path, progress=False)
    train.export(tmp_path / "last.pt", tmp_path / "codec.pt")
    full, small = codec.load_codec(tmp_path / "last.pt"), codec.load_codec(tmp_path / "codec.pt")
    x = torch.randn(1, 2000) * 0.1
    assert torch.equal(full.encode(x)[1], small.encode(x)[1])            # fp32 codebooks: identical IDs
    assert torch.allclose(full.decode_ids(full.encode(x)[1]), small.decode_ids(small.encode(x)[1]), atol=1e-2)
    ck = torch.load(tmp_path / "codec.pt", weights_only=True)
    assert ck["model"]["decoder.0.weight"].dtype == torch.float16 and "rvq.embed_sum" not in ck["model"]
    assert len(ck["history"]) == 1 and {"pesq", "stoi", "mel", "si_sdr"} <= set(ck["history"][0])


def test_load_codec_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        codec.load_codec(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        codec.load_codec(tmp_path / "junk.pt")
    torch.save(dict(kind="ldm"), tmp_path / "ldm.pt")
    with pytest.raises(ValueError, match="not a codec checkpoint"):
        codec.load_codec(tmp_path / "ldm.pt")


def run_train(*args):
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("args, message", [
    (["codec", "--data", "/nonexistent", "--out", "/nonexistent/run"], "no feature cache"),
    (["codec", "--resume", "--out", "/nonexistent/run"], "--resume: no checkpoint"),
    (["codec", "--nosuchfield=3"], "no config field named 'nosuchfield'"),
    (["codec", "--lr=oops", "--nosuchfield=3"], "--lr=oops: expected a number"),
])
def test_train_cli_user_errors(args, message):
    r = run_train(*args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_lr_schedule():
    t = CodecTrainConfig(lr=1.0, warmup_steps=10, steps=110, min_lr_ratio=0.1)
    assert lr_at(0, t) == pytest.approx(0.1) and lr_at(9, t) == pytest.approx(1.0)
    assert lr_at(60, t) == pytest.approx(0.55) and lr_at(110, t) == pytest.approx(0.1)


def test_encode_adds_codes_to_the_cache(toy_cache, tmp_path):
    import shutil
    from corpus import data
    cache = tmp_path / "cache"
    shutil.copytree(toy_cache, cache)
    cfg = preset("tiny").codec
    train_codec(cfg, tiny_train_config(steps=2, val_every=100), cache, tmp_path / "run", progress=False)
    train.export(tmp_path / "run" / "last.pt", tmp_path / "codec.pt")
    info = data.encode_cache(cache, tmp_path / "codec.pt")
    assert info["n_q"] == 4 and data.read_manifest(cache)["codec"]["sha256"] == info["sha256"]
    model = codec.load_codec(tmp_path / "codec.pt")
    for u in data.read_manifest(cache)["utterances"][::20]:
        f = features.load_features(cache / "feats" / f"{u['id']}.npz")
        assert f["codes"].shape == (4, u["n_frames"]) and f["codes"].dtype == np.int16
        wav = torch.from_numpy(features.load_audio(cache / u["wav"]))[None]
        assert np.array_equal(model.encode(wav)[1][0].numpy(), f["codes"])
    batch = data.collate([data.FeatureDataset(cache, "train", with_codes=True)[i] for i in range(3)])
    assert batch["codes"].shape[:2] == (3, 4) and batch["codes"].shape[2] == batch["lf0"].shape[1]
    one = cache / "feats" / f"{data.read_manifest(cache)['utterances'][0]['id']}.npz"
    mtime = one.stat().st_mtime_ns
    data.encode_cache(cache, tmp_path / "codec.pt")                      # same codec: nothing redone
    assert one.stat().st_mtime_ns == mtime
    assert "codec IDs: 4 x 32" in data.format_stats(data.stats(data.read_manifest(cache)))
