"""Tape-speed augmentation for the generators: play a training crop a little faster or slower, so that its pitch and
its tempo move together, and rewrite its caption to say so. [choice, issue 13; not in the paper]

Why: the generators learned the instrument a caption names but not its tempo or key (README, "Where the tempo and the
key are lost"). In the built-in corpus a clip's tempo is drawn at random (60-160 BPM), but each crop is only ever
heard at one tempo and in one key, and the keys are skewed (G, D, C and A are 70% of the clips), so writing the
corpus's common keys is nearly as good as reading the words. Shifting a crop by k semitones gives the same notes
in another key at another tempo, with a caption that names both: the words become the only way to tell them apart.

    speed factor   f = 2 ** (k / 12), k a whole number of semitones drawn uniformly from -max..max per crop
    audio          y(t) = x(f t): the first ceil(f L) samples of the item, band-limited resampled to L samples
                   (data.resample), so every frequency is multiplied by f and every duration divided by it
    caption        "144 BPM", "144 bpm", "144 beats per minute" -> round(144 f); "G minor", "g minor", "F-sharp
                   major", "Bb major" -> the tonic moved by k semitones, spelled as captions.TONICS does, in the
                   original's case. Tempo words ("fast", "allegro") are kept: k <= 3 moves a tempo by at most 19%,
                   so only a tempo near a word's boundary (80 or 115 BPM in captions.py) can end up misnamed.

The timbre moves with the pitch (a tape played fast), which is why the shift is kept small. Measured: 5,000 steps
with --speed_shift=3 taught the shipped spectrogram generator neither tempo nor key and left it worse than the same
continuation without augmentation on every column of `make eval` (README, "Tape-speed augmentation"), so it is off
by default. Shapes: items' audio
(T_read,) at `rate` -> crops (L,); T_read >= ceil(L * 2 ** (max / 12)) (read_seconds gives it).
"""

import math
import re

import torch

import data
import mir
from captions import TONICS

# A key: a letter, an optional accidental, then "major" or "minor" ("b minor" is B minor; "bb minor" B-flat minor).
_KEY = re.compile(r"\b([A-Ga-g])(-sharp|-flat|#|b)?(\s+)(major|minor)\b")
_BPM = re.compile(r"\b(\d{2,3})(\s*)(BPM|bpm|beats per minute)\b")


def read_seconds(seconds, max_semitones):
    """Crop length -> how much audio an item must hold so that the fastest shift still fills the crop."""
    return seconds * 2 ** (max_semitones / 12)


def speed_factor(semitones, rate):
    """2 ** (semitones / 12) as the resampling does it: rate * f rounded to whole Hz, over rate (within 3e-5 of it
    at 16 kHz, 0.0005 of a semitone)."""
    return round(rate * 2 ** (semitones / 12)) / rate


def transpose_keys(caption, semitones):
    """Every key the caption names, moved by `semitones` ("G minor" +3 -> "B-flat minor", "g minor" -> "b-flat
    minor")."""
    def key(m):
        pitch = (mir.pitch_class(m.group(1) + (m.group(2) or "")) + semitones) % 12
        name = TONICS[pitch] if m.group(1).isupper() else TONICS[pitch].lower()
        return f"{name}{m.group(3)}{m.group(4)}"
    return _KEY.sub(key, caption)


def scale_tempi(caption, factor):
    """Every tempo the caption names in BPM, times `factor`, rounded ("144 BPM" x 1.5 -> "216 BPM")."""
    return _BPM.sub(lambda m: f"{round(int(m.group(1)) * factor)}{m.group(2)}{m.group(3)}", caption)


def named_tempo(caption):
    """The first tempo the caption names in BPM, or None."""
    match = _BPM.search(caption)
    return int(match.group(1)) if match else None


def names_key(caption):
    """True when the caption names a key ("in G minor", "g minor")."""
    return _KEY.search(caption) is not None


def shift_caption(caption, semitones):
    """The caption of a crop played 2 ** (semitones / 12) times as fast: tempi scaled, keys transposed."""
    return scale_tempi(transpose_keys(caption, semitones), 2 ** (semitones / 12))


def speed_shift(audio, length, semitones, rate, generator):
    """(T_read,) audio -> (length,) the same audio played 2 ** (semitones / 12) times as fast, from a random offset.

    The segment read is resampled from rate * f to rate with FFT resampling, which treats it as periodic; a margin
    of 64 samples on each side is resampled too and cut off, so the two ends do not bleed into each other."""
    factor = speed_factor(semitones, rate)
    need = math.ceil(length * factor)
    margin = 64
    if audio.shape[-1] < need:
        raise data.DataError(f"a speed-shifted crop needs {need} samples but the item holds {audio.shape[-1]}; read "
                             f"items of augment.read_seconds(...) seconds.")
    offset = int(torch.randint(0, audio.shape[-1] - need + 1, (1,), generator=generator))
    lo, hi = max(offset - margin, 0), min(offset + need + margin, audio.shape[-1])
    from_rate = round(rate * factor)                                        # an integer, as data.resample needs
    out = data.resample(audio[lo:hi], from_rate, rate)                       # (~(hi - lo) / f,)
    start = data.resampled_length(offset - lo, from_rate, rate)
    out = out[start: start + length]
    if out.shape[-1] < length:                                              # rounding at the far end: pad a sample
        out = torch.nn.functional.pad(out, (0, length - out.shape[-1]))
    return out.clamp(-1, 1)


def shift_batch(items, length, max_semitones, rate):
    """Items from data.AudioCaptionDataset -> (B, length) crops and their rewritten captions, each item shifted by
    its own draw (seeded by the item's seed, so a batch is the same whatever the number of loader workers)."""
    crops, captions = [], []
    for item in items:
        gen = torch.Generator().manual_seed(item["seed"] + 2)
        k = int(torch.randint(-max_semitones, max_semitones + 1, (1,), generator=gen))
        crops.append(speed_shift(item["audio"], length, k, rate, gen))
        captions.append(shift_caption(item["caption"], k))
    return torch.stack(crops), captions
