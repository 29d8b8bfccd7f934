"""evaluation/demo_section5.py: the §5 measurements end to end on the tiny model (seconds), and the noise mixing they rely on."""
import json

import numpy as np
import soundfile as sf

from evaluation import demo_section5 as demo5
import sample
from training.presets import preset


def test_add_noise_hits_the_snr():
    rng = np.random.default_rng(0)
    clean = 0.1 * np.sin(np.arange(16000) / 10).astype(np.float32)
    noisy = demo5.add_noise(clean, rng.standard_normal(16000).astype(np.float32), 5.0)
    snr = 10 * np.log10(np.mean(clean ** 2) / np.mean((noisy - clean) ** 2))
    assert abs(snr - 5.0) < 0.01


def test_babble_is_other_voices(toy_cache):
    b = demo5.babble(toy_cache, 16000, seed=1)
    assert b.shape == (16000,) and b.std() > 0.5               # four unit-variance talkers, summed


def test_vc_se_sing_end_to_end_on_the_tiny_model(tiny_tts, toy_cache, tmp_path):
    root, codec_ckpt = tiny_tts
    synth = sample.Synthesizer(root / "ldm.pt", codec_ckpt)
    vc = demo5.run_vc(synth, toy_cache, tmp_path / "vc", per_voice=1, steps=2, voices=1)
    assert vc["items"] == 1 and "| converted (§5 VC) |" in vc["table"]
    frames = {w.stem.rsplit("_", 1)[1]: sf.info(w).frames for w in (tmp_path / "vc" / "wavs").glob("*.wav")}
    assert set(frames) == {"source", "converted", "tts", "gt"}
    assert frames["converted"] == frames["tts"] == frames["source"]           # both keep the source's timing
    se = demo5.run_se(synth, toy_cache, tmp_path / "se", voices=1, snrs=(5,), steps=2)
    assert se["items"] == 2 and se["table"].count("| 5 dB |") == 2
    assert [(r["noise"], r["snr"]) for r in se["rows"]] == [("white", 5.0), ("babble", 5.0)]
    assert all(r["stoi_noisy"] < 0.99 for r in se["rows"])               # the noise is really there at 5 dB
    sing = demo5.run_sing(synth, toy_cache, tmp_path / "sing", demo5.Singing(line_only=True), voices=1, steps=1)
    assert [r["mode"] for r in sing["rows"]] == ["auto", "octaves", "as written"]
    assert json.dumps(sing, default=float)                     # results.json can be written


def test_invert_table_on_the_tiny_model(tiny_tts, toy_cache):
    root, codec_ckpt = tiny_tts
    synth = sample.Synthesizer(root / "ldm.pt", codec_ckpt)
    res = demo5.run_invert(synth, toy_cache, starts=(0.001, 0.03), steps=2, voices=1)
    assert [r["t_invert"] for r in res["rows"]] == [0.001, 0.03] and res["table"].count("| t = ") == 2
    assert synth.model.cfg.sde.t_invert == 0.03                 # the model's setting is restored


def test_pitch_from_on_the_tiny_model(tiny_tts, toy_cache, tmp_path):
    import align
    root, codec_ckpt = tiny_tts
    synth = sample.Synthesizer(root / "ldm.pt", codec_ckpt)
    cfg = preset("tiny").aligner
    _, items = align.cache_items(toy_cache, "train", cfg, limit=4)
    net = align.fit(items, synth.phoneme_set.to_list(), cfg, progress=False)
    res = demo5.run_pitch_from(synth, toy_cache, tmp_path, net, voices=1, steps=1)
    assert res["items"] == 2 and abs(res["rows"][0]["length_ratio"] - 1) < 0.01    # the recording's timing
    assert "| F0 RMSE vs the recording" in res["table"]
