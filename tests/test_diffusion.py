"""The VP SDE and the samplers (§3.2), checked against closed forms on a Gaussian toy where ẑ_0 is exact."""
import math

import pytest
import torch

import diffusion as D

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


@pytest.mark.parametrize("name, steps, tol", [("ode", 150, 0.04), ("heun", 20, 0.03), ("ode", 20, 0.3)])
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


def test_euler_150_and_heun_20_agree_and_reach_the_data_distribution():
    z1 = torch.randn(4000, 2, 1, generator=torch.Generator().manual_seed(2))
    euler = D.sample_euler_ode(exact_denoiser, z1, D.time_grid(150, CFG), CFG)
    heun = D.sample_heun(exact_denoiser, z1, D.time_grid(20, CFG), CFG)
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
