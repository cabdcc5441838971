"""Shared fixtures: a tiny captioned corpus in the users' folder format (audio files + captions.jsonl), made of
tones whose pitch and loudness the captions describe, so tests need neither `make data` nor the network."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
torch.set_num_threads(min(2, os.cpu_count() or 1))


def write_corpus(folder, clips, seconds=5.0, rate=24000, seed=0):
    """Write `clips` short tone clips with two captions each into folder/captions.jsonl + folder/*.wav."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    lines = []
    for i in range(clips):
        pitch = float(rng.choice([220.0, 330.0, 440.0, 660.0]))
        beat = float(rng.choice([1.0, 2.0]))
        envelope = 0.5 + 0.5 * np.cos(2 * np.pi * beat * t) ** 2          # a pulse, so there is a tempo
        audio = 0.4 * envelope * np.sin(2 * np.pi * pitch * t) + 0.1 * np.sin(2 * np.pi * 2 * pitch * t)
        # Quiet partials in the bands the cascaders add (1.6-8 kHz and 8-12 kHz), so that every stage has
        # something to learn: the 9th harmonic and a 10 kHz shimmer, both pulsing with the tone.
        audio += envelope * (0.03 * np.sin(2 * np.pi * 9 * pitch * t) + 0.01 * np.sin(2 * np.pi * 10000 * t))
        name = f"clip{i:03d}.wav"
        sf.write(folder / name, audio.astype(np.float32), rate)
        lines.append({"path": name, "captions": [f"a tone at {pitch:.0f} hertz pulsing {beat:.0f} times a second",
                                                 f"{pitch:.0f} Hz tone"]})
    (folder / "captions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return folder


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root / "train", 8, seed=0)
    write_corpus(root / "test", 2, seed=1)
    return root


@pytest.fixture(scope="session")
def real_clips(tmp_path_factory):
    """Eight real corpus clips of 10 s (corpus.py: music21 scores, the soundfont, true captions), one per test
    piece, rendered once per session (~15 s): what evaluate.py and mulan.py are checked on."""
    pytest.importorskip("music21")
    pytest.importorskip("tinysoundfont")
    import corpus
    out = tmp_path_factory.mktemp("real")
    corpus.build(out, n_train=0, n_test=8, seconds=10.0)
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    for r in rows:
        r["file"] = str(out / r["path"])
    return sorted(rows, key=lambda r: r["path"])
