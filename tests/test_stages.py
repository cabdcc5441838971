"""Every cascade stage learns on tiny data (its loss falls) and its generate() returns the right rate and length."""

import math
from types import SimpleNamespace

import pytest
import torch

import checkpoint
import data
import evaluate
import residual
import stage1_generator
import stage2_cascader
import stage3_superres
import text_encoder
import train
import vocoder

CROPS = ["--crop_min=0.4", "--crop_max=0.5"]
STAGES = {
    "waveform-generator": (stage1_generator.WAVE, ["--seconds=1.0"]),
    "spectrogram-generator": (stage1_generator.SPEC, ["--seconds=1.0"]),
    "waveform-cascader": (stage2_cascader.STAGE, CROPS),
    "vocoder": (vocoder.STAGE, CROPS),
    "vocoder-envelope": (vocoder.STAGE, CROPS + ["--form=envelope"]),
    "vocoder-specgrad": (vocoder.STAGE, CROPS + ["--form=specgrad"]),
    "superres": (stage3_superres.STAGE, CROPS),
    "superres-residual": (stage3_superres.STAGE, CROPS + ["--form=residual"]),
}


def signal_of(name, cfg, batch):
    """The signal x0 (B, C, T) each stage diffuses for this batch, in its own units (the stage's form)."""
    audio = batch["audio"]
    if name in ("waveform-generator", "spectrogram-generator"):
        return stage1_generator.to_x0(audio, vars(cfg))
    if name.startswith("vocoder"):                                          # any form
        return (audio / vocoder.waveform_divisor(data.log_mel(audio), vars(cfg)))[:, None]
    module = stage2_cascader if name == "waveform-cascader" else stage3_superres           # either form
    return residual.loss_inputs(audio, module.LOW_RATE, module.RATE, cfg)[1]


def gaussian_baseline(name, cfg, batch):
    """The best denoiser that knows only each channel's mean and variance on this very batch, as a "model" the
    stage's loss can call (it ignores the conditioning and the text): what learning the data's scale alone gives."""
    fn = evaluate.channel_gaussian_denoiser(signal_of(name, cfg, batch), cfg.schedule, cfg.objective)
    return lambda x_t, t, **conditioning: fn(x_t, t)


def fixed_loss(stage, model, cfg, batch, text):
    """The stage's loss on one fixed batch with fixed t, noise and dropout: comparable before and after training."""
    losses = []
    for seed in range(4):
        ctx = SimpleNamespace(cfg=cfg, device=torch.device("cpu"), text=text, generator=train.seeded("eval", seed))
        with torch.no_grad():
            losses.append(stage.loss(model, batch, ctx).item())
    return sum(losses) / len(losses)


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_learns_and_generates(name, tmp_path, tiny_corpus):
    stage, extra = STAGES[name]
    cfg = train.parse_config(stage, ["--steps=80", "--batch_size=4", "--lr=2e-3", "--warmup=2", "--workers=0",
                                     "--sample_every=80", "--preview_steps=2", "--ema=0.9",
                                     f"--data={tiny_corpus}", f"--out={tmp_path}"] + extra)
    text = None
    text_dim = 0
    if stage.USES_TEXT:
        encoder = text_encoder.load_t5()
        text, text_dim = text_encoder.TextEmbeddingCache(encoder, max_length=cfg.text_length), encoder.dim
    spec = stage.data_spec(cfg, stage.model_config(cfg, text_dim))
    train._calibrate(stage, cfg, spec, tiny_corpus / "train", None)   # the scales the loss divides out
    batch = data.fixed_batch(tiny_corpus / "test", spec["rate"], n=2, seconds=spec["crop_range"][0],
                             multiple=spec["multiple"])
    torch.manual_seed(0)
    initial = train.UNet1D(stage.model_config(cfg, text_dim))
    before = fixed_loss(stage, initial, cfg, batch, text)

    train.train(stage, cfg)
    ckpt = checkpoint.load_checkpoint(tmp_path / "last.pt")
    after = fixed_loss(stage, checkpoint.model_from_checkpoint(ckpt, weights="model"), cfg, batch, text)
    # Not against the untrained network (learning the noise scale alone beats a zero-initialised one) but against
    # the model-free Gaussian denoiser: a stage that learned something of the tones beats it.
    no_model = fixed_loss(stage, gaussian_baseline(name, cfg, batch), cfg, batch, text)
    assert after < 0.9 * no_model, (before, after, no_model)
    assert after < before
    assert list((tmp_path / "samples").glob("step0000080.png"))               # the preview picture was written

    model = checkpoint.model_from_checkpoint(ckpt)
    g = torch.Generator().manual_seed(0)
    if name in ("waveform-generator", "spectrogram-generator"):
        emb, mask = text.encoder.encode(["a tone at 440 hertz"] * 2, max_length=cfg.text_length)
        out = stage1_generator.generate(model, emb, mask, config=vars(cfg), seconds=1.3, steps=2, generator=g)
        expected = (2, 80, 130) if cfg.repr == "spec" else (2, 4160)                  # 100 frames/s; 3.2 kHz
    elif name == "waveform-cascader":
        emb, mask = text.encoder.encode(["a tone"], max_length=64)
        out = stage2_cascader.generate(model, torch.zeros(1, 3200), emb, mask, config=vars(cfg), steps=2,
                                       generator=g)
        expected = (1, 16000)
    elif name.startswith("vocoder"):
        out = vocoder.generate(model, torch.zeros(1, 80, 37), config=vars(cfg), steps=2, generator=g)
        expected = (1, 37 * 160)
    else:
        out = stage3_superres.generate(model, torch.zeros(1, 16001), config=vars(cfg), steps=2, generator=g)
        expected = (1, 24002)                                                           # round(1.5 x 16001)
    assert tuple(out.shape) == expected and torch.isfinite(out).all()


# ---------------------------------------------------------------------------------------------------------------
# The vocoder's envelope form

def test_vocoder_envelope_follows_a_tone_whose_loudness_steps():
    """A 440 Hz tone at amplitude 0.4 for 1 s, then 0.1: the mel's envelope drops by 4 between the two halves
    (away from the step, where it is interpolated), and stays flat within each."""
    rate = 16000
    t = torch.arange(2 * rate) / rate
    audio = torch.sin(2 * math.pi * 440 * t) * torch.where(t < 1, 0.4, 0.1)
    e = vocoder.envelope(data.log_mel(audio[None]), 0.0)[0]                 # (T,)
    loud, quiet = e[2000:14000], e[18000:30000]
    assert float(loud.mean() / quiet.mean()) == pytest.approx(4.0, rel=0.02)
    assert float(loud.std() / loud.mean()) < 0.01 and float(quiet.std() / quiet.mean()) < 0.01
    assert float(vocoder.envelope(data.log_mel(torch.zeros(1, rate)), 0.25).min()) == 0.25     # floored


def test_vocoder_specgrad_noise_is_as_loud_as_the_signal_and_shaped_like_its_mel(tiny_corpus):
    """The specgrad form colours unit white noise with the gain its mel gives: the coloured noise is about as loud
    as the scaled waveform (the gain's units), and its log-mel is far closer to the clip's than white noise's at
    the same loudness is. Without the form there is no colouring."""
    audio = data.fixed_batch(tiny_corpus / "train", 16000, n=3, seconds=2.0, multiple=160)["audio"]   # (3, T)
    cfg = train.parse_config(vocoder.STAGE, ["--form=specgrad"])
    config = {**vars(cfg), **vocoder.calibrate(cfg, audio)}
    mel = data.log_mel(audio)
    x0 = audio / vocoder.waveform_divisor(mel, config)                              # (3, T), model units
    white = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    coloured = vocoder.noise_colour(mel, config)(white[:, None])[:, 0]
    rms = lambda z: z.pow(2).mean(dim=1).sqrt()
    ratio = rms(coloured) / rms(x0)
    assert ((ratio > 0.6) & (ratio < 1.4)).all(), ratio
    distance = lambda z: float((data.log_mel(z * config["signal_scale"]) - mel).abs().mean())
    levelled = white * (rms(coloured) / rms(white))[:, None]
    assert distance(coloured) < 0.5 * distance(levelled), (distance(coloured), distance(levelled))
    assert vocoder.noise_colour(mel, {**config, "form": "scaled"}) is None
    assert vocoder.loss_whitening(mel, {**config, "form": "scaled"}) is None


def test_vocoder_envelope_form_calibrates_to_unit_rms_and_inverts_exactly(tiny_corpus):
    audio = data.fixed_batch(tiny_corpus / "train", 16000, n=4, seconds=2.0)["audio"]   # (4, 32000)
    cfg = train.parse_config(vocoder.STAGE, ["--form=envelope"])
    config = {**vars(cfg), **vocoder.calibrate(cfg, audio)}
    assert config["envelope_floor"] > 0 and config["signal_scale"] > 0
    mel = data.log_mel(audio)
    x0 = audio / vocoder.waveform_divisor(mel, config)                              # what the network models
    assert float(x0.pow(2).mean().sqrt()) == pytest.approx(1.0, rel=0.01)
    torch.testing.assert_close(x0 * vocoder.waveform_divisor(mel, config), audio, atol=1e-6, rtol=1e-5)
    given = train.parse_config(vocoder.STAGE, ["--form=envelope", "--envelope_floor=0.5"])
    assert vocoder.calibrate(given, audio)["envelope_floor"] == 0.5         # a floor on the command line is kept
