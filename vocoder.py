"""The spectrogram vocoder: log-mel spectrogram -> 16 kHz audio (Sec. 3.3.2; Tables 2, 3, 8; Fig. 1).

Second stage of the spectrogram route (spectrogram generator -> vocoder -> super-resolution). A diffusion model
over the waveform, conditioned on nothing but the 80-bin log-mel at 100 frames per second; no text.

    form           [choice, issue 12] "scaled": the waveform is divided by its RMS on the training clips (~0.1) so
                   that it has the unit scale the noise schedule assumes, and each mel bin is standardised with its
                   mean and std on those clips; both are kept in the checkpoint. --form=paper diffuses the raw
                   waveform and takes the [-1, 1] log-mel as it is. [choice, issue 12] "envelope" (PriorGrad-like,
                   Lee et al. 2022): the waveform is also divided, sample by sample, by the loudness its mel gives
                   (each frame's energy, interpolated between frame centres, floored at 1/20 of its mean on the
                   training clips): the network no longer has to write how loud each 10 ms is, which the mel says
                   exactly, only the waveform's shape within it. Not the default: on the overfit check (8 clips, 300
                   steps) it did no better than the scaled form (log-mel distance 0.286 against 0.293; README).
                   [choice, issue 12] "specgrad" (Koizumi et al. 2022, SpecGrad): the scaled form, but the diffusion's
                   noise is coloured, frame by frame, like the waveform the mel describes (noise_colour), and the
                   loss weighs the error by the inverse colouring (--whiten_loss). Why: the log-mel distance is
                   ruled by the quiet bins, and white noise buries them first and leaves its floor there: real clips
                   plus white noise 30 dB down are 0.096 from their mel (Griffin-Lim 0.026), plus coloured noise 30 dB
                   down 0.003, and coloured noise alone, with no signal at all, 0.077 (flatness 0.11, persistence
                   0.65; the colouring's floor at 1e-4; `python stagecheck.py --colouring 6`, 6 held-out clips).
                   So every noise level degrades each band alike, the network is left the phase the mel lacks, and
                   what noise it leaves has the mel's own spectrum. The colouring alone is thus this form's
                   no-network answer, and the stage check reports it beside the vocoder's output. Not the default:
                   on the overfit check (8 clips) it brought the output from 0.29 of the mel to 0.085, but its
                   coloured noise alone is 0.074, and 300 or 600 steps, whitened loss or not, four times the width
                   at 8 kHz or not, taught the network nothing it adds to that noise (README).
    conditioning   the spectrogram is an "aligned input": the U-Net's strides multiply to 160 = 16000 / 100, the
                   hop, so at the bottom of the U each position is one spectrogram frame. The 80 mel bins are
                   projected to the bottom width and ADDED there (Fig. 1) [choice: right after the last down-sampling
                   layer, so the bottom blocks already see it]; the tiny preset also adds them at every shallower
                   depth (unet1d.py, aligned_every_depth)
    corruption     in training only: a 2D 5x5 Gaussian blur (std in [0.2, 1.0]) of the spectrogram, then noise to a
                   level u ~ U[0, t_max]; u is given to the network. Sec. 4.1 gives t_max 1.0; [choice] 0.25, where
                   the noise matches the standardised spectrogram (log-SNR 0): at 1.0 the spectrogram was buried in
                   noise in most examples and the vocoder learned to ignore it
    training data  random 3-4 s crops (Sec. 4.1)
    loss           v-prediction [design card; the paper: eps], "simplified" weight, the "linear" schedule (Table 2)
    sampling       Table 3: front-heavy steps (100 in the paper), gamma = 0, no guidance; no dynamic clipping in
                   the scaled form (a unit-RMS waveform is not bounded by 1)

Shapes: spectrogram (B, 80, F) -> generate -> (B, 160 F) at 16 kHz.
Train:  python vocoder.py --help   (make train-vocoder)
"""

import sys
from types import SimpleNamespace

import torch

import checkpoint
import data
import diffusion
import train
import unet1d

RATE = 16000

FORMS = ("scaled", "envelope", "specgrad", "paper")

DEFAULTS = {
    "form": ("scaled", "scaled: unit-RMS waveform and standardised mel bins [choice]; envelope: also divided by the "
                       "mel's loudness [choice]; specgrad: scaled, with noise coloured like the mel [choice]; "
                       "paper: both as they are"),
    "signal_scale": (0.0, "RMS of the training audio, divided out (0 = measure on the training clips at start)"),
    "envelope_floor": (0.0, "envelope form: the loudness floor (0 = 1/20 of its mean on the training clips)"),
    # For experiments on the network's size: the tiny preset is 16, 48, 96, 192 channels at 8 kHz, 2 kHz, 500 Hz and
    # 100 Hz (base 8), where the paper's is 128, 128, 256, 512 (base 128).
    "channel_mults": ("", "channels per depth in units of the preset's base, e.g. 8,12,16,24 (empty: the preset's)"),
    "whiten_loss": (True, "specgrad form: weigh the error by the inverse colouring (SpecGrad) before squaring"),
    "schedule": ("linear", "noise schedule (Table 2: linear, i.e. the DDPM beta schedule; see diffusion.py)"),
    "objective": ("v", "what the network predicts: v (design card) or eps (the paper)"),
    "weight": ("simplified", "loss weight: simplified (w = 1, Table 2) or sigma"),
    "t_max": (0.25, "largest corruption level u of the spectrogram in training (Sec. 4.1: 1.0) [choice]"),
    "crop_min": (3.0, "shortest training crop, seconds"),
    "crop_max": (4.0, "longest training crop, seconds"),
    "batch_size": (16, "examples per optimizer step (paper: 2048)"),
}


def model_config(cfg, text_dim=0):
    train.check_choice(cfg, "form", FORMS)
    unet_cfg = train.with_channel_mults(unet1d.PRESETS[f"{cfg.preset}-vocoder"], cfg)
    if unet_cfg.total_stride != data.MEL_HOP:
        raise train.TrainingError(f"the vocoder's strides must multiply to the spectrogram hop {data.MEL_HOP}, "
                                  f"not {unet_cfg.total_stride}, so that one bottom position is one frame.")
    return unet_cfg


def data_spec(cfg, unet_cfg):
    return {"rate": RATE, "crop_range": (cfg.crop_min, cfg.crop_max), "multiple": data.MEL_HOP,
            "preview_seconds": 4.0, "mel": True}


def envelope(mel, floor):
    """(B, 80, F) log-mel in [-1, 1] -> (B, 160 F): the loudness the mel gives each sample, in arbitrary units (the
    square root of each frame's STFT energy from mel_to_magnitude, linearly interpolated between the frame centres
    at samples 0, 160, 320, ...), at least `floor`. The envelope form divides the waveform by it."""
    frames = mel_to_magnitude(mel).pow(2).sum(1).sqrt()                      # (B, F + 1), frame F repeats F - 1
    position = torch.arange(mel.shape[-1] * data.MEL_HOP, device=mel.device) / data.MEL_HOP   # (T,) in frames
    left = position.long()
    weight = position - left
    return (frames[:, left] * (1 - weight) + frames[:, left + 1] * weight).clamp(min=floor)   # (B, T)


def waveform_divisor(mel, config):
    """What the waveform is divided by in the model's units: (B, 160 F) in the envelope form, else a number."""
    form = config.get("form", "paper")
    if form == "envelope":
        return config["signal_scale"] * envelope(mel, config["envelope_floor"])
    return config["signal_scale"] if form in ("scaled", "specgrad") else 1.0


# The specgrad form's colouring: SpecGrad's time-frequency filter L = G+ M G (STFT, a gain per bin, inverse STFT),
# with the STFT of data.log_mel. The gain is mel_to_magnitude's magnitudes, floored at NOISE_FLOOR times the clip's
# loudest bin [choice: real clips plus noise so coloured, 20 dB down, are 0.011 from their mel at 1e-4, 0.026 at
# 1e-3, 0.078 at 1e-2]. The loss's whitening (the inverse gain) is floored at LOSS_FLOOR instead: the colouring is no
# exact inverse of itself (overlapping frames), and at 1e-4 whitening coloured noise gives back 30 times the white
# noise's RMS, at 1e-2 1.15 times, and coloured at 1e-4 then whitened at 1e-2, as in training, 0.78 times
# (`python stagecheck.py --colouring 6`, 6 held-out clips).
NOISE_FLOOR, LOSS_FLOOR = 1e-4, 1e-2


def stft_gain(mel, config, floor):
    """(B, 80, F) log-mel in [-1, 1] -> (B, 513, F + 1): per STFT bin, the magnitude the mel gives (at least `floor`
    times the clip's loudest), in the model's units (over signal_scale), over the magnitude that the STFT gives unit
    white noise (the root of the window's energy): filtering unit white noise with it gives noise as loud, bin by bin,
    as the scaled waveform the mel describes."""
    magnitude = mel_to_magnitude(mel)
    magnitude = magnitude.clamp(min=floor * magnitude.amax(dim=(1, 2), keepdim=True))
    window_energy = float(stft_settings()["window"].pow(2).sum())
    return magnitude / (config["signal_scale"] * window_energy**0.5)


def stft_filter(x, gain):
    """(B, 1, T) -> (B, 1, T): every STFT bin of x multiplied by gain (B, 513, F + 1), then back to a waveform."""
    stft = stft_settings(x.device)
    spec = torch.stft(x[:, 0], center=True, pad_mode="constant", return_complex=True, **stft)    # (B, 513, F + 1)
    return torch.istft(spec * gain, length=x.shape[-1], center=True, **stft)[:, None]


def noise_colour(mel, config):
    """The linear map that colours the diffusion's white noise (B, 1, T) for this (B, 80, F) mel: the specgrad
    form's filter, or None (white noise) in the other forms."""
    if config.get("form") != "specgrad":
        return None
    gain = stft_gain(mel, config, NOISE_FLOOR)
    return lambda z: stft_filter(z, gain)


def loss_whitening(mel, config):
    """The map the specgrad form's loss applies to the error before squaring (the inverse colouring), or None."""
    if config.get("form") != "specgrad" or not config.get("whiten_loss", True):
        return None
    inverse = 1 / stft_gain(mel, config, LOSS_FLOOR)
    return lambda e: stft_filter(e, inverse)


def calibrate(cfg, audio):
    """(B, T) 16 kHz training audio -> the waveform's RMS (after the envelope in the envelope form, with its floor)
    and each mel bin's mean and std (80 each)."""
    if cfg.form == "paper":
        return {}
    mel = data.log_mel(audio)                                                # (B, 80, F)
    if cfg.form in ("scaled", "specgrad"):
        return {"signal_scale": data.signal_rms(audio), **data.mel_statistics(mel)}
    floor = cfg.envelope_floor or round(float(envelope(mel, 0.0).mean()) / 20, 6)     # a given floor is kept
    return {"envelope_floor": floor, "signal_scale": data.signal_rms(audio / envelope(mel, floor)),
            **data.mel_statistics(mel)}


def standardise(mel, config):
    """(B, 80, F) log-mel in [-1, 1] -> the network's input: each bin standardised (scaled form) or as it is."""
    if config.get("form", "paper") == "paper":
        return mel
    if len(config.get("mel_mean") or ()) != data.MEL_BINS or not config.get("signal_scale", 0) > 0:
        raise checkpoint.CheckpointError("this scaled-form vocoder config has no measured signal_scale, mel_mean and "
                                    "mel_std; train the vocoder (train.py measures them).")
    if config.get("form") == "envelope" and not config.get("envelope_floor", 0) > 0:
        raise checkpoint.CheckpointError("this envelope-form vocoder config has no measured envelope_floor; train the "
                                         "vocoder (train.py measures it).")
    return data.standardise_mel(mel, config)


def _model_fn(model, spectrogram, cond_noise):
    return lambda x_t, t: model(x_t, t, aligned=spectrogram, cond_noise=cond_noise)


def loss(model, batch, ctx):
    cfg, g = ctx.cfg, ctx.generator
    audio = batch["audio"].to(ctx.device)                                     # (B, T) 16 kHz, T = 160 F
    given = batch["mel"].to(ctx.device) if "mel" in batch else data.log_mel(audio)   # from the loader's workers
    mel = standardise(given, vars(cfg))                                       # (B, 80, F)
    mel, u = diffusion.corrupt_condition(mel, t_max=cfg.t_max, schedule=cfg.schedule, generator=g,
                                         blur="2d")                          # Sec. 4.1: 5x5 blur, std 0.2-1.0
    # The envelope and the noise's colour come from the mel as given, as at sampling; the corruption only trains the
    # network's reading.
    x0 = (audio / waveform_divisor(given, vars(cfg)))[:, None]                       # (B, 1, T)
    value, _, _ = diffusion.diffusion_loss(_model_fn(model, mel, u), x0, schedule=cfg.schedule,
                                           objective=cfg.objective, weight=cfg.weight, generator=g,
                                           shape_noise=noise_colour(given, vars(cfg)),
                                           whiten=loss_whitening(given, vars(cfg)))
    return value


# Sampling defaults (sample.py uses them): Table 3's front-heavy steps and gamma 0, with 12 steps instead of 100;
# cond_noise as in stage2_cascader.SAMPLING [choice].
SAMPLING = dict(steps=12, step_kind="front", gamma=0.0, cond_noise=0.02)


@torch.no_grad()
def generate(model, spectrogram, *, config, steps=None, step_kind=None, gamma=None, cond_noise=None,
             generator=None, progress=False):
    """(B, 80, F) log-mel in [-1, 1] -> (B, 160 F) 16 kHz audio.  Unset sampler settings take SAMPLING's.
    config: the training config (a checkpoint's "config" dict): form, statistics, schedule, objective.
    Dynamic clipping at the 99.5th percentile in the paper's form only (a unit-RMS waveform is not bounded by 1)."""
    s = diffusion.settings(SAMPLING, steps=steps, step_kind=step_kind, gamma=gamma, cond_noise=cond_noise)
    scaled = config.get("form", "paper") != "paper"                         # every form but the paper's: unit variance
    schedule = config["schedule"]
    dev = next(model.parameters()).device
    b, _, frames = spectrogram.shape
    level = torch.full((b,), float(s["cond_noise"]), device=dev)
    mel = standardise(spectrogram.to(dev).float(), config)
    mel = diffusion.noise_condition(mel, level, schedule=schedule, generator=generator)
    x = diffusion.sample(_model_fn(model, mel, level), (b, 1, frames * data.MEL_HOP),
                         step_sizes=diffusion.step_schedule("vocoder", s["step_kind"], s["steps"]),
                         schedule=schedule, objective=config["objective"], gamma=s["gamma"], generator=generator,
                         clip_percentile=None if scaled else 0.995, device=dev, progress=progress and "vocoder",
                         shape_noise=noise_colour(spectrogram.to(dev).float(), config))     # (B, 1, 160 F)
    return x[:, 0] * waveform_divisor(spectrogram.to(dev).float(), config)


# [choice] Fast Griffin-Lim (momentum 0.99, Perraudin et al. 2013's value) rather than the plain algorithm, at the
# same 32 iterations and cost: on the 200 real test clips plain Griffin-Lim's phase, not the 80-bin mel, is what
# loses the key (key and mode heard right: the clips 76.0%, their mel with their own phase 75.5%, plain Griffin-Lim
# 56.0%, fast 64.0%; `python evaluate.py validate --through-mel [true-phase]`, README "Evaluation"), and momentum gets
# closer to the given spectrogram in as many iterations (tests/test_stagecheck.py). 0 is the plain algorithm.
GRIFFIN_LIM_MOMENTUM = 0.99


def stft_settings(device=None):
    """The STFT of data.log_mel, as keyword arguments of torch.stft / torch.istft."""
    return dict(n_fft=data.MEL_NFFT, hop_length=data.MEL_HOP, win_length=data.MEL_WINDOW,
                window=torch.hann_window(data.MEL_WINDOW, device=device))


def mel_to_magnitude(mel):
    """(B, 80, F) log-mel in [-1, 1] -> (B, 513, F + 1) STFT magnitude: the mel magnitudes spread back over the
    STFT bins by least squares (clamped at 0). The STFT of data.log_mel has one frame more than the mel keeps (the
    frame centred past the end); it repeats the last."""
    lo, hi = data.LOG_MEL_RANGE
    mel_mag = torch.exp((mel.float() + 1) / 2 * (hi - lo) + lo)              # (B, 80, F): undo log_mel's map
    fb = data.mel_filterbank().to(mel_mag.device)                           # (80, 513)
    magnitude = (torch.linalg.pinv(fb) @ mel_mag).clamp(min=0)               # (B, 513, F): least squares
    return torch.nn.functional.pad(magnitude, (0, 1), mode="replicate")


def with_own_phase(audio):
    """(B, 160 F) 16 kHz audio -> (B, 160 F): rebuilt from its log-mel's magnitudes (mel_to_magnitude) and its own
    STFT phase. What a vocoder that found the perfect phase would give back: whatever is lost here, the 80-bin mel
    lost (`python evaluate.py validate --through-mel true-phase`)."""
    stft = stft_settings(audio.device)
    own = torch.stft(audio, center=True, pad_mode="constant", return_complex=True, **stft)      # (B, 513, F + 1)
    magnitude = mel_to_magnitude(data.log_mel(audio))                                           # (B, 513, F + 1)
    return torch.istft(magnitude * torch.exp(1j * own.angle()), length=audio.shape[-1], center=True, **stft)


def griffin_lim(mel, iterations=32, generator=None, momentum=GRIFFIN_LIM_MOMENTUM):
    """The vocoder with no model, the bar a trained one must clear (make check-stages) and what `--steps-vocoder 0`
    runs in sample.py. (B, 80, F) log-mel in [-1, 1] -> (B, 160 F) 16 kHz audio: a phase for mel_to_magnitude's
    magnitudes by Griffin-Lim's alternating projections (Griffin & Lim 1984). momentum > 0 is the fast Griffin-Lim
    of Perraudin, Balazs & Sondergaard (2013): each step overshoots along its last change, t + momentum (t - t_prev)."""
    magnitude = mel_to_magnitude(mel)                                        # (B, 513, F + 1)
    stft, length = stft_settings(magnitude.device), mel.shape[-1] * data.MEL_HOP
    phase = torch.rand(magnitude.shape, generator=generator).to(magnitude.device) * 2 * torch.pi   # the seed's draw
    spec = magnitude * torch.exp(1j * phase)
    previous = None
    for _ in range(iterations):
        audio = torch.istft(spec, length=length, center=True, **stft)
        rebuilt = torch.stft(audio, center=True, pad_mode="constant", return_complex=True, **stft)  # (B, 513, F + 1)
        target = rebuilt if previous is None or not momentum else rebuilt + momentum * (rebuilt - previous)
        previous = rebuilt
        spec = magnitude * torch.exp(1j * target.angle())
    return torch.istft(spec, length=length, center=True, **stft)


def preview(model, batch, ctx):
    """Vocode a real test clip's spectrogram: [(spectrogram, None), (output, rate)]."""
    mel = data.log_mel(batch["audio"][:1].to(ctx.device))
    out = generate(model, mel, config=vars(ctx.cfg), steps=ctx.cfg.preview_steps, generator=ctx.generator)
    return [(mel[0], None), (out[0], RATE)]


STAGE = SimpleNamespace(NAME="vocoder", MAKE_TARGET="train-vocoder", DEFAULTS=DEFAULTS, USES_TEXT=False,
                        model_config=model_config, data_spec=data_spec, calibrate=calibrate,
                        CALIBRATED=("signal_scale", "mel_mean", "mel_std", "envelope_floor"), loss=loss,
                        preview=preview,
                        __doc__=__doc__, __file__=__file__)

if __name__ == "__main__":
    sys.exit(train.main(STAGE))
