"""The training loop: exact resumption, multi-process (DDP on gloo), safe checkpoints, NaN handling, settings."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

import checkpoint
import stage3_superres
import vocoder
import train
from conftest import ROOT

FAST = ["--batch_size=4", "--crop_min=0.3", "--crop_max=0.4", "--workers=0", "--sample_every=0", "--warmup=2",
        "--lr=1e-3", "--log_every=1"]


def config(stage, tmp, corpus, *extra):
    return train.parse_config(stage, FAST + [f"--data={corpus}", f"--out={tmp}"] + list(extra))


def weights(path):
    ckpt = checkpoint.load_checkpoint(path)
    return ckpt["step"], ckpt["model"], ckpt["ema"], ckpt["optimizer"]["state"]


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            assert_same(a[k], b[k])
        elif torch.is_tensor(a[k]):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def interrupting(stage, at_step):
    """The same stage, but its loss raises KeyboardInterrupt at a given step, like a Ctrl-C or a killed job."""
    calls = {"n": 0}

    def loss(model, batch, ctx):
        calls["n"] += 1
        if calls["n"] > at_step:
            raise KeyboardInterrupt
        return stage.loss(model, batch, ctx)
    return SimpleNamespace(**{**vars(stage), "loss": loss})


def test_resume_is_exact(tmp_path, tiny_corpus):
    stage = stage3_superres.STAGE
    train.train(stage, config(stage, tmp_path / "straight", tiny_corpus, "--steps=6", "--ckpt_every=3"))
    with pytest.raises(KeyboardInterrupt):
        train.train(interrupting(stage, 4), config(stage, tmp_path / "split", tiny_corpus, "--steps=6",
                                                   "--ckpt_every=3"))
    assert weights(tmp_path / "split" / "last.pt")[0] == 3                 # killed after the step-3 checkpoint
    train.train(stage, config(stage, tmp_path / "split", tiny_corpus, "--steps=6", "--ckpt_every=3", "--resume=true"))
    straight, split = weights(tmp_path / "straight" / "last.pt"), weights(tmp_path / "split" / "last.pt")
    assert straight[0] == split[0] == 6
    for a, b in zip(straight[1:], split[1:]):
        assert_same(a, b)


def test_time_budget_stops_with_a_checkpoint_and_resumes_exactly(tmp_path, tiny_corpus, monkeypatch):
    """--minutes ends a run at a step boundary with last.pt written (even between --ckpt_every), and a resumed run
    ends with the same weights as one that never stopped. A fake clock makes each step take 40 s."""
    stage = stage3_superres.STAGE
    clock = {"now": 0.0}

    def slow_loss(model, batch, ctx):
        clock["now"] += 40.0
        return stage.loss(model, batch, ctx)
    train.train(stage, config(stage, tmp_path / "straight", tiny_corpus, "--steps=5", "--ckpt_every=100"))
    monkeypatch.setattr(train.time, "time", lambda: clock["now"])
    timed = SimpleNamespace(**{**vars(stage), "loss": slow_loss})
    train.train(timed, config(stage, tmp_path / "split", tiny_corpus, "--steps=5", "--ckpt_every=100", "--minutes=1"))
    assert weights(tmp_path / "split" / "last.pt")[0] == 2                 # 80 s > 1 minute after step 2
    monkeypatch.undo()
    train.train(stage, config(stage, tmp_path / "split", tiny_corpus, "--steps=5", "--ckpt_every=100", "--resume=true"))
    straight, split = weights(tmp_path / "straight" / "last.pt"), weights(tmp_path / "split" / "last.pt")
    assert straight[0] == split[0] == 5
    for a, b in zip(straight[1:], split[1:]):
        assert_same(a, b)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_corpus):
    stage = stage3_superres.STAGE
    calls = {"n": 0}

    def loss(model, batch, ctx):
        calls["n"] += 1
        value = stage.loss(model, batch, ctx)
        return value * float("nan") if calls["n"] == 5 else value
    bad = SimpleNamespace(**{**vars(stage), "loss": loss})
    with pytest.raises(train.TrainingError, match="loss became nan.*at step 4.*last good state"):
        train.train(bad, config(stage, tmp_path, tiny_corpus, "--steps=8", "--ckpt_every=3"))
    before = (tmp_path / "last.pt").read_bytes()
    assert weights(tmp_path / "last.pt")[0] == 3
    assert (tmp_path / "last.pt").read_bytes() == before


def test_corrupt_and_missing_checkpoints_are_one_sentence(tmp_path, tiny_corpus):
    stage = stage3_superres.STAGE
    train.train(stage, config(stage, tmp_path, tiny_corpus, "--steps=2"))
    good = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(good[: len(good) // 2])             # truncated, as by a full disk
    with pytest.raises(checkpoint.CheckpointError, match="truncated or corrupt"):
        checkpoint.load_checkpoint(tmp_path / "last.pt", "train-superres")
    with pytest.raises(checkpoint.CheckpointError, match="truncated or corrupt"):
        train.train(stage, config(stage, tmp_path, tiny_corpus, "--steps=4", "--resume=true"))
    with pytest.raises(checkpoint.CheckpointError, match="does not exist; run `make train-superres`"):
        checkpoint.load_checkpoint(tmp_path / "nope.pt", "train-superres")
    # A run never silently overwrites an existing one, and a resume cannot change the data stream or the loss.
    (tmp_path / "last.pt").write_bytes(good)
    with pytest.raises(checkpoint.CheckpointError, match="trained with seed=0, not 1"):
        train.train(stage, config(stage, tmp_path, tiny_corpus, "--steps=4", "--resume=true", "--seed=1"))
    with pytest.raises(checkpoint.CheckpointError, match="trained with envelope_band=0.875, not 0.75"):
        train.train(stage, config(stage, tmp_path, tiny_corpus, "--steps=4", "--resume=true", "--envelope_band=0.75"))
    with pytest.raises(checkpoint.CheckpointError, match="already exists; pass --resume=true"):
        train.train(stage, config(stage, tmp_path, tiny_corpus, "--steps=4"))


def test_settings_are_checked(tmp_path):
    stage = stage3_superres.STAGE
    with pytest.raises(train.TrainingError, match="unknown setting --stepz"):
        train.parse_config(stage, ["--stepz=3"])
    with pytest.raises(train.TrainingError, match="--steps takes a int"):
        train.parse_config(stage, ["--steps=many"])
    with pytest.raises(train.TrainingError, match="--key=value"):
        train.parse_config(stage, ["steps", "3"])
    with pytest.raises(train.TrainingError, match="--preset takes one of tiny, paper"):
        train.parse_config(stage, ["--preset=huge"])
    with pytest.raises(train.TrainingError, match="--objective takes one of v, eps"):
        train.parse_config(stage, ["--objective=x0"])
    with pytest.raises(train.TrainingError, match="--accum must be positive"):
        train.parse_config(stage, ["--accum=0"])
    assert train.parse_config(stage, ["--resume=true", "--lr=3e-4"]).lr == 3e-4
    # The command line: a wrong flag is one line on stderr and exit code 2, no traceback.
    r = subprocess.run([sys.executable, "stage3_superres.py", "--stepz=3"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: unknown setting") and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "stage3_superres.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "--t_max" in r.stdout and "--batch_size" in r.stdout


def test_spectrogram_generator_width_setting():
    """--channel_mults widens the spectrogram generator's U-Net per depth; a wrong count is one sentence."""
    import stage1_generator
    stage = stage1_generator.SPEC
    unet = stage.model_config(train.parse_config(stage, ["--channel_mults=2,2,2,2,3"]), 128)
    assert unet.widths == [192, 192, 192, 192, 288]
    assert stage.model_config(train.parse_config(stage, []), 128).widths == [96] * 5    # the preset's
    for bad in ("2,2", "2,2,2,2,x", "0,1,1,1,1"):
        with pytest.raises(train.TrainingError, match="--channel_mults takes 5 positive whole numbers"):
            stage.model_config(train.parse_config(stage, [f"--channel_mults={bad}"]), 128)


def test_vocoder_width_setting():
    """The vocoder takes the same flag through the same helper: 4 depths, base 8."""
    import vocoder
    unet = vocoder.model_config(train.parse_config(vocoder.STAGE, ["--channel_mults=8,12,16,24"]))
    assert unet.widths == [64, 96, 128, 192]
    assert vocoder.model_config(train.parse_config(vocoder.STAGE, [])).widths == [16, 48, 96, 192]   # the preset's
    with pytest.raises(train.TrainingError, match="--channel_mults takes 4 positive whole numbers"):
        vocoder.model_config(train.parse_config(vocoder.STAGE, ["--channel_mults=2,2,2,2,2"]))


def test_full_rate_blocks_setting():
    """--full_rate_blocks=N adds N blocks at the full frame rate on each side of the U, which start as the
    identity: the network computes exactly what it did without them."""
    import stage1_generator
    import unet1d
    stage = stage1_generator.SPEC
    plain = stage.model_config(train.parse_config(stage, []), 128)
    unet = stage.model_config(train.parse_config(stage, ["--full_rate_blocks=2"]), 128)
    assert unet.full_rate_blocks == 2 and plain.full_rate_blocks == 0
    torch.manual_seed(0)
    before = unet1d.build_unet(plain)
    for p in before.parameters():                  # a "trained" network: no zero layers left
        p.data.normal_(0, 0.05)
    after = unet1d.build_unet(unet)
    missing, unexpected = after.load_state_dict(before.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith(("full_in.", "full_out.")) for k in missing)
    x, t, text = torch.randn(2, 80, 100), torch.tensor([0.3, 0.9]), torch.randn(2, 4, 128)
    torch.testing.assert_close(after(x, t, text_emb=text), before(x, t, text_emb=text))
    after.full_out[1].conv2.weight.data.normal_(0, 0.05)    # and they are on the path: once trained, they count
    assert (after(x, t, text_emb=text) - before(x, t, text_emb=text)).abs().max() > 1e-3
    with pytest.raises(train.TrainingError, match="--full_rate_blocks must be 0 or more"):
        stage.model_config(train.parse_config(stage, ["--full_rate_blocks=-1"]), 128)


def test_learning_rate_schedule():
    cfg = SimpleNamespace(lr=1e-4, warmup=10, decay_steps=110)
    assert train.lr_at(0, cfg) == pytest.approx(1e-5) and train.lr_at(9, cfg) == pytest.approx(1e-4)
    assert train.lr_at(60, cfg) == pytest.approx(0.5e-4) and train.lr_at(110, cfg) == pytest.approx(0.0)


def test_two_process_ddp_checkpoint_loads_in_one_process(tmp_path, tiny_corpus):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "stage3_superres.py", *FAST, "--steps=3", f"--data={tiny_corpus}", f"--out={out}",
                        "--device=cpu"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    ckpt = checkpoint.load_checkpoint(out / "last.pt")
    assert ckpt["step"] == 3
    model = checkpoint.model_from_checkpoint(ckpt)                 # a plain single-process model loads DDP's weights
    x = torch.zeros(1, 1, 600)
    assert model(x, torch.full((1,), 0.5), cond=x, cond_noise=torch.zeros(1)).shape == x.shape


def test_bf16_wrapper_returns_float32_for_tensor_and_tuple_outputs():
    """The GPU's bf16 autocast wrapper (run here with CPU autocast): a U-Net's single tensor and MuLan's tuple both
    come back in float32, close to the float32 forward."""
    lin = torch.nn.Linear(8, 8)
    x = torch.randn(4, 8)
    one = train._autocast(lin, "cpu")(x)
    pair = train._autocast(lambda v: (lin(v), lin(v).sum(1)), "cpu")(x)
    assert one.dtype == torch.float32 and torch.allclose(one, lin(x), atol=0.05)
    assert isinstance(pair, tuple) and all(p.dtype == torch.float32 for p in pair)
    assert torch.allclose(pair[1], lin(x).sum(1), atol=0.2)


def test_make_passes_every_training_setting_to_the_stage():
    """`make train-cascader SEED=3 OUT=...` once dropped SEED and OUT silently (they were the sample target's)."""
    r = subprocess.run(["make", "-n", "--no-print-directory", "train-cascader", "SEED=3", "OUT=/tmp/elsewhere",
                        "SECONDS=12", "STEPS=5"], cwd=ROOT, capture_output=True, text=True)
    command = [line for line in r.stdout.splitlines() if "stage2_cascader.py" in line][-1]
    for setting in ("--seed=3", "--out=/tmp/elsewhere", "--seconds=12", "--steps=5", "--preset=tiny"):
        assert setting in command.split(), (setting, command)


def test_every_entry_point_answers_help():
    for script in ("data.py", "stage1_generator.py", "stage2_cascader.py", "vocoder.py", "stagecheck.py", "sample.py",
                   "evaluate.py", "overfit.py", "bench.py", "train.py", "mulan.py", "pseudolabel.py"):
        r = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0 and len(r.stdout) > 80, (script, r.stdout, r.stderr)


def test_calibration_is_measured_once_and_kept_on_resume(tiny_corpus):
    """A fresh run measures its scales on the training clips; a resumed one takes the recorded ones, and a scale
    given on the command line that disagrees with the record is an error, not a silent change of the loss."""
    stage = stage3_superres.STAGE
    spec = {"rate": 24000}
    cfg = train.parse_config(stage, [f"--data={tiny_corpus}"])
    train._calibrate(stage, cfg, spec, tiny_corpus / "train", None)
    assert cfg.cond_scale > 0 and cfg.residual_scale > 0
    recorded = {"cond_scale": 0.1, "residual_scale": 0.002}
    resumed = train.parse_config(stage, [f"--data={tiny_corpus}"])
    train._calibrate(stage, resumed, spec, tiny_corpus / "train", recorded)
    assert (resumed.cond_scale, resumed.residual_scale) == (0.1, 0.002)
    clash = train.parse_config(stage, [f"--data={tiny_corpus}", "--residual_scale=0.5"])
    with pytest.raises(train.TrainingError, match="calibrated with residual_scale=0.002"):
        train._calibrate(stage, clash, spec, tiny_corpus / "train", recorded)


def test_init_starts_a_new_run_from_a_checkpoints_weights_and_statistics(tmp_path, tiny_corpus):
    """--init=FILE (how a run continues across sessions that keep only checkpoints/): step 0 of the new run holds
    FILE's EMA weights in both the network and its EMA copy, the recorded data statistics, and the earlier steps
    counted; a checkpoint of another stage is refused with one sentence."""
    stage = stage3_superres.STAGE
    train.train(stage, config(stage, tmp_path / "first", tiny_corpus, "--steps=3"))
    checkpoint.export(tmp_path / "first" / "last.pt", tmp_path / "first.pt")
    exported = checkpoint.load_checkpoint(tmp_path / "first.pt")
    cfg = config(stage, tmp_path / "second", tiny_corpus, f"--init={tmp_path / 'first.pt'}")
    run = train._processes(cfg)
    ctx, unet_cfg, model, ema_model, opt = train._build(stage, cfg, run.device)
    recorded = checkpoint.initialise(stage, cfg, run, unet_cfg, model, ema_model)
    for name, value in exported["model"].items():
        assert torch.equal(model.state_dict()[name], value.float()), name
        assert torch.equal(ema_model.state_dict()[name], value.float()), name
    assert run.prior_steps == 3 and recorded["residual_scale"] == exported["config"]["residual_scale"]
    # A whole run from it carries the count on, and its export keeps it.
    train.train(stage, config(stage, tmp_path / "second", tiny_corpus, "--steps=2", f"--init={tmp_path / 'first.pt'}"))
    second = checkpoint.load_checkpoint(tmp_path / "second" / "last.pt")
    assert second["prior_steps"] == 3 and second["config"]["residual_scale"] == exported["config"]["residual_scale"]
    vocoder_cfg = config(vocoder.STAGE, tmp_path / "third", tiny_corpus, f"--init={tmp_path / 'first.pt'}")
    with pytest.raises(checkpoint.CheckpointError, match="different stage"):
        train.train(vocoder.STAGE, vocoder_cfg)
