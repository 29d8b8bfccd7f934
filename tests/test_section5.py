"""Paper §5 with the trained model (section5.py, sample.py): voice conversion, speech enhancement, singing, end to
end on the tiny model in seconds; phrase splitting; the command line's bad inputs."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from corpus import features
import sample
import section5
from corpus import toy
from model import Prosody
from training.presets import preset

ROOT = Path(__file__).resolve().parents[1]
SCORE = """title test
tempo 120
Hel-  C4  1
lo    E4  1
rest  -   1
world G4  2
"""


@pytest.fixture(scope="module")
def s5(tiny_tts, encoded_cache, tmp_path_factory):
    """The tiny model of tests/conftest.py with a tiny aligner beside it (20 steps) and §5 input files."""
    import align
    root, codec_ckpt = tiny_tts
    cache, _ = encoded_cache
    d = tmp_path_factory.mktemp("s5")
    shutil.copy(root / "ldm.pt", d / "ldm.pt")
    cfg = preset("tiny").aligner
    _, items = align.cache_items(cache, "train", cfg, limit=8)
    manifest = json.loads((cache / "manifest.json").read_text())
    align.save(align.fit(items, manifest["phonemes"], cfg, progress=False), d / "aligner.pt", manifest["phonemes"],
               manifest["front_end"])
    voice = toy.make_voices(toy.HELDOUT_VARIANTS, 0, "ho")[2]
    wav, _, _ = toy.render("The small boat drifted home.", voice, seed=1)
    sf.write(d / "src.wav", wav, 16000)
    rng = np.random.default_rng(0)
    sf.write(d / "noisy.wav", wav + 0.05 * rng.standard_normal(len(wav)).astype(np.float32), 16000)
    sf.write(d / "short.wav", wav[:4000], 16000)
    sf.write(d / "long.wav", np.tile(wav, int(31 * 16000 / len(wav)) + 1), 16000)
    (d / "song.txt").write_text(SCORE)
    (d / "bad_note.txt").write_text("tempo 100\nla  C4  1\nla  H4  1\n")
    (d / "high.txt").write_text("la  C9  1\n")
    shutil.copy(root / "prompt.wav", d / "prompt.wav")
    return d, codec_ckpt


def run(args, capsys):
    code = sample.main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_convert_end_to_end(s5, capsys, tmp_path):
    d, _ = s5
    code, err = run(["--ckpt", d / "ldm.pt", "--convert", d / "src.wav", "--source-text",
                     "The small boat drifted home.", "--prompt", d / "prompt.wav", "--out", tmp_path / "vc.wav",
                     "--steps", "3"], capsys)
    assert code == 0, err
    wav, sr = sf.read(tmp_path / "vc.wav")
    src = features.trim_silence(sf.read(d / "src.wav", dtype="float32")[0])
    assert sr == 16000 and np.isfinite(wav).all()
    assert len(wav) == len(src) // features.HOP * features.HOP                  # the source's timing, frame for frame


def test_enhance_end_to_end_with_a_noisy_prompt(s5, capsys, tmp_path):
    d, _ = s5
    code, err = run(["--ckpt", d / "ldm.pt", "--enhance", d / "noisy.wav", "--source-text",
                     "The small boat drifted home.", "--prompt", d / "prompt.wav", "--noisy-prompt", d / "noisy.wav",
                     "--out", tmp_path / "se.wav", "--steps", "2", "--noise", "0.3"], capsys)
    assert code == 0, err
    assert np.isfinite(sf.read(tmp_path / "se.wav")[0]).all()


def test_score_is_sung_for_exactly_its_length(s5, capsys, tmp_path):
    d, _ = s5
    code, err = run(["--ckpt", d / "ldm.pt", "--score", d / "song.txt", "--prompt", d / "prompt.wav", "--out",
                     tmp_path / "song.wav", "--steps", "2", "--transpose", "auto"], capsys)
    assert code == 0, err
    wav, _ = sf.read(tmp_path / "song.wav")
    assert len(wav) == round(5 * 60 / 120 * 80) * features.HOP                   # 5 beats at 120 bpm, in frames
    rest = wav[round(2 * 0.5 * 80) * features.HOP: round(3 * 0.5 * 80) * features.HOP]
    assert np.abs(rest).max() == 0                                               # the rest is silence


def test_example_score_and_pitch_from(s5, capsys, tmp_path):
    d, _ = s5
    code, err = run(["--ckpt", d / "ldm.pt", "--score", ROOT / "examples" / "twinkle.txt", "--prompt",
                     d / "prompt.wav", "--out", tmp_path / "twinkle.wav", "--steps", "1"], capsys)
    assert code == 0, err
    code, err = run(["--ckpt", d / "ldm.pt", "--pitch-from", d / "src.wav", "--text", "The small boat drifted home.",
                     "--prompt", d / "prompt.wav", "--out", tmp_path / "pf.wav", "--steps", "2"], capsys)
    assert code == 0, err


def test_phrases_split_at_long_pauses_only():
    ids = [5, 1, 6, 7, 1, 8, 1]
    durs = np.array([3, 10, 4, 4, 2, 5, 9])
    assert section5.phrases(durs, ids, pause_id=1, min_pause=8) == [(0, 1), (2, 6)]     # the 2-frame pause stays
    hz = np.array([261.6, np.nan, 392.0])                     # median 326.8 Hz; the voice at 130 Hz
    assert section5.auto_transpose(hz, 130.0) == -16.0 and section5.auto_transpose(hz, 130.0, octaves=True) == -12.0


@pytest.mark.parametrize("case, code, message", [
    ("no_source_text", 2, "needs --source-text"), ("two_tasks", 2, "give one of"),
    ("source_short", 7, "after trimming silence"), ("source_long", 7, "after trimming silence"),
    ("source_junk", 7, "--convert"), ("no_aligner", 3, "no aligner"),
    ("bad_note", 8, "line 3: unknown note 'H4'"), ("high_note", 8, "line 1"), ("missing_score", 8, "song"),
    ("transpose_junk", 2, "--transpose"), ("noise_range", 2, "--noise 2.0 is out of range"),
    ("text_too_long", 7, "too short for"),
])
def test_section5_bad_inputs(s5, tmp_path, capsys, case, code, message):
    d, _ = s5
    (tmp_path / "junk.wav").write_bytes(b"not audio")
    base = ["--ckpt", d / "ldm.pt", "--prompt", d / "prompt.wav", "--out", tmp_path / "o.wav", "--steps", "1"]
    vc = ["--convert", d / "src.wav", "--source-text", "The small boat drifted home."]
    args = {"no_source_text": ["--convert", d / "src.wav"],
            "two_tasks": vc + ["--score", d / "song.txt"],
            "source_short": ["--convert", d / "short.wav", "--source-text", "The."],
            "source_long": ["--convert", d / "long.wav", "--source-text", "The small boat."],
            "source_junk": ["--convert", tmp_path / "junk.wav", "--source-text", "Hi."],
            "no_aligner": vc + ["--aligner", tmp_path / "none.pt"],
            "bad_note": ["--score", d / "bad_note.txt"], "high_note": ["--score", d / "high.txt"],
            "missing_score": ["--score", tmp_path / "song.txt"],
            "transpose_junk": ["--score", d / "song.txt", "--transpose", "up"],
            "noise_range": vc + ["--noise", "2"],
            "text_too_long": ["--convert", d / "src.wav", "--source-text", " ".join(["extraordinarily"] * 40)],
            }[case]
    if case in ("no_source_text", "two_tasks"):
        with pytest.raises(SystemExit) as e:
            sample.main([str(a) for a in base + args])
        got, err = e.value.code, capsys.readouterr().err
    else:
        got, err = run(base + args, capsys)
    assert got == code and message in err, (got, err)
    assert not (tmp_path / "o.wav").exists()
    if code != 2:
        assert len(err.strip().splitlines()) == 1, err


def test_inversion_round_trip_on_a_source(s5):
    """section5's plumbing: invert a source, regenerate with the same condition and prompt -> close to the source
    latent when the denoiser is exact (unit-Gaussian normalised latents), far from it from fresh noise."""
    import diffusion as D
    d, _ = s5
    synth = sample.Synthesizer(d / "ldm.pt")
    m, sde = synth.model, synth.model.cfg.sde
    m.denoiser.forward = lambda z, t, *rest: D.rho(torch.ones_like(z), t, sde) * z / (
        D.rho(torch.ones_like(z), t, sde) ** 2 + D.sigma2(t, sde, z))
    wav = features.trim_silence(sf.read(d / "src.wav", dtype="float32")[0])
    T = len(wav) // features.HOP
    ids = torch.tensor(synth.phoneme_set.encode(["t"] * 4))
    src = section5.prepare_source(synth, wav, ids=ids, durations=torch.tensor([T - 3, 1, 1, 1]))
    src.latent = m.denormalize(torch.randn(src.latent.shape, generator=torch.Generator().manual_seed(0)))
    out = section5.enhance(synth, src, src.latent, steps=150)             # same prompt, same pitch: a round trip
    z1 = out["z1"]
    assert 0.8 < float(z1.std()) < 1.2
    back = m.generate(src.ids[None], src.latent, steps=150, prosody=Prosody(src.durations[None], src.lf0[None]),
                      start=z1)["latent"]
    rel = float((back - src.latent).abs().mean() / src.latent.abs().mean())
    assert rel < 0.1, rel


def test_a_source_without_voicing_gets_predicted_pitch_with_a_note(s5, capsys):
    d, _ = s5
    synth = sample.Synthesizer(d / "ldm.pt")
    ids = torch.tensor(synth.phoneme_set.encode(["t", "t"]))
    src = section5.prepare_source(synth, np.zeros(40 * features.HOP, np.float32), ids=ids,
                                  durations=torch.tensor([30, 10]))
    assert src.lf0.shape == (40,) and torch.isfinite(src.lf0).all()
    assert "pitch is predicted" in capsys.readouterr().err
