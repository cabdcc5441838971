"""Continuous-time Gaussian diffusion, as Noise2Music uses it (Sec. 3.1, App. A, Tables 2, 3 and 7).

Everything here is model-agnostic: a "model function" maps a noisy signal x_t and its time t to a prediction.
The five cascade stages all share this file; only their settings differ (Table 2, Table 3).

    forward process  q(x_t | x) = N(alpha_t x, sigma_t^2 I),   alpha_t^2 + sigma_t^2 = 1      (App. A)
    log-SNR          lambda_t = log(alpha_t^2 / sigma_t^2)
    time             t in [0, 1]; t = 0 is clean data, t = 1 is (almost) pure noise

Contents, in the order a reader needs them:
    1. noise schedules      alpha_sigma(t, schedule), logsnr(t, schedule)
    2. parameterizations    v (this project's default) and eps (the paper's), with the conversions
    3. the training loss    diffusion_loss(...) with the "simplified" and "sigma" weights of Table 2
    4. conditioning corruption for the cascaders (Sec. 4.1): blur, then noise to level u
    5. guidance, clipping   classifier-free guidance (Sec. 3.1) and dynamic clipping of x0
    6. samplers             sample(...) (the paper's eq. 4, stochasticity gamma) and sample_ddim(...) (an extra)
    7. step schedules       the Table 7 step-size lists and their rescaling to N steps (Fig. 3)

Shapes: signals are (B, C, T) (any trailing shape works); times are (B,) float tensors.
"""

import math

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------------------------
# 1. Noise schedules (App. A.1)
# ---------------------------------------------------------------------------------------------------------------

# Cosine: alpha_t = cos(a t + b), with a and b chosen so that the log-SNR runs from +20 at t = 0 to -20 at t = 1.
# Since lambda = log(alpha^2 / sigma^2) = -2 log tan(a t + b), lambda(0) = 20 needs tan(b) = e^-10 and
# lambda(1) = -20 needs tan(a + b) = e^10.
_COS_B = math.atan(math.exp(-10.0))
_COS_A = math.atan(math.exp(10.0)) - _COS_B

# "Linear": the PDF says sigma_t^2 rises linearly from 1e-4 to 0.02, which read literally would leave t = 1 almost
# noise-free. It is the DDPM linear *beta* schedule (PAPER_NOTES §3.2): beta(t) = 0.1 + 19.9 t in continuous time
# (1e-4 .. 0.02 per step over 1000 steps), so log alpha_t^2 = -integral_0^t beta = -(0.1 t + 9.95 t^2).
_LIN_B0, _LIN_B1 = 0.1, 19.9

SCHEDULES = ("cosine", "linear")


def _check_schedule(schedule):
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {schedule!r}; use one of {', '.join(SCHEDULES)}.")


def _as_time(t):
    """Times as a float tensor; float64 stays float64 (the samplers compute their coefficients in float64)."""
    if torch.is_tensor(t) and t.is_floating_point():
        return t
    return torch.as_tensor(t, dtype=torch.float32)


def alpha_sigma(t, schedule="cosine"):
    """(alpha_t, sigma_t) for a tensor of times t in [0, 1] (t = 0 clean, t = 1 noise); App. A.1."""
    _check_schedule(schedule)
    t = _as_time(t)
    if schedule == "cosine":
        angle = _COS_A * t + _COS_B
        return torch.cos(angle), torch.sin(angle)
    # linear (DDPM beta): alpha^2 = exp(-g), sigma^2 = 1 - exp(-g) = -expm1(-g), computed without cancellation.
    g = _LIN_B0 * t + 0.5 * _LIN_B1 * t**2
    return torch.exp(-0.5 * g), torch.sqrt(-torch.expm1(-g))


def logsnr(t, schedule="cosine"):
    """lambda_t = log(alpha_t^2 / sigma_t^2). +inf at t = 0 for the linear schedule (sigma_0 = 0)."""
    _check_schedule(schedule)
    t = _as_time(t)
    if schedule == "cosine":
        return -2.0 * torch.log(torch.tan(_COS_A * t + _COS_B))
    g = _LIN_B0 * t + 0.5 * _LIN_B1 * t**2
    return -torch.log(torch.expm1(g))


def _bcast(a, x):
    """(B,) -> (B, 1, 1, ...) to broadcast against x of shape (B, ...)."""
    return a.reshape(a.shape + (1,) * (x.dim() - a.dim())).to(x.dtype)


# ---------------------------------------------------------------------------------------------------------------
# 2. Parameterizations
# ---------------------------------------------------------------------------------------------------------------
# With x_t = alpha x + sigma eps:
#   eps-prediction (the paper, eq. 1):   x_hat = (x_t - sigma eps_hat) / alpha
#   v-prediction (Salimans & Ho 2022):   v := alpha eps - sigma x.  Then, using alpha^2 + sigma^2 = 1,
#       alpha x_t - sigma v = alpha^2 x + alpha sigma eps - sigma alpha eps + sigma^2 x = x
#       sigma x_t + alpha v = sigma alpha x + sigma^2 eps + alpha^2 eps - alpha sigma x = eps
#   so x_hat = alpha x_t - sigma v_hat and eps_hat = sigma x_t + alpha v_hat, both well conditioned at either end
#   of the schedule (eps-prediction divides by alpha, which is 4.5e-5 at t = 1 on the cosine schedule).
# [choice] v is this project's default (the design card); eps is the paper's and is kept for comparison.

OBJECTIVES = ("v", "eps")


def _check_objective(objective):
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}.")


def target(x0, noise, alpha, sigma, objective):
    """What the network is trained to output for the clean signal x0 and the noise that made x_t."""
    _check_objective(objective)
    if objective == "eps":
        return noise
    return _bcast(alpha, x0) * noise - _bcast(sigma, x0) * x0


def to_x0_eps(pred, x_t, alpha, sigma, objective):
    """Network output -> (x0_hat, eps_hat), following the identities above."""
    _check_objective(objective)
    a, s = _bcast(alpha, x_t), _bcast(sigma, x_t)
    if objective == "v":
        return a * x_t - s * pred, s * x_t + a * pred
    return (x_t - s * pred) / a, pred


def eps_from_x0(x0, x_t, alpha, sigma):
    """eps_hat implied by an x0_hat: x_t = alpha x0 + sigma eps.  Undefined at sigma = 0 (only t = 0)."""
    return (x_t - _bcast(alpha, x_t) * x0) / _bcast(sigma, x_t)


# ---------------------------------------------------------------------------------------------------------------
# 3. The training loss (eq. 1, Table 2)
# ---------------------------------------------------------------------------------------------------------------

WEIGHTS = ("simplified", "sigma", "sigma-floor")
# [choice, issue 13] "sigma-floor" is the sigma weight with its high-noise end held up. On the x0 error the sigma
# weight is alpha^2 (see below), under 2.5e-3 at log-SNR < -6, so the spectrogram generator barely trained the
# steps that start every sample; the plain v loss (x0 weight 1 + SNR) trains them but gives low noise 27x the
# weight of log-SNR 0. The floor 1/4 takes the plain v loss's balance at high noise (half the weight of log-SNR 0)
# and the sigma weight's at low noise (twice it). On the v error: w = sigma^2 max(alpha^2, 1/4).
# Measured (README, "How they do"): the sigma-weighted spectrogram generator ignored its caption, which only
# matters at high noise; continued with sigma-floor it learned to read it (stagecheck.py, make eval).
SIGMA_FLOOR = 0.25


def diffusion_loss(model_fn, x0, *, schedule, objective="v", weight="simplified", generator=None, shape_noise=None,
                   whiten=None):
    """Mean over the batch of w_t * ||prediction - target||^2 (per-example mean over the signal), with t ~ U[0, 1].

    model_fn(x_t, t) -> prediction in `objective`'s parameterization.  x0: (B, ...).
    weight "simplified" (w = 1, Table 2) is a plain MSE on the objective's own target. weight "sigma" is the paper's
    sigma-weighted loss w = sigma_t^2 on the eps error (Sec. 4.1, "crucial" for the spectrogram generator); since
    eps_hat - eps = alpha (v_hat - v), it becomes sigma_t^2 alpha_t^2 on the v error, so both objectives optimise
    the same quantity.  Returns (loss, per-example losses (B,), t (B,)).
    shape_noise: None, or a linear map applied to the white noise (the vocoder's specgrad form: noise coloured like
    the signal, SpecGrad); every identity above holds with the coloured noise in eps's place. whiten: None, or a
    map applied to prediction - target before squaring (SpecGrad's loss weighs the error by the filter's inverse).
    """
    if weight not in WEIGHTS:
        raise ValueError(f"unknown loss weight {weight!r}; use one of {', '.join(WEIGHTS)}.")
    if weight == "sigma-floor" and objective != "v":
        raise ValueError("the sigma-floor weight is defined for the v objective; use weight sigma with eps.")
    batch = x0.shape[0]
    t = torch.rand(batch, generator=generator, device=_gen_device(generator)).to(x0.device)   # (B,)
    noise = randn(x0.shape, generator, x0.device, x0.dtype)
    if shape_noise is not None:
        noise = shape_noise(noise)
    alpha, sigma = alpha_sigma(t, schedule)
    x_t = _bcast(alpha, x0) * x0 + _bcast(sigma, x0) * noise                                   # forward process
    pred = model_fn(x_t, t)
    error = pred.float() - target(x0, noise, alpha, sigma, objective).float()
    per_example = (error if whiten is None else whiten(error)).pow(2)
    per_example = per_example.reshape(batch, -1).mean(dim=1)                                 # (B,)
    if weight == "sigma":
        w = sigma**2 if objective == "eps" else (sigma * alpha) ** 2
        per_example = per_example * w.to(per_example.device)
    elif weight == "sigma-floor":                       # x0 error = sigma^2 v error, weighted max(alpha^2, 1/4)
        per_example = per_example * (sigma**2 * (alpha**2).clamp(min=SIGMA_FLOOR)).to(per_example.device)
    return per_example.mean(), per_example, t


# ---------------------------------------------------------------------------------------------------------------
# Randomness: one torch.Generator threads through everything, so that a seed reproduces a sample.
# ---------------------------------------------------------------------------------------------------------------

def _gen_device(generator):
    return generator.device if generator is not None else None


def randn(shape, generator, device, dtype=torch.float32):
    """Standard normal noise drawn on the generator's own device, then moved: the same seed gives the same noise
    whichever device runs the model."""
    z = torch.randn(shape, generator=generator, device=_gen_device(generator), dtype=torch.float32)
    return z.to(device=device, dtype=dtype)


# ---------------------------------------------------------------------------------------------------------------
# 4. Conditioning corruption for the cascaders (Sec. 4.1, following CDM / Ho et al. 2022b)
# ---------------------------------------------------------------------------------------------------------------
# During training the low-fidelity conditioning (upsampled audio, or the vocoder's spectrogram) is degraded so that
# the cascader learns to repair what an imperfect earlier stage produces: a Gaussian blur, then forward-process
# noise to a level u ~ U[0, t_max] (t_max = 0.5 for the waveform cascader, 1.0 for the vocoder and SR, Tab. 2).
# [choice] The paper does not say how blur and noise combine, nor whether u is given to the network: we blur first,
# then noise, and feed u to the network (CDM / Imagen practice), which lets sampling pick a level u (a flag).


def gaussian_kernel(std, size):
    """(B,) stds -> (B, size) normalised Gaussian kernels; odd sizes are centred on a tap."""
    pos = torch.arange(size, dtype=torch.float32, device=std.device) - (size - 1) / 2
    k = torch.exp(-0.5 * (pos[None, :] / std[:, None]) ** 2)
    return k / k.sum(dim=1, keepdim=True)


def blur_1d(x, std, size=11):
    """Per-example Gaussian blur along time.  x: (B, C, T), std: (B,).
    Sec. 4.1 says kernel size 10. [choice] We use 11 taps, offsets -5..5: an even kernel cannot be centred on a
    sample, so it would shift the signal by half a sample and, at the smallest std, average two neighbours instead
    of leaving the signal alone."""
    b, c, length = x.shape
    k = gaussian_kernel(std.float(), size).to(x.dtype)                         # (B, size)
    k = k.repeat_interleave(c, dim=0)[:, None, :]                              # (B*C, 1, size): one per channel
    left = (size - 1) // 2
    xp = F.pad(x.reshape(1, b * c, length), (left, size - 1 - left), mode="replicate")
    return F.conv1d(xp, k, groups=b * c).reshape(b, c, length)


def blur_2d(x, std, size=5):
    """Per-example Gaussian blur of a spectrogram over (mel, time).  x: (B, M, T), std: (B,).  Sec. 4.1: 5x5."""
    # A 2D Gaussian is separable: blur along time, then along the mel axis.
    x = blur_1d(x, std, size)
    return blur_1d(x.transpose(1, 2), std, size).transpose(1, 2)


BLUR_STD = {"1d": (0.1, 5.0), "2d": (0.2, 1.0)}   # Sec. 4.1: waveform cascader; vocoder (5x5 on the spectrogram)


def corrupt_condition(cond, *, t_max, schedule, generator=None, blur="1d", blur_prob=0.5, blur_std=None):
    """Blur, then noise the conditioning to a random level u ~ U[0, t_max].  cond: (B, C, T).

    blur: "1d" (waveforms; std ~ U[0.1, 5.0]), "2d" (spectrograms; 5x5, std ~ U[0.2, 1.0]), or None.
    blur_std: (lo, hi) to replace the paper's std range (a stage whose rate makes the paper's blur too strong).
    Returns (corrupted cond, u of shape (B,)).  [choice] stds are drawn uniformly (the paper gives only the
    range), and only a random `blur_prob` of the examples is blurred, so that the network also learns from the
    sharp conditioning it is given at sampling time.
    """
    batch, dev = cond.shape[0], _gen_device(generator)
    if blur is not None:
        lo, hi = blur_std or BLUR_STD[blur]
        std = (lo + (hi - lo) * torch.rand(batch, generator=generator, device=dev)).to(cond.device)
        chosen = (torch.rand(batch, generator=generator, device=dev) < blur_prob).to(cond.device)
        if chosen.any():                          # the draws above happen either way: the random stream is the same
            blurred = blur_1d(cond, std) if blur == "1d" else blur_2d(cond, std)
            cond = torch.where(chosen.reshape(-1, *([1] * (cond.dim() - 1))), blurred, cond)
    u = (t_max * torch.rand(batch, generator=generator, device=dev)).to(cond.device)
    return noise_condition(cond, u, schedule=schedule, generator=generator), u


def noise_condition(cond, u, *, schedule, generator=None):
    """Forward-process noise to level u: alpha_u cond + sigma_u z.  Used in training and, with a fixed u, at sampling."""
    alpha, sigma = alpha_sigma(u, schedule)
    z = randn(cond.shape, generator, cond.device, cond.dtype)
    return _bcast(alpha.to(cond.device), cond) * cond + _bcast(sigma.to(cond.device), cond) * z


# ---------------------------------------------------------------------------------------------------------------
# 5. Guidance and clipping (Sec. 3.1)
# ---------------------------------------------------------------------------------------------------------------

def classifier_free_guidance(model_fn, scale):
    """Wrap model_fn(x_t, t, drop_text) -> pred into fn(x_t, t) = pred_u + scale * (pred_c - pred_u).

    Sec. 3.1 writes eps~ = w eps_c + (1 - w) eps_u; the same combination applied to v gives the same eps~ and x0~,
    because v, eps and x0 are linear in each other at fixed t.  drop_text: (B,) bool, True = text hidden (the
    network zeroes its cross-attention output, exactly as in training's 10% dropout).  The conditional and
    unconditional passes share one forward call on a doubled batch.  scale = 1 is the plain conditional model.
    """
    def guided(x_t, t):
        b = x_t.shape[0]
        if scale == 1.0:
            return model_fn(x_t, t, torch.zeros(b, dtype=torch.bool, device=x_t.device))
        drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x_t.device)
        pred = model_fn(torch.cat([x_t, x_t]), torch.cat([t, t]), drop)
        cond, uncond = pred[:b], pred[b:]
        return uncond + scale * (cond - uncond)
    return guided


def dynamic_clip(x0, percentile):
    """Imagen's dynamic thresholding (Sec. 3.1): s = the `percentile` quantile of |x0| per example; where s > 1,
    clip x0 to [-s, s] and divide by s, so that guided predictions stay in the data's [-1, 1] range."""
    flat = x0.reshape(x0.shape[0], -1).abs().float()
    k = max(1, min(flat.shape[1], int(round(percentile * flat.shape[1]))))
    s = flat.kthvalue(k, dim=1).values.clamp(min=1.0)                         # (B,); kthvalue has no size limit
    s = _bcast(s, x0)
    return torch.maximum(torch.minimum(x0, s), -s) / s


# ---------------------------------------------------------------------------------------------------------------
# 6. Samplers.  Both walk t from 1 down to 0 through the times given by a step-size list (section 7).
# ---------------------------------------------------------------------------------------------------------------

def _times(step_sizes):
    """Table 7's step sizes delta_1..delta_N accumulate from t = 0: t_n = sum_{i<=n} delta_i, t_0 = 0, t_N = 1."""
    sizes = torch.as_tensor(list(step_sizes), dtype=torch.float64)
    if sizes.numel() == 0 or (sizes <= 0).any() or abs(float(sizes.sum()) - 1.0) > 1e-6:
        raise ValueError("step_sizes must be a non-empty list of positive numbers summing to 1 (see step_schedule).")
    times = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(sizes, 0)])
    times[-1] = 1.0
    return times                                                              # (N + 1,) float64, increasing


def _predict_x0(model_fn, x_t, t, schedule, objective, clip_percentile, project=None):
    """One network call at time t (a float) -> (x0_hat, eps_hat, alpha_t, sigma_t), with optional dynamic clipping
    and an optional projection of x0_hat (the residual cascaders keep it inside the band they add: residual.py)."""
    tt = torch.full((x_t.shape[0],), float(t), device=x_t.device)
    alpha, sigma = alpha_sigma(tt, schedule)
    x0, eps = to_x0_eps(model_fn(x_t, tt).to(x_t.dtype), x_t, alpha, sigma, objective)
    if clip_percentile is not None or project is not None:
        # With eps-prediction, clipping x0 then re-deriving eps is GR-dd's `_run_model(clip_x=True)`.
        if clip_percentile is not None:
            x0 = dynamic_clip(x0, clip_percentile)
        if project is not None:
            x0 = project(x0)
        eps = eps_from_x0(x0, x_t, alpha, sigma)
    return x0, eps, alpha, sigma


def _progress(iterable, progress, total):
    if not progress:
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=progress if isinstance(progress, str) else "sampling", leave=False)


def settings(defaults, **given):
    """A stage's sampler settings: its defaults (the SAMPLING table in its file), with the given ones that are not
    None over them. Each stage keeps its own defaults, so that sample.py passes only what a user set."""
    return {**defaults, **{k: v for k, v in given.items() if v is not None}}


def sample(model_fn, shape, *, step_sizes, schedule="cosine", objective="v", gamma=0.0, generator=None,
           clip_percentile=None, project=None, device=None, progress=False, start=None, shape_noise=None):
    """The paper's ancestral sampler (App. A, eq. 4) with stochasticity gamma; returns the sample at t = 0.

    From t to s < t, with r = exp(lambda_t - lambda_s) (the fraction of SNR not yet gained):
        x_s = (alpha_s/alpha_t) x_t - (1 - r)(alpha_s/alpha_t) sigma_t eps_hat + sigma_tilde^(1-gamma) sigma_ts^gamma z
    The first two terms equal the posterior mean  r (alpha_s/alpha_t) x_t + (1 - r) alpha_s x0_hat, which is how we
    compute it (so dynamic clipping acts on x0_hat).  The noise std interpolates the *log*-variance between the
    posterior's  sigma_tilde^2 = (1 - r) sigma_s^2  (gamma = 0, DDPM "small") and the forward process's
    sigma_ts^2 = (1 - r) sigma_t^2  (gamma = 1, "large").  Table 3: gamma = 1 for the waveform cascader only.
    The last step (s = 0) returns x0_hat without adding noise, as GR-dd's reference sampler does.
    project: None, or a function applied to every x0_hat after clipping: a projection onto the signals the model
    may produce (the band a residual cascader adds, or the data's range for a scaled generator).
    start: None, or (x_t0, t0): begin at time t0 from x_t0 (B, ...), e.g. a real example noised to t0, with the
    step list squeezed into [0, t0] (SDEdit, Meng et al. 2022). Not the paper's sampler: a diagnostic that says
    which noise levels decide what a sample holds (stagecheck.from_noised).
    shape_noise: None, or the linear map that coloured the training noise (diffusion_loss): x_1 and every step's
    fresh noise are coloured by it. Every variance above is a number times the coloured noise's covariance, so
    eq. 4 holds as it is.
    """
    times = _times(step_sizes)
    colour = shape_noise or (lambda z: z)
    if start is None:
        x = colour(randn(shape, generator, device))     # App. A: x_1 ~ N(0, I), or N(0, L L^T) coloured by L
    else:
        x, t0 = start
        if not 0.0 < t0 <= 1.0:
            raise ValueError(f"start time {t0} is outside (0, 1].")
        times = times * float(t0)                                      # the same step list, over [0, t0]
    steps = len(times) - 1
    for n in _progress(range(steps, 0, -1), progress, steps):
        t, s = float(times[n]), float(times[n - 1])
        x0, _, _, _ = _predict_x0(model_fn, x, t, schedule, objective, clip_percentile, project)  # eq. 4: x0_hat
        if n == 1:
            return x0                                                    # the last step: x0_hat, no noise
        alpha_t, sigma_t, logsnr_t = _coefficients(t, schedule)
        alpha_s, sigma_s, logsnr_s = _coefficients(s, schedule)
        r = math.exp(logsnr_t - logsnr_s)                                # eq. 4: r = e^(lambda_t - lambda_s), in (0, 1)
        mean = (r * alpha_s / alpha_t) * x + ((1 - r) * alpha_s) * x0    # eq. 4, first two terms (posterior mean)
        # eq. 4, last term: sigma_tilde^(1 - gamma) sigma_ts^gamma, as an interpolation of log-variances
        log_var = (1 - gamma) * math.log((1 - r) * sigma_s**2) + gamma * math.log((1 - r) * sigma_t**2)
        x = mean + math.exp(0.5 * log_var) * colour(randn(shape, generator, x.device, x.dtype))   # eq. 4: x_s
    return x


def _coefficients(t, schedule):
    """(alpha_t, sigma_t, lambda_t) as Python floats computed in float64, for one time t > 0."""
    tt = torch.tensor(t, dtype=torch.float64)
    alpha, sigma = alpha_sigma(tt, schedule)
    return float(alpha), float(sigma), float(logsnr(tt, schedule))


def sample_ddim(model_fn, shape, *, step_sizes, schedule="cosine", objective="v", gamma=None, generator=None,
                clip_percentile=None, project=None, device=None, progress=False, shape_noise=None):
    """Deterministic DDIM (Song et al. 2021), an extra not used by the paper: x_s = alpha_s x0_hat + sigma_s eps_hat.
    sample()'s settings but `start`; gamma is ignored; only the starting noise is random (coloured by shape_noise
    if given: eps_hat is then the coloured noise's estimate, and the step holds as it is)."""
    times = _times(step_sizes)
    x = randn(shape, generator, device) if shape_noise is None else shape_noise(randn(shape, generator, device))
    steps = len(times) - 1
    for n in _progress(range(steps, 0, -1), progress, steps):
        x0, eps, _, _ = _predict_x0(model_fn, x, float(times[n]), schedule, objective, clip_percentile, project)
        if n == 1:
            return x0
        alpha_s, sigma_s, _ = _coefficients(float(times[n - 1]), schedule)
        x = alpha_s * x0 + sigma_s * eps
    return x


SAMPLERS = {"ancestral": sample, "ddim": sample_ddim}


# ---------------------------------------------------------------------------------------------------------------
# 7. Denoising step schedules (Sec. 4.2.1, App. A.2, Table 7), kept as data.
# ---------------------------------------------------------------------------------------------------------------
# "Front-heavy" lists spend their steps near t = 0 (the clean end, visited last); "back-heavy" ones near t = 1.
# Each list is written as segments (total time covered, number of steps), exactly as Table 7 prints it.

_SEGMENTS = {
    "waveform-generator": [(0.01, 200), (0.04, 400), (0.15, 200), (0.3, 150), (0.5, 50)],           # 1000 steps
    "waveform-cascader": [(0.05, 400), (0.15, 200), (0.3, 150), (0.5, 50)],                         # 800 steps
    "superres": [(0.05, 400), (0.15, 200), (0.3, 150), (0.5, 50)],                                  # = cascader
    "spectrogram-generator": [(0.01, 400), (0.04, 800), (0.15, 400), (0.3, 300), (0.5, 100)],       # 2000 steps
    "vocoder": [(0.05, 50), (0.15, 30), (0.3, 15), (0.5, 5)],                                       # 100 steps
}
_UNIFORM_STEPS = {"waveform-generator": 1000, "waveform-cascader": 800, "superres": 800,
                  "spectrogram-generator": 1000, "vocoder": 100}
# The spectrogram generator's final evaluation used a separate 1000-step back-heavy list (Table 3, Fig. 4).
_SG_BACK_EVAL = [(0.3, 50), (0.3, 150), (0.2, 300), (0.2, 500)]

MODELS = tuple(_SEGMENTS)
KINDS = ("front", "uniform", "back", "back-eval")


def _expand(segments):
    return [total / count for total, count in segments for _ in range(count)]


def table7(model, kind):
    """The exact Table 7 list for `model` and `kind` (front, uniform, back; back-eval for the spectrogram generator)."""
    if model not in _SEGMENTS:
        raise ValueError(f"unknown model {model!r} for a step schedule; use one of {', '.join(MODELS)}.")
    if kind == "front":
        return _expand(_SEGMENTS[model])
    if kind == "back":
        return _expand(_SEGMENTS[model])[::-1]
    if kind == "uniform":
        n = _UNIFORM_STEPS[model]
        return [1.0 / n] * n
    if kind == "back-eval" and model == "spectrogram-generator":
        return _expand(_SG_BACK_EVAL)
    raise ValueError(f"unknown step schedule {kind!r} for {model}; use front, uniform or back"
                     + (" (or back-eval)" if model == "spectrogram-generator" else "") + ".")


def rescale(step_sizes, steps):
    """Rescale a step-size list to `steps` steps, keeping its shape (Fig. 3: scale each segment's step count,
    inverse-scale its step sizes).  We read the cumulative time t(n) of the original list at n = k N / steps,
    interpolating linearly; when every segment's count divides evenly this is exactly Fig. 3's rule, and it also
    works for fewer steps than the list has segments (a 2-step smoke test)."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    times = _times(step_sizes).double()                                           # (N + 1,)
    n = len(times) - 1
    pos = torch.arange(steps + 1, dtype=torch.float64) * n / steps
    lo = pos.floor().long().clamp(max=n - 1)
    frac = pos - lo
    new_times = times[lo] * (1 - frac) + times[lo + 1] * frac
    sizes = (new_times[1:] - new_times[:-1]).tolist()
    total = sum(sizes)
    return [d / total for d in sizes]


def step_schedule(model, kind, steps=None):
    """Step sizes for one of the five models, `kind` in front / uniform / back (Table 7), optionally rescaled."""
    sizes = table7(model, kind)
    return sizes if steps is None else rescale(sizes, steps)
