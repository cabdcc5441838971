"""pseudolabel.py: top-K then inverse-frequency sampling (Sec. 3.6), agreement, the vocabulary's claims."""

import torch

import captions
import pseudolabel


def test_choose_keeps_to_each_clips_top_k():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(30, 50, generator=g)
    picks = pseudolabel.choose(scores, top_k=10, pick=3, generator=g)
    assert picks.shape == (30, 3)
    top = scores.topk(10, dim=1).indices
    for row, allowed in zip(picks.tolist(), top.tolist()):
        assert len(set(row)) == 3 and set(row) <= set(allowed)


def test_choose_samples_inversely_to_how_often_a_caption_is_in_a_top_k():
    # 50 clips; caption 0 is in every clip's top 3, next to two captions no other clip has. Caption 0 then has
    # weight 1/50 against 1 and 1: it should be drawn with probability (1/50) / (1/50 + 2) = 0.0099, not 1/3.
    n, v = 50, 101
    scores = torch.zeros(n, v)
    scores[:, 0] = 1.0
    for i in range(n):
        scores[i, 1 + 2 * i] = scores[i, 2 + 2 * i] = 1.0
    hits, draws = 0, 0
    for seed in range(200):
        picks = pseudolabel.choose(scores, top_k=3, pick=1, generator=torch.Generator().manual_seed(seed))
        hits += int((picks == 0).sum())
        draws += picks.numel()
    expected = (1 / 50) / (1 / 50 + 2)
    assert abs(hits / draws - expected) < 0.004, hits / draws


def test_agreement_counts_true_claims_and_chance():
    vocab = {"tags": [("piano", {"instrument": {"piano"}}), ("violin", {"instrument": {"violin"}}),
                      ("strings", {"instrument": {"violin", "cello"}}), ("calm", {})]}
    truths = [{"instrument": "violin"}, {"instrument": "piano"}]
    labels = [{"tags": [1, 2, 3]}, {"tags": [1, 3]}]
    rows = pseudolabel.agreement(labels, vocab, truths)
    r = rows["tags/instrument"]
    assert r["labels"] == 3 and abs(r["agree"] - 2 / 3) < 1e-12       # violin, strings right; violin wrong
    assert abs(r["chance"] - (2 / 3 + 1 / 3) / 2) < 1e-12               # of 3 claiming tags: 2 fit a violin, 1 a piano


def test_vocabulary_is_reproducible_and_its_claims_are_true_of_the_text():
    long_a, tags_a = captions.vocabulary(200, seed=3)
    long_b, tags_b = captions.vocabulary(200, seed=3)
    assert long_a == long_b and tags_a == tags_b and len({t for t, _ in long_a}) == 200
    for text, claims in long_a:
        (instrument,) = claims["instrument"]
        words = captions.WORDS[instrument]
        assert any(p.lower() in text.lower() for p in words[0] + (words[1] or []))   # the instrument it claims
        if "key" in claims:
            (key,) = claims["key"]
            assert key in text
    tags = dict(tags_a)
    assert tags["brass"]["instrument"] == {"trumpet", "brass section", "brass quartet"}
    assert tags["d minor"] == {"key": {"D minor"}, "mode": {"minor"}}


def test_canonical_key_makes_enharmonics_equal():
    assert captions.canonical_key("D-flat", "major") == captions.canonical_key("C-sharp", "major") == "C-sharp major"
    assert captions.canonical_key("B-flat", "minor") == "B-flat minor"


def test_make_pseudo_label_writes_a_training_folder_listing(tmp_path, capsys):
    import json

    import numpy as np
    import soundfile as sf

    import data
    rate = 24000
    t = np.arange(12 * rate) / rate
    for i, f in enumerate((220.0, 440.0, 880.0)):
        sf.write(tmp_path / f"tone{i}.wav", (0.2 * np.sin(2 * np.pi * f * t)).astype(np.float32), rate)
    (tmp_path / "broken.wav").write_bytes(b"not audio")                 # skipped with a warning, not fatal
    assert pseudolabel.main(["--data", str(tmp_path), "--vocabulary", "300"]) == 0
    lines = [json.loads(x) for x in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert [x["path"] for x in lines] == ["tone0.wav", "tone1.wav", "tone2.wav"]
    long_form = {text for text, _ in captions.vocabulary(300)[0]}
    for x in lines:
        assert len(x["captions"]) == 4 and set(x["captions"][:3]) <= long_form
        assert len(x["captions"][3].split(", ")) == 6                   # six short tags, as one caption
    assert len(data.index_folder(tmp_path)) == 3                         # a folder the training loop can read
    assert pseudolabel.main(["--data", str(tmp_path)]) == 2              # never overwrites a listing
    assert "already exists" in capsys.readouterr().err
    assert pseudolabel.main(["--data", str(tmp_path / "nowhere")]) == 2
