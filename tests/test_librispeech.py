"""The LibriSpeech layout, several roots in one cache, and preparing a test subset with an aligner fitted before,
on the real-speech fixtures (tests/fixtures/realspeech/: LibriSpeech in Opus, FLAC and WAV; LibriTTS in WAV)."""
import json
import shutil

import pytest
import torch

import align
from corpus import data, features, layouts, libritts
from corpus.text import OPTIONAL_PAUSE, g2p_phonemes
from training.presets import preset

FIXTURES = data.Path(__file__).resolve().parent / "fixtures" / "realspeech"
LS, LTTS = FIXTURES / "LibriSpeech", FIXTURES / "LibriTTS"


def test_librispeech_reader_finds_utterances_texts_and_speakers():
    utts, skipped, sources = layouts.find_utterances([LS], [["train-clean-5"]])
    assert skipped == [] and sources[0]["layout"] == "librispeech" and sources[0]["tag"] == ""
    by_id = {u["id"]: u for u in utts}
    assert sorted(by_id) == ["118-47824-0026", "118-47824-0035", "1737-146161-0007", "19-198-0000"]
    assert by_id["19-198-0000"]["text"] == "NORTHANGER ABBEY" and by_id["19-198-0000"]["speaker"] == "19"
    assert by_id["118-47824-0035"]["text"] == "I DON'T MIND I'M GLAD YOU'RE OUT OF IT"
    assert {u["speaker"] for u in utts} == {"19", "118", "1737"} and {u["split"] for u in utts} == {"train"}
    assert sorted(data.Path(u["wav"]).suffix for u in utts) == [".flac", ".opus", ".opus", ".wav"]
    for u in utts:                                          # soundfile reads Ogg Opus as it reads FLAC and WAV
        wav = features.load_audio(u["wav"])
        assert 1.9 < len(wav) / features.SAMPLE_RATE < 2.5


def test_librispeech_reader_skips_and_reports_bad_entries(tmp_path):
    root = tmp_path / "LibriSpeech"
    shutil.copytree(LS, root)
    chapter = root / "train-clean-5" / "118" / "47824"
    trans = chapter / "118-47824.trans.txt"
    trans.write_text(trans.read_text() + "118-47824-0099 A LINE WITHOUT AUDIO\n118-47824-0035\n")   # 0035: no text
    shutil.copy(chapter / "118-47824-0026.flac", chapter / "118-47824-0098.flac")                 # no line
    shutil.copy(chapter / "118-47824-0026.flac", chapter / "118-47824-0026.wav")                  # FLAC is read
    (root / "train-clean-5" / "1737" / "146161" / "1737-146161.trans.txt").unlink()
    utts, skipped, _ = layouts.find_utterances([root], [["train-clean-5"]])
    reasons = {s["id"]: s["reason"] for s in skipped}
    assert "no audio" in reasons["118-47824-0099"] and "no line" in reasons["118-47824-0098"]
    assert "empty transcript" in reasons["118-47824-0035"] and "transcript file" in reasons["1737-146161-0007"]
    kept = [(u["id"], data.Path(u["wav"]).suffix) for u in utts]
    assert kept == [("118-47824-0026", ".flac"), ("19-198-0000", ".opus")]


def test_layout_detection_and_root_tags(tmp_path):
    assert layouts.detect_layout(LS, ["train-clean-5"]) == "librispeech"
    assert layouts.detect_layout(LTTS, ["train-clean-100", "test-clean"]) == "libritts"
    (tmp_path / "train-x" / "1" / "2").mkdir(parents=True)
    with pytest.raises(ValueError, match="--layout"):
        layouts.detect_layout(tmp_path, ["train-x"])
    assert layouts.root_tags([LS, LTTS, tmp_path / "a" / "LibriTTS"]) == ["LibriSpeech", "LibriTTS", "LibriTTS3"]
    with pytest.raises(FileNotFoundError, match="not found"):
        layouts.find_utterances([LS], [["dev-clean-2"]])


def test_upper_case_unpunctuated_text_reads_as_sentence_case_with_optional_pauses():
    text = "I DON'T MIND I'M GLAD YOU'RE OUT OF IT"
    ph = g2p_phonemes(text, word_pauses=True)
    assert ph == g2p_phonemes(text.lower(), word_pauses=True) == g2p_phonemes(text.capitalize(), word_pauses=True)
    assert ph[0] == ph[-1] == features.PAUSE and ph.count(OPTIONAL_PAUSE) == len(text.split()) - 1


@pytest.fixture(scope="module")
def combined(tmp_path_factory):
    """One cache of the LibriSpeech fixture (train-clean-5) and the LibriTTS fixture (train + test), prepared with
    the `tiny` aligner preset: (cache folder, manifest)."""
    out = tmp_path_factory.mktemp("combined")
    manifest = libritts.prepare([LS, LTTS], out, [["train-clean-5"], ["train-clean-100", "test-clean"]], jobs=1,
                                aligner=preset("tiny").aligner)
    return out, manifest


def test_prepare_combines_a_librispeech_and_a_libritts_root(combined):
    out, manifest = combined
    ids = [u["id"] for u in manifest["utterances"]]
    assert len(ids) == len(set(ids)) == 16 and manifest["skipped"] == []
    assert "LibriSpeech.19-198-0000" in ids and "LibriTTS.1012_1_000002_000000" in ids
    layout_of = {s["tag"]: s["layout"] for s in manifest["sources"]}
    assert layout_of == {"LibriSpeech": "librispeech", "LibriTTS": "libritts"}
    assert manifest["speakers"]["heldout"] == ["LibriTTS.1030", "LibriTTS.1156"]
    assert {"LibriSpeech.19", "LibriSpeech.118", "LibriSpeech.1737"} <= set(manifest["speakers"]["train"])
    assert {u["split"] for u in manifest["utterances"]} == {"train", "valid", "test"}
    pset = data.PhonemeSet.from_list(manifest["phonemes"])
    for u in manifest["utterances"]:
        f = features.load_features(out / "feats" / f"{u['id']}.npz")
        assert f["durations"].sum() == len(f["lf0"]) == u["n_frames"] and (f["durations"] >= 1).all()
        got, full = pset.decode(f["phonemes"]), g2p_phonemes(u["text"], word_pauses=True)
        assert [p for p in got if p != features.PAUSE] == [p for p in full if p not in (features.PAUSE, OPTIONAL_PAUSE)]
        assert got[0] == got[-1] == features.PAUSE
    data.write_manifest(out, manifest)
    assert data.FeatureDataset(out, "train")[0]["phonemes"].ndim == 1


def copy_of(combined, folder):
    """A copy of the combined cache (its manifest written) in `folder`."""
    shutil.copytree(combined[0], folder)
    data.write_manifest(folder, combined[1])
    return folder


def test_a_moved_corpus_is_found_again_by_relocate(combined, tmp_path, capsys):
    manifest = combined[1]
    assert manifest["roots"] == {"LibriSpeech": str(LS), "LibriTTS": str(LTTS)}
    assert all(u["wav"].split(":")[0] in manifest["roots"] and not data.Path(u["wav"]).is_absolute()
               for u in manifest["utterances"])
    cache, moved = copy_of(combined, tmp_path / "cache"), tmp_path / "moved"
    shutil.copytree(LS, moved / "ls")
    shutil.copytree(LTTS, moved / "tts")
    before = (cache / "manifest.json").read_text()
    for root, message in [("LibriTTS", "NAME=FOLDER"), (f"Libri={moved}", "no root named 'Libri'"),
                          (f"LibriTTS={moved / 'ls'}", "audio files of LibriTTS are not there")]:
        assert data.main(["relocate", "--data", str(cache), "--root", root]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (root, err)
    assert (cache / "manifest.json").read_text() == before
    assert data.main(["relocate", "--data", str(cache), "--root", f"LibriSpeech={moved / 'ls'}",
                      "--root", f"LibriTTS={moved / 'tts'}"]) == 0
    relocated = data.read_manifest(cache)
    assert relocated["roots"] == {"LibriSpeech": str((moved / "ls").resolve()),
                                  "LibriTTS": str((moved / "tts").resolve())}
    assert [u["wav"] for u in relocated["utterances"]] == [u["wav"] for u in manifest["utterances"]]
    for u in relocated["utterances"]:                       # every utterance read from the moved corpus
        path = features.audio_path(cache, u)
        assert moved.resolve() in path.parents and len(features.load_audio(path)) >= u["n_frames"] * features.HOP
    assert data.WaveSegments(cache, "train", 8000, 4, in_memory_limit_hours=0).batch(0).abs().max() > 0


def test_a_manifest_of_absolute_paths_still_reads(combined, tmp_path, capsys):
    old = copy_of(combined, tmp_path / "old")
    manifest = data.read_manifest(old)
    for u in manifest["utterances"]:
        u["wav"] = str(features.audio_path(old, u))
    del manifest["roots"]
    data.write_manifest(old, manifest)
    new = copy_of(combined, tmp_path / "new")
    for hours in (0, 4):                                    # crops read on demand, and audio held in memory
        wave = data.WaveSegments(old, "train", 8000, 4, seed=1, in_memory_limit_hours=hours)
        assert data.Path(wave.utts[0]["wav"]).is_absolute()
        assert torch.equal(wave.batch(2), data.WaveSegments(new, "train", 8000, 4, seed=1,
                                                                 in_memory_limit_hours=hours).batch(2))
    assert data.main(["relocate", "--data", str(old), "--root", f"LibriTTS={LTTS}"]) == 2
    assert "absolute audio paths" in capsys.readouterr().err


def test_aligner_ckpt_prepares_a_test_subset_alone(combined, tmp_path, capsys):
    fitted = combined[0] / "aligner.pt"
    args = ["prepare", "--corpus", "libritts", "--root", str(LTTS), "--subsets", "test-clean", "--jobs", "1"]
    assert data.main(args + ["--out", str(tmp_path / "fails")]) == 2
    assert "--aligner-ckpt" in capsys.readouterr().err
    assert data.main(args + ["--out", str(tmp_path / "test"), "--aligner-ckpt", str(fitted)]) == 0
    manifest = data.read_manifest(tmp_path / "test")
    assert {u["split"] for u in manifest["utterances"]} == {"test"} and len(manifest["utterances"]) == 4
    assert manifest["speakers"] == {"train": [], "heldout": ["1030", "1156"]}
    assert (tmp_path / "test" / "aligner.pt").read_bytes() == fitted.read_bytes()


def test_aligner_ckpt_mistakes_are_one_line_errors(combined, tmp_path, capsys):
    other = tmp_path / "other.pt"
    align.save(align.Aligner(["_", "a", "b"], preset("tiny").aligner), other, ["_", "a", "b"], "espeak-en-us-ipa")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(other, out / "aligner.pt")
    args = ["prepare", "--corpus", "libritts", "--root", str(LTTS), "--subsets", "test-clean", "--jobs", "1"]
    for extra, message in [(["--aligner-ckpt", str(tmp_path / "nope.pt")], "no such file"),
                           (["--aligner-ckpt", str(tmp_path / "junk.pt")], "not an aligner checkpoint"),
                           (["--aligner-ckpt", str(other)], "another front end"),
                           (["--aligner-ckpt", str(combined[0] / "aligner.pt"), "--out", str(out)], "new --out"),
                           (["--aligner-ckpt", str(other), "--aligner", "steps=5"], "neither"),
                           (["--root", str(LS), "--subsets", "a", "--subsets", "b", "--subsets", "c"], "--subsets")]:
        assert data.main(args + ["--out", str(tmp_path / "x")] + extra) == 2, extra
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (extra, err)


def test_test_speakers_are_held_out_of_training_and_of_the_aligner(tmp_path, monkeypatch):
    fitted_on, fit = [], libritts.fit_aligner

    def spy(utts, scanned, out, cfg, jobs=None, **kw):
        fitted_on.extend(u["speaker"] for u in utts if u["split"] == "train")
        return fit(utts, scanned, out, cfg, jobs, **kw)
    monkeypatch.setattr(libritts, "fit_aligner", spy)
    manifest = libritts.prepare(LS, tmp_path, ["train-clean-5"], preset("tiny").aligner, jobs=1, test_speakers=["118"])
    test = sorted(u["id"] for u in manifest["utterances"] if u["split"] == "test")
    assert test == ["118-47824-0026", "118-47824-0035"] and manifest["test_speakers"] == ["118"]
    assert manifest["speakers"] == {"train": ["1737", "19"], "heldout": ["118"]}
    assert sorted(fitted_on) == ["1737", "19"]                       # the aligner never heard the held-out speaker
    assert json.loads((tmp_path / "test_speakers.json").read_text()) == ["118"]
    with pytest.raises(ValueError, match="new --out"):                # its aligner heard 19: 19 cannot be held out
        libritts.prepare(LS, tmp_path, ["train-clean-5"], preset("tiny").aligner, jobs=1, test_speakers=["19"])


def test_test_speaker_names_and_their_mistakes(tmp_path, capsys):
    assert layouts.test_speaker_names("mini-librispeech, 19") == ["4640", "7859", "2136", "8629", "19"]
    assert layouts.TEST_SPEAKER_SETS["mini-librispeech"] == ("4640", "7859", "2136", "8629")
    utts = [dict(id=f"{s}.{k}", speaker=s, split="train") for k, s in enumerate(["A.19", "A.7", "B.19", "B.8"])]
    assert layouts.hold_out_speakers(utts, ["A.19", "8"]) == ["A.19", "B.8"]
    assert [u["split"] for u in utts] == ["test", "train", "train", "test"]
    for name, message in (("19", "ambiguous (A.19, B.19)"), ("5", "no such speaker")):
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            layouts.hold_out_speakers(utts, [name])
    args = ["prepare", "--corpus", "libritts", "--root", str(LS), "--subsets", "train-clean-5", "--jobs", "1",
            "--out", str(tmp_path / "x")]
    assert data.main(args + ["--test-speakers", "mini-librispeech"]) == 2      # the fixture has none of the four
    err = capsys.readouterr().err
    assert "--test-speakers 4640: no such speaker" in err and err.count("\n") == 1
