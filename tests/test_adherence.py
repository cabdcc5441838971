"""adherence.py: the ridge read-out against exact answers, the tempo-word summary against its closed form, the
text features' shapes and token counts with the demo encoder, and the reads probe against a generator that cannot
read (its cross-attention zeroed: every ratio exactly 1)."""

import json
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

import adherence
import checkpoint
import data
import stage1_generator
import text_encoder
import train
import unet1d
from conftest import write_corpus


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


def test_altered_captions_change_only_the_aspect():
    out = adherence.altered_captions(["a tone, 150 bpm, a major, fast tempo", "It is in A major, slow, adagio."])
    assert out["bpm"] == ("a tone, 150 bpm, a major, fast tempo", "a tone, 100 bpm, a major, fast tempo")  # / 1.5
    assert out["key"] == ("a tone, 150 bpm, a major, fast tempo", "a tone, 150 bpm, e-flat major, fast tempo")
    assert out["tempo words"] == ("It is in A major, slow, adagio.", "It is in A major, fast, allegro.")
    assert adherence.altered_captions(["It is in A major, about 100 beats per minute."])["bpm"][1] == \
        "It is in A major, about 150 beats per minute."
    assert adherence.altered_captions(["a piano piece"]) == {}


def _probe_folder(tmp_path):
    """Three 6 s tone clips whose captions name a tempo and a key, and a random-weight spectrogram generator."""
    folder = write_corpus(tmp_path / "clips", 3, seconds=6.0)
    lines = [json.loads(line) for line in (folder / "captions.jsonl").read_text().splitlines()]
    for i, line in enumerate(lines):
        line["captions"] = [f"a tone in {'CDE'[i]} major at {90 + 10 * i} BPM", "a fast tone"]
    (folder / "captions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    torch.manual_seed(0)
    model = unet1d.UNet1D(replace(unet1d.PRESETS["tiny-spectrogram-generator"], text_dim=128, zero_init=False))
    cfg = train.parse_config(stage1_generator.SPEC, ["--text_length=16"])
    audio = data.fixed_batch(folder, data.MEL_RATE, n=3, seconds=5.0)["audio"]
    config = {**vars(cfg), "t5": "", **stage1_generator.calibrate(cfg, audio)}
    checkpoint.save_checkpoint(tmp_path / "spectrogram-generator.pt", {
        "format": checkpoint.FORMAT, "stage": "spectrogram-generator", "unet": asdict(model.config),
        "config": config, "step": 0, "loss": 0.0, "model": model.state_dict(), "ema": None})
    return folder, model, config


def test_reads_probe_tells_a_deaf_generator_from_one_that_reads(tmp_path):
    """With its cross-attention output zeroed, the generator's x0 error is the same with any caption: every ratio
    is exactly 1 and no clip gets worse. With random cross-attention weights, changing only the tempo number, the
    tempo words or the key changes the error."""
    folder, model, config = _probe_folder(tmp_path)
    hearing = adherence.probe_reads(tmp_path, folder, n=3, seconds=5.0)
    for aspect in adherence.READ_ASPECTS:
        assert hearing[aspect]["clips"] == 3 and set(hearing[aspect]) == {"clips", *adherence.READ_TIMES}
        assert any(abs(r["altered"] - r["own"]) > 1e-6 for t, r in hearing[aspect].items() if t != "clips")
    state = checkpoint.load_checkpoint(tmp_path / "spectrogram-generator.pt")
    for name in state["model"]:
        if "cross_attn.to_out" in name:
            state["model"][name].zero_()
    checkpoint.save_checkpoint(tmp_path / "spectrogram-generator.pt", state)
    deaf = adherence.probe_reads(tmp_path, folder, n=3, seconds=5.0)
    for aspect in adherence.READ_ASPECTS:
        for t in adherence.READ_TIMES:
            r = deaf[aspect][t]
            assert r["own"] == pytest.approx(1.0, abs=1e-6) and r["altered"] == pytest.approx(1.0, abs=1e-6)
            assert r["another"] == pytest.approx(1.0, abs=1e-6) and r["altered_worse"] == 0.0


def test_reads_probe_without_clips_or_checkpoints_says_so(tmp_path, capsys):
    for argv in (["reads", "--data", str(tmp_path)], ["reads", "--checkpoints", str(tmp_path)]):
        assert adherence.main(argv + ["--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert ("captions.jsonl not found" in err or "make train-spec-generator" in err) and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_opposite_tempo_words_swap_whole_words_only():
    assert adherence.opposite_tempo_words("A slow, leisurely tune played unhurriedly; adagio.") == \
        "A fast, lively tune played briskly; allegro."
    assert adherence.opposite_tempo_words("fast tempo, 120 bpm") == "slow tempo, 120 bpm"           # numbers stay
    assert adherence.opposite_tempo_words("a steady, mid-tempo tune") == "a brisk, fast tune"       # moderate -> fast
    assert adherence.opposite_tempo_words("breakfast is quickest") == "breakfast is quickest"      # not inside words
