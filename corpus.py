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
    captions   the paper's two styles (Sec. 3.6, 4.1): long-form sentences (the role of LaMDA-LF) and short aspect
               tags (the role of MusicCaps' Rater-SF), plus a title prompt, drawn from many templates and synonyms.

    OUT/train/00000.flac ... + OUT/train/captions.jsonl   {"path": "00000.flac", "captions": [...]} per line
    OUT/test/...             + OUT/test/captions.jsonl    the same format a user's own folder has (see data.py)
    OUT/metadata.jsonl       every clip's attributes, split and captions

A clip is rendered to a temporary name and renamed, and only then are its lines appended, so a training run can
read a folder while it is being built, and an interrupted build resumes where it stopped.
Usage: python data.py build [--out data/music21] [--train 2000] [--test 200] [--seed 0] [--workers 1]
"""

import argparse
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


def render(notes, programs, seconds_per_quarter, start, period, seconds, soundfont, rng):
    """Plays `seconds` of the piece from quarter-note position `start`, looping it every `period` quarter notes.
    notes: [(onset, duration, midi, part)]; programs: one General MIDI program per part -> (seconds * RATE,) float32."""
    import tinysoundfont
    synth = tinysoundfont.Synth(samplerate=RATE)                      # a fresh synth: no tails from the last clip
    font = synth.sfload(soundfont)
    channels = [p if p < 9 else p + 1 for p in range(len(programs))]  # channel 9 is General MIDI's drum kit
    for channel, program in zip(channels, programs):
        synth.program_select(channel, font, 0, program)
    loudness = rng.integers(70, 111)                                  # [choice] one dynamic level per clip
    events = []                                                       # (time s, 0 = off | 1 = on, channel, key, vel)
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


def make_clip(piece, seed, seconds, soundfont):
    """One piece -> (audio, attributes). Everything random comes from `seed`."""
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
    audio = normalize(render(notes, part_programs, seconds_per_quarter, start, period, seconds, soundfont, rng))
    tonic, mode = find_key(score)
    attrs = describe(piece, instrument=name, bpm=bpm, tonic=tonic, mode=mode, meter=meter, voices=voices)
    attrs.update(programs=part_programs, start_quarter=start, loops=math.ceil((start + length) / period),
                 seconds=seconds, rate=RATE, samples=len(audio), soundfont=Path(soundfont).name)
    return audio.astype(np.float32), attrs


def _work(job):
    """Worker: render one planned clip (trying its fallback pieces in turn) -> (plan, attrs or None, failures)."""
    plan, folder, seconds, soundfont, seed = job
    failures = []
    for piece in plan["candidates"]:
        try:
            audio, attrs = make_clip(piece, plan["seed"], seconds, soundfont)
        except Exception as err:
            first_line = str(err).splitlines()[0][:100] if str(err) else ""
            failures.append(f"{piece['id']}: {type(err).__name__}: {first_line}")
            continue
        path = Path(folder) / plan["file"]
        tmp = path.with_name(f".{path.name}.tmp")
        sf.write(tmp, audio, RATE, format="FLAC", subtype="PCM_16")
        os.replace(tmp, path)                                  # the audio is complete before any line names it
        attrs["captions"] = make_captions(attrs, random.Random(f"{seed}/captions/{plan['split']}/{plan['index']}"))
        return plan, {"path": f"{plan['split']}/{plan['file']}", "split": plan["split"], **attrs}, failures
    return plan, None, failures


# ----------------------------------------------------------------------------------------------------------------
# 3. What a clip is, and what its captions say (Sec. 3.6, 4.1: long-form sentences and short aspect tags)

COMPOSERS = {"bach": "Johann Sebastian Bach", "palestrina": "Giovanni Pierluigi da Palestrina",
             "haydn": "Joseph Haydn", "mozart": "Wolfgang Amadeus Mozart", "beethoven": "Ludwig van Beethoven"}
ERAS = {"bach": "Baroque", "palestrina": "Renaissance", "trecento": "medieval", "haydn": "Classical",
        "mozart": "Classical", "beethoven": "Classical"}
# Essen's place names (German) and the collections' origins -> an adjective for the captions.
REGIONS = [("China", "Chinese"), ("Irland", "Irish"), ("Luxemburg", "Luxembourgish"), ("Lothringen", "Lorraine"),
           ("Oesterreich", "Austrian"), ("Schweiz", "Swiss"), ("Niederlande", "Dutch"), ("Polen", "Polish"),
           ("Deutschland", "German"), ("oneills1850", "Irish"), ("airdsAirs", "Scottish"),
           ("nottingham", "English"), ("northumbrian", "Northumbrian"), ("americanfife", "American")]
DANCES = ["slip jig", "reel", "jig", "hornpipe", "strathspey", "polka", "waltz", "march", "quickstep", "schottische",
          "minuet", "gavotte", "clog", "slide"]
# instrument -> (noun phrases, the same for several voices on it (None: it plays chords anyway), how it sounds, tags)
WORDS = {
    "piano": (["a piano", "solo piano", "an acoustic piano", "a grand piano"], None, "on",
              ["piano", "acoustic piano", "keys"]),
    "electric piano": (["an electric piano", "a Rhodes-style electric piano", "a mellow electric piano"], None, "on",
                       ["electric piano", "rhodes", "keys"]),
    "harpsichord": (["a harpsichord", "a bright harpsichord"], None, "on", ["harpsichord", "baroque keyboard"]),
    "music box": (["a music box", "a tinkling music box"], None, "on", ["music box", "bell-like tones"]),
    "vibraphone": (["a vibraphone", "a shimmering vibraphone"], None, "on", ["vibraphone", "mallet percussion"]),
    "marimba": (["a marimba", "a wooden marimba"], None, "on", ["marimba", "mallet percussion"]),
    "church organ": (["a church organ", "a pipe organ", "an organ"], None, "on",
                     ["church organ", "pipe organ", "organ"]),
    "accordion": (["an accordion", "a squeezebox"], None, "on", ["accordion", "squeezebox"]),
    "nylon guitar": (["a nylon-string guitar", "a classical guitar"], None, "on", ["classical guitar", "nylon guitar"]),
    "steel guitar": (["a steel-string acoustic guitar", "an acoustic guitar"], None, "on",
                     ["acoustic guitar", "steel-string guitar"]),
    "violin": (["a solo violin", "a violin", "a fiddle"], ["violins", "a group of violins"], "on",
               ["violin", "fiddle"]),
    "cello": (["a solo cello", "a cello"], ["cellos", "a cello ensemble"], "on", ["cello", "low strings"]),
    "harp": (["a harp", "a concert harp"], None, "on", ["harp", "plucked strings"]),
    "string ensemble": (["a string ensemble", "a string orchestra", "lush strings"], None, "by",
                        ["strings", "string ensemble", "orchestral strings"]),
    "choir": (["a wordless choir", "a choir singing 'aah'", "choir voices"], None, "sung",
              ["choir", "wordless vocals"]),
    "trumpet": (["a solo trumpet", "a trumpet"], ["trumpets", "a trumpet ensemble"], "on", ["trumpet", "brass"]),
    "brass section": (["a brass section", "a brass ensemble"], None, "by", ["brass section", "brass"]),
    "oboe": (["a solo oboe", "an oboe"], ["oboes", "a group of oboes"], "on", ["oboe", "double reed", "woodwind"]),
    "clarinet": (["a solo clarinet", "a clarinet"], ["clarinets", "a clarinet choir"], "on", ["clarinet", "woodwind"]),
    "flute": (["a solo flute", "a flute"], ["flutes", "a flute choir"], "on", ["flute", "woodwind"]),
    "recorder": (["a recorder", "a wooden recorder"], ["recorders", "a recorder consort"], "on",
                 ["recorder", "woodwind"]),
    "pan flute": (["a pan flute", "breathy pan pipes"], ["pan flutes", "several pan pipes"], "on",
                  ["pan flute", "pan pipes"]),
    "string quartet": (["a string quartet", "two violins, viola and cello"], None, "by", ["string quartet", "strings"]),
    "brass quartet": (["a brass quartet", "trumpets, horn and trombone"], None, "by", ["brass quartet", "brass"]),
    "woodwind quartet": (["a woodwind quartet", "flute, oboe, clarinet and bassoon"], None, "by",
                         ["woodwind quartet", "woodwinds"]),
}
VERBS = {"on": (["played on", "performed on", "rendered on"], ["play", "perform"], "playing"),
         "by": (["played by", "performed by"], ["play", "perform"], "playing"),
         "sung": (["sung by", "performed by"], ["sing", "perform"], "singing")}
# [choice] tempo words: slow below 80 BPM, fast above 115
TEMPO_WORDS = {"slow": (["slow", "unhurried", "leisurely", "relaxed"], ["slowly", "at a slow pace", "unhurriedly"],
                        ["adagio", "largo"]),
               "moderate": (["moderate", "medium", "steady", "comfortable"],
                            ["at a moderate pace", "at a steady walking pace", "at a medium tempo"],
                            ["andante", "moderato"]),
               "fast": (["fast", "quick", "brisk", "lively"], ["quickly", "briskly", "at a fast pace"],
                        ["allegro", "vivace"])}
TEMPO_PREFIX = {"slow": ["slow", "unhurried", "leisurely"], "moderate": ["mid-tempo", "moderately paced", "steady"],
                "fast": ["fast", "brisk", "lively", "quick"]}       # words that can stand before a genre
MOODS = {("major", "slow"): ["calm", "peaceful", "serene", "warm"],
         ("major", "moderate"): ["bright", "pleasant", "gentle", "sunny"],
         ("major", "fast"): ["cheerful", "joyful", "upbeat", "energetic"],
         ("minor", "slow"): ["melancholic", "mournful", "somber", "wistful"],
         ("minor", "moderate"): ["pensive", "melancholic", "bittersweet", "dark"],
         ("minor", "fast"): ["restless", "dramatic", "urgent", "driving"]}
NUMBERS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def describe(piece, *, instrument, bpm, tonic, mode, meter, voices):
    """A piece and the rendering choices -> the clip's attributes (everything the captions may say)."""
    source, path, title = piece["source"], piece["path"], piece["title"] or None
    group = next(g for g, folders in GROUPS.items() if source in folders)
    composer = COMPOSERS.get(source) or re.sub(r"^by |\.$", "", (piece["composer"] or "").strip()) or None
    if composer and composer.lower() in ("anonymous", "traditional", "trad"):
        composer = None
    where = f"{piece['locale'] or ''} {source} {path}"
    region = next((adj for key, adj in REGIONS if key in where), None)
    dance = next((d for d in DANCES if re.search(rf"\b{d}s?\b", (title or "").lower())), None)
    if source == "bach" and not title:
        title = "Chorale BWV " + re.search(r"bwv([\d.]+?)(\.mxl|\.xml|\.krn)", path).group(1)
    work = re.search(r"(opus\d+)(no\d+)?(?:/movement(\d+))?|k(\d+)/movement(\d+)", path)
    if group == "string quartet" and work:
        op, no, mvt, k, kmvt = work.groups()
        title = ("String Quartet " + (f"K. {k}" if k else f"Op. {op[4:]}" + (f" No. {no[2:]}" if no else ""))
                 + (f", movement {mvt or kmvt}" if (mvt or kmvt) else ""))
    genre = {"chorale": "chorale", "folk song": "folk song", "fiddle tune": "fiddle tune",
             "string quartet": "string quartet"}.get(group) or (
        "medieval polyphony" if source == "trecento" else "Renaissance polyphony")
    tempo = "slow" if bpm < 80 else "fast" if bpm > 115 else "moderate"
    return {"piece": piece["id"], "source": source, "group": group, "genre": genre, "title": title,
            "composer": composer, "era": ERAS.get(source, "traditional"), "region": region, "dance": dance,
            "instrument": instrument, "bpm": bpm, "tempo": tempo, "key": tonic, "mode": mode, "meter": meter,
            "voices": voices}


def _an(word):
    """The indefinite article for a word: 'a' or 'an'."""
    return "an" if word[0].lower() in "aeiou" else "a"


def _a(adjective, phrase):
    """Put an adjective after a phrase's article: ('slow', 'an old tune') -> 'a slow old tune'."""
    article, _, rest = phrase.partition(" ")
    if article not in ("a", "an"):
        return f"{adjective} {phrase}"
    return f"{_an(adjective)} {adjective} {rest}"


def _singular(phrase):
    """'a flute', 'solo piano' take 'plays'; 'lush strings', 'flute, oboe, clarinet and bassoon' take 'play'."""
    return phrase.split(" ")[0] in ("a", "an", "solo")


def _cap(text):
    return text[0].upper() + text[1:]


def _genre_phrases(a):
    region, dance, surname = a["region"], a["dance"], (a["composer"] or "").split(" ")[-1]
    if a["genre"] == "chorale":
        return ["a Bach chorale", "a Baroque chorale", "a Lutheran chorale", "a hymn-like chorale",
                "a chorale harmonization by Bach"] + (["a four-part chorale"] if a["voices"] == 4 else [])
    if a["genre"] == "folk song":
        return ["a folk song", "a traditional folk melody", "an old folk tune", "a simple folk song"] + (
            [f"{_an(region)} {region} folk song", f"a traditional {region} melody", f"{_an(region)} {region} folk tune"]
            if region else [])
    if a["genre"] == "fiddle tune":
        return (["a fiddle tune", "a traditional dance tune", "an old fiddle tune"]
                + ([f"{_an(region)} {region} fiddle tune", f"a traditional {region} tune"] if region else [])
                + ([f"a {dance}", f"a traditional {dance}", f"an old {dance}"] if dance else [])
                + ([f"{_an(region)} {region} {dance}"] if region and dance else []))
    if a["genre"] == "medieval polyphony":
        return ["medieval polyphony", "a fourteenth-century Italian song", "a Trecento piece",
                "an Ars Nova composition", "early medieval part music"]
    if a["genre"] == "Renaissance polyphony":
        mass = a["title"] if a["title"] in ("Kyrie", "Gloria", "Credo", "Sanctus", "Benedictus", "Agnus Dei") else None
        return ["Renaissance polyphony", "a Renaissance mass movement", "sacred Renaissance polyphony",
                "a polyphonic mass setting", "late-Renaissance church music"] + (
            [f"the {mass} of a Renaissance mass", f"a polyphonic {mass} by Palestrina"] if mass else [])
    return ["a string quartet movement", "Classical-era chamber music", "a Classical string quartet",
            f"a movement from a {surname} string quartet", "a chamber piece from the Classical period"]


def _sentences(a, rng):
    """The optional sentences of a long-form caption, one list of variants per aspect."""
    adjectives, adverbs, italian = TEMPO_WORDS[a["tempo"]]
    word, bpm = rng.choice(adjectives), a["bpm"]
    bpm_clause = rng.choice(["", "", f", around {bpm} BPM", f" at about {bpm} beats per minute", f" ({bpm} bpm)"])
    key, mood = f"{a['key']} {a['mode']}", rng.choice(MOODS[a["mode"], a["tempo"]])
    n = a["voices"]
    out = {"tempo": [f"The tempo is {word}{bpm_clause}.", f"It moves at {_a(word, 'a pace')}{bpm_clause}.",
                     f"It is played {rng.choice(adverbs)}{bpm_clause}.", f"At {bpm} BPM, it feels {word}.",
                     f"The tempo marking would be {rng.choice(italian)}, about {bpm} beats per minute.",
                     f"The pulse is {word}{bpm_clause}."],
           "key": [f"It is in {key}.", f"The piece is in the key of {key}.", f"Set in {key}, it sounds {mood}.",
                   f"The harmony centres on {key}, giving {_a(mood, 'a mood')}.", f"The key is {key}."],
           "mood": [f"The mood is {mood}.", f"It sounds {mood} and {rng.choice(['clear', 'simple', 'unadorned'])}.",
                    f"Overall the feeling is {mood}."]}
    if a["meter"]:
        feel = {"3": "triple", "6": "lilting compound", "9": "compound triple", "12": "compound", "2": "duple",
                "4": "four-beat"}.get(a["meter"].split("/")[0], "regular")
        out["meter"] = [f"It is in {a['meter']} time.", f"The meter is {a['meter']}.",
                        f"It has a {feel} feel in {a['meter']}."]
    if n == 1:
        out["texture"] = ["It is a single melodic line with no accompaniment.",
                          "The texture is monophonic: one unaccompanied melody.", "Only the melody is heard."]
    else:
        count = NUMBERS[n] if n < len(NUMBERS) else str(n)
        out["texture"] = [f"The texture is {count}-part harmony.", f"{_cap(count)} voices move in counterpoint.",
                          f"The music is polyphonic, with {count} interweaving lines."]
    if a["composer"]:
        out["origin"] = [f"It was composed by {a['composer']}.", f"The music is by {a['composer']}.",
                         f"A piece by {a['composer'].split(' ')[-1]}" + (
                             f", from the {a['era']} era." if a["era"] != "traditional" else ".")]
    else:
        out["origin"] = ["It is a traditional tune of unknown authorship.", "The melody is traditional."] + (
            [f"The tune comes from the {a['region']} tradition."] if a["region"] else [])
    if a["title"]:
        out["title"] = [f"The piece is titled \"{a['title']}\".", f"The tune is called \"{a['title']}\"."]
    return out


def _long_caption(a, rng):
    words, plural, how, _ = WORDS[a["instrument"]]
    inst = rng.choice(plural if plural and a["voices"] > 1 else words)
    genre = rng.choice(_genre_phrases(a))
    if rng.random() < 0.25:                                     # a tempo word inside the first sentence
        genre = _a(rng.choice(TEMPO_PREFIX[a["tempo"]]), genre)
    played, plays, playing = rng.choice(VERBS[how][0]), rng.choice(VERBS[how][1]), VERBS[how][2]
    plays += "s" if _singular(inst) else ""
    intro = rng.choice([f"{_cap(genre)} {played} {inst}.", f"{_cap(inst)} {plays} {genre}.",
                        f"This is {genre} {played} {inst}.", f"An arrangement of {genre} for {inst}.",
                        f"Here {genre} is {played} {inst}.", f"The sound of {inst} {playing} {genre}.",
                        f"A recording of {genre} {played} {inst}.", f"{_cap(genre)}, {played} {inst}."])
    optional = _sentences(a, rng)
    aspects = list(optional)
    rng.shuffle(aspects)
    chosen = aspects[: rng.randint(1, 3)]
    if "tempo" not in chosen and rng.random() < 0.6:           # tempo is the aspect a user asks for most
        chosen.insert(rng.randint(0, len(chosen)), "tempo")
    return " ".join([intro] + [rng.choice(optional[k]) for k in chosen])


def _tags(a, rng):
    """Short aspect tags in MusicCaps' style: lower case, comma-separated, the instrument always present."""
    tags = [rng.choice(WORDS[a["instrument"]][3])]
    pool = [rng.choice(WORDS[a["instrument"]][3]), a["genre"].lower(), f"{a['tempo']} tempo", f"{a['bpm']} bpm",
            f"{a['key']} {a['mode']}".lower(), f"{a['mode']} key", rng.choice(MOODS[a["mode"], a["tempo"]]),
            a["era"].lower(), "solo melody" if a["voices"] == 1 else "polyphonic",
            "choir" if a["instrument"] == "choir" else rng.choice(["instrumental", "no vocals"])]
    pool += [t for t in (a["meter"] and f"{a['meter']} time", a["region"] and a["region"].lower(), a["dance"],
                         a["composer"] and a["composer"].split(" ")[-1].lower()) if t]
    rng.shuffle(pool)
    return ", ".join(dict.fromkeys(tags + pool[: rng.randint(4, 8)]))


def make_captions(a, rng):
    """4 long-form captions, 2 tag lists and, when the piece has one, a title prompt. Training picks one at random
    (Sec. 4.1's text batch)."""
    long_form = []
    while len(long_form) < 4:
        caption = _long_caption(a, rng)
        if caption not in long_form:
            long_form.append(caption)
    captions = long_form + [_tags(a, rng), _tags(a, rng)]
    if a["title"]:
        words = WORDS[a["instrument"]][3][0]
        by = f"{a['title']} by {a['composer']}" if a["composer"] else f"{a['title']}, {a['genre']}"
        captions.append(rng.choice([by,
                                    f"{a['title']}, {words}", f"{a['title']} ({a['genre']}, {words})"]))
    return captions


# ----------------------------------------------------------------------------------------------------------------
# 4. The build: resumable, append-only

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


def build(out, n_train=2000, n_test=200, seed=0, workers=1, seconds=30.0, soundfont=None, groups=tuple(GROUPS)):
    """Render the corpus into `out`; returns {"written", "present", "failed", "skipped"} counts."""
    from tqdm import tqdm
    out, soundfont = Path(out), soundfont or default_soundfont()
    t0 = time.time()
    splits = split_works(list_works(groups), seed)
    metadata = out / "metadata.jsonl"
    jobs, present = [], 0
    for split, n in (("test", n_test), ("train", n_train)):     # test first: training previews read it early
        (out / split).mkdir(parents=True, exist_ok=True)
        done = _read_done(out / split / "captions.jsonl")
        for plan in plan_clips(splits[split], split, n, seed):
            if plan["file"] in done:
                present += 1
            else:
                jobs.append((plan, str(out / split), seconds, soundfont, seed))
    in_metadata = _read_done(metadata)
    failed, skipped, written = Counter(), 0, 0
    print(f"{out}: {present} clips already there, {len(jobs)} to render with {workers} worker(s)")
    if workers > 1:
        import multiprocessing
        pool = multiprocessing.get_context("spawn").Pool(workers, maxtasksperchild=200)
        results = pool.imap_unordered(_work, jobs)
    else:
        pool, results = None, map(_work, jobs)
    try:
        with open(metadata, "a", encoding="utf-8") as meta_file:
            for plan, attrs, failures in tqdm(results, total=len(jobs), desc="rendering", unit="clip"):
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
    finally:
        if pool is not None:
            pool.terminate()
    print(f"wrote {written} clips in {time.time() - t0:.0f} s ({present} were already there); "
          f"{skipped} planned clips skipped; {sum(failed.values())} score failures in {len(failed)} scores")
    for piece_id, count in failed.most_common(10):
        print(f"  failed: {piece_id} ({count}x)")
    return {"written": written, "present": present, "failed": sum(failed.values()), "skipped": skipped}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python data.py build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="data/music21", help="output folder (gitignored)")
    parser.add_argument("--train", type=int, default=2000, help="training clips")
    parser.add_argument("--test", type=int, default=200, help="test clips (from works never used for training)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same corpus")
    parser.add_argument("--workers", type=int, default=1, help="rendering processes")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (Sec. 3.5: 30 s)")
    parser.add_argument("--soundfont", default=None, help="a General MIDI .sf2 (default: pretty_midi's TimGM6mb)")
    parser.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated subset of: {', '.join(GROUPS)}")
    args = parser.parse_args(argv)
    groups = tuple(g.strip() for g in args.groups.split(",") if g.strip())
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {unknown}; choose from {list(GROUPS)}")
    try:
        build(args.out, args.train, args.test, args.seed, args.workers, args.seconds, args.soundfont, groups)
    except (FileNotFoundError, ImportError) as err:
        print(f"error: {err}")
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume.")
        return 130
    return 0
