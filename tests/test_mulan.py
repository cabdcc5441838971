"""mulan.py: the contrastive loss against closed forms, the towers' shapes, training through train.py, loading."""

import math

import pytest
import torch
import torch.nn.functional as F

import checkpoint
import mulan
import train


def test_contrastive_loss_closed_forms():
    b = 6
    eye = torch.eye(b, 8)
    # Perfectly aligned pairs at a high temperature: every row is sure of its own pair.
    assert mulan.contrastive_loss(eye, eye, torch.tensor(100.0)) < 1e-6
    # All embeddings equal: every choice among B is as good as another, the loss is log B.
    same = F.normalize(torch.ones(b, 8), dim=-1)
    assert mulan.contrastive_loss(same, same, torch.tensor(10.0)) == \
        pytest.approx(math.log(b), rel=1e-6)


def test_towers_give_unit_vectors_for_any_length():
    model = mulan.MuLan(mulan.MuLanConfig(width=32, levels=2, blocks=1, heads=2, text_dim=16, dim=8))
    for frames in (8, 300, 1001):
        a = model.audio(torch.rand(3, 80, frames) * 2 - 1)
        assert a.shape == (3, 8) and torch.allclose(a.norm(dim=-1), torch.ones(3), atol=1e-5)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    t = model.text(torch.randn(2, 5, 16), mask)
    assert t.shape == (2, 8) and torch.allclose(t.norm(dim=-1), torch.ones(2), atol=1e-5)
    # Padding is ignored: the second caption's embedding does not depend on what lies past its mask.
    emb = torch.randn(2, 5, 16)
    other = emb.clone()
    other[1, 2:] = 99.0
    assert torch.allclose(model.text(emb, mask)[1], model.text(other, mask)[1], atol=1e-5)


def test_train_through_the_shared_loop_then_load_and_embed(tmp_path, tiny_corpus):
    stage = mulan.STAGE
    cfg = train.parse_config(stage, [f"--data={tiny_corpus}", f"--out={tmp_path}", "--steps=4", "--batch_size=4",
                                     "--crop_min=2", "--crop_max=2", "--workers=0", "--sample_every=4",
                                     "--ckpt_every=2", "--warmup=1"])
    train.train(stage, cfg)
    assert (tmp_path / "samples" / "step0000004.png").is_file()       # the similarity-matrix preview
    scorer = mulan.load(tmp_path / "last.pt")
    rate = 24000
    audio = torch.randn(2, 25 * rate) * 0.1
    windows = scorer.embed_windows(audio, rate)
    assert windows.shape == (2, 2, scorer.model.config.dim)           # 25 s: two whole 10 s windows, tail dropped
    clip = scorer.embed_audio(audio, rate)
    assert torch.allclose(clip, F.normalize(windows.mean(1), dim=-1), atol=1e-5)
    assert torch.allclose(scorer.embed_audio(audio[:1], rate), clip[:1], atol=1e-5)
    assert scorer.embed_text(["a fast reel on a fiddle", "a slow chorale"]).shape == (2, scorer.model.config.dim)
    with pytest.raises(ValueError, match="too short"):
        scorer.embed_audio(torch.zeros(1, 100), rate)


def test_load_refuses_other_checkpoints(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="make train-mulan"):
        mulan.load(tmp_path / "missing.pt")
    with pytest.raises(checkpoint.CheckpointError, match="not a MuLan"):
        mulan.load("checkpoints/superres.pt")


def test_shipped_model_pairs_real_clips_with_their_own_captions(real_clips):
    # Table 6's two references on real clips: each clip's similarity to its own caption must beat its similarity
    # to other clips' captions (a shuffled pairing; here the mean over every pairing), with the shipped checkpoint.
    import evaluate
    scorer = mulan.load("checkpoints/mulan.pt")
    audio = torch.stack([evaluate.read_clip(r["file"]) for r in real_clips])
    a = scorer.embed_audio(audio, evaluate.SET_RATE)
    t = scorer.embed_text([r["captions"][0] for r in real_clips])
    sims = a @ t.T                                                   # (clips, captions)
    matched = sims.diag().mean()
    n = len(sims)
    shuffled = (sims.sum() - sims.diag().sum()) / (n * (n - 1))
    assert matched > shuffled + 0.05, (matched, shuffled)
