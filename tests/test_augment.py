"""Tests for augment.py, the generators' tape-speed augmentation: a crop played 2^(k/12) times as fast, and its
caption rewritten to match. Closed forms: a sine comes out as a sine at exactly f times its frequency; a caption's
tempo is scaled and its key transposed by k semitones, and k then -k gives the key back."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

import augment
import captions
import data
import stage1_generator
import train


def fit_sine(y, freq, rate, tolerance=1e-4):
    """Least-squares fit to y of a sine within `tolerance` (relative) of `freq`: the smallest share of y's energy
    that it leaves unexplained. The tolerance is the resampler's: it maps a whole segment of n samples to a whole
    number of samples, so its speed factor is off by up to ~1/n (here ~2e-5, a thousandth of a semitone)."""
    n = np.arange(len(y)) / rate
    best = 1.0
    for f in freq * (1 + np.linspace(-tolerance, tolerance, 81)):
        basis = np.stack([np.sin(2 * np.pi * f * n), np.cos(2 * np.pi * f * n)], 1)
        coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
        best = min(best, float(np.sum((y - basis @ coef) ** 2) / np.sum(y ** 2)))
    return best


@pytest.mark.parametrize("k", [-3, -1, 0, 2, 3])
def test_a_shifted_sine_is_a_sine_at_f_times_its_frequency(k):
    rate, f0 = 16000, 440.0
    x = 0.5 * torch.sin(2 * math.pi * f0 * torch.arange(4 * rate, dtype=torch.float64) / rate + 0.3)
    y = augment.speed_shift(x.float(), 46080, k, rate, torch.Generator().manual_seed(1)).double().numpy()
    assert y.shape == (46080,)
    assert abs(augment.speed_factor(k, rate) / 2 ** (k / 12) - 1) < 3e-5
    assert fit_sine(y, f0 * augment.speed_factor(k, rate), rate) < 1e-5
    # ... and not at the unshifted frequency (a shift of one semitone is far more than the fit's resolution)
    if k:
        assert fit_sine(y, f0, rate) > 0.5


def test_no_shift_is_an_exact_slice_of_the_item():
    x = torch.randn(20000)
    y = augment.speed_shift(x, 8000, 0, 16000, torch.Generator().manual_seed(3))
    starts = [i for i in range(20000 - 8000 + 1) if torch.equal(x[i: i + 8000].clamp(-1, 1), y)]
    assert len(starts) == 1


def test_a_too_short_item_is_a_clear_error():
    with pytest.raises(data.DataError, match="read_seconds"):
        augment.speed_shift(torch.zeros(1000), 1000, 3, 16000, torch.Generator())


@pytest.mark.parametrize("caption,k,expected", [
    ("At 144 BPM, it feels quick. It is in G minor.", 3, "At 171 BPM, it feels quick. It is in B-flat minor."),
    ("recorder, g minor, 144 bpm, woodwind", -2, "recorder, f minor, 128 bpm, woodwind"),
    ("The tempo marking would be allegro, about 100 beats per minute.", 1,
     "The tempo marking would be allegro, about 106 beats per minute."),
    ("The harmony centres on F-sharp major, giving a joyful mood.", 1, "The harmony centres on G major, giving a "
                                                                         "joyful mood."),
    ("A tune in Bb major, and one in b minor", 2, "A tune in C major, and one in c-sharp minor"),
    ("piano, major key, solo melody", 3, "piano, major key, solo melody"),       # no tonic named: nothing to move
    ("At 144 BPM in E-flat major.", 0, "At 144 BPM in E-flat major."),
])
def test_captions_say_the_shifted_tempo_and_key(caption, k, expected):
    assert augment.shift_caption(caption, k) == expected


def test_a_shift_and_its_inverse_give_the_key_back():
    for tonic in captions.TONICS:
        for mode in ("major", "minor"):
            caption = f"It is in {tonic} {mode}."
            for k in range(-3, 4):
                assert augment.shift_caption(augment.shift_caption(caption, k), -k) == caption


def test_a_loader_with_speed_shift_moves_pitch_and_caption_together(tmp_path):
    """A folder of one 440 Hz clip captioned "A major, 120 BPM": in every crop of a shifted batch, the heard
    frequency and the caption's key and tempo say the same shift k."""
    rate = 16000
    t = np.arange(10 * rate) / rate
    sf.write(tmp_path / "a.flac", 0.3 * np.sin(2 * np.pi * 440.0 * t), rate)
    (tmp_path / "captions.jsonl").write_text(json.dumps({"path": "a.flac", "captions": ["A major, 120 BPM"]}) + "\n")
    loader = data.make_loader(tmp_path, rate, 8, crop_range=(1.0, 1.0), multiple=160, num_workers=0, seed=0,
                              speed_shift=3, forever=True)
    batch = next(iter(loader))
    assert batch["audio"].shape == (8, rate)
    shifts = set()
    for audio, caption in zip(batch["audio"].double().numpy(), batch["caption"]):
        k = next(k for k in range(-3, 4) if augment.shift_caption("A major, 120 BPM", k) == caption)
        assert fit_sine(audio, 440.0 * augment.speed_factor(k, rate), rate) < 1e-4
        shifts.add(k)
    assert len(shifts) > 1                                     # the draws differ from crop to crop
    again = next(iter(data.make_loader(tmp_path, rate, 8, crop_range=(1.0, 1.0), multiple=160, num_workers=0,
                                       seed=0, speed_shift=3, forever=True)))
    assert torch.equal(again["audio"], batch["audio"]) and again["caption"] == batch["caption"]   # one seed


def test_speed_shift_needs_crops():
    with pytest.raises(data.DataError, match="crop_range"):
        data.make_loader("unused", 16000, 2, crop_seconds=1.0, speed_shift=2)


@pytest.mark.parametrize("repr_,seconds,shift,message", [("wave", 30.0, 2, "at most 26.73 s"),
                                                         ("spec", 2.88, -1, "0 \\(off\\) to 12"),
                                                         ("spec", 2.88, 13, "0 \\(off\\) to 12")])
def test_the_generators_refuse_a_shift_their_clips_cannot_hold(repr_, seconds, shift, message):
    cfg = SimpleNamespace(repr=repr_, seconds=seconds, speed_shift=shift)
    with pytest.raises(train.TrainingError, match=message):
        stage1_generator.data_spec(cfg, None)
    assert stage1_generator.data_spec(SimpleNamespace(repr=repr_, seconds=seconds / 2, speed_shift=2),
                                      None)["speed_shift"] == 2
