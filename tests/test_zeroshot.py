"""evaluation/zeroshot.py: the paper's zero-shot protocol (targets of 4-10 s, a 3 s prompt cut of another
utterance of the same speaker), DNSMOS, its one-line errors, and the command end to end on the real-speech
fixtures with the tiny model."""
import json

import numpy as np
import pytest

from corpus import data, features, libritts
from corpus.features import HOP, PAUSE, SAMPLE_RATE as SR
from evaluation import zeroshot
from training.presets import preset

FIXTURES = data.Path(__file__).resolve().parent / "fixtures" / "realspeech"


def utt(uid: str, speaker: str, seconds: float, split: str = "test") -> dict:
    return dict(id=uid, speaker=speaker, split=split, n_frames=int(seconds * SR / HOP), wav=f"{uid}.wav", text="x")


def test_select_takes_targets_of_4_to_10_s_each_with_another_utterance_of_its_speaker_as_prompt(capsys):
    utts = [utt("a1", "A", 5.0), utt("a2", "A", 2.0), utt("a3", "A", 12.0), utt("a4", "A", 9.9),
            utt("b1", "B", 6.0), utt("b2", "B", 7.0), utt("c1", "C", 6.0), utt("c2", "C", 2.5),
            utt("d1", "D", 6.0), utt("t1", "T", 6.0, "train"), utt("t2", "T", 6.0, "train")]
    chosen = [(s, u["id"], p["id"]) for s, u, p in zeroshot.select(utts)]
    # a2 (2 s) is too short for a target and for a prompt; a3 (12 s) too long for a target, long enough for a prompt
    assert chosen == [("A", "a1", "a3"), ("A", "a4", "a1"), ("B", "b1", "b2"), ("B", "b2", "b1")]
    assert all(p != u for _, u, p in chosen)
    assert "2 held-out speaker(s) left out" in capsys.readouterr().err           # C: prompt too short; D: alone
    assert [u["id"] for _, u, _ in zeroshot.select(utts, per_speaker=1)] == ["a1", "b1"]
    assert [u["id"] for _, u, _ in zeroshot.select(utts, speakers=["B"])] == ["b1", "b2"]
    tagged = [dict(u, speaker=f"{'X' if u['speaker'] == 'A' else 'Y'}.{u['speaker']}") for u in utts]
    assert [u["id"] for _, u, _ in zeroshot.select(tagged, speakers=["X"])] == ["a1", "a4"]   # a root's tag
    assert [u["id"] for _, u, _ in zeroshot.select(tagged, speakers=["B"])] == ["b1", "b2"]   # an id in its root
    tiny = [(u["id"], p["id"]) for _, u, p in zeroshot.select(utts, min_s=1.5, max_s=3.0, prompt_s=2.0)]
    assert tiny == [("a2", "a3"), ("c2", "c1")]                       # the bounds are parameters
    with pytest.raises(ValueError, match="no held-out speaker has an utterance"):
        zeroshot.select(utts, min_s=20, max_s=30)
    with pytest.raises(ValueError, match="no test split"):
        zeroshot.select([u for u in utts if u["split"] == "train"])


def test_prompt_cut_starts_after_the_leading_pause_and_keeps_the_durations_inside():
    wav = np.arange(400 * HOP, dtype=np.float32)                       # 5 s: sample k holds k
    cut, durations = zeroshot.prompt_cut(wav, [PAUSE, "AH0", "B", PAUSE], [40, 200, 100, 60], prompt_s=3.0)
    assert len(cut) == 240 * HOP and cut[0] == 40 * HOP                   # 3 s from the end of the leading pause
    assert durations.tolist() == [200, 40] and durations.sum() == 240
    cut, durations = zeroshot.prompt_cut(wav, [PAUSE, "AH0", "B", PAUSE], [200, 100, 40, 60], prompt_s=3.0)
    assert cut[0] == 160 * HOP and durations.tolist() == [40, 100, 40, 60]   # moved back: 3 s remain
    cut, _ = zeroshot.prompt_cut(wav, ["AH0", "B"], [40, 360], prompt_s=1.0)
    assert cut[0] == 0 and len(cut) == 80 * HOP                           # no leading pause: from the start


def test_dnsmos_scores_clean_speech_above_white_noise():
    speech = features.load_audio(FIXTURES / "LibriSpeech" / "train-clean-5" / "118" / "47824" / "118-47824-0026.flac")
    noise = np.random.default_rng(0).normal(0, 0.1, len(speech)).astype(np.float32)
    clean, noisy = zeroshot.dnsmos(speech), zeroshot.dnsmos(noise)
    assert set(clean) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"}
    assert all(1.0 <= v <= 5.0 for v in list(clean.values()) + list(noisy.values())), (clean, noisy)
    assert clean["dnsmos_ovrl"] > noisy["dnsmos_ovrl"] + 1 and clean["dnsmos_p808"] > noisy["dnsmos_p808"] + 0.5
    assert zeroshot.dnsmos(2 * speech)["dnsmos_ovrl"] > 1.0               # clipped to [-1, 1], not refused
    with pytest.raises(ValueError, match="0.25 s"):
        zeroshot.dnsmos(speech[:1000])


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    cache = tmp_path / "cache"
    data.write_manifest(cache, dict(utterances=[utt("a1", "A", 5.0), utt("a2", "A", 5.0)], phonemes=["<pad>"]))
    train_only = tmp_path / "train_only"
    data.write_manifest(train_only, dict(utterances=[utt("a1", "A", 5.0, "train")], phonemes=["<pad>"]))
    for args, code, message in [(["--data", str(train_only)], 2, "no test split"),
                                (["--data", str(cache), "--min-s", "6"], 2, "no held-out speaker has"),
                                (["--data", str(cache), "--speakers", "B"], 2, "--speakers B: no such speaker"),
                                (["--data", str(tmp_path / "none")], 2, "no feature cache"),
                                (["--data", str(cache)], 3, "no checkpoint at")]:
        assert zeroshot.main(args + ["--ldm", str(tmp_path / "none.pt"), "--out", str(tmp_path / "out")]) == code
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (args, err)


@pytest.fixture(scope="module")
def heldout_cache(tmp_path_factory):
    """The LibriSpeech and LibriTTS fixtures in one cache, LibriSpeech's speaker 118 held out beside LibriTTS's
    test-clean speakers (3 held-out speakers, 2 utterances each), with the `tiny` aligner."""
    out = tmp_path_factory.mktemp("heldout")
    manifest = libritts.prepare([FIXTURES / "LibriSpeech", FIXTURES / "LibriTTS"], out,
                                [["train-clean-5"], ["train-clean-100", "test-clean"]], preset("tiny").aligner,
                                jobs=1, test_speakers=["118"])
    data.write_manifest(out, manifest)
    return out


@pytest.mark.slow
def test_the_protocol_end_to_end_on_a_tiny_cache(heldout_cache, tiny_tts, tmp_path, capsys):
    root, codec_ckpt = tiny_tts
    args = ["--data", str(heldout_cache), "--codec", str(codec_ckpt), "--ldm", f"tiny={root / 'ldm.pt'}",
            "--min-s", "1.5", "--prompt-s", "1.5", "--steps", "2", "--out", str(tmp_path)]
    assert zeroshot.main(args) == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "results.json").read_text())
    assert list(res["results"]) == ["ground truth", "codec resynthesis", "tiny"] and res["items"] == 6
    assert res["speakers"] == ["LibriSpeech.118", "LibriTTS.1030", "LibriTTS.1156"]
    gt, model = res["results"]["ground truth"], res["results"]["tiny"]
    for r in res["results"].values():
        assert {"wer", "sim_prompt", "speaker_id", "voiced_frac", "dnsmos_ovrl", "dnsmos_p808"} <= set(r)
    assert {"sim_gt", "pitch_corr", "pitch_mean_diff"} <= set(model) and "sim_gt" not in gt
    assert gt["voiced_frac"] > 0.2 and gt["sim_prompt"] > 0.5
    for row in res["per_item"]["tiny"]:                 # every prompt is another utterance of the same speaker
        assert row["prompt"] != row["id"] and row["prompt"].split("-")[0].split("_")[0] == \
            row["id"].split("-")[0].split("_")[0] and "heard" in row
    assert len(list((tmp_path / "prompts").glob("*.wav"))) == 6
    assert len(list((tmp_path / "wavs" / "tiny").glob("*.wav"))) == len(list((tmp_path / "plots").glob("*.png"))) == 6
    md = (tmp_path / "results.md").read_text()
    assert "| system |" in md and "DNSMOS OVRL" in md and "3 held-out speakers" in md
