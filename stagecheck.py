"""Does each conditioned stage do its job?  Checked at sampling time, on held-out real clips (issues 12, 13).

A training loss that goes down proves little: the first shipped super-resolution stage reached a low loss and yet
ignored its input entirely. This file asks each stage the questions that would have caught it, with the shipped
sampling settings (SAMPLING in each stage file), and always next to the answer of *no model at all*:

    waveform cascader (3.2 -> 16 kHz) and super-resolution (16 -> 24 kHz); the input is the real clip's own
    low-rate version, so the real clip is the right answer:
      given band    RMS error below the input's Nyquist frequency (should be ~0), against plain FFT resampling
      added band    log-spectral distance (dB) to the real clip above it, against plain resampling's empty band
                    and against the output made from another clip's input (a stage that ignores its input scores
                    the same on both)
      teacher-forced  the error of the model's x0 estimate at several noise levels t, as a share of the error of
                    "x0 = the upsampled input" (the no-model answer): below 1 means the model adds something true
      correlation   of the added band of two outputs made from two different inputs with the same seed (near 1 =
                    the stage ignores its input)
      from noised   the real band noised to t0 = 0.2 ... 1, then sampled down: its loudness against the real
                    band's and its error, for each t0 (which noise levels decide what the added band holds)
    vocoder (log-mel -> 16 kHz):
      log-mel distance of its output to the real clip, against Griffin-Lim from the same mel (no model) and
      against the output made from another clip's mel; in the specgrad form also the figures of its own noise
      coloured by the mel (that form's no-network answer)
    and the two model-free figures of the issue, on the outputs and on the real clips:
      flatness      median over 64 ms frames of the spectral flatness (geometric / arithmetic mean of the power,
                    47 Hz-4 kHz) after whitening by the clip's own mean spectrum: ~0.56 for stationary noise of any
                    colour, near 0 for notes that start and stop
      persistence   the log-mel with each band's and each frame's mean removed, correlated with itself 50 ms
                    later: ~0 for noise or speckle, 0.5-0.9 for real music (harmonic lines last)
    generators (text -> 3.2 kHz audio or log-mel): does the text matter?
      teacher-forced  the error of the x0 estimate from a noised real clip with its own caption and with another
                    clip's, as a share of the error with no text at all (the no-model answer): a generator that
                    reads its caption scores below 1 with its own and higher with another's
      correlation   of two samples made with the same seed from two captions (near 1 = the text is ignored), beside
                    two samples from one caption and two seeds (how much the seed alone moves a sample)
    routes          both routes fed a real clip's first stage (its 3.2 kHz version, or its log-mel), all the way
                    to 24 kHz: the cascade above the generator must preserve music on both figures

    python stagecheck.py [--data data/music21] [--checkpoints checkpoints] [--n 6] [--seconds 4]   (make check-stages)
    python stagecheck.py --figures samples/*.wav        the two figures of any audio files (make sample's outputs)
    python stagecheck.py --envelope-bands 200           how well the top of each cascader's input predicts the
                                                        loudness of the band it adds (residual.py's envelope form)
    python stagecheck.py --colouring 6                  what the vocoder's specgrad form stands on: the clips with
                                                        white or mel-coloured noise added, and that noise alone
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import audio_io
import checkpoint
import data
import diffusion
import residual
import sample
import stage1_generator
import stage2_cascader
import stage3_superres
import text_encoder
import vocoder

# ---------------------------------------------------------------------------------------------------------------
# 1. The model-free figures
# ---------------------------------------------------------------------------------------------------------------


def _power(audio, rate, frame_seconds=0.064, hop_seconds=0.016):
    """(B, T) -> (B, bins, frames) power spectrogram with Hann frames of 64 ms and frequencies (bins,) in Hz."""
    n_fft = round(frame_seconds * rate)
    spec = torch.stft(audio.float(), n_fft, hop_length=round(hop_seconds * rate), window=torch.hann_window(n_fft),
                      center=False, return_complex=True)
    return spec.abs().pow(2), torch.fft.rfftfreq(n_fft, 1 / rate)


def flatness(audio, rate, band=(47.0, 4000.0)):
    """(B, T) -> (B,): median over frames of the whitened spectral flatness (see the top of this file)."""
    power, freqs = _power(audio, rate)
    power = power[:, (freqs >= band[0]) & (freqs <= band[1])] + 1e-12       # (B, bins, frames)
    white = power / power.mean(dim=2, keepdim=True)                          # divide out the clip's mean spectrum
    per_frame = white.log().mean(dim=1).exp() / white.mean(dim=1)            # (B, frames): geometric / arithmetic
    return per_frame.median(dim=1).values


def persistence(audio, rate, lag_seconds=0.05):
    """(B, T) -> (B,): correlation of the centred log-mel with itself `lag_seconds` later (see the top)."""
    mel = data.log_mel(data.resample(audio.float(), rate, data.MEL_RATE))    # (B, 80, F), 100 frames/s
    mel = mel - mel.mean(dim=2, keepdim=True)                                # each band's mean
    mel = mel - mel.mean(dim=1, keepdim=True)                                # each frame's mean
    lag = round(lag_seconds * data.MEL_RATE / data.MEL_HOP)
    a, b = mel[..., :-lag], mel[..., lag:]
    return (a * b).sum(dim=(1, 2)) / ((a * a).sum(dim=(1, 2)) * (b * b).sum(dim=(1, 2))).sqrt().clamp(min=1e-12)


def log_spectral_distance(audio, reference, rate, band):
    """(B, T) twice -> (B,): the RMS over bins in `band` (Hz) of the difference of the power spectra in dB, averaged
    over frames. A floor of -100 dB stands for an empty band."""
    p, freqs = _power(audio, rate)
    q, _ = _power(reference, rate)
    keep = (freqs >= band[0]) & (freqs < band[1])
    db = lambda x: 10 * torch.log10(x[:, keep] + 1e-10)
    return (db(p) - db(q)).pow(2).mean(dim=1).sqrt().mean(dim=1)


# ---------------------------------------------------------------------------------------------------------------
# 2. The stage checks
# ---------------------------------------------------------------------------------------------------------------

TEACHER_TIMES = (0.05, 0.2, 0.5, 0.8)
CASCADERS = {  # name -> (module, low rate, rate)
    "waveform-cascader": (stage2_cascader, stage2_cascader.LOW_RATE, stage2_cascader.RATE),
    "superres": (stage3_superres, stage3_superres.LOW_RATE, stage3_superres.RATE),
}


def _generate(name, model, config, low, text, seed, settings=None):
    """One conditioned stage with its own sampling defaults (SAMPLING in its file), `settings` over them, and a
    fixed seed."""
    common = dict(config=config, generator=torch.Generator().manual_seed(seed), **(settings or {}))
    if name == "waveform-cascader":
        return stage2_cascader.generate(model, low, *text, **common)
    if name == "superres":
        return stage3_superres.generate(model, low, **common)
    return vocoder.generate(model, low, **common)


@torch.no_grad()
def teacher_forced(name, model, config, real, text):
    """{t: error of the model's x0 estimate / error of the no-model answer}, the conditioning as in sampling.

    In audio units for both forms: for a cascader the no-model answer is the upsampled input (the residual form's
    x0 = 0), for the vocoder it is silence. The conditioning is noised to the shipped sampling level u."""
    module, low_rate, rate = CASCADERS.get(name, (vocoder, None, vocoder.RATE))
    cfg = argparse.Namespace(**{**config, "form": config.get("form", "paper")})
    g = torch.Generator().manual_seed(0)
    u = torch.full((real.shape[0],), module.SAMPLING["cond_noise"])
    if name == "vocoder":
        mel = data.log_mel(real)                                             # (B, 80, F)
        cond = vocoder.standardise(mel, config)
        scale = vocoder.waveform_divisor(mel, config)                        # a float, or the mel's envelope (B, T)
        x0, truth, base = (real / scale)[:, None], real, torch.zeros_like(real)
        kwargs = lambda c: dict(aligned=c)
        colour = vocoder.noise_colour(mel, config)                           # the specgrad form's, else None
    else:
        cond, x0 = residual.loss_inputs(real, low_rate, rate, cfg)          # (B, 1, T) each, in the form's units
        truth, base = real, residual.lowpass(real, low_rate, rate)
        scale = residual.scale(base, low_rate, rate, config)                 # a float, or the envelope (B, T)
        kwargs = lambda c: dict(cond=c, text_emb=text[0], text_mask=text[1]) if text[0] is not None else dict(cond=c)
        colour = None
    cond = diffusion.noise_condition(cond, u, schedule=cfg.schedule, generator=g)
    ratios = {}
    for t in TEACHER_TIMES:
        tt = torch.full((real.shape[0],), t)
        alpha, sigma = diffusion.alpha_sigma(tt, cfg.schedule)
        eps = torch.randn(x0.shape, generator=g)
        eps = eps if colour is None else colour(eps)
        x_t = diffusion._bcast(alpha, x0) * x0 + diffusion._bcast(sigma, x0) * eps
        x0_hat, _ = diffusion.to_x0_eps(model(x_t, tt, cond_noise=u, **kwargs(cond)), x_t, alpha, sigma, cfg.objective)
        if name == "vocoder":
            estimate = x0_hat[:, 0] * scale
        elif cfg.form in ("residual", "envelope"):
            estimate = base + residual.highpass(scale * x0_hat[:, 0], low_rate, rate)
        else:
            estimate = x0_hat[:, 0]
        ratios[t] = float((estimate - truth).pow(2).mean() / (base - truth).pow(2).mean().clamp(min=1e-20))
    return ratios


def check_cascader(name, model, config, real, text, settings=None):
    """The four questions for the waveform cascader or super-resolution on real clips (B, T) at the stage's rate;
    `settings` (steps, gamma, ...) replace the shipped sampling settings."""
    _, low_rate, rate = CASCADERS[name]
    low = data.resample(real, rate, low_rate)                                # what the earlier stage hands over
    swapped = low.roll(1, dims=0)                                            # another clip's input, same seed
    swapped_text = tuple(None if z is None else z.roll(1, dims=0) for z in text)
    out = _generate(name, model, config, low, text, 0, settings)[:, :real.shape[1]]
    out_swapped = _generate(name, model, config, swapped, swapped_text, 0, settings)[:, :real.shape[1]]
    plain = data.resample(low, low_rate, rate)
    given, added = (0.0, low_rate / 2), (low_rate / 2, rate / 2)
    rms = lambda z: float(z.pow(2).mean().sqrt())
    lowpass = lambda z: residual.lowpass(z, low_rate, rate)
    high = lambda z: residual.highpass(z, low_rate, rate)
    corr = torch.nn.functional.cosine_similarity(high(out), high(out_swapped), dim=1)
    return {
        "given_band_error": rms(lowpass(out) - lowpass(real)),
        "given_band_error_plain": rms(plain - lowpass(real)),
        "added_band_lsd": float(log_spectral_distance(out, real, rate, added).mean()),
        "added_band_lsd_plain": float(log_spectral_distance(plain, real, rate, added).mean()),
        "added_band_lsd_swapped": float(log_spectral_distance(out_swapped, real, rate, added).mean()),
        "added_band_rms": rms(high(out)), "added_band_rms_real": rms(high(real)),
        # Each clip's: does the band's loudness follow the clip's, or is it one loudness for every input?
        "added_band_rms_each": high(out).pow(2).mean(dim=1).sqrt().tolist(),
        "added_band_rms_real_each": high(real).pow(2).mean(dim=1).sqrt().tolist(),
        "swap_correlation": float(corr.mean()),
        "teacher_forced": teacher_forced(name, model, config, real, text),
        "given_band": given, "added_band": added,
    }


FROM_NOISED_TIMES = (0.2, 0.5, 0.8, 1.0)     # from_noised's start times t0; log-SNR +0.7, -2.5, -6.4, -10 (linear)


@torch.no_grad()
def from_noised(name, model, config, real, text, times=FROM_NOISED_TIMES):
    """Which noise levels decide the added band?  The real clip's own diffused signal (its residual band, in the
    residual form) noised to t0, then the shipped sampler from t0 down to 0 (diffusion.sample's `start`):
    {t0: {"logsnr", "rms_ratio": median over clips of added-band RMS out / real, "error": the added band's squared
    error / its power}}. A stage that knows its band from its input keeps the ratio near 1 and the error low from
    every t0; where the figures break down is where the sampler stops finding what the input says (README)."""
    _, low_rate, rate = CASCADERS[name]
    cfg = argparse.Namespace(**{**config, "form": config.get("form", "paper")})
    low = data.resample(real, rate, low_rate)
    _, x0 = residual.loss_inputs(real, low_rate, rate, cfg)                  # (B, 1, T) in the sampler's units
    power = lambda z: residual.highpass(z, low_rate, rate).pow(2).mean(dim=1)   # (B,) the added band's power
    g = torch.Generator().manual_seed(3)
    out = {}
    for t0 in times:
        alpha, sigma = diffusion.alpha_sigma(torch.tensor(t0), cfg.schedule)
        x_t0 = alpha * x0 + sigma * torch.randn(x0.shape, generator=g)
        made = _generate(name, model, config, low, text, 0, {"start": (x_t0, t0)})[:, :real.shape[1]]
        out[t0] = {"logsnr": float(diffusion.logsnr(torch.tensor(t0), cfg.schedule)),
                   "rms_ratio": _median((power(made) / power(real).clamp(min=1e-20)).sqrt()),
                   "error": float(power(made - real).sum() / power(real).sum().clamp(min=1e-20))}
    return out


def check_vocoder(model, config, real, settings=None):
    """The vocoder against Griffin-Lim on real 16 kHz clips (B, T); `settings` as in check_cascader."""
    mel = data.log_mel(real)                                                 # (B, 80, F)
    out = _generate("vocoder", model, config, mel, None, 0, settings)
    out_swapped = _generate("vocoder", model, config, mel.roll(1, dims=0), None, 0, settings)
    gl = vocoder.griffin_lim(mel, generator=torch.Generator().manual_seed(0))
    distance = lambda z: float((data.log_mel(z[:, :real.shape[1]]) - mel).abs().mean())
    result = {"log_mel_distance": distance(out), "log_mel_distance_griffin_lim": distance(gl),
              "log_mel_distance_swapped": distance(out_swapped),
              "flatness": _median(flatness(out, vocoder.RATE)), "persistence": _median(persistence(out, vocoder.RATE)),
              "flatness_griffin_lim": _median(flatness(gl, vocoder.RATE)),
              "persistence_griffin_lim": _median(persistence(gl, vocoder.RATE)),
              "teacher_forced": teacher_forced("vocoder", model, config, real, (None, None))}
    colour = vocoder.noise_colour(mel, config)
    if colour is not None:                   # the specgrad form's own no-network answer: its noise, coloured
        white = torch.randn(real[:, None].shape, generator=torch.Generator().manual_seed(0))
        coloured = colour(white)[:, 0] * vocoder.waveform_divisor(mel, config)
        result.update(log_mel_distance_colour=distance(coloured),
                      flatness_colour=_median(flatness(coloured, vocoder.RATE)),
                      persistence_colour=_median(persistence(coloured, vocoder.RATE)))
    return result


def _centred_correlation(a, b):
    """(B, ...) x 2 -> mean over the batch of the cosine similarity of each example with its mean removed."""
    a, b = (z.reshape(z.shape[0], -1) for z in (a, b))
    a, b = a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True)
    return float(torch.nn.functional.cosine_similarity(a, b, dim=1).mean())


@torch.no_grad()
def generator_x0_errors(model, config, x0, t, texts, generator):
    """A generator's x0 (B, C, T), noised to time t with one draw from `generator` -> {name: (B,) mean squared error
    of the network's x0 estimate per clip} for each of `texts`, {name: (emb, mask), or None for no text}: the same
    noisy input under every text, so that only the text differs."""
    tt = torch.full((x0.shape[0],), t)
    alpha, sigma = diffusion.alpha_sigma(tt, config["schedule"])
    x_t = diffusion._bcast(alpha, x0) * x0 + diffusion._bcast(sigma, x0) * torch.randn(x0.shape, generator=generator)

    def error(text):
        pred = model(x_t, tt) if text is None else model(x_t, tt, text_emb=text[0], text_mask=text[1])
        x0_hat, _ = diffusion.to_x0_eps(pred, x_t, alpha, sigma, config["objective"])
        return (x0_hat - x0).pow(2).flatten(1).mean(1)                       # (B,)
    return {name: error(text) for name, text in texts.items()}


def check_generator(model, config, audio, text, seconds, settings=None):
    """Does the text matter to a generator? On real clips (B, T) at its rate (3.2 kHz, or 16 kHz for the log-mel)
    and their captions `text` = (emb (B, L, D), mask (B, L)):

      teacher_forced  {t: (own, swapped)}: the error of the x0 estimate from the noised real clip with its own
                      caption, and with another clip's, as a share of the error with no text (the no-model
                      answer for the text). Own below 1 and below swapped = the model reads the caption.
      swap_correlation  of two samples with the same seed and two captions (near 1 = the text is ignored), beside
                      seed_correlation, two seeds and the same caption (how much the noise alone changes a sample).
    Both in the model's own units (standardised mel bins or unit-RMS audio in the scaled form)."""
    emb, mask = text
    swapped = (emb.roll(1, dims=0), mask.roll(1, dims=0))
    x0 = stage1_generator.to_x0(audio, config)                              # (B, 80, F) or (B, 1, T)
    g = torch.Generator().manual_seed(0)
    ratios = {}
    for t in TEACHER_TIMES:
        e = generator_x0_errors(model, config, x0, t, {"none": None, "own": text, "swapped": swapped}, g)
        none = max(float(e["none"].mean()), 1e-20)
        ratios[t] = (float(e["own"].mean()) / none, float(e["swapped"].mean()) / none)

    def sample(seed, prompt):
        out = stage1_generator.generate(model, *prompt, config=config, seconds=seconds,
                                        generator=torch.Generator().manual_seed(seed), **(settings or {}))
        spec = config["repr"] == "spec"                                      # out: (B, 80, F) mel or (B, T)
        return stage1_generator.to_x0(None, config, mel=out) if spec else stage1_generator.to_x0(out, config)
    first = sample(0, text)
    return {"teacher_forced": ratios, "swap_correlation": _centred_correlation(first, sample(0, swapped)),
            "seed_correlation": _centred_correlation(first, sample(1, text))}


GENERATORS = ("spectrogram-generator", "waveform-generator")
GENERATOR_RATES = {"wave": stage1_generator.WAVE_RATE, "spec": data.MEL_RATE}   # the audio each one is trained on


def check_routes(models, real24, captions, t5):
    """Both routes from a real clip's first stage to 24 kHz: {route: (flatness, persistence)} medians."""
    out = {}
    real16 = data.resample(real24, 24000, 16000)
    text = (None, None)
    if "waveform-cascader" in models:
        cfg = models["waveform-cascader"][1]
        text = t5.encode(captions, max_length=cfg["text_length"])
        low = data.resample(real16, 16000, stage2_cascader.LOW_RATE)
        mid = _generate("waveform-cascader", *models["waveform-cascader"], low, text, seed=1)
        out["wave"] = mid
    if "vocoder" in models:
        out["spec"] = _generate("vocoder", *models["vocoder"], data.log_mel(real16), None, seed=1)
    # The spectrogram route with its no-model vocoder (sample.py --steps-vocoder 0), to say what the trained one
    # costs or gains.
    out["spec, Griffin-Lim"] = vocoder.griffin_lim(data.log_mel(real16), generator=torch.Generator().manual_seed(1))
    figures = {}
    for route, mid in out.items():
        high = _generate("superres", *models["superres"], mid, None, seed=2) if "superres" in models else \
            data.resample(mid, 16000, 24000)
        figures[route] = {"flatness": _median(flatness(high, 24000)), "persistence": _median(persistence(high, 24000))}
    return figures


def _median(values):
    return float(values.median())


# ---------------------------------------------------------------------------------------------------------------
# 3. The command
# ---------------------------------------------------------------------------------------------------------------


def run(folder, checkpoints, n=6, seconds=4.0, route_seconds=10.0, log=print):
    """Every check whose checkpoint exists in `checkpoints`, on the first n clips of `folder`; returns a dict."""
    torch.manual_seed(0)
    models = {}
    for name in GENERATORS + ("waveform-cascader", "vocoder", "superres"):
        if (Path(checkpoints) / f"{name}.pt").is_file():
            models[name] = sample.load_stage(checkpoints, name, torch.device("cpu"))
    if not set(models) - set(GENERATORS):
        raise checkpoint.CheckpointError(f"no conditioned stage checkpoint in {checkpoints}; run `make train-cascader`, "
                                    f"`make train-vocoder` or `make train-superres` first.")
    # One T5 for every stage that reads text; each must have been trained with an encoder of its width.
    t5 = None
    for name in [name for name in models if name in GENERATORS or name == "waveform-cascader"]:
        model, config = models[name]
        t5 = t5 or text_encoder.load_t5(config.get("t5") or text_encoder.DEMO_T5_DIR)
        if t5.dim != model.config.text_dim:
            raise sample.SampleError(f"the {name} was trained with a {model.config.text_dim}-wide text encoder but "
                                     f"{config.get('t5') or 'the demo encoder'} is {t5.dim} wide.")
    result = {"clips": n, "seconds": seconds}
    real24 = data.fixed_batch(folder, 24000, n=n, seconds=seconds, multiple=1920)
    if real24["audio"].shape[0] < 2:
        raise data.DataError(f"{folder} holds fewer than 2 clips; the swapped-input checks need two or more.")
    result["real"] = {"flatness": _median(flatness(real24["audio"], 24000)),
                      "persistence": _median(persistence(real24["audio"], 24000))}
    for name, (model, config) in models.items():
        rate = GENERATOR_RATES[config["repr"]] if name in GENERATORS else 24000 if name == "superres" else 16000
        batch = data.fixed_batch(folder, rate, n=n, seconds=seconds, multiple=1920)
        start = time.perf_counter()
        if name in GENERATORS:
            text = t5.encode(batch["caption"], max_length=config["text_length"])
            result[name] = check_generator(model, config, batch["audio"], text, seconds)
        elif name == "vocoder":
            result[name] = check_vocoder(model, config, batch["audio"])
        else:
            text = t5.encode(batch["caption"], max_length=config["text_length"]) if name == "waveform-cascader" \
                else (None, None)
            result[name] = check_cascader(name, model, config, batch["audio"], text)
            result[name]["from_noised"] = from_noised(name, model, config, batch["audio"], text)
        log(f"{name}: checked in {time.perf_counter() - start:.0f} s")
    longer = data.fixed_batch(folder, 24000, n=n, seconds=route_seconds, multiple=1920)
    result["real_routes"] = {"flatness": _median(flatness(longer["audio"], 24000)),
                             "persistence": _median(persistence(longer["audio"], 24000))}
    result["routes"] = check_routes(models, longer["audio"], longer["caption"], t5)
    return result


def format_report(r):
    """The result as the plain-text table the README shows."""
    lines = [f"{r['clips']} {r.get('split', 'held-out')} clips of {r['seconds']:g} s; real clips: flatness "
             f"{r['real']['flatness']:.3f}, "
             f"persistence {r['real']['persistence']:.3f}"]
    for name in GENERATORS:
        if name in r:
            c = r[name]
            lines += [f"{name} (does the text matter?):",
                      "  teacher-forced x0 error / no-text error, own caption | another clip's: "
                      + ", ".join(f"t={t:g} {own:.4f} | {other:.4f}" for t, (own, other) in c["teacher_forced"].items()),
                      f"  same seed, two captions: sample correlation {c['swap_correlation']:.4f}   (same caption, "
                      f"two seeds: {c['seed_correlation']:.3f})"]
    for name in ("waveform-cascader", "superres"):
        if name in r:
            c = r[name]
            lo, hi = (f"{f / 1000:g}" for f in c["added_band"])
            lines += [f"{name}:",
                      f"  given band 0-{lo} kHz, RMS error   {c['given_band_error']:.5f}   (plain resampling "
                      f"{c['given_band_error_plain']:.5f})",
                      f"  added band {lo}-{hi} kHz, LSD        {c['added_band_lsd']:.1f} dB   (empty band "
                      f"{c['added_band_lsd_plain']:.1f} dB, another clip's input {c['added_band_lsd_swapped']:.1f} dB)",
                      f"  added band RMS                {c['added_band_rms']:.5f}   "
                      f"(real {c['added_band_rms_real']:.5f})",
                      "  each clip's added band RMS (real): " + ", ".join(f"{a:.5f} ({b:.5f})" for a, b in
                                                                          zip(c["added_band_rms_each"],
                                                                              c["added_band_rms_real_each"])),
                      f"  same seed, two inputs: added-band correlation {c['swap_correlation']:.3f}",
                      "  teacher-forced x0 error / no-model error: "
                      + ", ".join(f"t={t:g} {v:.3f}" for t, v in c["teacher_forced"].items())]
            if "from_noised" in c:
                lines.append("  sampled from the real band noised to t0 (log-SNR): added-band RMS / real, error / "
                             "power: " + ", ".join(f"t0={t} ({f['logsnr']:+.1f}) {f['rms_ratio']:.2f}, "
                                                  f"{f['error']:.2f}" for t, f in c["from_noised"].items()))
    if "vocoder" in r:
        v = r["vocoder"]
        lines += ["vocoder:",
                  f"  log-mel distance to the real clip {v['log_mel_distance']:.4f}   (Griffin-Lim "
                  f"{v['log_mel_distance_griffin_lim']:.4f}, another clip's mel {v['log_mel_distance_swapped']:.4f})",
                  f"  flatness {v['flatness']:.3f}, persistence {v['persistence']:.3f}   (Griffin-Lim "
                  f"{v['flatness_griffin_lim']:.3f}, {v['persistence_griffin_lim']:.3f})",
                  "  teacher-forced x0 error / silence's error: "
                  + ", ".join(f"t={t:g} {v:.3f}" for t, v in v["teacher_forced"].items())]
        if "log_mel_distance_colour" in v:
            lines.append(f"  its noise coloured by the mel, no network (specgrad form): log-mel distance "
                         f"{v['log_mel_distance_colour']:.4f}, flatness {v['flatness_colour']:.3f}, persistence "
                         f"{v['persistence_colour']:.3f}")
    rr = r["real_routes"]
    lines.append(f"routes fed a real clip's first stage (real clips: flatness {rr['flatness']:.3f}, "
                 f"persistence {rr['persistence']:.3f}):")
    for route, f in r["routes"].items():
        lines.append(f"  {route}: flatness {f['flatness']:.3f}, persistence {f['persistence']:.3f}")
    return "\n".join(lines)


def print_envelope_bands(folder, n):
    """residual.envelope_bands for both waveform cascaders on the first n clips of `folder` (4 s from each start)."""
    rows = {}
    for name, (_, low_rate, rate) in CASCADERS.items():
        audio = data.fixed_batch(folder, rate, n=n, seconds=4.0)["audio"]
        rows[name] = residual.envelope_bands(audio, low_rate, rate)
    print(f"{audio.shape[0]} clips of 4 s from {folder}. Spread (std, nepers) over 50 ms frames of the added band's "
          f"log RMS, and of its log ratio to the RMS of the top part of the given band (f_c: the input's Nyquist "
          f"frequency):")
    shares = residual.ENVELOPE_SHARES
    print(f"{'stage':<20}{'added band':>12}" + "".join(f"{f'top {1 - s:g} of f_c':>18}" for s in shares))
    for name, spread in rows.items():
        print(f"{name:<20}{spread['added']:>12.2f}" + "".join(f"{spread[s]:>18.2f}" for s in shares))


COLOUR_FLOORS, COLOUR_SNRS = (1e-2, 1e-3, 1e-4), (30, 20, 10)


def print_colouring(folder, n):
    """What the vocoder's specgrad form stands on, on the first n clips of `folder` (4 s each): how far from the
    clip's own log-mel (and how music-like) the clip is with white or coloured noise added at a few SNRs, and the
    coloured noise alone, for each floor of the colouring's gain; and how close the inverse colouring (the loss's
    whitening, same floor) brings coloured noise back to white (RMS, 1 = exact)."""
    real = data.fixed_batch(folder, vocoder.RATE, n=n, seconds=4.0, multiple=data.MEL_HOP)["audio"]   # (B, T)
    mel = data.log_mel(real)
    config = {"form": "specgrad", "signal_scale": data.signal_rms(real)}
    x0 = real / config["signal_scale"]
    white = torch.randn(x0[:, None].shape, generator=torch.Generator().manual_seed(0))            # (B, 1, T)

    def figures(x):
        audio = x * config["signal_scale"]
        distance = float((data.log_mel(audio) - mel).abs().mean())
        return (f"{distance:.3f}, {_median(flatness(audio, vocoder.RATE)):.2f}, "
                f"{_median(persistence(audio, vocoder.RATE)):.2f}")
    gl = vocoder.griffin_lim(mel, generator=torch.Generator().manual_seed(0)) / config["signal_scale"]
    print(f"{real.shape[0]} clips of 4 s from {folder}: log-mel distance to the clip's mel, flatness, persistence "
          f"(the clips: 0, {_median(flatness(real, vocoder.RATE)):.2f}, {_median(persistence(real, vocoder.RATE)):.2f};"
          f" Griffin-Lim: {figures(gl)})")
    level = lambda noise, snr: noise * (x0.pow(2).mean() / noise.pow(2).mean()).sqrt() * 10 ** (-snr / 20)
    print("  clip + white noise: " + "; ".join(f"{snr} dB {figures(x0 + level(white[:, 0], snr))}"
                                               for snr in COLOUR_SNRS))
    for floor in COLOUR_FLOORS:
        coloured = vocoder.stft_filter(white, vocoder.stft_gain(mel, config, floor))[:, 0]
        back = vocoder.stft_filter(coloured[:, None], 1 / vocoder.stft_gain(mel, config, floor))
        print(f"  floor {floor:g}: coloured noise alone {figures(coloured)} (RMS / the clip's "
              f"{float(coloured.pow(2).mean().sqrt() / x0.pow(2).mean().sqrt()):.2f}); clip + coloured noise: "
              + "; ".join(f"{snr} dB {figures(x0 + level(coloured, snr))}" for snr in COLOUR_SNRS)
              + f"; whitened back: RMS {float(back.pow(2).mean().sqrt()):.2f}")
    coloured = vocoder.noise_colour(mel, config)(white)                      # as the specgrad form trains
    back = vocoder.loss_whitening(mel, config)(coloured)
    print(f"  as trained, coloured at {vocoder.NOISE_FLOOR:g} and whitened at {vocoder.LOSS_FLOOR:g}: RMS "
          f"{float(back.pow(2).mean().sqrt()):.2f}")


def file_figures(paths):
    """{path: (flatness, persistence)} of audio files at their own rate (mono): is what a stage wrote music?"""
    import soundfile as sf
    figures = {}
    for path in paths:
        try:
            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except (OSError, RuntimeError) as err:
            raise data.DataError(f"cannot read {path} ({err}); give a WAV or FLAC file.") from None
        clip = torch.from_numpy(audio.mean(axis=1))[None]                   # (1, T)
        figures[str(path)] = (float(flatness(clip, rate)[0]), float(persistence(clip, rate)[0]))
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python stagecheck.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/music21", help="the corpus (make data); its test/ split is used")
    parser.add_argument("--checkpoints", default="checkpoints", help="folder of stage checkpoints")
    parser.add_argument("--n", type=int, default=6, help="held-out clips (2 or more)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each clip for the stage checks")
    parser.add_argument("--out", default="runs/check-stages/stages.json", help="where the result is written")
    parser.add_argument("--figures", nargs="+", metavar="FILE", help="only print the flatness and persistence of "
                        "these audio files (e.g. make sample's outputs) and stop")
    parser.add_argument("--envelope-bands", type=int, metavar="N", help="only measure, on N held-out clips, how well "
                        "the top of each cascader's input predicts the loudness of the band it adds, and stop")
    parser.add_argument("--colouring", type=int, metavar="N", help="only measure, on N held-out clips, what the "
                        "vocoder's specgrad form stands on: the clips with white or coloured noise added, and stop")
    args = parser.parse_args(argv)
    if args.figures:
        try:
            for path, (flat, persist) in file_figures(args.figures).items():
                print(f"{path}: flatness {flat:.3f}, persistence {persist:.3f}   (real clips: ~0.06, ~0.8; noise "
                      f"~0.56, ~0)")
        except data.DataError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    folder = Path(args.data) / "test" if (Path(args.data) / "test").is_dir() else Path(args.data)
    for flag, measure in (("envelope_bands", print_envelope_bands), ("colouring", print_colouring)):
        clips = getattr(args, flag)
        if clips is None:
            continue
        if clips < 1:
            parser.error(f"--{flag.replace('_', '-')} needs a number of clips, 1 or more.")
        try:
            measure(folder, clips)
        except data.DataError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    if args.n < 2 or not 1.0 <= args.seconds <= 30.0:
        parser.error("--n must be at least 2 (the swapped input comes from another clip) and --seconds in 1..30.")
    try:
        result = run(folder, args.checkpoints, n=args.n, seconds=args.seconds)
    except (checkpoint.CheckpointError, data.DataError, sample.SampleError, text_encoder.TextEncoderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_report(result))
    record = {"command": " ".join(["python stagecheck.py"] + (argv if argv is not None else sys.argv[1:])),
              "result": result}
    audio_io.atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2)))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
