"""evaluation/bench.py's training-step comparisons: against another tree end to end (the `tiny` shape), against the
peer (its probe's inputs, the prompt length, the missing-venv error); the real tables are in docs/ldm.md."""
import sys
from pathlib import Path

import pytest
import torch

from evaluation import bench, peer_probe, step_probe
from prompt import sample_prompt_segment

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_step_comparison_table_and_profile(capsys, tmp_path):
    assert bench.main(["step", "--shapes", "tiny", "--against", str(ROOT), "--amp", "bf16", "--rounds", "1",
                       "--repeats", "1", "--threads", "1", "--profile", "3"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| tiny |"))
    assert "| yes |" in row and "x |" in row and "%" in row          # the same code gives the same losses
    assert out.count("where the time goes: tiny") == 2 and "| operation | share |" in out


def test_step_refuses_bad_input(capsys, tmp_path):
    assert bench.main(["step", "--shapes", "huge"]) == 2
    assert bench.main(["step", "--against", str(tmp_path)]) == 2
    assert bench.main(["step", "--amp", "fp8"]) == 2
    err = capsys.readouterr().err
    assert "unknown shape" in err and "has no model.py" in err and "choose none or bf16" in err


def test_peer_without_its_venv_says_how_to_make_it(capsys, tmp_path):
    assert bench.main(["peer", "--peer-python", str(tmp_path / "no" / "python")]) == 2
    assert bench.main(["peer", "--peer-python", sys.executable]) == 2            # a python without the peer
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("make its venv first" in line and "--help" in line for line in err)
    assert "pip install --no-deps naturalspeech2-pytorch" in peer_probe.VENV_HOWTO


def test_peer_shapes_cut_a_120_frame_prompt_and_the_peer_gets_the_same_batch():
    for name, denoised in (("peer", 400 - 120), ("peer-long", 400)):
        sh = bench.STEP_SHAPES[name]
        b = step_probe.padded_batch(sh["batch"], sh["frames"], sh["phonemes"])
        top = sh["top"]
        u, v = sample_prompt_segment(b["frame_mask"].sum(1), top["prompt_min_frac"], top["prompt_max_frac"],
                                     top["prompt_min_frames"], torch.Generator().manual_seed(0))
        assert (v - u).tolist() == [sh["prompt_frames"]] * sh["batch"]
        assert int(b["frame_mask"].sum(1).max()) - sh["prompt_frames"] == denoised       # this tree's longest target
    b = step_probe.padded_batch(4, 400, 60)
    x = peer_probe.peer_inputs(b, 120, 256, torch.Generator().manual_seed(0))
    assert x["latent"].shape == (4, 400, 256) and x["prompt"].shape == (4, 120, 256)
    assert (x["text"][~b["phoneme_mask"]] == -1).all() and torch.equal(x["text"][b["phoneme_mask"]],
                                                                        b["phonemes"][b["phoneme_mask"]])
    assert (x["pitch"][:, 0][~b["frame_mask"]] == 0).all() and x["pitch"][0, 0, 0] == pytest.approx(b["lf0"][0, 0].exp())
    assert (x["latent"][~b["frame_mask"]] == 0).all() and torch.equal(x["durations"], b["durations"])


PEER_PYTHON = Path("/tmp/peer/venv/bin/python")


@pytest.mark.slow
@pytest.mark.skipif(not PEER_PYTHON.exists(), reason="no peer venv (python -m evaluation.bench peer --help)")
def test_peer_probe_builds_the_peer_at_its_size_and_times_a_step():
    import json
    import subprocess
    arg = json.dumps(dict(bench.STEP_SHAPES["peer"], threads=1, warmup=0, repeats=1, amp="bf16"))
    r = subprocess.run([str(PEER_PYTHON), str(bench.PEER_PROBE), arg], cwd=bench.PEER_PROBE.parents[1],
                       env={"PYTHONPATH": str(bench.PEER_PROBE.parents[1]), "OMP_NUM_THREADS": "1"},
                       capture_output=True, text=True)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert round(out["params_m"], 1) == 24.9 and out["step"] > 0 and "duration L1" in out["terms"]
