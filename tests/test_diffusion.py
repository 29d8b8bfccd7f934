"""The VP SDE and the samplers (§3.2), checked against closed forms on a Gaussian toy where ẑ_0 is exact."""
import math

import pytest
import torch

import diffusion as D
from dataclasses import replace

from training.presets import preset

CFG = D.SDEConfig()
MU = torch.tensor([1.5, -0.5]).reshape(1, 2, 1)          # data z_0 ~ N(μ, s² I), per dimension
S = torch.tensor([0.5, 2.0]).reshape(1, 2, 1)


def a_t(t):
    return math.exp(-0.5 * D.int_beta(float(t), CFG))


def exact_denoiser(z_t, t):
    """E[z_0 | z_t] for Gaussian data: μ + a s² / (a² s² + Σ_t) (z_t − a μ), a = exp(−½∫β)."""
    a, sig = a_t(t), float(D.sigma2(t, CFG))
    return MU + a * S ** 2 / (a ** 2 * S ** 2 + sig) * (z_t - a * MU)


def exact_flow(z1):
    """The probability-flow ODE transports Gaussian marginals linearly: u = (z − a μ)/√v is constant along it,
    so the sampler's output ẑ_0(z_end, t_end) is known in closed form for every starting point z1."""
    v = lambda t: a_t(t) ** 2 * S ** 2 + float(D.sigma2(t, CFG))
    u = (z1 - a_t(1.0) * MU) / v(1.0).sqrt()
    z_end = a_t(CFG.t_end) * MU + v(CFG.t_end).sqrt() * u
    return exact_denoiser(z_end, CFG.t_end)


def test_schedule_integral():
    t = torch.linspace(0, 1, 10001)
    numeric = torch.cumulative_trapezoid(D.beta(t, CFG), t)
    assert torch.allclose(numeric, D.int_beta(t[1:], CFG), atol=1e-4)


@pytest.mark.parametrize("t_stop", [0.1, 0.5, 1.0])
def test_closed_form_marginal_matches_simulated_forward_sde(t_stop):
    """Euler–Maruyama on dz = −½β z dt + √β dw from a fixed z_0: empirical mean/variance = ρ(z_0, t), Σ_t."""
    g = torch.Generator().manual_seed(0)
    z0 = torch.tensor([2.0, -1.0, 0.0]).reshape(1, 3, 1)
    z = z0.repeat(20000, 1, 1)
    steps = 1000
    dt = t_stop / steps
    for k in range(steps):
        t = k * dt
        z = z - 0.5 * D.beta(t, CFG) * z * dt + math.sqrt(D.beta(t, CFG) * dt) * torch.randn(z.shape, generator=g)
    mean, var = z.mean(0, keepdim=True), z.var(0, keepdim=True)
    sig = D.sigma2(t_stop, CFG)
    assert torch.allclose(mean, D.rho(z0, t_stop, CFG), atol=4 * math.sqrt(sig / 20000) + 2e-3)
    assert torch.allclose(var, sig.expand_as(var), rtol=0.05)
    zt, _ = D.forward_noise(z0.repeat(20000, 1, 1), t_stop, CFG)               # closed-form sampling agrees
    assert torch.allclose(zt.mean(0, keepdim=True), mean, atol=0.05)


def test_marginal_by_hand_per_utterance_times_and_variance_preserving():
    """ρ and Σ_t at hand-computed points, with one t per utterance ((B,) broadcast over (B, D, T)); and the VP
    identity: the signal's squared scale exp(−∫β) plus Σ_t is 1 at every t (Σ_0 = 0, ρ(z_0, 0) = z_0)."""
    cfg = D.SDEConfig(beta_0=0.05, beta_1=20.0)
    z0 = torch.ones(3, 2, 4) * torch.tensor([1.0, -2.0, 0.5]).reshape(3, 1, 1)
    t = torch.tensor([0.0, 0.2, 1.0])
    ib = torch.tensor([0.0, 0.05 * 0.2 + 0.5 * 19.95 * 0.04, 0.05 + 0.5 * 19.95])   # β_0 t + ½(β_1 − β_0) t²
    r, s = D.rho(z0, t, cfg), D.sigma2(t, cfg, z0)
    assert r.shape == z0.shape and s.shape == (3, 1, 1)
    assert torch.allclose(r, torch.exp(-0.5 * ib).reshape(3, 1, 1) * z0, atol=1e-6)
    assert torch.allclose(s.flatten(), 1 - torch.exp(-ib), atol=1e-6)
    assert torch.allclose(r[0], z0[0]) and float(s[0]) == 0.0
    assert torch.allclose((r / z0) ** 2 + s, torch.ones_like(r), atol=1e-6)
    small = 0.05e-4 + 0.5 * 19.95e-8                                  # ∫β at t = 1e-4: Σ_t ≈ ∫β, in float32
    assert abs(float(D.sigma2(1e-4, cfg)) / small - 1) < 1e-3         # 1 − exp(−x) would lose digits: expm1


def test_score_from_true_z0_is_minus_eps_over_sigma():
    z0 = torch.randn(4, 3, 5)
    t = torch.tensor([0.01, 0.2, 0.6, 1.0])
    z_t, eps = D.forward_noise(z0, t, CFG)
    sig = D.sigma2(t, CFG, z0)
    assert torch.allclose(D.score_from_z0(z_t, z0, t, CFG), -eps / sig.sqrt(), atol=1e-4)


def test_score_from_exact_denoiser_is_the_marginal_score():
    """For Gaussian data, Σ_t⁻¹(ρ(E[z_0|z_t], t) − z_t) equals ∇log N(z_t; a μ, a² s² + Σ_t) exactly."""
    z_t, t = torch.randn(10, 2, 1) * 2, 0.3
    v = a_t(t) ** 2 * S ** 2 + float(D.sigma2(t, CFG))
    assert torch.allclose(D.score_from_z0(z_t, exact_denoiser(z_t, t), t, CFG), -(z_t - a_t(t) * MU) / v, atol=1e-5)


@pytest.mark.parametrize("name, steps, tol", [("ode", 150, 0.04), ("heun", 40, 0.03), ("ode", 20, 0.3)])
def test_ode_samplers_follow_the_exact_flow(name, steps, tol):
    z1 = torch.randn(2000, 2, 1, generator=torch.Generator().manual_seed(1))
    out = D.SAMPLERS[name](exact_denoiser, z1, D.time_grid(steps, CFG), CFG)
    assert (out - exact_flow(z1)).abs().max() < tol


def test_convergence_orders():
    """Doubling the steps halves Euler's error (first order) and quarters Heun's (second order)."""
    z1 = torch.randn(500, 2, 1, generator=torch.Generator().manual_seed(4))
    err = lambda name, n: (D.SAMPLERS[name](exact_denoiser, z1, D.time_grid(n, CFG), CFG) - exact_flow(z1)).abs().max()
    assert 1.7 < err("ode", 40) / err("ode", 80) < 2.3
    assert 3.2 < err("heun", 40) / err("heun", 80) < 4.8


def test_dpm_solver_converges_at_second_order_on_its_logsnr_grid():
    """DPM-Solver++(2M) is a second-order method in h = Δλ: doubling the steps quarters its error."""
    z1 = torch.randn(500, 2, 1, generator=torch.Generator().manual_seed(4))
    err = lambda n: (D.sample_dpm(exact_denoiser, z1, D.time_grid(n, CFG, spacing="logsnr"), CFG)
                     - exact_flow(z1)).abs().max()
    e20, e40, e80 = err(20), err(40), err(80)
    assert 3.2 < e20 / e40 < 4.8 and 3.2 < e40 / e80 < 4.8, (e20, e40, e80)
    assert e80 < 0.01


def test_dpm_solver_is_exact_when_the_data_prediction_is_constant():
    """With ẑ_0 ≡ c along the path the exponential integrator has nothing to approximate: z_t' = (σ'/σ) z_t −
    α'(e^{−h} − 1) c is the ODE's exact solution, so even 3 steps land where 2,000 Euler steps do."""
    c = torch.tensor([0.7, -1.2]).reshape(1, 2, 1)
    z1 = torch.randn(50, 2, 1, generator=torch.Generator().manual_seed(5))
    const = lambda z, t: c.expand_as(z)
    ts = D.time_grid(3, CFG, spacing="logsnr")
    last = lambda sampler, grid: sampler(lambda z, t: z if t == grid[-1] else const(z, t), z1, grid, CFG)
    assert torch.allclose(last(D.sample_dpm, ts), last(D.sample_euler_ode, D.time_grid(2000, CFG)), atol=2e-2)
    assert torch.allclose(last(D.sample_dpm, ts), last(D.sample_dpm, D.time_grid(50, CFG, spacing="logsnr")), atol=1e-5)


def test_logsnr_grid_and_network_evaluations():
    ts = D.time_grid(10, CFG, spacing="logsnr")
    lam = D.log_snr(ts, CFG)
    assert ts[0] == 1 and abs(ts[-1] - CFG.t_end) < 1e-7 and (ts.diff() < 0).all()
    assert torch.allclose(lam.diff(), lam.diff().mean().expand(10), rtol=1e-4)       # equal steps in λ
    with pytest.raises(ValueError, match="spacing"):
        D.time_grid(10, CFG, spacing="karras")
    for name, steps in (("ode", 7), ("heun", 7), ("dpm", 7), ("sde", 3)):
        calls = []
        D.SAMPLERS[name](lambda z, t: calls.append(t) or exact_denoiser(z, t), torch.zeros(2, 2, 1),
                         D.time_grid(steps, CFG, spacing=D.GRID_SPACING[name]), CFG, torch.Generator().manual_seed(0))
        assert len(calls) == D.network_evaluations(name, steps), name


def test_heun_survives_an_imperfect_denoiser():
    """A trained network is not the exact denoiser. Heun's corrector at t_end would divide its error by Σ_t ≈ 5e-5
    (the score); with the last step a plain Euler step, Heun stays as close to the fine solution as Euler with as
    many network calls (measured: the trapezoid all the way to t_end is 2-5x further off)."""
    noisy = lambda z, t: exact_denoiser(z, t) + 0.02 * torch.sin(7 * z)
    z1 = torch.randn(500, 2, 1, generator=torch.Generator().manual_seed(1))
    fine = D.sample_euler_ode(noisy, z1, D.time_grid(1000, CFG), CFG)
    for steps in (3, 5):
        assert (D.sample_heun(noisy, z1, D.time_grid(steps, CFG), CFG) - fine).abs().max() < 0.7


def test_euler_150_and_heun_40_agree_and_reach_the_data_distribution():
    z1 = torch.randn(4000, 2, 1, generator=torch.Generator().manual_seed(2))
    euler = D.sample_euler_ode(exact_denoiser, z1, D.time_grid(150, CFG), CFG)
    heun = D.sample_heun(exact_denoiser, z1, D.time_grid(40, CFG), CFG)
    assert (euler - heun).abs().max() < 0.05
    assert torch.allclose(heun.mean(0, keepdim=True), MU, atol=0.08)
    assert torch.allclose(heun.std(0, keepdim=True), S, rtol=0.05)


def test_sde_sampler_reaches_the_data_distribution_and_is_seeded():
    z1 = torch.randn(4000, 2, 1, generator=torch.Generator().manual_seed(3))
    run = lambda seed: D.sample_sde(exact_denoiser, z1, D.time_grid(150, CFG), CFG, torch.Generator().manual_seed(seed))
    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(a.mean(0, keepdim=True), MU, atol=0.1)
    assert torch.allclose(a.std(0, keepdim=True), S, rtol=0.06)


def test_start_noise_temperature_and_grid():
    z = D.start_noise((20000, 4, 2), CFG, torch.Generator().manual_seed(0))
    assert abs(z.var().item() - 1 / 1.44) < 0.02                            # N(0, τ⁻¹ I), τ = 1.2²
    ts = D.time_grid(150, CFG)
    assert len(ts) == 151 and ts[0] == 1 and abs(ts[-1] - CFG.t_end) < 1e-7 and (ts.diff() < 0).all()
    with pytest.raises(ValueError, match="at least 1"):
        D.time_grid(0, CFG)


# ----------------------------------------------------------------------------- the WaveNet denoiser (Fig. 4)
def tiny_wavenet(**kw):
    torch.manual_seed(0)
    net = D.WaveNet(replace(preset("tiny").model.denoiser, **kw)).eval()
    with torch.no_grad():                      # FiLM starts as the identity: make the prompt path matter
        for layer in net.layers:
            if layer.film is not None:
                layer.film.proj.weight.normal_(0, 0.5)
    return net


def wavenet_inputs(B=2, T=20, Tp=7):
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 15:] = False
    pmask = torch.ones(B, Tp, dtype=torch.bool)
    pmask[0, 5:] = False
    return (torch.randn(B, 16, T, generator=g), torch.tensor([0.3, 0.8]), torch.randn(B, 16, T, generator=g), mask,
            torch.randn(B, 16, Tp, generator=g), pmask)


def test_paper_wavenet_size():
    with torch.device("meta"):
        net = D.WaveNet(preset("paper").model.denoiser)
    n = sum(p.numel() for p in net.parameters())
    assert abs(n / 183e6 - 1) < 0.15, n
    assert sum(layer.film is not None for layer in net.layers) == 13          # Table 11: 13 attention layers


def test_wavenet_padding_changes_nothing():
    net = tiny_wavenet()
    z, t, c, mask, p, pmask = wavenet_inputs()
    out = net(z, t, c, mask, p, pmask)
    assert out.shape == z.shape and (out[1, :, 15:] == 0).all()
    z2, c2, p2 = z.clone(), c.clone(), p.clone()
    z2[1, :, 15:], c2[1, :, 15:], p2[0, :, 5:] = 9.0, -9.0, 50.0            # garbage in every padding
    assert torch.allclose(net(z2, t, c2, mask, p2, pmask), out, atol=1e-5)


def test_wavenet_ablation_switches_remove_their_pathway():
    z, t, c, mask, p, pmask = wavenet_inputs()
    full = tiny_wavenet()
    assert not torch.allclose(full(z, t, c, mask, p, pmask), full(z, t, c, mask, torch.randn_like(p), pmask))
    no_prompt = tiny_wavenet(use_prompt=False)
    assert not any("attn" in n or "film" in n or "query" in n for n, _ in no_prompt.named_parameters())
    out = no_prompt(z, t, c, mask)
    assert torch.equal(out, no_prompt(z, t, c, mask, torch.randn_like(p), pmask))   # prompt ignored entirely
    direct = tiny_wavenet(use_query_attention=False)
    assert direct.query is None
    out = direct(z, t, c, mask, p, pmask)
    assert not torch.allclose(out, direct(z, t, c, mask, torch.randn_like(p), pmask))
    p2 = p.clone(); p2[0, :, 5:] = 50.0                                     # attends to prompt frames: mask used
    assert torch.allclose(direct(z, t, c, mask, p2, pmask), out, atol=1e-5)


def test_wavenet_depends_on_time_and_condition_and_checks_inputs():
    net = tiny_wavenet()
    z, t, c, mask, p, pmask = wavenet_inputs()
    out = net(z, t, c, mask, p, pmask)
    assert not torch.allclose(out, net(z, t * 0.5, c, mask, p, pmask))
    assert not torch.allclose(out, net(z, t, torch.randn_like(c), mask, p, pmask))
    with pytest.raises(ValueError, match="prompt"):
        net(z, t, c, mask)
    with pytest.raises(ValueError, match="latent dimension"):
        net(torch.randn(2, 8, 20), t, c, mask, p, pmask)


def test_loss_terms_zero_at_truth_and_score_term_is_the_weighted_formula():
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(3, 4, 10, generator=g)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[2, 6:] = False
    t = D.sample_times(3, generator=g)
    assert (t >= 0.01).all() and (t <= 1).all()
    z_t, eps = D.forward_noise(z0, t, CFG)
    terms = D.diffusion_loss_terms(z0, z0, z_t, eps, t, CFG, mask)
    assert terms["data"] == 0 and terms["score"] < 1e-10
    z0_hat = z0 + 0.1 * torch.randn(z0.shape, generator=g)
    terms = D.diffusion_loss_terms(z0, z0_hat, z_t, eps, t, CFG, mask)
    # the paper's score term, written out, then weighted by λ(t) = Σ_t · min(1, γ / SNR(t))
    sig = D.sigma2(t, CFG, z0)
    snr = torch.exp(-D.int_beta(t, CFG))[:, None, None] / sig
    paper = (D.score_from_z0(z_t, z0_hat, t, CFG) - (D.rho(z0, t, CFG) - z_t) / sig) ** 2 * sig * (5 / snr).clamp(max=1)
    m = mask[:, None].float()
    assert torch.allclose(terms["score"], (paper * m).sum() / (m.sum() * 4), rtol=1e-4)
    assert torch.allclose(terms["data"], (((z0_hat - z0) ** 2) * m).sum() / (m.sum() * 4))
    garbage = z0_hat.clone(); garbage[2, :, 6:] = 1e3                     # padding frames change nothing
    assert torch.allclose(D.diffusion_loss_terms(z0, garbage, z_t, eps, t, CFG, mask)["data"], terms["data"])


def test_score_term_guard_keeps_it_bounded_near_t_min():
    """Relative to the data term, the paper's unweighted score term is SNR(t)/Σ_t (SNR = a²/Σ_t): ~4·10⁵ at t = 0.01.
    The guarded term is min(SNR(t), γ): at most γ = 5, and equal to the ε-prediction loss where SNR < γ."""
    z0 = torch.randn(1, 4, 50, generator=torch.Generator().manual_seed(0))
    z0_hat, mask = z0 + 0.01, torch.ones(1, 50, dtype=torch.bool)
    for t in (0.01, 0.1, 0.3, 0.5, 1.0):
        tt = torch.tensor([t])
        z_t, eps = D.forward_noise(z0, tt, CFG)
        terms = D.diffusion_loss_terms(z0, z0_hat, z_t, eps, tt, CFG, mask)
        snr = a_t(t) ** 2 / float(D.sigma2(tt, CFG))
        assert terms["score"] / terms["data"] == pytest.approx(min(snr, 5.0), rel=1e-3)
    assert a_t(0.01) ** 2 / float(D.sigma2(torch.tensor(0.01), CFG)) ** 2 > 1e5    # what the guard prevents


def test_row_generators_draw_each_row_alone():
    g = D.RowGenerators([1, 2], [5, 3])
    z = g.randn((2, 4, 6))
    assert z[0, :, 5:].abs().sum() == 0 and z[1, :, 3:].abs().sum() == 0       # nothing drawn for padding
    alone = D.RowGenerators([2], [3]).randn((1, 4, 3))
    assert torch.equal(z[1, :, :3], alone[0])                                 # row 1 does not see row 0
    assert not torch.equal(z[0, :, :3], z[1, :, :3])
    with pytest.raises(ValueError, match="streams"):
        g.randn((3, 4, 6))
    with pytest.raises(ValueError, match="seeds"):
        D.RowGenerators([1], [2, 3])


def test_source_aware_inversion_round_trip_and_closed_form():
    """Forward ODE (z_0 -> z_1), then the reverse ODE with the same denoiser, returns the source; z_1 itself is the
    exact flow's image of z_0 (u = (z − a μ)/√v constant along the flow)."""
    z0 = MU + S * torch.randn(1000, 2, 1, generator=torch.Generator().manual_seed(5))
    ts = D.time_grid(150, CFG)
    up = D.inversion_grid(150, CFG)
    assert up[0] == CFG.t_invert and up[-1] == 1.0 and bool((up[1:] > up[:-1]).all())
    z1 = D.invert_euler_ode(exact_denoiser, z0, up, CFG)
    v = lambda t: a_t(t) ** 2 * S ** 2 + float(D.sigma2(t, CFG))
    exact_z1 = a_t(1.0) * MU + v(1.0).sqrt() * (z0 - a_t(CFG.t_invert) * MU) / v(CFG.t_invert).sqrt()
    assert (z1 - exact_z1).abs().max() < 0.05
    back = D.sample_euler_ode(exact_denoiser, z1, ts, CFG)
    assert (back - z0).abs().max() < 0.08 and (back - z0).abs().mean() < 0.02
    with pytest.raises(ValueError, match="increase"):
        D.invert_euler_ode(exact_denoiser, z0, ts, CFG)
