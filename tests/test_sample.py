"""sample.py end to end on a tiny model trained inside the test: outputs, determinism, batch mode, every bad input."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from corpus import features, inputs
from model import Sampling
import sample
from corpus import toy
from training import ldm_stage as train_ldm
from training import presets

ROOT = Path(__file__).resolve().parents[1]




def run(args, capsys):
    code = sample.main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_end_to_end_cli(tiny_tts, tmp_path):
    root, _ = tiny_tts
    r = subprocess.run([sys.executable, "sample.py", "--ckpt", root / "ldm.pt", "--text", "The quiet teacher smiled.",
                        "--prompt", root / "prompt_stereo44k.flac", "--out", tmp_path / "out.wav", "--steps", "2"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    wav, sr = sf.read(tmp_path / "out.wav")
    assert sr == 16000 and len(wav) > 0 and np.isfinite(wav).all()


def test_seeded_and_long_text_split(tiny_tts):
    root, codec_ckpt = tiny_tts
    synth = sample.Synthesizer(root / "ldm.pt", codec_ckpt)
    a = synth("The quiet teacher smiled.", root / "prompt.wav", steps=2, seed=4)
    b = synth("The quiet teacher smiled.", root / "prompt.wav", steps=2, seed=4)
    assert np.array_equal(a, b)
    assert inputs.split_sentences("One word. Two words! Three? ...") == ["One word.", "Two words!", "Three?"]
    long = synth("The quiet teacher smiled. Then she left!", root / "prompt.wav", steps=2, seed=4)
    assert len(long) > len(a)
    wav, info = synth("The quiet teacher smiled.", root / "prompt.wav", steps=2, seed=4, return_info=True)
    assert np.array_equal(wav, a) and len(info["phonemes"]) == len(info["durations"])
    assert len(info["f0_hz"]) == sum(info["durations"]) == len(wav) // 200       # predicted F0, one per frame
    _, up = synth("The quiet teacher smiled.", root / "prompt.wav", steps=2, seed=4, pitch_shift=12, return_info=True)
    assert np.allclose(np.array(up["f0_hz"]) / np.array(info["f0_hz"]), 2.0, rtol=1e-4)   # +12 semitones = 2 × F0


def test_batch_mode(tiny_tts, tmp_path, capsys):
    root, _ = tiny_tts
    rows = [f"Hello there.\t{root / 'prompt.wav'}\t{tmp_path / 'a.wav'}",
            f"Good night.\t{root / 'prompt_stereo44k.flac'}\t{tmp_path / 'b.wav'}"]
    (tmp_path / "jobs.tsv").write_text("# text\tprompt\tout\n" + "\n".join(rows) + "\n")
    code, err = run(["--ckpt", root / "ldm.pt", "--list", tmp_path / "jobs.tsv", "--steps", "2"], capsys)
    assert code == 0, err
    assert (tmp_path / "a.wav").exists() and (tmp_path / "b.wav").exists()
    alone = sample.Synthesizer(root / "ldm.pt")("Hello there.", root / "prompt.wav", steps=2, seed=0)
    a, _ = sf.read(tmp_path / "a.wav", dtype="float32")
    assert len(a) == len(alone) and np.abs(a - alone).max() < 1e-3       # 16-bit file vs float


@pytest.mark.parametrize("sampler", ["ode", "sde"])
def test_batched_synthesis_equals_one_at_a_time(tiny_tts, sampler):
    """Rows of different lengths and prompts in one batch (padding everywhere): each comes out as it does alone.
    (This 2-step model ignores its noise; tests/test_model.py checks the per-row noise on a model that does not.)"""
    root, codec_ckpt = tiny_tts
    synth = sample.Synthesizer(root / "ldm.pt", codec_ckpt)
    jobs = [sample.Job("Hello there.", root / "prompt.wav", 3), sample.Job("The quiet teacher smiled. Then she left!",
            root / "prompt_stereo44k.flac", 7), sample.Job("Good night, Judith.", root / "prompt.wav", 0)]
    alone = [synth(t, p, steps=3, sampler=sampler, seed=s, return_info=True) for t, p, s, _ in jobs]
    together = synth.many(jobs, Sampling(steps=3, sampler=sampler), batch_size=3, return_info=True)
    assert len({len(w) for w, _ in alone}) == 3                          # really different lengths
    for (wa, ia), (wb, ib) in zip(alone, together):
        assert ia["durations"] == ib["durations"] and ia["phonemes"] == ib["phonemes"]
        assert len(wa) == len(wb) and np.abs(wa - wb).max() < 1e-4 * max(1.0, np.abs(wa).max())


def test_oracle_prosody_jobs(tiny_tts):
    """A 4th job item (evaluation/demo.py --oracle) replaces the text's phonemes and the predicted durations (and pitch)."""
    root, codec_ckpt = tiny_tts
    synth = sample.Synthesizer(root / "ldm.pt", codec_ckpt)
    ids = synth.phoneme_ids("Hello there.")[0]
    durations = [2 + k % 3 for k in range(len(ids))]
    lf0 = np.full(sum(durations), np.log(180.0), np.float32)
    both = dict(phonemes=ids, durations=durations, lf0=lf0)
    jobs = [("(unused)", root / "prompt.wav", 0, both), ("(unused)", root / "prompt.wav", 1, dict(both, lf0=None))]
    (w1, i1), (w2, i2) = [synth.many([job], steps=2, return_info=True)[0] for job in jobs]
    assert i1["durations"] == i2["durations"] == durations and len(w1) == len(w2) == sum(durations) * 200
    assert np.allclose(i1["f0_hz"], 180.0, rtol=1e-4) and not np.allclose(i2["f0_hz"], 180.0, rtol=1e-2)
    assert i1["phonemes"] == synth.phoneme_set.decode(ids.tolist())
    for mixed in ([jobs[0], ("Hello there.", root / "prompt.wav", 2)], jobs):      # in one batch
        with pytest.raises(ValueError, match="every job or for none"):
            synth.many(mixed, steps=2)


@pytest.mark.parametrize("case, code, message", [
    ("missing_ckpt", 3, "no checkpoint"), ("corrupt_ckpt", 3, "not a readable checkpoint"),
    ("codec_as_ldm", 3, "not a latent diffusion"), ("wrong_codec", 3, "not the codec"),
    ("junk_prompt", 4, "cannot read"), ("silent_prompt", 4, "silent"), ("short_prompt", 4, "after trimming"),
    ("empty_text", 5, "empty"), ("no_words", 5, "nothing to pronounce"), ("bad_list", 2, "no rows"),
    ("other_script", 5, "no English letters or digits"), ("emoji_only", 5, "no English letters or digits"),
    ("temperature_zero", 2, "τ must be > 0"), ("temperature_nan", 2, "--temperature nan is out of range"),
    ("steps_absurd", 2, "--steps 1000000 is out of range"), ("duration_scale_zero", 2, "--duration-scale"),
    ("out_is_folder", 2, "is a folder"), ("out_under_a_file", 2, "is a file, not a folder"),
    ("out_format", 2, "unknown audio format"),
])
def test_bad_inputs_exit_codes(tiny_tts, tmp_path, capsys, case, code, message):
    root, codec_ckpt = tiny_tts
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage")
    other = tmp_path / "other_codec.pt"
    other.write_bytes(Path(codec_ckpt).read_bytes() + b"x")
    (tmp_path / "bad.tsv").write_text("# only a comment\n\n")
    ckpt, text, prompt, extra = root / "ldm.pt", "Hello there.", root / "prompt.wav", []
    if case == "missing_ckpt": ckpt = tmp_path / "nope.pt"
    if case == "corrupt_ckpt": ckpt = tmp_path / "corrupt.pt"
    if case == "codec_as_ldm": ckpt = codec_ckpt
    if case == "wrong_codec": extra = ["--codec", other]
    if case == "junk_prompt": prompt = root / "junk.wav"
    if case == "silent_prompt": prompt = root / "silent.wav"
    if case == "short_prompt": prompt = root / "short.wav"
    if case == "empty_text": text = "   "
    if case == "no_words": text = "!!! ..."
    if case == "other_script": text = "你好，世界。"
    if case == "emoji_only": text = "😀 🎉"
    if case == "temperature_zero": extra = ["--temperature", "0"]
    if case == "temperature_nan": extra = ["--temperature", "nan"]
    if case == "steps_absurd": extra = ["--steps", "1000000"]
    if case == "duration_scale_zero": extra = ["--duration-scale", "0"]
    out = {"out_is_folder": tmp_path, "out_under_a_file": tmp_path / "corrupt.pt" / "o.wav",
           "out_format": tmp_path / "o.xyz"}.get(case, tmp_path / "o.wav")
    args = ["--ckpt", ckpt, "--text", text, "--prompt", prompt, "--out", out, "--steps", "1", *extra]
    if case == "bad_list":
        args = ["--ckpt", ckpt, "--list", tmp_path / "bad.tsv"]
    got, err = run(args, capsys)
    assert got == code and message in err and len(err.strip().splitlines()) == 1, (got, err)
    assert not list(tmp_path.glob("*.wav")), "nothing is written when the input is refused"


def test_broken_duration_predictor_gives_an_error_not_silence(encoded_cache, tmp_path, capsys):
    cache, codec_ckpt = encoded_cache
    tcfg = presets.LDMTrainConfig(**{**vars(presets.preset("tiny").ldm_train), "steps": 1, "val_every": 100})
    train_ldm.train_ldm(train_ldm.LDMJob("tiny", cache, codec_ckpt, tmp_path / "run"), tcfg, progress=False)
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    for state in (ck["model"], ck["ema"]):                  # log d̂ ≈ −5 everywhere: every phoneme gets 0 frames
        state["prior.duration.out.bias"].fill_(-5.0)
    torch.save(ck, tmp_path / "run" / "last.pt")
    wav, _, _ = toy.render("Please bring the gentle violin.", toy.make_voices(toy.HELDOUT_VARIANTS, 0, "ho")[1], 3)
    sf.write(tmp_path / "p.wav", wav, 16000)
    code, err = run(["--ckpt", tmp_path / "run" / "last.pt", "--text", "Hello.", "--prompt", tmp_path / "p.wav",
                     "--out", tmp_path / "o.wav", "--steps", "1"], capsys)
    assert code == 3 and "predicted 0 frames" in err and not (tmp_path / "o.wav").exists()


def test_command_line_needs_text_and_prompt(capsys):
    with pytest.raises(SystemExit) as e:
        sample.main(["--text", "hi"])
    assert e.value.code == 2 and "--prompt" in capsys.readouterr().err


def test_trim_silence():
    wav = np.concatenate([np.zeros(8000), np.sin(np.arange(16000) * 0.1) * 0.5, np.zeros(4000)]).astype(np.float32)
    trimmed = features.trim_silence(wav)
    assert abs(len(trimmed) - 16000) <= 320


def test_generous_prompts_and_text_are_used_with_a_note(tiny_tts, tmp_path, capsys):
    """A 60 s prompt is cropped to its best 10-30 s of speech; a clipped prompt is used; characters of another
    script are skipped: each exits 0 with one 'note:' line."""
    root, _ = tiny_tts
    wav, sr = sf.read(root / "prompt.wav", dtype="float32")
    gap = np.zeros(sr // 2, np.float32)
    sf.write(tmp_path / "long.wav", np.concatenate([np.concatenate([wav, gap])] * 18), sr)
    sf.write(tmp_path / "clipped.wav", np.clip(wav * 8, -1, 1), sr)
    for prompt, text, message in [("long.wav", "Hello there.", "s of speech; using"),
                                  ("clipped.wav", "Hello there.", "is clipped"),
                                  (root / "prompt.wav", "Hello 你好 there.", "skipped characters")]:
        code, err = run(["--ckpt", root / "ldm.pt", "--text", text, "--prompt", tmp_path / prompt, "--out",
                         tmp_path / "o.wav", "--steps", "1"], capsys)
        notes = [line for line in err.splitlines() if line.startswith("note:")]
        assert code == 0 and len(notes) == 1 and message in notes[0], err
        assert (tmp_path / "o.wav").exists()
        (tmp_path / "o.wav").unlink()


def test_best_speech_window_keeps_speech_and_ends_at_pauses():
    sr, rng = 16000, np.random.default_rng(0)
    word = lambda s: (rng.standard_normal(int(s * sr)) * 0.3).astype(np.float32)
    pause = lambda s: np.zeros(int(s * sr), np.float32)
    wav = np.concatenate([pause(20), *[np.concatenate([word(1.3), pause(0.4)]) for _ in range(30)], pause(20)])
    start, end = inputs.best_speech_window(wav, sr)
    assert 10 * sr <= end - start <= 30 * sr
    assert start >= 19.5 * sr and end <= wav.size - 19.5 * sr           # the silent stretches are left out
    assert np.abs(wav[end - 160:end]).max() == 0                          # it ends in a pause, not mid-word
    assert inputs.best_speech_window(wav[: 5 * sr], sr) == (0, 5 * sr)


def test_batch_mode_writes_good_rows_and_reports_bad_ones(tiny_tts, tmp_path, capsys):
    root, _ = tiny_tts
    p = root / "prompt.wav"
    rows = [f"Hello there.\t{p}\t{tmp_path / 'a.wav'}", "only one column",
            f"你好\t{p}\t{tmp_path / 'c.wav'}", f"Good night.\t{tmp_path / 'missing.wav'}\t{tmp_path / 'd.wav'}",
            f"Good night.\t{p}\t{tmp_path}", f"The end. It was near.\t{p}\t{tmp_path / 'f.wav'}"]
    (tmp_path / "jobs.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, err = run(["--ckpt", root / "ldm.pt", "--list", tmp_path / "jobs.tsv", "--steps", "1"], capsys)
    assert code == 6, err
    assert (tmp_path / "a.wav").exists() and (tmp_path / "f.wav").exists()
    assert not (tmp_path / "c.wav").exists() and not (tmp_path / "d.wav").exists()
    for line, reason in [(2, "every row needs"), (3, "no English letters"), (4, "cannot read audio"),
                         (5, "is a folder")]:
        assert any(f"line {line}:" in e and reason in e for e in err.splitlines()), (line, err)
    assert "4 of 6 rows" in err.splitlines()[-1] and "lines 2, 3, 4, 5" in err and "Traceback" not in err


def test_unseen_phoneme_is_read_as_the_closest_known_with_a_note(tiny_tts, capsys):
    root, codec_ckpt = tiny_tts
    synth = sample.Synthesizer(root / "ldm.pt", codec_ckpt)
    known = synth.phonemize("Hello there.")
    vowel = next(p for p in known if p.startswith("ˈ"))
    synth.phonemize = lambda text: known + [vowel[1:] + "\u0303", "ʘ"]    # a nasalised vowel and a click
    ids = synth.phoneme_ids("Hello there.")[0].tolist()
    err = capsys.readouterr().err
    assert synth.phoneme_set.decode(ids)[: len(known)] == known and len(ids) == len(known) + 1
    assert err.count("note: phoneme") == 2 and "read as nothing" in err
    synth.phoneme_ids("Hello there.")
    assert capsys.readouterr().err == ""                                  # noted once, not per use


def test_long_text_shows_progress_per_sentence(tiny_tts, tmp_path, capsys):
    root, _ = tiny_tts
    code, err = run(["--ckpt", root / "ldm.pt", "--text", "One. Two. Three.", "--prompt", root / "prompt.wav",
                     "--out", tmp_path / "o.wav", "--steps", "1"], capsys)
    assert code == 0 and "synthesise" in err and "3/3" in err
