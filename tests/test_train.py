"""The preset table and its typed --key=value overrides (one parser for every stage)."""
import subprocess
import sys
from pathlib import Path

import pytest

from training import presets

ROOT = Path(__file__).resolve().parents[1]


def ldm_configs():
    return presets.preset("tiny").ldm_train, presets.model_config("tiny")


@pytest.mark.parametrize("raw, expected", [
    ("false", False), ("False", False), ("FALSE", False), ("0", False), ("no", False), ("off", False),
    ("true", True), ("True", True), ("1", True), ("YES", True), ("on", True)])
def test_bool_words_not_truthiness(raw, expected):
    _, cfg = presets.parse_overrides([f"--use_ce_rvq={raw}"], *ldm_configs())
    assert cfg.use_ce_rvq is expected


def test_values_get_the_declared_type():
    tcfg, cfg = presets.parse_overrides(["--steps=2e4", "--lr=5e-4", "--betas=(0.8, 0.95)", "--prior.pitch_bins=256",
                                       "--denoiser.use_prompt=no", "--amp=none", "--warmup-steps=1_000"], *ldm_configs())
    assert tcfg.steps == 20000 and type(tcfg.steps) is int
    assert tcfg.lr == 5e-4 and tcfg.betas == (0.8, 0.95) and tcfg.amp == "none" and tcfg.warmup_steps == 1000
    assert cfg.prior.pitch_bins == 256 and cfg.denoiser.use_prompt is False
    (ccfg,) = presets.parse_overrides(["--lr=3"], presets.preset("tiny").codec_train)
    assert ccfg.lr == 3.0 and type(ccfg.lr) is float


@pytest.mark.parametrize("pair, message", [
    ("--steps=abc", "--steps=abc: expected an integer"), ("--steps=2.5", "expected an integer"),
    ("--use_ce_rvq=maybe", "expected a boolean"), ("--lr=nan", "expected a finite number"),
    ("--lr=fast", "expected a number"), ("--betas=", "expected comma-separated values"),
    ("--prior=3", "is a group of settings"), ("--use_ce_rvx=1", "did you mean --use_ce_rvq?"),
    ("--prior.pitch_binz=3", "did you mean --prior.pitch_bins?"), ("steps=3", "overrides are written --key=value")])
def test_wrong_type_or_key_is_a_one_line_error(pair, message):
    with pytest.raises(ValueError, match=None) as e:
        presets.parse_overrides([pair], *ldm_configs())
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("stage, pair, message", [
    ("ldm", "--use_ce_rvq=maybe", "expected a boolean"), ("ldm", "--steps=abc", "expected an integer"),
    ("codec", "--segment=long", "expected a number"), ("codec", "--n_q=1.5", "expected an integer")])
def test_cli_checks_overrides_before_reading_data(stage, pair, message):
    """The data folder does not exist: the override error must come first, as one line, exit 2."""
    r = subprocess.run([sys.executable, "train.py", stage, "--config", "tiny", "--data", "/nonexistent", pair,
                        "--out", "/nonexistent/run"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_codec_config_fields_are_reachable():
    ccfg, _ = presets.parse_overrides(["--n_q=8"], presets.preset("tiny").codec, presets.preset("tiny").codec_train)
    assert ccfg.n_q == 8
