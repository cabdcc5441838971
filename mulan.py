"""A small MuLan: one embedding space for music audio and text, trained contrastively (PAPER_NOTES §7, §9).

Noise2Music leans on MuLan (Huang et al. 2022) twice: it labels the unlabelled training audio (Sec. 3.6; see
pseudolabel.py) and it scores the generated music against its prompt (Sec. 5.2, Table 6; see evaluate.py). MuLan
itself was never released, so this file trains a small stand-in on our own (clip, caption) pairs.

    audio tower   log-mel frames of a 10 s window (data.log_mel: 80 bins, 100 frames/s at 16 kHz) -> a strided stem and
                  residual 1D convolutions, halving the frame rate at each level (50 -> 3.1 frames/s), one
                  self-attention layer over what is left (rhythm and form live across seconds), attention pooling
                  -> a point on the unit sphere. MuLan uses a ResNet-50 on log-mel patches; [choice] far smaller here.
    text tower    the FROZEN T5 encoder's token embeddings (the same encoder the generators read, text_encoder.py)
                  -> one self-attention layer -> masked mean -> the same sphere. MuLan fine-tunes a BERT; [choice]
                  we keep T5 frozen so one cached encoding per caption serves both MuLan and the cascade.
    loss          the symmetric InfoNCE of CLIP and MuLan: in a batch of B (audio crop, caption) pairs, each crop must
                  pick its own caption among the B and each caption its own crop, at a learned temperature.
    clip embedding  the mean of the audio embeddings of the clip's non-overlapping 10 s windows, as the paper does
                  (Sec. 5.2), renormalised.

Training goes through the shared loop (train.py: resumable, EMA, DDP; with several processes each process
contrasts against its own share of the batch [choice], which is simpler than gathering every process's
embeddings and costs only some negatives):

    make train-mulan                      (python mulan.py --help lists the settings)
    python train.py export runs/mulan/last.pt checkpoints/mulan.pt      (make checkpoints does this too)

Then, in code:
    scorer = mulan.load("checkpoints/mulan.pt")
    a = scorer.embed_audio(audio, rate)          # (B, T) any rate -> (B, dim), unit length
    t = scorer.embed_text(["a slow chorale"])    # -> (1, dim), unit length; a @ t.T is the cosine similarity
"""

import math
import sys
from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

import audio_io
import checkpoint
import data
import text_encoder
import train

WINDOW_SECONDS = 10.0            # MuLan's input length (Sec. 5.2: clip embeddings average 10 s windows)
RATE = data.MEL_RATE             # 16 kHz, the log-mel's rate


@dataclass
class MuLanConfig:
    mels: int = data.MEL_BINS    # input channels: the log-mel bins
    width: int = 128             # channels of both towers
    levels: int = 4              # each level halves the frame rate: 50 -> 3.1 frames/s after 4
    blocks: int = 2              # residual convolutions per level
    heads: int = 4               # self-attention heads in each tower
    text_dim: int = 0            # the T5 encoder's width (set from the loaded encoder)
    dim: int = 128               # the shared embedding space


# [choice] sizes: tiny trains in ~20 min on a 2-core CPU; paper is a GPU-sized model (still far below MuLan's).
PRESETS = {"tiny": MuLanConfig(), "paper": MuLanConfig(width=512, levels=5, blocks=3, heads=8, dim=512)}


class Residual(nn.Module):
    """x + conv(gelu(norm(x))): a pre-norm residual 1D convolution, (B, C, F) -> (B, C, F)."""

    def __init__(self, channels):
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.conv = nn.Conv1d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.conv(F.gelu(self.norm(x)))


def sinusoids(length, width, device):
    """(length, width) fixed position code, so the attention layer knows where in the window a frame sits."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, width, 2, device=device) / width)[None]
    return torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], dim=1)


class AudioTower(nn.Module):
    """(B, mels, F) log-mel in [-1, 1] -> (B, dim) unit vectors. Any F >= 2**(levels+1): it is convolutional."""

    def __init__(self, c: MuLanConfig):
        super().__init__()
        self.stem = nn.Conv1d(c.mels, c.width, 5, stride=2, padding=2)     # [choice] 50 frames/s from the start
        self.levels = nn.ModuleList(nn.Sequential(*[Residual(c.width) for _ in range(c.blocks)])
                                    for _ in range(c.levels))
        self.attend = nn.TransformerEncoderLayer(c.width, c.heads, 2 * c.width, dropout=0.0, batch_first=True,
                                                 norm_first=True)
        self.query = nn.Parameter(torch.randn(1, 1, c.width) / c.width ** 0.5)     # attention pooling
        self.pool = nn.MultiheadAttention(c.width, c.heads, batch_first=True)
        self.out = nn.Sequential(nn.LayerNorm(c.width), nn.Linear(c.width, c.dim))

    def forward(self, mel):
        x = self.stem(mel)                                                  # (B, W, F / 2)
        for level in self.levels:
            x = F.avg_pool1d(level(x), 2)                                   # halves F at each level
        x = x.transpose(1, 2)                                               # (B, F', W)
        x = self.attend(x + sinusoids(x.shape[1], x.shape[2], x.device))
        pooled, _ = self.pool(self.query.expand(x.shape[0], -1, -1), x, x)  # (B, 1, W)
        return F.normalize(self.out(pooled[:, 0]), dim=-1)


class TextTower(nn.Module):
    """(B, L, text_dim) frozen T5 outputs + (B, L) mask -> (B, dim) unit vectors."""

    def __init__(self, c: MuLanConfig):
        super().__init__()
        self.inp = nn.Linear(c.text_dim, c.width)
        self.attend = nn.TransformerEncoderLayer(c.width, c.heads, 2 * c.width, dropout=0.0, batch_first=True,
                                                 norm_first=True)
        self.out = nn.Sequential(nn.LayerNorm(c.width), nn.Linear(c.width, c.dim))

    def forward(self, emb, mask):
        x = self.attend(self.inp(emb), src_key_padding_mask=~mask)          # (B, L, W)
        keep = mask[..., None].float()
        x = (x * keep).sum(1) / keep.sum(1).clamp(min=1)                    # masked mean, (B, W)
        return F.normalize(self.out(x), dim=-1)


class MuLan(nn.Module):
    def __init__(self, c: MuLanConfig):
        super().__init__()
        if c.text_dim <= 0:
            raise ValueError("MuLanConfig.text_dim must be the T5 encoder's width.")
        self.config = c
        self.audio = AudioTower(c)
        self.text = TextTower(c)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))    # CLIP's initial temperature

    def forward(self, mel, text_emb, text_mask):
        """-> (B, dim) audio and (B, dim) text embeddings, and the logit scale (a scalar tensor)."""
        return self.audio(mel), self.text(text_emb, text_mask), self.log_scale.clamp(max=math.log(100)).exp()


def contrastive_loss(audio_z, text_z, scale):
    """Symmetric InfoNCE over a batch of (B, dim) unit vectors: pair i is the right answer for row i, every other
    pair a negative. Two examples that share one caption string need no special care: their text embeddings are
    equal, so the two rows' gradients sum to exactly what soft targets splitting the credit would give."""
    logits = scale * audio_z @ text_z.T                                     # (B, B)
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


# ----------------------------------------------------------------------------------------------------------------
# Training through train.py

DEFAULTS = {
    "text_length": (64, "T5 tokens kept per caption"),
    "crop_min": (WINDOW_SECONDS, "training crop, seconds (MuLan: 10 s)"),
    "crop_max": (WINDOW_SECONDS, "training crop, seconds (MuLan: 10 s)"),
    "batch_size": (32, "pairs per step: each crop is contrasted with the other captions of the batch"),
    "steps": (3000, "optimizer steps"),
    "lr": (5e-4, "peak learning rate"),
    "warmup": (200, "linear warm-up steps"),
    "sample_every": (500, "write the similarity matrix of 16 test clips and their captions as a picture"),
    "workers": (1, "DataLoader worker processes per training process"),
}


def model_config(cfg, text_dim):
    return MuLanConfig(**{**vars(PRESETS[cfg.preset]), "text_dim": text_dim})


def data_spec(cfg, model_cfg):
    return {"rate": RATE, "crop_range": (cfg.crop_min, cfg.crop_max), "multiple": data.MEL_HOP,
            "preview_seconds": WINDOW_SECONDS, "preview_clips": 16}


def loss(model, batch, ctx):
    mel = data.log_mel(batch["audio"].to(ctx.device))                      # (B, 80, F)
    text_emb, text_mask = ctx.text(batch["caption"])
    audio_z, text_z, scale = model(mel, text_emb.to(ctx.device), text_mask.to(ctx.device))
    return contrastive_loss(audio_z, text_z, scale)


@torch.no_grad()
def preview(model, batch, ctx):
    """The (clips x captions) cosine similarities of a fixed test batch: a bright diagonal means it has learned."""
    text_emb, text_mask = ctx.text(batch["caption"])
    audio_z, text_z, _ = model(data.log_mel(batch["audio"].to(ctx.device)), text_emb.to(ctx.device),
                               text_mask.to(ctx.device))
    return [(audio_z @ text_z.T, None)]


def picture(path, rows):
    audio_io.write_matrix_picture(path, rows[0][0], "test clips against their captions", "caption", "clip")


STAGE = SimpleNamespace(NAME="mulan", MAKE_TARGET="train-mulan", DEFAULTS=DEFAULTS, USES_TEXT=True,
                        model_config=model_config, build_model=MuLan, data_spec=data_spec, loss=loss,
                        preview=preview, picture=picture, __doc__=__doc__, __file__=__file__)


# ----------------------------------------------------------------------------------------------------------------
# Using a trained model

class Scorer:
    """A trained MuLan with its T5 encoder: audio and text in, unit-length embeddings out."""

    def __init__(self, model: MuLan, encoder, text_length=64, device="cpu"):
        self.model, self.encoder, self.text_length = model.to(device).eval(), encoder.to(device), text_length
        self.device = torch.device(device)

    @torch.no_grad()
    def embed_text(self, texts, batch_size=256):
        """list of str -> (N, dim)."""
        texts = text_encoder.check_texts(texts)
        out = []
        for start in range(0, len(texts), batch_size):
            emb, mask = self.encoder.encode(texts[start:start + batch_size], self.text_length)
            out.append(self.model.text(emb.to(self.device), mask.to(self.device)).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def embed_windows(self, audio, rate):
        """(B, T) audio -> (B, W, dim): one embedding per non-overlapping 10 s window (at least one: a clip
        shorter than 10 s is embedded whole; a tail shorter than a window is left out)."""
        audio = torch.as_tensor(audio, dtype=torch.float32)
        audio = data.resample(audio[None] if audio.dim() == 1 else audio, rate, RATE).to(self.device)
        window = round(WINDOW_SECONDS * RATE)
        n = max(1, audio.shape[-1] // window)
        if audio.shape[-1] < 2 ** (self.model.config.levels + 1) * data.MEL_HOP:
            raise ValueError(f"{audio.shape[-1] / RATE:.3f} s of audio is too short to embed; give at least 0.1 s.")
        chunks = audio[:, : n * window].reshape(audio.shape[0] * n, -1) if audio.shape[-1] >= window else audio
        z = self.model.audio(data.log_mel(chunks))                         # (B * W, dim)
        return z.reshape(audio.shape[0], n, -1).cpu()

    def embed_audio(self, audio, rate, batch_size=8):
        """(B, T) audio at `rate` -> (B, dim): the mean over 10 s windows, renormalised (Sec. 5.2)."""
        audio = torch.as_tensor(audio, dtype=torch.float32)
        audio = audio[None] if audio.dim() == 1 else audio
        parts = [self.embed_windows(audio[i:i + batch_size], rate).mean(1) for i in range(0, len(audio), batch_size)]
        return F.normalize(torch.cat(parts), dim=-1)


def load(path="checkpoints/mulan.pt", device="cpu", t5=None):
    """A checkpoint written by `make train-mulan` (or exported by train.py) -> Scorer. Errors are one sentence
    (checkpoint.CheckpointError, text_encoder.TextEncoderError)."""
    ckpt = checkpoint.load_checkpoint(path, "train-mulan")
    if ckpt.get("stage") != "mulan":
        raise checkpoint.CheckpointError(f"{path} holds the {ckpt.get('stage')} stage, not a MuLan model; pass a "
                                    f"checkpoint written by `make train-mulan`.")
    model = checkpoint.model_from_checkpoint(ckpt, build=lambda c: MuLan(MuLanConfig(**c)))
    cfg = ckpt["config"]
    encoder = text_encoder.load_t5(t5 or cfg.get("t5") or text_encoder.DEMO_T5_DIR)
    if encoder.dim != model.config.text_dim:
        raise checkpoint.CheckpointError(f"{path} was trained on a T5 of width {model.config.text_dim}, but the encoder "
                                    f"given has width {encoder.dim}; pass the encoder it was trained with.")
    return Scorer(model, encoder, cfg.get("text_length", 64), device)


if __name__ == "__main__":
    sys.exit(train.main(STAGE))
