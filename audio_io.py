"""What a person hears and sees: safe WAV writing and spectrogram pictures.

Both the training loop (a preview sample every few hundred steps) and sample.py (every stage of the cascade) write
audio and a picture of it, so that a reader can hear and *see* what each stage adds: the 3.2 kHz generator output
has nothing above 1.6 kHz, the 16 kHz cascader fills in up to 8 kHz, super-resolution up to 12 kHz.

- write_wav(path, audio, rate): mono 16-bit PCM, written to a temporary name and renamed, so an interrupted run
  never leaves a half-written file.
- spectrogram_rgb(audio, rate, max_hz): a log-magnitude STFT on a linear frequency axis as an (H, W, 3) uint8 image.
- write_png(path, rows): stacks images top to bottom and writes a PNG with nothing but zlib (no plotting library
  to install for one picture).
"""

import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
import torch


def atomic_write(path, write_fn, suffix=""):
    """Call write_fn(tmp_path) on a temporary file in the target folder, then rename it onto `path`.
    A crash or Ctrl-C in the middle leaves the old file (or nothing) in place, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    try:
        write_fn(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)                      # mkstemp makes files private; give the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_wav(path, audio, rate):
    """audio: (T,) float in [-1, 1] (clipped), written as mono 16-bit PCM WAV."""
    data = torch.as_tensor(audio).detach().float().cpu().clamp(-1, 1).numpy()
    atomic_write(path, lambda tmp: sf.write(tmp, data, rate, subtype="PCM_16", format="WAV"), suffix=".wav")


# --- pictures ---------------------------------------------------------------------------------------------------

# A perceptually ordered dark-to-bright colour ramp (black, purple, red, orange, pale yellow), interpolated linearly.
_RAMP = np.array([[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]], dtype=np.float32)


def colorize(values):
    """(H, W) floats in [0, 1] -> (H, W, 3) uint8 through the colour ramp."""
    v = np.clip(np.nan_to_num(values), 0, 1) * (len(_RAMP) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_RAMP) - 2)
    frac = (v - lo)[..., None]
    return (_RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac).astype(np.uint8)


def spectrogram_rgb(audio, rate, max_hz=12000, height=160, width=600, floor_db=-80.0):
    """(T,) audio -> (height, width, 3) picture: time left to right, 0..max_hz bottom to top, log magnitude.

    The frequency axis is linear and shared by every stage (max_hz = 12 kHz, the 24 kHz Nyquist), so a band a
    stage cannot produce shows as black: the 3.2 kHz generator's picture is dark above 1.6 kHz."""
    x = torch.as_tensor(audio).detach().float().cpu().flatten()
    n_fft = 1024
    hop = max(1, len(x) // width)
    if len(x) < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - len(x)))
    spec = torch.stft(x, n_fft, hop_length=hop, window=torch.hann_window(n_fft), return_complex=True).abs()
    db = 20 * torch.log10(spec + 1e-7)                                     # (n_fft/2 + 1, frames)
    db = (db - db.max()).clamp(min=floor_db) / -floor_db + 1               # [0, 1], loudest = 1
    freqs = torch.linspace(0, max_hz, height)                              # bottom row 0 Hz
    bins = (freqs / (rate / 2) * (n_fft // 2)).round().long()
    img = torch.zeros(height, db.shape[1])
    inside = bins <= n_fft // 2                                            # above this stage's Nyquist: black
    img[inside] = db[bins[inside]]
    cols = torch.linspace(0, db.shape[1] - 1, width).round().long()
    return colorize(img[:, cols].flip(0).numpy())


def matrix_rgb(values, height=160, width=600, lo=-1.0, hi=1.0):
    """(rows, cols) matrix (e.g. an 80-bin log-mel in [-1, 1], low bins first) -> (height, width, 3) picture."""
    v = torch.as_tensor(values).detach().float().cpu()
    r = torch.linspace(0, v.shape[0] - 1, height).round().long()
    c = torch.linspace(0, v.shape[1] - 1, width).round().long()
    return colorize(((v[r][:, c] - lo) / (hi - lo)).flip(0).numpy())


def write_png(path, rows, gap=6):
    """Stack (H_i, W, 3) uint8 images top to bottom with a white gap and write one RGB PNG."""
    width = max(r.shape[1] for r in rows)
    parts = []
    for i, r in enumerate(rows):
        if i:
            parts.append(np.full((gap, width, 3), 255, np.uint8))
        parts.append(np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255))
    img = np.concatenate(parts)
    raw = b"".join(b"\x00" + row.tobytes() for row in img)                # filter type 0 per scanline

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", img.shape[1], img.shape[0], 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(png)
    atomic_write(path, write, suffix=".png")
