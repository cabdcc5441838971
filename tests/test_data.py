"""Tests for data.py (resampling, log-mel, the folder loader) and corpus.py (the built-in corpus; its captions are
tested in test_captions.py).

Closed forms wherever possible: periodic sines resample exactly, a DFT written out by hand checks the STFT framing,
a pure tone lands in the mel filter centred on it. Audio is generated in tmp_path; the corpus test renders three
3-second clips (it is skipped when music21 / tinysoundfont / pretty_midi are not installed).
"""

import json
import logging
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import data


def tone(freqs, rate, seconds, phase=0.3):
    """Sum of unit sines, computed in float64 (a float32 time axis is itself off by ~1e-4 after a few seconds)."""
    t = np.arange(round(rate * seconds)) / rate
    return sum(np.sin(2 * np.pi * f * t + phase * (i + 1)) for i, f in enumerate(freqs))


# ---------------------------------------------------------------------------------------------------------------
# resample

@pytest.mark.parametrize("src,dst", [(3200, 16000), (16000, 3200), (16000, 24000), (24000, 16000), (24000, 3200)])
def test_resample_keeps_a_periodic_sine_below_nyquist(src, dst):
    freqs = [250.0, 1100.0]                                   # below 1.6 kHz, the lowest Nyquist here
    out = data.resample(torch.tensor(tone(freqs, src, 1.0)), src, dst)
    assert out.shape == (dst,)
    np.testing.assert_allclose(out.numpy(), tone(freqs, dst, 1.0), atol=2e-5)


@pytest.mark.parametrize("src,dst,keep,drop", [(24000, 16000, 5000.0, 10000.0), (16000, 3200, 1000.0, 3000.0),
                                               (24000, 3200, 700.0, 1600.0)])
def test_resample_removes_energy_above_new_nyquist(src, dst, keep, drop):
    mixed = torch.tensor(tone([keep], src, 1.0) + tone([drop], src, 1.0, phase=1.1))
    out = data.resample(mixed, src, dst)                      # 1600 Hz is exactly the new Nyquist: removed too
    np.testing.assert_allclose(out.numpy(), tone([keep], dst, 1.0), atol=2e-5)


@pytest.mark.parametrize("n", [1000, 999])
def test_upsampling_passes_through_the_input_samples(n):
    x = torch.randn(3, n, generator=torch.Generator().manual_seed(0))
    y = data.resample(x, 3200, 16000)                           # x5: every fifth output sample is an input sample
    assert y.shape == (3, 5 * n)
    torch.testing.assert_close(y[:, ::5], x, atol=1e-5, rtol=0)


def test_resample_length_rounds_and_keeps_leading_dims():
    x = torch.randn(2, 3, 1001)
    assert data.resample(x, 24000, 16000).shape == (2, 3, round(1001 * 2 / 3))
    assert data.resample(x, 16000, 24000).shape == (2, 3, round(1001 * 1.5))
    assert data.resample(x, 24000, 24000) is x


# ---------------------------------------------------------------------------------------------------------------
# log-mel

def test_slaney_mel_scale_fixed_points():
    assert float(data.hz_to_mel(1000.0)) == pytest.approx(15.0)
    assert float(data.hz_to_mel(6400.0)) == pytest.approx(42.0)
    assert float(data.hz_to_mel(600.0)) == pytest.approx(9.0)                 # linear part: 3 f / 200
    hz = torch.tensor([0.0, 440.0, 999.0, 1001.0, 7999.0])
    torch.testing.assert_close(data.mel_to_hz(data.hz_to_mel(hz)), hz.double())


def test_mel_filterbank_shape_and_unit_area():
    fb = data.mel_filterbank()
    assert fb.shape == (80, 513) and (fb >= 0).all()
    bin_hz = 16000 / 1024
    # Slaney normalisation: each triangle has unit area in Hz; filters many bins wide sum to it almost exactly
    np.testing.assert_allclose(fb[40:].sum(1).numpy() * bin_hz, 1.0, rtol=0.02)
    assert fb[:, 0].sum() == 0 and fb[:, -1].sum() == 0         # 0 Hz and 8 kHz sit at the outer edges


@pytest.mark.parametrize("length", [16000, 16159, 16160, 700])
def test_log_mel_shape_and_range(length):
    audio = torch.randn(2, length, generator=torch.Generator().manual_seed(1)) * 0.3
    mel = data.log_mel(audio)
    assert mel.shape == (2, 80, length // 160)
    assert mel.min() >= -1 and mel.max() <= 1
    assert (data.log_mel(torch.zeros(length)) == -1).all()      # log(1e-5) is the bottom of the range


def test_log_mel_matches_a_hand_written_dft():
    """Frame i is the Hann-640 window (centred in 1024) around sample 160 i, zero padding at the ends. Noise, not a
    tone, so a frame taken one hop off would not match."""
    x = (np.random.default_rng(2).standard_normal(8000) * 0.2).astype(np.float32)
    mel = data.log_mel(torch.tensor(x))
    padded = np.concatenate([np.zeros(512), x, np.zeros(512)])
    n = np.arange(640)
    window = np.concatenate([np.zeros(192), 0.5 - 0.5 * np.cos(2 * np.pi * n / 640), np.zeros(192)])
    fb = data.mel_filterbank().double().numpy()
    for i in [0, 1, 7, 49]:
        spectrum = np.abs(np.fft.rfft(padded[160 * i: 160 * i + 1024] * window))
        expected = np.clip((np.log(np.maximum(fb @ spectrum, 1e-5)) + 11.5) / 13.5 * 2 - 1, -1, 1)
        np.testing.assert_allclose(mel[:, i].numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("band", [10, 40, 70])
def test_pure_tone_peaks_in_its_mel_bin(band):
    edges = data.mel_to_hz(torch.linspace(0, float(data.hz_to_mel(8000.0)), 82))
    mel = data.log_mel(torch.tensor(0.1 * tone([float(edges[band + 1])], 16000, 0.5), dtype=torch.float32))
    assert int(mel[:, 25].argmax()) == band


# ---------------------------------------------------------------------------------------------------------------
# the folder loader

def write_folder(folder, files, captions=None):
    """files: {name: (audio (T,) or (T, C), rate)}; captions: {name: [..]} (default: two per file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (audio, rate) in files.items():
        sf.write(folder / name, audio, rate)
    captions = captions if captions is not None else {name: [f"{name} one", f"{name} two"] for name in files}
    with open(folder / "captions.jsonl", "w") as f:
        for name, caps in captions.items():
            f.write(json.dumps({"path": name, "captions": caps}) + "\n")
    return folder


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    return write_folder(tmp_path / "clips", {
        "a.wav": (0.5 * tone([440.0], 24000, 5.0), 24000),
        "b.flac": (0.3 * rng.standard_normal(16000 * 8), 16000),
        "c.wav": (0.5 * tone([220.0], 24000, 2.0), 24000),
    })


def test_full_clips_and_crops_have_the_right_length(folder):
    full = data.AudioCaptionDataset(folder, 3200)
    item = full[0]
    assert item["audio"].shape == (96000,) and item["audio"].dtype == torch.float32
    assert item["caption"] in ("a.wav one", "a.wav two")
    # a 5 s file is padded with zeros to 30 s (band-limited resampling rings briefly after the file's abrupt end)
    assert item["audio"][6 * 3200:].abs().max() < 1e-3
    crops = data.AudioCaptionDataset(folder, 16000, crop_seconds=1.5)
    for i in range(len(crops)):
        audio = crops[i]["audio"]
        assert audio.shape == (24000,) and audio.abs().max() <= 1
    assert torch.equal(crops[1]["audio"], crops[1]["audio"])         # an index alone is deterministic


def test_crop_range_batches_share_one_length(folder):
    loader = data.make_loader(folder, 16000, 2, crop_range=(0.5, 0.8), multiple=160, num_workers=0, seed=3)
    lengths = []
    for _ in range(4):                                               # four epochs of two batches
        for batch in loader:
            b, length = batch["audio"].shape
            assert length % 160 == 0 and 0.5 * 16000 - 160 < length <= 0.8 * 16000
            assert len(batch["caption"]) == b
            lengths.append(length)
    assert len(set(lengths)) > 1                                     # the length changes from batch to batch
    again = data.make_loader(folder, 16000, 2, crop_range=(0.5, 0.8), multiple=160, num_workers=0, seed=3)
    first = next(iter(again))
    assert first["audio"].shape[1] == lengths[0]                     # same seed, same batches


def test_the_loader_computes_the_log_mel_in_its_workers(folder):
    """mel=True: each batch carries its audio's log-mel, computed in a worker process, exactly what the loss would
    compute itself (the spectrogram stages read it from the batch)."""
    loader = data.make_loader(folder, 16000, 2, crop_range=(0.5, 0.8), multiple=160, num_workers=1, seed=3,
                              mel=True)
    batch = next(iter(loader))
    assert batch["mel"].shape == (2, data.MEL_BINS, batch["audio"].shape[1] // data.MEL_HOP)
    assert torch.allclose(batch["mel"], data.log_mel(batch["audio"]), atol=1e-6)


def test_sampler_shards_epochs_and_resumes():
    shards = [data.ShardedSampler(10, seed=1, rank=r, world_size=3) for r in range(3)]
    epoch0 = [list(s) for s in shards]
    assert all(len(e) == 4 for e in epoch0)                          # ceil(10 / 3), padded by wrapping
    assert {i for e in epoch0 for i, _ in e} == set(range(10))
    epoch1 = list(shards[0])
    assert epoch1 != epoch0[0]                                       # a new permutation each epoch
    stream = data.ShardedSampler(10, seed=1, forever=True)
    resumed = data.ShardedSampler(10, seed=1, forever=True, start=13)
    head = [k for k, _ in zip(stream, range(30))]
    assert [k for k, _ in zip(resumed, range(17))] == head[13:]


def test_step_loader_resumes_the_data_stream(folder):
    kwargs = dict(micro_batch=2, crop_range=(0.5, 0.5), seed=5, num_workers=0)
    fresh = iter(data.step_loader(folder, 16000, **kwargs))
    batches = [next(fresh) for _ in range(5)]
    resumed = next(iter(data.step_loader(folder, 16000, start_step=3, **kwargs)))
    assert resumed["caption"] == batches[3]["caption"]
    torch.testing.assert_close(resumed["audio"], batches[3]["audio"])
    preview = data.fixed_batch(folder, 3200, n=2, seconds=2.0, multiple=64)
    assert preview["audio"].shape == (2, 6400 // 64 * 64) and preview["caption"] == ["a.wav one", "b.flac one"]


def test_stereo_other_rate_and_long_files(tmp_path):
    left = 0.6 * tone([440.0], 44100, 2.0)
    stereo = np.stack([left, 0.5 * left], axis=1)                          # (T, 2): the mean is 0.45 sin
    long = 0.2 * tone([300.0], 8000, 70.0)
    folder = write_folder(tmp_path / "f", {"stereo.wav": (stereo, 44100), "long.flac": (long, 8000)})
    ds = data.AudioCaptionDataset(folder, 16000)
    starts = sorted((c.path.endswith("long.flac"), c.start) for c in ds.clips)
    assert starts == [(False, 0), (True, 0), (True, 240000), (True, 480000)]   # 70 s -> 30 + 30 + 10 s
    mono = ds[[c.path.endswith("stereo.wav") for c in ds.clips].index(True)]["audio"]
    expected = 0.45 * tone([440.0], 16000, 2.0)
    # away from the file's ends (where the file itself steps from sound to silence), the 44.1 -> 16 kHz
    # resampled mixdown is the same sine sampled at 16 kHz
    np.testing.assert_allclose(mono[1600:30400].numpy(), expected[1600:30400], atol=2e-3)
    assert mono[32000 + 1600:].abs().max() < 1e-3


def test_bad_files_are_skipped_with_one_warning_each(tmp_path, caplog):
    folder = write_folder(tmp_path / "bad", {"good.wav": (0.3 * tone([500.0], 24000, 3.0), 24000),
                                             "silent.wav": (np.zeros(24000 * 2), 24000),
                                             "uncaptioned.wav": (0.3 * tone([500.0], 24000, 1.0), 24000),
                                             "nocaptions.wav": (0.3 * tone([500.0], 24000, 1.0), 24000)},
                          captions={"good.wav": ["fine"], "silent.wav": ["quiet"], "nocaptions.wav": [],
                                    "corrupt.wav": ["x"], "empty.wav": ["y"], "missing.wav": ["z"]})
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    sf.write(folder / "empty.wav", np.zeros(0), 24000)
    with open(folder / "captions.jsonl", "a") as f:
        f.write('{"path": "half a line\n')                                       # as if a build was cut off
    with caplog.at_level(logging.WARNING, logger="noise2music.data"):
        ds = data.AudioCaptionDataset(folder, 16000)
        assert len(ds) == 2                                                       # good and silent
        for name in ["nocaptions.wav", "corrupt.wav", "empty.wav", "missing.wav", "uncaptioned.wav", "line 7"]:
            assert sum(name in r.getMessage() for r in caplog.records) == 1, name
        silent = [c.path.endswith("silent.wav") for c in ds.clips].index(True)
        for _ in range(2):
            assert ds[silent]["caption"] == "fine"                                 # replaced by the next clip
    assert sum("silent.wav" in r.getMessage() for r in caplog.records) == 1


def test_nothing_usable_is_a_clear_error(tmp_path):
    with pytest.raises(data.DataError, match="captions.jsonl"):
        data.AudioCaptionDataset(tmp_path, 16000)
    folder = write_folder(tmp_path / "x", {}, captions={"corrupt.wav": ["x"]})
    (folder / "corrupt.wav").write_bytes(b"not audio at all")
    with pytest.raises(data.DataError, match="no usable audio"):
        data.AudioCaptionDataset(folder, 16000)
    folder = write_folder(tmp_path / "y", {"silent.wav": (np.zeros(2400), 24000)})
    with pytest.raises(data.DataError, match="unreadable or silent"):
        data.AudioCaptionDataset(folder, 16000)[0]


# ---------------------------------------------------------------------------------------------------------------
# the built-in corpus

corpus = pytest.importorskip("corpus")


def test_clip_plans_are_deterministic_and_extend():
    pieces = {"chorale": [{"id": f"c{i}"} for i in range(5)], "folk song": [{"id": f"f{i}"} for i in range(50)]}
    short, long = corpus.plan_clips(pieces, "train", 8, seed=1), corpus.plan_clips(pieces, "train", 20, seed=1)
    assert short == long[:8]
    assert corpus.plan_clips(pieces, "train", 8, seed=2) != short


def test_resume_drops_a_half_written_last_line(tmp_path):
    listing = tmp_path / "captions.jsonl"
    listing.write_text('{"path": "00000.flac", "captions": ["a"]}\n{"path": "00001.fl')   # killed mid-write
    assert corpus._read_done(listing) == {"00000.flac"}
    assert listing.read_text() == '{"path": "00000.flac", "captions": ["a"]}\n'          # the next append is whole


def test_build_a_tiny_corpus(tmp_path):
    pytest.importorskip("music21")
    pytest.importorskip("tinysoundfont")
    out = tmp_path / "corpus"
    result = corpus.build(out, n_train=2, n_test=1, seconds=3.0, groups=("chorale",))
    assert result["written"] == 3
    meta = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(meta) == 3
    for clip in meta:
        info = sf.info(out / clip["path"])
        assert (info.samplerate, info.channels, info.frames) == (24000, 1, clip["samples"]) == (24000, 1, 72000)
        assert clip["rate"] == 24000 and 60 <= clip["bpm"] <= 160 and clip["genre"] == "chorale"
        assert clip["mode"] in ("major", "minor") and clip["composer"] == "Johann Sebastian Bach"
        listing = (out / clip["split"] / "captions.jsonl").read_text()
        assert json.dumps({"path": clip["path"].split("/")[1], "captions": clip["captions"]}) in listing
    train = {c["piece"] for c in meta if c["split"] == "train"}
    assert train.isdisjoint(c["piece"] for c in meta if c["split"] == "test")
    assert corpus.build(out, n_train=2, n_test=1, seconds=3.0, groups=("chorale",))["written"] == 0   # resumes
    item = data.AudioCaptionDataset(out / "train", 16000, crop_seconds=1.0)[0]
    assert item["audio"].shape == (16000,) and item["audio"].abs().max() > 0.01


def test_recipes_rebuild_the_corpus_bit_for_bit_without_music21(tmp_path, monkeypatch):
    """--export-recipes, then a build from the recipes alone (music21 made unimportable): the same FLAC bytes,
    captions and metadata as a build from the scores."""
    pytest.importorskip("music21")
    pytest.importorskip("tinysoundfont")
    kwargs = dict(n_train=2, n_test=1, seconds=3.0, groups=("chorale", "folk song"))
    corpus.build(tmp_path / "scores", **kwargs)
    assert corpus.export_recipes(tmp_path / "r.jsonl.gz", **kwargs) == 3
    monkeypatch.setitem(sys.modules, "music21", None)                  # `import music21` now fails
    corpus.build(tmp_path / "recipes", recipes=tmp_path / "r.jsonl.gz", **kwargs)
    files = sorted(p.relative_to(tmp_path / "scores") for p in (tmp_path / "scores").rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".flac"]) == 3
    for f in files:
        a, b = (tmp_path / "scores" / f).read_bytes(), (tmp_path / "recipes" / f).read_bytes()
        if f.name == "metadata.jsonl":                                 # lines in the order workers finished
            a, b = sorted(a.splitlines()), sorted(b.splitlines())
        assert a == b, f
