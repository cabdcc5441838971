"""Stage 1: the generators. Text -> 3.2 kHz waveform, or text -> log-mel spectrogram (Sec. 3.3; Tables 2, 3, 8).

The first stage of each route decides the music: melody, harmony, rhythm, the instrument's outline. It sees the
whole ~30 s clip at once, and it is the only stage with self-attention, so the piece can hang together.

    repr = wave    text -> 3.2 kHz audio, (B, 1, 96000) for 30 s. The waveform route's first stage.
                   Table 2: cosine schedule, simplified weight, 64 text tokens. Table 3: front-heavy, gamma 0, CFG 10.
    repr = spec    text -> 80-bin log-mel at 100 frames/s in [-1, 1], (B, 80, 3000) for 30 s: mel bins are channels,
                   time is the 1D sequence. Table 2: linear schedule, *sigma* weight (the paper calls it crucial for
                   this model's convergence), 96 text tokens. Table 3: back-heavy eval list, gamma 0, CFG 5.
    text           cross-attention to the T5 token sequence at the deepest levels; 10% of training examples have
                   it zeroed, which is what classifier-free guidance needs (Sec. 3.1, 4.1)
    objective      v-prediction [design card; the paper: eps]

Train:  python stage1_generator.py --help               (make train-generator)
        python stage1_generator.py --repr=spec --help   (make train-spec-generator)
"""

import sys
from dataclasses import replace
from types import SimpleNamespace

import torch

import data
import diffusion
import train
import unet1d

WAVE_RATE = 3200

_SHARED = {
    "objective": ("v", "what the network predicts: v (design card) or eps (the paper)"),
    "text_dropout": (0.1, "fraction of examples trained without text, for classifier-free guidance (Sec. 4.1)"),
    "seconds": (30.0, "length of the training clips, seconds (Sec. 4.1: the full ~30 s)"),
    "batch_size": (8, "examples per optimizer step (paper: 2048)"),
}
WAVE_DEFAULTS = {
    "repr": ("wave", "wave (3.2 kHz audio, the waveform route) or spec (log-mel, the spectrogram route)"),
    "schedule": ("cosine", "noise schedule (Table 2: cosine, log-SNR +20 to -20)"),
    "weight": ("simplified", "loss weight: simplified (w = 1, Table 2) or sigma"),
    "text_length": (64, "T5 tokens kept per caption (Table 2: 64)"),
    **_SHARED,
}
SPEC_DEFAULTS = {
    "repr": ("spec", "wave (3.2 kHz audio, the waveform route) or spec (log-mel, the spectrogram route)"),
    "schedule": ("linear", "noise schedule (Table 2: linear, i.e. the DDPM beta schedule; see diffusion.py)"),
    "weight": ("sigma", "loss weight: sigma (Table 2; 'crucial for convergence', Sec. 4.1) or simplified"),
    "text_length": (96, "T5 tokens kept per caption (Table 2: 96)"),
    **_SHARED,
}


def _is_spec(cfg):
    return cfg.repr == "spec"


def model_config(cfg, text_dim):
    name = "spectrogram-generator" if _is_spec(cfg) else "waveform-generator"
    return replace(unet1d.PRESETS[f"{cfg.preset}-{name}"], text_dim=text_dim)


def data_spec(cfg, unet_cfg):
    # Full clips; the spectrogram is computed from 16 kHz audio (PAPER_NOTES §5), the waveform is 3.2 kHz.
    rate = data.MEL_RATE if _is_spec(cfg) else WAVE_RATE
    return {"rate": rate, "crop_range": (cfg.seconds, cfg.seconds), "multiple": data.MEL_HOP if _is_spec(cfg) else 1,
            "preview_seconds": cfg.seconds}


def to_x0(audio, cfg):
    """A batch of clips -> the signal this generator models: (B, 1, T) audio or (B, 80, F) log-mel."""
    return data.log_mel(audio) if _is_spec(cfg) else audio[:, None]


def _model_fn(model, text_emb, text_mask):
    def fn(x_t, t, drop_text=None):
        if text_emb is None:
            return model(x_t, t)
        k = x_t.shape[0] // text_emb.shape[0]
        return model(x_t, t, text_emb=text_emb.repeat(k, 1, 1), text_mask=text_mask.repeat(k, 1),
                     drop_text=drop_text)
    return fn


def loss(model, batch, ctx):
    cfg, g, dev = ctx.cfg, ctx.generator, ctx.device
    x0 = to_x0(batch["audio"].to(dev), cfg)
    text_emb, text_mask = ctx.text(batch["caption"])
    drop = (torch.rand(x0.shape[0], generator=g) < cfg.text_dropout).to(dev)   # Sec. 4.1: 10% text dropout
    fn = _model_fn(model, text_emb, text_mask)
    value, _, _ = diffusion.diffusion_loss(lambda x_t, t: fn(x_t, t, drop), x0, schedule=cfg.schedule,
                                           objective=cfg.objective, weight=cfg.weight, generator=g)
    return value


# Table 3's sampling settings per representation.
SAMPLING = {
    "wave": dict(model="waveform-generator", step_kind="front", gamma=0.0, guidance=10.0, schedule="cosine"),
    "spec": dict(model="spectrogram-generator", step_kind="back-eval", gamma=0.0, guidance=5.0, schedule="linear"),
}


@torch.no_grad()
def generate(model, text_emb=None, text_mask=None, *, repr="wave", seconds=30.0, batch=1, steps=30, step_kind=None,
             gamma=None, guidance=None, clip=0.995, schedule=None, objective="v", generator=None, progress=False):
    """Text tokens (B, L, D) -> (B, 3200 s) audio (repr wave) or (B, 80, 100 s) log-mel (repr spec).

    Unset settings take Table 3's values for the representation. text_emb=None generates without text (the
    unconditional model that guidance also uses), `batch` clips at once; with text, one clip per prompt row.
    """
    table = SAMPLING[repr]
    dev = next(model.parameters()).device
    b = batch if text_emb is None else text_emb.shape[0]
    shape = (b, data.MEL_BINS, round(seconds * data.MEL_RATE / data.MEL_HOP)) if repr == "spec" else \
        (b, 1, round(seconds * WAVE_RATE))
    fn = _model_fn(model, text_emb, text_mask)
    scale = table["guidance"] if guidance is None else guidance
    model_fn = diffusion.classifier_free_guidance(fn, scale if text_emb is not None else 1.0)
    x = diffusion.sample(model_fn, shape, step_sizes=diffusion.step_schedule(
        table["model"], step_kind or table["step_kind"], steps), schedule=schedule or table["schedule"],
        objective=objective, gamma=table["gamma"] if gamma is None else gamma, generator=generator,
        clip_percentile=clip, device=dev, progress=progress and ("spectrogram generator" if repr == "spec"
                                                                 else "generator"))
    return x if repr == "spec" else x[:, 0]


def preview(model, batch, ctx):
    """Generate from a test clip's caption: [(real clip's x0, rate), (generated, rate)]."""
    cfg = ctx.cfg
    emb, mask = ctx.text(batch["caption"][:1])
    out = generate(model, emb, mask, repr=cfg.repr, seconds=cfg.seconds, steps=cfg.preview_steps,
                   schedule=cfg.schedule, objective=cfg.objective, generator=ctx.generator)
    real = to_x0(batch["audio"][:1].to(ctx.device), cfg)[0]
    if _is_spec(cfg):
        return [(real, None), (out[0], None)]
    return [(real[0], WAVE_RATE), (out[0], WAVE_RATE)]


def _stage(name, target, defaults):
    return SimpleNamespace(NAME=name, MAKE_TARGET=target, DEFAULTS=defaults, USES_TEXT=True, model_config=model_config,
                           data_spec=data_spec, loss=loss, preview=preview, __doc__=__doc__, __file__=__file__)


WAVE = _stage("waveform-generator", "train-generator", WAVE_DEFAULTS)
SPEC = _stage("spectrogram-generator", "train-spec-generator", SPEC_DEFAULTS)

if __name__ == "__main__":
    args = sys.argv[1:]
    stage = SPEC if "--repr=spec" in args else WAVE
    if any(a.startswith("--repr=") and a not in ("--repr=spec", "--repr=wave") for a in args):
        print("error: --repr takes wave or spec.", file=sys.stderr)
        sys.exit(2)
    sys.exit(train.main(stage, args))
