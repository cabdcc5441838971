"""evaluate.py: the Frechet distance against closed forms, FAD's behaviour, the model-free mel statistic."""

import numpy as np
import pytest
import torch

import evaluate


def test_frechet_distance_of_1d_gaussians_is_the_closed_form():
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2
    d = evaluate.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]]))
    assert d == pytest.approx(9.0 + 1.0, rel=1e-12)


def test_frechet_distance_matches_the_eigenvalues_of_c1_c2():
    # An independent route for non-commuting covariances: tr (C1 C2)^(1/2) = sum of sqrt(eigenvalues of C1 C2),
    # which are real and non-negative for two PSD matrices.
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    c1, c2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    eig = np.linalg.eigvals(c1 @ c2)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.sqrt(eig.real).sum()
    assert evaluate.frechet_distance(mu1, c1, mu2, c2) == pytest.approx(expected, rel=1e-9)


def test_fad_of_a_set_with_itself_is_zero_and_grows_with_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 8)) @ rng.normal(size=(8, 8))
    assert abs(evaluate.fad(x, x)) < 1e-8
    noisy = [evaluate.fad(x, x + s * rng.normal(size=x.shape)) for s in (0.1, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(noisy, noisy[1:])), noisy
    assert noisy[0] > 0


def test_fad_rejects_too_few_embeddings():
    with pytest.raises(ValueError, match="at least 2"):
        evaluate.fad(np.zeros((1, 3)), np.zeros((5, 3)))


def test_mel_statistics_is_per_second_and_sees_loudness():
    rate = 24000
    t = np.arange(3 * rate) / rate
    tone = 0.1 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    quiet, loud = evaluate.mel_statistics(tone, rate), evaluate.mel_statistics(10 * tone, rate)
    assert quiet.shape == (3, 160)
    assert (loud[:, :80].mean() - quiet[:, :80].mean()) > 0.1        # the mean log-mel rises with level
    assert evaluate.fad(quiet, quiet) == pytest.approx(0.0, abs=1e-5)   # 3 rows in 160-D: sqrt of ~0 eigenvalues is off by ~1e-7


def test_derangement_pairs_every_clip_with_another():
    for n in (2, 3, 10, 57):
        p = evaluate.derangement(n, seed=n)
        assert sorted(p) == list(range(n)) and all(p[i] != i for i in range(n))


def test_tempo_following_is_the_correlation_of_log_tempi():
    asked = [60, 90, 120, 150]
    assert evaluate.tempo_following([2 * b for b in asked], asked) == pytest.approx(1.0)   # octave off: still 1
    assert evaluate.tempo_following(asked[::-1], asked) == pytest.approx(-0.9646, abs=1e-4)
    x, y = np.log([100, 80, 120, 100]), np.log(asked)
    dx, dy = x - x.mean(), y - y.mean()
    expected = (dx * dy).sum() / np.sqrt((dx ** 2).sum() * (dy ** 2).sum())
    assert evaluate.tempo_following([100, 80, 120, 100], asked) == pytest.approx(expected)
    assert evaluate.tempo_following([100, 100, 100, 100], asked) is None         # one tempo for every prompt
    assert evaluate.tempo_following([100, 120], [90, 110]) is None                # too few to correlate


@pytest.mark.parametrize("phase", ["griffin-lim", "true-phase"])
def test_through_mel_keeps_a_tone_its_pitch_and_length(phase):
    """The spectrogram route with no model (log-mel, Griffin-Lim or the tone's own phase, resampling) keeps a
    440 Hz tone at 440 Hz."""
    rate = evaluate.SET_RATE
    t = torch.arange(2 * rate) / rate
    out = evaluate.through_mel(0.1 * torch.sin(2 * torch.pi * 440 * t), phase=phase)
    assert out.shape == t.shape
    spectrum = torch.fft.rfft(out[rate // 2: -rate // 2]).abs()                  # 1 s: bins are 1 Hz apart
    assert abs(int(spectrum.argmax()) - 440) <= 2


def test_table_marks_missing_values():
    text = evaluate.format_table({"ground truth": {"sim_audio_text": 0.5, "FAD_mel": None, "tempo": 0.9}})
    row = text.splitlines()[1]
    assert "0.500" in row and "90%" in row and row.split()[2] == "-"


def test_channel_gaussian_denoiser_reaches_the_closed_form_error():
    """On Gaussian signals the baseline of `evaluate.py denoise` is the optimal denoiser, and its v-loss at time t
    is the closed form var / (alpha^2 var + sigma^2) (v_hat - v = -(x0_hat - x0) / sigma, and the MMSE of x0 is
    var sigma^2 / (alpha^2 var + sigma^2)); a channel with a larger variance, a larger error."""
    import torch
    import diffusion
    g = torch.Generator().manual_seed(0)
    std = torch.tensor([0.2, 1.0, 3.0])[None, :, None]
    x0 = 0.5 + std * torch.randn(64, 3, 4000, generator=g)                       # (N, C, T), mean 0.5
    fn = evaluate.channel_gaussian_denoiser(x0, "cosine", "v")
    t = torch.full((64,), 0.4)
    alpha, sigma = diffusion.alpha_sigma(t[:1], "cosine")
    noise = torch.randn(x0.shape, generator=g)
    x_t = alpha * x0 + sigma * noise
    err = (fn(x_t, t) - diffusion.target(x0, noise, alpha, sigma, "v")).pow(2).mean(dim=(0, 2))   # (C,)
    closed = std.flatten() ** 2 / (alpha ** 2 * std.flatten() ** 2 + sigma ** 2)
    assert torch.allclose(err, closed, rtol=0.03)
    eps_err = evaluate.channel_gaussian_denoiser(x0, "cosine", "eps")(x_t, t) - noise
    assert torch.allclose(eps_err.pow(2).mean(dim=(0, 2)), alpha ** 2 * closed, rtol=0.03)   # eps error = alpha v error


def test_clip_folders_change_with_settings_and_with_retrained_checkpoints(tmp_path, monkeypatch):
    """Generated clips are cached under a label; a changed setting, a retrained stage or edited sampling code must
    not reuse them."""
    import sample
    for name in sample.ROUTES["wave"]:
        (tmp_path / f"{name}.pt").write_bytes(name.encode())
    settings = sample.resolve_settings()
    label = evaluate.settings_label("wave", settings, 30.0, tmp_path)
    assert label == evaluate.settings_label("wave", settings, 30.0, tmp_path) and label.startswith("wave-30s-")
    assert label != evaluate.settings_label("wave", sample.resolve_settings({"waveform-generator": {"guidance": 2.0}}),
                                            30.0, tmp_path)
    (tmp_path / "superres.pt").write_bytes(b"retrained")
    assert label != evaluate.settings_label("wave", settings, 30.0, tmp_path)
    code = tmp_path / "stage_code.py"                    # an absolute path: joined to the project folder, it wins
    code.write_text("STEPS = 30\n")
    monkeypatch.setattr(evaluate, "SAMPLING_CODE", evaluate.SAMPLING_CODE + (str(code),))
    before = evaluate.settings_label("wave", settings, 30.0, tmp_path)
    code.write_text("STEPS = 60\n")
    assert before != evaluate.settings_label("wave", settings, 30.0, tmp_path)


def test_guidance_scales_flag_parses_or_says_what_is_wrong():
    import argparse
    assert evaluate._scales("1,2.5") == [1.0, 2.5]
    for bad in ("x", "1,,2", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            evaluate._scales(bad)


def test_variant_flag_parses_generator_settings_or_says_what_is_wrong():
    import argparse
    assert evaluate.generator_settings("sampler=ddim,steps=200,gamma=0.5") == {"sampler": "ddim", "steps": 200,
                                                                                 "gamma": 0.5}
    for bad, says in [("steps=x", "whole number"), ("bogus=1", "KEY=VALUE"), ("sampler", "KEY=VALUE"),
                      ("guidance=", "KEY=VALUE")]:
        with pytest.raises(argparse.ArgumentTypeError, match=says):
            evaluate.generator_settings(bad)
