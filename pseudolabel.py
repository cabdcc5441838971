"""Pseudo-labelling: caption a folder of unlabelled audio with a MuLan model and a caption vocabulary.

Noise2Music's training audio has no text, so MuLan writes it (Sec. 3.6; PAPER_NOTES §7):

    1. embed each clip: the mean of MuLan's audio embeddings over its non-overlapping 10 s windows;
    2. embed every caption of a vocabulary (long-form sentences, LaMDA-LF; short aspect tags, Rater-SF);
    3. per clip, keep the top K = 10 captions by cosine similarity;
    4. sample K' of those 10 with probability proportional to 1 / (how often that caption was in a top 10 across
       the whole set), so a caption that suits every clip does not label every clip, and the labels vary.

The paper keeps 3 long-form sentences and 6 short tags per clip; so do we. Our vocabularies come from
captions.vocabulary() (imagined pieces written like the corpus captions; no clip's own text), and each entry knows
what it claims, so on the corpus, whose true attributes are known, we can say how often the labels are right.

    make pseudo-label DATA=folder            writes folder/captions.jsonl (never over an existing one)
    python pseudolabel.py --data data/music21/test --out runs/pseudo/test.jsonl     + an agreement report, since
                                             the corpus's metadata.jsonl says what each test clip really is

The output is the captions.jsonl a training folder needs (data.py): one {"path", "captions"} line per file.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

import soundfile as sf
import torch

import audio_io
import captions as captions_lib
import checkpoint
import data
import text_encoder

TOP_K = 10                  # Sec. 3.6: the 10 best-scoring captions of each vocabulary
PICK = {"long": 3, "tags": 6}   # Sec. 3.6 / App. C: 3 LaMDA-LF sentences; 6 Rater-SF tags (PAPER_NOTES §7)
MAX_SECONDS = 600.0         # a longer file is labelled from its first 10 minutes

log = logging.getLogger("pseudolabel")


def choose(scores, top_k=TOP_K, pick=3, generator=None):
    """(N clips, V captions) similarities -> (N, pick) caption indices: per clip, `pick` of its top_k, drawn
    without replacement with probability proportional to 1 / (the caption's count over all clips' top_k)."""
    scores = torch.as_tensor(scores)
    top_k, pick = min(top_k, scores.shape[1]), min(pick, top_k, scores.shape[1])
    top = scores.topk(top_k, dim=1).indices                                # (N, top_k)
    count = torch.bincount(top.flatten(), minlength=scores.shape[1]).float()
    weights = 1.0 / count[top]                                             # (N, top_k), all counts >= 1
    drawn = torch.multinomial(weights, pick, replacement=False, generator=generator)
    return top.gather(1, drawn)


def audio_files(folder):
    """Every readable audio file under `folder`, sorted (paths relative to it)."""
    folder, suffixes = Path(folder), data._audio_suffixes()
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."))


def embed_folder(scorer, folder, files):
    """-> (kept files, (N, dim) clip embeddings). An unreadable file costs a warning, not the run."""
    kept, rows = [], []
    for rel in files:
        try:
            info = sf.info(str(Path(folder) / rel))
            audio, rate = sf.read(str(Path(folder) / rel), frames=int(MAX_SECONDS * info.samplerate),
                                  dtype="float32", always_2d=True)
        except Exception as err:
            log.warning("%s cannot be read (%s); skipped", rel, str(err).splitlines()[0] if str(err) else err)
            continue
        if len(audio) < 0.5 * rate:
            log.warning("%s is shorter than 0.5 s; skipped", rel)
            continue
        kept.append(rel)
        rows.append(scorer.embed_audio(torch.from_numpy(audio.mean(axis=1)), rate))
    return kept, (torch.cat(rows) if rows else torch.zeros(0, 1))


def label(scorer, clip_z, vocab, seed=0):
    """(N, dim) clip embeddings -> per clip {"long": [indices], "tags": [indices]} into vocab's two lists."""
    g = torch.Generator().manual_seed(seed)
    picks = {}
    for name, entries in vocab.items():
        text_z = scorer.embed_text([text for text, _ in entries])          # (V, dim)
        picks[name] = choose(clip_z @ text_z.T, TOP_K, PICK[name], generator=g).tolist()
    return [{name: picks[name][i] for name in vocab} for i in range(len(clip_z))]


def agreement(labels, vocab, truths):
    """How often the chosen labels claim something true, per aspect, against chance.
    labels: per clip {"long": [i], "tags": [i]}; truths: per clip {aspect: value} (captions.truth_claims).
    chance: the same rate for captions drawn uniformly from the vocabulary (exact expectation, not a draw)."""
    rows = {}
    for name, entries in vocab.items():
        for aspect in ("instrument", "genre", "tempo", "key", "mode", "meter", "texture", "era"):
            right = total = chance_right = chance_total = 0
            for lab, truth in zip(labels, truths):
                claims = [entries[i][1][aspect] for i in lab[name] if aspect in entries[i][1]]
                right += sum(truth[aspect] in c for c in claims)
                total += len(claims)
                every = [e[1][aspect] for e in entries if aspect in e[1]]
                chance_right += sum(truth[aspect] in c for c in every) / max(len(every), 1)
                chance_total += 1 if every else 0
            if total:
                rows[f"{name}/{aspect}"] = {"labels": total, "agree": right / total,
                                            "chance": chance_right / max(chance_total, 1)}
    return rows


def find_truths(folder, files):
    """The corpus's metadata.jsonl (in the folder or its parent) -> per file its truth claims, or None."""
    folder = Path(folder).resolve()
    for root in (folder, folder.parent):
        meta = root / "metadata.jsonl"
        if meta.is_file():
            by_path = {}
            for line in meta.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    entry = json.loads(line)
                    by_path[(root / entry["path"]).resolve()] = entry
            found = [by_path.get((folder / f).resolve()) for f in files]
            if all(found):
                return [captions_lib.truth_claims(e) for e in found]
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python pseudolabel.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder of audio files (searched recursively)")
    parser.add_argument("--out", default=None, help="captions file to write (default DATA/captions.jsonl)")
    parser.add_argument("--checkpoint", default="checkpoints/mulan.pt", help="a MuLan checkpoint (make train-mulan)")
    parser.add_argument("--vocabulary", type=int, default=4000, help="long-form sentences in the vocabulary")
    parser.add_argument("--seed", type=int, default=0, help="seed of the vocabulary and of the draws")
    args = parser.parse_args(argv)
    import mulan                                     # here, so --help needs no torch model code
    folder = Path(args.data)
    out = Path(args.out) if args.out else folder / "captions.jsonl"
    if not folder.is_dir():
        print(f"error: {folder} is not a folder; pass DATA=<folder of audio files>.", file=sys.stderr)
        return 2
    if out.exists() and not args.out:
        print(f"error: {out} already exists; pass --out to write the pseudo-labels elsewhere (nothing is "
              f"overwritten).", file=sys.stderr)
        return 2
    files = audio_files(folder)
    if not files:
        print(f"error: {folder} holds no audio files ({', '.join(sorted(data._audio_suffixes()))}).", file=sys.stderr)
        return 2
    try:
        scorer = mulan.load(args.checkpoint)
    except (checkpoint.CheckpointError, text_encoder.TextEncoderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    long_form, tags = captions_lib.vocabulary(args.vocabulary, args.seed)
    vocab = {"long": long_form, "tags": tags}
    print(f"{folder}: {len(files)} files; vocabulary {len(long_form)} sentences + {len(tags)} tags")
    kept, clip_z = embed_folder(scorer, folder, files)
    if not kept:
        print(f"error: none of the {len(files)} audio files in {folder} could be read.", file=sys.stderr)
        return 2
    labels = label(scorer, clip_z, vocab, args.seed)
    lines = []
    for rel, lab in zip(kept, labels):
        # The short tags go in as one comma-separated caption, as the corpus's tag captions are.
        texts = [long_form[i][0] for i in lab["long"]] + [", ".join(tags[i][0] for i in lab["tags"])]
        lines.append(json.dumps({"path": rel, "captions": texts}, ensure_ascii=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    audio_io.atomic_write(out, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8"))
    print(f"wrote {out}: {len(kept)} files, {PICK['long']} sentences + {PICK['tags']} tags each")
    truths = find_truths(folder, kept)
    if truths is not None:
        rows = agreement(labels, vocab, truths)
        print(f"\nagreement with the true attributes ({len(kept)} clips):\n"
              f"{'labels/aspect':<20} {'n':>6} {'agree':>7} {'chance':>7}")
        for key, r in rows.items():
            print(f"{key:<20} {r['labels']:>6} {r['agree']:>7.1%} {r['chance']:>7.1%}")
        report = out.with_suffix(".agreement.json")
        text = json.dumps({"folder": str(folder), "checkpoint": args.checkpoint, "clips": len(kept), "rows": rows},
                          indent=2)
        audio_io.atomic_write(report, lambda tmp: Path(tmp).write_text(text))
        print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main())
