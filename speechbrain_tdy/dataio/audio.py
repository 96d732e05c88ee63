"""Reading audio for training and verification.

Waveforms are float32 in [-1, 1] (soundfile's convention, as in the authors'
code). Files shorter than a crop are extended by wrapping around, as the
authors do; multi-channel files are averaged to mono.
"""
import math
import os
import stat

import numpy as np
import soundfile as sf
import torch
import torchaudio


class AudioError(ValueError):
    """An audio file that cannot be used, with its path and the reason."""


def crop_samples(frames):
    """Samples of a crop of ``frames`` feature frames at 16 kHz, as the authors
    count them (10 ms hop, 25 ms window): frames * 160 + 240.

    >>> crop_samples(200)
    32240
    """
    return frames * 160 + 240


#: Header sample rates accepted when a file is resampled (Hz).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384000
#: Largest resampling kernel (values) allowed; rates whose ratio to the target
#: reduces to large coprime numbers (e.g. 44101 Hz) would need gigabytes.
MAX_RESAMPLING_KERNEL = 20_000_000
#: Recordings shorter than this (seconds) are wrap-padded to it before they are
#: embedded, as the authors do; the default of a model folder's ``min_duration``.
MIN_DURATION = 1.0
#: Longest recording read (seconds), checked from the header before decoding:
#: a small compressed file can hold hours of samples. Callers may pass another
#: ``max_duration``.
MAX_DURATION = 3 * 3600.0
#: Shortest recording embedded (seconds): wrap-padding a few samples to
#: ``MIN_DURATION`` would give an embedding of nothing.
MIN_AUDIO_DURATION = 0.1
#: Largest sample magnitude accepted (float files outside [-1, 1] by this much
#: are not audio as the models expect it, and overflow the features).
MAX_AMPLITUDE = 100.0


def check_regular_file(path):
    """AudioError naming ``path`` unless it is a regular file (a FIFO would block
    the reader forever, a device never ends); checked before it is opened."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise AudioError(f"{path}: cannot read audio ({error.strerror or error})") from error
    if not stat.S_ISREG(mode):
        kind = "folder" if stat.S_ISDIR(mode) else "FIFO" if stat.S_ISFIFO(mode) else "socket" if \
            stat.S_ISSOCK(mode) else "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file"
        raise AudioError(f"{path}: a {kind}, not an audio file")


def _read(path, start=0, stop=None, max_duration=MAX_DURATION):
    """(samples, channels) float32 array and header rate of ``path``; AudioError
    naming it. The header's duration (of [start, stop)) is checked against
    ``max_duration`` seconds before anything is decoded."""
    check_regular_file(path)
    try:
        info = sf.info(str(path))
        if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
            raise AudioError(f"{path}: header sample rate {info.samplerate} Hz is outside "
                             f"[{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz")
        seconds = ((info.frames if stop is None else min(stop, info.frames)) - start) / info.samplerate
        if seconds > max_duration:
            raise AudioError(f"{path}: {seconds:,.0f} s of audio, more than max_duration ({max_duration:,.0f} s); "
                             "cut the file, or pass a larger max_duration")
        audio, rate = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, TypeError) as error:
        raise unreadable(path, error) from error
    if info.samplerate != rate:
        raise AudioError(f"{path}: inconsistent sample rate in the header")
    if audio.shape[0] == 0:
        raise AudioError(f"{path}: no samples" + (f" in [{start}, {stop})" if start or stop is not None else ""))
    return audio, rate


def unreadable(path, error):
    """The AudioError of a file that libsndfile cannot open, naming it."""
    return AudioError(f"{path}: cannot read audio ({error}); is it an audio file that libsndfile decodes "
                      "(wav, flac, ogg, ...)?")


def header_duration(path):
    """Seconds of audio that the header of ``path`` states (nothing is decoded;
    before any wrap-padding); AudioError naming the file if it has none."""
    check_regular_file(path)
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, TypeError) as error:
        raise unreadable(path, error) from error
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{path}: the header states no samples")
    return info.frames / info.samplerate


def check_samples(path, audio):
    """Raise AudioError naming ``path`` for NaN/infinite or out-of-range samples."""
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    peak = float(np.abs(audio).max())
    if peak > MAX_AMPLITUDE:
        raise AudioError(f"{path}: samples reach {peak:.3g}, expected floats in [-1, 1]")


def read_segment(path, start=0, stop=None, sample_rate=16000):
    """Samples [start, stop) of ``path`` as a mono float32 tensor (samples,).

    Raises AudioError naming the file if it cannot be decoded, has another
    sample rate, is empty or holds non-finite samples.
    """
    audio, rate = _read(path, start, stop)
    if rate != sample_rate:
        raise AudioError(f"{path}: sample rate {rate} Hz, expected {sample_rate} Hz")
    audio = audio.mean(axis=1)
    check_samples(path, audio)
    return torch.from_numpy(np.ascontiguousarray(audio))


def check_voiced(path, audio):
    """Raise AudioError naming ``path`` if ``audio`` (array or tensor) is digital silence."""
    if not audio.any():
        raise AudioError(f"{path}: digital silence, there is no voice to embed")


def load_audio(path, sample_rate=16000, max_duration=MAX_DURATION):
    """A whole file as a mono float32 tensor (samples,) at ``sample_rate``:
    channels averaged, resampled from any rate in [1 kHz, 384 kHz].

    Raises AudioError naming the file if it is not a regular file, cannot be
    decoded, is empty or longer than ``max_duration`` seconds, has an
    unusable sample rate, holds NaN/infinite or out-of-range samples, or only
    digital silence.
    """
    audio, rate = _read(path, max_duration=max_duration)
    audio = audio.mean(axis=1)
    check_samples(path, audio)
    check_voiced(path, audio)
    wav = torch.from_numpy(np.ascontiguousarray(audio))
    if rate == sample_rate:
        return wav
    common = math.gcd(rate, sample_rate)
    kernel = (sample_rate // common) * (rate // common)
    if kernel > MAX_RESAMPLING_KERNEL:
        raise AudioError(f"{path}: resampling {rate} Hz to {sample_rate} Hz exactly needs a {kernel:,}-value kernel; "
                         f"convert the file to {sample_rate} Hz first (e.g. sox in.wav -r {sample_rate} out.wav)")
    return torchaudio.functional.resample(wav, rate, sample_rate)


def load_utterance(path, sample_rate=16000, min_samples=int(MIN_DURATION * 16000), max_duration=MAX_DURATION):
    """A file as every embedding of it sees it: :func:`load_audio` (mono,
    resampled, checked), wrap-padded to at least ``min_samples`` samples.
    Files shorter than ``MIN_AUDIO_DURATION`` are an AudioError. Returns (samples,)."""
    wav = load_audio(path, sample_rate, max_duration)
    if wav.shape[0] < MIN_AUDIO_DURATION * sample_rate:
        raise AudioError(f"{path}: {wav.shape[0]} samples ({1000 * wav.shape[0] / sample_rate:.1f} ms), too short "
                         f"to embed (at least {MIN_AUDIO_DURATION:g} s)")
    return wrap_pad(wav, min_samples)


def wrap_pad(wav, num_samples):
    """Repeat ``wav`` (samples,) cyclically until it has at least ``num_samples`` samples.

    >>> wrap_pad(torch.tensor([1.0, 2.0, 3.0]), 7)
    tensor([1., 2., 3., 1., 2., 3., 1.])
    """
    if wav.shape[0] >= num_samples:
        return wav
    repeats = -(-num_samples // wav.shape[0])
    return wav.repeat(repeats)[:num_samples]


def random_crop(path, num_samples, start, stop, rng, sample_rate=16000):
    """A random ``num_samples`` crop of the segment [start, stop) of ``path``,
    wrap-padded if the segment is shorter. ``rng`` is a ``random.Random``."""
    length = stop - start
    if length <= num_samples:
        return wrap_pad(read_segment(path, start, stop, sample_rate), num_samples)
    offset = start + rng.randint(0, length - num_samples)
    return read_segment(path, offset, offset + num_samples, sample_rate)


def evenly_spaced_crops(wav, num_samples, num_crops=10):
    """The authors' evaluation crops: ``num_crops`` windows of ``num_samples``
    at evenly spaced starts, after wrap-padding short files.

    Returns (num_crops, num_samples).

    >>> evenly_spaced_crops(torch.arange(10.0), 4, num_crops=3)
    tensor([[0., 1., 2., 3.],
            [3., 4., 5., 6.],
            [6., 7., 8., 9.]])
    """
    if wav.shape[0] <= num_samples:
        wav = wrap_pad(wav, num_samples + 1)
    starts = np.linspace(0, wav.shape[0] - num_samples, num=num_crops)
    return torch.stack([wav[int(s) : int(s) + num_samples] for s in starts])
