"""Evaluation: how close the generated music is to real music, and to its prompt (Sec. 5; PAPER_NOTES §9).

The paper measures two things, and so do we, on the test split of our corpus (works never used for training):

    FAD          the Frechet distance between Gaussians fitted to embeddings of generated and of real audio (lower
                 is better; Table 5). Two embeddings: MuLan's audio tower, one vector per clip (the paper's
                 FAD_MuLan; mulan.py), and, standing in for VGGish, a fixed log-mel statistic that needs no model:
                 the mean and spread of each of the 80 mel bins over each 1 s of audio (30 vectors per clip).
    similarity   MuLan cosine similarity, averaged over the set (higher is better; Table 6): audio <-> its prompt,
                 and audio <-> the real clip the prompt describes. The paper's references: the ground truth itself,
                 and the ground truth shuffled (every clip paired with another clip's prompt).
    adherence    what the paper could not measure but our corpus can, since every test clip's attributes are
                 known: the tempo estimated from onsets within 10% of the prompt's (mir.py), the key and mode from
                 chroma and key profiles (mir.py), and the instrument, recognised by retrieval with MuLan (the
                 instrument name whose text embedding is nearest the audio's). Each estimator is first scored on the
                 real clips: that row says how far the numbers of generated clips can be trusted. Beside the
                 tempo hits, "tempo r" (tempo_following) asks whether the tempo follows the prompt at all: the
                 correlation over the set of log heard BPM with log asked BPM (~0 for the shuffled set).
    music at all  what no model can be fooled by (issue 13): the median whitened spectral flatness and spectral
                 persistence of the clips (stagecheck.py; real clips ~0.06 and ~0.8, stationary noise ~0.56 and ~0).

    make eval    [N=16] [SECONDS=30]  the test split's first N clips -> a prompt each (captions.eval_prompt) ->
                 both routes; prints a table shaped like Tables 5 and 6 and writes runs/eval/eval.json
    make sweep   [N=8] [ROUTE=wave]   Fig. 2 at small scale: generator guidance in {1, 2, 5, 10, 15} and the uniform
                 and back step lists, one setting varied at a time from sample.py's defaults; FAD against
                 similarity as a picture
    python evaluate.py validate       the estimators and the instrument retrieval on every real test clip
                                      (--through-mel: after log-mel and Griffin-Lim, the spectrogram route's bound;
                                      --through-mel true-phase: the mel with the clip's own phase)
    python evaluate.py denoise        each generator's diffusion loss on real test clips against a model-free
                                      baseline: has it learned anything about the music at all?

Generated clips are kept under runs/eval/ (and runs/sweep/), one WAV each, named by their settings, so an
interrupted evaluation resumes without generating anything twice. Sizes are tiny next to the paper's (5.5k
MusicCaps clips): FAD is biased upwards for small sets, so compare numbers only at the same N.
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import audio_io
import captions
import checkpoint
import data
import mir

SET_RATE = 24000                 # what the cascade writes, and the corpus's rate


# ----------------------------------------------------------------------------------------------------------------
# 1. Frechet audio distance

def gaussian_fit(x):
    """(N, D) embeddings -> (mean (D,), covariance (D, D)), in float64."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"a Gaussian fit needs at least 2 embeddings as an (N, D) array, got shape {x.shape}.")
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_distance(mu1, cov1, mu2, cov2):
    """|mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)) (Dowson & Landau 1982; the FAD of Kilgour et al. 2019).
    tr (C1 C2)^(1/2) = tr (C1^(1/2) C2 C1^(1/2))^(1/2), a symmetric PSD matrix, so eigh is exact and stable."""
    w, v = np.linalg.eigh(cov1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T                      # C1^(1/2)
    middle = np.linalg.eigvalsh(root1 @ cov2 @ root1)
    trace_root = np.sqrt(np.clip(middle, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * trace_root)


def fad(x, y):
    """FAD between two sets of embeddings, (N, D) and (M, D)."""
    return frechet_distance(*gaussian_fit(x), *gaussian_fit(y))


def mel_statistics(audio, rate):
    """(T,) audio -> (S, 160): per non-overlapping 1 s of it, the mean and standard deviation of each log-mel bin
    (data.log_mel at 16 kHz). A fixed, model-free stand-in for VGGish's frame-wise embedding."""
    mel = data.log_mel(data.resample(torch.as_tensor(audio, dtype=torch.float32)[None], rate, data.MEL_RATE))[0]
    per_second = data.MEL_RATE // data.MEL_HOP                              # 100 frames
    s = mel.shape[1] // per_second
    if s == 0:
        raise ValueError("mel_statistics needs at least 1 s of audio.")
    frames = mel[:, : s * per_second].reshape(data.MEL_BINS, s, per_second)  # (80, S, 100)
    return torch.cat([frames.mean(2), frames.std(2)]).T.numpy()              # (S, 160)


# ----------------------------------------------------------------------------------------------------------------
# 2. The sets: real test clips, their prompts, generated clips

def read_clip(path, rate=SET_RATE):
    """An audio file -> (T,) float32 tensor at `rate` (mono)."""
    audio, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data.resample(torch.from_numpy(audio.mean(1)), file_rate, rate)


def test_set(folder, n, split="test"):
    """The first n clips of a corpus split (metadata.jsonl order sorted by path) -> list of attribute dicts with
    "file" (absolute path) and "prompt"."""
    meta = Path(folder) / "metadata.jsonl"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta} not found; evaluation needs the corpus (run `make data`).")
    rows = [json.loads(line) for line in meta.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = sorted((r for r in rows if r["split"] == split and (Path(folder) / r["path"]).is_file()),
                  key=lambda r: r["path"])
    if n:
        rows = rows[:n]
    for r in rows:
        r["file"], r["prompt"] = str(Path(folder) / r["path"]), captions.eval_prompt(r)
    return rows


def derangement(n, seed=0):
    """A permutation with no fixed point (n >= 2): the 'shuffled ground truth' pairing of Table 6."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    out = [0] * n
    for k in range(n):
        out[order[k]] = order[(k + 1) % n]
    return out


# The files whose code decides what `make sample` writes: an edit to any of them (even a comment) makes new clips.
SAMPLING_CODE = ("sample.py", "stage1_generator.py", "stage2_cascader.py", "stage3_superres.py", "vocoder.py",
                 "diffusion.py", "unet1d.py", "residual.py", "data.py", "text_encoder.py", "checkpoint.py")


def settings_label(route, settings, seconds, checkpoints="checkpoints"):
    """A folder name for one route's clips: route, length and a short hash of the route's stages' settings, of
    their checkpoint files' bytes and of the sampling code, so that neither a changed default, a retrained stage
    nor a code change reuses old clips."""
    import hashlib
    import sample
    digest = hashlib.sha1(json.dumps({name: settings[name] for name in sample.ROUTES[route]}, sort_keys=True).encode())
    for name in sample.ROUTES[route]:
        path = Path(checkpoints) / f"{name}.pt"
        digest.update(path.read_bytes() if path.is_file() else b"missing")   # a missing one fails later, clearly
    for name in SAMPLING_CODE:
        digest.update((Path(__file__).parent / name).read_bytes())
    return f"{route}-{seconds:g}s-{digest.hexdigest()[:10]}"


def generate_set(rows, route, seconds, settings, folder, checkpoints="checkpoints"):
    """Generate one clip per row (seed = the row's index) or reuse it from folder/<i>.wav -> list of (T,)."""
    out, folder = [], Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    import sample
    resolved = sample.resolve_settings(settings)
    record = {"route": route, "seconds": seconds, "settings": {name: resolved[name] for name in sample.ROUTES[route]},
              "prompts": [r["prompt"] for r in rows]}
    (folder / "settings.json").write_text(json.dumps(record, indent=2))
    for i, row in enumerate(rows):
        path = Path(folder) / f"{i:03d}.wav"
        if not path.is_file():
            t0 = time.time()
            result = sample.run(row["prompt"], route=route, seconds=seconds, seed=i, settings=settings,
                                checkpoints=checkpoints, progress=False, log=lambda *a: None)
            audio_io.write_wav(path, result["audio"][0], sample.OUT_RATE)
            print(f"  {path} ({time.time() - t0:.0f} s): {row['prompt']}", flush=True)
        out.append(read_clip(path))
    return out


# ----------------------------------------------------------------------------------------------------------------
# 3. Scores

class Judge:
    """Everything that scores a set: MuLan, the instrument names' embeddings, the real reference set."""

    def __init__(self, scorer, reference):
        self.scorer = scorer
        self.names = sorted(captions.WORDS)
        texts = [f"music played on {phrase}" for name in self.names for phrase in captions.WORDS[name][0]]
        owner = [name for name in self.names for _ in captions.WORDS[name][0]]
        z = scorer.embed_text(texts)
        # One direction per instrument: the mean over its noun phrases ("a fiddle", "a solo violin", ...).
        self.instrument_z = torch.nn.functional.normalize(torch.stack(
            [z[[i for i, o in enumerate(owner) if o == name]].mean(0) for name in self.names]), dim=-1)
        self.reference = self.embed(reference)

    def embed(self, audios):
        """list of (T,) at 24 kHz -> {"mulan": (N, dim), "mel": (N * seconds, 160)}."""
        mulan_z = torch.cat([self.scorer.embed_audio(a, SET_RATE) for a in audios]).numpy()
        return {"mulan": mulan_z, "mel": np.concatenate([mel_statistics(a, SET_RATE) for a in audios])}

    def instrument(self, mulan_z):
        """(N, dim) clip embeddings -> N instrument names (nearest instrument text)."""
        return [self.names[i] for i in (torch.as_tensor(mulan_z) @ self.instrument_z.T).argmax(1).tolist()]

    def score(self, audios, rows, truth_z=None, pairing=None):
        """A set of clips, the rows whose prompts they answer (pairing: row index per clip, default i -> i)."""
        pairing = pairing or list(range(len(audios)))
        emb = self.embed(audios)
        prompts = [rows[j]["prompt"] for j in pairing]
        text_z = self.scorer.embed_text(prompts).numpy()
        out = {"FAD_mel": fad(emb["mel"], self.reference["mel"]),
               "FAD_MuLan": fad(emb["mulan"], self.reference["mulan"]),
               "sim_audio_text": float((emb["mulan"] * text_z).sum(1).mean())}
        if truth_z is not None:
            out["sim_audio_gt"] = float((emb["mulan"] * truth_z).sum(1).mean())
        bpms, keys, tempo_ok, key_ok = [], [], [], []
        for audio, j in zip(audios, pairing):
            bpms.append(mir.estimate_tempo(audio.numpy(), SET_RATE))
            tempo_ok.append(mir.tempo_hits(bpms[-1], rows[j]["bpm"])[0])     # within 10% of the prompt's
            keys.append(mir.estimate_key(audio.numpy(), SET_RATE))
            tonic, mode = keys[-1]
            key_ok.append(mode == rows[j]["mode"] and mir.same_key(tonic, rows[j]["key"]))
        heard = [h == rows[j]["instrument"] for h, j in zip(self.instrument(emb["mulan"]), pairing)]
        out.update(tempo=float(np.mean(tempo_ok)), key=float(np.mean(key_ok)), instrument=float(np.mean(heard)),
                   tempo_following=tempo_following(bpms, [rows[j]["bpm"] for j in pairing]))
        figures = model_free_figures(audios)
        out.update({k: figures[k] for k in ("flatness", "persistence")})
        # Per clip, in eval.json only: which prompts fail, not just how many (the set's medians hide it).
        out["clips"] = [{"prompt": rows[j]["prompt"], "tempo": bool(tempo_ok[i]), "key": bool(key_ok[i]),
                         "instrument": bool(heard[i]), "flatness": figures["each"][i][0],
                         "persistence": figures["each"][i][1], "bpm_heard": round(bpms[i], 1),
                         "key_heard": " ".join(keys[i])} for i, j in enumerate(pairing)]
        return out, emb["mulan"]


def tempo_following(heard, asked):
    """Does the tempo follow the prompt at all, hits or not: the correlation over a set of log heard BPM with log
    asked BPM (in eval.json). A set can score few hits within 10% because it is near but never exact, or because
    its tempo has nothing to do with the prompt; this tells the two apart (about 0 for a shuffled set).
    None for fewer than 3 clips or a set whose heard or asked tempi are all the same."""
    x, y = np.log(np.asarray(heard, float)), np.log(np.asarray(asked, float))
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def model_free_figures(audios):
    """Is it music at all, with no model to fool (issue 13): the medians over the set of each clip's whitened
    spectral flatness (stationary noise ~0.56, real clips ~0.06) and spectral persistence (noise ~0, real ~0.8);
    stagecheck.py defines both."""
    import stagecheck
    flat = [float(stagecheck.flatness(a[None].float(), SET_RATE)) for a in audios]
    persist = [float(stagecheck.persistence(a[None].float(), SET_RATE)) for a in audios]
    return {"flatness": float(np.median(flat)), "persistence": float(np.median(persist)),
            "each": list(zip(flat, persist))}


COLUMNS = [("FAD_mel", "FAD mel", "{:.3f}"), ("FAD_MuLan", "FAD MuLan", "{:.3f}"),
           ("sim_audio_text", "audio-text", "{:.3f}"), ("sim_audio_gt", "audio-gt", "{:.3f}"),
           ("tempo", "tempo", "{:.0%}"), ("tempo_following", "tempo r", "{:.2f}"), ("key", "key+mode", "{:.0%}"),
           ("instrument", "instrument", "{:.0%}"),
           ("flatness", "flatness", "{:.3f}"), ("persistence", "persistence", "{:.3f}")]


def format_table(rows):
    """{name: {column: value}} -> text; '-' where a row has no such value (as in the paper's tables)."""
    width = max([22] + [len(name) + 1 for name in rows])
    head = f"{'':<{width}}" + "".join(f"{title:>12}" for _, title, _ in COLUMNS)
    lines = [head]
    for name, row in rows.items():
        cells = [fmt.format(row[k]) if row.get(k) is not None else "-" for k, _, fmt in COLUMNS]
        lines.append(f"{name:<{width}}" + "".join(f"{c:>12}" for c in cells))
    return "\n".join(lines)


def machine():
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


# ----------------------------------------------------------------------------------------------------------------
# 4. The commands

def run_eval(args, judge, rows):
    gt = [read_clip(r["file"]) for r in rows]
    table = {}
    table["ground truth"], gt_z = judge.score(gt, rows)
    table["ground truth"].update(FAD_mel=None, FAD_MuLan=None, sim_audio_gt=1.0)    # the set is in the reference
    shuffled = derangement(len(rows), args.seed)
    table["shuffled ground truth"], _ = judge.score(gt, rows, truth_z=gt_z[shuffled], pairing=shuffled)
    table["shuffled ground truth"].update(FAD_mel=None, FAD_MuLan=None)
    train_rows = test_set(args.data, len(rows), split="train")
    table["real (train clips)"], _ = judge.score([read_clip(r["file"]) for r in train_rows], train_rows)
    table["real (train clips)"].update(sim_audio_text=None, tempo=None, tempo_following=None, key=None, instrument=None)
    import sample
    variants = [("", None)] + ([(", SR by resampling", {"superres": {"steps": 0}})] if args.plain_sr else [])
    for route in args.routes.split(","):
        generator = sample.ROUTES[route][0]
        # --guidance G,... (Fig. 2's knob, at eval size) and --variant KEY=VALUE,... (e.g. sampler=ddim,steps=200):
        # each route also with its generator's settings changed so, one row each.
        changed = [{"guidance": g} for g in args.guidance or []] + (args.variant or [])
        extra = [(", " + ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in given.items()),
                  {generator: given}) for given in changed]
        for suffix, settings in variants + extra:
            label = settings_label(route, sample.resolve_settings(settings), args.seconds, args.checkpoints)
            print(f"generating {len(rows)} clips on the {route} route{suffix} into {args.out}/{label}")
            audios = generate_set(rows, route, args.seconds, settings, Path(args.out) / label, args.checkpoints)
            table[f"noise2music {route}{suffix}"], _ = judge.score(audios, rows, truth_z=gt_z)
    return table


SWEEP = [("guidance", g) for g in (1.0, 2.0, 5.0, 10.0, 15.0)] + [("step_kind", k) for k in ("uniform", "back")]


def run_sweep(args, judge, rows):
    """Fig. 2: the generator's guidance and step schedule, one at a time from sample.py's defaults (SAMPLING in
    stage1_generator.py: Table 3's guidance 10 and front-heavy steps for the waveform generator; guidance 1 and the
    back-eval steps for the spectrogram generator, by measurement)."""
    import sample
    generator = sample.ROUTES[args.route][0]
    base = sample.DEFAULTS[generator]
    gt_z = judge.embed([read_clip(r["file"]) for r in rows])["mulan"]
    points = {}
    for key, value in SWEEP:
        settings = {generator: {key: value}, **({"superres": {"steps": 0}} if args.plain_sr else {})}
        label = settings_label(args.route, sample.resolve_settings(settings), args.seconds, args.checkpoints)
        name = f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
        if key == "guidance" and value == base["guidance"]:
            name += f" (the default: {base['step_kind']} steps)"
        print(f"{name}: {len(rows)} clips into {args.out}/{label}")
        audios = generate_set(rows, args.route, args.seconds, settings, Path(args.out) / label, args.checkpoints)
        points[name], _ = judge.score(audios, rows, truth_z=gt_z)
    return points


def plot_sweep(points, path, title):
    """FAD (mel, and MuLan's) against audio-text similarity, one point per setting named in a legend, the guidance
    settings joined in order as Fig. 2 draws them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.2))
    colours = plt.get_cmap("tab10").colors
    for ax, fad_key in zip(axes, ("FAD_mel", "FAD_MuLan")):
        # The guidance settings joined in order, as Fig. 2 draws each sweep as a curve; named in one legend, since
        # points a few thousandths apart would print their labels over each other.
        guided = [p for name, p in points.items() if name.startswith("guidance")]
        ax.plot([p[fad_key] for p in guided], [p["sim_audio_text"] for p in guided], color="0.75", zorder=1)
        for i, (name, p) in enumerate(points.items()):
            marker = "o" if name.startswith("guidance") else "s"
            ax.scatter(p[fad_key], p["sim_audio_text"], marker=marker, color=colours[i % len(colours)], zorder=2,
                       label=name if ax is axes[0] else None)
        # [choice] each axis spans at least 20% of its largest FAD and 0.1 of similarity, so that differences in
        # the third decimal (noise, at these set sizes) do not fill the picture and look like an effect.
        for values, span, set_lim in (([p[fad_key] for p in points.values()], None, ax.set_xlim),
                                      ([p["sim_audio_text"] for p in points.values()], 0.1, ax.set_ylim)):
            lo, hi = min(values), max(values)
            half = max(hi - lo, span if span is not None else 0.2 * abs(hi)) * 0.6
            set_lim((lo + hi) / 2 - half, (lo + hi) / 2 + half)
        ax.set_xlabel(f"{fad_key.replace('_', ' ')} (lower is better)")
        ax.set_ylabel("MuLan audio-text similarity (higher is better)")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.legend(loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    audio_io.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), suffix=".png")
    plt.close(fig)


def through_mel(audio, seed=0, phase="griffin-lim"):
    """(T,) real clip at 24 kHz -> (T,) at 24 kHz after the spectrogram route with no model in it: its 16 kHz
    log-mel, Griffin-Lim (the vocoder `make sample` uses), plain resampling. Whatever the estimators lose here, no
    spectrogram generator can give back. phase="true-phase" keeps the clip's own STFT phase in Griffin-Lim's place,
    so that what is lost is the 80-bin mel's alone."""
    import vocoder
    x = data.resample(audio, SET_RATE, vocoder.RATE)[None]                          # (1, T16)
    x = x[:, : x.shape[1] // data.MEL_HOP * data.MEL_HOP]                          # whole mel frames: (1, 160 F)
    if phase == "true-phase":
        out = vocoder.with_own_phase(x)[0]
    else:
        out = vocoder.griffin_lim(data.log_mel(x), generator=torch.Generator().manual_seed(seed))[0]
    return data.resample(out, vocoder.RATE, SET_RATE)                               # (160 F,) 16 kHz -> 24 kHz


def validate(args, judge):
    """The estimators on every real clip of the test split: their own accuracy, before any generated clip; with
    --through-mel, on the clips after log-mel and Griffin-Lim (through_mel)."""
    rows = test_set(args.data, args.n)
    clips = [read_clip(r["file"]) for r in rows]
    if args.through_mel:
        clips = [through_mel(c, phase=args.through_mel) for c in clips]
    scores, _ = judge.score(clips, rows)
    return {"clips": len(rows), "through_mel": args.through_mel, **{k: scores[k] for k in (
        "tempo", "tempo_following", "key", "instrument", "sim_audio_text", "flatness", "persistence")}}


def channel_gaussian_denoiser(x0, schedule, objective):
    """(N, C, T) real signals -> model_fn(x_t, t): the best denoiser that knows only each channel's mean and variance
    (a Gaussian prior, every sample on its own): x0_hat = mean + alpha var / (alpha^2 var + sigma^2) (x_t - alpha
    mean), returned in the objective's parameterization."""
    import diffusion
    mean, var = x0.mean(dim=(0, 2), keepdim=True), x0.var(dim=(0, 2), keepdim=True)         # (1, C, 1) each

    def model_fn(x_t, t):
        alpha, sigma = (a[:, None, None] for a in diffusion.alpha_sigma(t, schedule))
        x0_hat = mean + alpha * var / (alpha ** 2 * var + sigma ** 2) * (x_t - alpha * mean)
        eps = diffusion.eps_from_x0(x0_hat, x_t, alpha, sigma)
        return eps if objective == "eps" else alpha * eps - sigma * x0_hat            # v = alpha eps - sigma x0
    return model_fn


def denoise(args):
    """Each generator's own training loss (its schedule, weight and objective; t and noise fixed by seed) on the
    first N real test clips with their prompts, next to a baseline with no network: the Gaussian denoiser that knows
    each channel's mean and variance over these clips (each mel bin's, on the spectrogram route). A generator that
    does not beat it has learned nothing about the music beyond its average spectrum."""
    import diffusion
    import sample
    import stage1_generator
    import text_encoder
    from types import SimpleNamespace
    rows = test_set(args.data, args.n)
    result = {}
    for name in ("waveform-generator", "spectrogram-generator"):
        model, cfg = sample.load_stage(args.checkpoints, name, torch.device("cpu"))
        cfg = SimpleNamespace(**cfg)
        rate = data.MEL_RATE if cfg.repr == "spec" else stage1_generator.WAVE_RATE
        audio = torch.stack([read_clip(r["file"], rate)[: round(cfg.seconds * rate)] for r in rows])
        x0 = stage1_generator.to_x0(audio, vars(cfg))                           # (N, 1, T) or (N, 80, F)
        t5 = text_encoder.load_t5(cfg.t5 or text_encoder.DEMO_T5_DIR)
        emb, mask = text_encoder.TextEmbeddingCache(t5, max_length=cfg.text_length)([r["prompt"] for r in rows])
        no_model = channel_gaussian_denoiser(x0, cfg.schedule, cfg.objective)
        losses = {}
        for label, fn in (("model", lambda x_t, t: model(x_t, t, text_emb=emb, text_mask=mask)),
                          ("no model", no_model)):
            with torch.no_grad():
                values = [diffusion.diffusion_loss(fn, x0, schedule=cfg.schedule, objective=cfg.objective,
                                                   weight=cfg.weight, generator=torch.Generator().manual_seed(s))[0]
                          for s in range(4)]
            losses[label] = float(torch.stack(values).mean())
        losses["ratio"] = losses["model"] / losses["no model"]
        print(f"{name}: loss {losses['model']:.5f}, no-model baseline {losses['no model']:.5f} "
              f"(ratio {losses['ratio']:.2f}; {cfg.weight} weight, {cfg.schedule} schedule)")
        result[name] = losses
    return result


GENERATOR_KEYS = {"steps": int, "step_kind": str, "gamma": float, "guidance": float, "sampler": str}


def _scales(text):
    """--guidance's "1,2" -> [1.0, 2.0], or one sentence saying what is wrong."""
    try:
        scales = [float(g) for g in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers (e.g. 1,2)") from None
    if any(g < 0 for g in scales):
        raise argparse.ArgumentTypeError("guidance scales cannot be negative (1 = no guidance)")
    return scales


def generator_settings(text):
    """--variant's "sampler=ddim,steps=200" -> {"sampler": "ddim", "steps": 200}, or one sentence saying what is
    wrong. Values are checked where the sampler meets them (sample.check_request), before anything is generated."""
    given = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key not in GENERATOR_KEYS or not value:
            raise argparse.ArgumentTypeError(f"{item!r} is not KEY=VALUE with KEY one of {', '.join(GENERATOR_KEYS)}")
        try:
            given[key] = GENERATOR_KEYS[key](value)
        except ValueError:
            kind = {int: "whole number", float: "number"}[GENERATOR_KEYS[key]]
            raise argparse.ArgumentTypeError(f"{key} takes a {kind}, not {value!r}") from None
    return given


def _with_judge(args):
    """The commands that score audio with MuLan: validate, eval, sweep -> their result."""
    import mulan
    scorer = mulan.load(args.mulan)
    reference = test_set(args.data, 0)
    rows = reference[: args.n] if args.n else reference
    print(f"reference: {len(reference)} real test clips; {len(rows)} prompts")
    judge = Judge(scorer, [read_clip(r["file"]) for r in reference])
    if args.command == "validate":
        result = validate(args, judge)
        print(json.dumps(result, indent=2))
    elif args.command == "eval":
        result = run_eval(args, judge, rows)
        print("\n" + format_table(result))
    else:
        result = run_sweep(args, judge, rows)
        print("\n" + format_table(result))
        plot_sweep(result, Path(args.out) / "sweep.png",
                   f"Generator settings, {args.route} route" + (", SR by resampling" if args.plain_sr else "")
                   + f", {len(rows)} test prompts (cf. Fig. 2)")
        print(f"wrote {Path(args.out) / 'sweep.png'}")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python evaluate.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["eval", "sweep", "validate", "denoise"])
    parser.add_argument("--data", default="data/music21", help="the corpus (make data)")
    parser.add_argument("--n", type=int, default=None, help="test prompts (eval 16, sweep 8, validate all, denoise 8)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each generated clip")
    parser.add_argument("--routes", default="wave,spec", help="eval: routes to generate with")
    parser.add_argument("--route", default="wave", choices=["wave", "spec"], help="sweep: the route to sweep")
    parser.add_argument("--checkpoints", default="checkpoints", help="folder of stage checkpoints")
    parser.add_argument("--mulan", default="checkpoints/mulan.pt", help="the MuLan checkpoint (make train-mulan)")
    parser.add_argument("--out", default=None, help="folder for generated clips and results (runs/<command>)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled pairing")
    parser.add_argument("--guidance", type=_scales, default=None,
                        metavar="G,...", help="eval: also score each route with its generator at these guidance "
                                              "scales (e.g. 1,2)")
    parser.add_argument("--variant", type=generator_settings, action="append", metavar="KEY=VALUE,...",
                        help="eval: also score each route with its generator's sampler settings changed, one row "
                             "per --variant (keys: steps, step_kind, gamma, guidance, sampler; e.g. "
                             "sampler=ddim,steps=200)")
    parser.add_argument("--plain-sr", action="store_true",
                        help="eval: also score each route with super-resolution replaced by plain resampling "
                             "(sample.py --steps-superres 0), to see what the earlier stages make on their own; "
                             "sweep: sweep with it replaced")
    parser.add_argument("--through-mel", nargs="?", const="griffin-lim", choices=["griffin-lim", "true-phase"],
                        help="validate: score the real clips after log-mel and Griffin-Lim, the spectrogram route "
                             "with no model: what that route's adherence can reach at best; true-phase: the mel "
                             "with the clip's own phase, what the mel alone loses")
    args = parser.parse_args(argv)
    args.out = args.out or f"runs/{args.command}"
    args.n = args.n if args.n is not None else {"eval": 16, "sweep": 8, "validate": 0, "denoise": 8}[args.command]
    if args.n < 0 or (args.command != "validate" and args.n < 2):
        parser.error("--n must be at least 2: FAD and the shuffled pairing need two clips or more.")
    if not 1.0 <= args.seconds <= 60.0:
        parser.error(f"--seconds must lie in 1..60 (the models were trained on 30 s clips), not {args.seconds}.")
    import sample
    t0 = time.time()
    try:
        result = denoise(args) if args.command == "denoise" else _with_judge(args)
    except (FileNotFoundError, checkpoint.CheckpointError, sample.SampleError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    record = {"command": " ".join(["python evaluate.py"] + (argv if argv is not None else sys.argv[1:])),
              "machine": machine(), "seconds_taken": round(time.time() - t0), "n": args.n,
              "clip_seconds": args.seconds, "result": result}
    path = Path(args.out) / f"{args.command}.json"
    audio_io.atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2)))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
