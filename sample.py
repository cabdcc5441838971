"""Text in, music out: chain the trained stages into ~30 s of 24 kHz audio (Sec. 1, 3.3; PAPER_NOTES §1).

    waveform route (default)   text --T5--> generator (3.2 kHz) --> cascader (16 kHz) --> super-resolution (24 kHz)
    spectrogram route          text --T5--> spectrogram generator (log-mel) --> vocoder (16 kHz) --> super-res (24 kHz)

    make sample PROMPT="a slow baroque chorale on a church organ"
    python sample.py --prompt "..." [--route wave|spec] [--seconds 30] [--seed 0] [--n 1] [--out FILE.wav] ...

Writes a 24 kHz mono 16-bit WAV (default samples/<prompt-slug>.wav) and beside it each stage's own output
(<name>.3200hz.wav and <name>.16000hz.wav, or <name>.mel.png on the spectrogram route) and <name>.png, every
stage's spectrogram stacked top to bottom on one frequency axis (0-12 kHz), so a reader sees what each stage adds.

One seed drives every random draw of every stage (one torch.Generator threaded through), so the same seed gives
the same file bit for bit on the same machine. Checkpoints are looked up in checkpoints/ (the shipped demo ones),
or in the folder given by --checkpoints, named after the stage: waveform-generator.pt, waveform-cascader.pt,
superres.pt, spectrogram-generator.pt, vocoder.pt. A training run's <out>/last.pt can be exported there with
`python train.py export`.
"""

import argparse
import re
import sys
import time
from pathlib import Path

import torch

import audio_io
import data
import stage1_generator
import stage2_cascader
import stage3_superres
import text_encoder
import train
import vocoder

OUT_RATE = 24000
MAX_SECONDS = 600.0     # 10 minutes: beyond that a CPU run takes hours and the generator never saw such lengths

# Stage name (also its checkpoint's file name) -> the make target that trains it.
CHECKPOINTS = {
    "waveform-generator": "train-generator", "waveform-cascader": "train-cascader", "superres": "train-superres",
    "spectrogram-generator": "train-spec-generator", "vocoder": "train-vocoder",
}
ROUTES = {"wave": ("waveform-generator", "waveform-cascader", "superres"),
          "spec": ("spectrogram-generator", "vocoder", "superres")}

# Sampling defaults per stage: Table 3's schedules, gammas and guidance scales, with far fewer steps than the
# paper's 100-1000 so that 30 s of music takes under a minute on a 2-core CPU (bench.py measures it).
# cond_noise is the level u to which a cascader's conditioning is noised before sampling (§13: the paper does not
# say; CDM / Imagen noise it a little, which hides the earlier stage's own artefacts). [choice] 0.02 on the linear
# schedule: noise of std 0.077 on the unit-variance conditioning of the residual and scaled forms (stage files).
DEFAULTS = {
    "waveform-generator": dict(steps=30, step_kind="front", gamma=0.0, guidance=10.0),
    # [choice] gamma 0, not Table 3's 1: at 12 steps gamma = 1 puts the added 1.6-8 kHz band 5.5 dB further from
    # the real one (log-spectral distance 24.2 against 18.7 dB; `python bench.py --only settings`, README).
    "waveform-cascader": dict(steps=12, step_kind="front", gamma=0.0, guidance=5.0, cond_noise=0.02),
    "spectrogram-generator": dict(steps=30, step_kind="back-eval", gamma=0.0, guidance=5.0),
    "vocoder": dict(steps=12, step_kind="front", gamma=0.0, guidance=None, cond_noise=0.02),
    "superres": dict(steps=12, step_kind="front", gamma=0.0, guidance=None, cond_noise=0.02),
}
CLIP = 0.995            # dynamic clipping percentile of x0 (§3.5; the paper gives none, this is diffusers' default)
SHORT = {"waveform-generator": "generator", "waveform-cascader": "cascader", "spectrogram-generator": "spec-generator",
         "vocoder": "vocoder", "superres": "superres"}


class SampleError(ValueError):
    """A problem with the request; printed as one sentence."""


def slug(prompt):
    s = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:60].strip("-")
    return s or "unconditional"


def check_request(prompt, seconds, route, n, settings):
    if route not in ROUTES:
        raise SampleError(f"unknown route {route!r}; use wave (generator -> cascader -> super-resolution) or spec.")
    if not (seconds >= 0.1):
        raise SampleError(f"length must be at least 0.1 seconds, got {seconds}.")
    if seconds > MAX_SECONDS:
        raise SampleError(f"{seconds} s is beyond the {MAX_SECONDS / 60:.0f}-minute limit; ask for a shorter clip.")
    if not 1 <= n <= 64:
        raise SampleError(f"N (variations per prompt) must be between 1 and 64, got {n}.")
    for name in ROUTES[route]:
        s = settings[name]
        least = 0 if name == "superres" else 1              # superres 0 steps: plain resampling, no model
        if not isinstance(s["steps"], int) or s["steps"] < least:
            kind = "whole number, 0 or more" if least == 0 else "positive whole number"
            raise SampleError(f"steps for the {SHORT[name]} must be a {kind}, got {s['steps']}.")
        kinds = ("front", "uniform", "back") + (("back-eval",) if name == "spectrogram-generator" else ())
        if s["step_kind"] not in kinds:
            raise SampleError(f"unknown step schedule {s['step_kind']!r} for the {SHORT[name]}; use "
                              f"{', '.join(kinds)}.")
        if not 0.0 <= s.get("cond_noise", 0.0) <= 1.0:
            raise SampleError(f"the conditioning noise level for the {SHORT[name]} must lie in [0, 1].")
        if not 0.0 <= s["gamma"] <= 1.0:
            raise SampleError(f"gamma for the {SHORT[name]} must lie in [0, 1], got {s['gamma']}.")


def load_stage(folder, name, device):
    """(model, training config) of one stage, or one clear sentence naming the make target that creates it."""
    ckpt = train.load_checkpoint(Path(folder) / f"{name}.pt", CHECKPOINTS[name])
    if ckpt["stage"] != name:
        raise SampleError(f"{Path(folder) / (name + '.pt')} holds the {ckpt['stage']} stage, not {name}.")
    return train.model_from_checkpoint(ckpt).to(device), ckpt["config"]


def run(prompt, *, route="wave", seconds=30.0, n=1, seed=0, settings=None, checkpoints="checkpoints",
        device="auto", clip=CLIP, progress=True, log=print):
    """The whole cascade. Returns {"audio": (n, T) at 24 kHz, "stages": [(name, output, rate or None)],
    "timings": {stage: (seconds, steps, peak MB)}, "prompt": prompt}.
    Raises SampleError or train.CheckpointError on bad input."""
    settings = resolve_settings(settings)
    check_request(prompt, seconds, route, n, settings)
    dev = train.pick_device(device)
    gen = torch.Generator().manual_seed(seed)
    names = ROUTES[route]
    # Super-resolution with 0 steps is no model at all: FFT resampling to 24 kHz. It is the bar the trained stage
    # must clear (the band above 8 kHz stays empty), and a way to hear the earlier stages on their own.
    plain_sr = settings["superres"]["steps"] == 0
    models = {name: load_stage(checkpoints, name, dev) for name in names if not (plain_sr and name == "superres")}
    timings, stages = {}, []

    # Text: the generator's T5 (the one it was trained with), encoded once; an empty prompt means no text.
    model, cfg = models[names[0]]
    text_emb = text_mask = None
    if prompt.strip():
        t5 = text_encoder.load_t5(cfg.get("t5") or text_encoder.DEMO_T5_DIR).to(dev)
        if t5.dim != model.config.text_dim:
            raise SampleError(f"the {SHORT[names[0]]} was trained with a {model.config.text_dim}-wide text encoder but "
                              f"{cfg.get('t5') or 'the demo encoder'} is {t5.dim} wide; point t5 at the right one.")
        text_emb, text_mask = t5.encode([prompt] * n, max_length=cfg["text_length"])
    else:
        log("the prompt is empty: generating without text (unconditional).")
    if route == "wave":
        # The cascader reads the same token sequence, so it must have been trained with the same encoder.
        casc_model, casc_cfg = models[names[1]]
        if (casc_model.config.text_dim, casc_cfg.get("t5"), casc_cfg["text_length"]) != \
                (model.config.text_dim, cfg.get("t5"), cfg["text_length"]):
            raise SampleError("the generator and the cascader were trained with different text encoders or "
                              "lengths; retrain one of them with the other's t5 and text_length.")

    def timed(name, fn):
        s = settings[name]
        log(f"{SHORT[name]}: {s['steps']} steps ({s['step_kind']}, gamma {s['gamma']}"
            + (f", guidance {s['guidance']}" if s.get("guidance") is not None else "") + ")")
        reset_peak_memory()
        start = time.perf_counter()
        out = fn(s, models[name][1])
        timings[name] = (time.perf_counter() - start, s["steps"], peak_memory_mb())
        log(f"  {timings[name][0]:.1f} s, peak memory {timings[name][2]:.0f} MB")
        return out

    # `clip` is the generators' dynamic clipping; the conditioned stages clip by their form (none for the residual
    # and scaled forms, whose signals have unit variance, not a [-1, 1] range; 0.995 for the paper's form).
    cascade = dict(generator=gen, progress=progress)
    common = dict(cascade, clip=clip)
    if route == "wave":
        low = timed(names[0], lambda s, c: stage1_generator.generate(
            models[names[0]][0], text_emb, text_mask, repr="wave", seconds=seconds, batch=n, steps=s["steps"],
            step_kind=s["step_kind"], gamma=s["gamma"], guidance=s["guidance"], schedule=c["schedule"],
            objective=c["objective"], **common))
        stages.append((names[0], low, stage1_generator.WAVE_RATE))
        mid = timed(names[1], lambda s, c: stage2_cascader.generate(
            models[names[1]][0], low, text_emb, text_mask, config=c, steps=s["steps"], step_kind=s["step_kind"],
            gamma=s["gamma"], guidance=s["guidance"], cond_noise=s["cond_noise"], **cascade))
    else:
        mel = timed(names[0], lambda s, c: stage1_generator.generate(
            models[names[0]][0], text_emb, text_mask, repr="spec", seconds=seconds, batch=n, steps=s["steps"],
            step_kind=s["step_kind"], gamma=s["gamma"], guidance=s["guidance"], schedule=c["schedule"],
            objective=c["objective"], **common))
        stages.append((names[0], mel, None))
        mid = timed(names[1], lambda s, c: vocoder.generate(
            models[names[1]][0], mel, config=c, steps=s["steps"], step_kind=s["step_kind"], gamma=s["gamma"],
            cond_noise=s["cond_noise"], **cascade))
    stages.append((names[1], mid, stage2_cascader.RATE))
    if plain_sr:
        log("superres: none (0 steps: FFT resampling to 24 kHz)")
        high = data.resample(mid, stage3_superres.LOW_RATE, OUT_RATE)
    else:
        high = timed(names[2], lambda s, c: stage3_superres.generate(
            models[names[2]][0], mid, config=c, steps=s["steps"], step_kind=s["step_kind"], gamma=s["gamma"],
            cond_noise=s["cond_noise"], **cascade))
    length = round(seconds * OUT_RATE)                       # rounding in the stages may leave a sample over/under
    high = torch.nn.functional.pad(high, (0, max(0, length - high.shape[1])))[:, :length]
    stages.append((names[2], high, OUT_RATE))
    return {"audio": high.cpu(), "stages": stages, "timings": timings, "prompt": prompt}


def reset_peak_memory():
    """Linux: restart the process's peak-RSS counter, so that each stage's peak can be read on its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass                                                   # elsewhere the peak is the whole run's


def peak_memory_mb():
    """Peak resident memory (MB) since the last reset (Linux), or of the whole process (other systems)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def resolve_settings(overrides=None):
    settings = {name: dict(values) for name, values in DEFAULTS.items()}
    for name, values in (overrides or {}).items():
        settings[name].update({k: v for k, v in values.items() if v is not None})
    return settings


def write_outputs(result, out_path, route):
    """<out>.wav (24 kHz), each intermediate stage, and the stacked picture; variations get -1, -2, ... suffixes."""
    out_path = Path(out_path)
    n = result["audio"].shape[0]
    written = []
    for i in range(n):
        stem = out_path.with_suffix("") if n == 1 else out_path.with_name(f"{out_path.stem}-{i + 1}")
        panels = []
        for name, signal, rate in result["stages"]:
            label = (name.replace("-", " ").replace("superres", "super-resolution") + ": "
                     + (f"{rate / 1000:g} kHz audio" if rate else "80-bin log-mel, 100 frames/s"))
            panels.append((label, signal[i], rate))
            if rate is None:                                               # the spectrogram route's log-mel
                audio_io.write_stage_picture(f"{stem}.mel.png", [panels[-1]])
            elif rate != OUT_RATE:
                audio_io.write_wav(f"{stem}.{rate}hz.wav", signal[i], rate)
        audio_io.write_stage_picture(f"{stem}.png", panels, title=result.get("prompt"))
        audio_io.write_wav(f"{stem}.wav", result["audio"][i], OUT_RATE)   # last: its presence means "all done"
        written.append(f"{stem}.wav")
    return written


def check_writable(out_path):
    folder = Path(out_path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{time.time_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise SampleError(f"cannot write to {folder} ({err.strerror}); choose another OUT= folder.") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message):                               # one sentence instead of argparse's usage dump
        print(f"error: {message}; run `python sample.py --help` for the settings.", file=sys.stderr)
        sys.exit(2)


def parse_args(argv):
    p = _Parser(description="Generate music from text with the Noise2Music cascade.", allow_abbrev=False,
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--prompt", default="", help="what the music should be; empty = unconditional")
    p.add_argument("--route", default="wave", help="wave (generator, cascader, super-res) or spec (spectrogram "
                   "generator, vocoder, super-res)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the output")
    p.add_argument("--n", type=int, default=1, help="variations of the prompt, generated as one batch")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same file")
    p.add_argument("--out", default="", help="output WAV (default samples/<prompt-slug>.wav)")
    p.add_argument("--checkpoints", default="checkpoints", help="folder holding <stage>.pt files")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--clip", type=float, default=CLIP,
                   help="dynamic clipping percentile of the generator's x0 (Sec. 3.1)")
    for name, short in SHORT.items():
        d = DEFAULTS[name]
        p.add_argument(f"--steps-{short}", type=int, default=None, help=f"sampling steps (default {d['steps']})"
                       + ("; 0 = no model, FFT resampling to 24 kHz" if name == "superres" else ""))
        p.add_argument(f"--schedule-{short}", default=None, help="step schedule front/uniform/back"
                       + ("/back-eval" if name == "spectrogram-generator" else "") + f" (default {d['step_kind']}, "
                       "Table 3)")
        p.add_argument(f"--gamma-{short}", type=float, default=None, help=f"stochasticity in [0, 1] "
                       f"(default {d['gamma']}, Table 3)")
        if d["guidance"] is not None:
            p.add_argument(f"--guidance-{short}", type=float, default=None, help=f"classifier-free guidance "
                           f"scale (default {d['guidance']}, Table 3)")
        if "cond_noise" in d:
            p.add_argument(f"--cond-noise-{short}", type=float, default=None, help=f"noise level u of the "
                           f"conditioning at sampling (default {d['cond_noise']})")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    overrides = {}
    for name, short in SHORT.items():
        key = short.replace("-", "_")
        overrides[name] = {"steps": getattr(args, f"steps_{key}"), "step_kind": getattr(args, f"schedule_{key}"),
                           "gamma": getattr(args, f"gamma_{key}"), "guidance": getattr(args, f"guidance_{key}", None),
                           "cond_noise": getattr(args, f"cond_noise_{key}", None)}
    out = Path(args.out or f"samples/{slug(args.prompt)}.wav")
    if out.suffix.lower() != ".wav":
        out = out.with_suffix(".wav")
    try:
        check_request(args.prompt, args.seconds, args.route, args.n, resolve_settings(overrides))
        check_writable(out)
        print(f"prompt: {args.prompt!r} | route {args.route} | {args.seconds:g} s | seed {args.seed} | n {args.n}")
        start = time.perf_counter()
        if not 0.5 < args.clip <= 1.0:
            raise SampleError(f"--clip is a percentile in (0.5, 1], got {args.clip}.")
        result = run(args.prompt, route=args.route, seconds=args.seconds, n=args.n, seed=args.seed,
                     settings=overrides, checkpoints=args.checkpoints, device=args.device, clip=args.clip,
                     progress=not args.quiet)
        for path in write_outputs(result, out, args.route):
            print(f"wrote {path}")
        print(f"total {time.perf_counter() - start:.1f} s")
    except (SampleError, train.TrainingError, text_encoder.TextEncoderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; nothing half-written was left behind.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
