"""Shared fixtures: one tiny toy corpus per test session (1 utterance per voice, built in seconds)."""
import sys
from pathlib import Path

import pytest
from corpus import features

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def toy_cache(tmp_path_factory):
    """A feature cache of the toy corpus: 64 train + 64 valid + 24 test + 24 confirm utterances (2 per held-out
    voice: a prompt and a target for evaluation/demo.py), made with 2 worker processes."""
    from corpus import data
    out = tmp_path_factory.mktemp("toy")
    data.write_manifest(out, data.prepare_toy(out, seed=0, utts_per_voice=1, heldout_utts=2, jobs=2))
    return out


@pytest.fixture(scope="session")
def encoded_cache(toy_cache, tmp_path_factory):
    """The tiny toy cache with codes from a tiny codec trained for 2 steps."""
    import shutil
    from corpus import data
    import train
    from training import codec_stage, presets
    root = tmp_path_factory.mktemp("ldm")
    cache = root / "cache"
    shutil.copytree(toy_cache, cache)
    tcfg = presets.CodecTrainConfig(**{**vars(presets.preset("tiny").codec_train), "steps": 2, "val_every": 100})
    codec_stage.train_codec(presets.preset("tiny").codec, tcfg, cache, root / "codec_run", progress=False)
    train.export(root / "codec_run" / "last.pt", root / "codec.pt")
    data.encode_cache(cache, root / "codec.pt")
    return cache, root / "codec.pt"


@pytest.fixture(scope="session")
def tiny_tts(encoded_cache, tmp_path_factory):
    """A tiny diffusion model trained 2 steps on the encoded cache (with a stand-in duration predictor), exported,
    plus prompt files good and bad: (folder, codec checkpoint)."""
    import numpy as np
    import soundfile as sf
    import torch
    from corpus import toy
    import train
    from training import ldm_stage as train_ldm
    from training import presets
    cache, codec_ckpt = encoded_cache
    root = tmp_path_factory.mktemp("tts")
    tcfg = presets.LDMTrainConfig(**{**vars(presets.preset("tiny").ldm_train), "steps": 2, "val_every": 100})
    train_ldm.train_ldm(train_ldm.LDMJob("tiny", cache, codec_ckpt, root / "run"), tcfg, progress=False)
    # 2 steps teach the duration predictor nothing (it predicts 0 frames, see the next test): stand in for a
    # trained one by setting its output bias to log(4 + 1), i.e. 4 frames (50 ms) per phoneme
    ck = torch.load(root / "run" / "last.pt", weights_only=True)
    for state in (ck["model"], ck["ema"]):
        state["prior.duration.out.bias"].fill_(float(np.log(5.0)))
    torch.save(ck, root / "run" / "last.pt")
    train.export(root / "run" / "last.pt", root / "ldm.pt")
    wav, _, _ = toy.render("Please bring the gentle violin to Judith before the storm.",
                           toy.make_voices(toy.HELDOUT_VARIANTS, 0, "ho")[1], seed=3)
    sf.write(root / "prompt.wav", wav, 16000)
    stereo = features.resample(wav, 16000, 44100)
    sf.write(root / "prompt_stereo44k.flac", np.stack([stereo, stereo], 1), 44100)
    sf.write(root / "silent.wav", np.zeros(48000, np.float32), 16000)
    sf.write(root / "short.wav", wav[:8000], 16000)
    (root / "junk.wav").write_bytes(b"not audio")
    return root, codec_ckpt
