"""A run on disk: the checkpoint format, reading one safely, exporting it for sampling, and the rules by which a
training run resumes from its own last.pt or starts from another run's weights (train.py's loop calls these).

Why this is its own file: every consumer of a trained stage (sample.py, evaluate.py, overfit.py, stagecheck.py,
mulan.py) needs to open a checkpoint and rebuild its model, and none of them needs the training loop.

What a checkpoint holds, and why:
- A plain dict of tensors, lists and numbers: the stage's name, its model config (a dataclass as a dict), the
  resolved training config (with the data statistics measured at the run's start), the step, the live weights, the
  EMA weights (what sampling uses, Sec. 4.1) and Adam's state. With these an interrupted run continues *exactly*:
  no random state is stored, because every draw of a step is a function of (seed, step, process, micro-batch)
  (train.seeded; tests/test_train.py checks a resumed run bit for bit against an uninterrupted one).
- Written to a temporary name and renamed, so a crash mid-write never leaves a truncated last.pt.
- Read with torch.load(weights_only=True): opening a checkpoint from elsewhere runs no code. Anything wrong (missing,
  truncated, another format, weights that do not fit) is one sentence naming the fix (CheckpointError).
- `python train.py export RUN/last.pt checkpoints/NAME.pt` (make checkpoints) keeps only the EMA weights in half
  precision: what the shipped checkpoints/ are.
"""

from dataclasses import asdict
from pathlib import Path

import torch

import audio_io
from unet1d import UNet1D, UNetConfig


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, not what the caller expects, or that a run may not continue; the
    command that meets it prints its one sentence instead of a traceback."""


# Every checkpoint carries this marker: load_checkpoint refuses a .pt file written by anything else.
FORMAT = "noise2music-checkpoint-1"


def save_checkpoint(path, payload):
    """torch.save to a temporary name in the same folder, then a rename: a crash mid-write never leaves a truncated
    last.pt in place of the good one."""
    audio_io.atomic_write(path, lambda tmp: torch.save(payload, tmp), suffix=".pt")


def load_checkpoint(path, make_target=None):
    """Read a checkpoint, or raise CheckpointError with one sentence saying what is wrong and how to fix it."""
    path = Path(path)
    how = f"run `make {make_target}` to train it" if make_target else "train or restore it"
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; {how}.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)   # plain tensors and dicts: no code runs
    except Exception:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt and cannot be read; {how} again.") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a noise2music checkpoint; {how}.")
    return ckpt


def model_from_checkpoint(ckpt, weights="ema", build=lambda c: UNet1D(UNetConfig(**c))):
    """Rebuild the model recorded in a checkpoint (a U-Net unless `build` says otherwise: config dict -> module) and
    load its EMA (default) or live weights, in float32."""
    model = build(ckpt["unet"])
    # An exported checkpoint (train.py export) keeps only the EMA weights, stored as "model" with "ema" None.
    state = ckpt.get(weights) or ckpt["model"]
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError:
        raise CheckpointError(f"the weights of stage {ckpt.get('stage')} do not fit its recorded model; "
                              "the checkpoint is damaged, retrain it.") from None
    return model.eval()


def export(src, dst):
    """Keep only the EMA weights, in half precision: what sample.py needs, at a quarter of the size."""
    ckpt = load_checkpoint(src)
    # The optimizer state (twice the weights) and the live weights are what a resumed run needs, not a sampler.
    slim = {k: ckpt[k] for k in ("format", "stage", "unet", "config", "step", "loss")}
    slim["prior_steps"] = ckpt.get("prior_steps", 0)            # steps of the runs it was initialised from
    slim["model"] = {k: v.half() for k, v in ckpt["ema"].items()}
    slim["ema"] = None
    save_checkpoint(dst, slim)
    print(f"wrote {dst} ({Path(dst).stat().st_size / 1e6:.1f} MB): EMA weights of {ckpt['stage']} at step "
          f"{ckpt['step']}")


# ---------------------------------------------------------------------------------------------------------------
# Resuming a run, or starting one from another run's weights
# ---------------------------------------------------------------------------------------------------------------

# An exact continuation needs the same data stream (seed, batch, crops, clips, corpus), the same loss (objective,
# schedule, weight, form, corruption, augmentation) and the same text: a resumed run refuses to change any of these.
RESUME_FIXED = ("seed", "batch_size", "accum", "world_size", "objective", "schedule", "weight", "text_length", "t5",
                "repr", "seconds", "crop_min", "crop_max", "data", "clips", "form", "t_max", "blur_prob", "blur_max",
                "envelope_band", "speed_shift", "whiten_loss")
# What a checkpoint written before a setting existed was trained with: the conditioned stages' paper form.
LEGACY = {"form": "paper", "clips": 0}


def save_run(stage, cfg, run, unet_cfg, model, ema_model, opt, step, loss):
    """<out>/last.pt: everything an exact continuation needs (weights, EMA, optimizer, config, step). No random
    state is stored: every draw of a step is a function of (seed, step, process, micro-batch), see train.seeded()."""
    save_checkpoint(run.ckpt_path, {
        "format": FORMAT, "stage": stage.NAME, "unet": asdict(unet_cfg), "config": vars(cfg),
        "step": step, "loss": loss, "model": model.state_dict(), "ema": ema_model.state_dict(),
        "optimizer": opt.state_dict(), "world_size": run.world, "prior_steps": run.prior_steps,
        "rng": {"scheme": "seeded(seed, step, rank, micro)", "seed": cfg.seed}})


def _same_model(ckpt, stage, unet_cfg):
    """Does the checkpoint hold this stage with this network? A config field added since it was written takes its
    default (the config dataclass's), so an older checkpoint of the same network still matches."""
    return ckpt["stage"] == stage.NAME and {**asdict(type(unet_cfg)()), **ckpt["unet"]} == asdict(unet_cfg)


def resume(stage, cfg, run, unet_cfg, model, ema_model, opt):
    """(start step, the recorded config or None): loads <out>/last.pt with --resume=true, after checking that the
    settings an exact continuation depends on have not changed."""
    # Never overwrite a run by accident: an existing last.pt is continued only when asked.
    if run.ckpt_path.exists() and not cfg.resume:
        raise CheckpointError(f"{run.ckpt_path} already exists; pass --resume=true to continue it, or choose another "
                              f"--out.")
    if not cfg.resume:
        return 0, None
    if not run.ckpt_path.exists():
        raise CheckpointError(f"--resume=true but {run.ckpt_path} does not exist; drop --resume to start a new run.")
    ckpt = load_checkpoint(run.ckpt_path)
    if not _same_model(ckpt, stage, unet_cfg):
        raise CheckpointError(f"{run.ckpt_path} holds a different stage or model size; use another --out.")
    # An exact continuation needs the same data stream and the same loss: these settings must not change.
    for key in RESUME_FIXED:
        if key not in ckpt["config"] and key not in LEGACY and key != "world_size":
            continue                     # the checkpoint predates this setting and LEGACY does not say what it was
        old = ckpt["config"].get(key, LEGACY.get(key)) if key != "world_size" else ckpt.get("world_size", 1)
        new = getattr(cfg, key, None) if key != "world_size" else run.world
        if old != new:
            raise CheckpointError(f"{run.ckpt_path} was trained with {key}={old}, not {new}; resume with the same "
                                  f"setting or start a new run with another --out.")
    # The live weights, the EMA and Adam's moments: with the step, all the state an exact continuation needs.
    model.load_state_dict(ckpt["model"])
    ema_model.load_state_dict(ckpt["ema"])
    opt.load_state_dict(ckpt["optimizer"])
    run.prior_steps = ckpt.get("prior_steps", 0)
    return ckpt["step"], ckpt["config"]


# What an initialising checkpoint and the new run must share: the same network must be asked the same question.
INIT_FIXED = ("repr", "form", "objective", "schedule", "text_length", "t5")


def initialise(stage, cfg, run, unet_cfg, model, ema_model):
    """--init=FILE: load FILE's EMA weights (the ones that sample best) into the network and its EMA copy; returns
    FILE's config, whose data statistics the run keeps (the weights were learned on that scale). The optimizer
    starts afresh, with its warm-up. [choice] A session on this project's machines keeps checkpoints/ but not
    runs/, so a long CPU run is continued from the shipped checkpoint, not from last.pt."""
    ckpt = load_checkpoint(cfg.init)
    if not _same_model(ckpt, stage, unet_cfg):
        raise CheckpointError(f"{cfg.init} holds a different stage or model size than this run; --init needs a "
                              f"checkpoint of {stage.NAME} with --preset={cfg.preset}.")
    for key in (k for k in INIT_FIXED if hasattr(cfg, k)):            # MuLan has no repr or form, say
        old, new = ckpt["config"].get(key, LEGACY.get(key)), getattr(cfg, key)
        if old != new:
            raise CheckpointError(f"{cfg.init} was trained with {key}={old}, not {new}; pass --{key}={old}.")
    weights = {k: v.float() for k, v in (ckpt.get("ema") or ckpt["model"]).items()}
    model.load_state_dict(weights)
    ema_model.load_state_dict(weights)
    run.prior_steps = ckpt.get("prior_steps", 0) + ckpt["step"]       # steps behind these weights, for the record
    if run.rank == 0:                                               # one line, not one per process
        print(f"initialised from {cfg.init}: {run.prior_steps} earlier steps", flush=True)
    return ckpt["config"]
