"""Tests for prior.py (§3.2 prior, §3.3 prompting in the predictors): Table 11 sizes, the length regulator, the
duration target and its inverse, masking, the prompt switch, the L1 losses, the two paths, and overfitting."""
import math

import pytest
import torch

import prior as P
from codec import count_parameters
from dataclasses import replace
from training import presets


def tiny(**overrides):
    return replace(presets.preset("tiny").model.prior, n_phonemes=20, **overrides)


def batch(seed=0, B=2, N=5, Tp=6, cfg=None):
    """Two utterances: 5 and 3 phonemes, prompts of 6 and 4 frames; durations sum to 9 and 5 frames."""
    cfg = cfg or tiny()
    g = torch.Generator().manual_seed(seed)
    phoneme_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    phonemes = torch.randint(1, cfg.n_phonemes, (B, N), generator=g).masked_fill(~phoneme_mask, 0)
    durations = torch.tensor([[2, 0, 3, 1, 3], [1, 3, 1, 0, 0]])
    T = 9
    frame_mask = torch.arange(T)[None] < durations.sum(1, keepdim=True)
    lf0 = (5.0 + 0.3 * torch.randn(B, T, generator=g)).masked_fill(~frame_mask, 0)
    prompt_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2], dtype=torch.bool)
    prompt = torch.randn(B, cfg.prompt_dim, Tp, generator=g).masked_fill(~prompt_mask[:, None], 0)
    return dict(phonemes=phonemes, phoneme_mask=phoneme_mask, durations=durations, lf0=lf0, frame_mask=frame_mask,
                prompt=prompt, prompt_mask=prompt_mask)


def garbage(x, mask, value):
    """x with its padded positions (mask False) overwritten by `value`; mask (B, T), x (B, T) or (B, C, T)."""
    m = ~mask if x.dim() == 2 else ~mask[:, None].expand_as(x)
    return x.masked_fill(m, value)


# --- Table 11 sizes ----------------------------------------------------------------------------------------------
def test_paper_parameter_counts_match_table_11():
    cfg = presets.model_config("paper", n_phonemes=100).prior
    with torch.device("meta"):
        prior = P.Prior(cfg)
        prompt_encoder = P.ConvFFNTransformer(512, 6, 8, 2048, 9, 0.2)
    for module, table in [(prior.encoder, 72e6), (prior.duration, 34e6), (prior.pitch, 50e6), (prompt_encoder, 69e6)]:
        n = count_parameters(module)
        assert abs(n / table - 1) < 0.15, (type(module).__name__, n, table)
    assert len(prior.duration.attns) == 10 and len(prior.duration.convs) == 30


def test_presets():
    assert presets.preset("paper").model.prior == P.PriorConfig()
    assert presets.model_config("toy", n_phonemes=84, latent_dim=32).prior.n_phonemes == 84
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        presets.preset("huge")


# --- length regulator and durations --------------------------------------------------------------------------------
def test_length_regulate_hand_example():
    h = torch.arange(1.0, 13.0).reshape(2, 2, 3)          # (B=2, C=2, N=3): h[b, :, n]
    d = torch.tensor([[2, 0, 3], [1, 1, 0]])
    frames, mask = P.length_regulate(h, d)
    assert frames.shape == (2, 2, 5) and mask.tolist() == [[True] * 5, [True, True, False, False, False]]
    # utterance 0: phoneme 0 twice, phoneme 1 skipped (0 frames), phoneme 2 three times
    assert frames[0].tolist() == [[1, 1, 3, 3, 3], [4, 4, 6, 6, 6]]
    assert frames[1].tolist() == [[7, 8, 0, 0, 0], [10, 11, 0, 0, 0]]   # padding frames are zero
    assert mask.sum(1).tolist() == d.sum(1).tolist()
    frames, mask = P.length_regulate(h, d, max_frames=7)   # pad to a given length
    assert frames.shape == (2, 2, 7) and mask.sum(1).tolist() == [5, 2] and frames[:, :, 5:].abs().sum() == 0
    with pytest.raises(ValueError, match=">= 0"):
        P.length_regulate(h, torch.tensor([[2, -1, 3], [1, 1, 0]]))


def test_length_regulate_gradient_sums_over_repeats():
    h = torch.randn(1, 3, 4, requires_grad=True)
    P.length_regulate(h, torch.tensor([[3, 0, 1, 2]]))[0].sum().backward()
    assert h.grad[0, 0].tolist() == [3, 0, 1, 2]          # each phoneme feeds d_n frames


def test_durations_from_log_inverts_the_training_target():
    d = torch.tensor([[0, 1, 2, 7, 40], [3, 0, 5, 9, 9]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    target = torch.log(d.float() + 1)
    assert P.durations_from_log(target, mask).tolist() == d.masked_fill(~mask, 0).tolist()
    assert P.durations_from_log(target, mask, scale=2.0).tolist() == (2 * d).masked_fill(~mask, 0).tolist()
    x = torch.randn(2, 5)                                  # arbitrary predictions: rounding moves at most 1 frame
    d1, d2 = P.durations_from_log(x, mask), P.durations_from_log(x, mask, scale=2.0)
    assert ((d2 - 2 * d1).abs() <= 1).all() and (d1 >= 0).all() and d1.dtype == torch.long
    assert P.durations_from_log(torch.full((1, 2), -5.0), mask[:1, :2]).tolist() == [[0, 0]]   # clamped at 0


# --- masks ----------------------------------------------------------------------------------------------------------
def test_phoneme_encoder_ignores_padding():
    torch.manual_seed(0)
    enc = P.PhonemeEncoder(tiny()).eval()
    b = batch()
    h = enc(b["phonemes"], b["phoneme_mask"])
    h2 = enc(garbage(b["phonemes"], b["phoneme_mask"], 999), b["phoneme_mask"])   # even out-of-range IDs
    assert torch.allclose(h, h2, atol=1e-6) and h[1, :, 3:].abs().sum() == 0
    longer = torch.nn.functional.pad(b["phonemes"], (0, 4), value=7)              # more padding at the end
    h3 = enc(longer, torch.nn.functional.pad(b["phoneme_mask"], (0, 4), value=False))
    assert torch.allclose(h, h3[:, :, :5], atol=1e-5)
    alone = enc(b["phonemes"][1:, :3], b["phoneme_mask"][1:, :3])                  # utterance 1 without padding
    assert torch.allclose(h[1:, :, :3], alone, atol=1e-5)


def test_positional_encoding_makes_the_encoder_order_aware():
    torch.manual_seed(0)
    enc = P.ConvFFNTransformer(16, 1, 2, 32, 1, 0.0).eval()   # kernel 1: only the positions tell order apart
    x, mask = torch.randn(1, 16, 6), torch.ones(1, 6, dtype=torch.bool)
    assert not torch.allclose(enc(x.flip(-1), mask), enc(x, mask).flip(-1), atol=1e-3)


def test_variance_predictor_ignores_padded_frames_and_prompt():
    torch.manual_seed(0)
    pred = P.VariancePredictor(16, 3, 5, 0.5, heads=2, attn_every=3, prompt_dim=16).eval()
    b = batch()
    x = torch.randn(2, 16, 5)
    y = pred(x, b["phoneme_mask"], b["prompt"], b["prompt_mask"])
    y2 = pred(garbage(x, b["phoneme_mask"], 1e4), b["phoneme_mask"],
              garbage(b["prompt"], b["prompt_mask"], float("nan")), b["prompt_mask"])
    assert torch.allclose(y, y2, atol=1e-5) and y[1, 3:].abs().sum() == 0
    alone = pred(x[1:, :, :3], b["phoneme_mask"][1:, :3], b["prompt"][1:, :, :4], None)   # no padding anywhere
    assert torch.allclose(y[1:, :3], alone, atol=1e-5)


def test_prior_forward_and_losses_ignore_padding():
    torch.manual_seed(0)
    prior = P.Prior(tiny()).eval()
    b = batch()
    args = (b["phoneme_mask"], b["prompt"], b["prompt_mask"])
    out = prior(b["phonemes"], *args, durations=b["durations"], lf0=b["lf0"])
    loss = prior.losses(out, b["durations"], b["lf0"], b["phoneme_mask"], out["frame_mask"])
    bad = dict(durations=garbage(b["durations"], b["phoneme_mask"], -3), lf0=garbage(b["lf0"], b["frame_mask"], 1e6))
    out2 = prior(garbage(b["phonemes"], b["phoneme_mask"], 5), b["phoneme_mask"],
                 garbage(b["prompt"], b["prompt_mask"], 1e3), b["prompt_mask"], **bad)
    loss2 = prior.losses(out2, bad["durations"], bad["lf0"], b["phoneme_mask"], out2["frame_mask"])
    assert torch.equal(out["frame_mask"], b["frame_mask"]) and torch.equal(out["durations"], b["durations"])
    for k in ("c", "log_d_hat", "lf0_hat"):
        assert torch.allclose(out[k], out2[k], atol=1e-4), k
    assert out["c"][1, :, 5:].abs().sum() == 0 and out["lf0_hat"][1, 5:].abs().sum() == 0
    for k in ("dur", "pitch"):
        assert torch.allclose(loss[k], loss2[k], atol=1e-5), k


def test_pitch_predictor_skips_the_unused_span_exactly():
    """With an unused span (the prompt in training) the pitch predictor leaves out the frames beyond its reach inside
    the span: every frame outside the span gets the value of the whole-sequence pass, the left-out ones 0."""
    torch.manual_seed(0)
    prior = P.Prior(tiny()).eval()
    r = prior.pitch.reach
    assert r == 3 * (5 // 2)                                           # 3 convs of kernel 5
    fmask = torch.arange(60)[None] < torch.tensor([[60], [50]])
    h = torch.randn(2, 16, 60).masked_fill(~fmask[:, None], 0)
    prompt, prompt_mask = torch.randn(2, 16, 7), torch.ones(2, 7, dtype=torch.bool)
    u, v = torch.tensor([10, 20]), torch.tensor([40, 45])
    full = prior.pitch(h, fmask, prompt, prompt_mask)
    part = prior._predict_pitch(h, fmask, prompt, prompt_mask, (u, v))
    t = torch.arange(60)[None]
    left_out = (t >= u[:, None] + r) & (t < v[:, None] - r)
    outside = (t < u[:, None]) | (t >= v[:, None])
    assert torch.allclose(part[outside], full[outside], atol=1e-5) and (part[left_out] == 0).all()
    assert not torch.allclose(part[0, 10:40], full[0, 10:40])          # inside the span: not the same values
    x, mask, idx = P.compact(h, fmask & ~left_out)
    assert x.shape[-1] == 60 - (40 - 10 - 2 * r) and mask.sum(1).tolist() == [60 - 18, 50 - 13]
    assert torch.equal(x[0, :, 9], h[0, :, 9]) and torch.equal(x[0, :, 16], h[0, :, 34])   # the two sides joined
    assert (x[1, :, mask[1].sum():] == 0).all() and len(set(idx[1].tolist())) == idx.shape[1]


# --- the prompt switch (Table 9's ablation) --------------------------------------------------------------------------
def test_use_prompt_false_ignores_the_prompt_and_has_no_attention():
    torch.manual_seed(0)
    pred = P.VariancePredictor(16, 3, 3, 0.5, heads=2, attn_every=3, prompt_dim=16, use_prompt=False).eval()
    assert len(pred.attns) == 0 and not any("attn" in n for n, _ in pred.named_parameters())
    b, x = batch(), torch.randn(2, 16, 5)
    y = pred(x, b["phoneme_mask"], None, None)
    assert torch.equal(y, pred(x, b["phoneme_mask"], torch.randn(2, 16, 6), b["prompt_mask"]))
    prior = P.Prior(tiny(use_prompt=False)).eval()
    o1 = prior(b["phonemes"], b["phoneme_mask"], b["prompt"], b["prompt_mask"], b["durations"], b["lf0"])
    o2 = prior(b["phonemes"], b["phoneme_mask"], None, None, b["durations"], b["lf0"])
    assert torch.equal(o1["c"], o2["c"]) and torch.equal(o1["log_d_hat"], o2["log_d_hat"])


def test_use_prompt_true_depends_on_the_prompt():
    torch.manual_seed(0)
    pred = P.VariancePredictor(16, 3, 3, 0.5, heads=2, attn_every=3, prompt_dim=8).eval()   # prompt_dim != dim
    assert len(pred.attns) == 1
    b, x = batch(), torch.randn(2, 16, 5)
    y1 = pred(x, b["phoneme_mask"], torch.randn(2, 8, 6), b["prompt_mask"])
    y2 = pred(x, b["phoneme_mask"], torch.randn(2, 8, 6), b["prompt_mask"])
    assert (y1 - y2)[b["phoneme_mask"]].abs().min() > 0
    with pytest.raises(ValueError, match="prompt"):
        pred(x, b["phoneme_mask"], None, None)


# --- losses ---------------------------------------------------------------------------------------------------------
def test_losses_equal_hand_computed_l1():
    mask = torch.tensor([[True, True, False]])
    l_dur = P.duration_loss(torch.tensor([[0.0, 1.0, 9.0]]), torch.tensor([[0, 2, 5]]), mask)
    assert l_dur.item() == pytest.approx((abs(0 - math.log(1)) + abs(1 - math.log(3))) / 2)
    l_pitch = P.pitch_loss(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.5, 2.0, 100.0]]), mask)
    assert l_pitch.item() == pytest.approx(0.25)


def test_duration_loss_gradient_reaches_encoder_and_duration_predictor_only():
    torch.manual_seed(0)
    prior = P.Prior(tiny())
    b = batch()
    out = prior(b["phonemes"], b["phoneme_mask"], b["prompt"], b["prompt_mask"], b["durations"], b["lf0"])
    prior.losses(out, b["durations"], b["lf0"], b["phoneme_mask"], out["frame_mask"])["dur"].backward()
    grad = lambda m: sum(p.grad.abs().sum().item() for p in m.parameters() if p.grad is not None)
    assert grad(prior.duration) > 0 and grad(prior.encoder.embed) > 0 and grad(prior.encoder.encoder) > 0
    assert grad(prior.pitch) == 0


# --- training and inference paths ----------------------------------------------------------------------------------
def test_training_and_inference_lengths_and_controls():
    torch.manual_seed(0)
    prior = P.Prior(tiny()).eval()
    with torch.no_grad():                          # an untrained predictor says ~0 frames; make it say ~3 per phoneme
        prior.duration.out.weight.mul_(0.1)
        prior.duration.out.bias.fill_(math.log(4.0))
    b = batch()
    args = (b["phonemes"], b["phoneme_mask"], b["prompt"], b["prompt_mask"])
    with torch.no_grad():
        train = prior(*args, durations=b["durations"])                # ground-truth durations, no lf0
        assert train["c"].shape[-1] == b["durations"].sum(1).max() and torch.equal(train["frame_mask"], b["frame_mask"])
        infer = prior(*args)
        d = P.durations_from_log(infer["log_d_hat"], b["phoneme_mask"])
        assert torch.equal(infer["durations"], d) and infer["c"].shape[-1] == d.sum(1).max() > 0
        assert infer["frame_mask"].sum(1).tolist() == d.sum(1).tolist()
        assert torch.equal(infer["lf0"], infer["lf0_hat"])            # inference embeds the predicted pitch
        slow = prior(*args, adjust=P.Adjust(duration_scale=2.0))
        T1, T2, N = d.sum(1), slow["durations"].sum(1), b["phoneme_mask"].sum(1)
        assert ((T2 - 2 * T1).abs() <= N).all()                       # rounding: at most one frame per phoneme
        up = prior(*args, adjust=P.Adjust(pitch_shift=math.log(2.0)))   # one octave up
    w = prior.pitch_embed.weight[:, 0, 0]                             # c is linear in the embedded pitch
    shift = (up["c"] - infer["c"]).detach()
    m = infer["frame_mask"]
    assert torch.allclose(shift.permute(0, 2, 1)[m], (math.log(2.0) * w).expand(int(m.sum()), -1), atol=1e-5)
    assert shift.permute(0, 2, 1)[~m].abs().sum() == 0
    with torch.no_grad():                          # every phoneme predicted at 0 frames: one masked frame, no crash
        prior.duration.out.bias.fill_(-5.0)
        silent = prior(*args)
    assert silent["durations"].sum() == 0 and silent["c"].shape == (2, 16, 1) and not silent["frame_mask"].any()


def test_tiny_prior_overfits_one_batch():
    torch.manual_seed(0)
    prior = P.Prior(tiny(enc_dropout=0.0, pred_dropout=0.0))
    b = batch()
    opt = torch.optim.Adam(prior.parameters(), lr=1e-2)
    args = (b["phonemes"], b["phoneme_mask"], b["prompt"], b["prompt_mask"], b["durations"], b["lf0"])
    first = None
    for _ in range(150):
        out = prior(*args)
        loss = prior.losses(out, b["durations"], b["lf0"], b["phoneme_mask"], out["frame_mask"])
        first = first or {k: v.item() for k, v in loss.items()}
        opt.zero_grad()
        (loss["dur"] + loss["pitch"]).backward()
        opt.step()
    for k in ("dur", "pitch"):
        assert loss[k].item() < first[k] / 5, (k, first[k], loss[k].item())
    m = b["frame_mask"]                                   # it fits the contour, not only each utterance's mean pitch
    spread = sum((b["lf0"][i, m[i]] - b["lf0"][i, m[i]].mean()).abs().sum() for i in range(2)) / m.sum()
    assert loss["pitch"].item() < 0.5 * spread.item()


# --- bad inputs -----------------------------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors():
    prior = P.Prior(tiny()).eval()
    b = batch()
    rest = (b["phoneme_mask"], b["prompt"], b["prompt_mask"])
    with pytest.raises(ValueError, match="phoneme id 25 >= n_phonemes 20"):
        prior(b["phonemes"].index_put((torch.tensor(0), torch.tensor(1)), torch.tensor(25)), *rest)
    with pytest.raises(ValueError, match="< 0"):
        prior(b["phonemes"].index_put((torch.tensor(0), torch.tensor(1)), torch.tensor(-1)), *rest)
    with pytest.raises(ValueError, match="N >= 1"):
        prior(torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0, dtype=torch.bool), *rest[1:])
    with pytest.raises(ValueError, match="at least one real phoneme"):
        prior(b["phonemes"], b["phoneme_mask"] & torch.tensor([[True], [False]]), *rest[1:])
    with pytest.raises(ValueError, match="lf0 has only"):
        prior(b["phonemes"], *rest, durations=b["durations"], lf0=b["lf0"][:, :4])
    with pytest.raises(ValueError, match="odd"):
        P.ConvFFNTransformer(16, 1, 2, 32, 4, 0.0)


# --- binned pitch embedding (pitch_bins > 0) ---------------------------------------------------------------------
def test_binned_pitch_embedding():
    """c = h_frames + E[k(lf0)]: one learned vector per log-spaced pitch bin; padding stays 0; bad settings refused."""
    torch.manual_seed(0)
    prior = P.Prior(tiny(pitch_bins=32, pitch_min_hz=50.0, pitch_max_hz=400.0)).eval()
    emb = prior.pitch_embed
    width = math.log(400 / 50) / 30                                  # 32 bins: 31 boundaries, 30 gaps
    mid = math.log(50.0) + 10.5 * width                              # the middle of a bin
    lf0 = torch.tensor([[math.log(20.0), math.log(50.0), mid, mid + 0.3 * width, mid + width, math.log(1000.0)]])
    k = torch.bucketize(lf0, emb.boundaries)
    assert k[0, 0] == 0 and k[0, -1] == 31                            # below / above the range: the end bins
    assert k[0, 2] == k[0, 3] and k[0, 4] == k[0, 2] + 1              # a fraction of a bin apart: same bin or the next
    out = emb(lf0)
    assert out.shape == (1, 16, 6) and torch.equal(out[0, :, 2], out[0, :, 3]) and not torch.equal(out[0, :, 2], out[0, :, 4])
    b = batch(cfg=prior.cfg)
    args = (b["phonemes"], b["phoneme_mask"], b["prompt"], b["prompt_mask"])
    with torch.no_grad():
        base = prior(*args, durations=b["durations"], lf0=b["lf0"])
        up = prior(*args, durations=b["durations"], lf0=b["lf0"] + math.log(2.0))      # one octave up
    m = b["frame_mask"]
    shift = (up["c"] - base["c"]).permute(0, 2, 1)
    expect = (emb.embed.weight[torch.bucketize(b["lf0"] + math.log(2.0), emb.boundaries)]
              - emb.embed.weight[torch.bucketize(b["lf0"], emb.boundaries)])
    assert torch.allclose(shift[m], expect[m], atol=1e-5) and shift[~m].abs().sum() == 0
    assert set(dict(prior.named_parameters())) >= {"pitch_embed.embed.weight"}
    assert "pitch_embed.boundaries" not in prior.state_dict()        # derived from the config, not stored
    for bad in (dict(pitch_bins=1), dict(pitch_bins=8, pitch_min_hz=500.0, pitch_max_hz=100.0)):
        with pytest.raises(ValueError, match="pitch_bins"):
            P.Prior(tiny(**bad))


def test_dropout_rate_scale_and_eval_identity():
    torch.manual_seed(0)
    d = P.Dropout(0.3)
    x = torch.ones(200_000, requires_grad=True)
    y = d(x)
    assert abs(float((y.detach() == 0).float().mean()) - 0.3) < 0.005 and abs(float(y.detach().mean()) - 1) < 0.01
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)                       # the gradient goes through the kept elements only
    assert torch.equal(d.eval()(x), x) and torch.equal(P.Dropout(0.0)(x), x)
    with pytest.raises(ValueError, match="dropout probability"):
        P.Dropout(1.0)
