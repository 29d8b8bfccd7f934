"""evaluation/ablate.py: the quick-ablation command runs end to end on a tiny setting and prints its table, refuses a
bad switch in one line before any work, and computes mean ± spread correctly."""
import math

import pytest

from evaluation import ablate


def test_mean_and_spread_are_the_mean_and_the_sample_standard_deviation():
    mean, sd = ablate.mean_spread([1.0, 2.0, 3.0, 6.0])
    assert mean == pytest.approx(3.0)
    assert sd == pytest.approx(math.sqrt((4 + 1 + 0 + 9) / 3))           # n - 1 in the denominator
    mean, sd = ablate.mean_spread([0.25])
    assert mean == 0.25 and math.isnan(sd)                               # one seed: no spread
    stats = ablate.summary({"a": [{"pitch": 1.0}, {"pitch": 3.0}], "b": [{"pitch": 2.0, "ce_rvq": 5.0},
                                                                          {"pitch": 2.0, "ce_rvq": 7.0}]})
    assert stats["pitch"] == {"a": (2.0, pytest.approx(math.sqrt(2))), "b": (2.0, 0.0)}
    assert stats["ce_rvq"]["a"] is None and stats["ce_rvq"]["b"] == (6.0, pytest.approx(math.sqrt(2)))
    assert ablate.cell(stats["pitch"]["a"], 3) == "2.000 ± 1.414" and ablate.cell(None, 3) == "–"


def test_pitch_level_error_is_the_mean_over_voices_in_cents():
    rows = [("v1", 100.0, 200.0), ("v1", 100.0, 100.0), ("v2", 220.0, 110.0)]      # an octave = 1200 cents
    assert ablate.level_error_cents(rows) == pytest.approx((600 + 1200) / 2)


@pytest.mark.parametrize("switch, says", [
    ("--prior.use_promt=false", "did you mean --prior.use_prompt"),
    ("--prior.use_prompt=maybe", "expected a boolean"),
    ("prior.use_prompt=false", "overrides are written --key=value"),
])
def test_a_bad_switch_is_a_one_line_error_before_any_work(tmp_path, capsys, switch, says):
    rc = ablate.main([switch, "--preset", "tiny", "--steps", "2", "--cache", str(tmp_path / "cache"),
                      "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and says in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_a_bad_common_setting_is_a_one_line_error(tmp_path, capsys):
    rc = ablate.main(["--set", "batch_sise=8", "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "did you mean --batch_size" in err and len(err.splitlines()) == 1, err


def test_the_command_trains_both_arms_over_the_seeds_and_prints_the_table(encoded_cache, tmp_path, capsys):
    cache, codec = encoded_cache
    argv = ["--prior.use_prompt=false", "--preset", "tiny", "--steps", "2", "--seeds", "2", "--cache", str(cache),
            "--codec", str(codec), "--out", str(tmp_path)]
    assert ablate.main(argv) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert "baseline" in header and "prior.use_prompt=false" in header and "2 seeds" in header
    for label in ("pitch-level error (cents)", "L_pitch", "L_dur", "L_data", "L_score", "L_ce-rvq", "L total"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {label} |"))
        assert row.count("±") == 2, row
    assert "wall time" in out and "tiny preset, 2 steps, 2 seeds" in out
    runs = sorted(p.parent.parent.name + "/" + p.parent.name for p in tmp_path.glob("*/*/seed*/last.pt"))
    assert runs == ["baseline/seed0", "baseline/seed1", "prior.use_prompt-false/seed0",
                    "prior.use_prompt-false/seed1"]
    # a second run of the same settings reuses the trained runs and scores them the same
    result = ablate.run(ablate.Ablation(switch=("--prior.use_prompt=false",), preset="tiny", steps=2, seeds=2,
                                        cache=cache, codec=codec, out=tmp_path), progress=False)
    assert result["seconds"]["training"] < 5
    assert ablate.format_table(result).splitlines()[2] in out


def test_the_cache_is_encoded_on_one_thread_whatever_the_caller_uses(tmp_path, monkeypatch):
    """The codec's RVQ argmin meets near-ties whose winner depends on the CPU threads' summation order: the cache,
    and every ablation number after it, must not depend on how many threads the caller's process has."""
    seen = []
    (tmp_path / "manifest.json").write_text('{"utterances": []}')
    monkeypatch.setattr(ablate.data, "encode_cache", lambda cache, codec: seen.append(ablate.torch.get_num_threads()))
    before = ablate.torch.get_num_threads()
    ablate.torch.set_num_threads(2)
    try:
        assert ablate.ensure_cache(tmp_path, ablate.Ablation.codec) == "encoded"
        assert seen == [1] and ablate.torch.get_num_threads() == 2          # one thread inside, restored after
    finally:
        ablate.torch.set_num_threads(before)
