"""Speed figures (never part of the tests; see STYLE.md "Benchmarks are not tests").

U-Net section: one forward pass of each tiny preset on its full 30 s working signal, and of each paper preset
on 1 s, batch 1, float32 on the CPU. For each we report the forward time, samples per second, the FLOPs that
torch's FlopCounterMode counts (convolutions, matmuls, attention), the achieved GFLOP/s, and that rate as a
fraction of a large float32 matmul's rate on the same machine: the best this CPU can do, so the fraction says
how much of the time goes to arithmetic rather than to memory traffic and small-op overhead.

    python bench.py            # tiny presets at 30 s, then paper presets at 1 s (about 3 GB of memory)
    python bench.py --quick    # tiny presets only
    python bench.py --only route   # the whole cascade, 30 s of music, per stage (the sample speed target)
    python bench.py --only settings  # cascader/vocoder/SR: stagecheck's figures for steps x gamma
    python bench.py --only generator-settings   # the spectrogram generator's samples: steps, lists, guidance, DDIM
    python bench.py --only step      # every stage: producing a training batch against computing the step

Route section: sample.py's whole waveform route (and the spectrogram route) with its default settings and the
shipped checkpoints: 30 s of 24 kHz music, timed per stage with the peak memory. Target: at most 60 s on a 2-core
CPU for the waveform route.

Timings are the minimum over --reps runs (after one warm-up): on a shared machine the minimum is the figure
least disturbed by other work. Likewise the matmul rate is the best of runs made between the models.
"""

import argparse
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from unet1d import PRESETS, build_unet, count_parameters

# Working lengths (§13: 30 s by default): samples of x_t, or frames for the spectrogram generator.
TINY_LENGTHS = {
    "tiny-waveform-generator": 96_000,       # 30 s at 3.2 kHz
    "tiny-waveform-cascader": 480_000,       # 30 s at 16 kHz
    "tiny-spectrogram-generator": 3_000,     # 30 s at 100 frames/s
    "tiny-vocoder": 480_000,                 # 30 s at 16 kHz (+ 3000 mel frames as the aligned input)
    "tiny-superres": 720_000,                # 30 s at 24 kHz
}
PAPER_LENGTHS = {  # 1 s each
    "paper-waveform-generator": 3_200,
    "paper-waveform-cascader": 16_000,
    "paper-spectrogram-generator": 100,
    "paper-vocoder": 16_000,
    "paper-superres": 24_000,
}
TEXT_TOKENS = {"spectrogram": 96}  # Tab. 2: 96 tokens for the spectrogram generator, 64 for the waveform models


def bench_matmul(n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of an n x n float32 matmul (best of reps): the reference rate for this CPU."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def unet_inputs(name: str, length: int, batch: int):
    """(x, t, keyword arguments) with every conditioning input the preset takes, at the given length."""
    cfg = PRESETS[name]
    tokens = next((n for key, n in TEXT_TOKENS.items() if key in name), 64)
    kw = {}
    if cfg.cond_channels:
        kw["cond"] = torch.randn(batch, cfg.cond_channels, length)
    if cfg.aligned_channels:
        kw["aligned"] = torch.randn(batch, cfg.aligned_channels, -(-length // cfg.total_stride))
    if cfg.text_dim:
        kw["text_emb"] = torch.randn(batch, tokens, cfg.text_dim)
        kw["text_mask"] = torch.ones(batch, tokens, dtype=torch.bool)
    if cfg.cond_noise_level:
        kw["cond_noise"] = torch.full((batch,), 0.1)
    return torch.randn(batch, cfg.in_channels, length), torch.full((batch,), 0.5), kw


class _Prepared:
    """A built model, its inputs and its FLOP count, ready to be timed."""

    @torch.no_grad()
    def __init__(self, preset: str, length: int, batch: int):
        self.preset, self.length, self.batch = preset, length, batch
        self.model = build_unet(preset).eval()
        self.x, self.t, self.kw = unet_inputs(preset, length, batch)
        with FlopCounterMode(display=False) as counter:  # a separate, untimed pass (also the warm-up)
            self.model(self.x, self.t, **self.kw)
        self.gflops = counter.get_total_flops() / 1e9
        self.best = float("inf")

    @torch.no_grad()
    def time_once(self):
        start = time.perf_counter()
        self.model(self.x, self.t, **self.kw)
        self.best = min(self.best, time.perf_counter() - start)

    def result(self, matmul_gflops: float | None) -> dict:
        r = dict(preset=self.preset, length=self.length, batch=self.batch,
                 params_m=count_parameters(self.model) / 1e6, seconds=self.best,
                 samples_per_s=self.batch * self.length / self.best, gflops=self.gflops,
                 gflops_per_s=self.gflops / self.best)
        r["matmul_fraction"] = r["gflops_per_s"] / matmul_gflops if matmul_gflops else float("nan")
        return r


def bench_unet(preset: str, length: int, batch: int = 1, reps: int = 3, matmul_gflops: float | None = None) -> dict:
    """Forward-pass time (min of reps) and FLOP rate of one preset: a dict of the figures main() prints."""
    prepared = _Prepared(preset, length, batch)
    for _ in range(reps):
        prepared.time_once()
    return prepared.result(matmul_gflops)


def print_rows(rows: list[dict]):
    print(f"{'preset':28s} {'length':>8s} {'params':>8s} {'forward':>9s} {'samples/s':>10s} {'GFLOPs':>8s} "
          f"{'GFLOP/s':>8s} {'of matmul':>9s}")
    for r in rows:
        print(f"{r['preset']:28s} {r['length']:8d} {r['params_m']:7.2f}M {r['seconds']:8.3f}s "
              f"{r['samples_per_s']:10.3g} {r['gflops']:8.1f} {r['gflops_per_s']:8.1f} {r['matmul_fraction']:8.0%}")


def section_unet(args):
    """The U-Net table: tiny presets at 30 s, then (unless --quick) the paper presets at 1 s."""
    # Tiny presets: timed round-robin, so that each model's runs are spread over time and the minimum is
    # less likely to come from a moment when other work was using the CPU.
    tiny = [_Prepared(name, length, args.batch) for name, length in TINY_LENGTHS.items()]
    matmul = bench_matmul()
    for _ in range(args.reps):
        for prepared in tiny:
            prepared.time_once()
        matmul = max(matmul, bench_matmul())  # sampled between rounds; the best is kept, like the min time
    rows = [prepared.result(None) for prepared in tiny]
    del tiny
    if not args.quick:  # paper presets one at a time: up to 3 GB of weights each
        for name, length in PAPER_LENGTHS.items():
            torch.manual_seed(0)
            rows.append(bench_unet(name, length, batch=args.batch, reps=args.reps))
            matmul = max(matmul, bench_matmul())
            print(f"  measured {name}", flush=True)
    for r in rows:
        r["matmul_fraction"] = r["gflops_per_s"] / matmul
    print(f"\nU-Net forward, batch {args.batch}, float32, min of {args.reps} runs; "
          f"reference {2048}x{2048} matmul: {matmul:.1f} GFLOP/s")
    print_rows(rows)
    return rows


def section_route(args):
    """Issue target: the whole waveform route, 30 s at 24 kHz with sample.py's defaults, in at most 60 s on the
    2-core CPU (stretch: 30 s). Per stage: steps, time per step, total, peak memory. Also the spectrogram route."""
    import sample
    rows = []
    for route in ("wave", "spec"):
        best = None
        for _ in range(args.route_reps):
            start = time.perf_counter()
            result = sample.run("a slow romantic piece for string ensemble in D minor", route=route,
                                seconds=30.0, seed=0, checkpoints=args.checkpoints, progress=False,
                                log=lambda *a: None)
            total = time.perf_counter() - start
            if best is None or total < best[0]:
                best = (total, result["timings"])
        total, timings = best
        print(f"\n{route} route, 30 s at 24 kHz, sample.py defaults, best of {args.route_reps}: {total:.1f} s "
              f"(including loading checkpoints and the T5 encoder)")
        print(f"  {'stage':24s} {'steps':>5s} {'s/step':>7s} {'total':>7s} {'peak MB':>8s}")
        for name, (seconds, steps, peak) in timings.items():
            print(f"  {name:24s} {steps:5d} {seconds / steps:7.3f} {seconds:6.1f}s {peak:8.0f}")
            rows.append({"route": route, "stage": name, "steps": steps, "seconds": seconds, "peak_mb": peak})
        rows.append({"route": route, "stage": "total", "seconds": total})
    return rows


def section_settings(args):
    """Quality against cost for the conditioned stages: rebuild real test clips from their own low-fidelity version
    (3.2 kHz -> 16 kHz, log-mel -> 16 kHz, 16 kHz -> 24 kHz) with several step counts and gammas, and report
    stagecheck.py's figures for each: for the cascaders the log-spectral distance of the band they add (and that of
    an empty band), its loudness against the real one, and whether it follows the input (the correlation of the
    added bands made from two different inputs with one seed); for the vocoder the log-mel distance to the real clip
    (and Griffin-Lim's). It is how sample.py's defaults are chosen."""
    import data
    import sample
    import stagecheck
    import text_encoder
    folder = f"{args.data}/test"
    print(f"\nconditioned stages on {args.clips} real 4 s test clips from {folder}")
    for name, rate in (("waveform-cascader", 16000), ("vocoder", 16000), ("superres", 24000)):
        model, config = sample.load_stage(args.checkpoints, name, torch.device("cpu"))
        batch = data.fixed_batch(folder, rate, n=args.clips, seconds=4.0, multiple=1920)
        text = text_encoder.load_t5().encode(batch["caption"], max_length=config["text_length"]) \
            if name == "waveform-cascader" else (None, None)
        print(f"  {name} ({config.get('form', 'paper')} form; shipped: {sample.DEFAULTS[name]})")
        for steps in (12, 50):
            for gamma in (0.0, 1.0):
                start = time.perf_counter()
                settings = {"steps": steps, "gamma": gamma}
                if name == "vocoder":
                    r = stagecheck.check_vocoder(model, config, batch["audio"], settings)
                    figures = (f"log-mel distance {r['log_mel_distance']:.4f} (Griffin-Lim "
                               f"{r['log_mel_distance_griffin_lim']:.4f}), flatness {r['flatness']:.3f}")
                else:
                    r = stagecheck.check_cascader(name, model, config, batch["audio"], text, settings)
                    figures = (f"added band LSD {r['added_band_lsd']:.1f} dB (empty {r['added_band_lsd_plain']:.1f}),"
                               f" RMS {r['added_band_rms']:.4f} (real {r['added_band_rms_real']:.4f}), "
                               f"two inputs correlate {r['swap_correlation']:.3f}")
                print(f"    steps {steps:3d} gamma {gamma:.0f}: {figures}, {time.perf_counter() - start:.0f} s")


# Each row names its sampler, so that a change of the stage's default sampler (SAMPLING) leaves the rows as they were.
_EQ4, _DDIM = dict(sampler="ancestral"), dict(sampler="ddim")
GENERATOR_SETTINGS = [dict(steps=30, step_kind="back-eval", **_EQ4), dict(steps=30, step_kind="uniform", **_EQ4),
                      dict(steps=30, step_kind="front", **_EQ4), dict(steps=60, step_kind="back-eval", **_EQ4),
                      dict(steps=60, step_kind="front", **_EQ4), dict(steps=100, step_kind="back-eval", **_EQ4),
                      dict(steps=100, step_kind="front", **_EQ4), dict(steps=200, step_kind="back-eval", **_EQ4),
                      dict(steps=100, step_kind="back-eval", guidance=1.0, **_EQ4),
                      dict(steps=100, step_kind="back-eval", guidance=10.0, **_EQ4),
                      dict(steps=60, step_kind="back-eval", gamma=1.0, **_EQ4),  # Table 3: gamma 1, cascader only
                      dict(steps=60, step_kind="back-eval", **_DDIM), dict(steps=60, step_kind="uniform", **_DDIM),
                      dict(steps=200, step_kind="back-eval", **_DDIM)]


def section_generator_settings(args):
    """The spectrogram generator's sampler settings (steps, Table 7's step lists, guidance, eq. 4 or DDIM) judged by
    what they make: one 10 s sample from each of the first --clips held-out test clips' captions, turned into audio
    by Griffin-Lim, and the two model-free figures (overfit.judge_generator; real clips ~0.06 and ~0.8). Table 3's
    back-heavy evaluation list jumps from log-SNR +0.7 straight to the output (issue 13): here it meets the
    alternatives."""
    import checkpoint
    import overfit
    ckpt = checkpoint.load_checkpoint(f"{args.checkpoints}/spectrogram-generator.pt")
    folder = f"{args.data}/test"
    print(f"\nspectrogram generator (step {ckpt['step']}) on {args.clips} test captions, 10 s each, Griffin-Lim")
    for settings in GENERATOR_SETTINGS:
        start = time.perf_counter()
        result, _ = overfit.judge_generator(ckpt, folder, args.clips, 10.0, settings)
        s = result["samples"]
        print(f"  {settings}: flatness {s['flatness']:.3f}, persistence {s['persistence']:.3f} (real "
              f"{result['real']['flatness']:.3f}, {result['real']['persistence']:.3f}), "
              f"{time.perf_counter() - start:.0f} s")


def section_step(args):
    """Where a CPU training step of each stage goes: producing a batch (decode, resample and crop, and the log-mel
    of the spectrogram stages, done in the DataLoader's worker processes during training) against the step itself
    (the stage's loss on that batch, including its in-process preparation such as band splitting, plus the backward
    pass). If a batch took longer to produce than a step to compute, the workers could not hide it and clips would
    need caching."""
    import data
    import stage1_generator
    import stage2_cascader
    import stage3_superres
    import text_encoder
    import train
    import vocoder
    from types import SimpleNamespace
    folder = f"{args.data}/train"
    print(f"\ntraining step, tiny presets, batch {args.step_batch} (30 s clips for the generators, 3-4 s crops for the "
          f"others) from {folder}, {args.threads} threads")
    for stage in (stage1_generator.WAVE, stage1_generator.SPEC, stage2_cascader.STAGE, vocoder.STAGE,
                  stage3_superres.STAGE):
        cfg = train.parse_config(stage, [f"--batch_size={args.step_batch}"])
        text_dim, text = 0, None
        if stage.USES_TEXT:
            encoder = text_encoder.load_t5()
            text, text_dim = text_encoder.TextEmbeddingCache(encoder, max_length=cfg.text_length), encoder.dim
        unet_cfg = stage.model_config(cfg, text_dim)
        spec = stage.data_spec(cfg, unet_cfg)
        train._calibrate(stage, cfg, spec, folder, None)
        model = build_unet(unet_cfg)
        loader = iter(data.step_loader(folder, spec["rate"], micro_batch=args.step_batch,
                                       crop_range=spec["crop_range"], multiple=spec["multiple"], num_workers=0,
                                       mel=spec.get("mel", False)))
        batch_times, step_times = [], []
        for i in range(args.reps + 1):
            start = time.perf_counter()
            batch = next(loader)
            batch_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            ctx = SimpleNamespace(cfg=cfg, device=torch.device("cpu"), text=text, generator=train.seeded(0, i))
            stage.loss(model, batch, ctx).backward()
            step_times.append(time.perf_counter() - start)
        produce, compute = min(batch_times[1:]), min(step_times[1:])
        print(f"  {stage.NAME:18s} batch {produce:.2f} s (in workers), step {compute:.2f} s: the batch is "
              f"{100 * produce / (produce + compute):.0f}% of the pair")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny presets only (skip the paper presets)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--reps", type=int, default=5, help="timed runs per model; the minimum is reported")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--only", choices=["unet", "route", "settings", "generator-settings", "step"], default=None,
                        help="run one section")
    parser.add_argument("--step-batch", type=int, default=8, help="batch of the training-step section")
    parser.add_argument("--data", default="data/music21", help="corpus for the settings section (make data)")
    parser.add_argument("--clips", type=int, default=4, help="test clips for the settings section")
    parser.add_argument("--route-reps", type=int, default=2, help="runs of each whole route; the best is kept")
    parser.add_argument("--checkpoints", default="checkpoints", help="folder of the stage checkpoints")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} threads, {'quick' if args.quick else 'full'} run")
    if args.only in (None, "unet"):
        section_unet(args)
    if args.only in (None, "route"):
        section_route(args)
    if args.only in (None, "settings"):
        section_settings(args)
    if args.only in (None, "generator-settings"):
        section_generator_settings(args)
    if args.only in (None, "step"):
        section_step(args)


if __name__ == "__main__":
    main()
