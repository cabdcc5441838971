"""Tests for text_encoder.py: parity with Hugging Face transformers (the trusted T5), the published T5 token
ids, the demo encoder, the cache, and every kind of bad input. transformers is a test-only dependency."""
import json
import shutil
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from text_encoder import (DEMO_T5_DIR, T5Encoder, TextEmbeddingCache, TextEncoderError, load_t5, make_demo,
                          relative_position_bucket)

PROMPTS = [
    "translate English to German: The house is wonderful.",
    "",
    "jazz piano trio",
    "emoji 🎸🥁 and\x07control\ttab\nnewline, Café naïve",
    # ~170 tokens: distances past relative_attention_max_distance (128) exercise the log and clamped buckets
    " ".join(f"a slow ambient drone in {key} minor with soft strings number {i}" for i, key in
             enumerate("ABCDEFGABCDEFGABCDEFG")),
]
MAX_LENGTH = 512   # parity uses no truncation


@pytest.fixture(scope="module")
def demo():
    return load_t5()


def hf_model(kind: str, feed_forward_proj: str, seed: int):
    """A small HF T5 with every weight random (norm scales and position bias too, so none can be ignored).
    Linear weights ~ fan_in^-0.5 make raw q.k scores O(4): a 1/sqrt(d_kv) scale would change the output."""
    transformers = pytest.importorskip("transformers")
    config = transformers.T5Config(vocab_size=32128, d_model=64, d_kv=16, d_ff=96, num_layers=2, num_heads=4,
                                   feed_forward_proj=feed_forward_proj, tie_word_embeddings=False)
    cls = transformers.T5EncoderModel if kind == "encoder" else transformers.T5ForConditionalGeneration
    model = cls(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if "layer_norm" in name:
                p.copy_(1 + 0.3 * noise)
            elif "relative_attention_bias" in name or "shared" in name or "embed_tokens" in name:
                p.copy_(noise)
            else:
                p.copy_(noise * p.shape[1] ** -0.5)
    return model


def save_hf(model, directory, **save_kwargs):
    model.save_pretrained(directory, **save_kwargs)
    shutil.copyfile(DEMO_T5_DIR / "spiece.model", directory / "spiece.model")
    return directory


def assert_matches_hf(encoder: T5Encoder, hf_encoder):
    emb, mask = encoder.encode(PROMPTS, max_length=MAX_LENGTH)
    ids, _ = encoder.tokenizer(PROMPTS, MAX_LENGTH)
    assert mask.sum(1).max() > 150 and mask.sum(1).min() == 1      # padding and long distances both present
    with torch.no_grad():
        ref = hf_encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    assert emb.dtype == torch.float32 and emb.shape == ref.shape
    assert (emb[mask] - ref[mask]).abs().max() <= 1e-4                 # only real tokens are compared
    assert (emb[~mask] == 0).all()                                     # padding is zeroed


# ---- parity with transformers ---------------------------------------------------------------------------

@pytest.mark.parametrize("feed_forward_proj", ["relu", "gated-gelu"])      # T5 v1.0, T5 v1.1 / flan-t5
@pytest.mark.parametrize("safe", [True, False])                            # model.safetensors, pytorch_model.bin
def test_encoder_checkpoint_matches_transformers(tmp_path, feed_forward_proj, safe):
    model = hf_model("encoder", feed_forward_proj, seed=1)
    directory = save_hf(model, tmp_path, safe_serialization=safe)
    assert (directory / ("model.safetensors" if safe else "pytorch_model.bin")).is_file()
    assert_matches_hf(load_t5(directory), model)


@pytest.mark.parametrize("feed_forward_proj, safe", [("gated-gelu", True), ("relu", False)])
def test_full_encoder_decoder_checkpoint_keeps_only_the_encoder(tmp_path, feed_forward_proj, safe):
    model = hf_model("full", feed_forward_proj, seed=2)
    encoder = load_t5(save_hf(model, tmp_path, safe_serialization=safe))
    assert not any("decoder" in name for name, _ in encoder.named_parameters())
    assert_matches_hf(encoder, model.get_encoder())


@pytest.mark.parametrize("safe", [True, False])
def test_sharded_checkpoint_loads(tmp_path, safe):
    model = hf_model("full", "gated-gelu", seed=3)
    directory = save_hf(model, tmp_path, safe_serialization=safe, max_shard_size="1MB")
    index = "model.safetensors.index.json" if safe else "pytorch_model.bin.index.json"
    assert len(set(json.loads((directory / index).read_text())["weight_map"].values())) > 2
    assert_matches_hf(load_t5(directory), model.get_encoder())


def test_demo_encoder_matches_transformers(demo):
    transformers = pytest.importorskip("transformers")   # also proves the demo's config.json is HF's format
    hf = transformers.T5EncoderModel.from_pretrained(DEMO_T5_DIR, dtype=torch.float32).eval()
    assert_matches_hf(demo, hf)


def test_relative_position_bucket_matches_transformers():
    modeling_t5 = pytest.importorskip("transformers.models.t5.modeling_t5")
    relative = torch.arange(-400, 401)
    for buckets, distance in [(32, 128), (64, 256), (16, 64)]:
        ref = modeling_t5.T5Attention._relative_position_bucket(relative, True, buckets, distance)
        assert torch.equal(relative_position_bucket(relative, buckets, distance), ref)


# ---- tokenizer ------------------------------------------------------------------------------------------

def test_tokenizer_gives_the_published_t5_ids(demo):
    ids, mask = demo.tokenizer(["translate English to German: The house is wonderful.", "Hello world"], 64)
    assert ids[0].tolist() == [13959, 1566, 12, 2968, 10, 37, 629, 19, 1627, 5, 1]
    assert ids[1].tolist() == [8774, 296, 1] + [0] * 8 and mask[1].tolist() == [True] * 3 + [False] * 8


def test_tokenizer_matches_transformers(demo):
    transformers = pytest.importorskip("transformers")
    reference = transformers.T5Tokenizer(str(DEMO_T5_DIR / "spiece.model"), legacy=True)
    texts = PROMPTS + ["  two  spaces ", "ＦＵＬＬ width", "trailing punctuation!!!", "x" * 300]
    ids, mask = demo.tokenizer(texts, 1000)
    for i, text in enumerate(texts):
        assert ids[i, mask[i]].tolist() == reference(text).input_ids


# ---- the demo encoder and the cache ---------------------------------------------------------------------

def test_demo_encoder_is_frozen_well_scaled_and_tells_prompts_apart(demo):
    assert not demo.training and not any(p.requires_grad for p in demo.parameters())
    assert demo.dim == 128 and demo.device == torch.device("cpu")
    prompts = ["jazz piano trio", "heavy metal with distorted guitars", "calm ambient pads",
               "a children's choir singing", "jazz piano solo"]
    emb, mask = demo.encode(prompts)
    assert emb.shape == (5, int(mask.sum(1).max()), 128) and mask.dtype == torch.bool
    assert torch.allclose(emb[mask].pow(2).mean(-1).sqrt(), torch.ones(int(mask.sum())), atol=1e-3)  # unit RMS
    pooled = torch.nn.functional.normalize(emb.sum(1) / mask.sum(1, keepdim=True), dim=-1)
    cosine = pooled @ pooled.T
    assert cosine[~torch.eye(5, dtype=torch.bool)].max() < 0.9     # every pair clearly different
    word_order, _ = demo.encode(["dog bites man", "man bites dog"])
    assert (word_order[0] - word_order[1]).abs().max() > 0.1


def test_make_demo_reproduces_the_shipped_assets(tmp_path):
    make_demo(tmp_path, seed=0)
    shipped, rebuilt = load_file(DEMO_T5_DIR / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert shipped.keys() == rebuilt.keys() and all(torch.equal(shipped[k], rebuilt[k]) for k in shipped)
    assert all(t.dtype == torch.float16 for t in shipped.values())
    assert (tmp_path / "config.json").read_text() == (DEMO_T5_DIR / "config.json").read_text()


def test_cache_returns_what_encode_returns(demo, tmp_path):
    texts = ["jazz piano trio", "calm ambient pads with a long slow attack", "jazz piano trio"]
    cache = TextEmbeddingCache(demo, max_length=64, path=tmp_path / "cache.pt")
    emb, mask = cache(texts)
    ref_emb, ref_mask = demo.encode(texts, 64)
    assert len(cache) == 2 and torch.equal(mask, ref_mask) and torch.allclose(emb, ref_emb, atol=1e-6)
    emb2, mask2 = cache(["calm ambient pads with a long slow attack", "rock"])    # one hit, one miss
    ref2, ref_mask2 = demo.encode(["calm ambient pads with a long slow attack", "rock"], 64)
    assert torch.equal(mask2, ref_mask2) and torch.allclose(emb2, ref2, atol=1e-5)
    cache.add(["rock", "pop", "folk"], batch_size=1)                             # batched, deduplicated
    assert len(cache) == 5 and torch.allclose(cache(["pop"])[0], demo.encode(["pop"])[0], atol=1e-6)
    cache.save()
    reloaded = TextEmbeddingCache(demo, max_length=64, path=tmp_path / "cache.pt")
    assert len(reloaded) == 5 and torch.equal(reloaded(texts)[0], emb)
    with pytest.raises(TextEncoderError, match="cache.pt holds embeddings from another"):
        TextEmbeddingCache(demo, max_length=96, path=tmp_path / "cache.pt")


# ---- bad input ------------------------------------------------------------------------------------------

def test_odd_prompts_encode(demo):
    emb, mask = demo.encode(["", "emoji 🎸 and \x00\x07 control"])
    ids, _ = demo.tokenizer(["", "emoji 🎸 and \x00\x07 control"], 64)
    assert ids[0, mask[0]].tolist() == [1] and 2 in ids[1].tolist()   # "" is just </s>; emoji is <unk>
    assert torch.isfinite(emb).all()
    single, _ = demo.encode("jazz piano trio")                          # a bare str is one prompt
    assert torch.equal(single, demo.encode(["jazz piano trio"])[0])


def test_long_prompt_is_truncated_with_one_warning():
    encoder = load_t5()                       # a fresh encoder: the warning is once per encoder
    long_prompt = "a very long caption " * 250  # 5000 characters
    with pytest.warns(UserWarning, match="cut to max_length=64"):
        emb, mask = encoder.encode([long_prompt, "short"], max_length=64)
    ids, _ = encoder.tokenizer([long_prompt], 64)
    assert emb.shape[1] == 64 and mask[0].all() and ids[0, -1] == 1    # still ends with </s>
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # a second truncation must be silent
        assert encoder.encode([long_prompt], max_length=96)[0].shape[1] == 96


@pytest.mark.parametrize("texts, message", [
    (["fine", 3, "fine"], r"texts\[1\] is a int"),
    ([], "empty list"),
    (None, "must be a list of strings"),
])
def test_bad_texts_raise_one_clear_error(demo, texts, message):
    with pytest.raises(TextEncoderError, match=message):
        demo.encode(texts)


def test_bad_max_length(demo):
    with pytest.raises(TextEncoderError, match="max_length must be a positive int"):
        demo.encode(["x"], max_length=0)


@pytest.fixture
def demo_copy(tmp_path):
    return shutil.copytree(DEMO_T5_DIR, tmp_path / "t5")


def test_missing_files(demo_copy, tmp_path):
    with pytest.raises(TextEncoderError, match="does not exist"):
        load_t5(tmp_path / "nowhere")
    (demo_copy / "model.safetensors").unlink()
    with pytest.raises(TextEncoderError, match="no weights file; expected model.safetensors"):
        load_t5(demo_copy)
    (demo_copy / "spiece.model").unlink()
    with pytest.raises(TextEncoderError, match="spiece.model is missing"):
        load_t5(demo_copy)


@pytest.mark.parametrize("name", ["model.safetensors", "pytorch_model.bin"])
def test_corrupt_weights_file(demo_copy, name):
    if name == "pytorch_model.bin":           # the same weights in torch's format, then cut short
        torch.save(load_file(demo_copy / "model.safetensors"), demo_copy / name)
        (demo_copy / "model.safetensors").unlink()
    (demo_copy / name).write_bytes((demo_copy / name).read_bytes()[:5000])
    with pytest.raises(TextEncoderError, match=f"could not read .*{name}.*damaged"):
        load_t5(demo_copy)


def test_corrupt_vocabulary(demo_copy):
    (demo_copy / "spiece.model").write_bytes(b"not a sentencepiece model")
    with pytest.raises(TextEncoderError, match="spiece.model is not a readable SentencePiece model"):
        load_t5(demo_copy)


def test_wrong_and_missing_tensors(demo_copy):
    tensors = load_file(demo_copy / "model.safetensors")
    name = "encoder.block.1.layer.1.DenseReluDense.wi_0.weight"
    save_file({**tensors, name: tensors[name][:100]}, demo_copy / "model.safetensors")
    with pytest.raises(TextEncoderError, match=f"{name} has shape \\(100, 128\\), config.json implies \\(256, 128\\)"):
        load_t5(demo_copy)
    save_file({k: v for k, v in tensors.items() if k != name}, demo_copy / "model.safetensors")
    with pytest.raises(TextEncoderError, match=f"lacks tensor {name}"):
        load_t5(demo_copy)
    save_file(tensors, demo_copy / "model.safetensors")
    config = json.loads((demo_copy / "config.json").read_text())
    (demo_copy / "config.json").write_text(json.dumps({**config, "num_layers": 1}))
    with pytest.raises(TextEncoderError, match="has tensor encoder.block.1.* does not describe"):
        load_t5(demo_copy)
