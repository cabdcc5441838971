"""Speed and memory machinery that the model and the cascade use, kept out of their reading path.

Nothing here changes a result: ThinConv1d computes exactly what nn.Conv1d computes (tests/test_unet1d.py checks
it), and the memory probe only reads counters. A reader of unet1d.py or sample.py can skip this file.

    ThinConv1d            the U-Net's entry and exit convs (1-2 channels at the full audio rate), in a form that
                          oneDNN runs several times faster on CPUs
    reset_peak_memory()   restart the process's peak resident memory counter (Linux)
    peak_memory_mb()      peak resident memory since the last reset; sample.py reports it per stage, bench.py
                          holds the targets
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class ThinConv1d(nn.Conv1d):
    """nn.Conv1d ('same' padding, odd kernel) for the entry and exit convs, whose input or output has 1-2
    channels at the full audio rate. oneDNN runs such thin shapes several times slower than these two matmul
    forms, and they dominate the cost of the cascaders' forward pass otherwise. Same parameters and same result
    as nn.Conv1d (tests/test_unet1d.py checks it); only the order of the arithmetic differs."""

    def forward(self, x):  # x: (B, C_in, T) -> (B, C_out, T)
        k, T = self.kernel_size[0], x.shape[-1]
        p = k // 2
        if self.in_channels <= self.out_channels:
            # Few input channels: gather the k shifted copies of the input (cheap), then one matmul.
            taps = F.pad(x, (p, p)).unfold(-1, k, 1)                        # (B, C_in, T, k)
            return torch.einsum("ocj,bctj->bot", self.weight, taps) + self.bias[:, None]
        # Few output channels: project every tap first (B, k, C_out, T), then add the taps shifted into place.
        z = torch.matmul(self.weight.permute(2, 0, 1), x[:, None])          # (k, O, C) @ (B, 1, C, T)
        y = z[:, p] + self.bias[:, None]
        for j in range(k):
            s = j - p  # y[t] += z_j[t + s]
            if s > 0:
                y[..., :T - s] += z[:, j, :, s:]
            elif s < 0:
                y[..., -s:] += z[:, j, :, :T + s]
        return y


def reset_peak_memory():
    """Linux: restart the process's peak-RSS counter, so that each stage's peak can be read on its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass                                                   # elsewhere the peak is the whole run's


def peak_memory_mb():
    """Peak resident memory (MB) since the last reset (Linux), or of the whole process (other systems)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource                                           # POSIX only, so imported where it is needed
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)
