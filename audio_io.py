"""What a person hears and sees: safe WAV writing and spectrogram pictures.

Both the training loop (a preview sample every few hundred steps) and sample.py (every stage of the cascade) write
audio and a picture of it, so that a reader can hear and *see* what each stage adds: the 3.2 kHz generator output
has nothing above 1.6 kHz, the 16 kHz cascader fills in up to 8 kHz, super-resolution up to 12 kHz.

- write_wav(path, audio, rate): mono 16-bit PCM, written to a temporary name and renamed, so an interrupted run
  never leaves a half-written file.
- stage_grid(signal, rate): a stage's output (audio, or a log-mel) as dB on one shared 0-12 kHz grid.
- write_stage_picture(path, panels): the stages stacked top to bottom with titles, kHz and seconds axes, each
  stage's Nyquist limit, and one dB colour bar (matplotlib).
"""

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import data


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
    samples = torch.as_tensor(audio).detach().float().cpu().clamp(-1, 1).numpy()
    atomic_write(path, lambda tmp: sf.write(tmp, samples, rate, subtype="PCM_16", format="WAV"), suffix=".wav")


# --- pictures ---------------------------------------------------------------------------------------------------
# [choice, issue 14] matplotlib draws them: titled rows, axes in kHz and seconds, one dB colour bar. The picture's
# *data* (stage_grid) is computed here by hand, so that a test can check where a tone lands and how bright it is.

PICTURE_MAX_HZ = 12000          # the 24 kHz Nyquist: every stage of the cascade on one frequency axis
PICTURE_DB = (-100.0, -20.0)    # the shared colour scale, dB relative to a full-scale sine
PICTURE_ROWS = 240              # frequency rows of the shared grid (50 Hz apart)


def _stft_db(audio, rate, frames_per_second):
    """(T,) -> (dB (bins, frames), bin frequencies in Hz, frame times in s). dB re. a full-scale sine, whose peak bin
    has |X| = sum(window) / 2; the window is ~43 ms at every rate, so all stages show the same frequency detail."""
    x = torch.as_tensor(audio).detach().float().cpu().flatten()
    n_fft = max(16, round(rate * 1024 / 24000))
    hop = max(1, round(rate / frames_per_second))
    window = torch.hann_window(n_fft)
    x = torch.nn.functional.pad(x, (0, max(0, n_fft - len(x))))
    spec = torch.stft(x, n_fft, hop_length=hop, window=window, center=True, return_complex=True).abs()
    db = 20 * torch.log10(spec / (window.sum() / 2) + 1e-10)
    return db.numpy(), np.fft.rfftfreq(n_fft, 1 / rate), np.arange(db.shape[1]) * hop / rate


def _mel_db(log_mel):
    """(80, F) log-mel in [-1, 1] (data.log_mel) -> (dB (80, F), each bin's centre frequency in Hz, frame times).
    [choice] A mel value is an area-normalised sum of STFT magnitudes, about one bin's magnitude / the bin spacing
    for a smooth spectrum; we undo that and data.log_mel's full-scale factor, so the mel row shares the dB scale."""
    v = torch.as_tensor(log_mel).detach().float().cpu()
    lo, hi = data.LOG_MEL_RANGE
    magnitude = torch.exp((v + 1) / 2 * (hi - lo) + lo) * (data.MEL_RATE / data.MEL_NFFT)     # per STFT bin
    db = 20 * torch.log10(magnitude / (data.MEL_WINDOW / 4) + 1e-10)      # hann(640) sums to 320; a sine's peak: /2
    edges = data.mel_to_hz(torch.linspace(0.0, float(data.hz_to_mel(data.MEL_FMAX)), v.shape[0] + 2))
    return db.numpy(), edges[1:-1].numpy(), np.arange(v.shape[1]) * data.MEL_HOP / data.MEL_RATE


def stage_grid(signal, rate, frames_per_second=50):
    """One stage's output on the picture's shared grid: (dB (PICTURE_ROWS, frames), row frequencies in Hz,
    frame times in s, the highest frequency the stage can hold). signal: (T,) audio at `rate`, or an (80, F)
    log-mel with rate None (drawn at its bins' true frequencies). Rows above the stage's limit are NaN (blank)."""
    if rate is None:
        db, freqs, times = _mel_db(signal)
        limit = data.MEL_FMAX
    else:
        db, freqs, times = _stft_db(signal, rate, frames_per_second)
        limit = rate / 2
    rows = np.linspace(0, PICTURE_MAX_HZ, PICTURE_ROWS)
    grid = np.stack([np.interp(rows, freqs, column) for column in db.T], axis=1)        # (rows, frames)
    grid[rows > limit] = np.nan
    return grid, rows, times, limit


def write_stage_picture(path, panels, title=None):
    """panels: [(label, signal, rate or None)], drawn top to bottom on one frequency axis (kHz), one time axis (s)
    and one dB colour scale with its bar; a dashed line marks each stage's Nyquist limit. Written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 1.9 * len(panels) + 0.6), sharex=True, sharey=True,
                             squeeze=False, layout="constrained")
    for ax, (label, signal, rate) in zip(axes[:, 0], panels):
        grid, rows, times, limit = stage_grid(signal, rate)
        end = times[-1] + (times[1] - times[0] if len(times) > 1 else 0.0)
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap="magma", vmin=PICTURE_DB[0], vmax=PICTURE_DB[1],
                          extent=(0.0, end, 0.0, PICTURE_MAX_HZ / 1000), interpolation="nearest")
        ax.axhline(limit / 1000, color="white", linestyle="--", linewidth=0.8)
        ax.set_facecolor("0.85")                                   # above the limit: nothing this stage can hold
        ax.set_title(label, loc="left", fontsize=9)
        ax.set_ylabel("kHz")
    axes[-1, 0].set_xlabel("seconds")
    fig.colorbar(image, ax=axes[:, 0], label="dB re. full-scale sine", shrink=0.9)
    if title:
        # A prompt may hold control characters or emoji that the default font cannot draw; keep what it can.
        printable = "".join(c for c in title if c.isprintable() and ord(c) < 0x2000).strip()
        if printable:
            fig.suptitle(printable, fontsize=10)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90), suffix=".png")
    plt.close(fig)


def write_matrix_picture(path, matrix, title, xlabel, ylabel):
    """A small labelled heat map (MuLan's clip x caption similarities), written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.5, 4), layout="constrained")
    image = ax.imshow(torch.as_tensor(matrix).detach().float().cpu().numpy(), cmap="magma", vmin=-1, vmax=1)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.colorbar(image, ax=ax, label="cosine similarity")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90), suffix=".png")
    plt.close(fig)
