"""Local noise and room-impulse-response files for SpeechBrain's AddNoise/AddReverb.

Recipes point ``noise_folder`` / ``rir_folder`` at folders of wav files (MUSAN,
the RIRS_NOISES set, or anything else on disk); :func:`folder_to_csv` writes the
CSV that SpeechBrain's augmenters and :class:`speechbrain_tdy.dataio.augment.NoiseBank` read. :func:`write_synthetic_noise_and_rirs`
makes small synthetic folders for the mini corpus, so nothing is downloaded.
"""
import csv
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from speechbrain_tdy.storage.atomic import atomic_path


def folder_to_csv(folder, csv_file):
    """Write SpeechBrain's augmentation CSV (ID, duration, wav, wav_format,
    wav_opts) listing every wav file under ``folder``.

    Reads the headers only and leaves the recordings as they are
    (SpeechBrain's ``write_csv`` cuts long recordings into pieces, deleting
    the originals, and rewrites multi-channel ones as mono). Skips the work
    when ``csv_file`` exists. Raises FileNotFoundError naming the folder if
    it holds no wav file, and ValueError naming a file that is not mono.
    """
    if os.path.isfile(csv_file):
        return csv_file
    files = sorted(str(p) for p in Path(folder).rglob("*.wav")) if os.path.isdir(folder) else []
    if not files:
        raise FileNotFoundError(
            f"No wav files in {folder}: provide noise/RIR recordings there, or disable the "
            "augmentation that needs them (augment: False, or remove it from 'augmentations')"
        )
    rows = []
    for index, path in enumerate(files):
        info = sf.info(path)
        if info.channels != 1:
            raise ValueError(f"{path}: {info.channels} channels; noise and RIR recordings must be mono")
        rows.append((f"{Path(path).stem}_{index}", info.frames / info.samplerate, path, "wav", ""))
    os.makedirs(os.path.dirname(os.path.abspath(csv_file)), exist_ok=True)
    with atomic_path(csv_file) as partial, open(partial, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["ID", "duration", "wav", "wav_format", "wav_opts"])
        writer.writerows(rows)
    return csv_file


def write_synthetic_noise_and_rirs(out_dir, n_noises=8, n_rirs=8, sample_rate=16000, seed=0):
    """Coloured noises (3 s) in ``out_dir/noise`` and exponentially decaying
    impulse responses (RT60 0.2-0.8 s) in ``out_dir/rir``. Returns both folders.

    A file already there (``noise_000.wav``, ..., of an earlier, killed run or
    of the user) is kept, never replaced."""
    rng = np.random.default_rng(seed)
    noise_dir, rir_dir = Path(out_dir) / "noise", Path(out_dir) / "rir"
    noise_dir.mkdir(parents=True, exist_ok=True)
    rir_dir.mkdir(parents=True, exist_ok=True)
    freqs = np.fft.rfftfreq(3 * sample_rate, 1 / sample_rate)
    for i in range(n_noises):
        slope = rng.uniform(-1.5, 0.5)  # spectral slope in log power per log frequency
        spectrum = rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))
        spectrum *= np.maximum(freqs, 50.0) ** (slope / 2)
        noise = np.fft.irfft(spectrum, n=3 * sample_rate)
        _write_new_wav(noise_dir / f"noise_{i:03d}.wav", 0.3 * noise / np.abs(noise).max(), sample_rate)
    for i in range(n_rirs):
        rt60 = rng.uniform(0.2, 0.8)
        t = np.arange(int(rt60 * sample_rate)) / sample_rate
        rir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
        rir[0] = 1.0
        _write_new_wav(rir_dir / f"rir_{i:03d}.wav", 0.9 * rir / np.abs(rir).max(), sample_rate)
    return str(noise_dir), str(rir_dir)


def _write_new_wav(path, samples, sample_rate):
    """A 16-bit wav at ``path``, unless something is there already (kept)."""
    if os.path.lexists(path):
        return
    with atomic_path(path) as partial:
        sf.write(partial, samples, sample_rate, subtype="PCM_16")
