"""The overfit check (overfit.py): its verdicts follow the bars, and the command trains, samples and judges."""

import json
import math

import pytest
import torch

import overfit


def _generator_result(flatness, persistence):
    return {"samples": {"flatness": flatness, "persistence": persistence}}


@pytest.mark.parametrize("flatness, persistence, passed", [(0.06, 0.8, True), (0.3, 0.8, False),
                                                           (0.06, 0.2, False), (0.15, 0.6, True)])
def test_generator_verdict_follows_the_bars(flatness, persistence, passed):
    ok, why = overfit.verdict("spec-generator", _generator_result(flatness, persistence))
    assert ok is passed and (not why) is passed


def test_fast_share_against_closed_forms():
    # At 100 frames/s: a 10 Hz modulation has none of its power above 25 Hz, a 40 Hz one all of it, and white
    # noise the share of the band above 25 Hz in 0-50 Hz, one half.
    t = torch.arange(1000) / 100.0
    assert overfit.fast_share(torch.sin(2 * math.pi * 10 * t)[None, None]) == pytest.approx(0.0, abs=1e-6)
    assert overfit.fast_share(torch.sin(2 * math.pi * 40 * t)[None, None]) == pytest.approx(1.0, abs=1e-6)
    noise = torch.randn(8, 80, 1000, generator=torch.Generator().manual_seed(0))
    assert overfit.fast_share(noise) == pytest.approx(0.5, abs=0.01)


def test_cascader_verdict_names_each_failure():
    good = {"given_band_error": 0.0, "given_band_error_plain": 0.0, "added_band_lsd": 20.0,
            "added_band_lsd_plain": 60.0, "swap_correlation": 0.5}
    assert overfit.verdict("cascader", {"check": good}) == (True, [])
    bad = dict(good, given_band_error=0.1, added_band_lsd=70.0, swap_correlation=0.99)
    ok, why = overfit.verdict("superres", {"check": bad})
    assert not ok and len(why) == 3


def test_vocoder_verdict_holds_a_specgrad_vocoder_to_its_coloured_noise():
    good = {"log_mel_distance": 0.05, "log_mel_distance_swapped": 0.3, "flatness": 0.1, "persistence": 0.7}
    assert overfit.verdict("vocoder", {"check": good}) == (True, [])               # scaled form: no such figure
    assert overfit.verdict("vocoder", {"check": dict(good, log_mel_distance_colour=0.06)}) == (True, [])
    ok, why = overfit.verdict("vocoder", {"check": dict(good, log_mel_distance_colour=0.04)})
    assert not ok and why == ["its output is no closer to the mel than its own noise coloured by the mel "
                              "(specgrad form)"]


def test_overfit_command_trains_samples_and_judges(tmp_path, tiny_corpus, monkeypatch):
    # The recipe shrunk to seconds: a few steps on 2 tone clips, judged on 1.5 s samples. The verdict of so short a
    # run is not the point (it fails); the file it writes, with the samples' and the real clips' figures, is.
    monkeypatch.setitem(overfit.RECIPES, "generator", (overfit.RECIPES["generator"][0],
                                                       ["--seconds=1.0", "--batch_size=2", "--steps=3",
                                                        "--workers=0", "--warmup=1"]))
    status = overfit.main(["generator", "--clips", "2", "--seconds", "1.5", "--data", str(tiny_corpus),
                           "--out", str(tmp_path / "run")])
    result = json.loads((tmp_path / "run" / "overfit.json").read_text())
    assert status == (0 if result["pass"] else 1)
    assert result["step"] == 3 and result["clips"] == 2
    assert 0 <= result["samples"]["flatness"] <= 1 and -1 <= result["real"]["persistence"] <= 1
    each = result["samples"]["each"]                      # per clip, and the median is theirs
    assert len(each) == 2 and result["samples"]["flatness"] == pytest.approx(min(f for f, _ in each))
    assert (tmp_path / "run" / "overfit.png").stat().st_size > 1000
    # Run again: the finished run is judged again, not retrained.
    assert overfit.main(["generator", "--clips", "2", "--seconds", "1.5", "--data", str(tiny_corpus),
                         "--out", str(tmp_path / "run")]) == status
    # --sampling reaches the generator's sampler when judging (here eq. 4's at 2 steps, not the default DDIM).
    seen = []
    real_generate = overfit.stage1_generator.generate
    monkeypatch.setattr(overfit.stage1_generator, "generate", lambda *a, **k: seen.append(k) or real_generate(*a, **k))
    overfit.main(["generator", "--clips", "2", "--seconds", "1.5", "--data", str(tiny_corpus), "--out",
                  str(tmp_path / "run"), "--sampling", "sampler=ancestral,steps=2"])
    assert seen and seen[0]["sampler"] == "ancestral" and seen[0]["steps"] == 2
    assert json.loads((tmp_path / "run" / "overfit.json").read_text())["sampling"] == {"sampler": "ancestral",
                                                                                       "steps": 2}


@pytest.mark.parametrize("argv,message", [(["spec-generator", "--sampling", "sampler=euler"], "unknown sampler 'euler'"),
                                          (["generator", "--sampling", "steps=0"], "must be a positive whole number"),
                                          (["generator", "--sampling", "guidance=-2"], "must be 0 or more"),
                                          (["vocoder", "--sampling", "steps=3"], "sets a generator's sampler")])
def test_bad_sampling_setting_is_one_sentence_before_training(argv, message, capsys):
    # No corpus at --data: had the check let the setting through, the run would stop on the missing data instead.
    with pytest.raises(SystemExit) as stop:
        overfit.main(argv + ["--data", "/nonexistent/corpus", "--out", "/nonexistent/never-made"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("python overfit.py: error:") and message in err
