"""Stage 3: the super-resolution cascader, 16 kHz audio -> 24 kHz audio (Sec. 3.3.3; Tables 2, 3, 8).

The last stage of both routes. It adds the band from 8 to 12 kHz (air, cymbals, bow noise) to whatever the
waveform cascader or the vocoder produced. It has no text and no attention: a purely local, convolutional repair.

    form           [choice, issue 12] residual.py's envelope form: output = the input FFT-upsampled x1.5 + a
                   diffused residual limited to 8-12 kHz, divided by the loudness of the input's 7-8 kHz band (RMS
                   over 50 ms) and scaled to unit variance; the 0-8 kHz band passes through untouched. In the plain
                   residual form (--form=residual, one constant scale) it wrote the same faint band for every clip;
                   with the envelope its band follows its input (README, "Does each stage do its job?").
                   --form=paper diffuses the whole 24 kHz waveform, as the paper does.
    conditioning   the 16 kHz audio, FFT-upsampled x1.5 to 24 kHz [choice: the paper does not name the method; we
                   use the waveform cascader's], scaled to unit variance and stacked with x_t as a 2nd channel
    corruption     in training only: noise to u ~ U[0, t_max], u given to the network. Sec. 4.1 gives t_max = 1.0;
                   [choice] 0.25, the level at which the noise matches a unit-variance signal (log-SNR 0 on the
                   linear schedule): beyond it the conditioning is buried, and at 1.0 it was buried in ~97% of the
                   examples. No blur [the paper gives none for this stage]; --blur_prob turns it on.
    training data  random 3-4 s crops [inferred: no attention, like the other cascaders]
    loss           v-prediction [design card], "simplified" weight, the "linear" schedule (Table 2)
    sampling       Table 3: front-heavy steps, gamma = 0, no guidance (there is no text); no dynamic clipping in
                   the residual form (a unit-variance residual is not bounded by 1)

Shapes: audio (B, T) at 16 kHz -> generate -> (B, 1.5 T) at 24 kHz.
Train:  python stage3_superres.py --help   (make train-superres)
"""

import math
import sys
from types import SimpleNamespace

import torch

import data
import diffusion
import residual
import train
import unet1d

LOW_RATE, RATE = 16000, 24000

DEFAULTS = {
    "form": ("envelope", "envelope: input + diffused 8-12 kHz residual divided by the input's 7-8 kHz loudness "
             "(residual.py) [choice]; residual: without that division [choice]; paper: the whole wave"),
    "cond_scale": (0.0, "RMS of the 0-8 kHz conditioning, divided out (0 = measure on the training clips at start)"),
    "residual_scale": (0.0, "RMS of the 8-12 kHz residual, divided out (0 = measure on the training clips at start)"),
    "envelope_band": (0.875, "envelope form: the envelope is read from this share of the input's Nyquist "
                            "frequency up to it (7-8 kHz; python stagecheck.py --envelope-bands 200)"),
    "envelope_floor": (0.0, "envelope form: the loudness floor (0 = 1/20 of the 7-8 kHz RMS of the training clips)"),
    "schedule": ("linear", "noise schedule (Table 2: linear, i.e. the DDPM beta schedule; see diffusion.py)"),
    "objective": ("v", "what the network predicts: v (design card) or eps (the paper)"),
    "weight": ("simplified", "loss weight: simplified (w = 1, Table 2) or sigma"),
    "t_max": (0.25, "largest corruption level u of the conditioning in training (Sec. 4.1: 1.0) [choice]"),
    "blur_prob": (0.0, "share of examples whose conditioning is blurred first (the paper gives no blur here)"),
    "crop_min": (3.0, "shortest training crop, seconds"),
    "crop_max": (4.0, "longest training crop, seconds"),
    "batch_size": (16, "examples per optimizer step (paper: 4096 for this stage)"),
}


def model_config(cfg, text_dim=0):
    train.check_choice(cfg, "form", residual.FORMS)
    return unet1d.PRESETS[f"{cfg.preset}-superres"]


def data_spec(cfg, unet_cfg):
    # A 24 kHz crop must map onto whole 16 kHz samples (multiples of 3 -> 2) and whole U-Net bottom positions.
    return {"rate": RATE, "crop_range": (cfg.crop_min, cfg.crop_max), "multiple": math.lcm(3, unet_cfg.total_stride),
            "preview_seconds": 4.0}


def calibrate(cfg, audio):
    """(B, T) training audio at 24 kHz -> the scales the residual form divides out (residual.calibrate)."""
    return residual.calibrate(audio, LOW_RATE, RATE, cfg.form, cfg.envelope_band) if cfg.form != "paper" else {}


def _model_fn(model, cond, cond_noise):
    return lambda x_t, t: model(x_t, t, cond=cond, cond_noise=cond_noise)


def loss(model, batch, ctx):
    cfg, g = ctx.cfg, ctx.generator
    audio = batch["audio"].to(ctx.device)                                     # (B, T) 24 kHz crop
    cond, x0 = residual.loss_inputs(audio, LOW_RATE, RATE, cfg)              # (B, 1, T) each
    cond, u = diffusion.corrupt_condition(cond, t_max=cfg.t_max, schedule=cfg.schedule, generator=g, blur="1d",
                                          blur_prob=cfg.blur_prob)
    value, _, _ = diffusion.diffusion_loss(_model_fn(model, cond, u), x0, schedule=cfg.schedule,
                                           objective=cfg.objective, weight=cfg.weight, generator=g)
    return value


# Sampling defaults (sample.py uses them): Table 3's front-heavy steps and gamma 0, with 12 steps instead of 1000;
# cond_noise as in stage2_cascader.SAMPLING [choice].
SAMPLING = dict(steps=12, step_kind="front", gamma=0.0, cond_noise=0.02)


@torch.no_grad()
def generate(model, audio, *, config, steps=None, step_kind=None, gamma=None, cond_noise=None,
             generator=None, progress=False, start=None):
    """(B, T) 16 kHz audio -> (B, round(1.5 T)) 24 kHz audio.  Unset sampler settings take SAMPLING's.
    config: the training config (a checkpoint's "config" dict): form, scales, schedule, objective.
    start: None, or (x_t0, t0), the sampler's own units, to begin part-way (diffusion.sample)."""
    s = diffusion.settings(SAMPLING, steps=steps, step_kind=step_kind, gamma=gamma, cond_noise=cond_noise)
    form, cond_scale, _ = residual.stats_of(config)
    schedule, objective = config["schedule"], config["objective"]
    dev = next(model.parameters()).device
    b = audio.shape[0]
    level = torch.full((b,), float(s["cond_noise"]), device=dev)
    up, cond = residual.condition(audio.to(dev), LOW_RATE, RATE, cond_scale)  # (B, 1.5 T), (B, 1, 1.5 T)
    scale = residual.scale(up, LOW_RATE, RATE, config)                        # a float, or (B, 1.5 T) envelope
    cond = diffusion.noise_condition(cond, level, schedule=schedule, generator=generator)
    x = diffusion.sample(_model_fn(model, cond, level), tuple(cond.shape),
                         step_sizes=diffusion.step_schedule("superres", s["step_kind"], s["steps"]),
                         schedule=schedule, objective=objective, gamma=s["gamma"], generator=generator, device=dev,
                         progress=progress and "super-resolution", start=start,
                         **residual.sampler_options(form, LOW_RATE, RATE, scale))  # (B, 1, 1.5 T)
    return residual.output(up, x, form, scale)


def preview(model, batch, ctx):
    """Super-resolve a real test clip's 16 kHz version: [(input, rate), (output, rate)]."""
    audio = batch["audio"][:1].to(ctx.device)
    low = data.resample(audio, RATE, LOW_RATE)
    out = generate(model, low, config=vars(ctx.cfg), steps=ctx.cfg.preview_steps, generator=ctx.generator)
    return [(low[0], LOW_RATE), (out[0], RATE)]


STAGE = SimpleNamespace(NAME="superres", MAKE_TARGET="train-superres", DEFAULTS=DEFAULTS, USES_TEXT=False,
                        model_config=model_config, data_spec=data_spec, calibrate=calibrate,
                        CALIBRATED=("cond_scale", "residual_scale", "envelope_floor"), loss=loss, preview=preview,
                        __doc__=__doc__, __file__=__file__)

if __name__ == "__main__":
    sys.exit(train.main(STAGE))
