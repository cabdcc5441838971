"""The spectrogram vocoder: log-mel spectrogram -> 16 kHz audio (Sec. 3.3.2; Tables 2, 3, 8; Fig. 1).

Second stage of the spectrogram route (spectrogram generator -> vocoder -> super-resolution). A diffusion model
over the waveform, conditioned on nothing but the 80-bin log-mel at 100 frames per second; no text.

    conditioning   the spectrogram is an "aligned input": the U-Net's strides multiply to 160 = 16000 / 100, the
                   hop, so at the bottom of the U each position is one spectrogram frame. The 80 mel bins are
                   projected to the bottom width and ADDED there (Fig. 1) [choice: right after the last down-sampling
                   layer, so the bottom blocks already see it]
    corruption     in training only: a 2D 5x5 Gaussian blur (std in [0.2, 1.0]) of the spectrogram, then noise to a
                   level u ~ U[0, 1.0] (Sec. 4.1); u is given to the network
    training data  random 3-4 s crops (Sec. 4.1)
    loss           v-prediction [design card; the paper: eps], "simplified" weight, the "linear" schedule (Table 2)
    sampling       Table 3: front-heavy steps (100 in the paper), gamma = 0, no guidance

Shapes: spectrogram (B, 80, F) -> generate -> (B, 160 F) at 16 kHz.
Train:  python vocoder.py --help   (make train-vocoder)
"""

import sys
from types import SimpleNamespace

import torch

import data
import diffusion
import train
import unet1d

RATE = 16000

DEFAULTS = {
    "schedule": ("linear", "noise schedule (Table 2: linear, i.e. the DDPM beta schedule; see diffusion.py)"),
    "objective": ("v", "what the network predicts: v (design card) or eps (the paper)"),
    "weight": ("simplified", "loss weight: simplified (w = 1, Table 2) or sigma"),
    "t_max": (1.0, "largest corruption level u of the spectrogram during training (Sec. 4.1: 1.0)"),
    "crop_min": (3.0, "shortest training crop, seconds"),
    "crop_max": (4.0, "longest training crop, seconds"),
    "batch_size": (16, "examples per optimizer step (paper: 2048)"),
}


def model_config(cfg, text_dim=0):
    unet_cfg = unet1d.PRESETS[f"{cfg.preset}-vocoder"]
    if unet_cfg.total_stride != data.MEL_HOP:
        raise train.TrainingError(f"the vocoder's strides must multiply to the spectrogram hop {data.MEL_HOP}, "
                                  f"not {unet_cfg.total_stride}, so that one bottom position is one frame.")
    return unet_cfg


def data_spec(cfg, unet_cfg):
    return {"rate": RATE, "crop_range": (cfg.crop_min, cfg.crop_max), "multiple": data.MEL_HOP,
            "preview_seconds": 4.0}


def _model_fn(model, spectrogram, cond_noise):
    return lambda x_t, t: model(x_t, t, aligned=spectrogram, cond_noise=cond_noise)


def loss(model, batch, ctx):
    cfg, g = ctx.cfg, ctx.generator
    audio = batch["audio"].to(ctx.device)                                     # (B, T) 16 kHz, T = 160 F
    mel = data.log_mel(audio)                                                 # (B, 80, F)
    mel, u = diffusion.corrupt_condition(mel, t_max=cfg.t_max, schedule=cfg.schedule, generator=g,
                                         blur="2d")                          # Sec. 4.1: 5x5 blur, std 0.2-1.0
    value, _, _ = diffusion.diffusion_loss(_model_fn(model, mel, u), audio[:, None], schedule=cfg.schedule,
                                           objective=cfg.objective, weight=cfg.weight, generator=g)
    return value


@torch.no_grad()
def generate(model, spectrogram, *, steps=20, step_kind="front", gamma=0.0, cond_noise=0.02, clip=0.995,
             schedule="linear", objective="v", generator=None, progress=False):
    """(B, 80, F) log-mel in [-1, 1] -> (B, 160 F) 16 kHz audio.  Defaults are Table 3's, with fewer steps.
    cond_noise: the level u the spectrogram is noised to before sampling [choice; see stage2_cascader.generate]."""
    dev = next(model.parameters()).device
    b, _, frames = spectrogram.shape
    level = torch.full((b,), float(cond_noise), device=dev)
    mel = diffusion.noise_condition(spectrogram.to(dev).float(), level, schedule=schedule, generator=generator)
    x = diffusion.sample(_model_fn(model, mel, level), (b, 1, frames * data.MEL_HOP),
                         step_sizes=diffusion.step_schedule("vocoder", step_kind, steps), schedule=schedule,
                         objective=objective, gamma=gamma, generator=generator, clip_percentile=clip, device=dev,
                         progress=progress and "vocoder")
    return x[:, 0]


def preview(model, batch, ctx):
    """Vocode a real test clip's spectrogram: [(spectrogram, None), (output, rate)]."""
    mel = data.log_mel(batch["audio"][:1].to(ctx.device))
    out = generate(model, mel, steps=ctx.cfg.preview_steps, schedule=ctx.cfg.schedule, objective=ctx.cfg.objective,
                   generator=ctx.generator)
    return [(mel[0], None), (out[0], RATE)]


STAGE = SimpleNamespace(NAME="vocoder", MAKE_TARGET="train-vocoder", DEFAULTS=DEFAULTS, USES_TEXT=False,
                        model_config=model_config, data_spec=data_spec, loss=loss, preview=preview,
                        __doc__=__doc__, __file__=__file__)

if __name__ == "__main__":
    sys.exit(train.main(STAGE))
