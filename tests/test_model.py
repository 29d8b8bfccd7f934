"""NaturalSpeech2 (Fig. 1): every loss term used, the prompt span excluded, overfitting, generation, bad inputs."""
import numpy as np
import pytest
import torch

import model as M
from rvq import ResidualVQ
from training import presets


def tiny_model(**kw):
    torch.manual_seed(0)
    cfg = presets.model_config("tiny", n_phonemes=12, latent_dim=16)
    cfg = M.replace(cfg, prompt_min_frames=8, **kw) if kw else M.replace(cfg, prompt_min_frames=8)
    codebooks = torch.randn(4, 32, 16) * torch.tensor([1.0, 0.5, 0.25, 0.125])[:, None, None]
    return M.NaturalSpeech2(cfg, codebooks)


def batch(B=2, N=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    durations = torch.randint(4, 9, (B, N), generator=g)
    if B > 1:
        durations[1, -2:] = 0                                       # utterance 1: 4 phonemes
    T = int(durations.sum(1).max())
    fmask = torch.arange(T)[None] < durations.sum(1)[:, None]
    phonemes = torch.randint(1, 12, (B, N), generator=g)
    if B > 1:
        phonemes[1, -2:] = 0
    # like speech, the latent stays put within a phoneme: one code per phoneme, repeated over its frames
    per_phoneme = torch.randint(0, 32, (B, 4, N), generator=g)
    codes = torch.zeros(B, 4, T, dtype=torch.long)
    for b in range(B):
        frames = torch.repeat_interleave(per_phoneme[b], durations[b], dim=1)
        codes[b, :, :frames.shape[1]] = frames
    return dict(phonemes=phonemes, phoneme_mask=phonemes != 0, durations=durations, frame_mask=fmask,
                lf0=torch.randn(B, T, generator=g) * 0.2 + 5 * fmask, codes=codes)


def test_loss_has_every_term_and_forms_the_total_once():
    m = tiny_model()
    losses = m.loss(batch(), torch.Generator().manual_seed(0))
    assert set(losses) == {"data", "score", "ce_rvq", "dur", "pitch", "total"}
    expected = losses["data"] + losses["score"] + 0.1 * losses["ce_rvq"] + losses["dur"] + losses["pitch"]
    assert torch.allclose(losses["total"], expected)
    losses["total"].backward()
    for name in ("prior.encoder", "prior.duration", "prior.pitch", "prompt_encoder", "denoiser"):
        grads = [p.grad for n, p in m.named_parameters() if n.startswith(name) and p.grad is not None]
        assert grads and sum(g.abs().sum() for g in grads) > 0, name
    no_ce = tiny_model(use_ce_rvq=False).loss(batch(), torch.Generator().manual_seed(0))
    assert "ce_rvq" not in no_ce and torch.allclose(no_ce["total"], sum(no_ce[k] for k in ("data", "score", "dur", "pitch")))


def test_loss_is_the_same_with_the_pitch_predictor_run_on_every_frame():
    """The loss runs the pitch predictor without most of the prompt span (Prior._predict_pitch): every term and
    every gradient as with the predictor run on the whole utterance."""
    m = tiny_model(prompt_min_frac=0.6, prompt_max_frac=0.6).eval()   # spans long enough to leave frames out
    b = batch(N=10)
    fast = m.loss(b, torch.Generator().manual_seed(1))
    fast["total"].backward()
    g_fast = [p.grad.clone() for p in m.parameters() if p.grad is not None]
    m.zero_grad()
    whole = m.prior._predict_pitch
    m.prior._predict_pitch = lambda *a: whole(*a[:4])                 # no unused span
    slow = m.loss(b, torch.Generator().manual_seed(1))
    slow["total"].backward()
    for k in fast:
        assert torch.allclose(fast[k], slow[k], rtol=1e-5, atol=1e-6), k
    g_slow = [p.grad for p in m.parameters() if p.grad is not None]
    assert len(g_fast) == len(g_slow) and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g_fast, g_slow))


def test_predictors_only_loss_skips_the_diffusion_model_and_matches_the_full_loss():
    """The re-fit path computes L_dur and L_pitch exactly as the full loss does (same prompt span) and never runs
    the denoiser."""
    m = tiny_model().eval()
    full = m.loss(batch(), torch.Generator().manual_seed(3))
    m.denoiser.forward = lambda *a, **k: pytest.fail("the denoiser ran")
    part = m.loss(batch(), torch.Generator().manual_seed(3), predictors_only=True)
    assert set(part) == {"dur", "pitch", "total"}
    assert torch.equal(part["dur"], full["dur"]) and torch.equal(part["pitch"], full["pitch"])
    assert torch.allclose(part["total"], full["dur"] + full["pitch"])


def test_prompt_span_is_cut_out_of_the_target(monkeypatch):
    m = tiny_model()
    b = batch()
    seen = {}
    real = m.denoiser.forward
    monkeypatch.setattr(M, "sample_prompt_segment", lambda *a, **k: (torch.tensor([3, 0]), torch.tensor([13, 10])))
    monkeypatch.setattr(m.denoiser, "forward", lambda z_t, t, c, mask, *r: seen.update(mask=mask, c=c) or real(z_t, t, c, mask, *r))
    m.loss(b)
    lengths = b["frame_mask"].sum(1)
    assert seen["mask"].sum(1).tolist() == (lengths - 10).tolist()          # the target has T − span frames


def test_overfits_one_utterance():
    """The whole model memorises one utterance: the latent MSE (data term) falls to under 5% of its start."""
    torch.manual_seed(0)
    cfg = presets.model_config("tiny", n_phonemes=12, latent_dim=16)
    cfg = M.replace(cfg, prompt_min_frames=8, prompt_dropout=0.0,
                    prior=M.replace(cfg.prior, enc_dropout=0.0, pred_dropout=0.0))
    m = M.NaturalSpeech2(cfg, torch.randn(4, 32, 16) * torch.tensor([1.0, 0.5, 0.25, 0.125])[:, None, None])
    b = batch(B=1)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    first = None
    for step in range(300):
        losses = m.loss(b, torch.Generator().manual_seed(step))
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
        first = first or float(losses["data"].detach())
    m.eval()
    with torch.no_grad():
        final = sum(float(m.loss(b, torch.Generator().manual_seed(1000 + s))["data"]) for s in range(5)) / 5
    assert final < 0.05 * first, (first, final)             # measured: 1.46 -> 0.07 after 200 steps


@pytest.mark.parametrize("sampler", ["ode", "heun", "sde", "dpm"])
def test_generate(sampler):
    m = tiny_model().eval()
    b = batch()
    prompt = m.rvq.decode(b["codes"][:, :, :20])
    out = m.generate(b["phonemes"], prompt, steps=4, sampler=sampler, generator=torch.Generator().manual_seed(0))
    T = out["frame_mask"].shape[1]
    assert out["latent"].shape == (2, 16, T) and (out["frame_mask"].sum(1) == out["durations"].sum(1)).all()
    again = m.generate(b["phonemes"], prompt, steps=4, sampler=sampler, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out["latent"], again["latent"])                       # seeded
    settings = m.generate(b["phonemes"], prompt, M.Sampling(steps=4, sampler=sampler),
                          generator=torch.Generator().manual_seed(0))
    assert torch.equal(out["latent"], settings["latent"])                    # a Sampling = its fields by name
    longer = m.generate(b["phonemes"], prompt, steps=2, duration_scale=2.0)
    assert longer["frame_mask"].sum() >= out["frame_mask"].sum()


@pytest.mark.parametrize("sampler", ["ode", "sde"])
def test_generate_with_row_seeds_is_independent_of_the_batch(sampler):
    """`seeds`: each row draws its own noise for its own frames, and every layer masks padding, so a padded batch
    gives row for row what generating each row alone gives (what makes batched synthesis in sample.py exact)."""
    m = tiny_model().eval()
    b = batch()
    prompt = m.rvq.decode(b["codes"][:, :, :20])
    prompt_mask = torch.ones(2, 20, dtype=torch.bool)
    prompt_mask[1, 12:] = False                                               # row 1: a shorter prompt, padded
    prompt = prompt * prompt_mask[:, None]
    both = m.generate(b["phonemes"], prompt, prompt_mask=prompt_mask, steps=4, sampler=sampler, seeds=[5, 9])
    lengths = both["frame_mask"].sum(1)
    assert lengths.min() > 0 and lengths[0] != lengths[1]
    for i, (n, tp, seed) in enumerate([(6, 20, 5), (4, 12, 9)]):
        alone = m.generate(b["phonemes"][i:i + 1, :n], prompt[i:i + 1, :, :tp], steps=4, sampler=sampler, seeds=[seed])
        T = int(lengths[i])
        assert alone["latent"].shape[-1] == T
        assert torch.allclose(both["latent"][i, :, :T], alone["latent"][0], atol=1e-5)
        assert both["latent"][i, :, T:].abs().sum() == 0                     # padding stays silent
    other = m.generate(b["phonemes"][:1], prompt[:1], steps=4, sampler=sampler, seeds=[6])
    assert (other["latent"][0] - both["latent"][0, :, :int(lengths[0])]).abs().max() > 1e-3   # the seed is used


def test_generate_with_oracle_prosody():
    """Given durations and pitch (the ground truth's, as evaluation/demo.py --oracle does), they replace the predicted ones."""
    m = tiny_model().eval()
    b = batch()
    prompt = m.rvq.decode(b["codes"][:, :, :20])
    out = m.generate(b["phonemes"], prompt, steps=2, prosody=M.Prosody(b["durations"], b["lf0"]), seeds=[0, 1])
    assert torch.equal(out["durations"], b["durations"])
    assert torch.equal(out["frame_mask"], b["frame_mask"])
    assert torch.allclose(out["lf0"], b["lf0"] * b["frame_mask"])
    dur_only = m.generate(b["phonemes"], prompt, steps=2, prosody=M.Prosody(b["durations"]), seeds=[0, 1])
    assert torch.equal(dur_only["frame_mask"], b["frame_mask"])
    assert not torch.allclose(dur_only["lf0"], out["lf0"])                    # pitch predicted, not given
    with pytest.raises(ValueError, match="needs the oracle durations"):
        m.generate(b["phonemes"], prompt, steps=2, prosody=M.Prosody(None, b["lf0"]))

def test_invert_then_generate_returns_the_source():
    """§5's source-aware step through the model's plumbing (condition, prompt, normalisation, `start`): the source
    latent carried forward to z_1, then the reverse ODE from that z_1 gives back the source. The denoiser is the
    exact E[z_0 | z_t] for unit-Gaussian normalised latents, so the round trip is exact up to Euler's error."""
    import diffusion as D
    m = tiny_model().eval()
    sde = m.cfg.sde

    def exact(z, t, *rest):
        a = D.rho(torch.ones_like(z), t, sde)
        return a * z / (a ** 2 + D.sigma2(t, sde, z))

    m.denoiser.forward = exact
    b = batch(B=1)
    source = m.denormalize(torch.randn(1, 16, int(b["durations"].sum()), generator=torch.Generator().manual_seed(3)))
    prompt = m.rvq.decode(b["codes"][:, :, :20])
    z1 = m.invert(b["phonemes"], source, prompt, b["durations"], b["lf0"], steps=150)
    out = m.generate(b["phonemes"], prompt, steps=150, prosody=M.Prosody(b["durations"], b["lf0"]), start=z1)
    rel = lambda x: float((x - source).abs().mean() / source.abs().mean())
    fresh = m.generate(b["phonemes"], prompt, steps=150, prosody=M.Prosody(b["durations"], b["lf0"]), seeds=[0])
    assert rel(out["latent"]) < 0.05 and rel(fresh["latent"]) > 0.5, (rel(out["latent"]), rel(fresh["latent"]))
    with pytest.raises(ValueError, match="start latent"):
        m.generate(b["phonemes"], prompt, steps=2, prosody=M.Prosody(b["durations"]), start=z1[:, :, :-1])
    with pytest.raises(ValueError, match="frames"):
        m.invert(b["phonemes"], source[:, :, :-1], prompt, b["durations"], b["lf0"], steps=2)


def test_generate_bad_inputs():
    m = tiny_model().eval()
    prompt = torch.randn(1, 16, 40)
    with pytest.raises(ValueError, match="no phonemes"):
        m.generate(torch.zeros(1, 0, dtype=torch.long), prompt)
    with pytest.raises(ValueError, match="at least 8"):
        m.generate(torch.tensor([[1, 2, 3]]), prompt[:, :, :5])
    with pytest.raises(ValueError, match="another codec"):
        m.generate(torch.tensor([[1, 2, 3]]), torch.randn(1, 8, 40))
    with pytest.raises(ValueError, match="unknown sampler"):
        m.generate(torch.tensor([[1, 2, 3]]), prompt, sampler="magic")


def test_latent_stats_and_normalisation():
    q = ResidualVQ(2, 8, 4)
    q.codebooks.copy_(torch.randn(2, 8, 4) * 5 + 3)
    codes = torch.randint(0, 8, (3, 2, 50))
    mask = torch.ones(3, 50, dtype=torch.bool); mask[2, 30:] = False
    mean, std = M.latent_stats(q, [(codes, mask)])
    z = q.decode(codes).transpose(1, 2)[mask]
    assert torch.allclose(mean, z.mean(0), atol=1e-4) and torch.allclose(std, z.std(0, unbiased=False), atol=1e-3)
    m = tiny_model()
    m.latent_mean.fill_(2.0); m.latent_std.fill_(4.0)
    zz = torch.randn(1, 16, 5)
    assert torch.allclose(m.denormalize(m.normalize(zz)), zz, atol=1e-6)


def test_classifier_free_guidance_path():
    m = tiny_model(cfg_drop=0.5).train()
    with torch.no_grad():                   # FiLM starts as the identity: make the prompt path matter
        for layer in m.denoiser.layers:
            if layer.film is not None:
                layer.film.proj.weight.normal_(0, 0.5)
    losses = m.loss(batch(), torch.Generator().manual_seed(0))
    assert torch.isfinite(losses["total"])
    m.eval()
    b = batch()
    prompt = m.rvq.decode(b["codes"][:, :, :20])
    g = lambda w: m.generate(b["phonemes"], prompt, steps=3, guidance=w, generator=torch.Generator().manual_seed(0))
    assert torch.equal(g(1.0)["latent"], g(1.0)["latent"]) and not torch.allclose(g(1.0)["latent"], g(3.0)["latent"])


def test_config_round_trip():
    cfg = presets.model_config("toy", n_phonemes=84, latent_dim=64)
    assert M.config_from_dict(M.config_to_dict(cfg)) == cfg


def test_predictor_errors_on_a_known_offset():
    """A pitch predictor that outputs a constant 0.3 above a constant target has bias = L1 = 0.3; a duration
    predictor that outputs log(d + 1) exactly has bias = L1 = 0; and the model's mode is left as it was."""
    m, b = tiny_model(), batch()
    with torch.no_grad():
        m.prior.pitch.out.weight.zero_(), m.prior.pitch.out.bias.fill_(5.3)
        m.prior.duration.out.weight.zero_(), m.prior.duration.out.bias.fill_(float(np.log(7.0)))
    b["durations"] = torch.where(b["phoneme_mask"], 6, 0)                     # 6 frames each: T = 36 <= the batch's
    b["frame_mask"] = torch.arange(b["frame_mask"].shape[1])[None] < b["durations"].sum(1)[:, None]
    b["lf0"] = 5.0 * b["frame_mask"]
    m.train()
    e = m.predictor_errors(b)
    assert m.training and e["bias_lf0"] == pytest.approx(0.3, abs=1e-4) and e["l1_lf0"] == pytest.approx(0.3, abs=1e-4)
    assert e["bias_logd"] == pytest.approx(0, abs=1e-4) and e["l1_logd"] == pytest.approx(0, abs=1e-4)


def test_bf16_autocast_keeps_every_loss_term():
    """Mixed precision (what training picks on a GPU and on a CPU with native bf16) changes no loss term by more
    than bf16 rounding: the same batch, the same noise, fp32 against bf16 autocast."""
    m = tiny_model().eval()
    with torch.no_grad():
        fp32 = m.loss(batch(), torch.Generator().manual_seed(0))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = m.loss(batch(), torch.Generator().manual_seed(0))
    for k in fp32:
        assert abs(float(bf16[k]) / float(fp32[k]) - 1) < 0.02, (k, float(fp32[k]), float(bf16[k]))
