"""evaluation/demo.py: the zero-shot TTS stage end to end on tiny models, its table and its targets; stages run on their own."""
import json
from pathlib import Path

import pytest

from evaluation import asr
from evaluation import demo


@pytest.fixture(scope="module")
def tiny_asr(toy_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("asr") / "asr.pt"
    asr.train(toy_cache, out, asr.ASRConfig(steps=2, batch_size=4, channels=16, hidden=16, layers=1))
    return out


def test_pick_items_uses_heldout_voices_only(toy_cache):
    items = demo.pick_items(toy_cache, per_voice=1)
    assert len(items) == 12 and all(s.startswith("ho") for s, _, _ in items)
    assert all(p["speaker"] == s and len(t) == 1 and t[0]["id"] != p["id"] for s, p, t in items)


@pytest.mark.slow
def test_tts_stage_end_to_end(tiny_tts, toy_cache, tiny_asr, tmp_path, capsys):
    root, codec_ckpt = tiny_tts
    code = demo.main(["--stage", "tts", "--data", str(toy_cache), "--codec", str(codec_ckpt), "--ldm",
                      str(root / "ldm.pt"), "--ldm", f"second={root / 'ldm.pt'}", "--asr", str(tiny_asr),
                      "--per-voice", "1", "--steps", "2", "--oracle", "--pitch-shift", "12", "--temperature", "2",
                      "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "tts" / "results.json").read_text())
    r = res["results"]
    oracles = ["NaturalSpeech 2 (toy), ground-truth durations", "NaturalSpeech 2 (toy), ground-truth durations + pitch"]
    assert list(r) == ["ground truth", "codec resynthesis", "NaturalSpeech 2 (toy)", "second"] + oracles
    for name in oracles:                                       # the ground truth's durations: its length, exactly
        assert abs(r[name]["length_ratio"] - 1) < 0.02 and r[name]["duration_corr"] > 0.999
    assert abs(r["NaturalSpeech 2 (toy)"]["length_ratio"] - 1) > 0.05     # the stand-in predictor's 4 frames
    assert (res["pitch_shift"], res["temperature"], res["steps"]) == (12, 2, 2)
    # ground truth against itself: the speaker of every item is identified from its own voice's prompt
    assert r["ground truth"]["speaker_id"] > 0.5 and "mcd" not in r["ground truth"]
    for name in ("codec resynthesis", "second"):
        assert {"sim_prompt", "sim_gt", "per", "mcd", "pitch_mean_rel", "speaker_id"} <= set(r[name])
    assert r["NaturalSpeech 2 (toy)"] == r["second"]            # same checkpoint, same seeds: same numbers
    assert len(list((tmp_path / "tts" / "plots").glob("*.png"))) == 12
    assert len(list((tmp_path / "tts" / "wavs").glob("*_generated.wav"))) == 12
    md = (tmp_path / "tts" / "results.md").read_text()
    assert "| system |" in md and md.count("\n| ho") == 12          # one per-voice row per held-out voice
    assert len(res["per_item"]["second"]) == 12
    assert "held-out voices" in capsys.readouterr().out


def test_per_voice_table_flags_prompts_outside_the_training_pitch_range():
    items = [dict(speaker="low", prompt_f0_mean=120.0), dict(speaker="high", prompt_f0_mean=400.0),
             dict(speaker="high", prompt_f0_mean=400.0)]
    gt = [dict(voiced_frac=0.8)] * 3
    rows = [dict(speaker_hit=1.0, sim_prompt=0.9, pitch_mean_signed=0.05, voiced_frac=0.5, prior_f0_signed=0.01),
            dict(speaker_hit=0.0, sim_prompt=0.6, pitch_mean_signed=-0.4, voiced_frac=0.2, prior_f0_signed=-0.3),
            dict(speaker_hit=1.0, sim_prompt=0.8, pitch_mean_signed=-0.2, voiced_frac=0.4, prior_f0_signed=-0.5)]
    lines = demo.per_voice_table(items, gt, rows, (80.0, 300.0)).splitlines()
    assert lines[2] == "| low | 120 | 1.00 | 0.900 | +1.0% | +5.0% | 80% → 50% |"
    assert lines[3] == "| high | 400 (outside training range) | 0.50 | 0.700 | -40.0% | -30.0% | 80% → 30% |"


def test_table_and_targets():
    gt = dict(speaker_id=1.0, sim_prompt=0.85, per=0.1, pitch_mean_rel=0.02, vowels_voiced=0.9)
    good = dict(speaker_id=0.9, sim_prompt=0.80, per=0.15, pitch_mean_rel=0.05, mcd=5.0, vowels_voiced=0.85)
    bad = dict(speaker_id=0.5, sim_prompt=0.60, per=0.35, pitch_mean_rel=0.20, mcd=9.0, vowels_voiced=0.4)
    met = demo.check_targets({"ground truth": gt, "m": good}, "m")
    missed = demo.check_targets({"ground truth": gt, "m": bad}, "m")
    assert len(met) == len(missed) == 5
    assert all(line.startswith("met") for line in met) and all(line.startswith("MISSED") for line in missed)
    assert missed[0] == "MISSED speaker-ID ≥ 0.75: 0.500 (ground truth 1.000)"
    table = demo.format_table({"ground truth": gt, "m": good})
    assert table.splitlines()[2].startswith("| ground truth |") and "—" in table.splitlines()[2]   # no MCD for GT


def test_missing_checkpoints_are_clear_errors(toy_cache, tmp_path, capsys):
    assert demo.main(["--stage", "tts", "--data", str(toy_cache), "--ldm", str(tmp_path / "none.pt"),
                      "--out", str(tmp_path)]) == 3
    assert "no checkpoint at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        demo.main(["--stage", "tts", "--per-voice", "0"])


def test_codec_stage_on_its_own(encoded_cache, tmp_path, capsys):
    cache, codec_ckpt = encoded_cache
    assert demo.main(["--stage", "codec", "--data", str(cache), "--codec", str(codec_ckpt), "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "codec" / "results.json").read_text())["rows"]
    assert not (tmp_path / "tts").exists()


def test_model_labels(tmp_path):
    assert demo.model_label("runs/a.pt") == ("NaturalSpeech 2 (toy)", Path("runs/a.pt"))
    assert demo.model_label("guidance w=2=runs/a.pt") == ("guidance w=2", Path("runs/a.pt"))
    odd = tmp_path / "w=2.pt"
    odd.write_bytes(b"")
    assert demo.model_label(str(odd)) == ("NaturalSpeech 2 (toy)", odd)


def test_sing_stage_on_its_own(tiny_tts, toy_cache, tmp_path, capsys):
    root, codec_ckpt = tiny_tts
    assert demo.main(["--stage", "sing", "--data", str(toy_cache), "--codec", str(codec_ckpt), "--ldm",
                      str(root / "ldm.pt"), "--steps", "1", "--out", str(tmp_path)]) == 0, capsys.readouterr().err
    assert (tmp_path / "sing" / "line.png").is_file() and len(list((tmp_path / "sing" / "wavs").glob("*.wav"))) == 1
    assert "| held-out voice |" in (tmp_path / "sing" / "results.md").read_text()


@pytest.mark.slow
def test_real_stage_speaks_in_both_example_voices(tmp_path, capsys):
    """`make demo`'s real stage: the shipped real-voice model, the two native example prompts, one unseen sentence;
    each output is written and scored (SIM to its prompt, pocketsphinx's words and WER)."""
    assert demo.main(["--stage", "real", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = (tmp_path / "real" / "results.md").read_text().splitlines()[4:]
    assert len(rows) == 2 and all(name in out for name in ("female_4640", "male_2136")), out
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        seconds, sim, wer = float(cells[1]), float(cells[2]), float(cells[4])
        assert 1.0 < seconds < 15.0 and -1.0 <= sim <= 1.0 and wer >= 0.0, row
    assert (tmp_path / "real" / "female_4640.wav").stat().st_size > 10_000
