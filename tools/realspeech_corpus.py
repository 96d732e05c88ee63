"""A speaker-verification corpus in VoxCeleb's layout from one set of the shared real speech.

    python tools/realspeech_corpus.py REALSPEECH_DIR OUT_DIR --set librispeech|fsdd

REALSPEECH_DIR is the shared folder of real recordings (``../shared/realspeech``,
see its README.md); the audio is read from there and written to OUT_DIR, never
into the repository. Output, as ``tools/mini_corpus.py`` writes it and
``voxceleb_prepare.py`` reads it::

    OUT_DIR/wav/idNNNNN/<session>/<utt>.wav   16 kHz, 16-bit PCM, mono
    OUT_DIR/veri_test.txt, OUT_DIR/veri_dev.txt   "label enrol test", paths relative to OUT_DIR/wav
    OUT_DIR/corpus.json                            the set, the seed and the speaker split

Sets:

- ``librispeech`` (open set, read English). Training: the 251 speakers of
  ``train-clean-100`` (one recording each), each recording cut into segments of
  about ``SEGMENT_SECONDS`` (at least two), so that a speaker has several
  utterances; session = chapter. Test: the 10 ``test-other`` speakers, never
  trained on, their 10 whole recordings each. Dev: ``DEV_SPEAKERS`` train-clean-100
  speakers drawn with the seed and held out of training (``train.py`` excludes
  trial speakers); their trials compare segments of one recording, so dev
  targets are easier than test targets (the dev list only sets the threshold).
  License: CC BY 4.0 (LibriSpeech, Panayotov et al., 2015).
- ``fsdd`` (closed set, English digits). The 6 speakers of the Free Spoken Digit
  Dataset; the 10 digits of one take, resampled from 8 kHz and joined in digit
  order with short pauses, make one utterance of a few seconds. Training: takes
  0-29 of every speaker; dev trials among takes 30-39, test trials among takes
  40-49 (train.py must keep the trial speakers: ``--exclude_trial_speakers=False``).
  License: CC BY-SA 4.0 (Zohar Jackson and contributors); the joined utterances
  are a derived work under the same license.

Each trial list holds every target pair of its utterances and as many
non-target pairs drawn with the seed (balanced), so the same inputs and seed
give the same files.
"""
import argparse
import itertools
import json
import random
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from speechbrain_tdy.storage.atomic import atomic_path, write_text_atomically

SAMPLE_RATE = 16000
SEGMENT_SECONDS = 3.0  # LibriSpeech training recordings are cut into segments of about this length
DEV_SPEAKERS = 10  # train-clean-100 speakers held out for the dev list
DIGIT_PAUSE_SECONDS = 0.1  # silence between the joined FSDD digits
FSDD_TRAIN_TAKES, FSDD_DEV_TAKES, FSDD_TEST_TAKES = range(0, 30), range(30, 40), range(40, 50)


class CorpusError(Exception):
    """Bad or missing input; the message names the file."""


def read_audio(path):
    """(samples float32, rate) of a mono wav or flac file; a CorpusError names a file that cannot be read."""
    try:
        samples, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises several types for missing, empty or corrupt files
        raise CorpusError(f"{path}: cannot read audio ({error})") from None
    if samples.shape[0] == 0:
        raise CorpusError(f"{path}: no samples")
    return samples.mean(axis=1), rate


def at_16k(samples, rate, path):
    """The samples at 16 kHz (8 kHz is upsampled by 2); other rates are refused naming the file."""
    if rate == SAMPLE_RATE:
        return samples
    if SAMPLE_RATE % rate:
        raise CorpusError(f"{path}: sample rate {rate} Hz, expected 8000 or 16000")
    return resample_poly(samples, SAMPLE_RATE // rate, 1).astype(np.float32)


def write_wav(out_dir, relpath, samples):
    """Write 16-bit 16 kHz ``OUT_DIR/wav/relpath`` atomically; returns relpath."""
    path = out_dir / "wav" / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        sf.write(partial, np.clip(samples, -1, 1), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return relpath


def balanced_trials(utterances, rng):
    """Every target pair of ``utterances`` ({speaker: [relpath]}) and as many drawn non-target pairs."""
    targets = [(1, a, b) for s in sorted(utterances) for a, b in itertools.combinations(utterances[s], 2)]
    non_targets = [(0, a, b) for s, t in itertools.combinations(sorted(utterances), 2)
                   for a in utterances[s] for b in utterances[t]]
    chosen = rng.sample(non_targets, min(len(targets), len(non_targets)))
    trials = targets + chosen
    rng.shuffle(trials)
    return "".join(f"{label} {a} {b}\n" for label, a, b in trials)


def existing(path):
    """``path`` if it exists; else a CorpusError naming it."""
    if not path.exists():
        raise CorpusError(f"{path}: not found (is REALSPEECH_DIR the shared realspeech folder?)")
    return path


def librispeech(source, out_dir, rng):
    """Write the LibriSpeech set; returns ({split: {speaker_id: [relpath]}}, notes)."""
    train_files = sorted(existing(source / "librispeech" / "train-clean-100").glob("*.flac"))
    test_dirs = sorted(p for p in existing(source / "librispeech" / "test-other").iterdir() if p.is_dir())
    if not train_files or not test_dirs:
        raise CorpusError(f"{source / 'librispeech'}: no train-clean-100/*.flac or no test-other speakers")
    speakers = sorted(f.name.split("-")[0] for f in train_files)
    dev_speakers = set(rng.sample(speakers, min(DEV_SPEAKERS, len(speakers) // 2)))
    splits = {"train": {}, "dev": {}, "test": {}}
    for path in train_files:
        speaker, chapter, _ = path.stem.split("-")
        samples = at_16k(*read_audio(path), path)
        n = max(2, round(len(samples) / (SEGMENT_SECONDS * SAMPLE_RATE)))
        sid = f"id{int(speaker):05d}"
        split = "dev" if speaker in dev_speakers else "train"
        splits[split][sid] = [write_wav(out_dir, f"{sid}/{chapter}/{i:05d}.wav", part)
                              for i, part in enumerate(np.array_split(samples, n))]
    for folder in test_dirs:
        sid = f"id{int(folder.name):05d}"
        files = sorted(folder.rglob("*.flac"))
        if not files:
            raise CorpusError(f"{folder}: no flac files")
        splits["test"][sid] = [write_wav(out_dir, f"{sid}/{p.stem.split('-')[1]}/{p.stem.split('-')[2]}.wav",
                                         at_16k(*read_audio(p), p)) for p in files]
    overlap = set(splits["test"]) & (set(splits["train"]) | set(splits["dev"]))
    if overlap:
        raise CorpusError(f"{source / 'librispeech'}: test-other speakers also in train-clean-100: {sorted(overlap)}")
    return splits, f"dev: {len(dev_speakers)} held-out train-clean-100 speakers (segments of one recording)"


def fsdd(source, out_dir, rng):
    """Write the FSDD set (one utterance per speaker and take); returns ({split: {speaker_id: [relpath]}}, notes)."""
    folder = existing(source / "fsdd" / "recordings")
    files = {}
    for path in sorted(folder.glob("*.wav")):
        try:
            digit, speaker, take = path.stem.split("_")
            files[speaker, int(take), int(digit)] = path
        except ValueError:
            raise CorpusError(f"{path}: expected <digit>_<speaker>_<take>.wav") from None
    speakers = sorted({speaker for speaker, _, _ in files})
    if not speakers:
        raise CorpusError(f"{folder}: no <digit>_<speaker>_<take>.wav files")
    pause = np.zeros(int(DIGIT_PAUSE_SECONDS * SAMPLE_RATE), np.float32)
    splits = {"train": {}, "dev": {}, "test": {}}
    for number, speaker in enumerate(speakers, start=1):
        sid = f"id9{number:04d}"
        for split, takes in (("train", FSDD_TRAIN_TAKES), ("dev", FSDD_DEV_TAKES), ("test", FSDD_TEST_TAKES)):
            for take in takes:
                digits = [files.get((speaker, take, d)) for d in range(10)]
                if not any(digits):
                    continue
                parts = [piece for p in digits if p for piece in (at_16k(*read_audio(p), p), pause)]
                relpath = write_wav(out_dir, f"{sid}/{speaker}/{take:05d}.wav", np.concatenate(parts[:-1]))
                splits[split].setdefault(sid, []).append(relpath)
    for split in ("dev", "test"):
        if len(splits[split]) < 2:
            raise CorpusError(f"{folder}: the {split} list needs takes {FSDD_DEV_TAKES.start}-"
                              f"{FSDD_TEST_TAKES.stop - 1} of at least two speakers")
    return splits, "closed set: train takes 0-29, dev trials among takes 30-39, test trials among takes 40-49"


SETS = {"librispeech": librispeech, "fsdd": fsdd}


def build_corpus(source, out_dir, which, seed=1986):
    """Write the corpus of set ``which`` from ``source`` (REALSPEECH_DIR) to ``out_dir``; returns its summary dict."""
    source, out_dir = Path(source), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    splits, notes = SETS[which](source, out_dir, rng)
    for split in ("dev", "test"):
        write_text_atomically(out_dir / f"veri_{split}.txt", balanced_trials(splits[split], rng))
    summary = {
        "set": which, "seed": seed, "notes": notes,
        "speakers": {split: sorted(speakers) for split, speakers in splits.items()},
        "utterances": {split: sum(map(len, speakers.values())) for split, speakers in splits.items()},
    }
    write_text_atomically(out_dir / "corpus.json", json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("realspeech_dir", help="the shared realspeech folder (fsdd/, librispeech/)")
    parser.add_argument("out_dir", help="where to write the corpus (outside the repository)")
    parser.add_argument("--set", required=True, choices=sorted(SETS), dest="which")
    parser.add_argument("--seed", type=int, default=1986)
    args = parser.parse_args(argv)
    try:
        summary = build_corpus(args.realspeech_dir, args.out_dir, args.which, args.seed)
    except CorpusError as error:
        sys.exit(f"error: {error}")
    counts = ", ".join(f"{split} {len(summary['speakers'][split])} speakers / {n} utterances"
                       for split, n in summary["utterances"].items())
    print(f"{args.which}: {counts} -> {args.out_dir}")


if __name__ == "__main__":
    main()
