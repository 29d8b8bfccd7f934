"""Residual VQ (Eq. 1) and CE-RVQ: exact round trips, monotone error, gradients, EMA step, CE-RVQ minimum."""
import copy

import pytest
import torch
import torch.nn.functional as F

from rvq import ResidualVQ, kmeans, nearest_code


def layered_rvq(R=4, V=32, D=16, scale=0.1, seed=0):
    """An RVQ whose stage-j codes have norm ~ scale^j: Eq. 1 then recovers every stage's code exactly."""
    g = torch.Generator().manual_seed(seed)
    q = ResidualVQ(R, V, D)
    q.codebooks.copy_(torch.stack([torch.randn(V, D, generator=g) * scale ** j for j in range(R)]))
    q.initialized.fill_(True)
    return q.eval()


def test_ids_to_z_to_ids_is_exact():
    q = layered_rvq()
    ids = torch.randint(0, 32, (3, 4, 50), generator=torch.Generator().manual_seed(1))
    z = q.decode(ids)                                                     # Σ_j C_j[i_j]: (3, 16, 50)
    assert z.shape == (3, 16, 50)
    assert torch.equal(q.encode(z), ids)
    manual = sum(q.codebooks[j][ids[:, j]] for j in range(4)).transpose(1, 2)
    assert torch.allclose(z, manual)


def test_adding_quantizers_never_increases_error():
    torch.manual_seed(0)
    h = torch.randn(4, 8, 300)
    q = ResidualVQ(8, 64, 8).train()
    q(h)                                                                   # k-means init + one EMA step
    q.eval()
    errors = [((q.decode(q.encode(h, n)) - h) ** 2).mean().item() for n in range(1, 9)]
    assert all(b <= a + 1e-7 for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.5 * errors[0]


def test_straight_through_and_every_commitment_term():
    q = layered_rvq(R=3, V=16, D=4)
    h = torch.randn(2, 4, 10, requires_grad=True)
    z_st, ids, commit = q.eval()(h, n_q=3)
    assert torch.allclose(z_st, q.decode(ids), atol=1e-6)                   # value: the quantized latent
    (g_st,) = torch.autograd.grad(z_st.sum(), h)
    assert torch.equal(g_st, torch.ones_like(h))                          # gradient: straight through
    (g_commit,) = torch.autograd.grad(commit, h)
    # by hand: commit = 1/3 Σ_j mean (r_j − e_j)², r_j = h − Σ_{i<j} e_i  ->  d/dh = 1/3 Σ_j 2 (r_j − e_j) / numel
    r, expected = h.detach(), torch.zeros_like(h)
    for j in range(3):
        e = q.codebooks[j][ids[:, j]].transpose(1, 2)
        expected += 2 * (r - e) / h.numel() / 3
        r = r - e
    assert torch.allclose(g_commit, expected, atol=1e-7)
    grads = [torch.autograd.grad(q(h, n_q=n)[2] * n, h)[0] for n in (1, 2, 3)]   # un-averaged sums of n terms
    for a, b in zip(grads, grads[1:]):                                    # each added stage adds its own term
        assert (b - a).abs().sum() > 0


def test_ema_update_matches_hand_computed_step():
    q = ResidualVQ(1, 3, 2, decay=0.9, dead_ratio=0.0, eps=0.0)
    q.codebooks[0] = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    q.cluster_size[0] = torch.tensor([2.0, 1.0, 1.0])
    q.embed_sum[0] = q.codebooks[0] * q.cluster_size[0, :, None]
    q.initialized.fill_(True)
    r = torch.tensor([[1.0, 1.0], [9.0, 1.0], [11.0, -1.0], [-1.0, 0.0]])
    ids = nearest_code(r, q.codebooks[0])
    assert ids.tolist() == [0, 1, 1, 0]
    q._ema_update(0, r, ids)
    N = torch.tensor([0.9 * 2 + 0.1 * 2, 0.9 * 1 + 0.1 * 2, 0.9 * 1 + 0.1 * 0])
    S = torch.tensor([[0.1 * 0.0, 0.1 * 1.0], [0.9 * 10 + 0.1 * 20, 0.1 * 0.0], [0.0, 0.9 * 10]])
    assert torch.allclose(q.cluster_size[0], N) and torch.allclose(q.embed_sum[0], S)
    assert torch.allclose(q.codebooks[0], S / N[:, None])                  # eps = 0: Laplace smoothing is identity


def test_dead_codes_restart_from_the_batch():
    q = ResidualVQ(1, 4, 2, decay=0.9, dead_ratio=0.5)
    q.codebooks[0] = torch.tensor([[0.0, 0.0], [100.0, 100.0], [200.0, 0.0], [0.0, 300.0]])
    q.cluster_size[0] = torch.tensor([5.0, 0.01, 0.01, 0.01])
    q.embed_sum[0] = q.codebooks[0] * q.cluster_size[0, :, None]
    r = torch.randn(40, 2)
    q._ema_update(0, r, nearest_code(r, q.codebooks[0]))
    threshold = 0.5 * 40 / 4
    for k in (1, 2, 3):                                                   # restarted at rows of the batch
        assert any(torch.equal(q.codebooks[0][k], row) for row in r)
        assert q.cluster_size[0][k] == threshold
        assert torch.allclose(q.embed_sum[0][k], q.codebooks[0][k] * threshold)


def test_padding_frames_do_not_touch_statistics():
    torch.manual_seed(0)
    h = torch.randn(2, 4, 20)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 12:] = False
    a, b = ResidualVQ(2, 8, 4).train(), ResidualVQ(2, 8, 4).train()
    torch.manual_seed(1); _, _, ca = a(h, n_q=2, mask=mask)
    h2 = h.clone(); h2[1, :, 12:] = 1e3                                   # garbage in the padding
    torch.manual_seed(1); _, _, cb = b(h2, n_q=2, mask=mask)
    assert torch.allclose(a.codebooks, b.codebooks) and torch.allclose(ca, cb)


def ce_rvq_naive(q, z0_hat, ids):
    """Direct transcription of the CE-RVQ formula, with explicit distances (slow, for checking)."""
    B, D, T = z0_hat.shape
    losses = []
    for j in range(ids.shape[1]):
        r = z0_hat - sum((q.codebooks[i][ids[:, i]].transpose(1, 2) for i in range(j)), torch.zeros_like(z0_hat))
        dist = ((r.permute(0, 2, 1)[:, :, None, :] - q.codebooks[j][None, None]) ** 2).sum(-1)  # (B, T, V)
        losses.append(F.cross_entropy(-dist.reshape(B * T, -1), ids[:, j].reshape(-1)))
    return torch.stack(losses).mean()


def test_ce_rvq_matches_formula_and_rises_around_ground_truth():
    """The loss equals the formula, and it rises around the true latent: each quantizer's term is convex in ẑ_0
    (Hessian 4 Cov_p(C_j) ⪰ 0), so two opposite perturbations average above the truth's loss, at any size. (One
    perturbation alone may lower it: moving away from the other codes raises the true code's margin.)"""
    g = torch.Generator().manual_seed(2)
    q = layered_rvq(R=3, V=16, D=4, scale=0.3)
    ids = torch.randint(0, 16, (2, 3, 7), generator=g)
    z0 = q.decode(ids)
    noisy = z0 + 0.5 * torch.randn(z0.shape, generator=g)
    assert torch.allclose(q.ce_rvq_loss(noisy, ids), ce_rvq_naive(q, noisy, ids), atol=1e-5)
    at_truth = q.ce_rvq_loss(z0, ids)
    for s in (0.05, 0.2, 1.0):
        eps = s * torch.randn(z0.shape, generator=g)
        assert (q.ce_rvq_loss(z0 + eps, ids) + q.ce_rvq_loss(z0 - eps, ids)) / 2 > at_truth, s


def test_ce_rvq_gradient_reaches_z0_hat_only_and_respects_mask():
    g = torch.Generator().manual_seed(5)
    q = layered_rvq(R=2, V=8, D=4)
    ids = torch.randint(0, 8, (2, 2, 6), generator=g)
    z0_hat = torch.randn(2, 4, 6, generator=g).requires_grad_()
    q.ce_rvq_loss(z0_hat, ids).backward()
    assert z0_hat.grad is not None and z0_hat.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in q.buffers())                 # codebooks are constants here
    mask = torch.ones(2, 6, dtype=torch.bool); mask[0, 4:] = False
    z0_hat.grad = None
    q.ce_rvq_loss(z0_hat, ids, mask).backward()
    assert (z0_hat.grad[0, :, 4:] == 0).all()                             # padding frames: no gradient


def test_ce_rvq_closed_form_gradient_equals_autograd_of_the_formula():
    """CERVQLoss's hand-written backward against autograd through the naive formula, with padding, far-off
    predictions (the target's probability underflows: the loss stays exact and finite) and bf16 matrix products."""
    q = layered_rvq(R=3, V=16, D=4, scale=0.3)
    ids = torch.randint(0, 16, (2, 3, 9), generator=torch.Generator().manual_seed(3))
    mask = torch.ones(2, 9, dtype=torch.bool); mask[1, 6:] = False
    for scale in (0.5, 300.0):                                           # 300: softmax underflows for most targets
        base = q.decode(ids) + scale * torch.randn(2, 4, 9, generator=torch.Generator().manual_seed(4))
        a, b = base.clone().requires_grad_(), base.double().requires_grad_()     # the formula in float64
        fast = q.ce_rvq_loss(a, ids, mask)
        fast.backward()
        q64 = copy.deepcopy(q).double()
        naive = (ce_rvq_naive(q64, b[:1], ids[:1]) * 9 + ce_rvq_naive(q64, b[1:, :, :6], ids[1:, :, :6]) * 6) / 15
        naive.backward()
        assert torch.isfinite(fast) and abs(fast.item() / naive.item() - 1) < 1e-5, (fast.item(), naive.item())
        assert torch.allclose(a.grad.double(), b.grad, atol=1e-6 * float(b.grad.abs().max())), scale
        low = q.ce_rvq_loss(base, ids, mask, low_precision=True)
        assert torch.allclose(low, fast.detach(), rtol=2e-2), (low.item(), fast.item())


def test_perplexity_and_bad_inputs():
    q = layered_rvq(R=2, V=8, D=4)
    uniform = torch.arange(8).repeat(2, 2, 4)[:, :2]                     # (2, 2, 32): every code equally often
    assert torch.allclose(q.perplexity(uniform), torch.tensor([8.0, 8.0]))
    assert torch.allclose(q.perplexity(torch.zeros(1, 2, 10, dtype=torch.long)), torch.ones(2))
    with pytest.raises(ValueError, match="in \\[0, 8\\)"):
        q.decode(torch.full((1, 2, 3), 8))
    with pytest.raises(ValueError, match="dimension"):
        q(torch.randn(1, 5, 3))


def test_kmeans_finds_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(50, 2, generator=g) for c in centers])
    found = kmeans(x, 3, generator=g)
    assert torch.cdist(centers, found).min(1).values.max() < 0.5
