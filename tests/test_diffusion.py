"""Tests for diffusion.py: the identities, the schedules, Table 7, and the samplers on distributions whose exact
denoiser is known in closed form (so any error in the sampler shows up as wrong sample statistics)."""

import math

import numpy as np
import pytest
import torch

import diffusion as D


# --- identities and schedules -----------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", D.SCHEDULES)
def test_v_eps_x0_identities(schedule):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(64, 1, 50, generator=g), torch.randn(64, 1, 50, generator=g)
    t = torch.rand(64, generator=g).clamp(0.01, 0.99)
    alpha, sigma = D.alpha_sigma(t, schedule)
    x_t = alpha[:, None, None] * x0 + sigma[:, None, None] * eps
    for objective in D.OBJECTIVES:
        x0_hat, eps_hat = D.to_x0_eps(D.target(x0, eps, alpha, sigma, objective), x_t, alpha, sigma, objective)
        torch.testing.assert_close(x0_hat, x0, atol=2e-4, rtol=0)
        torch.testing.assert_close(eps_hat, eps, atol=2e-4, rtol=0)
    torch.testing.assert_close(D.eps_from_x0(x0, x_t, alpha, sigma), eps, atol=2e-4, rtol=0)


def test_schedule_end_points():
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    # App. A.1: the cosine schedule's log-SNR runs from +20 to -20.
    torch.testing.assert_close(D.logsnr(t, "cosine"), torch.tensor([20.0, -20.0], dtype=torch.float64))
    # Linear (DDPM beta 1e-4 -> 0.02): alpha_1^2 = exp(-(0.1 + 9.95)), sigma_0 = 0.
    alpha, sigma = D.alpha_sigma(t, "linear")
    assert sigma[0] == 0 and alpha[0] == 1
    assert math.isclose(float(alpha[1] ** 2), math.exp(-10.05), rel_tol=1e-9)
    # The discrete DDPM schedule it stands for: prod(1 - beta_i) over 1000 steps.
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    assert math.isclose(float(torch.prod(1 - betas)), float(alpha[1] ** 2), rel_tol=0.1)  # 4.04e-5 vs 4.32e-5
    for schedule in D.SCHEDULES:
        a, s = D.alpha_sigma(torch.linspace(0, 1, 101, dtype=torch.float64), schedule)
        torch.testing.assert_close(a**2 + s**2, torch.ones(101, dtype=torch.float64))
        assert (torch.diff(D.logsnr(torch.linspace(0.01, 1, 100), schedule)) < 0).all()


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown noise schedule"):
        D.alpha_sigma(torch.zeros(1), "quadratic")
    with pytest.raises(ValueError, match="unknown objective"):
        D.target(torch.zeros(1), torch.zeros(1), torch.ones(1), torch.zeros(1), "x")
    with pytest.raises(ValueError, match="unknown step schedule"):
        D.step_schedule("vocoder", "middle")
    with pytest.raises(ValueError, match="unknown model"):
        D.step_schedule("decoder", "front")
    with pytest.raises(ValueError, match="summing to 1"):
        D.sample(lambda x, t: x, (1, 1, 1), step_sizes=[0.5, 0.2])


# --- Table 7 ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model,kind,length", [
    ("waveform-generator", "front", 1000), ("waveform-generator", "back", 1000), ("waveform-generator", "uniform", 1000),
    ("waveform-cascader", "front", 800), ("waveform-cascader", "back", 800), ("waveform-cascader", "uniform", 800),
    ("superres", "front", 800), ("spectrogram-generator", "front", 2000), ("spectrogram-generator", "back", 2000),
    ("spectrogram-generator", "uniform", 1000), ("spectrogram-generator", "back-eval", 1000),
    ("vocoder", "front", 100), ("vocoder", "back", 100), ("vocoder", "uniform", 100)])
def test_table7_lengths_and_sums(model, kind, length):
    sizes = D.step_schedule(model, kind)
    assert len(sizes) == length
    assert math.isclose(sum(sizes), 1.0, abs_tol=1e-9)


def test_table7_matches_fig4():
    # Fig. 4: the waveform generator's front-heavy list reaches t = 0.01/0.05/0.2/0.5 after 200/600/800/950 steps;
    # the spectrogram generator's back-heavy eval list reaches 0.3/0.6/0.8 after 50/200/500 steps.
    cum = torch.cumsum(torch.tensor(D.step_schedule("waveform-generator", "front"), dtype=torch.float64), 0)
    for steps, t in [(200, 0.01), (600, 0.05), (800, 0.2), (950, 0.5)]:
        assert math.isclose(float(cum[steps - 1]), t, abs_tol=1e-9)
    cum = torch.cumsum(torch.tensor(D.step_schedule("spectrogram-generator", "back-eval"), dtype=torch.float64), 0)
    for steps, t in [(50, 0.3), (200, 0.6), (500, 0.8)]:
        assert math.isclose(float(cum[steps - 1]), t, abs_tol=1e-9)


def test_rescale_is_fig3_rule():
    # 1000 -> 20 steps divides every segment evenly: counts scale by 1/50 and sizes by 50.
    expected = [0.01 / 4] * 4 + [0.04 / 8] * 8 + [0.15 / 4] * 4 + [0.3 / 3] * 3 + [0.5 / 1]
    got = D.step_schedule("waveform-generator", "front", steps=20)
    assert len(got) == 20
    for a, b in zip(got, expected):
        assert math.isclose(a, b, rel_tol=1e-9)
    assert len(D.step_schedule("superres", "front", steps=2)) == 2
    with pytest.raises(ValueError, match="positive integer"):
        D.step_schedule("superres", "front", steps=0)


# --- samplers on closed-form denoisers ----------------------------------------------------------------------------

class Mixture:
    """1-D mixture of Gaussians with a closed-form posterior mean E[x0 | x_t]."""

    def __init__(self, weights, means, std):
        self.w, self.m, self.s = torch.tensor(weights), torch.tensor(means), std

    def draw(self, n, g):
        k = torch.multinomial(self.w, n, replacement=True, generator=g)
        return self.m[k] + self.s * torch.randn(n, generator=g)

    def x0_hat(self, x_t, alpha, sigma):
        # Component k: x_t ~ N(alpha m_k, alpha^2 s^2 + sigma^2); E[x0 | x_t, k] = m_k + alpha s^2 (x_t - alpha m_k)/var.
        a = alpha[:, None, None, None].double()
        sg = sigma[:, None, None, None].double()
        x = x_t[..., None].double()
        var = a**2 * self.s**2 + sg**2
        m = self.m.double()
        logp = torch.log(self.w.double()) - 0.5 * (x - a * m) ** 2 / var - 0.5 * torch.log(var)
        resp = torch.softmax(logp, dim=-1)
        cond_mean = m + a * self.s**2 * (x - a * m) / var
        return (resp * cond_mean).sum(-1).float()

    def model_fn(self, schedule, objective):
        def fn(x_t, t):
            alpha, sigma = D.alpha_sigma(t, schedule)
            x0 = self.x0_hat(x_t, alpha, sigma)
            a, s = alpha[:, None, None], sigma[:, None, None]
            eps = (x_t - a * x0) / s
            return eps if objective == "eps" else a * eps - s * x0
        return fn


N = 4000


@pytest.mark.parametrize("objective", D.OBJECTIVES)
@pytest.mark.parametrize("sampler,gamma", [("ancestral", 0.0), ("ancestral", 1.0), ("ddim", None)])
@pytest.mark.parametrize("schedule", D.SCHEDULES)
def test_sampler_reproduces_gaussian(objective, sampler, gamma, schedule):
    # 400 steps: with fewer, the discretisation itself biases the spread (gamma = 0 narrows it, gamma = 1 widens
    # it; at 100 uniform steps on the linear schedule the std is 0.275 and 0.311), which is not what we test here.
    data = Mixture([1.0], [0.4], 0.3)
    out = D.SAMPLERS[sampler](data.model_fn(schedule, objective), (N, 1, 1), step_sizes=[1 / 400] * 400,
                              schedule=schedule, objective=objective, gamma=gamma,
                              generator=torch.Generator().manual_seed(1)).flatten()
    # Standard errors: mean 0.3/sqrt(4000) = 0.005, std about 0.3/sqrt(8000) = 0.0034.
    assert abs(out.mean().item() - 0.4) < 0.02
    assert abs(out.std().item() - 0.3) < 0.015


@pytest.mark.parametrize("objective", D.OBJECTIVES)
@pytest.mark.parametrize("sampler,gamma", [("ancestral", 0.0), ("ancestral", 1.0), ("ddim", None)])
def test_sampler_reproduces_two_mode_mixture(objective, sampler, gamma):
    data = Mixture([0.3, 0.7], [-0.6, 0.5], 0.1)
    out = D.SAMPLERS[sampler](data.model_fn("cosine", objective), (N, 1, 1),
                              step_sizes=D.step_schedule("waveform-generator", "front", steps=100),
                              schedule="cosine", objective=objective, gamma=gamma,
                              generator=torch.Generator().manual_seed(2)).flatten()
    left, right = out[out < 0], out[out >= 0]
    assert abs(len(left) / N - 0.3) < 0.03                       # binomial s.e. 0.007
    assert abs(left.mean().item() + 0.6) < 0.02 and abs(right.mean().item() - 0.5) < 0.02
    assert abs(left.std().item() - 0.1) < 0.015 and abs(right.std().item() - 0.1) < 0.015


@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_sampler_started_part_way_by_an_oracle_hands_back_the_clean_signal(gamma):
    # A denoiser that knows x0 exactly: every x0_hat is x0, so from x0 noised to t0 the posterior means stay on x0's
    # path and the last step returns x0 itself. The model must only be asked at times in (0, t0].
    x0 = torch.randn(3, 1, 40, generator=torch.Generator().manual_seed(4))
    seen = []

    def oracle(x_t, t):
        seen.append(float(t[0]))
        alpha, sigma = D.alpha_sigma(t, "linear")
        a, s = alpha[:, None, None], sigma[:, None, None]
        return a * (x_t - a * x0) / s - s * x0                   # v for eps = (x_t - a x0) / s
    alpha, sigma = D.alpha_sigma(torch.tensor(0.5), "linear")
    start = alpha * x0 + sigma * torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
    out = D.sample(oracle, tuple(x0.shape), step_sizes=[0.25] * 4, schedule="linear", gamma=gamma,
                   generator=torch.Generator().manual_seed(6), start=(start, 0.5))
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=0)
    assert seen == pytest.approx([0.5, 0.375, 0.25, 0.125])
    with pytest.raises(ValueError, match="outside"):
        D.sample(oracle, tuple(x0.shape), step_sizes=[1.0], start=(start, 1.5))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0])
def test_gamma_interpolates_the_log_variance(gamma):
    # One ancestral step from t = 1 to s = 0.5 with a "denoiser" that returns x0_hat = x_t; the last step then hands
    # back x_0.5 itself. Var(x_0.5) = coef^2 Var(x_1) + exp(logvar), with eq. 4's log-variance interpolation.
    schedule = "cosine"                            # sigma_0.5^2 = 0.5 vs sigma_1^2 = 1: gammas differ clearly

    def identity_x0(x_t, t):                       # v such that alpha x_t - sigma v = x_t
        alpha, sigma = D.alpha_sigma(t, schedule)
        return ((alpha - 1) / sigma)[:, None, None] * x_t
    out = D.sample(identity_x0, (20000, 1, 1), step_sizes=[0.5, 0.5], schedule=schedule, gamma=gamma,
                   generator=torch.Generator().manual_seed(3))
    (a_t, s_t), (a_s, s_s) = [D.alpha_sigma(torch.tensor(v, dtype=torch.float64), schedule) for v in (1.0, 0.5)]
    r = torch.exp(D.logsnr(torch.tensor(1.0, dtype=torch.float64), schedule)
                  - D.logsnr(torch.tensor(0.5, dtype=torch.float64), schedule))
    coef = r * a_s / a_t + (1 - r) * a_s
    var = torch.exp((1 - gamma) * torch.log((1 - r) * s_s**2) + gamma * torch.log((1 - r) * s_t**2))
    assert math.isclose(out.var().item(), float(coef**2 + var), rel_tol=0.04)   # s.e. of a variance: 1%
    again = D.sample(identity_x0, (20000, 1, 1), step_sizes=[0.5, 0.5], schedule=schedule, gamma=gamma,
                     generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, again)                 # one seed, one sample


# --- loss, guidance, clipping, corruption -----------------------------------------------------------------------

def test_sigma_weight_is_the_same_quantity_in_both_objectives():
    # The paper's sigma weight means sigma^2 ||eps_hat - eps||^2; with the same t and noise, the v objective must
    # report the same number for the same denoiser.
    data = Mixture([0.5, 0.5], [-0.5, 0.5], 0.2)
    x0 = data.draw(256, torch.Generator().manual_seed(4))[:, None, None]
    losses = {}
    for objective in D.OBJECTIVES:
        losses[objective], _, _ = D.diffusion_loss(data.model_fn("linear", objective), x0, schedule="linear",
                                                   objective=objective, weight="sigma",
                                                   generator=torch.Generator().manual_seed(5))
    assert math.isclose(losses["v"].item(), losses["eps"].item(), rel_tol=1e-3)
    with pytest.raises(ValueError, match="unknown loss weight"):
        D.diffusion_loss(data.model_fn("linear", "v"), x0, schedule="linear", weight="snr")


def test_sigma_floor_weight_is_alpha_squared_with_a_floor_on_the_x0_error():
    # On the x0 error the sigma weight is alpha^2; sigma-floor is max(alpha^2, 1/4). A denoiser that predicts
    # x0_hat = 0 has x0 error ||x0||^2 whatever t, so the per-example loss divided by it is the weight itself.
    x0 = torch.randn(512, 1, 16, generator=torch.Generator().manual_seed(0))
    zero_x0 = lambda x_t, t: D.target(torch.zeros_like(x_t), x_t / D.alpha_sigma(t, "linear")[1][:, None, None],
                                      *D.alpha_sigma(t, "linear"), "v")         # v for x0_hat = 0: eps = x_t / sigma
    _, per_example, t = D.diffusion_loss(zero_x0, x0, schedule="linear", weight="sigma-floor",
                                         generator=torch.Generator().manual_seed(1))
    alpha, _ = D.alpha_sigma(t, "linear")
    x0_error = x0.pow(2).reshape(512, -1).mean(dim=1)
    keep = t > 0.01                                                  # sigma -> 0 at t = 0: the ratio is ill-posed
    torch.testing.assert_close(per_example[keep] / x0_error[keep], (alpha[keep] ** 2).clamp(min=0.25),
                               rtol=1e-3, atol=1e-5)
    with pytest.raises(ValueError, match="v objective"):
        D.diffusion_loss(zero_x0, x0, schedule="linear", objective="eps", weight="sigma-floor")


def test_coloured_noise_enters_the_loss_target_and_the_sampler():
    """With noise coloured by a linear map (the vocoder's specgrad form), the v target is alpha n - sigma x0 for the
    coloured n, and the sampler colours x_1 and every step's fresh noise. A map that zeroes the noise makes both
    exact: v = -sigma x0, so a model predicting v = 0 has loss sigma^2 mean(x0^2) per example, and a sampler whose
    model predicts v = 0 (x0_hat = alpha x_t) from x_1 = 0 adds nothing at any step. The whitening acts on the error
    before squaring."""
    x0 = torch.randn(64, 1, 32, generator=torch.Generator().manual_seed(0))
    zero = lambda x_t, t: torch.zeros_like(x_t)
    silent = lambda z: 0 * z
    _, per_example, t = D.diffusion_loss(zero, x0, schedule="linear", generator=torch.Generator().manual_seed(1),
                                         shape_noise=silent)
    sigma = D.alpha_sigma(t, "linear")[1]
    torch.testing.assert_close(per_example, sigma**2 * x0.pow(2).reshape(64, -1).mean(dim=1))
    _, white, _ = D.diffusion_loss(zero, x0, schedule="linear", generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(white, per_example)                    # white noise: a different target
    _, doubled, _ = D.diffusion_loss(zero, x0, schedule="linear", generator=torch.Generator().manual_seed(1),
                                     shape_noise=silent, whiten=lambda e: 2 * e)
    torch.testing.assert_close(doubled, 4 * per_example)
    seen = []

    def record(x_t, t):
        seen.append(x_t.clone())
        return torch.zeros_like(x_t)
    D.sample(record, (2, 1, 32), step_sizes=[0.5, 0.5], schedule="linear", generator=torch.Generator().manual_seed(2),
             shape_noise=silent)
    assert len(seen) == 2 and not seen[0].any() and not seen[1].any()
    seen.clear()
    D.sample(record, (2, 1, 32), step_sizes=[0.5, 0.5], schedule="linear", generator=torch.Generator().manual_seed(2))
    assert seen[1].abs().min() > 0                                   # white noise: the step adds some


def test_classifier_free_guidance_formula():
    def fn(x, t, drop):
        return torch.where(drop[:, None, None], torch.full_like(x, 2.0), torch.full_like(x, 5.0))
    x, t = torch.zeros(3, 1, 4), torch.full((3,), 0.5)
    assert torch.allclose(D.classifier_free_guidance(fn, 10.0)(x, t), torch.full_like(x, 2.0 + 10 * 3.0))
    assert torch.allclose(D.classifier_free_guidance(fn, 1.0)(x, t), torch.full_like(x, 5.0))


def test_dynamic_clip():
    x = torch.linspace(-1, 1, 1000).reshape(1, 1, 1000)
    assert torch.equal(D.dynamic_clip(x, 0.995), x)                  # inside [-1, 1]: untouched
    y = D.dynamic_clip(3 * x, 0.995)
    assert y.abs().max() <= 1.0 and y.abs().max() > 0.99
    assert torch.equal(torch.sign(y), torch.sign(3 * x))
    # The threshold is the 99.5th percentile of |x0| (Imagen's s), found here by sorting with numpy instead.
    values = np.sort(np.abs(3 * x.numpy().ravel()))
    s = values[round(0.995 * values.size) - 1]
    np.testing.assert_allclose(y.numpy().ravel(), np.clip(3 * x.numpy().ravel(), -s, s) / s, rtol=1e-6)


def test_conditioning_corruption():
    g = torch.Generator().manual_seed(6)
    const = torch.full((4, 1, 300), 0.7)
    torch.testing.assert_close(D.blur_1d(const, torch.full((4,), 3.0)), const)  # blur keeps a constant
    alternating = torch.tensor([1.0, -1.0]).repeat(150).reshape(1, 1, 300)
    assert D.blur_1d(alternating, torch.tensor([2.0]))[..., 20:-20].abs().max() < 0.01  # removes Nyquist
    spec = torch.randn(2, 80, 100, generator=g)
    assert D.blur_2d(spec, torch.tensor([1.0, 1.0])).std() < spec.std()
    # Noise to level u: u = 0 leaves the linear schedule's input untouched; variance is alpha^2 var + sigma^2.
    x = torch.randn(2, 1, 20000, generator=g) * 0.5
    torch.testing.assert_close(D.noise_condition(x, torch.zeros(2), schedule="linear", generator=g), x)
    y = D.noise_condition(x, torch.full((2,), 0.5), schedule="linear", generator=g)
    a, s = D.alpha_sigma(torch.tensor(0.5), "linear")
    assert math.isclose(y.var().item(), (a**2 * 0.25 + s**2).item(), rel_tol=0.05)
    out, u = D.corrupt_condition(x, t_max=0.5, schedule="linear", generator=g)
    assert out.shape == x.shape and ((u >= 0) & (u <= 0.5)).all()
