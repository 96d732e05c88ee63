"""Reading audio for training and verification.

Waveforms are float32 in [-1, 1] (soundfile's convention, as in the authors'
code). Files shorter than a crop are extended by wrapping around, as the
authors do; multi-channel files are averaged to mono.
"""
import math

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
#: Largest sample magnitude accepted (float files outside [-1, 1] by this much
#: are not audio as the models expect it, and overflow the features).
MAX_AMPLITUDE = 100.0


def _read(path, start=0, stop=None):
    """(samples, channels) float32 array and header rate of ``path``; AudioError naming it."""
    try:
        info = sf.info(str(path))
        audio, rate = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, TypeError) as error:
        raise AudioError(f"{path}: cannot read audio ({error}); is it an audio file that libsndfile decodes "
                         "(wav, flac, ogg, ...)?") from error
    if info.samplerate != rate:
        raise AudioError(f"{path}: inconsistent sample rate in the header")
    if audio.shape[0] == 0:
        raise AudioError(f"{path}: no samples" + (f" in [{start}, {stop})" if start or stop is not None else ""))
    return audio, rate


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


def load_audio(path, sample_rate=16000):
    """A whole file as a mono float32 tensor (samples,) at ``sample_rate``:
    channels averaged, resampled from any rate in [1 kHz, 384 kHz].

    Raises AudioError naming the file if it cannot be decoded, is empty, has
    an unusable sample rate, holds NaN/infinite or out-of-range samples, or
    only digital silence.
    """
    audio, rate = _read(path)
    audio = audio.mean(axis=1)
    check_samples(path, audio)
    check_voiced(path, audio)
    wav = torch.from_numpy(np.ascontiguousarray(audio))
    if rate == sample_rate:
        return wav
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{path}: header sample rate {rate} Hz is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz")
    common = math.gcd(rate, sample_rate)
    kernel = (sample_rate // common) * (rate // common)
    if kernel > MAX_RESAMPLING_KERNEL:
        raise AudioError(f"{path}: resampling {rate} Hz to {sample_rate} Hz exactly needs a {kernel:,}-value kernel; "
                         f"convert the file to {sample_rate} Hz first (e.g. sox in.wav -r {sample_rate} out.wav)")
    return torchaudio.functional.resample(wav, rate, sample_rate)


def load_utterance(path, sample_rate=16000, min_samples=int(MIN_DURATION * 16000)):
    """A file as every embedding of it sees it: :func:`load_audio` (mono,
    resampled, checked), wrap-padded to at least ``min_samples`` samples.
    Returns (samples,)."""
    return wrap_pad(load_audio(path, sample_rate), min_samples)


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
