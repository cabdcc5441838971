"""Why a sample does not follow its prompt's tempo or key (issue 13): one probe for each link of the chain.

`make eval` says THAT the spectrogram route misses the prompt's tempo (tempo r 0.14, ground truth 0.77) and key; it
cannot say WHERE the attribute is lost. Three links carry it from the caption to the audio, and each gets a probe
that asks only about that link:

    text    the text encoder: does its output carry the attribute at all? A ridge read-out of each caption's log BPM
            and of its key and mode, from the caption's pooled encoder output (mean and max over its tokens), fitted
            on the training split's captions and scored on the test split's. Beside it, the same read-out from the
            caption's token counts (what a model that reads the tokens themselves could find) and from its pooled
            token embeddings (the encoder's input: what its layers keep or lose). Captions that do not name the
            attribute (tags, titles) keep every read-out below 1.
    words   the generator: does its output move when only the tempo (or key) words move? Prompts that differ in
            nothing but "slow, about 64 beats per minute" and "fast and lively, about 152 beats per minute" (or "in C
            major" and "in F-sharp major"), sampled with the same seed through the whole route; the tempo and key
            heard in each (mir.py). A generator that follows the words makes every fast one faster (log2 ratio
            ~1.25) and puts every sample in the key asked.
    reads   the generator, teacher-forced: its x0 error on held-out clips noised to where the notes are still open,
            given the clip's own caption, the same caption with only the tempo number, the tempo words or the key
            changed, another clip's caption, and none. If changing the tempo costs nothing while another clip's
            caption does, the generator reads the caption but not its tempo. No sampling and no estimator: the
            most direct of the probes.
    route   the spectrogram route with no model in it: `python evaluate.py validate --through-mel` (real clips after
            their log-mel and Griffin-Lim) and `--through-mel true-phase` (the mel with the clip's own phase).

    python adherence.py text  [--data data/music21] [--t5 DIR]              -> runs/adherence/text.json
    python adherence.py words [--checkpoints checkpoints] [--seconds 10] [--guidance G]
                                                                            -> runs/adherence/words.json
    python adherence.py reads [--checkpoints checkpoints] [--n 64] [--seconds 10]
                                                                            -> runs/adherence/reads.json
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

import audio_io
import augment
import mir

# The words probe's prompts: a genre and an instrument the corpus has, then one of the tempo or key phrases.
BASES = ("A folk song played on a solo violin", "A Bach chorale played on a church organ", "A waltz played on a piano",
         "A folk melody played on a flute", "A march played by a brass ensemble", "A jig played on a fiddle")
TEMPO_WORDS = {"slow": (", slow, about 64 beats per minute.", 64),
               "fast": (", fast and lively, about 152 beats per minute.", 152)}
KEY_WORDS = ("C major", "F-sharp major")     # a tritone apart: no shared tonic, dominant or relative minor


# ----------------------------------------------------------------------------------------------------------------
# 1. The text encoder: a linear read-out

def ridge_fit(features, targets, strength=1.0):
    """(N, D) features, (N, K) targets -> predict(features) -> (M, K): least squares with an L2 penalty on the
    weights, each feature standardised on the fitting set (constant ones dropped), and an unpenalised offset."""
    keep = features.std(0) > 0
    mean, std = features[:, keep].mean(0), features[:, keep].std(0)
    design = lambda f: (f[:, keep] - mean) / std                                    # (N, D') standardised
    x = design(features)
    offset = targets.mean(0)
    weights = np.linalg.solve(x.T @ x + strength * np.eye(x.shape[1]), x.T @ (targets - offset))   # (D', K)
    return lambda f: design(f) @ weights + offset


def _caption_rows(folder, split):
    """The corpus's (caption, log2 BPM, "key mode") for every caption of every clip in a split."""
    listing = Path(folder) / "metadata.jsonl"
    if not listing.is_file():
        raise FileNotFoundError(f"{listing} not found: the text probe needs the built-in corpus's labels (tempo, key); "
                                "build it with `make data` or pass --data.")
    rows = [json.loads(line) for line in listing.read_text().splitlines() if line.strip()]
    out = [(c, np.log2(r["bpm"]), f"{r['key']} {r['mode']}")
           for r in rows if r["split"] == split for c in r["captions"]]
    if not out:
        raise FileNotFoundError(f"{listing} lists no {split} captions; build the corpus with `make data`.")
    return out


def caption_features(encoder, texts, max_length=96, batch=512):
    """Captions -> {"T5 output, mean and max": (N, 2D), "token embeddings, mean and max": (N, 2D), "token counts":
    (N, vocab)}, float32 numpy. The second is the encoder's input, before its layers: if the output carries less,
    the layers lose it. 96 tokens: what the spectrogram generator reads (Table 2)."""
    def pool(emb, mask):                            # (B, L, D) -> (B, 2D); padded positions count in neither
        mean = (emb * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return torch.cat([mean, emb.masked_fill(~mask[..., None], float("-inf")).amax(1)], 1)

    out = {"T5 output, mean and max": [], "token embeddings, mean and max": [], "token counts": []}
    for start in range(0, len(texts), batch):
        ids, mask = encoder.tokenizer(texts[start:start + batch], max_length)          # (B, L) each
        with torch.no_grad():
            out["T5 output, mean and max"].append(pool(encoder(ids, mask).float(), mask))
            out["token embeddings, mean and max"].append(pool(encoder.token_embedding(ids).float(), mask))
        out["token counts"].append(torch.zeros(len(ids), encoder.config.vocab_size).scatter_add_(1, ids, mask.float()))
    return {name: torch.cat(parts).numpy() for name, parts in out.items()}


def probe_text(folder, t5_dir=None):
    """-> {read-out: {"tempo_r", "tempo_within_10", "key"}} on the test split's captions."""
    import text_encoder
    encoder = text_encoder.load_t5(t5_dir or text_encoder.DEMO_T5_DIR)
    train_rows, test_rows = _caption_rows(folder, "train"), _caption_rows(folder, "test")
    keys = sorted({k for _, _, k in train_rows + test_rows})
    fit_f = caption_features(encoder, [c for c, _, _ in train_rows])
    test_f = caption_features(encoder, [c for c, _, _ in test_rows])
    bpm_fit = np.array([[b] for _, b, _ in train_rows])                                 # (N, 1) log2 BPM
    key_fit = np.eye(len(keys))[[keys.index(k) for _, _, k in train_rows]]              # (N, keys) one-hot
    bpm_test = np.array([b for _, b, _ in test_rows])
    result = {}
    for name in fit_f:
        tempo = ridge_fit(fit_f[name], bpm_fit)(test_f[name])[:, 0]
        key = np.argmax(ridge_fit(fit_f[name], key_fit)(test_f[name]), 1)
        result[name] = {"tempo_r": float(np.corrcoef(tempo, bpm_test)[0, 1]),
                        "tempo_within_10": float(np.mean(np.abs(2 ** (tempo - bpm_test) - 1) <= 0.1)),
                        "key": float(np.mean([keys[i] == k for i, (_, _, k) in zip(key, test_rows)]))}
        print(f"{name:30s} tempo r {result[name]['tempo_r']:.3f}, within 10% {result[name]['tempo_within_10']:.1%}; "
              f"key and mode {result[name]['key']:.1%}")
    return {"captions": [len(train_rows), len(test_rows)], "readouts": result}


# ----------------------------------------------------------------------------------------------------------------
# 2. The generator: does what it writes move with the words?

def tempo_word_pairs(heard):
    """[(slow BPM, fast BPM)] -> how often the fast words came out faster, and the mean log2(fast / slow)."""
    ratios = np.log2([fast / slow for slow, fast in heard])
    return {"pairs": len(heard), "fast_faster": int((ratios > 0).sum()), "mean_log2_ratio": float(ratios.mean()),
            "asked_log2_ratio": float(np.log2(TEMPO_WORDS["fast"][1] / TEMPO_WORDS["slow"][1]))}


def key_word_pairs(heard):
    """[{asked key: (tonic, mode) heard}] -> how many samples are in the key asked, and how many pairs moved their
    tonic at all. Chance is 1 in 24 for the first."""
    hits = sum(mir.same_key(tonic, asked.split()[0]) and mode == asked.split()[1]
               for pair in heard for asked, (tonic, mode) in pair.items())
    moved = sum(len({mir.pitch_class(tonic) for tonic, _ in pair.values()}) > 1 for pair in heard)
    return {"samples": 2 * len(heard), "in_asked_key": int(hits), "pairs": len(heard), "tonic_moved": int(moved)}


def probe_words(checkpoints, seconds, seeds, route, guidance=None):
    """Each base prompt with each tempo phrase, then with each key phrase, same seed -> what is heard in each.
    guidance: the generator's classifier-free guidance scale (None: its default); guidance amplifies whatever the
    words change in the generator's prediction, so a weak but real dependence shows more at a larger scale."""
    import sample
    first = sample.ROUTES[route][0]
    settings = {first: {"guidance": guidance}} if guidance is not None else None

    def heard(prompt, seed, estimate):
        out = sample.run(prompt, route=route, seconds=seconds, seed=seed, checkpoints=checkpoints, progress=False,
                         settings=settings, log=lambda *_: None)
        return estimate(out["audio"][0].numpy(), sample.OUT_RATE)

    tempo, key, rows = [], [], []
    for base in BASES:
        for seed in range(seeds):
            bpm = {name: heard(base + words, seed, mir.estimate_tempo) for name, (words, _) in TEMPO_WORDS.items()}
            keys = {asked: heard(f"{base}, in {asked}.", seed, mir.estimate_key) for asked in KEY_WORDS}
            tempo.append((bpm["slow"], bpm["fast"]))
            key.append(keys)
            rows.append({"prompt": base, "seed": seed, **{k: round(v, 1) for k, v in bpm.items()},
                         **{f"in {k}": " ".join(v) for k, v in keys.items()}})
            print(f"{base:42s} seed {seed}: slow words {bpm['slow']:5.1f} BPM, fast words {bpm['fast']:5.1f} BPM; "
                  + ", ".join(f"'{k}' heard {' '.join(v)}" for k, v in keys.items()))
    summary = {"tempo": tempo_word_pairs(tempo), "key": key_word_pairs(key)}
    t, k = summary["tempo"], summary["key"]
    print(f"tempo: fast words faster in {t['fast_faster']} of {t['pairs']} pairs; mean log2(fast / slow) "
          f"{t['mean_log2_ratio']:.2f} (asked {t['asked_log2_ratio']:.2f})")
    print(f"key: {k['in_asked_key']} of {k['samples']} samples in the key asked (chance ~1 in 24); the tonic moved "
          f"in {k['tonic_moved']} of {k['pairs']} pairs")
    return {**summary, "route": route, "seconds": seconds, "guidance": guidance, "each": rows}


# ----------------------------------------------------------------------------------------------------------------
# 3. The generator, teacher-forced: which words of a caption does it read?

# Each of captions.py's tempo words and its opposite (a moderate word becomes a fast one): what the reads probe
# changes to ask whether the generator reads tempo words, as against tempo numbers.
_SLOW_TO_FAST = {"slow": "fast", "unhurried": "brisk", "leisurely": "lively", "relaxed": "quick", "slowly": "quickly",
                 "unhurriedly": "briskly", "adagio": "allegro", "largo": "vivace"}
_OPPOSITE_TEMPO = {**_SLOW_TO_FAST, **{fast: slow for slow, fast in _SLOW_TO_FAST.items()},
                   "moderate": "fast", "medium": "quick", "steady": "brisk", "comfortable": "lively",
                   "andante": "allegro", "moderato": "vivace", "mid-tempo": "fast", "moderately paced": "quick"}
_TEMPO_WORD = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _OPPOSITE_TEMPO), key=len, reverse=True)) + r")\b")


def opposite_tempo_words(caption):
    """Every tempo word of captions.py's vocabulary swapped for its opposite ("slow" <-> "fast", "adagio" <->
    "allegro"; a moderate word becomes a fast one). Numbers are left alone."""
    return _TEMPO_WORD.sub(lambda m: _OPPOSITE_TEMPO[m.group(1)], caption)


# Noise levels of the linear schedule at which the outline of the music (where the notes fall, which pitches) is
# still open: log-SNR from about -1.6 (t = 0.5) down to -8.5 (t = 0.95).
READ_TIMES = (0.5, 0.7, 0.85, 0.95)
READ_ASPECTS = ("bpm", "tempo words", "key")                               # what altered_captions changes


def altered_captions(captions):
    """A clip's captions -> {aspect: (caption, the same caption with only that aspect changed)}, for the first
    caption that names it: "bpm", the tempo in BPM x 1.5 (or / 1.5 where x 1.5 would pass 160), tempo words kept;
    "tempo words", every tempo word swapped for its opposite, in a caption that names no BPM; "key", every key moved
    a tritone. An aspect no caption names is left out."""
    out = {}
    for caption in captions:
        bpm = augment.named_tempo(caption)
        if bpm and "bpm" not in out:
            out["bpm"] = (caption, augment.scale_tempi(caption, 1.5 if bpm * 1.5 <= 160 else 1 / 1.5))
        opposite = opposite_tempo_words(caption)
        if not bpm and opposite != caption and "tempo words" not in out:
            out["tempo words"] = (caption, opposite)
        if augment.names_key(caption) and "key" not in out:
            out["key"] = (caption, augment.transpose_keys(caption, 6))
    return out


def probe_reads(checkpoints, folder, n, seconds):
    """The spectrogram generator's x0 error on n held-out clips (their first `seconds`), noised at READ_TIMES with
    one fixed draw, given: the clip's own caption; the same caption with only its tempo or key changed; another
    clip's caption; no caption. -> {aspect: {t: {"own", "altered", "another", each as a share of the no-caption
    error (mean over clips), "altered_worse": share of clips whose error grows when only that word changes}}}, for
    each of READ_ASPECTS (altered_captions). A generator that reads the tempo (key) words predicts worse from a
    caption whose tempo (key) is wrong, as it does from another clip's caption; one that ignores them gives
    altered = own and altered_worse ~ 0.5."""
    import data
    import sample
    import stage1_generator
    import stagecheck
    import text_encoder
    model, config = sample.load_stage(checkpoints, "spectrogram-generator", torch.device("cpu"))
    t5 = text_encoder.load_t5(config.get("t5") or text_encoder.DEMO_T5_DIR)
    clips = data.index_folder(folder)[:n]
    audio = data.fixed_batch(folder, data.MEL_RATE, n=n, seconds=seconds, multiple=data.MEL_HOP)["audio"]   # (n, T)
    x0_all = stage1_generator.to_x0(audio, config)                           # (n, 80, F), standardised mel bins
    result = {}
    altered = [altered_captions(c.captions) for c in clips]
    for aspect in READ_ASPECTS:
        picked = [(i, a[aspect]) for i, a in enumerate(altered) if aspect in a]
        if len(picked) < 2:
            raise FileNotFoundError(f"fewer than 2 of the first {n} clips in {folder} have a caption naming their "
                                    f"{aspect}; the reads probe needs captions like the built-in corpus's.")
        x0 = x0_all[[i for i, _ in picked]]                                  # (m, 80, F)
        own = [c for _, (c, _) in picked]
        texts = {"own": own, "altered": [a for _, (_, a) in picked], "another": own[1:] + own[:1]}
        encoded = {k: t5.encode(v, max_length=config["text_length"]) for k, v in texts.items()}
        g = torch.Generator().manual_seed(0)
        result[aspect] = {"clips": len(picked)}
        for t in READ_TIMES:
            errors = stagecheck.generator_x0_errors(model, config, x0, t, {"none": None, **encoded}, g)   # (m,) each
            none = errors.pop("none").clamp(min=1e-20)
            result[aspect][t] = {**{k: float((e / none).mean()) for k, e in errors.items()},
                                 "altered_worse": float((errors["altered"] > errors["own"]).float().mean())}
            r = result[aspect][t]
            print(f"{aspect:11s} t {t:.2f}: x0 error / no caption: own {r['own']:.4f}, {aspect} changed "
                  f"{r['altered']:.4f}, another clip's {r['another']:.4f}; worse with the {aspect} changed in "
                  f"{r['altered_worse']:.0%} of {len(picked)} clips")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python adherence.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("probe", choices=["text", "words", "reads"])
    parser.add_argument("--data", default="data/music21", help="text: the corpus whose captions are read; reads: "
                        "its test/ folder's clips")
    parser.add_argument("--n", type=int, default=64, help="reads: held-out clips")
    parser.add_argument("--t5", default=None, help="text: a Hugging Face T5 directory (default: the demo encoder)")
    parser.add_argument("--checkpoints", default="checkpoints", help="words, reads: folder of stage checkpoints")
    parser.add_argument("--route", default="spec", choices=["spec", "wave"], help="words: the route to sample")
    parser.add_argument("--seconds", type=float, default=10.0, help="words: length of each sample; reads: of each "
                        "clip's start (5-30)")
    parser.add_argument("--seeds", type=int, default=2, help="words: seeds per prompt pair")
    parser.add_argument("--guidance", type=float, default=None, help="words: the generator's guidance scale "
                        "(default: its own, 1 for the spectrogram generator)")
    parser.add_argument("--out", default="runs/adherence", help="folder for <probe>.json")
    args = parser.parse_args(argv)
    if not 5.0 <= args.seconds <= 30.0 or args.seeds < 1 or (args.guidance is not None and args.guidance < 0) \
            or args.n < 2:
        parser.error("--seconds must lie in 5..30 (the tempo estimator needs a few beats), --seeds be at least 1, "
                     "--guidance not negative (1 = no guidance) and --n at least 2.")
    import checkpoint
    import data
    import evaluate
    import sample
    import text_encoder
    import train
    t0 = time.time()
    try:
        if args.probe == "text":
            result = probe_text(args.data, args.t5)
        elif args.probe == "words":
            result = probe_words(args.checkpoints, args.seconds, args.seeds, args.route, args.guidance)
        else:
            test = Path(args.data) / "test" if (Path(args.data) / "test").is_dir() else Path(args.data)
            result = probe_reads(args.checkpoints, test, args.n, args.seconds)
    except (FileNotFoundError, data.DataError, train.TrainingError, checkpoint.CheckpointError, sample.SampleError,
            text_encoder.TextEncoderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = Path(args.out) / f"{args.probe}.json"
    record = {"command": " ".join(["python adherence.py"] + (argv if argv is not None else sys.argv[1:])),
              "machine": evaluate.machine(), "seconds_taken": round(time.time() - t0), "result": result}
    audio_io.atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2)))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
