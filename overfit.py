"""The overfit check: can this stage learn at all?  Minutes on a CPU, before hours of training (issue 13).

"The loss went down but the output is noise" is the most common complaint about audio diffusion projects, and a
loss curve cannot answer it: the first shipped spectrogram generator reached 0.46x its no-model loss and sampled
pure speckle. So this check trains a stage on a handful of training clips (--clips) with a recipe that suits it,
then judges what it *samples*, on those same clips, with the model-free figures of stagecheck.py:

    generators       each clip's caption -> a sample (the spectrogram generator's mel turned into audio by
                     Griffin-Lim, no model); passes when the median whitened flatness is <= 0.15 and the median
                     spectral persistence >= 0.6 (real clips: ~0.06 and ~0.8; noise ~0.56 and ~0). It also counts
                     the samples whose average spectrum is closest to their own clip's: a model that learned the
                     clips tells them apart by their captions.
    cascaders        stagecheck's questions on the training clips: the given band within 1.5x plain resampling's
                     error, the added band closer to the real one than an empty band is, and a swapped input that
                     changes the output (added-band correlation < 0.95).
    vocoder          fed the clips' real mels: log-mel distance below another clip's mel's (and, in the specgrad
                     form, below its own noise coloured by the mel with no network), and flatness <= 0.15 with
                     persistence >= 0.6.

A stage that fails here will not learn from the whole corpus either: look at the data scale, the loss weight and
the sampler before spending compute (README, "When the output is noise").

    python overfit.py STAGE [--clips 8] [--seconds S] [--fresh] [-- --key=value ...]
    python overfit.py STAGE --checkpoint checkpoints/NAME.pt      judge a trained checkpoint on the same clips
    python overfit.py spec-generator --sampling sampler=ancestral,steps=60       judge with eq. 4's sampler
    make overfit STAGE=spec-generator          STAGE: generator, spec-generator, cascader, vocoder, superres

The run goes to runs/overfit/<stage>/ (a finished run is judged again without retraining; --fresh starts over);
the verdict to runs/overfit/<stage>/overfit.json.
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

import audio_io
import checkpoint
import data
import diffusion
import evaluate
import stage1_generator
import stage2_cascader
import stage3_superres
import stagecheck
import text_encoder
import train
import vocoder

# name on the command line -> (stage, its recipe: train.py settings for a few clips on a CPU, measured in the README)
RECIPES = {
    # [choice] 2.88 s crops x 32: four times the noise-level draws per second of 30 s x 8 (issue 13), and the
    # network is convolutional with self-attention, so it samples 30 s all the same. 4,000 steps (~30 minutes on
    # one thread): after 1,000 its samples were noise (persistence 0.16), after 4,000 harmonic lines (0.68), after
    # 6,000 lines that move, stop and start (0.76); the flatness stays above the bar (0.26-0.29) so far.
    "spec-generator": (stage1_generator.SPEC, ["--seconds=2.88", "--batch_size=32", "--steps=4000", "--lr=5e-4",
                                               "--warmup=100"]),
    "generator": (stage1_generator.WAVE, ["--seconds=7.5", "--batch_size=8", "--steps=1000", "--lr=5e-4",
                                          "--warmup=100"]),
    "cascader": (stage2_cascader.STAGE, ["--steps=300", "--lr=5e-4", "--warmup=30"]),
    "vocoder": (vocoder.STAGE, ["--steps=300", "--lr=5e-4", "--warmup=30"]),
    "superres": (stage3_superres.STAGE, ["--steps=300", "--lr=5e-4", "--warmup=30"]),
}
FLATNESS_MAX, PERSISTENCE_MIN = 0.15, 0.6          # issue 13's bars for "music": real clips ~0.06 and ~0.8


def train_stage(name, clips, extra, out, fresh):
    """Train `name` on the first `clips` training clips into out/last.pt (resumed if it stopped part-way)."""
    stage, recipe = RECIPES[name]
    if fresh and out.exists():
        shutil.rmtree(out)
    argv = recipe + [f"--clips={clips}", f"--out={out}", "--sample_every=0", "--ckpt_every=100"] + extra
    if (out / "last.pt").exists():
        argv.append("--resume=true")
    train.train(stage, train.parse_config(stage, argv))
    return checkpoint.load_checkpoint(out / "last.pt")


@torch.no_grad()
def judge_generator(ckpt, folder, clips, seconds, settings=None):
    """Sample each clip's caption (sampler `settings` over the stage's SAMPLING); the figures of the samples and of
    the real clips."""
    config = ckpt["config"]
    spec = config["repr"] == "spec"
    rate = data.MEL_RATE if spec else stage1_generator.WAVE_RATE
    real = data.fixed_batch(folder, rate, n=clips, seconds=seconds, multiple=data.MEL_HOP if spec else 1)
    t5 = text_encoder.load_t5(config.get("t5") or text_encoder.DEMO_T5_DIR)
    emb, mask = t5.encode(real["caption"], max_length=config["text_length"])
    model = checkpoint.model_from_checkpoint(ckpt)
    out = stage1_generator.generate(model, emb, mask, config=config, seconds=seconds,
                                    generator=torch.Generator().manual_seed(0), **(settings or {}))  # (N, 80, F)/(N, T)
    audio = vocoder.griffin_lim(out, generator=torch.Generator().manual_seed(0)) if spec else out
    profile = lambda a: data.log_mel(data.resample(a, rate, data.MEL_RATE)).mean(dim=2)   # (N, 80) mean spectrum
    distance = torch.cdist(profile(audio), profile(real["audio"]))                         # (samples, clips)
    ratios, fast = one_step(model, config, real["audio"], emb, mask)
    return {"samples": _figures(audio, rate), "real": _figures(real["audio"], rate),
            "one_step": ratios, "fast_share": fast,
            "own_clip_nearest": int((distance.argmin(dim=1) == torch.arange(len(audio))).sum()),
            "clips": len(audio)}, (out, real["audio"], rate)


ONE_STEP_LOGSNR = (4.0, 0.0, -4.0)
FAST_HZ = 25.0     # spectrogram frames change faster than this for 1.2% of the corpus's power (100 frames/s)


@torch.no_grad()
def one_step(model, config, audio, emb, mask):
    """{log-SNR: x0 error / the Gaussian denoiser's}: the clips noised to each level and denoised in ONE network
    call, against the best denoiser that knows only each channel's mean and variance (evaluate.py). Below 1 the
    model knows more than the average spectrum at that level; a model that is far below 1 at high noise but near
    1 at low noise has memorised the clips and not learned to clean up its own steps, and samples noise.

    For the spectrogram generator also "fast share": how much of the x0 error at the lowest noise level changes
    from frame to frame faster than FAST_HZ, beside the clips' own share. Noise left in is white along time
    (share ~0.5 at 100 frames/s); music holds ~1% of its power there, which at log-SNR +4 is about as much as the
    noise puts there, so no denoiser gets this share to 0. Near 0.5 with a one-call ratio near 1 says the model
    leaves the fine-grained noise in (README, "When the output is noise")."""
    x0 = stage1_generator.to_x0(audio, config)                                # (N, C, T) in the model's units
    fn = stage1_generator._model_fn(model, emb, mask)
    gaussian = evaluate.channel_gaussian_denoiser(x0, config["schedule"], config["objective"])
    grid = torch.linspace(1e-5, 1.0, 100_001)
    levels = diffusion.logsnr(grid, config["schedule"])
    out, fast = {}, None
    for snr in ONE_STEP_LOGSNR:
        t = torch.full((len(x0),), float(grid[(levels - snr).abs().argmin()]))
        alpha, sigma = diffusion.alpha_sigma(t, config["schedule"])
        x_t = alpha[:, None, None] * x0 + sigma[:, None, None] * torch.randn(x0.shape, generator=torch.Generator()
                                                                                 .manual_seed(0))
        errors = [diffusion.to_x0_eps(f(x_t, t), x_t, alpha, sigma, config["objective"])[0] - x0
                  for f in (fn, gaussian)]
        out[f"{snr:+g}"] = float(errors[0].pow(2).mean() / errors[1].pow(2).mean())
        if config["repr"] == "spec" and snr == max(ONE_STEP_LOGSNR):
            fast = {"error": fast_share(errors[0]), "clips": fast_share(x0 - x0.mean(dim=2, keepdim=True))}
    return out, fast


def fast_share(x, frame_rate=data.MEL_RATE / data.MEL_HOP, hz=FAST_HZ):
    """(N, C, T) -> the share of x's power, along T, at modulation frequencies above `hz`."""
    power = torch.fft.rfft(x.double(), dim=-1).abs().pow(2)                     # (N, C, T // 2 + 1)
    freqs = torch.fft.rfftfreq(x.shape[-1], d=1.0 / frame_rate)
    return float(power[..., freqs > hz].sum() / power.sum())


def _figures(audio, rate):
    """The medians over the clips, and each clip's (flatness, persistence) in "each", in order."""
    flat, persist = stagecheck.flatness(audio, rate), stagecheck.persistence(audio, rate)
    return {"flatness": float(flat.median()), "persistence": float(persist.median()),
            "each": [[float(f), float(p)] for f, p in zip(flat, persist)]}


def judge_conditioned(name, ckpt, folder, clips, seconds):
    """stagecheck's checks of one conditioned stage, on its own training clips."""
    stage_name = RECIPES[name][0].NAME
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(ckpt, Path(tmp) / f"{stage_name}.pt")
        result = stagecheck.run(folder, tmp, n=clips, seconds=seconds, route_seconds=seconds, log=lambda *a: None)
    result["split"] = "training"
    return {"check": result[stage_name], "stagecheck": result}


def verdict(name, result):
    """(passed, the reasons it failed) against the bars at the top of this file."""
    why = []
    if name in ("generator", "spec-generator"):
        s = result["samples"]
        if s["flatness"] > FLATNESS_MAX:
            why.append(f"flatness {s['flatness']:.3f} > {FLATNESS_MAX}")
        if s["persistence"] < PERSISTENCE_MIN:
            why.append(f"persistence {s['persistence']:.3f} < {PERSISTENCE_MIN}")
    elif name == "vocoder":
        c = result["check"]
        if c["log_mel_distance"] >= c["log_mel_distance_swapped"]:
            why.append("its output is no closer to the mel it was given than to another clip's")
        if c["log_mel_distance"] >= c.get("log_mel_distance_colour", float("inf")):
            why.append("its output is no closer to the mel than its own noise coloured by the mel (specgrad form)")
        if c["flatness"] > FLATNESS_MAX or c["persistence"] < PERSISTENCE_MIN:
            why.append(f"flatness {c['flatness']:.3f}, persistence {c['persistence']:.3f} outside the real range")
    else:
        c = result["check"]
        if c["given_band_error"] > 1.5 * c["given_band_error_plain"] + 1e-6:
            why.append(f"given band error {c['given_band_error']:.4f} > 1.5x plain resampling's")
        if c["added_band_lsd"] >= c["added_band_lsd_plain"]:
            why.append("the added band is no closer to the real one than an empty band")
        if c["swap_correlation"] >= 0.95:
            why.append(f"a swapped input barely changes the output (correlation {c['swap_correlation']:.3f})")
    return not why, why


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python overfit.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=sorted(RECIPES), help="the stage to check")
    parser.add_argument("--clips", type=int, default=8, help="training clips to overfit (2 or more)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each judged sample")
    parser.add_argument("--data", default="data/music21", help="the corpus (make data); its train/ split is used")
    parser.add_argument("--out", default="", help="run folder (default runs/overfit/<stage>)")
    parser.add_argument("--fresh", action="store_true", help="delete an earlier run of this check first")
    parser.add_argument("--checkpoint", default="", help="judge this checkpoint (e.g. a shipped one) on the clips "
                        "instead of training")
    parser.add_argument("--sampling", type=evaluate.generator_settings, default=None, metavar="KEY=VALUE,...",
                        help="a generator's sampler settings for judging, over its defaults (e.g. "
                             "sampler=ancestral,steps=60: eq. 4's; keys as in evaluate.py eval --variant)")
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` goes to train.py as it is (argparse would take --key=value for its own flags).
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser.epilog = "Settings after -- go to the training run, e.g. python overfit.py vocoder -- --steps=300"
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    args.settings = extra
    if args.clips < 2 or not 1.0 <= args.seconds <= 30.0:
        parser.error("--clips must be at least 2 and --seconds in 1..30.")
    if args.sampling and args.stage not in ("generator", "spec-generator"):
        parser.error("--sampling sets a generator's sampler; the conditioned stages are judged with their defaults.")
    if args.sampling:                                   # checked as sample.py checks it, before minutes of training
        import sample
        route = "spec" if args.stage == "spec-generator" else "wave"
        try:
            sample.check_request("", args.seconds, route, 1,
                                 sample.resolve_settings({sample.ROUTES[route][0]: args.sampling}))
        except sample.SampleError as err:
            parser.error(f"--sampling: {err}")
    out = Path(args.out or f"runs/overfit/{args.stage}")
    folder = Path(args.data) / "train" if (Path(args.data) / "train").is_dir() else Path(args.data)
    try:
        if args.checkpoint:
            ckpt = checkpoint.load_checkpoint(args.checkpoint)
            if ckpt["stage"] != RECIPES[args.stage][0].NAME:
                raise checkpoint.CheckpointError(f"{args.checkpoint} holds the {ckpt['stage']} stage, not {args.stage}.")
        else:
            ckpt = train_stage(args.stage, args.clips, args.settings + [f"--data={args.data}"], out, args.fresh)
        if args.stage in ("generator", "spec-generator"):
            result, (samples, real, rate) = judge_generator(ckpt, folder, args.clips, args.seconds, args.sampling)
            write_pictures(out, samples, real, rate, ckpt["config"]["repr"] == "spec")
        else:
            result = judge_conditioned(args.stage, ckpt, folder, args.clips, min(args.seconds, 4.0))
    except (train.TrainingError, checkpoint.CheckpointError, data.DataError, text_encoder.TextEncoderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    passed, why = verdict(args.stage, result)
    result.update({"pass": passed, "why": why, "stage": args.stage, "step": ckpt["step"],
                   "sampling": args.sampling or {}, "command": " ".join(["python overfit.py"] + argv)})
    audio_io.atomic_write(out / "overfit.json", lambda tmp: Path(tmp).write_text(json.dumps(result, indent=2)))
    print(report(result))
    return 0 if passed else 1


def write_pictures(out, samples, real, rate, spec):
    """<out>/overfit.png: the first two clips' real and sampled spectrograms, one above the other."""
    panels = []
    for i in range(min(2, len(real))):
        panels.append((f"training clip {i + 1}", real[i], rate))
        panels.append(("sample from its caption" + (", log-mel" if spec else ""), samples[i], None if spec else rate))
    audio_io.write_stage_picture(out / "overfit.png", panels, title="overfit check: real clips and samples")


def report(r):
    if "samples" in r:
        s, real = r["samples"], r["real"]
        body = (f"samples: flatness {s['flatness']:.3f}, persistence {s['persistence']:.3f}   (the real clips: "
                f"{real['flatness']:.3f}, {real['persistence']:.3f}; bars <= {FLATNESS_MAX}, >= {PERSISTENCE_MIN})\n"
                f"samples closest to their own clip's average spectrum: {r['own_clip_nearest']} of {r['clips']}\n"
                "one network call on the clips noised to log-SNR " + ", ".join(r["one_step"]) + ": x0 error / the "
                "Gaussian denoiser's " + ", ".join(f"{v:.2f}" for v in r["one_step"].values()))
        if r.get("fast_share"):
            body += (f"\nshare of that x0 error at log-SNR {max(ONE_STEP_LOGSNR):+g} changing faster than {FAST_HZ:g} Hz "
                     f"from frame to frame: {r['fast_share']['error']:.2f} (the clips' own power: "
                     f"{r['fast_share']['clips']:.3f}; white noise ~0.5)")
    else:
        body = stagecheck.format_report(r["stagecheck"])
    verdict_line = "PASS" if r["pass"] else "FAIL: " + "; ".join(r["why"])
    return f"{r['stage']} at step {r['step']}, judged on the training clips it overfits:\n{body}\n{verdict_line}"


if __name__ == "__main__":
    sys.exit(main())
