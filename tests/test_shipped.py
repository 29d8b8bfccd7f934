"""The checkpoints the project ships, loaded with the current code: a stale or broken file fails CI here."""
from pathlib import Path

import numpy as np
import torch

import codec
import data
import eval as metrics
import toy

ROOT = Path(__file__).resolve().parents[1]
CODEC = ROOT / "checkpoints" / "toy" / "codec.pt"
# Floors a little under what the shipped codec measured on these 4 clips (PESQ 1.755, STOI 0.880; an untrained
# codec gives about 1.03 and 0.4), so a checkpoint that no longer matches the code, or a retrain that went wrong,
# fails here. Rendering and the codec are deterministic, so the measured values repeat exactly.
PESQ_FLOOR, STOI_FLOOR = 1.6, 0.85


def heldout_clips(n=4):
    """n test utterances of held-out voices (unseen timbres, unseen sentences), rendered afresh."""
    plan = toy.plan(seed=0, utts_per_voice=1, heldout_utts=1)
    utts = [u for u in plan["utterances"] if u["split"] == "test"][:: 3][:n]
    return [toy.render(u["text"], toy.Voice(**plan["voices"][u["speaker"]]), u["seed"])[0] for u in utts]


def test_shipped_codec_loads_and_meets_its_quality_floor():
    assert CODEC.exists(), f"{CODEC} is missing: the project ships it (README 'Codec' says how it was trained)"
    assert CODEC.stat().st_size <= 10e6
    model = codec.load_codec(CODEC)
    rows = []
    for wav in heldout_clips():
        _, ids = model.encode(torch.from_numpy(wav)[None])
        rows.append(metrics.codec_metrics(wav, model.decode_ids(ids)[0, :len(wav)].numpy()))
    m = metrics.mean_metrics(rows)
    assert m["pesq"] >= PESQ_FLOOR and m["stoi"] >= STOI_FLOOR, m
