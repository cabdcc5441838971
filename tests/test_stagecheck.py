"""The residual form of the cascaders, the model-free figures and the stage check (stagecheck.py, issue 12)."""

import math
from dataclasses import asdict, replace
from types import SimpleNamespace

import pytest
import torch

import checkpoint
import data
import diffusion
import residual
import stage2_cascader
import stage3_superres
import stagecheck
import train
import unet1d
import vocoder

RATE = 24000


def tone(freqs_amps, seconds=2.0, rate=RATE):
    t = torch.arange(round(seconds * rate)) / rate
    return sum(a * torch.sin(2 * math.pi * f * t) for f, a in freqs_amps)


def notes(seconds=4.0, rate=RATE, note=0.25, seed=0):
    """A melody of decaying harmonic notes: what music looks like to the two figures."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(round(note * rate)) / rate
    parts = []
    for _ in range(round(seconds / note)):
        f0 = 220 * 2 ** (int(torch.randint(0, 12, (1,), generator=g)) / 12)
        parts.append(sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 6)) * torch.exp(-6 * t))
    return 0.1 * torch.cat(parts)


# ---------------------------------------------------------------------------------------------------------------
# The residual form


def test_bands_split_exactly_and_calibrate_to_their_rms():
    x = tone([(500.0, 0.3), (10000.0, 0.02)])[None]                    # (1, T): one partial in each band
    low, high = residual.lowpass(x, 16000, RATE), residual.highpass(x, 16000, RATE)
    assert torch.allclose(low + high, x, atol=1e-6)
    assert torch.allclose(low, tone([(500.0, 0.3)])[None], atol=5e-4)    # whole periods: exact up to float32
    scales = residual.calibrate(x, 16000, RATE)
    assert scales["cond_scale"] == pytest.approx(0.3 / math.sqrt(2), rel=1e-3)
    assert scales["residual_scale"] == pytest.approx(0.02 / math.sqrt(2), rel=1e-3)


def test_envelope_is_the_top_band_rms_with_its_floor():
    """A steady 7.5 kHz partial of amplitude a sits in super-resolution's 7-8 kHz envelope band: e = sqrt(a^2 / 2 +
    floor^2) everywhere; a 5 kHz one is outside it: e = floor. A partial that stops halfway is seen to stop."""
    floor = 0.01              # well above the ~1e-4 that float32 rounding of a 0.3 tone leaks into any band
    steady = residual.envelope(tone([(7500.0, 0.02), (5000.0, 0.3)])[None], 16000, RATE, 7 / 8, floor)     # (1, T)
    assert torch.allclose(steady, torch.full_like(steady, math.sqrt(0.02**2 / 2 + floor**2)), rtol=2e-3)
    outside = residual.envelope(tone([(5000.0, 0.3)])[None], 16000, RATE, 7 / 8, floor)
    assert torch.allclose(outside, torch.full_like(outside, floor), rtol=1e-3)
    half = tone([(7500.0, 0.1)])[None] * (torch.arange(2 * RATE) < RATE)
    stopping = residual.envelope(half, 16000, RATE, 7 / 8, floor)[0]
    assert stopping[RATE // 2] > 5 * floor and stopping[3 * RATE // 2] == pytest.approx(floor, rel=0.05)


def test_envelope_form_round_trips_and_calibrates_to_unit_rms():
    """x0 = highpass(x) / (residual_scale * e) on the calibration audio has unit RMS by construction, and the
    stage's output equation rebuilds the clip from x0 exactly; the sampler's projection is idempotent and keeps
    the residual out of the given band."""
    x = notes(seconds=2.0)[None] + 0.02 * torch.randn(1, 2 * RATE, generator=torch.Generator().manual_seed(0))
    config = {"form": "envelope", "envelope_band": 7 / 8, **residual.calibrate(x, 16000, RATE, "envelope", 7 / 8)}
    assert set(config) == {"form", "envelope_band", "cond_scale", "residual_scale", "envelope_floor"}
    _, x0 = residual.loss_inputs(x, 16000, RATE, SimpleNamespace(**config))                 # (1, 1, T)
    assert float(x0.pow(2).mean().sqrt()) == pytest.approx(1.0, rel=1e-3)
    low = residual.lowpass(x, 16000, RATE)
    scale = residual.scale(low, 16000, RATE, config)                                         # (1, T)
    assert torch.allclose(residual.output(low, x0, "envelope", scale), x, atol=1e-6)
    project = residual.sampler_options("envelope", 16000, RATE, scale)["project"]
    z = torch.randn(1, 1, 2 * RATE, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(project(project(z)), project(z), atol=1e-4)
    assert residual.lowpass(scale * project(z)[:, 0], 16000, RATE).abs().max() < 1e-6


def test_envelope_bands_find_the_band_that_moves_with_the_added_one():
    """A 7.5 kHz partial and a 10 kHz one share a slowly swelling loudness a(t); a steady 3 kHz partial does not. The
    added band's log RMS then spreads as log a(t) does, its ratio to the 7-8 kHz band not at all, and its ratio to a
    band that holds the steady partial (2-8 kHz) in between."""
    t = torch.arange(4 * RATE) / RATE
    swell = torch.exp(1.5 * torch.sin(2 * math.pi * 0.5 * t))                       # log a(t): std 1.5 / sqrt 2
    x = swell * tone([(7500.0, 0.02), (10000.0, 0.01)], seconds=4.0) + tone([(3000.0, 0.05)], seconds=4.0)
    spread = residual.envelope_bands(x[None], 16000, RATE, shares=(0.25, 0.875))
    assert spread["added"] == pytest.approx(1.5 / math.sqrt(2), rel=0.05)
    assert spread[0.875] < 0.02 and 0.3 < spread[0.25] < spread["added"]


@pytest.mark.parametrize("form", ["residual", "envelope"])
@pytest.mark.parametrize("name", ["superres", "waveform-cascader"])
def test_residual_form_gives_back_its_input_band_exactly_before_any_training(name, form):
    """However wrong the network (random weights, not the zero initialisation), the band the stage is given comes
    out exactly as it went in, and something is added above it."""
    module = stage3_superres if name == "superres" else stage2_cascader
    preset = unet1d.PRESETS["tiny-superres" if name == "superres" else "tiny-waveform-cascader"]
    torch.manual_seed(0)
    model = unet1d.UNet1D(replace(preset, zero_init=False, text_dim=0 if name == "superres" else 128)).eval()
    config = {"form": form, "cond_scale": 0.1, "residual_scale": 0.01, "envelope_band": 0.5, "envelope_floor": 0.01,
              "schedule": "linear", "objective": "v"}
    low = notes(seconds=0.6, rate=module.LOW_RATE)[None]                # (1, T_low)
    out = module.generate(model, low, config=config, steps=3, generator=torch.Generator().manual_seed(0))
    # Compared below the input's Nyquist frequency: the Nyquist bin itself belongs to neither band.
    given = lambda z: residual.lowpass(z, module.LOW_RATE, module.RATE)
    up = data.resample(low, module.LOW_RATE, module.RATE)
    assert torch.allclose(given(out), given(up), atol=1e-5)
    scale = torch.as_tensor(residual.scale(up, module.LOW_RATE, module.RATE, config))   # the residual's size
    assert residual.highpass(out, module.LOW_RATE, module.RATE).abs().max() > 0.1 * scale.max()


# ---------------------------------------------------------------------------------------------------------------
# The model-free figures


def test_flatness_of_noise_is_the_closed_form_and_of_notes_is_low():
    g = torch.Generator().manual_seed(0)
    white = torch.randn(2, 4 * RATE, generator=g)
    coloured = torch.cumsum(white, dim=1) * 0.01                      # brown noise: coloured, still stationary
    # The geometric over the arithmetic mean of exponential (chi-square 2) powers tends to exp(-Euler's gamma).
    expected = math.exp(-0.5772156649)
    assert stagecheck.flatness(white, RATE).tolist() == pytest.approx([expected] * 2, abs=0.03)
    assert stagecheck.flatness(coloured, RATE).tolist() == pytest.approx([expected] * 2, abs=0.05)
    assert float(stagecheck.flatness(notes()[None], RATE)) < 0.15


def test_persistence_tells_notes_from_noise():
    g = torch.Generator().manual_seed(0)
    assert abs(float(stagecheck.persistence(0.1 * torch.randn(1, 4 * RATE, generator=g), RATE))) < 0.1
    assert float(stagecheck.persistence(notes()[None], RATE)) > 0.6


def test_log_spectral_distance_is_zero_for_itself_and_grows_with_a_gain():
    x = 0.01 * torch.randn(1, 2 * RATE, generator=torch.Generator().manual_seed(0))   # far above the -100 dB floor
    band = (8000.0, 12000.0)
    assert float(stagecheck.log_spectral_distance(x, x, RATE, band)) == pytest.approx(0.0, abs=1e-4)
    # A gain of 2 in amplitude is 6.02 dB at every bin.
    assert float(stagecheck.log_spectral_distance(2 * x, x, RATE, band)) == pytest.approx(6.02, abs=0.05)


def test_griffin_lim_rebuilds_the_spectrogram_without_a_model():
    audio = notes(rate=16000)[None]
    mel = data.log_mel(audio)
    rebuilt = vocoder.griffin_lim(mel, generator=torch.Generator().manual_seed(0))
    assert rebuilt.shape == audio.shape
    noise = torch.randn(audio.shape, generator=torch.Generator().manual_seed(1)) * audio.std()
    assert (data.log_mel(rebuilt) - mel).abs().mean() < 0.2 * (data.log_mel(noise) - mel).abs().mean()


def test_fast_griffin_lim_gets_closer_in_the_same_iterations():
    """Momentum (Perraudin et al. 2013) reaches a spectrogram closer to the one it was given than plain
    Griffin-Lim does in as many iterations, from the same starting phase."""
    mel = data.log_mel(notes(rate=16000)[None])
    distance = {m: float((data.log_mel(vocoder.griffin_lim(mel, iterations=16, momentum=m,
                                                           generator=torch.Generator().manual_seed(0))) - mel)
                         .abs().mean()) for m in (0.0, 0.99)}
    assert distance[0.99] < 0.9 * distance[0.0]


# ---------------------------------------------------------------------------------------------------------------
# The stage check end to end, on untrained models of the new forms


def _save(folder, name, model, config):
    checkpoint.save_checkpoint(folder / f"{name}.pt", {
        "format": checkpoint.FORMAT, "stage": name, "unet": asdict(model.config), "config": config, "step": 0,
        "loss": 0.0, "model": model.state_dict(), "ema": None})


def test_stage_check_runs_and_sees_the_exact_given_band(tmp_path, tiny_corpus):
    common = {"schedule": "linear", "objective": "v", "text_length": 16, "t5": ""}
    torch.manual_seed(0)
    _save(tmp_path, "superres", unet1d.UNet1D(unet1d.PRESETS["tiny-superres"]),
          {**common, "form": "envelope", "envelope_band": 0.875,
           **residual.calibrate(tone([(500, .1), (7500, .005), (9000, .01)])[None], 16000, RATE, "envelope", 0.875)})
    _save(tmp_path, "waveform-cascader", unet1d.UNet1D(replace(unet1d.PRESETS["tiny-waveform-cascader"],
                                                                text_dim=128)),
          {**common, "form": "residual", "cond_scale": 0.1, "residual_scale": 0.02})
    audio = data.fixed_batch(tiny_corpus / "train", 16000, n=4, seconds=2.0)["audio"]
    cfg = train.parse_config(vocoder.STAGE, [])
    _save(tmp_path, "vocoder", unet1d.UNet1D(unet1d.PRESETS["tiny-vocoder"]),
          {**common, "form": "scaled", **vocoder.calibrate(cfg, audio)})
    import stage1_generator
    gen_cfg = train.parse_config(stage1_generator.SPEC, ["--text_length=16"])
    _save(tmp_path, "spectrogram-generator", unet1d.UNet1D(replace(unet1d.PRESETS["tiny-spectrogram-generator"],
                                                                    text_dim=128)),
          {**vars(gen_cfg), "t5": "", **stage1_generator.calibrate(gen_cfg, audio)})
    result = stagecheck.run(tiny_corpus / "test", tmp_path, n=2, seconds=1.0, route_seconds=1.0, log=lambda *a: None)
    assert set(result["spectrogram-generator"]["teacher_forced"]) == set(stagecheck.TEACHER_TIMES)
    for name in ("superres", "waveform-cascader"):
        c = result[name]
        assert c["given_band_error"] < 1e-4 and c["given_band_error_plain"] < 1e-4
        assert min(c["added_band_lsd"], c["added_band_lsd_plain"], c["added_band_lsd_swapped"]) > 0
        assert set(c["teacher_forced"]) == set(stagecheck.TEACHER_TIMES)
        assert set(c["from_noised"]) == set(stagecheck.FROM_NOISED_TIMES)
        assert all(f["rms_ratio"] >= 0 and f["error"] >= 0 for f in c["from_noised"].values())
        each = torch.tensor(c["added_band_rms_each"])                       # the clips' RMS make up the set's
        assert len(each) == 2 and float(each.pow(2).mean().sqrt()) == pytest.approx(c["added_band_rms"], rel=1e-4)
    assert 0 < result["vocoder"]["log_mel_distance_griffin_lim"] < result["vocoder"]["log_mel_distance"]
    assert set(result["routes"]) == {"wave", "spec", "spec, Griffin-Lim"}
    text = stagecheck.format_report(result)
    assert "given band 0-8 kHz" in text and "Griffin-Lim" in text and "does the text matter" in text
    assert "sampled from the real band noised to t0" in text


def test_specgrad_vocoder_check_reports_its_coloured_noise(tiny_corpus):
    """A specgrad-form vocoder is judged beside its own noise coloured by the mel: those figures are in the check
    and the report, and the coloured noise is closer to the mel than another clip's mel is. No such figure for
    the scaled form. The --colouring diagnostic prints a line per floor."""
    real = data.fixed_batch(tiny_corpus / "test", vocoder.RATE, n=2, seconds=1.0, multiple=160)["audio"]
    cfg = train.parse_config(vocoder.STAGE, ["--form=specgrad"])
    config = {**vars(cfg), **vocoder.calibrate(cfg, real)}
    torch.manual_seed(0)
    model = unet1d.UNet1D(vocoder.model_config(cfg)).eval()
    c = stagecheck.check_vocoder(model, config, real, settings=dict(steps=2))
    assert 0 < c["log_mel_distance_colour"] < c["log_mel_distance_swapped"]
    assert 0 <= c["flatness_colour"] <= 1 and -1 <= c["persistence_colour"] <= 1
    report = stagecheck.format_report({"clips": 2, "seconds": 1.0, "real": {"flatness": 0.1, "persistence": 0.8},
                                       "vocoder": c, "real_routes": {"flatness": 0.1, "persistence": 0.8},
                                       "routes": {}})
    assert f"no network (specgrad form): log-mel distance {c['log_mel_distance_colour']:.4f}" in report
    scaled = {**config, "form": "scaled"}
    assert "log_mel_distance_colour" not in stagecheck.check_vocoder(model, scaled, real, settings=dict(steps=2))


def test_colouring_diagnostic_prints_every_floor(tiny_corpus, capsys):
    assert stagecheck.main(["--data", str(tiny_corpus), "--colouring", "2"]) == 0
    out = capsys.readouterr().out
    assert all(f"floor {f:g}: coloured noise alone" in out for f in stagecheck.COLOUR_FLOORS)
    assert "clip + white noise: 30 dB" in out


def test_generator_check_tells_a_generator_that_ignores_its_text(tiny_corpus):
    """A spectrogram generator whose cross-attention output is zero cannot read its caption: the check must say
    so exactly (x0 error with any caption = without; two captions, one seed -> the same sample). Give the same
    network a non-zero cross-attention and both figures move."""
    import stage1_generator
    import text_encoder
    torch.manual_seed(0)
    model = unet1d.UNet1D(replace(unet1d.PRESETS["tiny-spectrogram-generator"], text_dim=128, zero_init=False))
    batch = data.fixed_batch(tiny_corpus / "train", data.MEL_RATE, n=2, seconds=1.0)
    cfg = train.parse_config(stage1_generator.SPEC, ["--text_length=16"])
    config = {**vars(cfg), **stage1_generator.calibrate(cfg, batch["audio"])}
    text = text_encoder.load_t5(text_encoder.DEMO_T5_DIR).encode(batch["caption"], max_length=16)
    settings = {"steps": 4, "guidance": 5.0}        # guidance 5 amplifies what the text changes, as in Table 3
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "cross_attn.to_out" in name:
                p.zero_()
    deaf = stagecheck.check_generator(model, config, batch["audio"], text, 1.0, settings)
    assert all(own == pytest.approx(1.0, abs=1e-6) and other == pytest.approx(1.0, abs=1e-6)
               for own, other in deaf["teacher_forced"].values())
    assert deaf["swap_correlation"] == pytest.approx(1.0, abs=1e-6) and deaf["seed_correlation"] < 0.9
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "cross_attn.to_out.weight" in name:
                p.normal_(0, 5.0)
    hearing = stagecheck.check_generator(model, config, batch["audio"], text, 1.0, settings)
    assert any(abs(own - 1) > 1e-3 for own, _ in hearing["teacher_forced"].values())
    assert hearing["swap_correlation"] < 0.99


def test_figures_of_files_tell_notes_from_noise(tmp_path):
    import soundfile as sf
    sf.write(tmp_path / "notes.wav", notes().numpy(), RATE)
    sf.write(tmp_path / "noise.wav", (0.1 * torch.randn(4 * RATE, generator=torch.Generator().manual_seed(0))).numpy(),
             RATE)
    figures = stagecheck.file_figures([tmp_path / "notes.wav", tmp_path / "noise.wav"])
    (flat_notes, persist_notes), (flat_noise, persist_noise) = figures.values()
    assert flat_notes < 0.15 < 0.5 < flat_noise and persist_notes > 0.6 > 0.1 > persist_noise
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    assert stagecheck.main(["--figures", str(tmp_path / "bad.wav")]) == 2


def test_evaluation_reports_the_sets_median_figures():
    """make eval's two model-free columns are the medians over the set of each clip's figures: a set of two
    melodies and one noise reads as music, a set of two noises and one melody as noise."""
    import evaluate
    noise = [0.1 * torch.randn(4 * RATE, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    mostly_music = evaluate.model_free_figures([notes(seed=0), notes(seed=1), noise[0]])
    mostly_noise = evaluate.model_free_figures([noise[0], noise[1], notes(seed=0)])
    assert mostly_music["flatness"] < 0.15 and mostly_music["persistence"] > 0.6
    assert mostly_noise["flatness"] > 0.4 and mostly_noise["persistence"] < 0.2
    # Per clip too (eval.json's "clips"): the set's odd one out is named, in the order given.
    assert [f < 0.15 and p > 0.6 for f, p in mostly_music["each"]] == [True, True, False]


@pytest.mark.parametrize("form", ["scaled", "envelope", "specgrad"])
def test_vocoder_teacher_forced_figure_is_zero_for_an_oracle(form, tiny_corpus):
    """A 'network' that knows the clip returns the exact v for any x_t: its x0 estimate is the clip, so the
    teacher-forced error is 0 in either form, which holds only if the check divides and multiplies by the same
    signal scale (a number, or the mel's envelope) as the vocoder does."""
    real = data.fixed_batch(tiny_corpus / "test", vocoder.RATE, n=2, seconds=1.0, multiple=160)["audio"]   # (2, T)
    cfg = train.parse_config(vocoder.STAGE, [f"--form={form}"])
    config = {**vars(cfg), **vocoder.calibrate(cfg, real)}
    x0 = (real / vocoder.waveform_divisor(data.log_mel(real), config))[:, None]          # (2, 1, T), model units

    noises = []

    def oracle(x_t, t, **conditioning):
        alpha, sigma = diffusion.alpha_sigma(t, config["schedule"])
        alpha, sigma = diffusion._bcast(alpha, x_t), diffusion._bcast(sigma, x_t)
        noises.append((x_t - alpha * x0) / sigma)                                       # the noise it was given
        return (alpha * x_t - x0) / sigma                 # v = alpha eps - sigma x0 for any noise eps, coloured or not
    ratios = stagecheck.teacher_forced("vocoder", oracle, config, real, (None, None))
    assert set(ratios) == set(stagecheck.TEACHER_TIMES)
    assert all(r < 1e-8 for r in ratios.values()), ratios
    # The noise is coloured like the mel in the specgrad form only: at the clip's loudness, its log-mel is far
    # closer to the clip's than white noise's.
    mel = data.log_mel(real)
    white = torch.randn(real.shape, generator=torch.Generator().manual_seed(9))
    distance = lambda n: float((data.log_mel(n * (real.pow(2).mean() / n.pow(2).mean()).sqrt()) - mel).abs().mean())
    ratio = distance(noises[-1][:, 0].float()) / distance(white)
    assert ratio < 0.5 if form == "specgrad" else 0.8 < ratio < 1.25, ratio
