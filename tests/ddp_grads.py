"""Run by tests/test_ddp.py, alone or under torchrun: one codec training step's gradient on this rank's slice of a
global batch, through loop.distributed/wrap (DDP averages it over the ranks). Rank 0 saves it to argv[2]."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import codec  # noqa: E402
from corpus import data  # noqa: E402
from training import loop  # noqa: E402
from training import presets  # noqa: E402

cache, out, global_batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
dist = loop.distributed("cpu")
torch.manual_seed(0)
cfg = presets.preset("tiny").codec
model = codec.Codec(cfg)
segments = data.WaveSegments(cache, "train", 8000, global_batch // dist.world, seed=0, rank=dist.rank,
                             world=dist.world)
model.train()
model_dp = loop.wrap(model, dist)
x = segments.batch(0)
loss = codec.total_loss(cfg, codec.generator_losses(cfg, x, model_dp(x)))
loss.backward()
if dist.main:
    torch.save({k: p.grad for k, p in model.named_parameters() if p.grad is not None}, out)
