"""Shared fixtures: one tiny toy corpus per test session (1 utterance per voice, built in seconds)."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def toy_cache(tmp_path_factory):
    """A feature cache of the toy corpus: 64 train + 64 valid + 12 test utterances, made with 2 worker processes."""
    import data
    out = tmp_path_factory.mktemp("toy")
    data.write_manifest(out, data.prepare_toy(out, seed=0, utts_per_voice=1, heldout_utts=1, jobs=2))
    return out


@pytest.fixture(scope="session")
def encoded_cache(toy_cache, tmp_path_factory):
    """The tiny toy cache with codes from a tiny codec trained for 2 steps."""
    import shutil
    import codec
    import data
    import train
    root = tmp_path_factory.mktemp("ldm")
    cache = root / "cache"
    shutil.copytree(toy_cache, cache)
    tcfg = train.CodecTrainConfig(**{**vars(train.TRAIN_PRESETS["tiny"]), "steps": 2, "val_every": 100})
    train.train_codec(codec.make_config("tiny"), tcfg, cache, root / "codec_run", progress=False)
    train.export(root / "codec_run" / "last.pt", root / "codec.pt")
    data.encode_cache(cache, root / "codec.pt")
    return cache, root / "codec.pt"
