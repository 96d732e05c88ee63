"""A small synthetic speaker-verification corpus in VoxCeleb's layout.

    python tools/mini_corpus.py OUT_DIR [--speakers N] [--utterances M] [--seed S]

Speech is made with a source-filter model: a glottal pulse train (the
speaker's pitch, pitch range, jitter, spectral tilt and breathiness) through a
cascade of formant resonators scaled by the speaker's vocal-tract length, plus
shaped noise for fricatives and stop bursts. Utterances are random sequences of
phone-like units (vowels, nasals, fricatives, stops, pauses) whose durations
follow the speaker's speaking rate; a ``.phn`` file beside each wav gives the
phone and its class for every 10 ms frame. Each speaker is recorded in several
sessions whose channels differ (equaliser, spectral tilt, band limits, gain,
coloured noise, reverberation), so that verification has to look past the
channel: the average spectrum of a file says more about its session than its
speaker, while pitch statistics and formant spacing stay speaker-specific.

Output::

    OUT_DIR/wav/idNNNNN/<session>/<NNNNN>.wav   16 kHz, 16-bit PCM, mono
    OUT_DIR/wav/idNNNNN/<session>/<NNNNN>.phn   "phone phone_class" per 10 ms frame
    OUT_DIR/veri_test.txt                       trials over held-out test speakers
    OUT_DIR/veri_dev.txt                        trials over held-out dev speakers
    OUT_DIR/corpus.json                         parameters, seed and speaker split

Trial lists use VoxCeleb1's format, ``label enrol test`` per line with paths
relative to ``OUT_DIR/wav``. The same seed and parameters give bit-identical
files. Difficulty knobs: ``speaker_spread`` (how different voices are) and
``channel_strength`` (how different the sessions of one speaker are);
:func:`baseline_eers` measures a naive and a simple learned baseline.
"""
import argparse
import contextlib
import functools
import itertools
import json
import multiprocessing
import string
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.fft import irfft, next_fast_len, rfft
from scipy.signal import fftconvolve, lfilter

from speechbrain_tdy.storage.atomic import atomic_folder, atomic_path, write_text_atomically

SAMPLE_RATE = 16000
HOP = 160  # samples per label frame: frame i covers samples [HOP * i, HOP * (i + 1))

# Phone inventory. Vowels and nasals: formant frequencies F1-F3 in Hz for a
# neutral vocal tract (scaled per speaker). Fricatives and stop bursts: noise
# band (low, high) in Hz.
VOWELS = {
    "iy": (280, 2250, 2890), "ih": (400, 1920, 2560), "eh": (550, 1770, 2490), "ae": (690, 1660, 2490),
    "aa": (710, 1100, 2540), "ao": (590, 880, 2540), "uh": (450, 1030, 2380), "uw": (310, 870, 2250),
    "ah": (620, 1220, 2550), "er": (490, 1350, 1690),
}
NASALS = {"m": (280, 1100, 2250), "n": (280, 1500, 2500), "ng": (280, 2000, 2700)}
FRICATIVES = {"s": (4000, 7800), "sh": (2000, 5500), "f": (1200, 7800), "th": (1500, 7000), "hh": (400, 3500)}
STOPS = {"p": (300, 1800), "t": (3000, 7500), "k": (1500, 3800), "b": (200, 1500), "d": (2500, 6000),
         "g": (1200, 3200)}
PAUSE = "sil"

#: Phone unit -> phone class, as written in the ``.phn`` label files (read by
#: :mod:`speechbrain_tdy.analysis.phone_labels`).
PHONE_CLASS = {
    **{p: "vowel" for p in VOWELS}, **{p: "nasal" for p in NASALS},
    **{p: "fricative" for p in FRICATIVES}, **{p: "stop" for p in STOPS}, PAUSE: "pause",
}

_BANDWIDTHS = (80.0, 110.0, 150.0)  # formant bandwidths in Hz (scaled per speaker)
_SESSION_ALPHABET = np.array(list(string.ascii_letters + string.digits + "-_"))


def draw_speaker(rng, spread=1.0):
    """Voice parameters of one speaker (a dict of floats).

    ``spread`` scales how far speakers lie from the average voice (pitch,
    pitch range, vocal-tract length, tilt, speaking rate, breathiness).
    """
    formant_quirks = np.exp(rng.normal(0, 0.05 * spread, (len(VOWELS) + len(NASALS), 3)))
    return {
        "f0": float(np.exp(np.log(150) + rng.uniform(-0.55, 0.55) * spread)),  # Hz, about 85-260
        "f0_range": float(np.clip(1.8 + rng.uniform(-1.2, 1.2) * spread, 0.2, None)),  # semitones (std)
        "vtl": float(np.exp(rng.normal(0, 0.1 * spread))),  # formant scale (1 / vocal-tract length)
        "bandwidth": float(np.exp(rng.normal(0, 0.2 * spread))),  # formant bandwidth scale
        "tilt": float(np.clip(0.75 + rng.uniform(-0.2, 0.2) * spread, 0.3, 0.97)),  # source low-pass pole
        "breath": float(np.clip(0.12 + rng.uniform(-0.1, 0.1) * spread, 0.0, None)),  # aspiration noise
        "rate": float(np.exp(rng.normal(0, 0.15 * spread))),  # phone duration factor (> 1: slower)
        "jitter": float(rng.uniform(0.003, 0.02)),
        "formant_quirks": formant_quirks.round(4).tolist(),  # per-phone idiosyncrasies of F1-F3
    }


def draw_channel(rng, strength=1.0):
    """Recording channel of one session (a dict); ``strength`` scales its variability.

    Peaking equaliser bands (Hz, dB, Q), a first-order spectral tilt, band
    limits, gain, signal-to-noise ratio, noise colour and reverberation time.
    """
    return {
        # Broad bands (low Q): they reshape the average spectrum, not the formant peaks.
        "eq": [(float(np.exp(rng.uniform(np.log(150), np.log(6000)))), float(rng.normal(0, 6 * strength)),
                float(rng.uniform(0.3, 1.2))) for _ in range(3)],
        "tilt": float(np.clip(rng.normal(0, 0.5 * strength), -0.9, 0.9)),
        "highpass": float(rng.uniform(20, 20 + 250 * strength)),
        "lowpass": float(rng.uniform(7900 - 4000 * min(strength, 1.0), 7900)),
        "gain_db": float(rng.uniform(-15, 0)),
        "snr_db": float(rng.uniform(40 - 25 * strength, 45)),
        "noise_tilt": float(rng.uniform(-0.9, 0.9)),
        "rt60": float(rng.uniform(0.0, 0.6 * strength)),
        "drr_db": float(rng.uniform(15 - 12 * min(strength, 1.0), 15)),  # direct-to-reverberant ratio
    }


def _resonator(freq, bandwidth):
    """(b, a) of a second-order resonator with unit gain at 0 Hz."""
    r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    a = np.array([1.0, -2 * r * np.cos(2 * np.pi * min(freq, 7600) / SAMPLE_RATE), r * r])
    return np.array([a.sum()]), a


def _band_noise(rng, n, low, high):
    """Unit-variance white noise band-limited to [low, high] Hz, shape (n,)."""
    size = next_fast_len(n, real=True)
    spectrum = rfft(rng.standard_normal(size))
    freqs = np.fft.rfftfreq(size, 1 / SAMPLE_RATE)
    spectrum[(freqs < low) | (freqs > high)] = 0
    noise = irfft(spectrum, size)[:n]
    return noise / (noise.std() + 1e-9)


def phone_sequence(rng, duration, rate):
    """Random phones filling ``duration`` seconds: a list of (phone, samples).

    Syllable-like: consonant clusters of 0-2 phones between vowels, with
    occasional pauses; durations scale with the speaker's ``rate``.
    """
    vowels, consonants = list(VOWELS), list(NASALS) + list(FRICATIVES) + list(STOPS)
    target = int(duration * SAMPLE_RATE)
    phones = [(PAUSE, int(rng.uniform(0.05, 0.2) * SAMPLE_RATE))]
    total = phones[0][1]
    while total < target:
        if rng.random() < 0.07:
            units = [(PAUSE, rng.uniform(0.1, 0.35))]
        else:
            units = [(consonants[rng.integers(len(consonants))], 0.0) for _ in range(rng.choice(3, p=[0.25, 0.55, 0.2]))]
            units = [(p, rng.uniform(0.04, 0.08) if PHONE_CLASS[p] == "stop" else rng.uniform(0.05, 0.11))
                     for p, _ in units]
            units.append((vowels[rng.integers(len(vowels))], rng.uniform(0.06, 0.18)))
        for phone, seconds in units:
            samples = max(HOP, int(seconds * (1.0 if phone == PAUSE else rate) * SAMPLE_RATE))
            phones.append((phone, samples))
            total += samples
    excess = total - target  # trim the last units so the utterance has the asked length
    while excess > 0 and len(phones) > 1:
        phone, samples = phones.pop()
        if samples - excess >= HOP:
            phones.append((phone, samples - excess))
        excess -= samples
    return phones


def glottal_source(rng, speaker, n):
    """Glottal excitation, shape (n,): pulses at the speaker's pitch contour
    (slow intonation + declination + jitter), low-passed by the speaker's tilt,
    differentiated (lip radiation), plus aspiration noise."""
    t = np.arange(n) / SAMPLE_RATE
    knots = max(2, int(t[-1] * 2.5) + 2)
    intonation = np.interp(t, np.linspace(0, t[-1] + 1e-3, knots), rng.normal(0, speaker["f0_range"], knots))
    declination = -2.0 * t / max(t[-1], 1e-3)
    f0 = speaker["f0"] * 2 ** ((intonation + declination) / 12) * (1 + speaker["jitter"] * rng.standard_normal(n))
    pulses = np.diff(np.floor(np.cumsum(f0 / SAMPLE_RATE)), prepend=0.0)
    source = np.diff(lfilter([1.0], [1.0, -speaker["tilt"]], pulses), prepend=0.0)
    source /= source.std() + 1e-9
    return source + speaker["breath"] * rng.standard_normal(n)


def synthesise(rng, speaker, duration):
    """One utterance of about ``duration`` seconds.

    Returns (waveform (samples,) float64 peak-normalised, phones) where phones
    is one phone name per 10 ms frame (``samples // 160`` entries).
    """
    phones = phone_sequence(rng, duration, speaker["rate"])
    n = sum(samples for _, samples in phones)
    source = glottal_source(rng, speaker, n)
    wav = np.zeros(n)
    sonorants = list(VOWELS) + list(NASALS)
    states = [np.zeros(2) for _ in _BANDWIDTHS]  # resonator states carried across phones (no clicks)
    start = 0
    for phone, samples in phones:
        end = start + samples
        kind = PHONE_CLASS[phone]
        if kind in ("vowel", "nasal"):
            formants = (VOWELS.get(phone) or NASALS[phone]) * np.array(speaker["formant_quirks"][sonorants.index(phone)])
            out = source[start:end]
            for i, freq in enumerate(formants):
                b, a = _resonator(freq * speaker["vtl"], _BANDWIDTHS[i] * speaker["bandwidth"])
                out, states[i] = lfilter(b, a, out, zi=states[i])
            wav[start:end] = out * (0.3 if kind == "nasal" else 1.0)
        elif kind == "fricative":
            low, high = FRICATIVES[phone]
            wav[start:end] = 0.25 * _band_noise(rng, samples, low * speaker["vtl"], min(high * speaker["vtl"], 7900))
        elif kind == "stop":
            low, high = STOPS[phone]
            burst = max(samples // 3, 16)
            decay = np.exp(-np.arange(burst) / (0.25 * burst))
            wav[end - burst:end] = 0.5 * _band_noise(rng, burst, low * speaker["vtl"], min(high * speaker["vtl"], 7900)) * decay
        start = end
    # Smooth onsets and offsets of each unit (5 ms) with a short moving average of the envelope.
    envelope = np.convolve(np.repeat([0.0 if PHONE_CLASS[p] == "pause" else 1.0 for p, _ in phones],
                                     [s for _, s in phones]), np.ones(80) / 80, mode="same")
    wav *= envelope
    centres = np.arange(n // HOP) * HOP + HOP // 2
    bounds = np.cumsum([samples for _, samples in phones])
    labels = [phones[i][0] for i in np.searchsorted(bounds, centres, side="right")]
    return wav / (np.abs(wav).max() + 1e-9), labels


def apply_channel(rng, wav, channel):
    """The session's channel applied to ``wav`` (samples,): equaliser, tilt,
    band limits, reverberation, coloured noise, gain. Same length as ``wav``."""
    for freq, gain_db, q in channel["eq"]:  # peaking filters (RBJ audio EQ cookbook)
        amp, w0 = 10 ** (gain_db / 40), 2 * np.pi * freq / SAMPLE_RATE
        alpha = np.sin(w0) / (2 * q)
        b = [1 + alpha * amp, -2 * np.cos(w0), 1 - alpha * amp]
        a = [1 + alpha / amp, -2 * np.cos(w0), 1 - alpha / amp]
        wav = lfilter(b, a, wav)
    wav = lfilter([1.0, -channel["tilt"]], [1.0], wav)  # > 0: brighter, < 0: duller
    size = next_fast_len(len(wav) + 2048, real=True)  # zero padding: the band filters' tails fit
    spectrum = rfft(wav, size)
    freqs = np.fft.rfftfreq(size, 1 / SAMPLE_RATE)
    spectrum *= 1 / np.sqrt(1 + (channel["highpass"] / np.maximum(freqs, 1.0)) ** 4)
    spectrum *= 1 / np.sqrt(1 + (freqs / channel["lowpass"]) ** 8)
    wav = irfft(spectrum, size)[: len(wav)]
    if channel["rt60"] > 0.05:
        t = np.arange(int(channel["rt60"] * SAMPLE_RATE)) / SAMPLE_RATE
        tail = rng.standard_normal(len(t)) * np.exp(-6.9 * t / channel["rt60"])
        rir = tail * 10 ** (-channel["drr_db"] / 20) / np.sqrt(np.sum(tail[1:] ** 2))
        rir[0] = 1.0
        wav = fftconvolve(wav, rir)[: len(wav)]
    noise = lfilter([1.0], [1.0, -channel["noise_tilt"]], rng.standard_normal(len(wav)))
    noise *= wav.std() / (noise.std() + 1e-9) * 10 ** (-channel["snr_db"] / 20)
    wav = wav + noise
    return wav / (np.abs(wav).max() + 1e-9) * 0.9 * 10 ** (channel["gain_db"] / 20)


def session_name(rng):
    """An 11-character id like a YouTube video id (never starting with '-')."""
    first = _SESSION_ALPHABET[: 62][rng.integers(62)]
    return first + "".join(rng.choice(_SESSION_ALPHABET, 10))


def make_trials(rng, utterances, per_utterance=2):
    """Balanced trial lines over ``utterances``, a list of (speaker, session, path).

    Each utterance enrols ``per_utterance`` target trials (test utterances from
    other sessions of the same speaker first) and as many non-target trials
    (utterances of other speakers). Pairs are not repeated. Returns lines
    ``"label enrol test"``.
    """
    lines, seen = [], set()
    paths = np.array([u[2] for u in utterances])
    speakers = np.array([u[0] for u in utterances])
    sessions = np.array([u[1] for u in utterances])
    for speaker, session, path in utterances:
        same = (speakers == speaker) & (paths != path)
        cross = np.flatnonzero(same & (sessions != session))
        within = np.flatnonzero(same & (sessions == session))
        targets = np.concatenate([rng.permutation(cross), rng.permutation(within)])
        others = rng.permutation(np.flatnonzero(speakers != speaker))
        n_targets = _add_pairs(lines, seen, 1, path, paths[targets], per_utterance)
        _add_pairs(lines, seen, 0, path, paths[others], n_targets)  # as many non-targets as targets
    return lines


def _add_pairs(lines, seen, label, enrol, candidates, count):
    """Append up to ``count`` trials (enrol, candidate) not yet in ``seen``; return how many."""
    added = 0
    for test in candidates:
        if added == count:
            break
        pair = frozenset((enrol, test))
        if pair not in seen:
            seen.add(pair)
            lines.append(f"{label} {enrol} {test}")
            added += 1
    return added


def split_speakers(n_speakers, n_dev=None, n_test=None):
    """Numbers of (train, dev, test) speakers; by default in the ratio 40:8:10
    with at least two dev and two test speakers."""
    n_test = max(2, round(n_speakers * 10 / 58)) if n_test is None else n_test
    n_dev = max(2, round(n_speakers * 8 / 58)) if n_dev is None else n_dev
    if n_dev < 2 or n_test < 2 or n_speakers - n_test - n_dev < 2:
        raise ValueError(f"need >= 2 train, dev and test speakers; got {n_speakers} speakers, "
                         f"{n_dev} dev, {n_test} test")
    return n_speakers - n_test - n_dev, n_dev, n_test


def generate_corpus(out_dir, n_speakers=58, n_utterances=16, seed=0, n_dev=None, n_test=None, sessions=(2, 4),
                    durations=(3.0, 8.0), speaker_spread=3.0, channel_strength=0.3, trials_per_utterance=2,
                    verbose=False, workers=1, progress=None):
    """Write the corpus to ``out_dir`` and return a summary dict.

    Arguments
    ---------
    out_dir : str or Path
        Output folder: new, or empty. The corpus is written in a staging folder
        beside it and renamed into place once complete; an existing folder
        that holds anything is refused (OutputExistsError), never written into.
    n_speakers : int
        Speakers in all: ids id00001... in order train, dev, test.
    n_utterances : int
        Utterances per speaker, spread round-robin over its sessions.
    seed : int
        Same seed and arguments, bit-identical files. A speaker's voice and
        sessions depend only on the seed and its index.
    n_dev, n_test : int or None
        Held-out dev / test speakers (default: 8/58 and 10/58 of the speakers, >= 2).
    sessions : (int, int)
        Inclusive range of sessions (channels) per speaker.
    durations : (float, float)
        Range of utterance durations in seconds.
    speaker_spread : float
        Difficulty knob: how different voices are (larger: easier).
    channel_strength : float
        Difficulty knob: how different the sessions' channels are (larger: harder).
    trials_per_utterance : int
        Target trials (and as many non-targets) enrolled by each held-out utterance.
    verbose : bool
        Print progress per speaker.
    workers : int
        Processes that write speakers in parallel; the files do not depend on it.
    progress : callable or None
        Called as ``progress(done, total)`` after each speaker is written.

    Returns
    -------
    dict with the generation parameters, ``speakers`` ({"train", "dev", "test"}:
    lists of ids), ``n_files``, ``n_trials``, ``audio_seconds``, ``wall_seconds``
    and ``realtime_factor`` (audio seconds / wall seconds).
    """
    start_time = time.perf_counter()
    out = Path(out_dir)
    n_train, n_dev, n_test = split_speakers(n_speakers, n_dev, n_test)
    seeds = np.random.SeedSequence(seed).spawn(n_speakers + 1)
    roles = ["train"] * n_train + ["dev"] * n_dev + ["test"] * n_test
    with atomic_folder(out) as staging:  # a killed run leaves no half corpus at ``out``
        write = functools.partial(
            _write_speaker, staging, n_utterances=n_utterances, sessions=sessions, durations=durations,
            speaker_spread=speaker_spread, channel_strength=channel_strength,
        )
        jobs = list(enumerate(seeds[:n_speakers]))
        with contextlib.ExitStack() as stack:
            if workers > 1:
                pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(workers))
                written = pool.imap(_write_speaker_job, [(write, job) for job in jobs])  # in order, as they finish
            else:
                written = itertools.starmap(write, jobs)
            written = list(_reporting(written, n_speakers, progress))
        split = {"train": [], "dev": [], "test": []}
        listed = {"dev": [], "test": []}
        total_samples = 0
        for role, (speaker_id, n_sessions, files, samples) in zip(roles, written):
            split[role].append(speaker_id)
            total_samples += samples
            if role in listed:
                listed[role].extend(files)
            if verbose:
                print(f"{speaker_id} ({role}): {n_sessions} sessions, {n_utterances} utterances", flush=True)
        trial_rng = np.random.default_rng(seeds[-1])
        n_trials = {}
        for role in ("test", "dev"):
            lines = make_trials(trial_rng, listed[role], trials_per_utterance)
            write_text_atomically(staging / f"veri_{role}.txt", "".join(line + "\n" for line in lines))
            n_trials[role] = len(lines)
        summary = {
            "seed": seed, "n_speakers": n_speakers, "n_utterances": n_utterances, "sessions": list(sessions),
            "durations": list(durations), "speaker_spread": speaker_spread, "channel_strength": channel_strength,
            "trials_per_utterance": trials_per_utterance, "sample_rate": SAMPLE_RATE, "frame_hop": HOP,
            "speakers": split, "n_files": n_speakers * n_utterances, "n_trials": n_trials,
            "audio_seconds": round(total_samples / SAMPLE_RATE, 3),
        }
        write_text_atomically(staging / "corpus.json", json.dumps(summary, indent=2) + "\n")
    wall = time.perf_counter() - start_time
    summary.update(wall_seconds=wall, realtime_factor=total_samples / SAMPLE_RATE / wall)
    return summary


def _reporting(results, total, progress):
    """Yield ``results``, calling ``progress(done, total)`` after each one."""
    for done, result in enumerate(results, start=1):
        if progress is not None:
            progress(done, total)
        yield result


def _write_speaker_job(job):
    """``write(*args)`` for ``job = (write, args)``: one picklable argument for ``Pool.imap``."""
    write, args = job
    return write(*args)


def _write_speaker(out, index, seed, n_utterances, sessions, durations, speaker_spread, channel_strength):
    """Write speaker ``index`` (drawn from ``seed``, a SeedSequence): its id, number
    of sessions, (speaker, session, path) of each file, and its number of samples."""
    rng = np.random.default_rng(seed)
    speaker_id = f"id{index + 1:05d}"
    voice = draw_speaker(rng, speaker_spread)
    n_sessions = int(rng.integers(sessions[0], sessions[1] + 1))
    channels = [(session_name(rng), draw_channel(rng, channel_strength)) for _ in range(n_sessions)]
    counts, files, samples = {}, [], 0
    for utterance in range(n_utterances):
        session, channel = channels[utterance % n_sessions]
        counts[session] = counts.get(session, 0) + 1
        folder = out / "wav" / speaker_id / session
        folder.mkdir(parents=True, exist_ok=True)
        wav, labels = synthesise(rng, voice, rng.uniform(*durations))
        wav = apply_channel(rng, wav, channel)
        name = f"{counts[session]:05d}"
        _write_wav(folder / f"{name}.wav", wav)
        write_text_atomically(folder / f"{name}.phn", "".join(f"{p} {PHONE_CLASS[p]}\n" for p in labels))
        samples += len(wav)
        files.append((speaker_id, session, f"{speaker_id}/{session}/{name}.wav"))
    return speaker_id, n_sessions, files, samples


def _write_wav(path, wav):
    with atomic_path(path) as partial:
        sf.write(partial, wav.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")


def _logmel_stats(path, n_mels=40):
    """Mean and std over time of the log-mel spectrogram of a file: (2 * n_mels,)."""
    import torch
    import torchaudio

    wav, rate = sf.read(path, dtype="float32")
    mel = torchaudio.transforms.MelSpectrogram(rate, n_fft=512, win_length=400, hop_length=HOP, n_mels=n_mels)
    logmel = torch.log(mel(torch.from_numpy(wav)) + 1e-6)
    return np.concatenate([logmel.mean(1).numpy(), logmel.std(1).numpy()])


def baseline_eers(corpus_dir, trial_file="veri_test.txt", n_mels=40):
    """EERs (%) of two baselines on a trial list of a generated corpus.

    ``mean_logmel_cosine``: cosine similarity of mean log-mel vectors (naive,
    should be high). ``lda_logmel_stats``: mean+std log-mel vectors projected by
    an LDA fitted on the training speakers' files, then cosine (a simple
    learned embedding; a trained CNN should do better).
    """
    import torch
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from speechbrain_tdy.dataio.trials import read_trials
    from speechbrain_tdy.scoring.metrics import error_rates

    torch.set_num_threads(1)
    corpus = Path(corpus_dir)
    info = json.loads((corpus / "corpus.json").read_text())
    trials = [(t.label, t.enrol, t.test) for t in read_trials(corpus / trial_file)]
    files = sorted({p for _, e, t in trials for p in (e, t)})
    stats = {p: _logmel_stats(corpus / "wav" / p, n_mels) for p in files}
    train_files = [p for s in info["speakers"]["train"] for p in sorted((corpus / "wav" / s).rglob("*.wav"))]
    train_x = np.stack([_logmel_stats(p, n_mels) for p in train_files])
    train_y = [p.parts[-3] for p in train_files]
    mean_x, std_x = train_x.mean(0), train_x.std(0) + 1e-6
    lda = LinearDiscriminantAnalysis(n_components=min(len(set(train_y)) - 1, train_x.shape[1]))
    lda.fit((train_x - mean_x) / std_x, train_y)

    def cosine(a, b):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))

    labels = [label for label, _, _ in trials]
    naive = [cosine(stats[e][:n_mels], stats[t][:n_mels]) for _, e, t in trials]
    projected = {p: lda.transform(((v - mean_x) / std_x)[None])[0] for p, v in stats.items()}
    learned = [cosine(projected[e], projected[t]) for _, e, t in trials]
    return {"mean_logmel_cosine": error_rates(torch.tensor(naive), labels)[0],
            "lda_logmel_stats": error_rates(torch.tensor(learned), labels)[0], "n_trials": len(trials)}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Generate a small synthetic speaker-verification corpus in VoxCeleb's layout "
                    "(OUT_DIR/wav/idNNNNN/<session>/NNNNN.wav + .phn labels, veri_test.txt, "
                    "veri_dev.txt, corpus.json).")
    parser.add_argument("out_dir", help="output folder")
    parser.add_argument("--speakers", type=int, default=58,
                        help="speakers in all, split train:dev:test about 40:8:10 (default 58)")
    parser.add_argument("--dev-speakers", type=int, default=None, help="held-out dev speakers (default 8/58)")
    parser.add_argument("--test-speakers", type=int, default=None, help="held-out test speakers (default 10/58)")
    parser.add_argument("--utterances", type=int, default=16, help="utterances per speaker (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--sessions", type=int, nargs=2, default=(2, 4), metavar=("MIN", "MAX"),
                        help="sessions per speaker (default 2 4)")
    parser.add_argument("--durations", type=float, nargs=2, default=(3.0, 8.0), metavar=("MIN", "MAX"),
                        help="utterance duration range in seconds (default 3 8)")
    parser.add_argument("--speaker-spread", type=float, default=3.0,
                        help="how different voices are; larger is easier (default 3.0)")
    parser.add_argument("--channel-strength", type=float, default=0.3,
                        help="how different a speaker's sessions sound; larger is harder (default 0.3)")
    parser.add_argument("--trials-per-utterance", type=int, default=2,
                        help="target trials (and as many non-targets) per held-out utterance (default 2)")
    parser.add_argument("--baselines", action="store_true",
                        help="afterwards, print the EERs of a naive (mean log-mel cosine) and a simple "
                             "learned (LDA) baseline on veri_test.txt")
    parser.add_argument("--verbose", action="store_true", help="print progress per speaker")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes writing speakers in parallel; same files for any number (default 1)")
    args = parser.parse_args(argv)
    try:
        summary = generate_corpus(
            args.out_dir, args.speakers, args.utterances, args.seed, n_dev=args.dev_speakers,
            n_test=args.test_speakers, sessions=tuple(args.sessions), durations=tuple(args.durations),
            speaker_spread=args.speaker_spread, channel_strength=args.channel_strength,
            trials_per_utterance=args.trials_per_utterance, verbose=args.verbose, workers=args.workers,
        )
    except (ValueError, OSError) as error:
        parser.error(str(error))
    split = summary["speakers"]
    print(f"{summary['n_files']} files, {summary['audio_seconds']:.0f} s of audio, speakers "
          f"{len(split['train'])} train / {len(split['dev'])} dev / {len(split['test'])} test, "
          f"trials {summary['n_trials']['test']} test / {summary['n_trials']['dev']} dev in {args.out_dir}")
    print(f"generated in {summary['wall_seconds']:.1f} s: {summary['realtime_factor']:.0f}x faster than real time")
    if args.baselines:
        eers = baseline_eers(args.out_dir)
        print(f"EER on veri_test.txt: mean log-mel cosine {eers['mean_logmel_cosine']:.1f}%, "
              f"LDA on log-mel statistics {eers['lda_logmel_stats']:.1f}%")


if __name__ == "__main__":
    main()
