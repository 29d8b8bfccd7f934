"""Speech prompting (§3.3): segment sampling, prompt/target split, query attention, FiLM."""
import pytest
import torch

import prompt as P


def test_segment_sampling_respects_the_documented_range():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([240, 100, 48, 1000]).repeat(250)
    u, v = P.sample_prompt_segment(lengths, 0.1, 0.4, 24, generator=g)
    span = v - u
    assert (u >= 0).all() and (v <= lengths).all() and (span >= 24).all()
    assert (lengths - span >= 24).all()                                     # a target always remains
    long = lengths == 1000
    assert span[long].min() >= 100 and span[long].max() <= 400               # 10%..40% when not clamped
    assert u[long].float().std() > 100                                      # start position varies
    u2, v2 = P.sample_prompt_segment(lengths, generator=torch.Generator().manual_seed(0))
    assert torch.equal(u, u2) and torch.equal(v, v2)                        # seeded
    with pytest.raises(ValueError, match="at least 48 frames"):
        P.sample_prompt_segment(torch.tensor([47]))


def test_take_and_remove_segment_by_hand():
    x = torch.arange(1, 9).float().reshape(1, 1, 8).repeat(2, 2, 1)         # frames 1..8, 2 channels
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 6:] = False                                                     # utterance 1 has 6 frames
    u, v = torch.tensor([2, 0]), torch.tensor([5, 2])
    prompt, pmask = P.take_segment(x, u, v)
    assert prompt[:, 0].tolist() == [[3, 4, 5], [1, 2, 0]] and pmask.tolist() == [[1, 1, 1], [1, 1, 0]]
    target, tmask = P.remove_segment(x, mask, u, v)
    assert target[:, 0].tolist() == [[1, 2, 6, 7, 8], [3, 4, 5, 6, 0]]     # concat(x_{1:u}, x_{v:n})
    assert tmask.sum(1).tolist() == [5, 4] and torch.equal(target[:, 1], target[:, 0])


def test_query_attention_summarises_any_prompt_into_m_vectors():
    torch.manual_seed(0)
    qa = P.QueryAttention(dim=16, m=4, heads=2).eval()
    h = torch.randn(2, 16, 10)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 7:] = False
    out = qa(h, mask)
    assert out.shape == (2, 16, 4)
    h2 = h.clone(); h2[1, :, 7:] = 1e3                                      # garbage in the padding
    assert torch.allclose(qa(h2, mask), out, atol=1e-5)
    perm = torch.randperm(7)                                                # keys/values are a set: order-free
    h3 = h.clone(); h3[1, :, :7] = h[1, :, perm]
    assert torch.allclose(qa(h3, mask)[1], out[1], atol=1e-5)
    assert not torch.allclose(qa(torch.randn(2, 16, 10), mask), out)


def test_prompt_attention_and_film():
    torch.manual_seed(0)
    pa, film = P.PromptAttention(channels=8, dim=16, heads=2), P.FiLM(8, 8)
    x, memory = torch.randn(2, 8, 30), torch.randn(2, 16, 4)
    a = pa(x, memory)
    assert a.shape == (2, 8, 30)
    assert torch.equal(film(x, a), x)                                       # identity at initialisation
    with torch.no_grad():
        film.proj.weight.normal_()
    gamma, beta = film.proj(a).chunk(2, 1)
    assert torch.allclose(film(x, a), gamma * x + beta)                     # γ ⊙ x + β
    assert not torch.allclose(pa(x, torch.randn(2, 16, 4)), a)              # the output depends on the prompt


def test_prompt_encoder_ignores_padding():
    torch.manual_seed(0)
    enc = P.PromptEncoder(latent_dim=6, dim=16, layers=1, heads=2, ffn_dim=32, kernel=3, dropout=0.0).eval()
    z = torch.randn(2, 6, 12)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, 9:] = False
    out = enc(z, mask)
    z2 = z.clone(); z2[0, :, 9:] = 50.0
    assert out.shape == (2, 16, 12) and torch.allclose(enc(z2, mask)[0, :, :9], out[0, :, :9], atol=1e-5)


def test_query_init_std():
    """The learned queries start at std 1 (DenoiserConfig.query_init_std), at std dim^-1/2 with init_std 0."""
    torch.manual_seed(0)
    assert abs(float(P.QueryAttention(dim=64, m=256, heads=4).queries.detach().std()) - 1.0) < 0.05
    assert abs(float(P.QueryAttention(dim=64, m=256, heads=4, init_std=0.0).queries.detach().std()) - 64 ** -0.5) < 0.01
    from diffusion import WaveNet
    from training.presets import preset
    net = WaveNet(preset("tiny").model.denoiser)          # the default config reaches the denoiser's queries
    assert abs(float(net.query.queries.detach().std()) - 1.0) < 0.15


def test_query_diversity_tells_a_mean_from_distinct_summaries():
    """query_diversity: equal weights read as uniform entropy and cosine 1; one-hot rows on different frames as
    entropy 0 and cosine 0; the weights of QueryAttention are rows that sum to 1 over the real frames."""
    uniform = torch.full((1, 2, 4, 10), 0.1)
    d = P.query_diversity(uniform)
    assert abs(d["entropy"] - d["uniform"]) < 1e-5 and abs(d["cosine"] - 1) < 1e-5
    assert abs(d["uniform"] - torch.log(torch.tensor(10.0)).item()) < 1e-5
    distinct = torch.zeros(1, 2, 4, 10)
    distinct[..., range(4), range(4)] = 1.0
    d = P.query_diversity(distinct)
    assert abs(d["entropy"]) < 1e-4 and abs(d["cosine"]) < 1e-6
    torch.manual_seed(0)
    qa = P.QueryAttention(dim=16, m=4, heads=2, init_std=1.0)
    h, mask = torch.randn(2, 16, 12), torch.ones(2, 12, dtype=torch.bool)
    mask[1, 8:] = False
    w = qa.weights(h, mask)
    assert w.shape == (2, 2, 4, 12) and torch.allclose(w.sum(-1), torch.ones(2, 2, 4), atol=1e-5)
    assert float(w[1, ..., 8:].abs().max()) == 0.0                          # padding gets no weight
