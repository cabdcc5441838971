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
    form           [choice, issue 13] "scaled": the 3.2 kHz waveform divided by its RMS on the training clips (~0.1),
                   each mel bin standardised with its mean and std on them, so that the data have the unit scale the
                   noise schedules assume; the statistics are kept in the checkpoint. In [-1, 1] the mel has std ~0.3
                   and per-bin means from -0.45 to +0.31, and a sampler started from a real clip noised to log-SNR 0
                   turned it into speckle (issue 13). --form=paper models both as they are.

Train:  python stage1_generator.py --help               (make train-generator)
        python stage1_generator.py --repr=spec --help   (make train-spec-generator)
"""

import sys
from dataclasses import replace
from types import SimpleNamespace

import torch

import augment
import checkpoint
import data
import diffusion
import train
import unet1d

WAVE_RATE = 3200

FORMS = ("scaled", "paper")

_SHARED = {
    "form": ("scaled", "scaled: unit-RMS waveform or standardised mel bins, measured at start [choice]; paper: as is"),
    "objective": ("v", "what the network predicts: v (design card) or eps (the paper)"),
    "text_dropout": (0.1, "fraction of examples trained without text, for classifier-free guidance (Sec. 4.1)"),
    "seconds": (30.0, "length of the training clips, seconds (Sec. 4.1: the full ~30 s)"),
    "batch_size": (8, "examples per optimizer step (paper: 2048)"),
    # [choice, issue 13; not in the paper] Tape-speed augmentation (augment.py): each crop played up to this many
    # semitones faster or slower, its caption's BPM and key rewritten, so that tempo and key words are the only way
    # to tell the shifted copies of one crop apart. 0: off, as in the paper.
    "speed_shift": (0, "largest tape-speed shift of a training crop, semitones (0: off) [choice]"),
}
WAVE_DEFAULTS = {
    "repr": ("wave", "wave (3.2 kHz audio, the waveform route) or spec (log-mel, the spectrogram route)"),
    "schedule": ("cosine", "noise schedule (Table 2: cosine, log-SNR +20 to -20)"),
    "weight": ("simplified", "loss weight: simplified (w = 1, Table 2) or sigma"),
    "text_length": (64, "T5 tokens kept per caption (Table 2: 64)"),
    "signal_scale": (0.0, "RMS of the training audio, divided out (0 = measure on the training clips at start)"),
    **_SHARED,
}
SPEC_DEFAULTS = {
    "repr": ("spec", "wave (3.2 kHz audio, the waveform route) or spec (log-mel, the spectrogram route)"),
    "schedule": ("linear", "noise schedule (Table 2: linear, i.e. the DDPM beta schedule; see diffusion.py)"),
    "weight": ("sigma", "loss weight: sigma (Table 2; 'crucial for convergence', Sec. 4.1), sigma-floor (the shipped "
                        "model's second run: it taught the text) or simplified"),
    "text_length": (96, "T5 tokens kept per caption (Table 2: 96)"),
    **_SHARED,
    # [choice, issue 13] Crops of 2.88 s (288 frames, 3 bottom positions of the tiny U-Net) in batches of 32,
    # not whole 30 s clips in batches of 8: four times the noise-level draws per CPU second for the same audio, and
    # the network (convolutions, attention over its bottom positions) samples whole 30 s clips all the same. The
    # overfit check learned notes with them (README, "When the output is noise"). --seconds=30 --batch_size=8 is
    # the paper's form.
    "seconds": (2.88, "length of the training crops, seconds (Sec. 4.1: the full ~30 s) [choice]"),
    "batch_size": (32, "examples per optimizer step (paper: 2048)"),
    "lr": (5e-4, "peak learning rate (Sec. 4.1: 1e-4) [choice: measured on the overfit check]"),
    "warmup": (200, "linear warm-up steps (paper: 10k)"),
    # For experiments on the network's size: the tiny preset is 96 channels at every depth. Twice that (2,2,2,2,2)
    # learned no faster on the overfit check at 1,000 steps; at 4,000 its one-call errors were lower at every noise
    # level and two of four part-music clips came out half as flat, at 1.75 times the time per step (README, "When
    # the output is noise").
    "channel_mults": ("", "channels per depth in units of the preset's base, e.g. 2,2,2,2,2 (empty: the preset's)"),
    # Blocks at 100 frames/s after the entry conv and before the exit conv (unet1d.UNetConfig.full_rate_blocks).
    # One on each side gave the same overfit figures at 4,000 steps for twice the time per step (README).
    "full_rate_blocks": (0, "blocks at the full frame rate, on each side of the U (0: none, as in Table 8)"),
}


def _is_spec(cfg):
    return cfg.repr == "spec"


def model_config(cfg, text_dim):
    """The U-Net of Table 8 (or its tiny version) for this representation, with the T5 encoder's width for the
    cross-attention: 80 input channels (mel bins) for spec, 1 for wave."""
    train.check_choice(cfg, "form", FORMS)
    name = "spectrogram-generator" if _is_spec(cfg) else "waveform-generator"
    unet = replace(unet1d.PRESETS[f"{cfg.preset}-{name}"], text_dim=text_dim)
    unet = train.with_channel_mults(unet, cfg)
    n = getattr(cfg, "full_rate_blocks", 0)
    if n < 0:
        raise train.TrainingError(f"--full_rate_blocks must be 0 or more, not {n}.")
    return replace(unet, full_rate_blocks=n)


def data_spec(cfg, unet_cfg):
    """What train.py reads: clips of `seconds` (30 by default, Sec. 4.1) at the stage's rate, cut to a whole
    number of mel frames for spec."""
    # Full clips; the spectrogram is computed from 16 kHz audio (PAPER_NOTES §5), the waveform is 3.2 kHz.
    rate = data.MEL_RATE if _is_spec(cfg) else WAVE_RATE
    shift = getattr(cfg, "speed_shift", 0)
    if not 0 <= shift <= 12:
        raise train.TrainingError(f"--speed_shift must be 0 (off) to 12 semitones, not {shift}.")
    if shift and augment.read_seconds(cfg.seconds, shift) > data.CLIP_SECONDS:
        # A crop played faster needs more than its own length of audio; a whole 30 s clip has none to spare.
        longest = data.CLIP_SECONDS / 2 ** (shift / 12)
        raise train.TrainingError(f"--speed_shift={shift} needs crops of at most {longest:.2f} s of the "
                                  f"{data.CLIP_SECONDS:.0f} s clips, not --seconds={cfg.seconds:g}; shorten them.")
    return {"rate": rate, "crop_range": (cfg.seconds, cfg.seconds), "multiple": data.MEL_HOP if _is_spec(cfg) else 1,
            "preview_seconds": data.CLIP_SECONDS, "mel": _is_spec(cfg),     # previews: whole clips, as sampled
            "speed_shift": shift}


def calibrate(cfg, audio):
    """(B, T) training audio at the stage's rate -> the statistics of the scaled form: the waveform's RMS, or each
    mel bin's mean and std (80 each). train.py measures them once when a run starts."""
    if cfg.form == "paper":
        return {}
    if _is_spec(cfg):
        return data.mel_statistics(data.log_mel(audio))                   # mel (B, 80, F) -> 80 means, 80 stds
    return {"signal_scale": data.signal_rms(audio)}


def _checked(config):
    """A checkpoint's config dict -> its form, after checking that the scaled form's statistics are there.
    Checkpoints made before the scaled form existed have no `form` key and are the paper's form."""
    form = config.get("form", "paper")
    has = len(config.get("mel_mean") or ()) == data.MEL_BINS if config["repr"] == "spec" else \
        config.get("signal_scale", 0) > 0
    if form == "scaled" and not has:
        raise checkpoint.CheckpointError("this scaled-form generator config has no measured statistics (signal_scale, "
                                    "or mel_mean and mel_std); train the generator (train.py measures them).")
    return form


def to_x0(audio, config, mel=None):
    """A batch of clips -> the signal this generator models: (B, 1, T) audio or (B, 80, F) log-mel, unit-scaled in
    the scaled form. config: the training config as a dict (vars(cfg), or a checkpoint's "config"); mel: the
    clips' log-mel if the loader already computed it (data.CropCollate)."""
    scaled = _checked(config) == "scaled"
    if config["repr"] == "spec":
        mel = data.log_mel(audio) if mel is None else mel                     # (B, 80, F) in [-1, 1]
        return data.standardise_mel(mel, config) if scaled else mel
    return (audio / (config["signal_scale"] if scaled else 1.0))[:, None]    # (B, 1, T)


def from_x0(x, config):
    """The inverse of to_x0 for what the sampler returns: (B, 80, F) log-mel in [-1, 1], or (B, T) audio."""
    scaled = _checked(config) == "scaled"
    if config["repr"] == "spec":
        return data.standardise_mel(x, config, inverse=True) if scaled else x
    return x[:, 0] * (config["signal_scale"] if scaled else 1.0)


def _bounds(config):
    """The scaled form's x0 bounds: the [-1, 1] range of the audio or of the log-mel, in the model's units. Every x0
    estimate is clamped to them while sampling (static thresholding; dynamic clipping assumes data in [-1, 1])."""
    if config["repr"] == "spec":
        mean, std = (torch.tensor(config[k])[:, None] for k in ("mel_mean", "mel_std"))   # (80, 1)
        lo, hi = (-1 - mean) / std, (1 - mean) / std
        return lambda x0: torch.maximum(torch.minimum(x0, hi.to(x0)), lo.to(x0))
    limit = 1.0 / config["signal_scale"]
    return lambda x0: x0.clamp(-limit, limit)


def _model_fn(model, text_emb, text_mask):
    """The network as fn(x_t, t, drop_text) with the text bound. Classifier-free guidance calls it with a batch k
    times the prompts' (conditional and unconditional halves), so the text is repeated to match."""
    def fn(x_t, t, drop_text=None):
        if text_emb is None:
            return model(x_t, t)
        k = x_t.shape[0] // text_emb.shape[0]
        return model(x_t, t, text_emb=text_emb.repeat(k, 1, 1), text_mask=text_mask.repeat(k, 1),
                     drop_text=drop_text)
    return fn


def loss(model, batch, ctx):
    """One batch of clips and captions -> the diffusion loss (eq. 1, Table 2's weight and schedule), with 10% of
    the examples' text dropped so that the same network is also the unconditional model guidance needs."""
    cfg, g, dev = ctx.cfg, ctx.generator, ctx.device
    mel = batch["mel"].to(dev) if "mel" in batch else None                   # computed in the loader's workers
    x0 = to_x0(batch["audio"].to(dev), vars(cfg), mel)                       # (B, 1, T) or (B, 80, F)
    text_emb, text_mask = ctx.text(batch["caption"])
    drop = (torch.rand(x0.shape[0], generator=g) < cfg.text_dropout).to(dev)   # Sec. 4.1: 10% text dropout
    fn = _model_fn(model, text_emb, text_mask)
    value, _, _ = diffusion.diffusion_loss(lambda x_t, t: fn(x_t, t, drop), x0, schedule=cfg.schedule,
                                           objective=cfg.objective, weight=cfg.weight, generator=g)
    return value


# Sampling defaults per representation: Table 3's step schedules, gammas and guidance scales, with 30-200 steps
# instead of the paper's 1000 so that 30 s of music takes under a minute on a 2-core CPU (bench.py measures it).
# [choice] 60 steps of eq. 4 for the spectrogram generator (until DDIM, below): on 6 held-out captions (python
# bench.py --only generator-settings --clips 6) its samples' flatness and persistence were 0.249, 0.624 at 30 steps
# and 0.176, 0.667 at 60 (100: 0.190, 0.654; 200: 0.168, 0.670; real 0.061, 0.815); the uniform and front-heavy
# lists and guidance 1-10 did no better.
# [choice] Guidance 1 (no guidance; Table 3: 5) for the spectrogram generator: on 16 held-out prompts (python
# evaluate.py eval --routes spec --n 16 --guidance 1,2) it beat 5 and 2 on MuLan FAD (0.230 vs 0.315, 0.269),
# audio-text similarity (0.613 vs 0.553, 0.583), instrument (81% vs 56%, 69%), flatness and persistence.
# [choice] DDIM with 200 steps for the spectrogram generator (the paper samples with eq. 4): eq. 4 adds fresh noise
# at every step for the generator to remove, DDIM none after its first draw; with eq. 4 the samples kept a noise
# floor between the harmonics (our reading: what each step fails to remove adds up; README, "Evaluation").
# On 16 held-out prompts, 30 s (python evaluate.py eval --routes spec --n 16 --variant sampler=ddim --variant
# sampler=ddim,steps=100 --variant sampler=ddim,steps=200), median flatness and persistence were 0.217, 0.703 with
# eq. 4 at 60 steps, 0.162, 0.678 with DDIM at 60, 0.154, 0.672 at 100 and 0.149, 0.656 at 200 (real 0.058, 0.844),
# with MuLan FAD 0.199, 0.175, 0.177, 0.184 and audio-text similarity 0.646-0.649 for all four; on 32 prompts eq. 4
# at 60 steps against DDIM at 200: 0.211, 0.705 against 0.144, 0.665, both FADs a little worse. 200 steps is the
# setting that brings the flatness within issue 13's bar (0.15); 30 s take 3.6 s of the generator on the 2-core
# VM (python bench.py --only route), one network pass a step at guidance 1.
# [choice] DDIM for the waveform generator too: on the same 16 prompts (python evaluate.py eval --routes wave --n 16
# --variant sampler=ddim) it beat eq. 4 on every column of the waveform route: log-mel FAD 4.09 -> 3.82, MuLan FAD
# 0.862 -> 0.690, audio-text similarity 0.324 -> 0.371, flatness 0.405 -> 0.372, persistence 0.456 -> 0.471.
SAMPLING = {
    "wave": dict(steps=30, step_kind="front", gamma=0.0, guidance=10.0, sampler="ddim"),
    "spec": dict(steps=200, step_kind="back-eval", gamma=0.0, guidance=1.0, sampler="ddim"),
}
CLIP = 0.995     # paper form: dynamic clipping percentile of x0 (Sec. 3.1; the paper gives none: diffusers' default)
STEP_TABLE = {"wave": "waveform-generator", "spec": "spectrogram-generator"}     # diffusion.step_schedule's names


@torch.no_grad()
def generate(model, text_emb=None, text_mask=None, *, config, seconds=30.0, batch=1, steps=None, step_kind=None,
             gamma=None, guidance=None, sampler=None, clip=CLIP, generator=None, progress=False):
    """Text tokens (B, L, D) -> (B, 3200 s) audio (repr wave) or (B, 80, 100 s) log-mel in [-1, 1] (repr spec).

    config: the training config (a checkpoint's "config" dict): repr, form and statistics, schedule, objective.
    Unset sampler settings take SAMPLING's. text_emb=None generates without text (the unconditional model that
    guidance also uses), `batch` clips at once; with text, one clip per prompt row. x0 is dynamically clipped at
    the `clip` percentile in the paper's form, clamped to the data's range in the scaled form. sampler: "ancestral"
    (the paper's eq. 4, with gamma) or "ddim" (deterministic after the first draw; gamma is then unused).
    """
    repr = config["repr"]
    s = diffusion.settings(SAMPLING[repr], steps=steps, step_kind=step_kind, gamma=gamma, guidance=guidance,
                           sampler=sampler)
    if s["sampler"] not in diffusion.SAMPLERS:
        raise ValueError(f"unknown sampler {s['sampler']!r}; use one of {', '.join(diffusion.SAMPLERS)}.")
    scaled = _checked(config) == "scaled"
    dev = next(model.parameters()).device
    b = batch if text_emb is None else text_emb.shape[0]
    length = round(seconds * data.MEL_RATE / data.MEL_HOP) if repr == "spec" else round(seconds * WAVE_RATE)
    # [choice] Diffuse a whole number of the U-Net's bottom positions and crop afterwards: the network pads a
    # shorter x_t with zeros (3000 frames -> 3072 for 30 s), and noise-free zeros after a noisy signal left a
    # visible artefact in the last ~0.7 s of 30 s spectrogram samples.
    stride = model.config.total_stride
    shape = (b, data.MEL_BINS if repr == "spec" else 1, -(-length // stride) * stride)
    model_fn = diffusion.classifier_free_guidance(_model_fn(model, text_emb, text_mask),
                                                  s["guidance"] if text_emb is not None else 1.0)
    steps = diffusion.step_schedule(STEP_TABLE[repr], s["step_kind"], s["steps"])
    x = diffusion.SAMPLERS[s["sampler"]](model_fn, shape, step_sizes=steps, schedule=config["schedule"],
                                         objective=config["objective"], gamma=s["gamma"], generator=generator,
                                         clip_percentile=None if scaled else clip,
                                         project=_bounds(config) if scaled else None, device=dev,
                                         progress=progress and ("spectrogram generator" if repr == "spec"
                                                                else "generator"))
    return from_x0(x[..., :length], config)                   # (B, 80, F) log-mel in [-1, 1], or (B, T) audio


def preview(model, batch, ctx):
    """Generate from a test clip's caption: [(real clip, rate or None), (generated, rate or None)]."""
    cfg = ctx.cfg
    emb, mask = ctx.text(batch["caption"][:1])
    seconds = batch["audio"].shape[-1] / (data.MEL_RATE if _is_spec(cfg) else WAVE_RATE)
    out = generate(model, emb, mask, config=vars(cfg), seconds=seconds, steps=cfg.preview_steps,
                   generator=ctx.generator)
    audio = batch["audio"][:1].to(ctx.device)
    if _is_spec(cfg):
        return [(data.log_mel(audio)[0], None), (out[0], None)]
    return [(audio[0], WAVE_RATE), (out[0], WAVE_RATE)]


def _stage(name, target, defaults):
    """The two generators share this file's code and differ in their defaults (WAVE_DEFAULTS, SPEC_DEFAULTS)."""
    return SimpleNamespace(NAME=name, MAKE_TARGET=target, DEFAULTS=defaults, USES_TEXT=True, model_config=model_config,
                           data_spec=data_spec, calibrate=calibrate, CALIBRATED=("signal_scale", "mel_mean", "mel_std"),
                           loss=loss, preview=preview, __doc__=__doc__, __file__=__file__)


WAVE = _stage("waveform-generator", "train-generator", WAVE_DEFAULTS)
SPEC = _stage("spectrogram-generator", "train-spec-generator", SPEC_DEFAULTS)

if __name__ == "__main__":
    args = sys.argv[1:]
    stage = SPEC if "--repr=spec" in args else WAVE
    if any(a.startswith("--repr=") and a not in ("--repr=spec", "--repr=wave") for a in args):
        print("error: --repr takes wave or spec.", file=sys.stderr)
        sys.exit(2)
    sys.exit(train.main(stage, args))
