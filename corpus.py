"""The built-in corpus: public-domain scores from music21, rendered to 30 s of 24 kHz audio, with captions.

Noise2Music trains on ~340k hours of licensed music with pseudo-labels (Sec. 3.5, 3.6); none of it is public. This
file makes a small stand-in whose captions are TRUE by construction: every clip is rendered from a score we chose,
on an instrument we chose, at a tempo we chose, so the text can describe exactly what is heard.

    scores     music21's corpus (~15,000 works): Bach chorales, German and Chinese folk songs (Essen), Irish, Scottish
               and American fiddle tunes (O'Neill, Aird, Ryan), Palestrina masses and Trecento songs, string
               quartets by Haydn, Mozart and Beethoven. Five groups, sampled equally; train and test share no work.
    rendering  our own note sequencer drives tinysoundfont (a pip wheel around TinySoundFont) with the General MIDI
               soundfont TimGM6mb.sf2 that the pretty_midi wheel ships; no root, no apt, no network after `pip`.
               Each clip: one of 25 instruments or ensembles, a tempo of 60-160 BPM, a 30 s window of the piece
               (a short piece is looped), mono, -20 dBFS RMS, FLAC 16-bit at 24 kHz.
    captions   written by captions.py from each clip's attributes: the paper's two styles (Sec. 3.6, 4.1),
               long-form sentences (the role of LaMDA-LF) and short aspect tags (the role of MusicCaps' Rater-SF),
               plus a title prompt, drawn from many templates and synonyms.

    OUT/train/00000.flac ... + OUT/train/captions.jsonl   {"path": "00000.flac", "captions": [...]} per line
    OUT/test/...             + OUT/test/captions.jsonl    the same format a user's own folder has (see data.py)
    OUT/metadata.jsonl       every clip's attributes, split and captions

A clip is rendered to a temporary name and renamed, and only then are its lines appended, so a training run can
read a folder while it is being built, and an interrupted build resumes where it stopped.

A clip's "recipe" is its MIDI events, programs and attributes: everything but the sound, with every random draw
already made. `--export-recipes FILE` writes them all (5 MB gzipped for 2,200 clips); `--recipes FILE` renders the
same corpus from them, bit for bit, where music21 cannot be installed (we used it on an offline GPU server).
Usage: python data.py build [--out data/music21] [--train 2000] [--test 200] [--seed 0] [--workers 1]
                            [--export-recipes FILE | --recipes FILE]
"""

import argparse
import gzip
import importlib.util
import json
import math
import os
import random
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

from captions import describe, make_captions

RATE = 24000                 # data.SOURCE_RATE: the super-resolution stage's rate (Sec. 3.3.3)
TEST_FRACTION = 0.1          # [choice] of each group's works, held out for the test split
TEMPO_RANGE = (60, 160)      # beats per minute; a beat is the meter's beat (a dotted quarter in 6/8, a half in 2/2)

# Five groups, each a list of music21 corpus folders. [choice] equal weights, so that 8,545 Essen folk songs do not
# drown 46 quartet movements; within a group, works are used in a shuffled round-robin before any repeats.
GROUPS = {
    "chorale": ["bach"],
    "folk song": ["essenFolksong", "miscFolk"],
    "fiddle tune": ["oneills1850", "airdsAirs", "ryansMammoth", "nottingham-dataset"],
    "early polyphony": ["palestrina", "trecento"],
    "string quartet": ["haydn", "mozart", "beethoven"],
}
SKIP = re.compile(r"\.rntxt$|k545")  # Roman-numeral analyses are not scores; Mozart K. 545 is a piano sonata
EXTENSION_RANK = {".mxl": 0, ".xml": 1, ".krn": 2, ".abc": 3}   # the same movement in two formats: keep one

# (name, General MIDI programs from the top voice down, fewest voices it needs). An ensemble spreads its programs
# over the parts, so a string quartet really is violins over viola over cello.
INSTRUMENTS = [
    ("piano", (0,), 1), ("electric piano", (4,), 1), ("harpsichord", (6,), 1), ("music box", (10,), 1),
    ("vibraphone", (11,), 1), ("marimba", (12,), 1), ("church organ", (19,), 1), ("accordion", (21,), 1),
    ("nylon guitar", (24,), 1), ("steel guitar", (25,), 1), ("violin", (40,), 1), ("cello", (42,), 1),
    ("harp", (46,), 1), ("string ensemble", (48,), 1), ("choir", (52,), 1), ("trumpet", (56,), 1),
    ("brass section", (61,), 1), ("oboe", (68,), 1), ("clarinet", (71,), 1), ("flute", (73,), 1),
    ("recorder", (74,), 1), ("pan flute", (75,), 1),
    ("string quartet", (40, 40, 41, 42), 3), ("brass quartet", (56, 56, 60, 57), 3),
    ("woodwind quartet", (73, 68, 71, 70), 3),
]


# ----------------------------------------------------------------------------------------------------------------
# 1. Which works, and which clip comes from which (runs in the main process; deterministic for a seed)

def _clean_title(title):
    title = "".join(c for c in (title or "") if c.isprintable())         # some Essen titles hold stray bytes
    title = re.sub(r"\s+", " ", title.replace("--", " ").replace(":", "")).strip(" .,")
    return title.title() if title.isupper() else title


def list_works(groups=tuple(GROUPS)):
    """music21's metadata bundle -> {group: {work_id: [piece, ...]}}. A piece is one parseable score (a number in
    an ABC collection, one movement); a work groups the pieces that must stay in one split (a mass, a quartet)."""
    from music21 import corpus
    folder_group = {folder: g for g in groups for folder in GROUPS[g]}
    chosen = {}
    # [:] makes one list: iterating the bundle itself re-lists it at every step (minutes for 15,000 entries)
    for entry in corpus.corpora.CoreCorpus().metadataBundle[:]:
        path = str(entry.sourcePath).replace(os.sep, "/")
        folder, stem, ext = path.split("/")[0], os.path.splitext(path)[0], os.path.splitext(path)[1]
        if folder not in folder_group or SKIP.search(path) or ext not in EXTENSION_RANK:
            continue
        key = (stem, entry.number)
        if key in chosen and EXTENSION_RANK[ext] >= EXTENSION_RANK[os.path.splitext(chosen[key]["path"])[1]]:
            continue
        md = entry.metadata
        chosen[key] = {"path": path, "number": entry.number, "source": folder, "group": folder_group[folder],
                       "title": _clean_title(getattr(md, "title", None)),
                       "composer": getattr(md, "composer", None), "locale": getattr(md, "localeOfComposition", None)}
    works = {g: {} for g in groups}
    for (stem, number), piece in sorted(chosen.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        mass = re.match(r"palestrina/\w+?_(\d+)$", stem)
        if mass:                                          # Kyrie_27, Gloria_27, ...: movements of mass 27
            work = f"palestrina/mass{mass.group(1)}"
        elif re.search(r"/movement\d", stem):             # haydn/opus74no1/movement2: one quartet
            work = stem.rsplit("/", 1)[0]
        else:
            work = f"{stem}#{number}" if number is not None else stem
        piece["id"] = f"{stem}{os.path.splitext(piece['path'])[1]}" + (f"#{number}" if number is not None else "")
        works[piece["group"]].setdefault(work, []).append(piece)
    return works


def split_works(works, seed):
    """{group: {work: pieces}} -> {"train": {group: [pieces]}, "test": {group: [pieces]}}; no work in both."""
    splits = {"train": {}, "test": {}}
    for group, by_work in works.items():
        names = sorted(by_work)
        random.Random(f"{seed}/split/{group}").shuffle(names)
        n_test = max(1, round(TEST_FRACTION * len(names)))
        for split, part in (("test", names[:n_test]), ("train", names[n_test:])):
            pieces = [p for name in part for p in by_work[name]]
            random.Random(f"{seed}/order/{split}/{group}").shuffle(pieces)
            splits[split][group] = pieces
    return splits


def plan_clips(pieces_by_group, split, n, seed):
    """The first n clips of a split. Clip i depends only on (seed, split, i) and the clips before it, so a larger
    --train extends a smaller one and a resumed build plans the same clips."""
    groups = sorted(g for g, pieces in pieces_by_group.items() if pieces)
    cursor = Counter()
    plans = []
    for i in range(n):
        rng = random.Random(f"{seed}/{split}/{i}")
        group = rng.choice(groups)
        pieces = pieces_by_group[group]
        # the piece, then four fallbacks in case a score fails to parse or render
        candidates = [pieces[(cursor[group] + k) % len(pieces)] for k in range(min(5, len(pieces)))]
        cursor[group] += 1
        plans.append({"split": split, "index": i, "file": f"{i:05d}.flac", "candidates": candidates,
                      "seed": rng.randrange(2**31)})
    return plans


# ----------------------------------------------------------------------------------------------------------------
# 2. Score -> notes -> audio (runs in the worker processes)

def score_notes(score):
    """music21 score -> ([(onset, duration, midi pitch, part)] in quarter notes, parts, period, beat, bar, meter).
    Tied notes are merged by hand (music21's stripTies takes minutes on a long quartet movement)."""
    parts = list(score.parts) or [score]
    notes = []
    for part_index, part in enumerate(parts):
        held = {}                                                     # midi pitch -> index of its tied note
        for element in part.flatten().getElementsByClass(["Note", "Chord"]):
            duration = float(element.quarterLength)
            if duration <= 0 or element.duration.isGrace:
                continue
            onset = float(element.offset)
            for note in (element.notes if element.isChord else [element]):
                midi, tie = note.pitch.midi, note.tie.type if note.tie is not None else None
                if tie in ("continue", "stop") and midi in held:       # lengthen the note it continues
                    start = notes[held[midi]][0]
                    notes[held[midi]][1] = onset + duration - start
                    if tie == "stop":
                        del held[midi]
                    continue
                notes.append([onset, duration, midi, part_index])
                if tie in ("start", "continue"):
                    held[midi] = len(notes) - 1
    voices = len({n[3] for n in notes})
    signature = score.recurse().getElementsByClass("TimeSignature").first()
    beat = float(signature.beatDuration.quarterLength) if signature else 1.0
    bar = float(signature.barDuration.quarterLength) if signature else 4.0
    meter = signature.ratioString if signature else None
    return notes, voices, float(score.highestTime), beat, bar, meter


def find_key(score):
    """-> (tonic like 'B-flat', 'major' | 'minor'): music21's Krumhansl-Schmuckler analysis (the key signature
    alone cannot tell A minor from C major)."""
    try:
        key = score.analyze("key")
    except Exception:
        key = score.recurse().getElementsByClass("KeySignature").first().asKey()
    tonic = key.tonic.name.replace("-", "-flat").replace("#", "-sharp")
    return tonic, key.mode if key.mode in ("major", "minor") else "major"


def _channel(part):
    return part if part < 9 else part + 1                            # channel 9 is General MIDI's drum kit


def schedule(notes, parts, seconds_per_quarter, start, period, seconds, rng):
    """The MIDI events of `seconds` of the piece from quarter-note position `start`, looping it every `period`
    quarter notes. notes: [(onset, duration, midi, part)]; parts: how many parts (channel per part) ->
    [(time s, 0 = off | 1 = on, channel, key, velocity)], sorted. All the randomness of the sound is drawn here, so
    the events alone (a clip's "recipe") rebuild the clip exactly, with no score and no music21."""
    channels = [_channel(p) for p in range(parts)]
    loudness = rng.integers(70, 111)                                  # [choice] one dynamic level per clip
    events = []
    for cycle in range(math.floor(start / period), math.floor((start + seconds / seconds_per_quarter) / period) + 1):
        for onset, duration, midi, part in notes:
            t_on = (cycle * period + onset - start) * seconds_per_quarter
            # [choice] release a little early, so repeated notes are heard as repeated
            t_off = t_on + max(duration * seconds_per_quarter - 0.03, 0.5 * duration * seconds_per_quarter)
            if t_off <= 0 or t_on >= seconds:
                continue
            channel = channels[part % len(channels)]
            velocity = int(np.clip(loudness + rng.integers(-6, 7), 1, 127))
            events += [(max(t_on, 0.0), 1, channel, midi, velocity), (t_off, 0, channel, midi, 0)]
    events.sort()                                                     # at equal times, note-offs first
    return events


def synthesize(events, programs, seconds, soundfont):
    """Plays the events with one General MIDI program per part -> (seconds * RATE,) float32 mono."""
    import tinysoundfont
    synth = tinysoundfont.Synth(samplerate=RATE)                      # a fresh synth: no tails from the last clip
    font = synth.sfload(soundfont)
    for part, program in enumerate(programs):
        synth.program_select(_channel(part), font, 0, program)
    total, done, chunks = round(seconds * RATE), 0, []
    for t, is_on, channel, midi, velocity in events:
        target = min(round(t * RATE), total)
        if target > done:
            chunks.append(np.frombuffer(synth.generate(target - done), dtype=np.float32).copy())
            done = target
        synth.noteon(channel, midi, velocity) if is_on else synth.noteoff(channel, midi)
    if total > done:
        chunks.append(np.frombuffer(synth.generate(total - done), dtype=np.float32).copy())
    stereo = np.concatenate(chunks).reshape(-1, 2)                    # TinySoundFont renders interleaved stereo
    return stereo.mean(axis=1)


def normalize(audio, rms=0.1, peak=0.95):
    """[choice] -20 dBFS RMS, so clips are equally loud whatever the instrument, but never above `peak`."""
    level = float(np.sqrt(np.mean(audio ** 2)))
    if level < 1e-4:
        raise ValueError("the rendered clip is silent")
    return audio * min(rms / level, peak / float(np.abs(audio).max()))


def default_soundfont():
    spec = importlib.util.find_spec("pretty_midi")
    path = Path(spec.origin).parent / "TimGM6mb.sf2" if spec else None
    if path is None or not path.is_file():
        raise FileNotFoundError("TimGM6mb.sf2 not found: install pretty-midi (`make data` does), or pass "
                                "--soundfont PATH to any General MIDI .sf2 file.")
    return str(path)


def plan_clip(piece, seed, seconds):
    """One piece -> its recipe {"events", "programs", "attrs"}: everything but the sound. Needs music21; all that is
    random comes from `seed`."""
    from music21 import corpus
    rng = np.random.default_rng(seed)
    score = corpus.parse(piece["path"], number=piece["number"])
    notes, voices, period, beat, bar, meter = score_notes(score)
    if not notes or period <= 0:
        raise ValueError("the score has no notes")
    name, programs, _ = INSTRUMENTS[rng.choice([i for i, ins in enumerate(INSTRUMENTS) if ins[2] <= voices])]
    # An ensemble's programs spread over the parts from the top down (5 parts on a quartet: vn vn vn va vc).
    part_programs = [programs[p * len(programs) // voices] for p in range(voices)]
    bpm = int(rng.integers(TEMPO_RANGE[0], TEMPO_RANGE[1] + 1))
    seconds_per_quarter = 60.0 / (bpm * beat)
    length = seconds / seconds_per_quarter                               # the clip, in quarter notes
    start = math.floor(rng.uniform(0, period - length) / bar) * bar if period > length else 0.0
    parts = sorted({n[3] for n in notes})                                # renumber the parts that have notes
    notes = [(o, d, m, parts.index(p)) for o, d, m, p in notes]
    events = schedule(notes, len(part_programs), seconds_per_quarter, start, period, seconds, rng)
    tonic, mode = find_key(score)
    attrs = describe(piece, instrument=name, bpm=bpm, tonic=tonic, mode=mode, meter=meter, voices=voices)
    attrs.update(programs=part_programs, start_quarter=start, loops=math.ceil((start + length) / period),
                 seconds=seconds, rate=RATE)
    return {"events": events, "programs": part_programs, "attrs": attrs}


def play(recipe, soundfont):
    """A recipe -> (audio, attributes): the clip's sound, bit for bit the same wherever it is played, at the length
    its events were scheduled for."""
    audio = normalize(synthesize(recipe["events"], recipe["programs"], recipe["attrs"]["seconds"], soundfont))
    attrs = dict(recipe["attrs"], samples=len(audio), soundfont=Path(soundfont).name)
    return audio.astype(np.float32), attrs


def _first_playable(plan, seconds, soundfont):
    """The plan's piece, or the first of its fallbacks that parses and sounds -> (recipe, audio, attrs, failures)."""
    failures = []
    for piece in plan["candidates"]:
        try:
            recipe = plan_clip(piece, plan["seed"], seconds)
            return recipe, *play(recipe, soundfont), failures
        except Exception as err:
            first_line = str(err).splitlines()[0][:100] if str(err) else ""
            failures.append(f"{piece['id']}: {type(err).__name__}: {first_line}")
    return None, None, None, failures


def _work(job):
    """Worker: render one planned clip, from its recipe if the job carries one (no music21 then), else from the
    score -> (plan, attrs or None, failures)."""
    plan, folder, seconds, soundfont, seed = job
    if "recipe" in plan:
        recipe, failures = plan["recipe"], []
        audio, attrs = play(recipe, soundfont)
    else:
        recipe, audio, attrs, failures = _first_playable(plan, seconds, soundfont)
        if recipe is None:
            return plan, None, failures
    path = Path(folder) / plan["file"]
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, audio, RATE, format="FLAC", subtype="PCM_16")
    os.replace(tmp, path)                                      # the audio is complete before any line names it
    attrs["captions"] = make_captions(attrs, random.Random(f"{seed}/captions/{plan['split']}/{plan['index']}"))
    return plan, {"path": f"{plan['split']}/{plan['file']}", "split": plan["split"], **attrs}, failures


def _recipe_work(job):
    """Worker for --export-recipes: one planned clip -> (plan, recipe line or None, failures). It plays the clip
    too, so a fallback replaces a silent piece exactly as in a build."""
    plan, _folder, seconds, soundfont, _seed = job
    recipe, _audio, _attrs, failures = _first_playable(plan, seconds, soundfont)
    line = None if recipe is None else {"split": plan["split"], "index": plan["index"], "file": plan["file"],
                                        "recipe": recipe}
    return plan, line, failures


# ----------------------------------------------------------------------------------------------------------------
# 3. The build: resumable, append-only

def _read_done(path):
    """Paths already listed in a jsonl file. A last line cut short by a crash is removed first, so the next
    append starts on a fresh line."""
    if not path.exists():
        return set()
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        path.write_text(text, encoding="utf-8")
    return {json.loads(line)["path"] for line in text.splitlines() if line.strip()}


def _score_plans(n_train, n_test, seed, groups):
    """{"test": plans, "train": plans} from music21's scores (see plan_clips)."""
    splits = split_works(list_works(groups), seed)
    return {split: plan_clips(splits[split], split, n, seed) for split, n in (("test", n_test), ("train", n_train))}


def _planned_jobs(out, n_train, n_test, seed, seconds, soundfont, groups, recipes):
    """The clips still to render -> (jobs, how many are already there). From music21's scores, or, with `recipes`
    (a file from --export-recipes), from the recipes it holds: then music21 is not needed at all."""
    if recipes:
        with gzip.open(recipes, "rt", encoding="utf-8") as f:
            lines = [json.loads(line) for line in f if line.strip()]
        by_split = {s: sorted((ln for ln in lines if ln["split"] == s), key=lambda ln: ln["index"])
                    for s in ("test", "train")}
        plans = {"test": by_split["test"][:n_test], "train": by_split["train"][:n_train]}
    else:
        plans = _score_plans(n_train, n_test, seed, groups)
    jobs, present = [], 0
    for split in ("test", "train"):                         # test first: training previews read it early
        (out / split).mkdir(parents=True, exist_ok=True)
        done = _read_done(out / split / "captions.jsonl")
        for plan in plans[split]:
            if plan["file"] in done:
                present += 1
            else:
                jobs.append((plan, str(out / split), seconds, soundfont, seed))
    return jobs, present


def _results(function, jobs, workers):
    """function(job) for every job, in `workers` processes (in the order they finish), as a tqdm iterator."""
    from tqdm import tqdm
    if workers > 1:
        import multiprocessing
        pool = multiprocessing.get_context("spawn").Pool(workers, maxtasksperchild=200)
        results = pool.imap_unordered(function, jobs)
    else:
        pool, results = None, map(function, jobs)
    try:
        yield from tqdm(results, total=len(jobs), desc="rendering", unit="clip")
    finally:
        if pool is not None:
            pool.terminate()


def build(out, n_train=2000, n_test=200, seed=0, workers=1, seconds=30.0, soundfont=None, groups=tuple(GROUPS),
          recipes=None):
    """Render the corpus into `out`; returns {"written", "present", "failed", "skipped"} counts."""
    out, soundfont = Path(out), soundfont or default_soundfont()
    t0 = time.time()
    jobs, present = _planned_jobs(out, n_train, n_test, seed, seconds, soundfont, groups, recipes)
    metadata = out / "metadata.jsonl"
    in_metadata = _read_done(metadata)
    failed, skipped, written = Counter(), 0, 0
    print(f"{out}: {present} clips already there, {len(jobs)} to render with {workers} worker(s)")
    with open(metadata, "a", encoding="utf-8") as meta_file:
        for plan, attrs, failures in _results(_work, jobs, workers):
            failed.update(f.split(":")[0] for f in failures)
            if attrs is None:
                skipped += 1
                continue
            if attrs["path"] not in in_metadata:
                meta_file.write(json.dumps(attrs, ensure_ascii=False) + "\n")
                meta_file.flush()
            line = {"path": plan["file"], "captions": attrs["captions"]}
            with open(out / plan["split"] / "captions.jsonl", "a", encoding="utf-8") as listing:
                listing.write(json.dumps(line, ensure_ascii=False) + "\n")     # last: the clip now exists
            written += 1
    print(f"wrote {written} clips in {time.time() - t0:.0f} s ({present} were already there); "
          f"{skipped} planned clips skipped; {sum(failed.values())} score failures in {len(failed)} scores")
    for piece_id, count in failed.most_common(10):
        print(f"  failed: {piece_id} ({count}x)")
    return {"written": written, "present": present, "failed": sum(failed.values()), "skipped": skipped}


def export_recipes(path, n_train=2000, n_test=200, seed=0, workers=1, seconds=30.0, soundfont=None,
                   groups=tuple(GROUPS)):
    """Write every planned clip's recipe (MIDI events, programs, attributes) to `path` (gzipped JSON lines,
    5 MB for the whole corpus), so that `build(..., recipes=path)` makes the same corpus, bit for bit, on a
    machine that cannot install music21 (an offline GPU server). Returns how many recipes were written."""
    path, soundfont = Path(path), soundfont or default_soundfont()
    jobs = [(plan, None, seconds, soundfont, seed) for plans in _score_plans(n_train, n_test, seed, groups).values()
            for plan in plans]
    lines = [line for _plan, line, _failures in _results(_recipe_work, jobs, workers) if line is not None]
    lines.sort(key=lambda ln: (ln["split"], ln["index"]))
    text = "".join(json.dumps(ln, separators=(",", ":")) + "\n" for ln in lines)
    tmp = path.with_name(f".{path.name}.tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    print(f"wrote {len(lines)} recipes to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return len(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python data.py build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="data/music21", help="output folder (gitignored)")
    parser.add_argument("--train", type=int, default=2000, help="training clips")
    parser.add_argument("--test", type=int, default=200, help="test clips (from works never used for training)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same corpus")
    parser.add_argument("--workers", type=int, default=1, help="rendering processes")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (Sec. 3.5: 30 s)")
    parser.add_argument("--soundfont", default=None, help="a General MIDI .sf2 (default: pretty_midi's TimGM6mb)")
    parser.add_argument("--export-recipes", metavar="FILE", default=None,
                        help="write the clips' recipes (.jsonl.gz) instead of audio: carry them to a machine without "
                             "music21 and build there with --recipes FILE")
    parser.add_argument("--recipes", metavar="FILE", default=None,
                        help="build from a --export-recipes file (needs no music21; the same audio bit for bit)")
    parser.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated subset of: {', '.join(GROUPS)}")
    args = parser.parse_args(argv)
    groups = tuple(g.strip() for g in args.groups.split(",") if g.strip())
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {unknown}; choose from {list(GROUPS)}")
    if args.recipes and not Path(args.recipes).is_file():
        parser.error(f"--recipes {args.recipes}: no such file; make one with --export-recipes on a machine with music21")
    try:
        if args.export_recipes:
            export_recipes(args.export_recipes, args.train, args.test, args.seed, args.workers, args.seconds,
                           args.soundfont, groups)
        else:
            build(args.out, args.train, args.test, args.seed, args.workers, args.seconds, args.soundfont, groups,
                  args.recipes)
    except (FileNotFoundError, ImportError) as err:
        print(f"error: {err}")
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume.")
        return 130
    return 0
