"""train.py ldm end to end on the tiny toy cache: checkpoints, exact resume, NaN guard, samples, CLI errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from corpus import data
import train
from training import loop
from training import ldm_stage as train_ldm
from training import presets

ROOT = Path(__file__).resolve().parents[1]


def tiny(**kw):
    return presets.LDMTrainConfig(**{**vars(presets.preset("tiny").ldm_train), **kw})


def job(cache, ckpt, out, **kw):
    return train_ldm.LDMJob("tiny", cache, ckpt, out, **kw)


def rows(path):
    return [json.loads(l) for l in open(path) if '"val"' not in l]


def test_ldm_trains_checkpoints_and_resumes_exactly(encoded_cache, tmp_path):
    cache, ckpt = encoded_cache
    final = train_ldm.train_ldm(job(cache, ckpt, tmp_path / "a"), tiny(steps=4, val_every=4), progress=False)
    assert {"data", "score", "ce_rvq", "dur", "pitch", "total"} <= set(final)
    ck = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    assert ck["kind"] == "ldm" and ck["phonemes"] == data.read_manifest(cache)["phonemes"]
    assert ck["codec"]["sha256"] and "latent_mean" in ck["model"] and ck["step"] == 4
    assert len(list((tmp_path / "a" / "samples").glob("*.wav"))) == 2            # zero-shot validation samples
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tb = EventAccumulator(str(tmp_path / "a" / "tb"), size_guidance={"audio": 0}).Reload().Tags()
    assert {"train/total", "train/lr", "train/grad_norm", "valid/total"} <= set(tb["scalars"])
    assert len(tb["audio"]) == 2                                                 # the samples, to listen to there
    train_ldm.train_ldm(job(cache, ckpt, tmp_path / "b"), tiny(steps=3, val_every=100), progress=False)
    train_ldm.train_ldm(job(cache, ckpt, tmp_path / "b"), tiny(steps=4, val_every=100), resume=True, progress=False)
    a, b = rows(tmp_path / "a" / "log.jsonl"), rows(tmp_path / "b" / "log.jsonl")
    assert a == b                                                               # step 4 after the resume included
    cb = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert all(torch.equal(ck["model"][k], cb["model"][k]) for k in ck["model"])
    assert all(torch.equal(ck["ema"][k], cb["ema"][k]) for k in ck["ema"])


def test_ldm_bf16_autocast_trains_and_resumes_exactly(encoded_cache, tmp_path):
    """What --amp=auto picks on a CPU with native bf16 for models of 1M parameters and more, forced here on the
    tiny model: finite losses, and a resumed run equals the uninterrupted one."""
    cache, ckpt = encoded_cache
    final = train_ldm.train_ldm(job(cache, ckpt, tmp_path / "a"), tiny(steps=3, val_every=100, amp="bf16"), progress=False)
    assert all(torch.isfinite(torch.tensor(v)) for k, v in final.items() if isinstance(v, float))
    train_ldm.train_ldm(job(cache, ckpt, tmp_path / "b"), tiny(steps=2, val_every=100, amp="bf16"), progress=False)
    train_ldm.train_ldm(job(cache, ckpt, tmp_path / "b"), tiny(steps=3, val_every=100, amp="bf16"), resume=True,
                        progress=False)
    assert rows(tmp_path / "a" / "log.jsonl") == rows(tmp_path / "b" / "log.jsonl")


def test_ldm_nan_guard(encoded_cache, tmp_path, monkeypatch):
    import model
    cache, ckpt = encoded_cache
    real = model.NaturalSpeech2.total_loss
    monkeypatch.setattr(model.NaturalSpeech2, "total_loss", lambda self, l: real(self, l) * float("nan"))
    with pytest.raises(loop.NonFiniteLoss, match="non-finite ldm loss at step 0"):
        train_ldm.train_ldm(job(cache, ckpt, tmp_path), tiny(), progress=False)
    assert not (tmp_path / "last.pt").exists()


def test_ldm_needs_codes_from_that_codec(toy_cache, encoded_cache, tmp_path):
    _, ckpt = encoded_cache
    with pytest.raises(ValueError, match="python -m corpus.data encode"):
        train_ldm.build_ldm(toy_cache, ckpt, "tiny")


def test_ablation_override_reaches_the_model(encoded_cache):
    cache, ckpt = encoded_cache
    net, _, _ = train_ldm.build_ldm(cache, ckpt, "tiny", {"denoiser.use_prompt": False, "use_ce_rvq": False})
    assert net.cfg.denoiser.use_prompt is False and net.cfg.use_ce_rvq is False and net.denoiser.query is None


@pytest.mark.parametrize("args, message", [
    (["ldm", "--data", "/nonexistent", "--out", "/nonexistent/run"], "no feature cache"),
    (["ldm", "--nosuchfield=1", "--out", "/tmp/none_x"], "no config field named 'nosuchfield'"),
    (["ldm", "--resume", "--out", "/nonexistent/run"], "--resume: no checkpoint"),
])
def test_ldm_cli_errors(args, message):
    r = subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_ldm_cli_non_finite_loss_is_one_line(encoded_cache, tmp_path):
    """The ldm stage lives in training/ldm_stage.py, which imports train.py: run as a script, train.py is loaded twice
    (as __main__ and as train), and the CLI must still catch the stage's NonFiniteLoss."""
    cache, ckpt = encoded_cache
    r = subprocess.run([sys.executable, "train.py", "ldm", "--config", "tiny", "--data", str(cache), "--codec", str(ckpt),
                        "--out", str(tmp_path / "run"), "--lr=1e30", "--steps=6"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 2 and "non-finite ldm loss" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "run" / "last.pt").exists()


def test_export_and_load_ns2(encoded_cache, tmp_path):
    import model
    cache, ckpt = encoded_cache
    train_ldm.train_ldm(job(cache, ckpt, tmp_path), tiny(steps=2, val_every=100), progress=False)
    train.export(tmp_path / "last.pt", tmp_path / "ldm.pt")
    full, meta = model.load_ns2(tmp_path / "last.pt")
    small, meta2 = model.load_ns2(tmp_path / "ldm.pt")
    assert meta["phonemes"] == meta2["phonemes"] == data.read_manifest(cache)["phonemes"]
    assert meta2["codec"]["sha256"] == data.read_manifest(cache)["codec"]["sha256"] and meta2["step"] == 2
    ck = torch.load(tmp_path / "ldm.pt", weights_only=True)
    assert "opt" not in ck and ck["model"]["latent_mean"].dtype == torch.float32
    phon, prompt = torch.tensor([[3, 4, 5, 6]]), torch.randn(1, 16, 30)
    a = full.generate(phon, prompt, steps=3, generator=torch.Generator().manual_seed(0))["latent"]
    b = small.generate(phon, prompt, steps=3, generator=torch.Generator().manual_seed(0))["latent"]
    assert a.shape == b.shape and torch.allclose(a, b, atol=0.05, rtol=0.05)    # fp16 weights, same model
    with pytest.raises(ValueError, match="not a latent diffusion"):
        model.load_ns2(ckpt)                                                    # a codec checkpoint


def test_export_records_a_copy_of_the_codec_and_refuses_another(encoded_cache, tmp_path):
    import shutil
    cache, ckpt = encoded_cache
    train_ldm.train_ldm(job(cache, ckpt, tmp_path), tiny(steps=2, val_every=100), progress=False)
    shutil.copy(ckpt, tmp_path / "shipped_codec.pt")
    train.export(tmp_path / "last.pt", tmp_path / "ldm.pt", codec=tmp_path / "shipped_codec.pt")
    meta = torch.load(tmp_path / "ldm.pt", weights_only=True)["codec"]
    assert meta["checkpoint"] == (tmp_path / "shipped_codec.pt").as_posix()
    other = tmp_path / "other.pt"
    other.write_bytes(ckpt.read_bytes() + b"x")
    r = subprocess.run([sys.executable, "train.py", "export", "--ckpt", str(tmp_path / "last.pt"), "--out",
                        str(tmp_path / "x.pt"), "--codec", str(other)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "is not the codec this model trained with" in r.stderr and "Traceback" not in r.stderr


def test_refit_predictors_trains_only_fresh_predictors_and_resumes(encoded_cache, tmp_path):
    """--refit-predictors: the predictors start afresh with the overridden setting and are the only weights that
    change; the rest equals the base model's EMA weights; the run resumes exactly and records what it re-fitted."""
    import model
    cache, ckpt = encoded_cache
    train_ldm.train_ldm(job(cache, ckpt, tmp_path / "base"), tiny(steps=2, val_every=100), progress=False)
    train.export(tmp_path / "base" / "last.pt", tmp_path / "base.pt")
    base, _ = model.load_ns2(tmp_path / "base.pt")
    kw = dict(mode="refit", base=tmp_path / "base.pt", changes={"prior.pred_dropout": 0.0})
    train_ldm.train_ldm(job(cache, ckpt, tmp_path / "a", **kw), tiny(steps=4, val_every=4), progress=False)
    ck = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    assert ck["config"]["prior"]["pred_dropout"] == 0.0 and base.cfg.prior.pred_dropout == 0.5
    assert ck["refit_of"]["path"] == str(tmp_path / "base.pt") and len(ck["refit_of"]["sha256"]) == 16
    assert ck["refit_of"]["step"] == torch.load(tmp_path / "base.pt", map_location="cpu", weights_only=False)["step"]
    refit, _ = model.load_ns2(tmp_path / "a" / "last.pt")
    old, new = base.state_dict(), refit.state_dict()
    is_pred = lambda k: k.startswith(("prior.duration.", "prior.pitch."))
    assert all(torch.equal(old[k], new[k]) for k in old if not is_pred(k))
    assert not torch.equal(old["prior.pitch.out.weight"], new["prior.pitch.out.weight"])
    train_ldm.train_ldm(job(cache, ckpt, tmp_path / "b", **kw), tiny(steps=3, val_every=100), progress=False)
    train_ldm.train_ldm(job(cache, ckpt, tmp_path / "b", **kw), tiny(steps=4, val_every=100), resume=True,
                        progress=False)
    assert rows(tmp_path / "a" / "log.jsonl") == rows(tmp_path / "b" / "log.jsonl")
    assert set(rows(tmp_path / "a" / "log.jsonl")[0]) == {"step", "lr", "dur", "pitch", "total", "grad_norm"}


def test_finetune_trains_only_the_diffusion_model_with_cfg_dropout(encoded_cache, tmp_path):
    """--finetune: the denoiser and the null prompt change; the prior and the prompt encoder (what the predictors
    read) stay the base model's; cfg_drop is switched on and recorded; any other override is refused."""
    import model
    cache, ckpt = encoded_cache
    train_ldm.train_ldm(job(cache, ckpt, tmp_path / "base"), tiny(steps=2, val_every=100), progress=False)
    train.export(tmp_path / "base" / "last.pt", tmp_path / "base.pt")
    base, _ = model.load_ns2(tmp_path / "base.pt")
    train_ldm.train_ldm(job(cache, ckpt, tmp_path / "ft", mode="finetune", base=tmp_path / "base.pt",
                            changes={"cfg_drop": 0.5}), tiny(steps=3, val_every=3), progress=False)
    ck = torch.load(tmp_path / "ft" / "last.pt", weights_only=True)
    assert ck["config"]["cfg_drop"] == 0.5 and ck["finetune_of"]["path"] == str(tmp_path / "base.pt")
    ft, _ = model.load_ns2(tmp_path / "ft" / "last.pt")
    old, new = base.state_dict(), ft.state_dict()
    trained = lambda k: k.startswith("denoiser.") or k == "null_prompt"
    assert all(torch.equal(old[k], new[k]) for k in old if not trained(k))
    assert not torch.equal(old["null_prompt"], new["null_prompt"])           # the dropped prompt was used
    assert not torch.equal(old["denoiser.final.weight"], new["denoiser.final.weight"])
    with pytest.raises(ValueError, match="cfg_drop alone"):
        train_ldm.train_ldm(job(cache, ckpt, tmp_path / "x", mode="finetune", base=tmp_path / "base.pt",
                                changes={"prior.pred_dropout": 0.1}), tiny(steps=1), progress=False)


def test_init_starts_a_full_run_from_a_trained_model(encoded_cache, tmp_path):
    """--init: every weight starts as the trained model's (lr 0 keeps them), except the predictors' output offsets,
    which start at this cache's means; the origin is recorded; --init and --finetune are refused together on the command line."""
    import model
    cache, ckpt = encoded_cache
    train_ldm.train_ldm(job(cache, ckpt, tmp_path / "base"), tiny(steps=2, val_every=100), progress=False)
    train.export(tmp_path / "base" / "last.pt", tmp_path / "base.pt")
    base, _ = model.load_ns2(tmp_path / "base.pt")
    train_ldm.train_ldm(job(cache, ckpt, tmp_path / "b", mode="init", base=tmp_path / "base.pt"),
                        tiny(steps=1, val_every=100, lr=0.0), progress=False)
    ck = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert ck["init_of"]["path"] == str(tmp_path / "base.pt")
    old = base.state_dict()
    offsets = ("prior.duration.out.bias", "prior.pitch.out.bias")
    assert all(torch.equal(old[k], ck["model"][k].to(old[k].dtype)) for k in old
               if not k.startswith(offsets) and k not in ("rvq.cluster_size", "rvq.embed_sum"))
    fresh = train_ldm.build_ldm(cache, ckpt, "tiny")[0].state_dict()
    assert all(torch.equal(fresh[k], ck["model"][k]) for k in offsets)
    train_ldm.train_ldm(job(cache, ckpt, tmp_path / "b"), tiny(steps=2, val_every=100), resume=True, progress=False)
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["init_of"] == ck["init_of"]   # kept on resume
    r = subprocess.run([sys.executable, "train.py", "ldm", "--config", "tiny", "--data", str(cache), "--codec", str(ckpt),
                        "--out", str(tmp_path / "x"), "--init", str(tmp_path / "base.pt"), "--finetune",
                        str(tmp_path / "base.pt")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "not allowed with argument" in r.stderr and "Traceback" not in r.stderr


def test_refit_predictors_rejects_changes_outside_the_predictors(encoded_cache, tmp_path):
    cache, ckpt = encoded_cache
    train_ldm.train_ldm(job(cache, ckpt, tmp_path / "base"), tiny(steps=1, val_every=100), progress=False)
    r = subprocess.run([sys.executable, "train.py", "ldm", "--config", "tiny", "--data", str(cache), "--codec", str(ckpt),
                        "--out", str(tmp_path / "r"), "--refit-predictors", str(tmp_path / "base" / "last.pt"),
                        "--denoiser.use_prompt=False"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "changes only the predictors" in r.stderr and "Traceback" not in r.stderr
