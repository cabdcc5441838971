"""The T5 text encoder: captions -> token embeddings that every Noise2Music stage cross-attends to.

Paper §3.4: the text is encoded by a frozen T5 encoder (Raffel et al., 2020) and the *non-pooled* token
sequence is the cross-attention context. Tab. 2: prompts are cut to 64 tokens for the waveform models and
96 for the spectrogram generator. The paper does not name the T5 size (Imagen used T5-XXL).

This file is a T5 encoder in plain PyTorch, readable top to bottom, that loads any Hugging Face-format T5
directory (t5-small .. t5-11b, t5-v1_1-*, flan-t5-*, and the `T5EncoderModel` text encoders shipped with
image models). It covers both feed-forward variants: T5 v1.0 (`feed_forward_proj="relu"`) and v1.1 /
flan-t5 (`"gated-gelu"`). Only the encoder is built; a decoder in the checkpoint is ignored.

    texts: list[str] --T5Tokenizer--> ids (B, L) int64, mask (B, L) bool
                     --T5Encoder----> emb (B, L, D) float32, zero at padding; L <= max_length

[choice] No pretrained weights can ship with the project, so `assets/t5-demo/` holds a small T5 v1.1-shaped
encoder with FIXED RANDOM weights (built by `python text_encoder.py make-demo`) and the real T5 vocabulary.
It maps different prompts to clearly different embeddings, which is all a demo diffusion model needs, but it
knows no language. Point `load_t5` at a real checkpoint directory for meaningful text conditioning.

CLI:  python text_encoder.py "jazz piano trio"          # demo encoder: token ids, shape, statistics
      python text_encoder.py encode PATH "prompt" ...   # any Hugging Face T5 directory
      python text_encoder.py make-demo                  # rebuild assets/t5-demo deterministically
"""
import hashlib
import json
import math
import os
import shutil
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import sentencepiece
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

DEMO_T5_DIR = Path(__file__).parent / "assets" / "t5-demo"


class TextEncoderError(ValueError):
    """Bad text-encoder input or checkpoint; the message says what is wrong and what to do."""


@dataclass
class T5Config:
    """The fields of a Hugging Face T5 `config.json` that the encoder needs (HF's defaults)."""
    vocab_size: int
    d_model: int                      # width of the residual stream (= our `dim`)
    d_kv: int                         # width of one attention head; heads * d_kv need not equal d_model
    d_ff: int
    num_layers: int
    num_heads: int
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "relu"   # "relu" (T5 v1.0) or "gated-gelu" (T5 v1.1, flan-t5, mT5)

    @property
    def is_gated(self) -> bool:
        return self.feed_forward_proj == "gated-gelu"

    @classmethod
    def from_hf(cls, cfg: dict, where: str) -> "T5Config":
        required = ["vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads"]
        missing = [key for key in required if key not in cfg]
        if missing:
            raise TextEncoderError(f"{where} lacks {', '.join(missing)}; is it a T5 config.json?")
        if cfg.get("model_type", "t5") not in ("t5", "mt5"):
            # umT5 gives every layer its own position bias; other model types are other architectures.
            raise TextEncoderError(f"{where} has model_type {cfg['model_type']!r}; only 't5' and 'mt5' load here.")
        fields = {k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg}
        config = cls(**fields)
        if config.feed_forward_proj not in ACTIVATIONS:
            raise TextEncoderError(f"{where}: feed_forward_proj {config.feed_forward_proj!r} is neither T5 v1.0's "
                                   f"'relu' nor T5 v1.1's 'gated-gelu'.")
        return config


# The two T5 families. HF runs "gated-gelu" with the tanh approximation of GELU ("gelu_new", as the original
# Mesh TensorFlow code did); we match it so that the weights behave as they were trained.
ACTIVATIONS = {"relu": F.relu, "gated-gelu": lambda x: F.gelu(x, approximate="tanh")}


# ----------------------------------------------------------------------------------------------------------
# Tokenizer: SentencePiece with T5's conventions
# ----------------------------------------------------------------------------------------------------------

def check_texts(texts) -> list[str]:
    """A list (or tuple) of str, non-empty. [choice] A bare str is accepted as one prompt: iterating it as
    characters would silently encode one prompt per letter, and one prompt is what the caller meant."""
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, (list, tuple)):
        raise TextEncoderError(f"texts must be a list of strings, got a {type(texts).__name__}.")
    if len(texts) == 0:
        raise TextEncoderError("texts is an empty list; pass at least one prompt (\"\" is a valid prompt).")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TextEncoderError(f"texts[{i}] is a {type(text).__name__}, not a str; pass every prompt as text.")
    return list(texts)


class T5Tokenizer:
    """Text -> ids: SentencePiece pieces, then `</s>` (id 1); pad with `<pad>` (id 0) to the batch's longest.

    Text is taken literally: unlike HF's tokenizer, a literal "</s>" in a caption is plain text, not the
    end token. Emoji and characters missing from the vocabulary become `<unk>` (id 2); the vocabulary's
    nmt_nfkc normalization drops control characters and folds full-width letters.
    """

    def __init__(self, model_file: Path):
        self.sp = sentencepiece.SentencePieceProcessor()
        try:
            self.sp.Load(str(model_file))
        except (OSError, RuntimeError) as err:
            raise TextEncoderError(f"{model_file} is not a readable SentencePiece model ({err}); "
                                   f"copy spiece.model from the T5 checkpoint again.") from None
        self.pad_id, self.eos_id = self.sp.pad_id(), self.sp.eos_id()
        if self.pad_id < 0 or self.eos_id < 0:
            raise TextEncoderError(f"{model_file} has no <pad> or </s> piece; it is not a T5 vocabulary.")
        self.vocab_size = self.sp.GetPieceSize()
        self.warned_truncation = False    # warn once per tokenizer, not once per batch

    def __call__(self, texts: list[str], max_length: int) -> tuple[Tensor, Tensor]:
        if not isinstance(max_length, int) or max_length < 1:
            raise TextEncoderError(f"max_length must be a positive int (64 or 96 in the paper), got {max_length!r}.")
        texts = check_texts(texts)
        rows = []
        for text in texts:
            ids = self.sp.EncodeAsIds(text)
            if len(ids) + 1 > max_length:
                # Tab. 2 caps prompts at 64 / 96 tokens. Like HF, keep the head and still end with </s>.
                if not self.warned_truncation:
                    warnings.warn(f"a prompt of {len(ids) + 1} tokens was cut to max_length={max_length} "
                                  f"(further truncations by this encoder are silent).", stacklevel=2)
                    self.warned_truncation = True
                ids = ids[:max_length - 1]
            rows.append(ids + [self.eos_id])
        length = max(len(r) for r in rows)            # pad to the batch's longest, not to max_length
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.bool)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row)
            mask[i, :len(row)] = True
        return ids, mask                              # (B, L) int64, (B, L) bool, True = real token


# ----------------------------------------------------------------------------------------------------------
# The encoder
# ----------------------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    """T5's layer norm: divide by the root mean square, scale by a learned weight. Unlike LayerNorm it
    neither subtracts the mean nor adds a bias. Statistics in float32 so bf16 checkpoints stay accurate."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(self.weight.dtype)


def relative_position_bucket(relative_position: Tensor, num_buckets: int, max_distance: int) -> Tensor:
    """Map key_pos - query_pos to a bucket id, bidirectionally (encoder): half the buckets for keys to the
    right, half for keys to the left. Within each half, small offsets get one bucket each and larger ones
    share logarithmically wider buckets up to max_distance; everything farther shares the last bucket."""
    half = num_buckets // 2
    bucket = (relative_position > 0).long() * half    # keys to the right use the upper half
    distance = relative_position.abs()
    exact = half // 2                                  # offsets 0 .. exact-1 get their own bucket
    # clamp: log(0) would be -inf; those small offsets take the exact branch of the `where` anyway
    log_bucket = exact + (torch.log(distance.clamp(min=exact).float() / exact) / math.log(max_distance / exact)
                          * (half - exact)).long()
    log_bucket = log_bucket.clamp(max=half - 1)
    return bucket + torch.where(distance < exact, distance, log_bucket)


class SelfAttention(nn.Module):
    """Multi-head self-attention, T5 style: no biases, and NO 1/sqrt(d_kv) on the scores; T5 folds that
    factor into the initialisation of the query weights (std (d_model * d_kv)^-0.5) instead."""

    def __init__(self, config: T5Config):
        super().__init__()
        inner = config.num_heads * config.d_kv
        self.num_heads, self.d_kv = config.num_heads, config.d_kv
        self.q = nn.Linear(config.d_model, inner, bias=False)
        self.k = nn.Linear(config.d_model, inner, bias=False)
        self.v = nn.Linear(config.d_model, inner, bias=False)
        self.o = nn.Linear(inner, config.d_model, bias=False)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        B, L, _ = x.shape                                             # x: (B, L, D)
        q, k, v = (proj(x).view(B, L, self.num_heads, self.d_kv).transpose(1, 2)
                   for proj in (self.q, self.k, self.v))              # each (B, H, L, d_kv)
        scores = q @ k.transpose(-1, -2) + bias                       # (B, H, L, L); no scaling
        weights = scores.float().softmax(dim=-1).to(v.dtype)
        out = (weights @ v).transpose(1, 2).reshape(B, L, -1)         # (B, L, H * d_kv)
        return self.o(out)


class FeedForward(nn.Module):
    """v1.0: wo(relu(wi x)). v1.1 / flan-t5: wo(gelu(wi_0 x) * wi_1 x), a gated unit (Shazeer 2020). No biases."""

    def __init__(self, config: T5Config):
        super().__init__()
        self.act = ACTIVATIONS[config.feed_forward_proj]
        self.gated = config.is_gated
        if self.gated:   # names as in the HF checkpoints, so the mapping to them stays obvious
            self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False)
            self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        else:
            self.wi = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.act(self.wi_0(x)) * self.wi_1(x) if self.gated else self.act(self.wi(x))
        return self.wo(hidden)


class T5Block(nn.Module):
    """Pre-norm residual block: x + Attn(Norm(x)), then x + FF(Norm(x)). (Dropout omitted: frozen encoder.)"""

    def __init__(self, config: T5Config):
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.attn = SelfAttention(config)
        self.ff_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.ff = FeedForward(config)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        x = x + self.attn(self.attn_norm(x), bias)
        return x + self.ff(self.ff_norm(x))


class T5Encoder(nn.Module):
    """Token ids -> contextual token embeddings (B, L, D). `encode` does text -> embeddings in one call."""

    def __init__(self, config: T5Config, tokenizer: T5Tokenizer | None = None):
        super().__init__()
        self.config, self.tokenizer, self.dim = config, tokenizer, config.d_model
        # T5 has no absolute position embedding, and does not scale token embeddings by sqrt(d_model).
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        # Position enters only as a learned scalar per (bucket, head) added to the attention scores. HF
        # stores this table in layer 0; it is computed once and the same bias is reused by every layer.
        self.relative_attention_bias = nn.Embedding(config.relative_attention_num_buckets, config.num_heads)
        self.blocks = nn.ModuleList(T5Block(config) for _ in range(config.num_layers))
        self.final_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)  # pre-norm needs one at the end

    @property
    def device(self) -> torch.device:
        return self.token_embedding.weight.device

    def position_bias(self, length: int) -> Tensor:
        positions = torch.arange(length, device=self.device)
        relative = positions[None, :] - positions[:, None]              # (L_query, L_key): key - query
        buckets = relative_position_bucket(relative, self.config.relative_attention_num_buckets,
                                           self.config.relative_attention_max_distance)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)[None]    # (1, H, L, L)

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        x = self.token_embedding(ids)                                    # (B, L, D)
        # Padded keys get a huge negative score (finite, so a row can never become NaN).
        pad_bias = (~mask[:, None, None, :]) * torch.finfo(torch.float32).min   # (B, 1, 1, L)
        bias = (self.position_bias(ids.shape[1]) + pad_bias).to(x.dtype)        # (B, H, L, L)
        for block in self.blocks:
            x = block(x, bias)
        return self.final_norm(x)                                        # (B, L, D)

    @torch.no_grad()   # not inference_mode: its tensors could not be saved for the U-Net's backward pass
    def encode(self, texts: list[str], max_length: int = 64) -> tuple[Tensor, Tensor]:
        """Captions -> (emb (B, L, D) float32, mask (B, L) bool) on this module's device; L <= max_length.
        Padded positions are zeroed, so a caption's embedding does not depend on what it was batched with."""
        if self.tokenizer is None:
            raise TextEncoderError("this T5Encoder has no tokenizer; build it with load_t5(path).")
        ids, mask = self.tokenizer(texts, max_length)
        ids, mask = ids.to(self.device), mask.to(self.device)
        emb = self.forward(ids, mask).float() * mask[..., None]
        return emb, mask

    def fingerprint(self) -> str:
        """A short hash of config and weights, to tell whether cached embeddings came from this encoder."""
        digest = hashlib.sha256(json.dumps(asdict(self.config), sort_keys=True).encode())
        for name, param in self.state_dict().items():
            digest.update(name.encode() + param.detach().float().cpu().flatten()[:64].numpy().tobytes())
        return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------
# Loading a Hugging Face T5 directory
# ----------------------------------------------------------------------------------------------------------

def hf_names(config: T5Config) -> dict[str, list[str]]:
    """Our parameter name -> its name(s) in a HF checkpoint (T5ForConditionalGeneration or T5EncoderModel)."""
    names = {"token_embedding.weight": ["encoder.embed_tokens.weight", "shared.weight"],  # tied: either one
             "relative_attention_bias.weight": ["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"],
             "final_norm.weight": ["encoder.final_layer_norm.weight"]}
    ff = ["wi_0", "wi_1", "wo"] if config.is_gated else ["wi", "wo"]
    for i in range(config.num_layers):
        hf = f"encoder.block.{i}.layer"
        names[f"blocks.{i}.attn_norm.weight"] = [f"{hf}.0.layer_norm.weight"]
        names[f"blocks.{i}.ff_norm.weight"] = [f"{hf}.1.layer_norm.weight"]
        for p in "qkvo":
            names[f"blocks.{i}.attn.{p}.weight"] = [f"{hf}.0.SelfAttention.{p}.weight"]
        for p in ff:
            names[f"blocks.{i}.ff.{p}.weight"] = [f"{hf}.1.DenseReluDense.{p}.weight"]
    return names


def read_tensors(path: Path, wanted: set[str]) -> tuple[dict[str, Tensor], set[str], str]:
    """Read the `wanted` tensors from model.safetensors, pytorch_model.bin, or a sharded index of either.
    Returns (tensors, every key in the checkpoint, the weights file's name for messages). Only the shards
    that hold wanted keys are opened, so a full T5's decoder shards are never read."""
    for name in ["model.safetensors", "model.safetensors.index.json",
                 "pytorch_model.bin", "pytorch_model.bin.index.json"]:
        if (path / name).is_file():
            break
    else:
        raise TextEncoderError(f"{path} has no weights file; expected model.safetensors, pytorch_model.bin, "
                               f"or a sharded *.index.json of either (download the checkpoint's weights).")
    if name.endswith(".index.json"):
        try:
            weight_map = json.loads((path / name).read_text())["weight_map"]
        except (ValueError, KeyError) as err:
            raise TextEncoderError(f"{path / name} is not a valid shard index ({err!r}); download it again.") from None
        shards = sorted({weight_map[key] for key in wanted if key in weight_map})
        all_keys = set(weight_map)
    else:
        shards, all_keys = [name], None
    tensors = {}
    for shard in shards:
        file = path / shard
        if not file.is_file():
            raise TextEncoderError(f"{file} is listed in {name} but missing; download the checkpoint again.")
        try:
            if shard.endswith(".safetensors"):
                with safe_open(str(file), framework="pt") as f:
                    keys = set(f.keys())
                    tensors.update({k: f.get_tensor(k) for k in keys & wanted})
            else:   # weights_only: a .bin is a pickle, and must not run code when read
                state = torch.load(file, map_location="cpu", weights_only=True)
                keys = set(state)
                tensors.update({k: state[k] for k in keys & wanted})
        except Exception as err:   # each library raises its own type for a damaged file
            raise TextEncoderError(f"could not read {file} ({type(err).__name__}: {err}); the file is damaged "
                                   f"or incomplete, download it again.") from None
        if all_keys is None:
            all_keys = keys
    return tensors, all_keys, name


def load_t5(path: str | Path = DEMO_T5_DIR, *, dtype: torch.dtype = torch.float32,
            device: str | torch.device = "cpu") -> T5Encoder:
    """Load the encoder of a HF T5 directory (config.json, weights, spiece.model): frozen, in eval mode.
    [choice] float32 by default; bfloat16 halves memory for t5-xxl. (T5 v1.1 overflows in float16.)"""
    path = Path(path)
    if not path.is_dir():
        raise TextEncoderError(f"T5 directory {path} does not exist; pass a Hugging Face T5 directory "
                               f"(config.json, model.safetensors, spiece.model) or use the demo, {DEMO_T5_DIR}.")
    for required in ["config.json", "spiece.model"]:
        if not (path / required).is_file():
            raise TextEncoderError(f"{path / required} is missing; copy it from the T5 checkpoint.")
    try:
        hf_config = json.loads((path / "config.json").read_text())
    except ValueError as err:
        raise TextEncoderError(f"{path / 'config.json'} is not valid JSON ({err}).") from None
    config = T5Config.from_hf(hf_config, str(path / "config.json"))
    tokenizer = T5Tokenizer(path / "spiece.model")
    if tokenizer.vocab_size > config.vocab_size:
        raise TextEncoderError(f"{path / 'spiece.model'} has {tokenizer.vocab_size} pieces but config.json "
                               f"vocab_size is {config.vocab_size}; they come from different models.")

    names = hf_names(config)
    tensors, all_keys, weights_file = read_tensors(path, {n for cands in names.values() for n in cands})
    # Keys the config does not explain mean config.json and weights disagree (or this is not plain T5).
    for key in sorted(all_keys):
        if key.startswith("encoder.block."):
            layer = int(key.split(".")[2])
            if layer >= config.num_layers or ("relative_attention_bias" in key and layer > 0):
                raise TextEncoderError(f"{path / weights_file} has tensor {key}, which config.json "
                                       f"(num_layers={config.num_layers}) does not describe; fix config.json.")
    with torch.device("meta"):   # no memory, no random init: every parameter is assigned below
        model = T5Encoder(config, tokenizer)
    shapes = {n: p.shape for n, p in model.named_parameters()}
    state = {}
    for ours, candidates in names.items():
        found = [c for c in candidates if c in tensors]
        if not found:
            raise TextEncoderError(f"{path / weights_file} lacks tensor {candidates[0]} (shape "
                                   f"{tuple(shapes[ours])}); the weights do not match config.json.")
        tensor = tensors[found[0]]
        if tensor.shape != shapes[ours]:
            raise TextEncoderError(f"{path / weights_file}: tensor {found[0]} has shape {tuple(tensor.shape)}, "
                                   f"config.json implies {tuple(shapes[ours])}; weights and config do not match.")
        state[ours] = tensor.to(device=device, dtype=dtype)
    model.load_state_dict(state, assign=True)
    # Frozen (§3.4): the encoder is never trained with the diffusion models.
    return model.requires_grad_(False).eval()


# ----------------------------------------------------------------------------------------------------------
# Caching: training sees each caption many times, so encode it once
# ----------------------------------------------------------------------------------------------------------

class TextEmbeddingCache:
    """caption -> its unpadded embedding (n, D), kept on the CPU; batches are padded on the way out.
    With `path`, entries persist in one file: loaded at start, written by `save()` (temp name + rename)."""

    def __init__(self, encoder: T5Encoder, max_length: int, path: str | Path | None = None):
        self.encoder, self.max_length = encoder, max_length
        self.path = Path(path) if path is not None else None
        self.key = {"fingerprint": encoder.fingerprint(), "max_length": max_length}
        self.entries: dict[str, Tensor] = {}
        if self.path is not None and self.path.is_file():
            try:
                saved = torch.load(self.path, map_location="cpu", weights_only=True)
            except Exception as err:
                raise TextEncoderError(f"could not read the cache {self.path} ({type(err).__name__}); "
                                       f"delete it, it will be rebuilt.") from None
            if not isinstance(saved, dict) or saved.get("key") != self.key:
                raise TextEncoderError(f"{self.path} holds embeddings from another encoder or max_length; "
                                       f"delete it or pass a different cache path.")
            self.entries = saved["entries"]

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, texts: list[str], batch_size: int = 256) -> None:
        """Encode the captions not cached yet, in batches (e.g. a whole dataset's captions up front)."""
        new = list(dict.fromkeys(t for t in check_texts(texts) if t not in self.entries))  # unique, in order
        for start in range(0, len(new), batch_size):
            chunk = new[start:start + batch_size]
            emb, mask = self.encoder.encode(chunk, self.max_length)
            for text, row, row_mask in zip(chunk, emb.cpu(), mask.cpu()):
                self.entries[text] = row[:int(row_mask.sum())].clone()      # (n, D)

    def __call__(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        texts = check_texts(texts)
        self.add(texts)
        rows = [self.entries[t] for t in texts]
        length = max(r.shape[0] for r in rows)
        emb = torch.zeros(len(rows), length, self.encoder.dim)
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for i, row in enumerate(rows):
            emb[i, :row.shape[0]], mask[i, :row.shape[0]] = row, True
        return emb.to(self.encoder.device), mask.to(self.encoder.device)

    def save(self) -> None:
        if self.path is None:
            raise TextEncoderError("this cache has no file; pass path= to TextEmbeddingCache to save it.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({"key": self.key, "entries": self.entries}, tmp)
        os.replace(tmp, self.path)


# ----------------------------------------------------------------------------------------------------------
# The demo encoder (random weights) and the CLI
# ----------------------------------------------------------------------------------------------------------

DEMO_CONFIG = T5Config(vocab_size=32128, d_model=128, d_kv=32, d_ff=256, num_layers=2, num_heads=4,
                       feed_forward_proj="gated-gelu")   # T5 v1.1 shape; d_model = the U-Net presets' text_dim


def make_demo(out_dir: Path = DEMO_T5_DIR, seed: int = 0) -> None:
    """Write config.json + model.safetensors (float16) of a random T5 v1.1 encoder, deterministically.
    Standard deviations follow HF's T5 init (token embeddings N(0, 1), each projection ~ fan_in^-0.5,
    queries another d_kv^-0.5 smaller): the final norm gives every token unit RMS, and each token's own
    embedding dominates its output, so different prompts give clearly different embeddings."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    c = DEMO_CONFIG
    generator = torch.Generator().manual_seed(seed)
    model = T5Encoder(c)
    std = {"token_embedding": 1.0, "relative_attention_bias": c.d_model ** -0.5, "q": (c.d_model * c.d_kv) ** -0.5,
           "k": c.d_model ** -0.5, "v": c.d_model ** -0.5, "o": (c.num_heads * c.d_kv) ** -0.5,
           "wi_0": c.d_model ** -0.5, "wi_1": c.d_model ** -0.5, "wo": c.d_ff ** -0.5}
    state = {}
    for name, param in model.named_parameters():   # fixed order, so the same seed gives the same weights
        kind = name.split(".")[-2]
        if kind in std:
            state[name] = torch.randn(param.shape, generator=generator) * std[kind]
        else:                                          # the RMSNorm scales start at 1, as in HF
            state[name] = torch.ones(param.shape)
    # Save under the HF names (the embedding as `shared.weight`, as HF writes it), so HF loads it too.
    names = {**hf_names(c), "token_embedding.weight": ["shared.weight"]}
    tensors = {names[n][0]: t.half().contiguous() for n, t in state.items()}
    hf_config = {"architectures": ["T5EncoderModel"], "model_type": "t5", **asdict(c),
                 "dense_act_fn": "gelu_new", "is_gated_act": True, "dropout_rate": 0.0, "initializer_factor": 1.0,
                 "is_encoder_decoder": False, "use_cache": False, "tie_word_embeddings": False, "pad_token_id": 0,
                 "eos_token_id": 1, "decoder_start_token_id": 0, "torch_dtype": "float16"}
    save_file(tensors, str(out_dir / "model.safetensors.tmp"), metadata={"format": "pt"})
    os.replace(out_dir / "model.safetensors.tmp", out_dir / "model.safetensors")
    (out_dir / "config.json.tmp").write_text(json.dumps(hf_config, indent=2) + "\n")
    os.replace(out_dir / "config.json.tmp", out_dir / "config.json")
    for name in ["spiece.model", "NOTICE.md"]:         # the real T5 vocabulary travels with the demo
        if out_dir.resolve() != DEMO_T5_DIR.resolve() and (DEMO_T5_DIR / name).is_file():
            shutil.copyfile(DEMO_T5_DIR / name, out_dir / name)


def describe(path: Path, prompts: list[str], max_length: int) -> None:
    encoder = load_t5(path)
    emb, mask = encoder.encode(prompts, max_length)
    print(f"encoder {path}: d_model {encoder.dim}, {encoder.config.num_layers} layers, "
          f"{encoder.config.feed_forward_proj}; emb {tuple(emb.shape)}, mask {tuple(mask.shape)}")
    ids, _ = encoder.tokenizer(prompts, max_length)
    for i, prompt in enumerate(prompts):
        real = emb[i, mask[i]]                                          # (n, D)
        print(f"{prompt!r}\n  ids {ids[i, mask[i]].tolist()}\n  {len(real)} tokens, "
              f"mean {real.mean():+.3f}, std {real.std():.3f}, rms {real.pow(2).mean().sqrt():.3f}")
    if len(prompts) > 1:   # how distinguishable the prompts are: cosine of their mean-pooled embeddings
        pooled = F.normalize((emb.sum(1) / mask.sum(1, keepdim=True)), dim=-1)
        print("cosine of mean-pooled embeddings:\n", (pooled @ pooled.T).numpy().round(3))


def main(argv: list[str]) -> None:
    if argv[:1] == ["make-demo"]:
        seed = int(argv[1]) if len(argv) > 1 else 0
        make_demo(DEMO_T5_DIR, seed)
        print(f"wrote {DEMO_T5_DIR} (random weights, seed {seed})")
    elif argv[:1] == ["encode"] and len(argv) >= 3:
        describe(Path(argv[1]), argv[2:], max_length=64)
    elif argv and argv[0] not in ("encode", "-h", "--help"):
        describe(DEMO_T5_DIR, argv, max_length=64)
    else:
        print(__doc__.split("CLI:")[1])


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except TextEncoderError as err:
        sys.exit(f"error: {err}")
