"""Stage 2: the waveform cascader, 3.2 kHz audio + text -> 16 kHz audio (Sec. 3.3.1; Tables 2, 3, 8).

The generator's 3.2 kHz output holds everything below 1.6 kHz: melody, bass, rhythm. The cascader paints in the
band up to 8 kHz (timbre, attacks, breath) while staying faithful to that sketch and to the text.

    form           [choice, issue 12] residual.py: output = the input FFT-upsampled x5 (§2.2) + a diffused residual
                   limited to 1.6-8 kHz and scaled to unit variance; the band below 1.6 kHz passes through
                   untouched. --form=paper diffuses the whole 16 kHz waveform, as the paper does.
    conditioning   the 3.2 kHz audio, FFT-upsampled x5 to 16 kHz, scaled to unit variance, stacked with x_t as a
                   2nd channel
    corruption     in training only: blur (half the examples) then noise to u ~ U[0, t_max]; u is given to the
                   network, so it learns to repair a flawed sketch (Sec. 4.1). Sec. 4.1 gives std in [0.1, 5] and
                   t_max 0.5; [choice] std in [0.1, 2] (a std of 5 samples at 16 kHz removes most of the
                   0.5-1.6 kHz band the stage is given; 2 keeps half its amplitude at 1.6 kHz) and t_max 0.25 (the
                   noise matches a unit-variance signal there, log-SNR 0 on the linear schedule)
    text           cross-attention at the two deepest levels; 10% of examples train with it zeroed (CFG)
    training data  random 3-4 s crops (no self-attention, so the network runs convolutionally over 30 s later)
    loss           v-prediction [design card; the paper: eps], "simplified" weight, the "linear" schedule (Table 2)
    sampling       Table 3: front-heavy steps, gamma = 1 (the only stage with the forward-process variance),
                   guidance scale 5; [choice] gamma 0 here (measured, SAMPLING below); no dynamic clipping in the
                   residual form

Shapes: lowres (B, T / 5) at 3.2 kHz -> generate -> (B, T) at 16 kHz.
Train:  python stage2_cascader.py --help   (make train-cascader)
"""

import math
import sys
from dataclasses import replace
from types import SimpleNamespace

import torch

import data
import diffusion
import residual
import train
import unet1d

LOW_RATE, RATE = 3200, 16000

DEFAULTS = {
    "form": ("residual", "residual: input + diffused 1.6-8 kHz residual (residual.py) [choice]; envelope: that "
             "residual divided by the input's 0.4-1.6 kHz loudness [choice]; paper: the whole wave"),
    "cond_scale": (0.0, "RMS of the 0-1.6 kHz conditioning, divided out (0 = measure on the training clips at start)"),
    "residual_scale": (0.0, "RMS of the 1.6-8 kHz residual, divided out (0 = measure on the training clips at start)"),
    "envelope_band": (0.25, "envelope form: the envelope is read from this share of the input's Nyquist "
                             "frequency up to it (0.4-1.6 kHz; python stagecheck.py --envelope-bands 200)"),
    "envelope_floor": (0.0, "envelope form: the loudness floor (0 = 1/20 of the 0.4-1.6 kHz RMS of the training "
                       "clips)"),
    # Table 2: the cascader's loss settings.
    "schedule": ("linear", "noise schedule (Table 2: linear, i.e. the DDPM beta schedule; see diffusion.py)"),
    "objective": ("v", "what the network predicts: v (design card) or eps (the paper)"),
    "weight": ("simplified", "loss weight: simplified (w = 1, Table 2) or sigma"),
    "text_length": (64, "T5 tokens kept per caption (Table 2: 64)"),
    "text_dropout": (0.1, "fraction of examples trained without text, for classifier-free guidance (Sec. 4.1)"),
    "t_max": (0.25, "largest corruption level u of the conditioning in training (Sec. 4.1: 0.5) [choice]"),
    "blur_prob": (0.5, "share of examples whose conditioning is blurred before the noise [choice]"),
    "blur_max": (2.0, "largest blur std, in 16 kHz samples (Sec. 4.1: 5) [choice]"),
    # Sec. 4.1: random 3-4 s crops.
    "crop_min": (3.0, "shortest training crop, seconds"),
    "crop_max": (4.0, "longest training crop, seconds"),
    "batch_size": (16, "examples per optimizer step (paper: 2048)"),
}


def model_config(cfg, text_dim):
    train.check_choice(cfg, "form", residual.FORMS)
    return replace(unet1d.PRESETS[f"{cfg.preset}-waveform-cascader"], text_dim=text_dim)


def _multiple(unet_cfg):
    # A crop must split into whole 3.2 kHz samples (x5) and whole bottom-of-the-U positions (total stride).
    return math.lcm(RATE // LOW_RATE, unet_cfg.total_stride)


def data_spec(cfg, unet_cfg):
    return {"rate": RATE, "crop_range": (cfg.crop_min, cfg.crop_max), "multiple": _multiple(unet_cfg),
            "preview_seconds": 4.0}


def calibrate(cfg, audio):
    """(B, T) training audio at 16 kHz -> the scales the residual form divides out (residual.calibrate)."""
    return residual.calibrate(audio, LOW_RATE, RATE, cfg.form, cfg.envelope_band) if cfg.form != "paper" else {}


def _model_fn(model, cond, cond_noise, text_emb, text_mask):
    """A diffusion model function; repeats the conditioning when guidance doubles the batch."""
    def fn(x_t, t, drop_text=None):
        k = x_t.shape[0] // cond.shape[0]
        emb = None if text_emb is None else text_emb.repeat(k, 1, 1)
        mask = None if text_mask is None else text_mask.repeat(k, 1)
        return model(x_t, t, cond=cond.repeat(k, 1, 1), cond_noise=cond_noise.repeat(k),
                     text_emb=emb, text_mask=mask, drop_text=drop_text)
    return fn


def loss(model, batch, ctx):
    cfg, g, dev = ctx.cfg, ctx.generator, ctx.device
    audio = batch["audio"].to(dev)                                            # (B, T) 16 kHz crop
    b = audio.shape[0]
    cond, x0 = residual.loss_inputs(audio, LOW_RATE, RATE, cfg)              # (B, 1, T) each
    cond, u = diffusion.corrupt_condition(cond, t_max=cfg.t_max, schedule=cfg.schedule, generator=g, blur="1d",
                                          blur_prob=cfg.blur_prob, blur_std=(0.1, cfg.blur_max))
    text_emb, text_mask = ctx.text(batch["caption"])
    drop = (torch.rand(b, generator=g) < cfg.text_dropout).to(dev)             # Sec. 4.1: 10% text dropout
    fn = _model_fn(model, cond, u, text_emb, text_mask)
    value, _, _ = diffusion.diffusion_loss(lambda x_t, t: fn(x_t, t, drop), x0, schedule=cfg.schedule,
                                           objective=cfg.objective, weight=cfg.weight, generator=g)
    return value


# Sampling defaults (sample.py uses them): Table 3's front-heavy steps and guidance 5, with 12 steps instead of 1000.
# [choice] gamma 0, not Table 3's 1: at 12 steps gamma = 1 puts the added 1.6-8 kHz band 5.5 dB further from the real
# one (log-spectral distance 24.2 against 18.7 dB; `python bench.py --only settings`, README).
# [choice] cond_noise: the corruption level u the conditioning is noised to before sampling. The paper does not say;
# CDM and Imagen noise the low-resolution input a little at sampling, which hides the earlier stage's own artefacts.
# 0.02 on the linear schedule is noise of std 0.077 on the unit-variance conditioning.
SAMPLING = dict(steps=12, step_kind="front", gamma=0.0, guidance=5.0, cond_noise=0.02)


@torch.no_grad()
def generate(model, lowres, text_emb=None, text_mask=None, *, config, steps=None, step_kind=None, gamma=None,
             guidance=None, cond_noise=None, generator=None, progress=False, start=None):
    """(B, T/5) 3.2 kHz audio (+ T5 tokens) -> (B, T) 16 kHz audio.  Unset sampler settings take SAMPLING's.

    config: the training config (a checkpoint's "config" dict): form, scales, schedule, objective.
    text_emb=None samples without text (guidance is then irrelevant). start: None, or (x_t0, t0), the sampler's
    own units, to begin part-way (diffusion.sample).
    """
    s = diffusion.settings(SAMPLING, steps=steps, step_kind=step_kind, gamma=gamma, guidance=guidance,
                           cond_noise=cond_noise)
    form, cond_scale, _ = residual.stats_of(config)
    schedule, objective = config["schedule"], config["objective"]
    dev = next(model.parameters()).device
    b = lowres.shape[0]
    level = torch.full((b,), float(s["cond_noise"]), device=dev)
    up, cond = residual.condition(lowres.to(dev), LOW_RATE, RATE, cond_scale)  # (B, T), (B, 1, T); §2.2
    scale = residual.scale(up, LOW_RATE, RATE, config)                        # a float, or (B, T) envelope
    cond = diffusion.noise_condition(cond, level, schedule=schedule, generator=generator)
    fn = _model_fn(model, cond, level, text_emb, text_mask)
    model_fn = diffusion.classifier_free_guidance(fn, s["guidance"] if text_emb is not None else 1.0)
    steps = diffusion.step_schedule("waveform-cascader", s["step_kind"], s["steps"])
    x = diffusion.sample(model_fn, tuple(cond.shape), step_sizes=steps, schedule=schedule, objective=objective,
                         gamma=s["gamma"], generator=generator, device=dev, progress=progress and "cascader",
                         start=start, **residual.sampler_options(form, LOW_RATE, RATE, scale))  # (B, 1, T)
    return residual.output(up, x, form, scale)


def preview(model, batch, ctx):
    """Upsample a real test clip's 3.2 kHz band with its caption: [(input, rate), (output, rate)]."""
    dev, cfg = ctx.device, ctx.cfg
    audio = batch["audio"][:1].to(dev)
    low = data.resample(audio, RATE, LOW_RATE)
    emb, mask = ctx.text(batch["caption"][:1])
    out = generate(model, low, emb, mask, config=vars(cfg), steps=cfg.preview_steps, generator=ctx.generator)
    return [(low[0], LOW_RATE), (out[0], RATE)]


STAGE = SimpleNamespace(NAME="waveform-cascader", MAKE_TARGET="train-cascader", DEFAULTS=DEFAULTS, USES_TEXT=True,
                        model_config=model_config, data_spec=data_spec, calibrate=calibrate,
                        CALIBRATED=("cond_scale", "residual_scale", "envelope_floor"), loss=loss, preview=preview,
                        __doc__=__doc__, __file__=__file__)

if __name__ == "__main__":
    sys.exit(train.main(STAGE))
