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

Shapes: audio (B, T) at the stage's rate; cond and x0 (B, 1, T).
"""

import checkpoint
import data

FORMS = ("residual", "paper")


def highpass(audio, low_rate, rate):
    """(..., T) at `rate` -> (..., T): the content at or above low_rate / 2, by zeroing the FFT bins below it.
    The complement of data.resample's round trip: audio - highpass(audio) == up(down(audio)) to float precision."""
    return audio - lowpass(audio, low_rate, rate)


def lowpass(audio, low_rate, rate):
    """(..., T) -> (..., T): what survives a trip down to `low_rate` and back up (data.resample, brick-wall FFT)."""
    return data.resample(data.resample(audio, rate, low_rate), low_rate, rate)


def calibrate(audio, low_rate, rate):
    """(B, T) training audio -> {"cond_scale", "residual_scale"}: the RMS of the given band and of the missing band.
    data.signal_rms's floor keeps a corpus with no content above the cut (a band-limited recording) from dividing
    by 0."""
    low = lowpass(audio, low_rate, rate)
    return {"cond_scale": data.signal_rms(low), "residual_scale": data.signal_rms(audio - low)}


def condition(lowres, low_rate, rate, cond_scale):
    """(B, T_low) audio from the earlier stage -> (upsampled (B, T), network conditioning (B, 1, T))."""
    up = data.resample(lowres.float(), low_rate, rate)
    return up, (up / cond_scale)[:, None]


def sampler_options(form, low_rate, rate):
    """diffusion.sample's x0 handling for each form. Residual: every x0 estimate is projected onto the band above
    low_rate / 2, so the residual never touches the given band, and not clipped (a unit-variance residual is not
    bounded by 1). Paper: dynamic clipping at the 99.5th percentile (sample.py's generators use the same)."""
    if form == "paper":
        return {"clip_percentile": 0.995, "project": None}
    return {"clip_percentile": None, "project": lambda x0: highpass(x0, low_rate, rate)}


def output(up, x, form, residual_scale):
    """The sampler's result x (B, 1, T) -> the stage's audio (B, T): x itself in the paper's form, else
    up (B, T) + residual_scale * x, the equation at the top of this file."""
    return x[:, 0] if form == "paper" else up + residual_scale * x[:, 0]


def loss_inputs(audio, low_rate, rate, cfg):
    """A training crop (B, T) -> (cond, x0), each (B, 1, T), in the form `cfg.form` names."""
    form, cond_scale, residual_scale = stats_of(vars(cfg))
    low = lowpass(audio, low_rate, rate)
    if form == "paper":
        return low[:, None], audio[:, None]
    return (low / cond_scale)[:, None], ((audio - low) / residual_scale)[:, None]


def stats_of(config):
    """(form, cond_scale, residual_scale) from a checkpoint's config dict; checkpoints made before the residual form
    existed have no `form` key and are the paper's form."""
    form = config.get("form", "paper")
    if form == "paper":
        return form, 1.0, 1.0
    if not (config.get("cond_scale", 0) > 0 and config.get("residual_scale", 0) > 0):
        raise checkpoint.CheckpointError("this residual-form config has no measured cond_scale and residual_scale; train "
                                    "the stage (train.py measures them) or give both settings.")
    return form, float(config["cond_scale"]), float(config["residual_scale"])

