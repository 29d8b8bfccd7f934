"""evaluation/asr.py: the toy corpus's CTC phoneme recogniser (the PER judge of eval/demo) and WER with pocketsphinx."""
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation import asr
from corpus import toy

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "toy" / "asr.pt"


def test_edit_distance_and_per_known_cases():
    assert asr.edit_distance(list("kitten"), list("sitting")) == 3
    assert asr.edit_distance([], list("abc")) == 3 and asr.edit_distance(list("abc"), []) == 3
    assert asr.phoneme_error_rate([["a", "b", "c", "d"]], [["a", "x", "c"]]) == 0.5      # 1 sub + 1 del over 4
    assert asr.phoneme_error_rate([["a", "_", "b"]], [["a", "b", "_"]]) == 0.0           # pauses are not scored
    with pytest.raises(ValueError, match="no reference"):
        asr.phoneme_error_rate([["_"]], [["a"]])


def test_greedy_decode_merges_repeats_and_drops_blanks():
    best = [0, 3, 3, 0, 3, 5, 5, 0, 0, 2]
    logp = torch.full((len(best), 6), -10.0)
    logp[torch.arange(len(best)), best] = 0.0
    assert asr.greedy_decode(logp) == [3, 3, 5, 2]


@pytest.mark.slow
def test_training_learns_and_checkpoint_round_trips(toy_cache, tmp_path):
    """A few steps from the seed's initialisation lower the CTC loss on training utterances well below where it started
    (about 0.4 of it at 12 steps); the checkpoint loads and transcribes into its own phoneme set."""
    out = tmp_path / "asr.pt"
    cfg = asr.ASRConfig(steps=12, lr=1e-2, batch_size=4, channels=16, hidden=16, layers=1)
    per = asr.train(toy_cache, out, cfg)
    assert set(per) == {"valid", "test"}
    rec = asr.Recognizer(out)
    torch.manual_seed(cfg.seed)
    untrained = asr.PhonemeCTC(cfg)                                    # the weights training started from
    items = asr.load_split(toy_cache, "train")[:16]
    with torch.no_grad():
        before, after = (asr.ctc_loss(m, items, rec.symbols).item() for m in (untrained, rec.model))
    assert after < 0.7 * before, (before, after)
    wav, _, _ = toy.render("Hello there.", toy.make_voices(toy.HELDOUT_VARIANTS, 0, "ho")[0])
    assert all(p in rec.symbols for p in rec(wav))


def test_recogniser_refuses_other_checkpoints(tmp_path):
    torch.save({"kind": "ldm"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a phoneme recogniser"):
        asr.Recognizer(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="python -m evaluation.asr train"):
        asr.Recognizer(tmp_path / "missing.pt")


def test_cli_errors(capsys):
    assert asr.main(["eval", "--data", "/nonexistent"]) == 2
    assert "no feature cache" in capsys.readouterr().err


# The shipped recogniser (trained on the toy training voices only) reads held-out voices' ground truth with a PER of
# about 0.1 (docs/results.md); 0.2 catches a stale or broken checkpoint. Rendering is deterministic, so this repeats exactly.
PER_CEILING = 0.2


def test_shipped_recogniser_reads_heldout_voices():
    assert SHIPPED.exists() and SHIPPED.stat().st_size < 5e6
    rec = asr.Recognizer(SHIPPED)
    plan = toy.plan(seed=0, utts_per_voice=1, heldout_utts=1)
    refs, hyps = [], []
    for u in [u for u in plan["utterances"] if u["split"] == "test"][::2]:
        wav, phonemes, _ = toy.render(u["text"], toy.Voice(**plan["voices"][u["speaker"]]), u["seed"])
        refs.append(phonemes)
        hyps.append(rec(wav))
    assert asr.phoneme_error_rate(refs, hyps) <= PER_CEILING


def test_wer_normalisation_and_values():
    assert asr.normalize_text("There were 7 pencils, all of them beige!") == "there were seven pencils all of them beige"
    assert asr.word_error_rate(["Hello, world."], ["hello world"]) == 0.0
    assert asr.word_error_rate(["a b c d"], ["a x c"]) == 0.5
    assert asr.word_error_rate(["a b"], [""]) == 1.0
    assert isinstance(asr.transcribe(np.zeros(16000, np.float32)), str)


@pytest.mark.slow
def test_wer_normalisation_never_downloads():
    """g2p_en calls nltk.download at import unless its data is found: asr must build/point to it first."""
    import subprocess
    import sys
    from pathlib import Path
    code = ("import nltk\n"
            "def refuse(*a, **k): raise SystemExit('nltk.download attempted')\n"
            "nltk.download = refuse\n"
            "from evaluation import asr\nprint(asr.normalize_text('7 cats'))")
    r = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stdout.strip() == "seven cats", r.stderr
