"""Audio data for every stage: band-limited resampling, the log-mel spectrogram, and a streaming clip loader.

Noise2Music trains each model of the cascade on the same 30 s clips seen at a different rate (PAPER_NOTES §2, §7):

    stage                      rate       what it sees of a clip
    waveform generator         3.2 kHz    the full 30 s (Sec. 4.1)                    (B, 96000)
    spectrogram generator      16 kHz     the full 30 s, as log_mel -> (B, 80, 3000)
    waveform cascader          16 kHz     random 3-4 s crops (Sec. 4.1)              (B, 48000..64000)
    spectrogram vocoder        16 kHz     random 3-4 s crops, audio + its log_mel
    super-resolution cascader  24 kHz     random 3-4 s crops

- resample(audio, from_rate, to_rate): (..., T) -> (..., round(T * to_rate / from_rate)); the rFFT / zero-pad /
  irFFT method of Sec. 3.3.1, used in both directions and for every rate pair [PAPER_NOTES §13].
- log_mel(audio_16k): (..., T) -> (..., 80, T // 160) in [-1, 1] (Sec. 3.3.2; settings in PAPER_NOTES §13).
- AudioCaptionDataset / make_loader / step_loader / fixed_batch: a folder of audio files with a captions.jsonl,
  `{"path": "relative/file.flac", "captions": ["...", ...]}` per line, read from disk item by item.
  batches: {"audio": (B, T) float32 in [-1, 1], "caption": list of B str}.

The built-in corpus (music21 scores rendered with a General MIDI soundfont) is made by corpus.py:
    python data.py build --out data/music21 --train 2000 --test 200
    python data.py check FOLDER          reads every clip once and reports the files the loader will skip
"""

import json
import logging
import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

import augment       # tape-speed augmentation (the generators' speed_shift); it uses this module's resampling

log = logging.getLogger("noise2music.data")

SOURCE_RATE = 24000                                                # the corpus is stored at the SR stage's rate
RATES = {"generator": 3200, "cascader": 16000, "superres": 24000}  # Sec. 3.3
CLIP_SECONDS = 30.0                                                # Sec. 3.5: 30 s clips cut from each file
MIN_TAIL_SECONDS = 10.0   # [choice] the last piece of a long file becomes a clip only if it is at least this long
SILENCE_PEAK = 1e-4       # [choice] a clip whose peak is below -80 dBFS carries nothing to learn; it is skipped
MEL_BINS, MEL_HOP, MEL_RATE = 80, 160, 16000                      # 80 mels, 100 frames/s of 16 kHz audio (Sec. 3.3.2)
MEL_NFFT, MEL_WINDOW, MEL_FMAX = 1024, 640, 8000.0                 # PAPER_NOTES §13 (the paper gives no STFT settings)
LOG_MEL_RANGE = (-11.5, 2.0)                                       # log(1e-5) .. log(e^2), mapped onto [-1, 1]


class DataError(ValueError):
    """The data cannot be used at all (no captions.jsonl, no usable clip). Its message says what to fix."""


# ----------------------------------------------------------------------------------------------------------------
# 1. Band-limited resampling (Sec. 3.3.1, PAPER_NOTES §2.2)

def resampled_length(length, from_rate, to_rate):
    """round(length * to_rate / from_rate), computed exactly (half to even) so every caller agrees."""
    return round(Fraction(length * to_rate, from_rate))


def resample(audio, from_rate, to_rate):
    """(..., T) -> (..., round(T * to_rate / from_rate)) by rFFT, zero-padding or truncating the spectrum, irFFT.

    This is ideal (brick-wall) band-limited interpolation of a signal taken to repeat with period T: going up adds
    no content above the old Nyquist frequency, going down removes everything at or above the new one. Callers
    that resample a piece cut from a longer signal should add a margin and trim it (see _read_window), since the
    method sees the two ends as neighbours.
    """
    if from_rate == to_rate:
        return audio
    n_in = audio.shape[-1]
    n_out = resampled_length(n_in, from_rate, to_rate)
    spec = torch.fft.rfft(audio.float(), dim=-1)                  # (..., n_in // 2 + 1)
    keep = min(n_in, n_out) // 2 + 1                               # bins both signals can hold
    out = spec.new_zeros(*spec.shape[:-1], n_out // 2 + 1)         # (..., n_out // 2 + 1)
    out[..., :keep] = spec[..., :keep]
    if n_out < n_in and n_out % 2 == 0:
        # The new Nyquist bin can only hold a cosine (irfft drops its imaginary part), so a component there is
        # ambiguous; removing it keeps the rule simple: only frequencies strictly below the new Nyquist survive.
        out[..., n_out // 2] = 0
    if n_out > n_in and n_in % 2 == 0:
        # The old Nyquist bin stood for one real cosine; as an ordinary bin it would count twice (at +f and -f).
        # Halving it makes the result pass exactly through the input samples (tests check this).
        out[..., n_in // 2] *= 0.5
    # rfft sums over n_in samples and irfft divides by n_out: rescale so amplitudes are kept (PAPER_NOTES §2.2).
    return torch.fft.irfft(out, n=n_out, dim=-1) * (n_out / n_in)


# ----------------------------------------------------------------------------------------------------------------
# 2. Log-mel spectrogram (Sec. 3.3.2; PAPER_NOTES §5, §13)

def hz_to_mel(hz):
    """Slaney's mel scale (the Auditory Toolbox, librosa's default): linear below 1 kHz, logarithmic above.
        mel = 3 f / 200                               for f < 1000 Hz   (so 1000 Hz -> 15 mel)
        mel = 15 + 27 ln(f / 1000) / ln(6.4)          for f >= 1000 Hz  (so 6400 Hz -> 42 mel)"""
    hz = torch.as_tensor(hz, dtype=torch.float64)
    return torch.where(hz < 1000, 3 * hz / 200, 15 + 27 * torch.log(hz.clamp(min=1e-9) / 1000) / math.log(6.4))


def mel_to_hz(mel):
    """The inverse of hz_to_mel."""
    mel = torch.as_tensor(mel, dtype=torch.float64)
    return torch.where(mel < 15, 200 * mel / 3, 1000 * torch.exp((mel - 15) * math.log(6.4) / 27))


def mel_filterbank(n_mels=MEL_BINS, n_fft=MEL_NFFT, rate=MEL_RATE, f_min=0.0, f_max=MEL_FMAX):
    """(n_mels, n_fft // 2 + 1) triangular filters, equally spaced on the Slaney mel scale, each scaled to unit area
    in Hz (Slaney normalisation: height 2 / width), so a wide high filter and a narrow low one weigh alike."""
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2))  # (n_mels + 2,)
    freqs = torch.linspace(0, rate / 2, n_fft // 2 + 1, dtype=torch.float64)                      # FFT bin centres
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]                  # (n_mels, 1) each
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    triangles = torch.clamp(torch.minimum(rising, falling), min=0)                               # (n_mels, n_freqs)
    return (triangles * (2 / (upper - lower))).float()


def log_mel(audio_16k):
    """(..., T) 16 kHz audio -> (..., 80, T // 160) log-mel in [-1, 1], 100 frames/s.

    STFT magnitude (n_fft 1024, Hann window 640, hop 160), Slaney mel filters 0-8 kHz, log(max(mel, 1e-5)), then
    the fixed affine map of [-11.5, 2.0] onto [-1, 1] and a clip [PAPER_NOTES §13]. Frame i is centred on sample
    160 i, and the frame centred past the end is dropped, so frames * 160 == samples for the vocoder (Sec. 3.3.2).
    """
    lead, length = audio_16k.shape[:-1], audio_16k.shape[-1]
    x = audio_16k.reshape(-1, length).float()                                                    # (N, T)
    window = torch.hann_window(MEL_WINDOW, device=x.device)
    # [choice] zero padding at the ends (not reflection): it works for any length and an empty edge stays empty.
    stft = torch.stft(x, MEL_NFFT, hop_length=MEL_HOP, win_length=MEL_WINDOW, window=window, center=True,
                      pad_mode="constant", return_complex=True)                                 # (N, 513, T//160 + 1)
    magnitude = stft.abs()[..., : length // MEL_HOP]                                             # (N, 513, F)
    mel = mel_filterbank().to(x.device) @ magnitude                                              # (N, 80, F)
    lo, hi = LOG_MEL_RANGE
    scaled = (torch.log(mel.clamp(min=1e-5)) - lo) / (hi - lo) * 2 - 1
    return scaled.clamp(-1, 1).reshape(*lead, MEL_BINS, -1)


def signal_rms(audio, floor=1e-6):
    """The RMS of a batch of training audio, rounded for a readable checkpoint config: the scale a stage divides
    out. The floor keeps a silent calibration set (or an empty band) from dividing by zero."""
    return round(max(float(audio.pow(2).mean().sqrt()), floor), 6)


def mel_statistics(mel, floor=0.05):
    """(B, 80, F) log-mel -> {"mel_mean": 80 floats, "mel_std": 80 floats}: each bin's mean and std over clips and
    frames, rounded for a readable checkpoint config. [choice] The std has a floor (0.05 of the [-1, 1] range): a bin
    silent in every calibration clip must not blow up what a model writes there."""
    return {"mel_mean": [round(v, 5) for v in mel.mean(dim=(0, 2)).tolist()],
            "mel_std": [round(max(v, floor), 5) for v in mel.std(dim=(0, 2)).tolist()]}


def standardise_mel(mel, stats, inverse=False):
    """(B, 80, F) log-mel in [-1, 1] -> each bin at zero mean and unit std, (mel - mean) / std, with the statistics
    of mel_statistics; inverse=True maps a standardised mel back to [-1, 1] (clipped, as log_mel clips)."""
    mean, std = (torch.tensor(stats[k], device=mel.device, dtype=mel.dtype)[:, None] for k in ("mel_mean", "mel_std"))
    return (mel * std + mean).clamp(-1, 1) if inverse else (mel - mean) / std         # (B, 80, F); stats (80, 1)


# ----------------------------------------------------------------------------------------------------------------
# 3. A folder of audio files with captions.jsonl -> an index of 30 s clips

@dataclass(frozen=True)
class ClipRef:
    """One training clip: `frames` frames of `path` from `start`, at the file's own rate."""
    path: str
    start: int
    frames: int
    file_rate: int
    captions: tuple


def _audio_suffixes():
    return {"." + f.lower() for f in sf.available_formats()} | {".aif", ".oga", ".opus"}


def index_folder(folder):
    """captions.jsonl in `folder` -> a list of ClipRef. Each problem costs one warning naming the file; only a
    folder with nothing usable left is an error (DataError)."""
    folder = Path(folder)
    listing = folder / "captions.jsonl"
    if not listing.is_file():
        raise DataError(f"{listing} not found: a data folder needs a captions.jsonl with one "
                        f'{{"path": ..., "captions": [...]}} line per audio file (or run `make data`).')
    clips, listed = [], set()
    for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            rel, captions = entry["path"], [c for c in entry.get("captions") or [] if isinstance(c, str) and c.strip()]
        except (ValueError, KeyError, TypeError):
            # Also what a line still being appended by a running corpus build looks like: skip it.
            log.warning("%s line %d is not a {\"path\", \"captions\"} JSON object; skipped", listing, number)
            continue
        path = (folder / rel).resolve()
        listed.add(path)
        if not captions:
            log.warning("%s has no caption in captions.jsonl; skipped", path)
            continue
        try:
            info = sf.info(str(path))
        except Exception as err:  # soundfile raises several types for missing, unknown and corrupt files
            log.warning("%s cannot be read (%s); skipped", path, str(err).splitlines()[0] if str(err) else err)
            continue
        if info.frames <= 0:
            log.warning("%s holds no audio (zero length); skipped", path)
            continue
        # Sec. 3.5: a long file gives several non-overlapping 30 s clips.
        clip = round(CLIP_SECONDS * info.samplerate)
        for start in range(0, info.frames, clip):
            frames = min(clip, info.frames - start)
            if start > 0 and frames < MIN_TAIL_SECONDS * info.samplerate:
                break
            clips.append(ClipRef(str(path), start, frames, info.samplerate, tuple(captions)))
    suffixes = _audio_suffixes()
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in suffixes and not path.name.startswith(".") and path.resolve() not in listed:
            log.warning("%s has no line in captions.jsonl (no caption); skipped", path)
    if not clips:
        raise DataError(f"no usable audio in {folder}: every file listed in captions.jsonl was missing, unreadable, "
                        f"empty or without captions (see the warnings above).")
    return clips


def _read_mono(path, start, stop):
    """Frames [start, stop) of a file as mono float32 numpy, with zeros wherever the range lies outside the file.
    Stereo (or more) is averaged [choice: the mean, not the sum, so full scale stays full scale]."""
    out = np.zeros(stop - start, dtype=np.float32)
    with sf.SoundFile(path) as f:
        lo, hi = max(start, 0), min(stop, f.frames)
        if hi > lo:
            f.seek(lo)
            chunk = f.read(hi - lo, dtype="float32", always_2d=True)            # (frames, channels): a partial read
            out[lo - start: lo - start + len(chunk)] = chunk.mean(axis=1)
    return out


def _smooth(n):
    """The smallest m >= n with no prime factor above 5: FFTs of such lengths are several times faster."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _read_window(path, start, frames, file_rate, rate):
    """`frames` frames of a file from `start`, resampled to `rate`: (round(frames * rate / file_rate),) tensor.

    FFT resampling treats its input as periodic, so the two ends of a bare window would leak into each other. We
    read ~0.1 s more before and at least that much after, and trim it after resampling. The window is a whole
    number of the blocks in which both rates meet (file_rate / g input samples = rate / g output samples,
    g = gcd), so the trim is exact; [choice] that number of blocks is rounded up to a 5-smooth one, which makes a
    30 s clip's FFT ~5x faster (724,800 = 2^6 3 5^2 151 samples costs 67 ms, 737,280 costs 13 ms)."""
    if file_rate == rate:
        return torch.from_numpy(_read_mono(path, start, start + frames))
    g = math.gcd(file_rate, rate)
    block_in, block_out = file_rate // g, rate // g
    lead = math.ceil(0.1 * g)                                            # blocks before `start`
    blocks = _smooth(math.ceil(frames / block_in) + 2 * lead)            # the whole window, in blocks
    begin = start - lead * block_in
    audio = torch.from_numpy(_read_mono(path, begin, begin + blocks * block_in))
    out = resample(audio, file_rate, rate)                               # (blocks * block_out,)
    return out[lead * block_out: lead * block_out + resampled_length(frames, file_rate, rate)]


# ----------------------------------------------------------------------------------------------------------------
# 4. Dataset, sampler, loaders

_warned = set()          # per process: each bad file is reported once


class AudioCaptionDataset(Dataset):
    """item -> {"audio": (T,) float32 at `rate` in [-1, 1], "caption": one of the clip's captions, "seed": int}.

    crop_seconds None: the whole 30 s clip (zeros after the end of a shorter one). Otherwise a random crop of that
    length. An item key is an index, or (index, item_seed) from ShardedSampler, so crops and captions are the same
    for a seed whatever the number of loader workers. A clip that turns out unreadable or silent is replaced by the
    next one (after one warning), so one bad file never stops a training run."""

    def __init__(self, folder, rate, crop_seconds=None, seed=0, clips=0):
        self.clips = index_folder(folder)[: clips or None]          # clips > 0: only the first ones (overfit check)
        self.rate, self.crop_seconds, self.seed = rate, crop_seconds, seed
        self.bad = set()

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, key):
        index, item_seed = key if isinstance(key, tuple) else (key, (self.seed * 1_000_003 + key) % 2**62)
        tries = min(len(self.clips), 64)
        for attempt in range(tries):
            item = self._load(self.clips[(index + attempt) % len(self.clips)], item_seed)
            if item is not None:
                return item
        raise DataError(f"{tries} clips in a row from {Path(self.clips[0].path).parent} were unreadable or silent; "
                        f"run `python data.py check FOLDER` to list the bad files.")

    def _load(self, clip, item_seed):
        if clip.path in self.bad:
            return None
        gen = torch.Generator().manual_seed(item_seed)
        seconds = CLIP_SECONDS if self.crop_seconds is None else self.crop_seconds
        length = round(seconds * self.rate)                                   # samples at self.rate
        frames = math.ceil(length * clip.file_rate / self.rate)               # the same span at the file's rate
        offset = int(torch.randint(0, max(clip.frames - frames, 0) + 1, (1,), generator=gen))
        try:
            audio = _read_window(clip.path, clip.start + offset, frames, clip.file_rate, self.rate)[:length]
        except Exception as err:
            self.bad.add(clip.path)
            self._warn(clip.path, f"{clip.path} cannot be decoded ({err}); skipped")
            return None
        if audio.abs().max() < SILENCE_PEAK:
            # [choice] not blacklisted: a long file may be silent in one place and not in another.
            self._warn(clip.path, f"{clip.path} is silent at {(clip.start + offset) / clip.file_rate:.1f} s; skipped")
            return None
        caption = clip.captions[int(torch.randint(0, len(clip.captions), (1,), generator=gen))]
        # FFT resampling can overshoot full scale by a little (Gibbs); keep the documented range.
        return {"audio": audio.clamp(-1, 1).float(), "caption": caption, "seed": item_seed}

    @staticmethod
    def _warn(path, message):
        if path not in _warned:
            _warned.add(path)
            log.warning(message)


class ShardedSampler(Sampler):
    """Yields (index, item_seed) keys for one rank of `world_size`, like torch's DistributedSampler: each epoch a
    new permutation seeded by (seed, epoch), padded to a multiple of world_size and dealt out round-robin, so every
    rank gets the same number of items and no two share one. The epoch advances by itself at each new iteration
    (set_epoch also works). forever=True chains epochs without end, starting `start` items into this rank's stream."""

    def __init__(self, n, *, seed=0, rank=0, world_size=1, shuffle=True, forever=False, start=0):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.shuffle, self.forever, self.start, self.epoch = shuffle, forever, start, 0
        self.per_rank = math.ceil(n / world_size)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.per_rank

    def _epoch(self, epoch):
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**62)
        order = torch.randperm(self.n, generator=gen) if self.shuffle else torch.arange(self.n)
        seeds = torch.randint(0, 2**62, (self.n,), generator=gen)
        picks = torch.arange(self.per_rank * self.world_size) % self.n      # pad by wrapping around
        mine = picks[self.rank:: self.world_size]
        return list(zip(order[mine].tolist(), seeds[mine].tolist()))

    def __iter__(self):
        if not self.forever:
            self.epoch += 1
            yield from self._epoch(self.epoch - 1)
            return
        epoch, skip = divmod(self.start, self.per_rank)
        while True:
            yield from self._epoch(epoch)[skip:]
            epoch, skip = epoch + 1, 0


class CropCollate:
    """Stacks items into {"audio": (B, T), "caption": [B str]}. With crop_range=(lo, hi) seconds, every batch is cut
    to ONE random length in that range, rounded down to a multiple of `multiple` samples (e.g. a U-Net's total
    stride): Sec. 4.1's random 3-4 s crops, with a length that varies from batch to batch, not within one.
    speed_shift > 0 (semitones; needs crop_range and items of augment.read_seconds): each crop is played up to that
    many semitones faster or slower and its caption rewritten to match (augment.py)."""

    def __init__(self, rate, crop_range=None, multiple=1, mel=False, speed_shift=0):
        self.rate, self.crop_range, self.multiple, self.mel = rate, crop_range, multiple, mel
        self.speed_shift = speed_shift

    def __call__(self, items):
        captions = [item["caption"] for item in items]
        audio = torch.stack([item["audio"] for item in items])                          # (B, T)
        if self.crop_range is not None:
            gen = torch.Generator().manual_seed(items[0]["seed"] + 1)               # from the sampler: reproducible
            lo, hi = self.crop_range
            seconds = lo + (hi - lo) * float(torch.rand((), generator=gen))
            length = min(int(seconds * self.rate), audio.shape[1]) // self.multiple * self.multiple
            if length <= 0:
                raise DataError(f"crop_range {self.crop_range} at {self.rate} Hz is shorter than one block of "
                                f"{self.multiple} samples; use longer crops.")
            if self.speed_shift:
                audio, captions = augment.shift_batch(items, length, self.speed_shift, self.rate)   # (B, length)
            else:
                offsets = torch.randint(0, audio.shape[1] - length + 1, (len(items),), generator=gen)
                audio = torch.stack([a[o: o + length] for a, o in zip(audio, offsets.tolist())])  # (B, length)
        batch = {"audio": audio, "caption": captions}
        # The log-mel of the spectrogram stages is computed here, in the loader's worker processes, where it overlaps
        # the network's step; in the loss it cost a third of a CPU step (issue 13). (B, 80, length // 160)
        if self.mel:
            batch["mel"] = log_mel(audio)
        return batch


def make_loader(folder, rate, batch_size, *, crop_seconds=None, crop_range=None, multiple=1, num_workers=2,
                seed=0, rank=0, world_size=1, shuffle=True, forever=False, start=0, clips=0, mel=False,
                speed_shift=0):
    """One epoch per iteration (forever=False), or an endless stream of batches that begins `start` items in.
    With crop_range, items are read at its upper length (longer with speed_shift) and the collate function cuts the
    batch (CropCollate); mel=True adds each batch's log-mel as batch["mel"]."""
    if speed_shift and crop_range is None:
        raise DataError("speed_shift needs crop_range: the shifted crop is cut from a longer item.")
    item_seconds = crop_range[1] if crop_range is not None else crop_seconds
    if speed_shift:
        item_seconds = augment.read_seconds(item_seconds, speed_shift)
    dataset = AudioCaptionDataset(folder, rate, crop_seconds=item_seconds, seed=seed, clips=clips)
    sampler = ShardedSampler(len(dataset), seed=seed, rank=rank, world_size=world_size, shuffle=shuffle,
                             forever=forever, start=start)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=CropCollate(rate, crop_range, multiple, mel, speed_shift),
                      persistent_workers=num_workers > 0)


def step_loader(folder, rate, *, micro_batch, accum=1, crop_range=None, multiple=1, seed=0, start_step=0, rank=0,
                world_size=1, num_workers=2, clips=0, mel=False, speed_shift=0):
    """The training loop's endless batches: a run resumed at `start_step` continues the data stream where the
    interrupted one stopped (start_step * accum micro-batches of micro_batch items per rank), without re-reading."""
    return make_loader(folder, rate, micro_batch, crop_range=crop_range, multiple=multiple, num_workers=num_workers,
                       seed=seed, rank=rank, world_size=world_size, forever=True,
                       start=start_step * accum * micro_batch, clips=clips, mel=mel, speed_shift=speed_shift)


def fixed_batch(folder, rate, n=1, seconds=None, multiple=1):
    """The first n clips of a folder, from their start, with their first caption: the same batch every time, for
    preview samples. seconds None = full 30 s clips; lengths are rounded down to a multiple of `multiple`."""
    length = round((seconds or CLIP_SECONDS) * rate) // multiple * multiple
    clips = index_folder(folder)[:n]
    audio = [_read_window(c.path, c.start, math.ceil(length * c.file_rate / rate), c.file_rate, rate)[:length]
             for c in clips]
    return {"audio": torch.stack(audio).clamp(-1, 1), "caption": [c.captions[0] for c in clips]}


def forever(loader):
    """Endless batches from a per-epoch loader (each pass of the loader is a new epoch)."""
    while True:
        yield from loader


def check_folder(folder, rate=SOURCE_RATE):
    """Read every clip once (as training would) and report how many are usable; bad files are warned about."""
    dataset = AudioCaptionDataset(folder, rate)
    usable = sum(dataset._load(clip, 0) is not None for clip in dataset.clips)
    print(f"{folder}: {usable} of {len(dataset.clips)} clips usable")
    return usable


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(sys.argv) >= 2 and sys.argv[1] == "build":
        import corpus                           # music21 and the synthesizer are needed only to build the corpus
        sys.exit(corpus.main(sys.argv[2:]))
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        try:
            sys.exit(0 if check_folder(sys.argv[2]) else 1)
        except DataError as err:
            sys.exit(f"error: {err}")
    if len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help", "help"):
        print(__doc__.split("\n\n")[-1])                # the two commands, as the module docstring lists them
        sys.exit(0)
    sys.exit(__doc__.split("\n\n")[-1] if len(sys.argv) < 2 else f"unknown command {sys.argv[1]!r}; try: build, check")
