"""Reading audio for training and verification.

Waveforms are float32 in [-1, 1] (soundfile's convention, as in the authors'
code). Files shorter than a crop are extended by wrapping around, as the
authors do; multi-channel files are averaged to mono.

Work is bounded before decoding: only regular files are opened, and a file is
refused from its header if it is longer than ``max_duration`` (default
:data:`MAX_DURATION`, 3 hours); decoding stops there even if the header lies,
and channels are mixed to mono block by block, so a small compressed file
cannot decode into gigabytes.
"""
import math

import numpy as np
import soundfile as sf
import torch
import torchaudio

from speechbrain_tdy.storage.reading import check_regular_file


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
#: Shortest recording embedded (seconds): wrap-padding a few samples to
#: ``MIN_DURATION`` would give an embedding of nothing.
MIN_AUDIO_DURATION = 0.1
#: Longest recording read (seconds), checked from the header before decoding:
#: a small compressed file can hold hours of samples (3 hours at 16 kHz decode
#: to 0.7 GB of float32 samples). Callers may pass another ``max_duration``.
MAX_DURATION = 3 * 3600.0
#: Files above this rate may hold ``max_duration`` seconds of samples at this
#: rate only, so that the work and memory of decoding stay those of ``max_duration``
#: at 48 kHz whatever rate the header claims.
MAX_DECODED_RATE = 48000
#: Frames decoded at a time (each block is mixed to mono before the next).
DECODE_BLOCK_FRAMES = 1 << 16
#: Largest sample magnitude accepted (float files outside [-1, 1] by this much
#: are not audio as the models expect it, and overflow the features).
MAX_AMPLITUDE = 100.0


def _read(path, start=0, stop=None, max_duration=MAX_DURATION):
    """Mono float32 samples (samples,) of frames [start, stop) of ``path`` and
    its header rate; AudioError naming it, before decoding for a special file
    or a recording longer than ``max_duration`` seconds."""
    check_audio_file(path)
    try:
        with sf.SoundFile(str(path)) as stream:
            rate, frames = stream.samplerate, stream.frames
            if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
                raise AudioError(f"{path}: header sample rate {rate} Hz is outside "
                                 f"[{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz")
            limit = int(max_duration * min(rate, MAX_DECODED_RATE))
            end = frames if stop is None else min(stop, frames)
            if end - start > limit:
                raise _too_long(path, f"{(end - start) / rate:,.0f} s of audio", end - start, rate, max_duration)
            wanted = limit + 1 if stop is None else min(stop - start, limit + 1)  # one more: a lying header
            stream.seek(min(start, frames))
            blocks = [block.mean(axis=1) for block in
                      stream.blocks(DECODE_BLOCK_FRAMES, frames=wanted, dtype="float32", always_2d=True)]
    except (RuntimeError, sf.LibsndfileError, TypeError) as error:
        raise _unreadable(path, error) from error
    audio = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    if audio.shape[0] > limit:
        raise _too_long(path, "more audio than its header says", audio.shape[0], rate, max_duration)
    if audio.shape[0] == 0:
        raise AudioError(f"{path}: no samples" + (f" in [{start}, {stop})" if start or stop is not None else ""))
    return audio, rate


def audio_header(path):
    """soundfile's header of ``path`` (``duration``, ``frames``, ``samplerate``),
    read without decoding; AudioError naming a file that is not a regular
    file or not audio. For ordering files by length before they are read."""
    check_audio_file(path)
    try:
        return sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, TypeError) as error:
        raise _unreadable(path, error) from error


def header_duration(path):
    """Seconds of audio that the header of ``path`` states (nothing is decoded;
    before any wrap-padding); AudioError naming the file if it states none."""
    header = audio_header(path)
    if header.frames <= 0 or header.samplerate <= 0:
        raise AudioError(f"{path}: the header states no samples")
    return header.frames / header.samplerate


def check_audio_file(path):
    """AudioError naming ``path`` unless it is a regular file, checked before
    it is opened: a FIFO would block the reader forever, a device never ends."""
    try:
        check_regular_file(path, "an audio file", error=AudioError)
    except FileNotFoundError as missing:
        raise AudioError(f"cannot read audio: {missing}") from missing


def _unreadable(path, error):
    return AudioError(f"{path}: cannot read audio ({error}); is it an audio file that libsndfile decodes "
                      "(wav, flac, ogg, ...)?")


def _too_long(path, what, frames, rate, max_duration):
    """The AudioError of a file whose ``frames`` at ``rate`` exceed ``max_duration``
    (above MAX_DECODED_RATE: max_duration x MAX_DECODED_RATE samples)."""
    if rate <= MAX_DECODED_RATE:
        return AudioError(f"{path}: {what}, more than max_duration ({max_duration:,.0f} s); cut the file, or pass a "
                          "larger max_duration")
    return AudioError(f"{path}: {what} ({frames:,} samples at {rate:,} Hz), more than max_duration "
                      f"({max_duration:,.0f} s) of {MAX_DECODED_RATE:,} samples a second, the most read from a file "
                      f"above {MAX_DECODED_RATE:,} Hz; cut or resample the file, or pass a larger max_duration")


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
    check_samples(path, audio)
    return torch.from_numpy(np.ascontiguousarray(audio))


def check_voiced(path, audio):
    """Raise AudioError naming ``path`` if ``audio`` (array or tensor) is digital silence."""
    if not audio.any():
        raise AudioError(f"{path}: digital silence, there is no voice to embed")


def load_audio(path, sample_rate=16000, max_duration=MAX_DURATION):
    """A whole file as a mono float32 tensor (samples,) at ``sample_rate``:
    channels averaged, resampled from any rate in [1 kHz, 384 kHz].

    Raises AudioError naming the file if it is not a regular file, is longer
    than ``max_duration`` seconds (checked from the header, before decoding),
    cannot be decoded, is empty, has an unusable sample rate, holds
    NaN/infinite or out-of-range samples, or only digital silence.
    """
    audio, rate = _read(path, max_duration=max_duration)
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
    resampled, checked, at most ``max_duration`` seconds), then
    :func:`pad_utterance`. Returns (samples,)."""
    return pad_utterance(load_audio(path, sample_rate, max_duration), min_samples, sample_rate, path)


def pad_utterance(wav, min_samples, sample_rate, where):
    """``wav`` (samples,) wrap-padded to at least ``min_samples`` samples, as
    the authors pad short recordings; AudioError naming ``where`` if it is
    shorter than :data:`MIN_AUDIO_DURATION`, too short to be embedded.

    >>> pad_utterance(torch.ones(800), 1600, 16000, "short.wav")
    Traceback (most recent call last):
    ...
    speechbrain_tdy.dataio.audio.AudioError: short.wav: 800 samples (50.0 ms), too short to embed (at least 0.1 s)
    """
    if wav.shape[0] < MIN_AUDIO_DURATION * sample_rate:
        raise AudioError(f"{where}: {wav.shape[0]} samples ({1000 * wav.shape[0] / sample_rate:.1f} ms), too short "
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
