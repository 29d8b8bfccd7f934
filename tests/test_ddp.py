"""Both training stages under torchrun with 2 CPU processes (gloo): 2 ranks of batch B get the gradient of 1 rank of
batch 2B, DDP keeps the ranks equal through the real loops, and a torchrun run resumes exactly."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow          # torchrun processes: the full tier (make check)


ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args, nproc=2):
    return torchrun_script("train.py", args, nproc)


def torchrun_script(script, args, nproc=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", script, *args]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def weights(path, key="model"):
    return torch.load(path, map_location="cpu", weights_only=True)[key]


def test_two_ranks_of_batch_b_give_the_gradient_of_one_rank_of_2b(toy_cache, tmp_path):
    """DDP's averaged gradient over 2 ranks (each its half of the global batch, codebooks synchronised) equals the
    single-process gradient of the whole batch."""
    helper = str(ROOT / "tests" / "ddp_grads.py")
    torchrun_script(helper, [str(toy_cache), str(tmp_path / "two.pt"), "4"])
    r = subprocess.run([sys.executable, helper, str(toy_cache), str(tmp_path / "one.pt"), "4"], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    two, one = torch.load(tmp_path / "two.pt"), torch.load(tmp_path / "one.pt")
    assert two.keys() == one.keys() and len(one) > 10
    for k in one:                    # relative to the tensor's norm: elements that are sums of cancelling terms
        gap = float((two[k] - one[k]).norm() / one[k].norm().clamp_min(1e-12))          # carry float noise
        assert gap < 1e-3, (k, gap)


def test_codec_training_under_torchrun_keeps_the_ranks_equal(toy_cache, tmp_path):
    """The real loop with 2 ranks, adversarial losses included: every checkpoint checks that the ranks' weights are
    identical (training/loop.py's check_in_sync raises otherwise), and it holds every rank's RNG state."""
    torchrun(["codec", "--config", "tiny", "--data", str(toy_cache), "--device", "cpu", "--steps=4", "--adv_start=2",
              "--ckpt_every=2", "--val_every=100", "--batch_size=1", "--out", str(tmp_path / "run")])
    assert len(torch.load(tmp_path / "run" / "last.pt", weights_only=True)["rng"]) == 2


def test_ldm_under_torchrun_resumes_exactly(encoded_cache, tmp_path):
    cache, codec_ckpt = encoded_cache
    common = ["ldm", "--config", "tiny", "--data", str(cache), "--codec", str(codec_ckpt), "--device", "cpu",
              "--batch_size=1", "--val_every=100", "--ckpt_every=2"]
    torchrun([*common, "--out", str(tmp_path / "full"), "--steps=4"])
    torchrun([*common, "--out", str(tmp_path / "split"), "--steps=2"])
    torchrun([*common, "--out", str(tmp_path / "split"), "--steps=4", "--resume"])
    full, split = weights(tmp_path / "full" / "last.pt"), weights(tmp_path / "split" / "last.pt")
    for k in full:
        assert torch.equal(full[k], split[k]), k
