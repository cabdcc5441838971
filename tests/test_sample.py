"""sample.py end to end on the shipped demo checkpoints (checkpoints/), with two steps per stage to stay fast."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import audio_io
import sample
from conftest import ROOT

FAST = ["--steps-generator", "2", "--steps-cascader", "2", "--steps-superres", "2", "--steps-spec-generator", "2",
        "--steps-vocoder", "2", "--quiet"]


def run(tmp_path, *args, name="out.wav"):
    out = tmp_path / name
    code = sample.main(["--seconds", "2", "--out", str(out), *FAST, *args])
    return code, out


def test_real_command_writes_24khz_wav_and_every_stage(tmp_path):
    out = tmp_path / "organ.wav"
    r = subprocess.run([sys.executable, "sample.py", "--prompt", "a slow chorale on a church organ", "--seconds",
                        "3", "--route", "wave", "--out", str(out), *FAST], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    audio, rate = sf.read(out, dtype="float32")
    info = sf.info(out)
    assert rate == 24000 and info.subtype == "PCM_16" and info.channels == 1 and len(audio) == 3 * 24000
    assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-3
    low, low_rate = sf.read(tmp_path / "organ.3200hz.wav")
    mid, mid_rate = sf.read(tmp_path / "organ.16000hz.wav")
    assert (low_rate, len(low), mid_rate, len(mid)) == (3200, 9600, 16000, 48000)
    assert (tmp_path / "organ.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for stage in ("generator", "cascader", "superres"):
        assert f"{stage}: 2 steps" in r.stdout


def test_seed_reproduces_and_prompts_differ(tmp_path):
    a = run(tmp_path, "--prompt", "fiddle tune", "--seed", "3", name="a.wav")[1]
    b = run(tmp_path, "--prompt", "fiddle tune", "--seed", "3", name="b.wav")[1]
    c = run(tmp_path, "--prompt", "a string quartet", "--seed", "3", name="c.wav")[1]
    assert a.read_bytes() == b.read_bytes()
    assert sf.read(a)[0].tolist() != sf.read(c)[0].tolist()


def test_spectrogram_route_and_variations(tmp_path):
    code, out = run(tmp_path, "--prompt", "folk song", "--route", "spec", "--n", "2")
    assert code == 0
    for i in (1, 2):
        audio, rate = sf.read(tmp_path / f"out-{i}.wav")
        assert rate == 24000 and len(audio) == 48000
        assert (tmp_path / f"out-{i}.mel.png").exists() and (tmp_path / f"out-{i}.16000hz.wav").exists()


@pytest.mark.parametrize("sampler,draws", [("ancestral", 3), ("ddim", 1)])
def test_generator_sampler_setting_reaches_the_sampler(sampler, draws):
    """The generator's sampler setting (--sampler-spec-generator) picks its sampler. Told apart by their random
    draws: with 3 steps eq. 4 draws x_1 and fresh noise at two steps (the last returns x0_hat), DDIM only x_1; so
    after generating, the generator's stream has moved on by exactly that many draws of the sample's shape."""
    import checkpoint
    import diffusion
    import stage1_generator
    ckpt = checkpoint.load_checkpoint(ROOT / "checkpoints" / "spectrogram-generator.pt")
    model = checkpoint.model_from_checkpoint(ckpt)
    frames = -(-100 // model.config.total_stride) * model.config.total_stride       # 1 s, whole bottom positions
    used, fresh = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    out = stage1_generator.generate(model, config=ckpt["config"], seconds=1.0, steps=3, sampler=sampler,
                                    generator=used)
    for _ in range(draws):
        diffusion.randn((1, 80, frames), fresh, "cpu")
    assert out.shape == (1, 80, 100) and torch.equal(torch.randn(8, generator=used), torch.randn(8, generator=fresh))


def test_superres_with_zero_steps_is_plain_resampling():
    """--steps-superres 0 replaces the last model with FFT resampling: the 24 kHz output is exactly the 16 kHz
    stage's output resampled, and no super-resolution checkpoint is read."""
    import torch
    import data
    settings = sample.resolve_settings({name: {"steps": 2} for name in sample.ROUTES["wave"]})
    settings["superres"]["steps"] = 0
    result = sample.run("a fiddle tune", route="wave", seconds=2.0, settings=settings, progress=False,
                        log=lambda *a: None)
    (_, mid, mid_rate), (_, high, high_rate) = result["stages"][1:]
    assert (mid_rate, high_rate) == (16000, 24000) and "superres" not in result["timings"]
    assert torch.allclose(result["audio"], data.resample(mid, 16000, 24000)[:, :48000])


def test_vocoder_with_zero_steps_is_griffin_lim(tmp_path):
    """--steps-vocoder 0 replaces the vocoder with Griffin-Lim from the generator's log-mel (vocoder.griffin_lim),
    reads no vocoder checkpoint, and one seed still gives the same file."""
    import data
    import vocoder
    settings = {name: {"steps": 2} for name in sample.ROUTES["spec"]}
    settings["vocoder"]["steps"] = 0
    result = sample.run("a fiddle tune", route="spec", seconds=2.0, settings=settings, progress=False,
                        log=lambda *a: None)
    (_, mel, _), (_, mid, mid_rate) = result["stages"][:2]
    assert mid_rate == 16000 and "vocoder" not in result["timings"]
    # The generator drew from the one generator first; Griffin-Lim's phase is the next draw of the same stream.
    first = sample.run("a fiddle tune", route="spec", seconds=2.0, settings=settings, progress=False,
                       log=lambda *a: None)
    assert torch.equal(first["audio"], result["audio"])
    # What was written is Griffin-Lim of the generated log-mel: as close to it as Griffin-Lim from another seed.
    distance = lambda audio: (data.log_mel(audio) - mel).abs().mean()
    reference = vocoder.griffin_lim(mel, generator=torch.Generator().manual_seed(1))
    assert distance(mid) < 1.2 * distance(reference) and distance(reference) < 0.5 * (mel - mel.mean()).abs().mean()
    assert sample.main(["--seconds", "1", "--route", "spec", "--steps-vocoder", "0", "--out", str(tmp_path / "g.wav"),
                        *FAST[:8], "--quiet"]) == 0


@pytest.mark.parametrize("prompt", ["", "x" * 5000, "🎻🎹 música für Streicher \x07\t", "   "])
def test_odd_prompts_still_make_music(tmp_path, prompt, capsys):
    code, out = run(tmp_path, "--prompt", prompt)
    assert code == 0 and len(sf.read(out)[0]) == 48000
    if not prompt.strip():
        assert "unconditional" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--seconds", "0"], "at least 0.1 seconds"),
    (["--seconds", "-5"], "at least 0.1 seconds"),
    (["--seconds", "3600"], "10-minute limit"),
    (["--route", "midi"], "unknown route"),
    (["--route", "wave", "--schedule-generator", "sideways"], "unknown step schedule"),
    (["--route", "wave", "--gamma-cascader", "2"], "gamma for the cascader"),
    (["--schedule-spec-generator", "sideways"], "unknown step schedule"),
    (["--n", "0"], "between 1 and 64"),
    (["--sampler-spec-generator", "euler"], "unknown sampler"),
    (["--guidance-spec-generator", "-1"], "guidance for the spec-generator"),
    (["--guidance-spec-generator", "nan"], "guidance for the spec-generator"),
    (["--route", "wave", "--checkpoints", "/nonexistent"], "make train-generator"),
    (["--checkpoints", "/nonexistent"], "make train-spec-generator"),
])
def test_bad_requests_are_one_sentence(tmp_path, args, message, capsys):
    code, out = run(tmp_path, "--prompt", "x", *args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and not out.exists()


def test_corrupt_checkpoint_and_unwritable_folder(tmp_path, capsys):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for name in sample.CHECKPOINTS:
        (folder / f"{name}.pt").write_bytes((ROOT / "checkpoints" / f"{name}.pt").read_bytes()[:5000])
    code, _ = run(tmp_path, "--prompt", "x", "--checkpoints", str(folder))
    assert code == 2 and "truncated or corrupt" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = sample.main(["--prompt", "x", "--out", str(blocker / "song.wav"), *FAST])
    assert code == 2 and "cannot write to" in capsys.readouterr().err


def test_wrong_flag_is_one_sentence():
    r = subprocess.run([sys.executable, "sample.py", "--tempo", "90"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: unrecognized arguments") and "Traceback" not in r.stderr


def test_interrupted_write_leaves_nothing(tmp_path):
    def dies_halfway(tmp):
        with open(tmp, "wb") as f:
            f.write(b"RIFF....")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        audio_io.atomic_write(tmp_path / "song.wav", dies_halfway)
    assert list(tmp_path.iterdir()) == []


def test_stage_picture_puts_a_tone_on_its_row_and_louder_is_brighter(tmp_path):
    """The picture's data, not just its bytes: a 1 kHz sine lands on the 1 kHz row of the shared grid, at about
    its level in dB re. full scale, a louder one is brighter, and rows above a stage's Nyquist limit are blank."""
    import math
    import data
    t = torch.arange(16000) / 16000
    quiet, loud = (a * torch.sin(2 * math.pi * 1000 * t) for a in (0.01, 0.1))
    grid, rows, times, limit = audio_io.stage_grid(quiet, 16000)
    below = rows < limit
    peak_row = np.argmax(grid[below].mean(axis=1))
    assert abs(rows[peak_row] - 1000) <= rows[1] - rows[0]
    assert np.nanmean(grid[peak_row]) == pytest.approx(-40.0, abs=3.0)         # 0.01 of full scale: -40 dB
    loud_grid = audio_io.stage_grid(loud, 16000)[0]
    assert np.nanmean(loud_grid[peak_row]) == pytest.approx(np.nanmean(grid[peak_row]) + 20, abs=1.0)
    assert limit == 8000 and np.isnan(grid[rows > 8000]).all() and not np.isnan(grid[rows < 8000]).any()
    # The log-mel of the same tone is drawn at its true frequency, near the same level.
    mel_grid, _, _, mel_limit = audio_io.stage_grid(data.log_mel(loud), None)
    mel_row = np.argmax(mel_grid[below].mean(axis=1))
    assert abs(rows[mel_row] - 1000) <= 150 and mel_limit == 8000
    audio_io.write_stage_picture(tmp_path / "p.png", [("tone: 16 kHz audio", loud, 16000),
                                                     ("tone: log-mel", data.log_mel(loud), None)], title="a tone")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
