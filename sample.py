"""Text in, music out: chain the trained stages into ~30 s of 24 kHz audio (Sec. 1, 3.3; PAPER_NOTES §1).

    waveform route              text --T5--> generator (3.2 kHz) --> cascader (16 kHz) --> super-resolution (24 kHz)
    spectrogram route (default) text --T5--> spectrogram generator (log-mel) --> vocoder (16 kHz) --> super-res (24 kHz)
                                (the vocoder is Griffin-Lim, no model, by default: DEFAULTS says why)

    make sample PROMPT="a slow baroque chorale on a church organ"
    python sample.py --prompt "..." [--route wave|spec] [--seconds 30] [--seed 0] [--n 1] [--out FILE.wav] ...

Writes a 24 kHz mono 16-bit WAV (default samples/<prompt-slug>.wav) and beside it each stage's own output
(<name>.3200hz.wav and <name>.16000hz.wav, or <name>.mel.png on the spectrogram route) and <name>.png, every
stage's spectrogram stacked top to bottom on one frequency axis (0-12 kHz), so a reader sees what each stage adds.

Shapes through the cascade, for n variations of s seconds:

    prompt --T5--> tokens (n, L, D) and mask (n, L)                   L = 64 (waveform route) or 96 (spectrogram)
    waveform route:     generator -> (n, 3200 s)   cascader -> (n, 16000 s)   super-resolution -> (n, 24000 s)
    spectrogram route:  generator -> (n, 80, 100 s) log-mel in [-1, 1]   vocoder -> (n, 16000 s)   -> (n, 24000 s)

Each stage's sampler settings (steps, step schedule, gamma, guidance, conditioning noise, and the generators'
sampler: eq. 4's ancestral one or DDIM) are its own defaults, SAMPLING beside its generate(); a flag such as
--steps-cascader 20 overrides one for this run only.

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
import checkpoint
import data
import diffusion
import perf
import stage1_generator
import stage2_cascader
import stage3_superres
import text_encoder
import train
import vocoder

OUT_RATE = 24000        # Sec. 3.3.3: the super-resolution cascader's rate, the cascade's output
MAX_SECONDS = 600.0     # 10 minutes: beyond that a CPU run takes hours and the generator never saw such lengths

# Stage name (also its checkpoint's file name) -> the make target that trains it.
CHECKPOINTS = {
    "waveform-generator": "train-generator", "waveform-cascader": "train-cascader", "superres": "train-superres",
    "spectrogram-generator": "train-spec-generator", "vocoder": "train-vocoder",
}
# The two routes of Fig. 1 (Sec. 3.3): the same last stage, two ways to reach 16 kHz. The paper found the
# waveform route better at scale.
ROUTES = {"wave": ("waveform-generator", "waveform-cascader", "superres"),
          "spec": ("spectrogram-generator", "vocoder", "superres")}
# [choice, issue 13] The default route is chosen by measurement, not by the paper's finding at scale: on 16 held-out
# prompts (make eval) the spectrogram route's 30 s outputs have median flatness 0.149 and persistence 0.656, MuLan
# audio-text similarity 0.647 and the instrument right for 81%; the waveform route's 0.372, 0.471, 0.371 and 31%
# (stationary noise ~0.56 and ~0; real clips 0.058, 0.844, 0.665, 75%). --route wave is one flag away.
DEFAULT_ROUTE = "spec"

# Each stage's sampling defaults live in its own file (SAMPLING, beside its generate(), with the measured reason
# wherever they differ from Table 3); this table gathers them for --help and for checking a request, with one
# route-level choice below (which vocoder the spectrogram route runs). They use far fewer steps than the paper's
# 100-1000, so that 30 s of music takes under a minute on a 2-core CPU (bench.py).
DEFAULTS = {
    "waveform-generator": stage1_generator.SAMPLING["wave"], "waveform-cascader": stage2_cascader.SAMPLING,
    "spectrogram-generator": stage1_generator.SAMPLING["spec"], "vocoder": vocoder.SAMPLING,
    "superres": stage3_superres.SAMPLING,
}
# [choice, issues 12-13] The spectrogram route vocodes with Griffin-Lim (0 steps, NO_MODEL below; the fast form,
# vocoder.GRIFFIN_LIM_MOMENTUM says why) until a trained vocoder beats it. On held-out real mels (make check-stages)
# the shipped diffusion vocoder's output is 7 times further from the real clip than Griffin-Lim's (log-mel distance
# 0.195 against 0.026) and reads as noise (flatness 0.42, persistence 0.39; Griffin-Lim 0.074, 0.808, real 0.076,
# 0.820): it would turn music from the spectrogram generator into noise. --steps-vocoder 12 runs it, as Fig. 1 does.
DEFAULTS["vocoder"] = {**DEFAULTS["vocoder"], "steps": 0}
# Two stages have an answer without a model, which 0 steps asks for: plain FFT resampling instead of super-resolution
# (the band above 8 kHz stays empty), and Griffin-Lim instead of the vocoder (vocoder.griffin_lim). Each is the bar
# its trained stage must clear (make check-stages), and a way to hear the stages before it alone.
NO_MODEL = {"superres": "FFT resampling to 24 kHz", "vocoder": "Griffin-Lim from the log-mel"}
# The short names of the command-line flags (--steps-cascader, ...) and of the log lines.
SHORT = {"waveform-generator": "generator", "waveform-cascader": "cascader", "spectrogram-generator": "spec-generator",
         "vocoder": "vocoder", "superres": "superres"}


class SampleError(ValueError):
    """A problem with the request; printed as one sentence."""


def slug(prompt):
    """The prompt as a file name: lower-case words joined by '-', at most 60 characters."""
    s = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:60].strip("-")
    return s or "unconditional"


def check_request(prompt, seconds, route, n, settings):
    """Every setting of a request, checked before a checkpoint is loaded: a bad one is one sentence naming the
    setting and its range, never a traceback from deep inside a stage minutes later."""
    if route not in ROUTES:
        raise SampleError(f"unknown route {route!r}; use wave (generator -> cascader -> super-resolution) or spec.")
    # `not (x >= 0.1)` also catches NaN.
    if not (seconds >= 0.1):
        raise SampleError(f"length must be at least 0.1 seconds, got {seconds}.")
    if seconds > MAX_SECONDS:
        raise SampleError(f"{seconds} s is beyond the {MAX_SECONDS / 60:.0f}-minute limit; ask for a shorter clip.")
    # The n variations are one batch through every stage, so memory grows with n.
    if not 1 <= n <= 64:
        raise SampleError(f"N (variations per prompt) must be between 1 and 64, got {n}.")
    for name in ROUTES[route]:
        s = settings[name]
        least = 0 if name in NO_MODEL else 1                # 0 steps: the stage's no-model answer
        # steps is the number of network calls; with guidance each call runs a doubled batch (with and without
        # the text, diffusion.classifier_free_guidance).
        if not isinstance(s["steps"], int) or s["steps"] < least:
            kind = "whole number, 0 or more" if least == 0 else "positive whole number"
            raise SampleError(f"steps for the {SHORT[name]} must be a {kind}, got {s['steps']}.")
        # Table 7's step-size lists: front- or back-heavy, or uniform; "back-eval" is the spectrogram generator's
        # evaluation list (diffusion.step_schedule).
        kinds = ("front", "uniform", "back") + (("back-eval",) if name == "spectrogram-generator" else ())
        if s["step_kind"] not in kinds:
            raise SampleError(f"unknown step schedule {s['step_kind']!r} for the {SHORT[name]}; use "
                              f"{', '.join(kinds)}.")
        if not 0.0 <= s.get("cond_noise", 0.0) <= 1.0:
            raise SampleError(f"the conditioning noise level for the {SHORT[name]} must lie in [0, 1].")
        # gamma interpolates the sampler's variance between the posterior's (0) and the forward process's (1).
        if not 0.0 <= s["gamma"] <= 1.0:
            raise SampleError(f"gamma for the {SHORT[name]} must lie in [0, 1], got {s['gamma']}.")
        # Classifier-free guidance: 1 is the conditional model alone, 0 the unconditional one (Sec. 3.1).
        if s.get("guidance") is not None and not s["guidance"] >= 0:
            raise SampleError(f"guidance for the {SHORT[name]} must be 0 or more, got {s['guidance']}.")
        if s.get("sampler", "ancestral") not in diffusion.SAMPLERS:
            raise SampleError(f"unknown sampler {s['sampler']!r} for the {SHORT[name]}; use "
                              f"{' or '.join(diffusion.SAMPLERS)}.")


def load_stage(folder, name, device):
    """(model, training config) of one stage, or one clear sentence naming the make target that creates it.
    The model carries its EMA weights (what the training loop samples with, Sec. 4.1) in float32; the config is
    the training run's, which holds what sampling must match: the schedule, the objective, the form and the
    data statistics of the stage."""
    ckpt = checkpoint.load_checkpoint(Path(folder) / f"{name}.pt", CHECKPOINTS[name])
    if ckpt["stage"] != name:
        raise SampleError(f"{Path(folder) / (name + '.pt')} holds the {ckpt['stage']} stage, not {name}.")
    return checkpoint.model_from_checkpoint(ckpt).to(device), ckpt["config"]


def run(prompt, *, route=DEFAULT_ROUTE, seconds=30.0, n=1, seed=0, settings=None, checkpoints="checkpoints",
        device="auto", clip=None, progress=True, log=print):
    """The whole cascade, top to bottom: check the request, load the stages, encode the text, run the three
    stages in turn. Returns {"audio": (n, T) at 24 kHz, "stages": [(name, output, rate or None)],
    "timings": {stage: (seconds, steps, peak MB)}, "prompt": prompt}.

    settings: {stage: {setting: value}} for what the user set (None = the stage's own default, SAMPLING in its
    file); clip: the generators' dynamic clipping percentile in the paper's form (None = stage1_generator.CLIP).
    Raises SampleError or checkpoint.CheckpointError on bad input, before any stage runs."""
    # 1. The request. `given` is only what the user set: each stage file keeps its own defaults, so an edit there
    #    is heard here. `settings` is the effective set, for the checks and the log.
    given = {name: {k: v for k, v in (settings or {}).get(name, {}).items() if v is not None} for name in DEFAULTS}
    settings = resolve_settings(given)
    check_request(prompt, seconds, route, n, settings)
    dev = train.pick_device(device)
    gen = torch.Generator().manual_seed(seed)               # ONE generator for every draw of every stage
    names = ROUTES[route]                                    # (first stage, 16 kHz stage, super-resolution)

    # 2. The stages; one asked for 0 steps is its no-model answer (NO_MODEL) and needs no checkpoint.
    bare = {name for name in names if name in NO_MODEL and settings[name]["steps"] == 0}
    models = {name: load_stage(checkpoints, name, dev) for name in names if name not in bare}

    # 3. The text, encoded once by the T5 the generator was trained with: (n, L, D) tokens and their (n, L) mask.
    text_emb, text_mask = encode_prompt(prompt, n, models, names, dev, log)
    timings = {}

    def timed(name, fn):
        """Run one stage with the user's settings for it; log its settings, time and peak memory."""
        s = settings[name]
        log(f"{SHORT[name]}: {s['steps']} steps ({s['step_kind']}, "
            + ("DDIM" if s.get("sampler") == "ddim" else f"gamma {s['gamma']}")
            + (f", guidance {s['guidance']}" if s.get("guidance") is not None else "") + ")")
        perf.reset_peak_memory()                             # peak memory per stage (Linux), as bench.py reports it
        start = time.perf_counter()
        out = fn(models[name][0], models[name][1], dict(given[name], generator=gen, progress=progress))
        timings[name] = (time.perf_counter() - start, s["steps"], perf.peak_memory_mb())
        log(f"  {timings[name][0]:.1f} s, peak memory {timings[name][2]:.0f} MB")
        return out

    # 4. The cascade (Fig. 1): text -> 3.2 kHz audio or a log-mel -> 16 kHz audio -> 24 kHz audio.
    first = dict(seconds=seconds, batch=n, **({"clip": clip} if clip is not None else {}))
    sketch = timed(names[0], lambda model, c, s: stage1_generator.generate(model, text_emb, text_mask, config=c,
                                                                            **first, **s))  # (n, T/7.5) or (n, 80, F)
    if names[1] in bare:                                     # Griffin-Lim (NO_MODEL)
        mid = no_model(names[1], sketch, gen, log)                                             # (n, 16000 s)
    elif route == "wave":
        mid = timed(names[1], lambda model, c, s: stage2_cascader.generate(model, sketch, text_emb, text_mask,
                                                                            config=c, **s))  # (n, 16000 s)
    else:
        mid = timed(names[1], lambda model, c, s: vocoder.generate(model, sketch, config=c, **s))  # (n, 16000 s)
    high = no_model(names[2], mid, gen, log) if names[2] in bare else \
        timed(names[2], lambda model, c, s: stage3_superres.generate(model, mid, config=c, **s))    # (n, 24000 s)
    # Rounding inside the stages may leave the output a sample long or short of the request: (n, 24000 s).
    length = round(seconds * OUT_RATE)
    high = torch.nn.functional.pad(high, (0, max(0, length - high.shape[1])))[:, :length]
    stages = [(names[0], sketch, stage1_generator.WAVE_RATE if route == "wave" else None),
              (names[1], mid, stage2_cascader.RATE), (names[2], high, OUT_RATE)]
    return {"audio": high.cpu(), "stages": stages, "timings": timings, "prompt": prompt}


def no_model(name, signal, generator, log=print):
    """A stage asked for 0 steps gives its answer without a model (NO_MODEL): the vocoder's (n, 80, F) log-mel ->
    Griffin-Lim's (n, 160 F) 16 kHz audio; super-resolution's (n, T) 16 kHz audio -> (n, 1.5 T) FFT-resampled."""
    start = time.perf_counter()
    out = vocoder.griffin_lim(signal, generator=generator) if name == "vocoder" else \
        data.resample(signal, stage3_superres.LOW_RATE, OUT_RATE)
    log(f"{SHORT[name]}: none (0 steps: {NO_MODEL[name]}), {time.perf_counter() - start:.1f} s")
    return out


def encode_prompt(prompt, n, models, names, device, log=print):
    """(text_emb (n, L, D), text_mask (n, L)) from the T5 the generator was trained with, or (None, None) for an
    empty prompt (unconditional). On the waveform route the cascader reads the same tokens, so it must have been
    trained with the same encoder and length; a mismatch is one clear sentence, not a shape error later."""
    model, cfg = models[names[0]]
    if not prompt.strip():
        log("the prompt is empty: generating without text (unconditional).")
        return None, None
    t5 = text_encoder.load_t5(cfg.get("t5") or text_encoder.DEMO_T5_DIR).to(device)
    if t5.dim != model.config.text_dim:
        raise SampleError(f"the {SHORT[names[0]]} was trained with a {model.config.text_dim}-wide text encoder but "
                          f"{cfg.get('t5') or 'the demo encoder'} is {t5.dim} wide; point t5 at the right one.")
    if names[1] == "waveform-cascader":
        casc_model, casc_cfg = models[names[1]]
        if (casc_model.config.text_dim, casc_cfg.get("t5"), casc_cfg["text_length"]) != \
                (model.config.text_dim, cfg.get("t5"), cfg["text_length"]):
            raise SampleError("the generator and the cascader were trained with different text encoders or "
                              "lengths; retrain one of them with the other's t5 and text_length.")
    return t5.encode([prompt] * n, max_length=cfg["text_length"])


def resolve_settings(overrides=None):
    """{stage: effective sampler settings}: each stage's defaults with the user's settings (not None) over them."""
    return {name: diffusion.settings(d, **(overrides or {}).get(name, {})) for name, d in DEFAULTS.items()}


def write_outputs(result, out_path, route):
    """<out>.wav (24 kHz), each intermediate stage, and the stacked picture; variations get -1, -2, ... suffixes."""
    # samples/<slug>.wav for one variation; samples/<slug>-1.wav, -2.wav, ... for N of them, each with its own
    # stage files and picture.
    out_path = Path(out_path)
    n = result["audio"].shape[0]
    written = []
    for i in range(n):
        stem = out_path.with_suffix("") if n == 1 else out_path.with_name(f"{out_path.stem}-{i + 1}")
        panels = []
        # One picture row per stage, each labelled with what it is, plus each intermediate stage's own file, so
        # that a listener can hear what each stage adds (the README's "what make sample writes").
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
    """Fail in one sentence before minutes of sampling, not after, when the output folder cannot be written.
    The probe file is created and removed at once; the folder is created if it does not exist yet."""
    folder = Path(out_path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{time.time_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise SampleError(f"cannot write to {folder} ({err.strerror}); choose another OUT= folder.") from None


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one sentence. Like every entry point here, it reads --key=value (argparse
    also takes --key value); training reads only --key=value, from a table of defaults (train.py)."""

    def error(self, message):                               # one sentence instead of argparse's usage dump
        print(f"error: {message}; run `python sample.py --help` for the settings.", file=sys.stderr)
        sys.exit(2)


def parse_args(argv):
    """The command line -> argparse.Namespace. Each stage's sampler flags default to None, which means "the stage's
    own default" (SAMPLING in its file), so only what the user types reaches the stage."""
    p = _Parser(description="Generate music from text with the Noise2Music cascade.", allow_abbrev=False,
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--prompt", default="", help="what the music should be; empty = unconditional")
    p.add_argument("--route", default=DEFAULT_ROUTE, help="wave (generator, cascader, super-res) or spec (spectrogram "
                   "generator, vocoder, super-res)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the output")
    p.add_argument("--n", type=int, default=1, help="variations of the prompt, generated as one batch")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same file")
    p.add_argument("--out", default="", help="output WAV (default samples/<prompt-slug>.wav)")
    p.add_argument("--checkpoints", default="checkpoints", help="folder holding <stage>.pt files")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--clip", type=float, default=None, help="dynamic clipping percentile of a paper-form "
                   f"generator's x0 (Sec. 3.1; default {stage1_generator.CLIP})")
    # Flags per stage: --steps-<stage>, --schedule-<stage>, --gamma-<stage>, and --guidance-<stage>,
    # --sampler-<stage> or --cond-noise-<stage> where the stage has them (the generators and the cascader take
    # text, so guidance; the generators also take the sampler, eq. 4's or DDIM).
    for name, short in SHORT.items():
        d = DEFAULTS[name]
        p.add_argument(f"--steps-{short}", type=int, default=None, help=f"sampling steps (default {d['steps']})"
                       + (f"; 0 = no model: {NO_MODEL[name]}" if name in NO_MODEL else ""))
        p.add_argument(f"--schedule-{short}", default=None, help="step schedule front/uniform/back"
                       + ("/back-eval" if name == "spectrogram-generator" else "") + f" (default {d['step_kind']}, "
                       "Table 3)")
        p.add_argument(f"--gamma-{short}", type=float, default=None, help=f"stochasticity in [0, 1] "
                       f"(default {d['gamma']}, Table 3)")
        if "guidance" in d:
            p.add_argument(f"--guidance-{short}", type=float, default=None, help=f"classifier-free guidance "
                           f"scale (default {d['guidance']}, Table 3)")
        if "sampler" in d:
            p.add_argument(f"--sampler-{short}", default=None, help=f"ancestral (the paper's eq. 4) or ddim "
                           f"(deterministic; gamma unused) (default {d['sampler']})")
        if "cond_noise" in d:
            p.add_argument(f"--cond-noise-{short}", type=float, default=None, help=f"noise level u of the "
                           f"conditioning at sampling (default {d['cond_noise']})")
    return p.parse_args(argv)


def main(argv=None):
    """`make sample` / `python sample.py`: parse, check, generate, write. Exit status 0, or 2 with one sentence."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # {stage: {setting: value or None}}: the flags of each stage, under run()'s setting names.
    overrides = {}
    for name, short in SHORT.items():
        key = short.replace("-", "_")
        overrides[name] = {"steps": getattr(args, f"steps_{key}"), "step_kind": getattr(args, f"schedule_{key}"),
                           "gamma": getattr(args, f"gamma_{key}"), "guidance": getattr(args, f"guidance_{key}", None),
                           "cond_noise": getattr(args, f"cond_noise_{key}", None),
                           "sampler": getattr(args, f"sampler_{key}", None)}
    # Every file is written to a temporary name and renamed (audio_io.atomic_write): an interrupted run leaves
    # nothing half-written behind, and the 24 kHz WAV is written last.
    out = Path(args.out or f"samples/{slug(args.prompt)}.wav")
    if out.suffix.lower() != ".wav":
        out = out.with_suffix(".wav")
    try:
        check_request(args.prompt, args.seconds, args.route, args.n, resolve_settings(overrides))
        check_writable(out)
        print(f"prompt: {args.prompt!r} | route {args.route} | {args.seconds:g} s | seed {args.seed} | n {args.n}")
        start = time.perf_counter()
        if args.clip is not None and not 0.5 < args.clip <= 1.0:
            raise SampleError(f"--clip is a percentile in (0.5, 1], got {args.clip}.")
        result = run(args.prompt, route=args.route, seconds=args.seconds, n=args.n, seed=args.seed,
                     settings=overrides, checkpoints=args.checkpoints, device=args.device, clip=args.clip,
                     progress=not args.quiet)
        for path in write_outputs(result, out, args.route):
            print(f"wrote {path}")
        print(f"total {time.perf_counter() - start:.1f} s")
    # A user's mistake (a flag out of range, a missing or corrupt checkpoint, an unreadable T5 folder) is one
    # sentence that names the problem and the fix; anything else is a bug and keeps its traceback.
    except (SampleError, checkpoint.CheckpointError, train.TrainingError, text_encoder.TextEncoderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; nothing half-written was left behind.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
