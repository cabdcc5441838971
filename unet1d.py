"""The 1D Efficient U-Net shared by all five Noise2Music models [P §3.2, App. B, Fig. 1, Fig. 5, Tab. 8].

One network class, configured five ways (Table 8):

    entry conv (k=3)  ->  for depth I = 1..D:  down-sample (stride S_I) -> N_I blocks   (store skip)
                      ->  bottom: + projected aligned input (vocoder's spectrogram; optionally at every depth)
                      ->  for depth I = D..1:  N_I blocks -> up-sample (stride S_I) -> + skip of depth I-1
                      ->  exit conv (k=3)

A block (Fig. 5) is FiLM(time) -> 2 x [GroupNorm, SiLU, Conv_k] with a 1x1 "FC" residual, then, at the depths
Table 8 flags, self-attention + FFN and cross-attention to the T5 token sequence + FFN.

Shapes:
    x          (B, in_channels, T)          noisy signal x_t; any T (padded to a multiple of total_stride inside)
    t          (B,)                          diffusion time in [0, 1], 0 = clean
    text_emb   (B, L, text_dim)              T5 token embeddings;  text_mask (B, L) bool, True = real token
    drop_text  (B,) bool                     True = zero the cross-attention output (classifier-free guidance)
    cond       (B, cond_channels, T)         low-fidelity audio stacked with x_t (cascaders)
    aligned    (B, aligned_channels, ceil(T / total_stride))   vocoder spectrogram, added at the bottom (and, with
                                             aligned_every_depth, repeated to every shallower depth's rate)
    cond_noise (B,)                          corruption level u of `cond`/`aligned` (cascaders, vocoder)
    returns    (B, out_channels, T)

Run `python unet1d.py` for the parameter table of every preset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from perf import ThinConv1d   # nn.Conv1d for 1-2 channels at the audio rate, computed faster on CPUs


@dataclass
class UNetConfig:
    in_channels: int = 1          # channels of x_t (1 for waveforms, 80 for the spectrogram generator)
    out_channels: int = 1         # channels of the prediction (same as in_channels)
    cond_channels: int = 0        # low-fidelity audio stacked with x_t at the input (waveform and SR cascaders: 1)
    aligned_channels: int = 0     # vocoder: mel bins (80) projected and ADDED at the bottom of the U (Fig. 1)
    aligned_every_depth: bool = False  # [choice] also add it (repeated to each rate) at every depth of the down path
    base_channels: int = 256      # width of the entry and exit convs (C_0) and the unit of channel_mults
    kernel_size: int = 7          # k of the block convs (Tab. 8); entry and exit convs use 3 (App. B.1)
    strides: tuple[int, ...] = (4, 4, 4, 4, 4, 4)        # S_I, one per depth (Tab. 8)
    channel_mults: tuple[int, ...] = (1, 1, 2, 3, 4, 4)  # C_I = base_channels * mult_I (Tab. 8)
    blocks: tuple[int, ...] = (3, 3, 3, 4, 4, 4)         # N_I blocks per depth, on each side of the U (Tab. 8)
    self_attn: tuple[bool, ...] = ()   # per depth: MHSA + FFN in every block (Tab. 8); () = nowhere
    cross_attn: tuple[bool, ...] = ()  # per depth: cross-attention to the text + FFN in every block; () = nowhere
    heads: int = 8                # attention heads (App. B.1); head dim = C_I / heads
    text_dim: int = 0             # width of the T5 token embeddings; 0 = the model takes no text
    cond_noise_level: bool = False  # embed the corruption level u and add it to the time embedding (§13)
    time_dim: int = 0             # width of the time embedding; 0 = base_channels, as App. B.1 says
    norm_groups: int = 32         # [choice] GroupNorm groups (paper: not given); gcd(norm_groups, C) is used
    ffn_mult: int = 2             # App. B.1: "post-attention residual layer" with hidden width 2*C_I
    fc_skip: bool = True          # Fig. 5's 1x1 "FC" on the block's residual branch; False = identity skip
    mirror_bottom: bool = False   # [choice] True = the deepest depth also has N_D blocks on the up side
    zero_init: bool = True        # [choice] zero the last layer of every residual branch and the exit conv
    full_rate_blocks: int = 0     # blocks at the input's own rate after the entry conv and before the exit conv
                                  # (Tab. 8 has none: 0; an experiment of issue 13); they start as the identity

    def __post_init__(self):
        # Tuples, also when the config comes back from JSON (lists) in a checkpoint.
        for name in ("strides", "channel_mults", "blocks", "self_attn", "cross_attn"):
            setattr(self, name, tuple(getattr(self, name)))
        depth = len(self.strides)
        self.self_attn = self.self_attn or (False,) * depth
        self.cross_attn = self.cross_attn or (False,) * depth
        for name in ("channel_mults", "blocks", "self_attn", "cross_attn"):
            if len(getattr(self, name)) != depth:
                raise ValueError(f"UNetConfig.{name} has {len(getattr(self, name))} entries but strides has "
                                 f"{depth}; give one entry per depth.")
        for c in self.widths:
            if c % self.heads and (any(self.self_attn) or any(self.cross_attn)):
                raise ValueError(f"width {c} is not divisible by heads={self.heads}; change heads or channels.")
        if any(self.cross_attn) and self.text_dim <= 0:
            raise ValueError("cross_attn is set at some depth but text_dim is 0; give the text embedding width.")

    @property
    def total_stride(self) -> int:
        return math.prod(self.strides)

    @property
    def widths(self) -> list[int]:
        """C_I for I = 1..D."""
        return [self.base_channels * m for m in self.channel_mults]


# ----------------------------------------------------------------------------------------------------------------
# Small pieces


def sinusoidal_embedding(values: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) floats in [0, 1] -> (B, dim): the Transformer's sin/cos "positional" embedding (App. B.1)."""
    # [choice] scale t by 1000 so the frequencies cover the range they cover for integer DDPM steps.
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=values.device) / half)
    angles = 1000.0 * values.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class FeedForward(nn.Module):
    """App. B.1's post-attention residual layer: LayerNorm -> Linear(C, 2C) -> GELU -> Linear(2C, C)."""

    def __init__(self, dim: int, mult: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc_in, self.fc_out = nn.Linear(dim, mult * dim), nn.Linear(mult * dim, dim)

    def forward(self, h):  # h: (B, T, C)
        return self.fc_out(F.gelu(self.fc_in(self.norm(h))))


class Attention(nn.Module):
    """Multi-head attention; self-attention when `context` is None, cross-attention to the text otherwise."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)  # [choice] pre-norm (the paper gives no norm placement)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(context_dim or dim, 2 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, h, context=None, context_mask=None):
        # h: (B, T, C); context: (B, L, text_dim); context_mask: (B, L) bool, True = attend
        B, T, C = h.shape
        h = self.norm(h)
        k, v = self.to_kv(h if context is None else context).chunk(2, dim=-1)
        q, k, v = (z.reshape(B, -1, self.heads, C // self.heads).transpose(1, 2) for z in (self.to_q(h), k, v))
        mask = None if context_mask is None else context_mask[:, None, None, :]  # (B, 1, 1, L)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)           # (B, heads, T, C/heads)
        return self.to_out(out.transpose(1, 2).reshape(B, T, C))


# ----------------------------------------------------------------------------------------------------------------
# The block of Fig. 5


class Block(nn.Module):
    """Fig. 5: FiLM(time) -> [GN, SiLU, Conv_k] x 2 + FC residual -> (MHSA + FFN) -> (MHXA + FFN)."""

    def __init__(self, cfg: UNetConfig, dim: int, time_dim: int, self_attn: bool, cross_attn: bool):
        super().__init__()
        k, g = cfg.kernel_size, cfg.norm_groups
        # App. B.1 "CombineEmb": an FC on the time embedding gives a per-channel scale and shift.
        self.film = nn.Linear(time_dim, 2 * dim)
        self.norm1, self.conv1 = group_norm(dim, g), nn.Conv1d(dim, dim, k, padding=k // 2)
        self.norm2, self.conv2 = group_norm(dim, g), nn.Conv1d(dim, dim, k, padding=k // 2)
        self.skip = nn.Conv1d(dim, dim, 1) if cfg.fc_skip else nn.Identity()  # Fig. 5's "FC layer"
        self.self_attn = Attention(dim, cfg.heads) if self_attn else None
        self.self_ffn = FeedForward(dim, cfg.ffn_mult) if self_attn else None
        self.cross_attn = Attention(dim, cfg.heads, cfg.text_dim) if cross_attn else None
        self.cross_ffn = FeedForward(dim, cfg.ffn_mult) if cross_attn else None

    def forward(self, x, temb, text=None):
        # x: (B, C, T); temb: (B, time_dim) already passed through SiLU;
        # text: None or (text_emb (B, L, D), text_mask (B, L) bool, keep (B,) float 0/1)
        scale, shift = self.film(temb)[:, :, None].chunk(2, dim=1)  # (B, C, 1) each
        h = torch.addcmul(shift, x, 1 + scale)                       # x * (1 + scale) + shift: FiLM (Fig. 5)
        r = self.conv1(F.silu(self.norm1(h)))
        r = self.conv2(F.silu(self.norm2(r)))
        h = r + self.skip(h)
        if self.self_attn is None and self.cross_attn is None:
            return h
        h = h.transpose(1, 2)  # (B, T, C): attention and FFN act per time step on the channel vector
        if self.self_attn is not None:
            h = h + self.self_attn(h)
            h = h + self.self_ffn(h)
        if self.cross_attn is not None and text is not None:
            text_emb, text_mask, keep = text
            # §3.5: classifier-free guidance zeroes the cross-attention output of the dropped examples.
            h = h + keep[:, None, None] * self.cross_attn(h, text_emb, text_mask)
        if self.cross_attn is not None:
            # [choice] the FFN after cross-attention runs even when the text is dropped: the paper zeroes only
            # the attention output, so the unconditional model is the same network with a zero text message.
            h = h + self.cross_ffn(h)
        return h.transpose(1, 2)


# ----------------------------------------------------------------------------------------------------------------
# Resampling layers between depths


class Downsample(nn.Module):
    """(B, C_in, T) -> (B, C_out, T / S): a strided conv with kernel 2S (App. B.1; kernel not given)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        # [choice] kernel 2S, so neighbouring windows overlap by half (a mild anti-aliasing). Padding (S+1)//2
        # on both sides makes the output length exactly T / S for even and odd S alike.
        # Stride 1 (blocks at the full rate) is a plain kernel-3 conv.
        self.conv = (nn.Conv1d(c_in, c_out, 2 * stride, stride=stride, padding=(stride + 1) // 2) if stride > 1
                     else nn.Conv1d(c_in, c_out, 3, padding=1))

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    """(B, C_in, T) -> (B, C_out, T * S): the mirror of Downsample, a transposed conv with kernel 2S."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        # [choice] transposed conv rather than nearest-repeat + conv: the repeat + conv would run a C_in x C_out
        # conv at the high resolution, S times the cost. Kernel 2S (overlapping) avoids the blocky output of
        # kernel S. The same padding as Downsample (+1 output sample for odd S) gives exactly T * S samples,
        # each input step spreading over the same 2S samples its Downsample window covered.
        self.conv = (nn.ConvTranspose1d(c_in, c_out, 2 * stride, stride=stride, padding=(stride + 1) // 2,
                                        output_padding=stride % 2) if stride > 1
                     else nn.Conv1d(c_in, c_out, 3, padding=1))

    def forward(self, x):
        return self.conv(x)


# ----------------------------------------------------------------------------------------------------------------
# The U-Net


class UNet1D(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        cfg = self.config = config
        base, widths = cfg.base_channels, cfg.widths
        time_dim = self.time_dim = cfg.time_dim or base  # App. B.1: the time embedding has the base width

        # t -> sinusoid -> MLP (App. B.1). The corruption level u gets its own embedding, added (§13).
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.noise_mlp = (nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
                          if cfg.cond_noise_level else None)

        self.entry = ThinConv1d(cfg.in_channels + cfg.cond_channels, base, 3, padding=1)
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        prev = base
        for I, (S, C, N, sa, xa) in enumerate(zip(cfg.strides, widths, cfg.blocks, cfg.self_attn, cfg.cross_attn)):
            make = lambda n: nn.ModuleList(Block(cfg, C, time_dim, sa, xa) for _ in range(n))
            # Down path: down-sample *before* the blocks, the Efficient U-Net order (§4.1).
            self.down.append(nn.ModuleDict(dict(resample=Downsample(prev, C, S), blocks=make(N))))
            # Up path: mirrored with separate weights [Inf]; blocks, then up-sample back to C_{I-1}.
            # [choice] The bottom depth D runs its N_D blocks once, not on both sides (mirror_bottom=False):
            # with T5-XXL's 4096-wide text this lands all five models within 6% of Tab. 2 (mirroring them
            # overshoots the vocoder by 46%); see the table printed by `python unet1d.py`.
            bottom = I == len(cfg.strides) - 1
            self.up.append(nn.ModuleDict(dict(blocks=make(N if cfg.mirror_bottom or not bottom else 0),
                                              resample=Upsample(C, prev, S))))
            prev = C
        # Fig. 1: the aligned input enters through a small layer and is added at the bottom of the U.
        # [choice] we add it right after the last down-sampling conv, so the bottom blocks process it.
        self.aligned_proj = (nn.Conv1d(cfg.aligned_channels, widths[-1], 3, padding=1)
                             if cfg.aligned_channels else None)
        # [choice, issue 12] The tiny vocoder ignored a spectrogram that reached it only at the bottom (swapping the
        # spectrogram moved its loss by 1-8%); with aligned_every_depth each shallower depth gets its own projection
        # of the frames, repeated to its rate, as DiffWave conditions every layer.
        self.aligned_shallow = (nn.ModuleList(nn.Conv1d(cfg.aligned_channels, C, 3, padding=1) for C in widths[:-1])
                                if cfg.aligned_channels and cfg.aligned_every_depth else None)
        # An experiment (issue 13): blocks at the full rate. Tab. 8's first depth already down-samples (the
        # spectrogram generator's by 4, to 25 frames/s), so without them a note's onset, one frame at 100 frames/s,
        # meets only the entry conv, the depth-1 skip and the exit conv, linear layers that do not know t. One block
        # on each side did not move the overfit check's figures (README, "When the output is noise"), at twice the
        # time per step, so every preset keeps Tab. 8's none.
        make_full = lambda: nn.ModuleList(Block(cfg, base, time_dim, False, False)
                                          for _ in range(cfg.full_rate_blocks))
        self.full_in, self.full_out = make_full(), make_full()
        self.exit_norm = group_norm(base, cfg.norm_groups)  # [choice] GN + SiLU before the exit conv
        self.exit = ThinConv1d(base, cfg.out_channels, 3, padding=1)

        self._initialise_weights()

    def _initialise_weights(self):
        """The starting weights that make a deep U-Net train stably (the defaults elsewhere are PyTorch's)."""
        if self.config.zero_init:
            # [choice] every residual branch starts as the identity and the prediction starts at 0:
            # a deep stack of residual blocks then trains stably from the first step.
            last_layers = [self.exit]
            for m in self.modules():
                if isinstance(m, Block):
                    last_layers.append(m.conv2)
                if isinstance(m, Attention):
                    last_layers.append(m.to_out)
                if isinstance(m, FeedForward):
                    last_layers.append(m.fc_out)
            for layer in last_layers:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        # The full-rate blocks start as the identity whatever zero_init says (FiLM scale and shift 0, the FC skip
        # the unit matrix, the residual branch 0): the network starts as the one without them, then they learn.
        for block in (*self.full_in, *self.full_out):
            for layer in (block.film, block.conv2):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
            if self.config.fc_skip:
                nn.init.eye_(block.skip.weight[:, :, 0])
                nn.init.zeros_(block.skip.bias)

    def forward(self, x, t, *, text_emb=None, text_mask=None, drop_text=None, cond=None, aligned=None,
                cond_noise=None):
        """Predict from x_t (B, in_channels, T); see the module docstring for every argument's shape.

        text_emb=None on a text model means "no text" for the whole batch (same as drop_text all True).
        cond_noise=None means level 0 (clean conditioning).
        """
        cfg = self.config
        B, _, T = self._check(x, text_emb, text_mask, drop_text, cond, aligned)
        S = cfg.total_stride
        T_pad = -(-T // S) * S  # §13: pad at the end to a multiple of the total stride, crop the output back

        # Time conditioning: (B, time_dim), SiLU applied once here for every block's FiLM layer.
        t = torch.as_tensor(t, dtype=torch.float32, device=x.device).expand(B)
        temb = self.time_mlp(sinusoidal_embedding(t, self.time_dim).to(x.dtype))
        if self.noise_mlp is not None:
            u = torch.zeros(B, device=x.device) if cond_noise is None else \
                torch.as_tensor(cond_noise, dtype=torch.float32, device=x.device).expand(B)
            temb = temb + self.noise_mlp(sinusoidal_embedding(u, self.time_dim).to(x.dtype))
        temb = F.silu(temb)

        text = None
        if text_emb is not None and cfg.text_dim:
            mask = (torch.ones(text_emb.shape[:2], dtype=torch.bool, device=x.device)
                    if text_mask is None else text_mask.bool())
            keep = mask.any(dim=1)  # an example with no real token gets no text message at all
            if drop_text is not None:
                keep = keep & ~drop_text.bool()
            # Rows whose keys are all masked would give NaN in softmax: let them attend everywhere,
            # their output is multiplied by keep = 0 anyway.
            mask = mask | ~mask.any(dim=1, keepdim=True)
            text = (text_emb, mask, keep.to(x.dtype))

        h = torch.cat([x, cond], dim=1) if cfg.cond_channels else x  # §2.2: low-fi audio stacked on channels
        if T_pad > T:
            h = F.pad(h, (0, T_pad - T))
        h = self.entry(h)                                             # (B, base, T_pad)
        for block in self.full_in:
            h = block(h, temb)
        skips = [h]                                                   # skip for depth 1 = entry-conv output
        for I, level in enumerate(self.down):
            h = level["resample"](h)                                  # (B, C_I, T_pad / (S_1 ... S_I))
            if I == len(self.down) - 1 and self.aligned_proj is not None:
                h = h + self.aligned_proj(aligned)                    # bottom: (B, C_D, T_pad / total_stride)
            elif self.aligned_shallow is not None:
                repeat = math.prod(cfg.strides[I + 1:])               # frames -> this depth's rate
                h = h + self.aligned_shallow[I](aligned).repeat_interleave(repeat, dim=-1)
            for block in level["blocks"]:
                h = block(h, temb, text)
            skips.append(h)
        skips.pop()  # the bottom output feeds the up path directly; it is not a skip
        for level in reversed(self.up):
            for block in level["blocks"]:
                h = block(h, temb, text)
            h = level["resample"](h) + skips.pop()                    # Fig. 1: additive skip, one per depth
        for block in self.full_out:
            h = block(h, temb)
        h = self.exit(F.silu(self.exit_norm(h)))                      # (B, out_channels, T_pad)
        return h[..., :T]

    def _check(self, x, text_emb, text_mask, drop_text, cond, aligned):
        """One clear sentence per bad input (STYLE.md)."""
        cfg = self.config
        if x.ndim != 3 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"x must have shape (B, {cfg.in_channels}, T), got {tuple(x.shape)}.")
        B, _, T = x.shape
        if cfg.cond_channels:
            if cond is None or cond.shape != (B, cfg.cond_channels, T):
                raise ValueError(f"this model needs cond of shape {(B, cfg.cond_channels, T)} (the upsampled "
                                 f"low-fidelity audio), got {None if cond is None else tuple(cond.shape)}.")
        elif cond is not None:
            raise ValueError("cond was given but this model has cond_channels=0; drop it or use a cascader preset.")
        if cfg.aligned_channels:
            want = (B, cfg.aligned_channels, -(-T // cfg.total_stride))
            if aligned is None or tuple(aligned.shape) != want:
                raise ValueError(f"this model needs aligned of shape {want} (T={T} samples / {cfg.total_stride},"
                                 f" rounded up), got {None if aligned is None else tuple(aligned.shape)}.")
        elif aligned is not None:
            raise ValueError("aligned was given but this model has aligned_channels=0.")
        if text_emb is not None:
            if not cfg.text_dim:
                raise ValueError("text_emb was given but this model takes no text (text_dim=0).")
            if text_emb.ndim != 3 or text_emb.shape[0] != B or text_emb.shape[2] != cfg.text_dim:
                raise ValueError(f"text_emb must have shape (B={B}, L, {cfg.text_dim}), got {tuple(text_emb.shape)}.")
            if text_mask is not None and tuple(text_mask.shape) != tuple(text_emb.shape[:2]):
                raise ValueError(f"text_mask must have shape {tuple(text_emb.shape[:2])} like text_emb's first two "
                                 f"dimensions, got {tuple(text_mask.shape)}.")
        if drop_text is not None and tuple(drop_text.shape) != (B,):
            raise ValueError(f"drop_text must be a bool tensor of shape ({B},), got {tuple(drop_text.shape)}.")
        return B, cfg.in_channels, T


# ----------------------------------------------------------------------------------------------------------------
# Presets

# The paper's five models, Tab. 8 verbatim. Two readings are ours, chosen because they reproduce Tab. 2's
# parameter counts (724M, 487M, 745M, 25.7M, 81M) to within 6%, super-resolution's being the farthest at -5.1%
# (`python unet1d.py` prints the check):
#   - text_dim 4096, the width of T5-XXL's encoder (the paper says only "T5"; Imagen used T5-XXL).
#     With t5-large's 1024 the three text models come out 13-20% small.
#   - the bottom depth's blocks run once (UNetConfig.mirror_bottom=False); mirrored, the vocoder would be +46%.
_F, _T = False, True
PAPER_PRESETS = {
    "paper-waveform-generator": UNetConfig(
        base_channels=256, kernel_size=7, strides=(4, 4, 4, 4, 4, 4), channel_mults=(1, 1, 2, 3, 4, 4),
        blocks=(3, 3, 3, 4, 4, 4), self_attn=(_F, _F, _F, _T, _T, _T), cross_attn=(_F, _F, _F, _T, _T, _T),
        text_dim=4096),
    "paper-waveform-cascader": UNetConfig(
        cond_channels=1, base_channels=256, kernel_size=7, strides=(4, 4, 4, 4, 4), channel_mults=(1, 1, 2, 3, 4),
        blocks=(3, 3, 4, 6, 6), cross_attn=(_F, _F, _F, _T, _T), text_dim=4096, cond_noise_level=True),
    "paper-spectrogram-generator": UNetConfig(
        in_channels=80, out_channels=80, base_channels=256, kernel_size=9, strides=(4, 3, 2, 2, 2),
        channel_mults=(1, 2, 2, 3, 4), blocks=(6, 6, 6, 6, 6), self_attn=(_F, _F, _F, _T, _T),
        cross_attn=(_F, _F, _F, _T, _T), text_dim=4096),
    "paper-vocoder": UNetConfig(
        aligned_channels=80, base_channels=128, kernel_size=5, strides=(2, 4, 4, 5), channel_mults=(1, 1, 2, 4),
        blocks=(4, 4, 4, 4), cond_noise_level=True),
    "paper-superres": UNetConfig(
        cond_channels=1, base_channels=256, kernel_size=7, strides=(4, 4, 4, 4), channel_mults=(1, 1, 2, 2),
        blocks=(4, 4, 4, 4), cond_noise_level=True),
}
PAPER_PARAMS_M = {"paper-waveform-generator": 724, "paper-waveform-cascader": 487,  # Tab. 2, millions
                  "paper-spectrogram-generator": 745, "paper-vocoder": 25.7, "paper-superres": 81}


def _tiny(paper_name: str, base: int, mults: tuple[int, ...], blocks: tuple[int, ...]) -> UNetConfig:
    """A laptop-CPU version of a paper model: same strides, kernel, attention placement and conditioning.

    [choice] Efficient U-Net taken further, for a CPU: at the full rate (entry and exit convs, skip of depth 1)
    only 8-32 channels (96 for the spectrogram generator, whose 80 mel bins are its input channels), since memory
    traffic there costs more than arithmetic; depth 1 has 1-2 blocks and the width sits at low resolution. Block widths are multiples of 16, which oneDNN's conv kernels run near the
    matmul rate. Text is 128 wide (the demo T5 encoder); the time embedding is 128 wide (a base of 8 would
    leave it 4 sinusoid frequencies). 4 heads. 1.8-3.2M parameters each; `python bench.py` times them.
    """
    paper = PAPER_PRESETS[paper_name]
    return replace(paper, base_channels=base, channel_mults=mults, blocks=blocks, heads=4, time_dim=128,
                   text_dim=128 if paper.text_dim else 0)


PRESETS: dict[str, UNetConfig] = {
    **PAPER_PRESETS,
    # widths 32, 64, 64, 96, 96, 96 (self- and cross-attention at depths 4-6)
    "tiny-waveform-generator": _tiny("paper-waveform-generator", 32, (1, 2, 2, 3, 3, 3), (2, 2, 2, 1, 1, 1)),
    # widths 32, 64, 96, 128, 128 (cross-attention at depths 4-5)
    "tiny-waveform-cascader": _tiny("paper-waveform-cascader", 8, (4, 8, 12, 16, 16), (1, 1, 1, 1, 2)),
    # widths 96 at every depth (self- and cross-attention at depths 4-5). [choice] base 96, not 32: the full frame
    # rate has no block, only the entry conv and the depth-1 skip, so a base narrower than the 80 mel bins squeezes
    # each frame through fewer channels than it has, and the model cannot even pass a lightly noised spectrogram
    # through. With base 32 it learned little more than each bin's mean (measured in the README). Paper: 256.
    "tiny-spectrogram-generator": _tiny("paper-spectrogram-generator", 96, (1, 1, 1, 1, 1), (2, 1, 1, 1, 1)),
    # widths 16, 48, 96, 192 (the spectrogram is added at 192 channels, 100 frames/s, and at 16, 48 and 96)
    "tiny-vocoder": replace(_tiny("paper-vocoder", 8, (2, 6, 12, 24), (1, 1, 2, 2)), aligned_every_depth=True),
    # widths 16, 64, 128, 128
    "tiny-superres": _tiny("paper-superres", 8, (2, 8, 16, 16), (1, 1, 1, 2)),
}


def build_unet(name_or_config: str | UNetConfig) -> UNet1D:
    """A U-Net from a preset name (see PRESETS) or a UNetConfig."""
    if isinstance(name_or_config, UNetConfig):
        return UNet1D(name_or_config)
    if name_or_config not in PRESETS:
        raise ValueError(f"unknown U-Net preset {name_or_config!r}; choose one of: {', '.join(PRESETS)}.")
    return UNet1D(PRESETS[name_or_config])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main():
    print(f"{'preset':30s} {'params':>9s} {'stride':>7s} {'Tab. 2':>8s} {'diff':>6s}")
    for name, cfg in PRESETS.items():
        with torch.device("meta"):  # shapes only: the paper models would need up to 3 GB of float32
            n = count_parameters(UNet1D(cfg)) / 1e6
        target = PAPER_PARAMS_M.get(name)
        extra = f"{target:7.1f}M {100 * (n / target - 1):+5.1f}%" if target else ""
        print(f"{name:30s} {n:8.2f}M {cfg.total_stride:7d} {extra}")


if __name__ == "__main__":
    main()
