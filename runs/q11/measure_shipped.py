"""Print what tests/test_shipped.py checks, measured on the checkpoints in checkpoints/toy (for its comments)."""
import sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import test_shipped as T
import codec
import model as ns2
from evaluation import metrics
from corpus.text import PhonemeSet
from evaluation.diagnostics import query_attention

m = codec.load_codec(T.CODEC)
rows = []
for wav in T.heldout_clips():
    _, ids = m.encode(torch.from_numpy(wav)[None])
    rows.append(metrics.codec_metrics(wav, m.decode_ids(ids)[0, :len(wav)].numpy()))
print("codec 4 clips:", metrics.mean_metrics(rows))
shipped, meta = ns2.load_ns2(T.LDM)
torch.manual_seed(0)
untrained = ns2.NaturalSpeech2(shipped.cfg, shipped.rvq.codebooks, shipped.latent_mean, shipped.latent_std).eval()
cm = codec.load_codec(T.ROOT / meta["codec"]["checkpoint"])
ps = PhonemeSet.from_list(meta["phonemes"])
batch = T.heldout_batch(cm, ps)
def mean_losses(net):
    with torch.no_grad():
        runs = [net.loss(batch, torch.Generator().manual_seed(s)) for s in range(4)]
    return {k: float(sum(r[k] for r in runs) / 4) for k in ("data", "ce_rvq", "dur", "pitch")}
tr, base = mean_losses(shipped), mean_losses(untrained)
print("loss ratios:", {k: round(tr[k] / base[k], 3) for k in tr})
e = shipped.predictor_errors(T.heldout_batch(cm, ps, first=0))
print("predictor bias:", e)
lat = []
for wav in T.heldout_clips(6):
    with torch.no_grad():
        z, _ = cm.encode(torch.from_numpy(wav[:3 * 16000])[None])
    lat.append(z[0])
with torch.no_grad():
    stats, _ = query_attention(shipped, lat)
print("query attention:", stats)
