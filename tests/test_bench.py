"""evaluation/bench.py's training-step comparison runs end to end (the `tiny` shape; the real tables are in docs/ldm.md)."""
from pathlib import Path

import pytest

from evaluation import bench

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
