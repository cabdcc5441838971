"""adherence.py: the ridge read-out against exact answers, the tempo-word summary against its closed form, and the
text features' shapes and token counts with the demo encoder."""

import numpy as np
import pytest

import adherence
import text_encoder


def test_ridge_recovers_a_linear_map_and_finds_nothing_in_noise():
    rng = np.random.default_rng(0)
    x, x_new = rng.normal(size=(400, 8)), rng.normal(size=(100, 8))
    w = rng.normal(size=(8, 2))
    predict = adherence.ridge_fit(x, x @ w + 3.0, strength=1e-9)
    assert np.allclose(predict(x_new), x_new @ w + 3.0, atol=1e-6)
    # Targets unrelated to the features: the held-out read-out correlates with them only by chance.
    y, y_new = rng.normal(size=(400, 1)), rng.normal(size=100)
    noise = adherence.ridge_fit(x, y)(x_new)[:, 0]
    assert abs(np.corrcoef(noise, y_new)[0, 1]) < 0.3


def test_tempo_word_pairs_summary():
    summary = adherence.tempo_word_pairs([(64, 152), (100, 100), (120, 60)])
    assert summary["pairs"] == 3 and summary["fast_faster"] == 1
    assert summary["mean_log2_ratio"] == pytest.approx((np.log2(152 / 64) + 0 - 1) / 3)
    assert summary["asked_log2_ratio"] == pytest.approx(np.log2(152 / 64))


def test_caption_features_pool_the_tokens_and_count_them():
    encoder = text_encoder.load_t5()
    texts = ["a slow waltz on a piano", "fast"]
    features = adherence.caption_features(encoder, texts)
    pooled, counts = features["T5 output, mean and max"], features["token counts"]
    assert features["token embeddings, mean and max"].shape == (2, 2 * encoder.dim)
    assert pooled.shape == (2, 2 * encoder.dim) and counts.shape == (2, encoder.config.vocab_size)
    ids, mask = encoder.tokenizer(texts, 96)
    assert counts.sum(1).tolist() == mask.sum(1).tolist()            # every kept token counted once
    emb, _ = encoder.encode(texts[1:], 96)                           # a caption alone: same pooled features
    assert np.allclose(pooled[1, :encoder.dim], emb[0, :int(mask[1].sum())].mean(0).numpy(), atol=1e-6)


def test_key_word_pairs_summary():
    heard = [{"C major": ("C", "major"), "F-sharp major": ("G-flat", "major")},    # both right (G-flat = F-sharp)
             {"C major": ("A", "minor"), "F-sharp major": ("A", "minor")},         # neither; the tonic stayed
             {"C major": ("C", "minor"), "F-sharp major": ("D", "major")}]         # wrong mode, wrong key; moved
    assert adherence.key_word_pairs(heard) == {"samples": 6, "in_asked_key": 2, "pairs": 3, "tonic_moved": 2}


def test_text_probe_without_the_corpus_says_so(tmp_path, capsys):
    assert adherence.main(["text", "--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "metadata.jsonl not found" in err and "make data" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()                                      # nothing written on failure


@pytest.mark.parametrize("argv", [["words", "--guidance", "-1"], ["words", "--seconds", "2"],
                                  ["words", "--seeds", "0"]])
def test_words_probe_refuses_absurd_settings(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        adherence.main(argv)
    assert exit_info.value.code == 2 and "--seconds must lie in 5..30" in capsys.readouterr().err


def test_caption_features_ignore_padding():
    """A caption's features are the same alone and padded beside a longer one (padding is in neither pool)."""
    encoder = text_encoder.load_t5()
    alone = adherence.caption_features(encoder, ["fast"])
    padded = adherence.caption_features(encoder, ["fast", "a slow waltz played on a piano in the evening"])
    for name in alone:
        assert np.allclose(alone[name][0], padded[name][0], atol=1e-5), name
