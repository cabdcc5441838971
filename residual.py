"""The residual form of the two waveform cascaders: output = upsampled input + a diffused, band-limited residual.

[choice, issue 12; the paper's form is `--form=paper`]  The paper's cascaders (Sec. 3.3.1, 3.3.3) diffuse the whole
high-rate waveform and are told the upsampled low-rate one. Measured on this project's corpus, that fails at any
size we can train: clips have RMS 0.1 while the noise schedules assume unit-scale data, and the band a stage must
add is tiny (RMS 0.001 above 8 kHz for super-resolution), so unit noise buries it at every t. The tiny
super-resolution model trained that way ignored its input (the added bands of its outputs for two different inputs
correlated 0.989) and its output's 0-8 kHz band erred by 0.105 RMS from the input it was given (`make
check-stages`; README, "Does each stage do its job?").

The residual form splits each high-rate clip x (B, T) at the low rate's Nyquist frequency f_c:

    x = lowpass(x) + highpass(x)          lowpass(x) = up(down(x)): exactly what the earlier stage hands over
    x0 = highpass(x) / residual_scale     the diffused signal: only the missing band, at about unit variance
    cond = lowpass(x) / cond_scale        the conditioning: the given band, at about unit variance

and at sampling time writes the output as

    y = up(input) + residual_scale * highpass(x0_hat)

so the band the stage is given comes out exactly as it went in (from the first training step on; a test checks
it), and the network spends everything it has on the band it must add. Both scales are RMS values measured on the
training clips when a run starts (train.py, `_calibrate`) and kept in the checkpoint's config.

[choice, issue 12] The envelope form (`--form=envelope`) divides the residual by a loudness read from the input
as well, so the model is told how loud the band it adds should be instead of having to guess:

    x0 = highpass(x) / (residual_scale * e)          y = up(input) + residual_scale * e * x0_hat

where e (B, T) is the RMS over 50 ms windows of the given band's top (from `envelope_band` times its Nyquist
frequency up to it; for super-resolution 7-8 kHz, right under the 8-12 kHz band it adds), floored: `envelope`.
Measured on 200 held-out clips (`python stagecheck.py --envelope-bands 200`, `envelope_bands` below), the log RMS of
super-resolution's 8-12 kHz band per 50 ms frame spreads over 1.58 nepers (std), and its log ratio to the 7-8 kHz
band over only 0.82, the best of the bands tried; for the waveform cascader's 1.6-8 kHz band the best predictor
(0.4-1.6 kHz) leaves 0.86 of 1.16, which is why only super-resolution was retrained in this form. The tiny
super-resolution model trained in the plain residual form wrote the same faint band for every clip (RMS 0.0001
where the real bands span 0.00012-0.0038): with unit-variance noise in, it learned the corpus average and nothing
of its input. Dividing by e is a data-dependent scale in the spirit of PriorGrad (Lee et al., 2022), which adapts the diffusion
prior to the conditioning. e depends only on what the stage is given, so sampling computes it exactly as training.

Shapes: audio (B, T) at the stage's rate; cond and x0 (B, 1, T); e (B, T).
"""

import torch

import checkpoint
import data

FORMS = ("residual", "envelope", "paper")
ENVELOPE_SHARES = (0.25, 0.5, 0.75, 0.875)     # envelope bands tried: from share * f_c up to f_c, f_c = low_rate / 2
ENVELOPE_SECONDS = 0.05        # its smoothing window: 50 ms, about a note onset's length
ENVELOPE_FLOOR = 0.05          # its floor, as a share of the corpus RMS of that band: keeps x0 bounded in silence


def highpass(audio, low_rate, rate):
    """(..., T) at `rate` -> (..., T): the content at or above low_rate / 2, by zeroing the FFT bins below it.
    The complement of data.resample's round trip: audio - highpass(audio) == up(down(audio)) to float precision."""
    return audio - lowpass(audio, low_rate, rate)


def lowpass(audio, low_rate, rate):
    """(..., T) -> (..., T): what survives a trip down to `low_rate` and back up (data.resample, brick-wall FFT)."""
    return data.resample(data.resample(audio, rate, low_rate), low_rate, rate)


def top_band(given, low_rate, rate, share):
    """(B, T) the given band at `rate` -> (B, T): its content between share * low_rate / 2 and low_rate / 2 (FFT
    bins zeroed outside; the Nyquist bin of the low rate belongs to neither band, as in `lowpass`)."""
    spectrum = torch.fft.rfft(given.float(), dim=-1)
    freqs = torch.fft.rfftfreq(given.shape[-1], d=1.0 / rate).to(given.device)
    keep = (freqs >= share * low_rate / 2) & (freqs < low_rate / 2)
    return torch.fft.irfft(spectrum * keep, n=given.shape[-1], dim=-1)


def envelope(given, low_rate, rate, share, floor):
    """(B, T) the given band -> (B, T) e: the RMS of its top band (`top_band`) over a centred ENVELOPE_SECONDS
    window (shortened to the part inside the clip at its ends), combined with `floor` as sqrt(power + floor^2) so
    that silence gives e = floor, not 0. Running sums (float64) make it O(T) at any window length."""
    power = top_band(given, low_rate, rate, share).double().pow(2)            # (B, T)
    half = max(1, round(ENVELOPE_SECONDS * rate / 2))
    window_sum = lambda z: _running(torch.nn.functional.pad(z, (half + 1, half)).cumsum(dim=-1), 2 * half + 1)
    mean = window_sum(power) / window_sum(torch.ones_like(power[:1]))        # (B, T) / (1, T) samples in window
    return (mean.clamp(min=0) + floor**2).sqrt().to(given.dtype)


def _running(cumulative, width):
    """Cumulative sums (B, T + width) -> (B, T): the sums over each window of `width` samples."""
    return cumulative[:, width:] - cumulative[:, :-width]


def calibrate(audio, low_rate, rate, form="residual", envelope_band=None):
    """(B, T) training audio -> {"cond_scale", "residual_scale"} (and "envelope_floor" in the envelope form, whose
    envelope is read from envelope_band * low_rate / 2 up to low_rate / 2): the RMS of the given band, and of the
    missing band (divided by e in the envelope form, so x0 has unit RMS).
    data.signal_rms's floor keeps a corpus with no content above the cut (a band-limited recording) from dividing
    by 0."""
    low = lowpass(audio, low_rate, rate)
    if form != "envelope":
        return {"cond_scale": data.signal_rms(low), "residual_scale": data.signal_rms(audio - low)}
    floor = ENVELOPE_FLOOR * data.signal_rms(top_band(low, low_rate, rate, envelope_band))
    e = envelope(low, low_rate, rate, envelope_band, floor)                    # (B, T)
    return {"cond_scale": data.signal_rms(low), "residual_scale": data.signal_rms((audio - low) / e),
            "envelope_floor": floor}


def scale(given, low_rate, rate, config):
    """(B, T) the given band -> the residual's scale: residual_scale (a float) in the residual form, residual_scale *
    e (B, T) in the envelope form, 1 in the paper's."""
    form, _, residual_scale = stats_of(config)
    if form != "envelope":
        return residual_scale
    return residual_scale * envelope(given, low_rate, rate, float(config["envelope_band"]),
                                     float(config["envelope_floor"]))


def envelope_bands(audio, low_rate, rate, shares=ENVELOPE_SHARES):
    """Does the top of what a cascader is given tell how loud the band it adds is?  The envelope form's reason,
    measured (`python stagecheck.py --envelope-bands N` prints it). audio (B, T) real clips at `rate` -> {"added":
    the spread (std, in nepers) of the added band's log RMS over all 50 ms frames, share: the spread of its log
    ratio to the RMS of the given band from share * f_c up to f_c in the same frames}. A share whose spread is well
    below "added" predicts the loudness: dividing by its envelope leaves the model less to guess. Frames where both
    bands are silent count as a ratio of 1."""
    n = round(ENVELOPE_SECONDS * rate)
    frames = lambda z: z[:, :z.shape[1] // n * n].reshape(z.shape[0], -1, n).pow(2).mean(-1).sqrt()   # (B, F)
    log_rms = lambda z: frames(z).clamp(min=1e-7).log().flatten()
    low = lowpass(audio, low_rate, rate)
    added = log_rms(audio - low)
    spread = {"added": float(added.std())}
    for share in shares:
        spread[share] = float((added - log_rms(top_band(low, low_rate, rate, share))).std())
    return spread


def condition(lowres, low_rate, rate, cond_scale):
    """(B, T_low) audio from the earlier stage -> (upsampled (B, T), network conditioning (B, 1, T))."""
    up = data.resample(lowres.float(), low_rate, rate)
    return up, (up / cond_scale)[:, None]


def sampler_options(form, low_rate, rate, residual_scale=1.0):
    """diffusion.sample's x0 handling for each form. Residual and envelope: every x0 estimate is projected so that
    residual_scale * x0 lies in the band above low_rate / 2 (s * x0 -> highpass(s * x0) / s; for a constant s,
    highpass(x0)), so the residual never touches the given band, and not clipped (a unit-variance residual is not
    bounded by 1). residual_scale: `scale`'s answer. Paper: dynamic clipping at the 99.5th percentile (sample.py's
    generators use the same)."""
    if form == "paper":
        return {"clip_percentile": 0.995, "project": None}
    s = residual_scale[:, None] if torch.is_tensor(residual_scale) else residual_scale     # (B, 1, T) or a float
    return {"clip_percentile": None, "project": lambda x0: highpass(x0 * s, low_rate, rate) / s}


def output(up, x, form, residual_scale):
    """The sampler's result x (B, 1, T) -> the stage's audio (B, T): x itself in the paper's form, else
    up (B, T) + residual_scale * x, the equations at the top of this file (residual_scale: `scale`'s answer)."""
    return x[:, 0] if form == "paper" else up + residual_scale * x[:, 0]


def loss_inputs(audio, low_rate, rate, cfg):
    """A training crop (B, T) -> (cond, x0), each (B, 1, T), in the form `cfg.form` names."""
    form, cond_scale, _ = stats_of(vars(cfg))
    low = lowpass(audio, low_rate, rate)
    if form == "paper":
        return low[:, None], audio[:, None]
    return (low / cond_scale)[:, None], ((audio - low) / scale(low, low_rate, rate, vars(cfg)))[:, None]


def stats_of(config):
    """(form, cond_scale, residual_scale) from a checkpoint's config dict; checkpoints made before the residual form
    existed have no `form` key and are the paper's form."""
    form = config.get("form", "paper")
    if form == "paper":
        return form, 1.0, 1.0
    needed = ("cond_scale", "residual_scale") + (("envelope_band", "envelope_floor") if form == "envelope" else ())
    if not all(config.get(key, 0) > 0 for key in needed):
        raise checkpoint.CheckpointError(f"this {form}-form config has no measured {', '.join(needed)}; train the "
                                         f"stage (train.py measures them) or give the settings.")
    return form, float(config["cond_scale"]), float(config["residual_scale"])

