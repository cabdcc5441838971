"""The one training loop, shared by all five cascade stages (Sec. 4.1; PAPER_NOTES §8).

Each stage file (stage1_generator.py, stage2_cascader.py, vocoder.py, stage3_superres.py) says only what is
particular to it: its U-Net preset, how a training example becomes a loss, and how to preview a sample. Running
`python stage2_cascader.py --steps=2000` calls main() below with that stage.

What the loop does, and why:
- Adam (0.9, 0.999), peak learning rate 1e-4 with linear warm-up and cosine decay (Sec. 4.1: 10k warm-up, decay
  towards 2.5M steps; our tiny defaults shrink both to the run's length).
- An exponential moving average of the weights (0.9999 in the paper) is what sampling uses; it is saved *beside*
  the live weights, never in place of them, so training can resume.
- Gradient clipping [choice: the paper does not say], bf16 autocast on a GPU, gradient accumulation.
- One process or many: under `torchrun` each process trains on its share of every batch through PyTorch's
  DistributedDataParallel (gloo on CPUs, nccl on GPUs); the code path is the same.
- Exact resumption. Every random draw of a step (which clips, where to crop, which caption, t, the noise, the
  text dropout, the conditioning corruption) comes from generators seeded by (seed, step, process), so a run needs
  only its weights, optimizer state and step to continue exactly where it stopped: the resumed run ends with the
  very same weights as an uninterrupted one (tests/test_train.py checks this bit for bit). What a checkpoint holds,
  and which settings a resumed run may not change, are checkpoint.py's.
- A loss that turns NaN or infinite stops the run with a clear message and leaves the last good checkpoint
  untouched.
- A preview every `sample_every` steps: a short sample from the EMA weights, written as WAV and as a spectrogram
  picture in the run folder, so a user can hear and see a stage learn.

Config: one block of defaults (COMMON below, then the stage's own DEFAULTS), each with its help text; any
setting is overridden with --key=value, and an unknown key is an error. The resolved config is printed at start.
"""

import contextlib
import copy
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist

import audio_io
import checkpoint
import data
import text_encoder
from unet1d import UNet1D

# Settings every stage shares: (default, help). A stage's DEFAULTS may change a default or add settings.
COMMON = {
    # What is trained, on what, and where it goes.
    "preset": ("tiny", "U-Net size: 'tiny' (trains on a laptop CPU) or 'paper' (Table 8; needs GPUs)"),
    "data": ("data/music21", "corpus folder holding train/ and test/ (make data), or any folder with captions.jsonl"),
    "out": ("", "run folder for checkpoints, previews and the log (default runs/<stage>)"),
    # The optimisation (Sec. 4.1). The paper's values are in the help texts; ours suit runs of thousands of steps
    # on a laptop, and the README's training table gives the settings each shipped checkpoint was trained with.
    "steps": (2000, "optimizer steps to train (paper: 270k-1.8M, Table 2)"),
    "batch_size": (8, "examples per optimizer step, over all processes and accumulation (paper: 2048, SR 4096)"),
    "accum": (1, "gradient accumulation: each process splits its share of a step into this many micro-batches"),
    "lr": (1e-4, "peak learning rate (Sec. 4.1)"),
    "warmup": (100, "linear warm-up steps (paper: 10k)"),
    "decay_steps": (0, "end of the cosine decay (paper: 2.5M); 0 = the run's `steps`"),
    "ema": (0.999, "EMA decay of the weights used for sampling (paper: 0.9999; lower suits short runs)"),
    "grad_clip": (1.0, "clip the global gradient norm to this (0 = off) [choice: the paper does not say]"),
    # Bookkeeping: checkpoints, the time budget, previews and the log.
    "ckpt_every": (200, "write <out>/last.pt every this many steps"),
    "minutes": (0.0, "stop after this many minutes of training, writing last.pt first (0 = no limit); "
                     "the learning-rate schedule still follows --steps, so --resume=true carries on exactly"),
    "sample_every": (500, "write a preview sample from the EMA weights every this many steps (0 = never)"),
    "preview_steps": (20, "sampling steps for previews"),
    "log_every": (10, "append the loss to <out>/log.jsonl every this many steps"),
    # The data stream, the randomness and the hardware.
    "workers": (2, "DataLoader worker processes per training process"),
    "clips": (0, "train on only the first N training clips (0 = all): the overfit check, overfit.py"),
    "seed": (0, "seed of every random draw; the same seed and settings give the same run"),
    "device": ("auto", "auto (cuda, then mps, then cpu), or a torch device such as cpu or cuda:1"),
    "resume": (False, "continue from <out>/last.pt exactly where it stopped"),
    "init": ("", "start a new run from this checkpoint's weights (checkpoints/NAME.pt or a run's last.pt), with its "
                 "data statistics and a fresh optimizer: how training spans sessions that keep only checkpoints/"),
    "t5": ("", "T5 encoder directory (Hugging Face layout); empty = the shipped demo encoder"),
}


class TrainingError(RuntimeError):
    """A problem the user can fix; main() prints its one-sentence message instead of a traceback."""


# ---------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------

def defaults(stage):
    """{key: (default, help)}: COMMON, then the stage's own DEFAULTS over it (a stage may change a shared default,
    e.g. the vocoder's batch size, or add its own settings, e.g. the cascaders' t_max)."""
    table = dict(COMMON)
    table.update(stage.DEFAULTS)
    return table


def _convert(key, text, default):
    """A --key=value text -> the default's type (bool, int, float or str), or one sentence saying what it takes."""
    # bool("false") is True in Python, so booleans are read by hand.
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise TrainingError(f"--{key} takes true or false, not {text!r}.")
    try:
        return type(default)(text)
    except ValueError:
        raise TrainingError(f"--{key} takes a {type(default).__name__}, not {text!r}.") from None


# Settings that take one of a few words, and counts that must be positive: checked before anything loads.
CHOICES = {"preset": ("tiny", "paper"), "schedule": ("cosine", "linear"), "objective": ("v", "eps"),
           "weight": ("simplified", "sigma", "sigma-floor"), "repr": ("wave", "spec")}
POSITIVE = ("steps", "batch_size", "accum", "ckpt_every", "log_every", "preview_steps", "text_length")


def check_choice(cfg, key, allowed):
    """A stage's own word-valued setting (CHOICES holds the shared ones)."""
    if getattr(cfg, key) not in allowed:
        raise TrainingError(f"--{key} takes one of {', '.join(allowed)}, not {getattr(cfg, key)!r}.")


def with_channel_mults(unet_cfg, cfg):
    """The preset's U-Net with the widths of --channel_mults (comma-separated, one per depth, in units of the
    preset's base), for stages that offer the flag; the preset as it is when the flag is empty or absent."""
    text = getattr(cfg, "channel_mults", "")
    if not text:
        return unet_cfg
    try:
        mults = tuple(int(m) for m in text.split(","))
    except ValueError:
        mults = ()
    if len(mults) != len(unet_cfg.channel_mults) or min(mults) < 1:
        raise TrainingError(f"--channel_mults takes {len(unet_cfg.channel_mults)} positive whole numbers separated "
                            f"by commas (one per depth), not {text!r}.")
    return replace(unet_cfg, channel_mults=mults)


def parse_config(stage, argv):
    """--key=value overrides checked against the stage's defaults; returns a SimpleNamespace."""
    table = defaults(stage)
    cfg = {k: v for k, (v, _) in table.items()}
    # One convention for every training setting, the same as on the make line (KEY=value -> --key=value): a typo
    # is an error here, before a model is built, rather than a setting silently left at its default.
    for arg in argv:
        if not arg.startswith("--") or "=" not in arg:
            raise TrainingError(f"settings are written --key=value; cannot read {arg!r} (see --help).")
        key, text = arg[2:].split("=", 1)
        key = key.replace("-", "_")
        if key not in table:
            raise TrainingError(f"unknown setting --{key}; run with --help to list the settings of {stage.NAME}.")
        cfg[key] = _convert(key, text, table[key][0])
    for key, allowed in CHOICES.items():
        if key in cfg and cfg[key] not in allowed:
            raise TrainingError(f"--{key} takes one of {', '.join(allowed)}, not {cfg[key]!r}.")
    for key in POSITIVE:
        if key in cfg and cfg[key] <= 0:
            raise TrainingError(f"--{key} must be positive, got {cfg[key]}.")
    if min(cfg["workers"], cfg["sample_every"], cfg["minutes"], cfg["clips"]) < 0 or cfg["lr"] <= 0:
        raise TrainingError("--workers, --sample_every, --minutes and --clips cannot be negative, and --lr must be "
                            "positive.")
    # Settings whose default depends on others: the run folder is named after the stage, and the cosine decay
    # ends with the run unless a longer (paper-like) horizon is given.
    cfg["out"] = cfg["out"] or f"runs/{stage.NAME}"
    cfg["decay_steps"] = cfg["decay_steps"] or cfg["steps"]
    return SimpleNamespace(**cfg)


def usage(stage):
    """--help: the stage's first docstring line, then every setting with its default and meaning."""
    lines = [stage.__doc__.strip().splitlines()[0], "",
             f"usage: python {Path(stage.__file__).name} [--key=value ...]   (or: make {stage.MAKE_TARGET} KEY=value)",
             "", "settings (default, then meaning):"]
    for key, (value, text) in defaults(stage).items():
        lines.append(f"  --{key:<14} {str(value)!s:<14} {text}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Devices, processes, randomness
# ---------------------------------------------------------------------------------------------------------------

def pick_device(name="auto"):
    """cuda, then mps, then cpu; or the named device. Nothing else in the project names a device: every tensor is
    made on the device of the model or the data it meets, so one code path serves a laptop and a GPU node."""
    # A named device that is not there is one sentence now, not a CUDA error at the first tensor.
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError:
            raise TrainingError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps.") from None
        if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
            raise TrainingError(f"device {name} is not available here; use --device=auto or cpu.")
        if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise TrainingError("device mps is not available here; use --device=auto or cpu.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seeded(*parts):
    """A CPU generator seeded from a tuple such as (seed, step, rank): every draw of a step is reproducible."""
    g = torch.Generator()
    g.manual_seed(hash_seed(*parts))
    return g


def hash_seed(*parts):
    """A 63-bit seed from any tuple of parts. Python's own hash() of a str changes from run to run
    (PYTHONHASHSEED), which would break exact resumption, so FNV-1a over the parts' text is used instead."""
    h = 1469598103934665603                                     # FNV-1a over the parts: stable across runs
    for p in parts:
        for byte in str(p).encode() + b"|":
            h = ((h ^ byte) * 1099511628211) % (1 << 64)
    return h % (1 << 63)


# ---------------------------------------------------------------------------------------------------------------
# Learning rate and EMA
# ---------------------------------------------------------------------------------------------------------------

def lr_at(step, cfg):
    """Linear warm-up to the peak, then cosine decay to zero at decay_steps (Sec. 4.1). A run stopped by --minutes
    and resumed follows the same curve, because the curve is set by --steps, not by the time."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.decay_steps - cfg.warmup))
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def update_ema(ema_model, model, decay, step):
    """ema <- d ema + (1 - d) live, after every optimizer step (Sec. 4.1: the EMA weights are what is sampled).
    Averaging the last ~1 / (1 - d) steps' weights smooths out the noise of single small batches."""
    # [choice] The decay ramps up as (1 + step) / (10 + step) early on, so that short runs still get a useful average.
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema_model.parameters(), model.parameters()):
        e.lerp_(p.detach().to(e.dtype), 1 - d)


# ---------------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------------

def _log(rank, *args):
    """Print from process 0 only: N processes would print every line N times."""
    if rank == 0:
        print(*args, flush=True)


def train(stage, cfg):
    """Train `stage` with the parsed config `cfg`; under torchrun, the process group is torn down however it ends."""
    try:
        _train(stage, cfg)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def _train(stage, cfg):
    """The loop, top to bottom, as nanoGPT's train.py reads: set-up (processes, model, resume), the data stream,
    then each step: one optimisation step, the EMA, the log, a checkpoint, a preview."""
    # --- Set-up: who we are (rank, device), the model and its optimizer, and where a resumed run stands.
    run = _processes(cfg)                                       # world, rank, device, micro-batch, paths
    ctx, unet_cfg, model, ema_model, opt = _build(stage, cfg, run.device)
    start, resumed_config = checkpoint.resume(stage, cfg, run, unet_cfg, model, ema_model, opt)
    if start == 0 and cfg.init:                                 # a new run that carries on an earlier one's weights
        resumed_config = checkpoint.initialise(stage, cfg, run, unet_cfg, model, ema_model)
    if start >= cfg.steps:
        _log(run.rank, f"{run.ckpt_path} is already at step {start} of {cfg.steps}; nothing to do.")
        return
    ddp = torch.nn.parallel.DistributedDataParallel(model) if run.world > 1 else model
    # --- The data stream: endless batches that continue where a resumed run stopped, and the preview batch.
    loader, preview_batch = _data(stage, cfg, run, unet_cfg, start, resumed_config)
    _log(run.rank, f"training {stage.NAME} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters) on "
                   f"{run.world} x {run.device}; config:")
    for key, value in vars(cfg).items():
        _log(run.rank, f"  {key} = {value}")
    _prepare_folder(cfg, run, start)

    from tqdm import tqdm
    bar = tqdm(total=cfg.steps, initial=start, disable=run.rank != 0, dynamic_ncols=True, desc=stage.NAME)
    # bf16 autocast on a GPU covers the network only: the data preparation (spectrograms, resampling, blur), the
    # text encoder and the loss stay in float32.
    net = _autocast(ddp) if run.device.type == "cuda" else ddp
    batches = iter(loader)
    t0 = time.time()
    # --- The steps.
    for step in range(start, cfg.steps):
        total = _optimisation_step(stage, cfg, run, net, ddp, model, opt, batches, ctx, step)
        update_ema(ema_model, model, cfg.ema, step)             # what sampling and previews use
        done = step + 1
        bar.update(1)
        bar.set_postfix(loss=f"{total:.4f}", lr=f"{lr_at(step, cfg):.1e}")   # process 0's share of the batch
        if run.rank == 0 and (done % cfg.log_every == 0 or done == cfg.steps):
            _append_log(run.out / "log.jsonl", done, total, lr_at(step, cfg), time.time() - t0)
        # A time budget (a lent GPU, a cluster slot) ends the run at a step boundary; every process sees the same
        # decision, because process 0's clock is broadcast.
        out_of_time = bool(cfg.minutes) and _all_agree(time.time() - t0 > cfg.minutes * 60, run.world, run.device)
        if run.rank == 0 and (done % cfg.ckpt_every == 0 or done == cfg.steps or out_of_time):
            checkpoint.save_run(stage, cfg, run, unet_cfg, model, ema_model, opt, done, total)
        if run.rank == 0 and cfg.sample_every and (done % cfg.sample_every == 0 or done == cfg.steps):
            write_preview(stage, ema_model, preview_batch, ctx, run.out / "samples" / f"step{done:07d}")
        if out_of_time and done < cfg.steps:
            bar.close()
            _log(run.rank, f"stopped by --minutes={cfg.minutes:g} at step {done} of {cfg.steps}: {run.ckpt_path}; "
                           f"--resume=true continues it")
            return
    bar.close()
    _log(run.rank, f"done: {run.ckpt_path} at step {cfg.steps}")


def _append_log(path, step, loss, lr, seconds):
    """One line of <out>/log.jsonl: the loss (process 0's share of the batch), the learning rate, the time."""
    with open(path, "a") as f:
        f.write(json.dumps({"step": step, "loss": loss, "lr": lr, "seconds": round(seconds, 2)}) + "\n")


def _processes(cfg):
    """One process, or one of several under torchrun (DDP): its rank, device and share of each batch."""
    # torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; a plain `python stage.py` is a world of one.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = pick_device(cfg.device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    # batch_size is the global batch (Sec. 4.1's 2048): each process runs batch_size / world examples per step,
    # in `accum` micro-batches, so changing the number of GPUs does not change the optimisation.
    if cfg.batch_size % (world * cfg.accum):
        raise TrainingError(f"batch_size {cfg.batch_size} must divide evenly over {world} process(es) x "
                            f"{cfg.accum} accumulation step(s).")
    out = Path(cfg.out)
    return SimpleNamespace(world=world, rank=rank, device=device, micro=cfg.batch_size // (world * cfg.accum),
                           out=out, ckpt_path=out / "last.pt", prior_steps=0)


def _build(stage, cfg, device):
    """The text cache, the network (its initial weights from the seed), its EMA copy and the optimizer."""
    ctx = SimpleNamespace(cfg=cfg, device=device, text=None)
    text_dim = 0
    if stage.USES_TEXT:
        # Each caption is encoded once and kept: with a large T5, encoding on the fly would dominate a step.
        encoder = text_encoder.load_t5(cfg.t5 or text_encoder.DEMO_T5_DIR).to(device)
        ctx.text = text_encoder.TextEmbeddingCache(encoder, max_length=cfg.text_length)
        text_dim = encoder.dim
    unet_cfg = stage.model_config(cfg, text_dim)                # a UNetConfig, or a stage's own config dataclass
    torch.manual_seed(hash_seed(cfg.seed, "init"))              # the initial weights, too, come from the seed
    # Every cascade stage is a UNet1D; another model (mulan.py's joint embedding) names its own class.
    model = getattr(stage, "build_model", UNet1D)(unet_cfg).to(device)
    # The EMA copy starts equal to the network and is updated after every step (update_ema); sampling uses it.
    ema_model = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))       # Sec. 4.1
    return ctx, unet_cfg, model, ema_model, opt


def _data(stage, cfg, run, unet_cfg, start, resumed_config):
    """The endless training batches (continuing where a resumed run stopped), the fixed preview batch, and the
    stage's data statistics (measured now, or the recorded ones on resume)."""
    # The stage says at which rate it reads clips, how long its crops are and to what multiple they are cut
    # (a U-Net's total stride, or the mel hop), e.g. {"rate": 16000, "crop_range": (3.0, 4.0), "multiple": 160},
    # whether the loader adds each batch's log-mel ("mel": True, the spectrogram stages), and the generators' tape-
    # speed augmentation ("speed_shift", semitones; augment.py).
    spec = stage.data_spec(cfg, unet_cfg)
    # The corpus layout has train/ and test/; a plain folder of clips serves as both.
    train_dir = Path(cfg.data) / "train" if (Path(cfg.data) / "train").is_dir() else Path(cfg.data)
    test_dir = Path(cfg.data) / "test" if (Path(cfg.data) / "test").is_dir() else train_dir
    _calibrate(stage, cfg, spec, train_dir, resumed_config)
    # Each process reads its own share of every batch (data.ShardedSampler), decoded in `workers` processes.
    loader = data.step_loader(train_dir, spec["rate"], micro_batch=run.micro, accum=cfg.accum,
                              crop_range=spec.get("crop_range"), multiple=spec.get("multiple", 1), seed=cfg.seed,
                              start_step=start, rank=run.rank, world_size=run.world, num_workers=cfg.workers,
                              clips=cfg.clips, mel=spec.get("mel", False), speed_shift=spec.get("speed_shift", 0))
    preview_batch = data.fixed_batch(test_dir, spec["rate"], n=spec.get("preview_clips", 1),
                                     seconds=spec.get("preview_seconds"),
                                     multiple=spec.get("multiple", 1)) if cfg.sample_every else None
    return loader, preview_batch


def _prepare_folder(cfg, run, start):
    """<out>/config.json, and a resumed run's log cut back to its checkpoint's step."""
    run.out.mkdir(parents=True, exist_ok=True)
    if run.rank != 0:
        return
    # The resolved config beside the checkpoint, readable without torch (it is also inside every last.pt).
    text = json.dumps(vars(cfg), indent=2)
    audio_io.atomic_write(run.out / "config.json", lambda tmp: Path(tmp).write_text(text))
    # A run that was killed after its last checkpoint logged steps it will now train again: those lines go, so the
    # log of a resumed run reads like the log of an uninterrupted one (one line per step, in order).
    log = run.out / "log.jsonl"
    if start and log.exists():
        kept = [line for line in log.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= start]
        audio_io.atomic_write(log, lambda tmp: Path(tmp).write_text("".join(k + "\n" for k in kept)))


def _optimisation_step(stage, cfg, run, net, ddp, model, opt, batches, ctx, step):
    """One optimizer step over `accum` micro-batches (Sec. 4.1: Adam, warm-up + cosine LR, clipping); its loss."""
    # The learning rate is a function of the step alone (lr_at), so a resumed run continues the same schedule.
    for group in opt.param_groups:
        group["lr"] = lr_at(step, cfg)
    total = 0.0
    for m in range(cfg.accum):
        batch = next(batches)
        # Every random draw of this micro-batch (t, noise, text dropout, corruption) comes from this generator.
        ctx.generator = seeded(cfg.seed, step, run.rank, m)
        # DDP averages gradients over processes at the last micro-batch only.
        sync = ddp.no_sync() if (run.world > 1 and m < cfg.accum - 1) else contextlib.nullcontext()
        with sync:
            # The stage turns a batch into its loss (the stage files' `loss`); / accum makes the summed
            # gradients of the micro-batches the gradient of the mean over the whole batch.
            loss = stage.loss(net, batch, ctx) / cfg.accum
            loss.backward()
        total += loss.item()
    # A NaN or infinite loss makes the gradient non-finite; after DDP's all-reduce every process sees the same
    # norm, so all of them stop here together, before the weights or the checkpoint are touched.
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
    if not (math.isfinite(total) and torch.isfinite(norm)):
        raise TrainingError(f"the loss became {total:.4g} (gradient norm {norm.item():.4g}) at step {step}; "
                            f"stopped without saving, so {run.ckpt_path} still holds the last good state "
                            f"(try a lower --lr).")
    opt.step()
    opt.zero_grad(set_to_none=True)
    return total


# Enough audio for a stable RMS and per-bin mean and std (the README lists the measured values), little enough
# to read in seconds at the start of a run.
CALIBRATION_CLIPS, CALIBRATION_SECONDS = 32, 10.0      # ~5 minutes of training audio


def _calibrate(stage, cfg, spec, train_dir, resumed_config):
    """Data statistics a stage's diffusion needs (signal scales, spectrogram statistics), measured once on the first
    training clips when a run starts and kept in its config (so in every checkpoint); a resumed run reuses the
    recorded ones. A setting given on the command line is kept as given. [choice, issue 12]"""
    # MuLan has no data statistics; every cascade stage has (its form's scales, or the mel statistics).
    if not hasattr(stage, "calibrate"):
        return
    if resumed_config is not None:
        measured = {k: v for k, v in resumed_config.items() if k in stage.CALIBRATED}
        for key, value in measured.items():
            if getattr(cfg, key, None) and getattr(cfg, key) != value:
                raise TrainingError(f"this run was calibrated with {key}={value}, not {getattr(cfg, key)}; resume "
                                    f"without --{key} or start a new run with another --out.")
    else:
        # An overfit run (--clips) is calibrated on the clips it trains on.
        batch = data.fixed_batch(train_dir, spec["rate"], n=min(cfg.clips or CALIBRATION_CLIPS, CALIBRATION_CLIPS),
                                 seconds=CALIBRATION_SECONDS)
        measured = stage.calibrate(cfg, batch["audio"])
    for key, value in measured.items():
        if not getattr(cfg, key, None):                        # 0, empty or missing: take the measured value
            setattr(cfg, key, value)


def _all_agree(flag, world, device):
    # Without this, one process could stop while another waits forever in the next all-reduce.
    """Process 0's boolean, the same on every process (a no-op for one process)."""
    if world == 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.broadcast(value, src=0)
    return bool(value.item())


# bf16 keeps float32's exponent range, so unlike float16 it needs no loss scaling; the weights, the optimizer and
# the EMA stay in float32.
def _autocast(module, device_type="cuda"):
    """The network's forward under bf16 autocast, its output back in float32 for the loss: one tensor (a U-Net) or
    a tuple of them (mulan.py's two towers and temperature)."""
    def forward(*args, **kwargs):
        with torch.autocast(device_type, dtype=torch.bfloat16):
            out = module(*args, **kwargs)
        return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()
    return forward


@torch.no_grad()
def write_preview(stage, model, batch, ctx, stem):
    """Sample with the EMA weights; write <stem>.wav and <stem>.png (the conditioning above, the output below)."""
    model.eval()
    # The same seed at every preview: from one preview to the next only the weights change, so what a reader
    # hears change is what the stage learned.
    ctx.generator = seeded(ctx.cfg.seed, "preview")
    rows = stage.preview(model, batch, ctx)                  # [(audio or log-mel, rate or None)], output last
    audio, rate = rows[-1]
    if rate:                                                  # a spectrogram has no sound until the vocoder
        audio_io.write_wav(f"{stem}.wav", audio, rate)
    if hasattr(stage, "picture"):                             # a model whose preview is not audio (mulan.py)
        stage.picture(f"{stem}.png", rows)
    else:
        step = Path(stem).name.removeprefix("step").lstrip("0") or "0"
        panels = [(("output" if i == len(rows) - 1 else "input") + ": "
                   + (f"{r / 1000:g} kHz audio" if r else "log-mel"), a, r) for i, (a, r) in enumerate(rows)]
        audio_io.write_stage_picture(f"{stem}.png", panels, title=f"{stage.NAME}, EMA weights at step {step}")
    model.train()


def main(stage, argv=None):
    """Every stage file's entry point: `python stage2_cascader.py --steps=5000` is main(stage2_cascader.STAGE).
    Returns the exit status: 0, 2 with one sentence for a user's mistake, 130 when interrupted."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help", "help") for a in argv):
        print(usage(stage))
        return 0
    try:
        train(stage, parse_config(stage, argv))
    except (TrainingError, checkpoint.CheckpointError, data.DataError, text_encoder.TextEncoderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # Ctrl-C between checkpoints loses at most ckpt_every steps; last.pt was written atomically, so it is whole.
    except KeyboardInterrupt:
        print("\ninterrupted; resume with --resume=true (the last checkpoint is intact).", file=sys.stderr)
        return 130
    return 0


# `python train.py export RUN/last.pt checkpoints/NAME.pt` (make checkpoints): the only command of this file itself.
if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "export":
        try:
            checkpoint.export(sys.argv[2], sys.argv[3])
        except checkpoint.CheckpointError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
    else:
        asked = sys.argv[1:] in (["-h"], ["--help"])
        print("usage: python train.py export RUN/last.pt checkpoints/NAME.pt\n"
              "Training runs through a stage file, e.g. python stage2_cascader.py --help",
              file=sys.stdout if asked else sys.stderr)
        sys.exit(0 if asked else 2)
