"""Captions for a corpus clip, written from its attributes: the paper's two caption styles, true by construction.

Noise2Music has no text for its training audio, so it pseudo-labels it (Sec. 3.6, App. C; PAPER_NOTES §6-7):
MuLan ranks two caption vocabularies against each clip, long-form sentences that LaMDA wrote about 150k songs
(LaMDA-LF) and the short aspect tags of MusicCaps' raters (Rater-SF), and a clip keeps 3 of the former and 6 of the
latter, next to its title and entity tags; each training step picks one element of that text batch (Sec. 4.1).
Our clips are rendered from scores we chose (corpus.py), so nothing has to be guessed: the captions below are TRUE
by construction and play the same two roles ([choice] 4 long-form captions and 2 tag lists per clip, where the
paper keeps 3 and 6):

    long form  4 distinct captions (the role of LaMDA-LF): an opening sentence naming the genre and the instrument,
               then one to four sentences on other aspects (tempo, key, mood, meter, texture, composer or
               tradition, title) in a random order; tempo is the aspect most often added.
    tags       2 lists of comma-separated, lower-case aspect tags, the instrument's first (the role of Rater-SF).
    title      when the piece has one, a prompt like "Kyrie by Giovanni Pierluigi da Palestrina" (the title prompt).

Every phrase is drawn from several templates and synonyms ("a fiddle" / "a solo violin", "brisk" / "quick"), so a
model cannot key on one fixed sentence: it has to read the words that carry the attributes.

    describe(piece, *, instrument, bpm, tonic, mode, meter, voices) -> attribute dict: what a caption may say
    make_captions(attributes, rng: random.Random) -> [str]: 6 captions, or 7 when the piece has a title

The same attributes and the same rng state give the same captions, so a corpus build is reproducible.
"""

import re


# ----------------------------------------------------------------------------------------------------------------
# 1. What a clip is: the attributes a caption may mention

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
# instrument (a name in corpus.INSTRUMENTS) -> (noun phrases, the same for several voices on it (None: it
# plays chords anyway), how it sounds, tags)
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
    """A piece (a dict from corpus.list_works) and the rendering choices -> the clip's attributes (everything the
    captions may say): genre, title, composer, era, region, dance, instrument, bpm, tempo, key, mode, meter, voices."""
    source, path, title = piece["source"], piece["path"], piece["title"] or None
    group = piece["group"]                                  # set by corpus.list_works from the folder
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


# ----------------------------------------------------------------------------------------------------------------
# 2. Writing the captions (Sec. 3.6, 4.1: long-form sentences and short aspect tags)

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


def _long_caption(a, rng, mentioned=None):
    """One long-form caption; `mentioned`, if a list, receives the optional aspects the caption mentions."""
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
    if mentioned is not None:
        mentioned.extend(chosen)
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
# 3. A caption vocabulary for pseudo-labelling (Sec. 3.6; pseudolabel.py)
#
# The paper ranks two vocabularies against each clip: 4M long-form sentences that LaMDA wrote about 150k songs
# (LaMDA-LF) and 23,906 short aspect tags from MusicCaps (Rater-SF). Ours are written the same way the corpus
# captions are, but about imagined pieces: random attributes, not any clip's. Each entry carries its CLAIMS,
# {aspect: set of values that make it true}, so that pseudo-labels can be checked against a clip's true attributes.

TONICS = ["C", "C-sharp", "D", "E-flat", "E", "F", "F-sharp", "G", "A-flat", "A", "B-flat", "B"]
METERS = ["4/4", "3/4", "2/4", "6/8", "3/8", "2/2", "9/8", "12/8"]
GENRES = ["chorale", "folk song", "fiddle tune", "medieval polyphony", "Renaissance polyphony", "string quartet"]


def imagined_attributes(rng):
    """Random attributes of a piece that need not exist (the role of LaMDA's songs): same keys as describe()."""
    genre = rng.choice(GENRES)
    source = {"chorale": "bach", "Renaissance polyphony": "palestrina", "medieval polyphony": "trecento",
              "string quartet": rng.choice(["haydn", "mozart", "beethoven"])}.get(genre)
    instrument = rng.choice(sorted(WORDS))
    voices = 4 if instrument.endswith("quartet") or rng.random() < 0.5 else 1
    region = rng.choice([None] + sorted({adj for _, adj in REGIONS})) if genre in ("folk song", "fiddle tune") else None
    bpm = rng.randint(60, 160)
    return {"genre": genre, "title": None, "composer": COMPOSERS.get(source), "era": ERAS.get(source, "traditional"),
            "region": region, "dance": rng.choice([None] + DANCES) if genre == "fiddle tune" else None,
            "instrument": instrument, "bpm": bpm, "tempo": "slow" if bpm < 80 else "fast" if bpm > 115 else "moderate",
            "key": rng.choice(TONICS), "mode": rng.choice(["major", "minor"]), "meter": rng.choice(METERS),
            "voices": voices}


def canonical_key(tonic, mode):
    """('D-flat', 'major') -> 'C-sharp major' spelled as TONICS does, so enharmonic spellings compare equal."""
    from mir import pitch_class           # here: building the corpus needs captions.py, never mir.py's torch
    return f"{TONICS[pitch_class(tonic)]} {mode}"


def truth_claims(a):
    """A clip's attributes -> {aspect: value}, the aspects a vocabulary entry may claim."""
    return {"instrument": a["instrument"], "genre": a["genre"], "tempo": a["tempo"], "mode": a["mode"],
            "key": canonical_key(a["key"], a["mode"]), "meter": a["meter"], "era": a["era"],
            "texture": "solo" if a["voices"] == 1 else "polyphonic"}


def _long_claims(a, aspects):
    claims = {"instrument": {a["instrument"]}, "genre": {a["genre"]}}     # the opening sentence names both
    for aspect, keys in (("tempo", ["tempo"]), ("key", ["key", "mode"]), ("meter", ["meter"]),
                         ("texture", ["texture"])):
        if aspect in aspects:
            truth = truth_claims(a)
            claims.update({k: {truth[k]} for k in keys})
    return claims


def _tag_vocabulary():
    """Every short tag the corpus's tag captions use -> its claims (a tag like 'brass' is true of 3 instruments)."""
    tags = {}
    for name, (_, _, _, words) in WORDS.items():
        for word in words:
            tags.setdefault(word, {"instrument": set()})["instrument"].add(name)
    tags.update({g.lower(): {"genre": {g}} for g in GENRES})
    tags.update({f"{t} tempo": {"tempo": {t}} for t in TEMPO_WORDS})
    tags.update({f"{m} key": {"mode": {m}} for m in ("major", "minor")})
    tags.update({f"{k} {m}".lower(): {"key": {f"{k} {m}"}, "mode": {m}} for k in TONICS for m in ("major", "minor")})
    tags.update({f"{m} time": {"meter": {m}} for m in METERS})
    tags.update({e.lower(): {"era": {e}} for e in set(ERAS.values()) | {"traditional"}})
    tags.update({"solo melody": {"texture": {"solo"}}, "polyphonic": {"texture": {"polyphonic"}}})
    for mood in sorted({w for words in MOODS.values() for w in words}):      # moods claim no checkable aspect
        tags.setdefault(mood, {})
    return tags


def vocabulary(n_long=4000, seed=0):
    """-> (long_form, tags): two lists of (text, claims). The same seed gives the same vocabulary."""
    import random
    rng = random.Random(f"vocabulary/{seed}")
    long_form, seen = [], set()
    while len(long_form) < n_long:
        a, aspects = imagined_attributes(rng), []
        text = _long_caption(a, rng, aspects)
        if text not in seen:
            seen.add(text)
            long_form.append((text, _long_claims(a, aspects)))
    return long_form, sorted(_tag_vocabulary().items())


def eval_prompt(a):
    """The evaluation prompt for a test clip (evaluate.py): its genre and instrument, and the three attributes whose
    adherence we measure, tempo in BPM, key and mode, each said the way the training captions say it."""
    words, plural, how, _ = WORDS[a["instrument"]]
    inst = (plural if plural and a["voices"] > 1 else words)[0]
    return (f"{_cap(_genre_phrases(a)[0])} {VERBS[how][0][0]} {inst}. At {a['bpm']} BPM, it feels "
            f"{TEMPO_WORDS[a['tempo']][0][0]}. It is in {a['key']} {a['mode']}.")
