"""Tests for captions.py: attributes read from a piece's metadata, and captions that read well, say what the clip
is and vary. Pure Python, no audio: the whole file runs in about a second."""

import random
import re

import captions
import corpus


def piece(path, title=None, composer=None, locale=None):
    """A piece as corpus.list_works gives it (only the fields describe() reads)."""
    source = path.split("/")[0]
    group = next(g for g, folders in corpus.GROUPS.items() if source in folders)
    return {"id": path, "source": source, "group": group, "path": path, "title": title, "composer": composer,
            "locale": locale}


def test_describe_reads_title_composer_region_and_dance():
    rendering = dict(instrument="flute", bpm=80, tonic="G", mode="minor", meter="6/8", voices=1)
    chorale = captions.describe(piece("bach/bwv66.6.mxl"), **rendering)
    assert (chorale["title"], chorale["composer"], chorale["era"]) == ("Chorale BWV 66.6", "Johann Sebastian Bach",
                                                                       "Baroque")
    assert chorale["tempo"] == "moderate" and chorale["genre"] == "chorale"      # 80 BPM is not below 80
    quartet = captions.describe(piece("haydn/opus74no1/movement2.mxl", title="x"), **rendering)
    assert quartet["title"] == "String Quartet Op. 74 No. 1, movement 2"
    mozart = captions.describe(piece("mozart/k80/movement3.mxl"), **rendering)
    assert mozart["title"] == "String Quartet K. 80, movement 3" and mozart["era"] == "Classical"
    folk = captions.describe(piece("essenFolksong/han1.abc", "Der Mai", "Anonymous", "Europa, Deutschland"),
                             **rendering)
    assert (folk["region"], folk["composer"], folk["era"]) == ("German", None, "traditional")
    tune = captions.describe(piece("oneills1850/x.abc", "The Boys of Bluehill Hornpipe", "by Trad."), **rendering)
    assert (tune["region"], tune["dance"], tune["composer"]) == ("Irish", "hornpipe", None)
    reels = captions.describe(piece("ryansMammoth/x.abc", "Money Musk Reels", "by John Smith."), **rendering)
    assert (reels["dance"], reels["composer"], reels["region"]) == ("reel", "John Smith", None)
    mass = captions.describe(piece("palestrina/Kyrie_27.krn", "Kyrie"), **rendering)
    assert mass["genre"] == "Renaissance polyphony"
    assert captions.describe(piece("trecento/x.xml"), **rendering)["genre"] == "medieval polyphony"


def test_every_instrument_has_words():
    assert list(captions.WORDS) == [name for name, _, _ in corpus.INSTRUMENTS]


def attribute_grid():
    """Every instrument and genre, slow/fast, major/minor, one voice and four: attributes as describe() gives."""
    genres = [("chorale", "bach", "Johann Sebastian Bach", None, None),
              ("folk song", "essenFolksong", None, "Irish", None),
              ("fiddle tune", "oneills1850", None, "Irish", "hornpipe"),
              ("fiddle tune", "ryansMammoth", None, None, None),
              ("Renaissance polyphony", "palestrina", "Giovanni Pierluigi da Palestrina", None, None),
              ("medieval polyphony", "trecento", None, None, None),
              ("string quartet", "haydn", "Joseph Haydn", None, None)]
    for i, (name, *_rest) in enumerate(corpus.INSTRUMENTS):
        genre, source, composer, region, dance = genres[i % len(genres)]
        for bpm, mode, voices in [(62, "minor", 1), (150, "major", 4), (100, "minor", 4)]:
            yield {"genre": genre, "source": source, "composer": composer, "region": region, "dance": dance,
                   "title": "Kyrie" if i % 2 else None, "era": captions.ERAS.get(source, "traditional"),
                   "instrument": name, "bpm": bpm, "tempo": "slow" if bpm < 80 else "fast" if bpm > 115 else "moderate",
                   "key": "E-flat", "mode": mode, "meter": "6/8" if i % 3 else None, "voices": voices}


def test_captions_read_well_and_vary():
    seen = set()
    for n, attrs in enumerate(attribute_grid()):
        caps = captions.make_captions(attrs, random.Random(n))
        assert len(caps) == (7 if attrs["title"] else 6) and len(set(caps)) == len(caps)
        for cap in caps:
            assert not re.search(r"\ba [aeiouAEIOU]|\ban [^aeiouAEIOU\s]|None|\{|\}|  ", cap), cap
            assert not re.match(r"(Lush strings|Choir voices|Breathy pan pipes|Several pan pipes|Pan flutes|Violins|"
                                r"Cellos|Flutes|Oboes|Clarinets|Trumpets|Recorders|Two violins, viola and cello|"
                                r"Trumpets, horn and trombone|Flute, oboe, clarinet and bassoon) "
                                r"(plays|sings|performs)",
                                cap), cap                                # plural subjects take a plural verb
        words, plural, _, tags = captions.WORDS[attrs["instrument"]]
        names = [re.sub(r"^(a|an) ", "", w).lower() for w in words + (plural or []) + tags]
        assert all(any(name in cap.lower() for name in names) for cap in caps[:6]), caps  # all but the title prompt
        seen.update(caps[:4])
    assert len(seen) > 0.95 * 4 * (n + 1)                               # long-form captions almost never repeat


def test_same_rng_state_same_captions():
    attrs = next(attribute_grid())
    first = captions.make_captions(attrs, random.Random("0/captions/train/7"))
    assert captions.make_captions(attrs, random.Random("0/captions/train/7")) == first
    assert captions.make_captions(attrs, random.Random("0/captions/train/8")) != first


def test_eval_prompt_states_the_attributes_adherence_is_measured_on():
    rendering = dict(instrument="cello", bpm=72, tonic="B-flat", mode="minor", meter="3/4", voices=4)
    a = captions.describe(piece("bach/bwv66.6.mxl"), **rendering)
    prompt = captions.eval_prompt(a)
    assert "72 BPM" in prompt and "B-flat minor" in prompt and "cellos" in prompt and "chorale" in prompt
    assert prompt == captions.eval_prompt(a)                                      # deterministic
