#!/usr/bin/env python3
"""Two speaker-disjoint trial lists of real speech, to calibrate on one and evaluate on the other.

    python benchmarks/realspeech_trials.py REALSPEECH OUT [--impostors 20]

REALSPEECH is the shared folder of real recordings (``librispeech/test-other``:
10 speakers x 10 utterances; ``librispeech/train-clean-100``: 251 speakers x 1
utterance); it is read, never copied. OUT receives ``half_a.txt`` and
``half_b.txt`` in the recipe's trial format (``label enrol test``, paths
relative to REALSPEECH/librispeech). Each half has 5 of the test-other
speakers (alternating in id order within each sex, so that both halves
hold both sexes): every pair of their utterances (225 target, 1000
non-target trials), and each utterance against ``--impostors`` recordings of
its half of the train-clean-100 speakers (non-target trials). Score them with
a run folder of the recipe (a copy: verify.py writes its threshold.json)::

    python verify.py hparams/verification.yaml --train_output_folder=RUN --data_folder=OUT \\
        --trial_wav_folder=REALSPEECH/librispeech --verification_file=OUT/half_b.txt \\
        --dev_verification_file=OUT/half_a.txt --output_folder=OUT/b_calibrated_on_a

and again with the halves swapped. Small lists: expect wide confidence intervals.
"""
import argparse
import itertools
import random
import sys
from pathlib import Path

from speechbrain_tdy.dataio.trials import read_trials
from speechbrain_tdy.storage.atomic import Replaceable, readable_by, write_text_atomically

#: The trial lists this script writes (a second run replaces only trial lists).
TRIALS = Replaceable("a trial list", readable_by(read_trials))


def speakers_by_sex(speakers_file, speakers):
    """{"F": [...], "M": [...]} of ``speakers`` (ids) from LibriSpeech's SPEAKERS.TXT."""
    sexes = {}
    for line in Path(speakers_file).read_text(encoding="utf-8").splitlines():
        fields = [field.strip() for field in line.split("|")]
        if not line.startswith(";") and len(fields) > 1 and fields[0] in speakers:
            sexes.setdefault(fields[1], []).append(fields[0])
    return {sex: sorted(ids, key=int) for sex, ids in sexes.items()}


def halves(root):
    """The test-other speakers in two halves, alternating within each sex."""
    test = Path(root) / "test-other"
    speakers = {path.name for path in test.iterdir() if path.is_dir()}
    ordered = [s for sex in sorted(speakers_by_sex(test / "SPEAKERS.TXT", speakers).values()) for s in sex]
    return ordered[0::2], ordered[1::2]


def trial_lines(root, speakers, pool, impostors, rng):
    """Trial lines of one half: all pairs of its speakers' utterances, and each
    utterance against ``impostors`` recordings drawn from ``pool``."""
    files = [f"test-other/{s}/{p.name}" for s in speakers for p in sorted((Path(root) / "test-other" / s).glob("*.flac"))]
    lines = [f"{int(a.split('/')[1] == b.split('/')[1])} {a} {b}" for a, b in itertools.combinations(files, 2)]
    for path in files:
        lines += [f"0 {path} {impostor}" for impostor in rng.sample(pool, k=impostors)]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("realspeech", help="the shared real-speech folder (holds librispeech/)")
    parser.add_argument("out", help="folder for half_a.txt and half_b.txt")
    parser.add_argument("--impostors", type=int, default=20, help="train-clean-100 recordings per utterance")
    args = parser.parse_args(argv)
    root = Path(args.realspeech) / "librispeech"
    pool = sorted(f"train-clean-100/{path.name}" for path in (root / "train-clean-100").glob("*.flac"))
    rng = random.Random(0)
    rng.shuffle(pool)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, speakers, half_pool in zip(("half_a", "half_b"), halves(root), (pool[0::2], pool[1::2])):
        lines = trial_lines(root, speakers, half_pool, args.impostors, rng)
        write_text_atomically(out / f"{name}.txt", "\n".join(lines) + "\n", TRIALS)
        targets = sum(line.startswith("1") for line in lines)
        print(f"{out / name}.txt: speakers {', '.join(speakers)}; {targets} target, {len(lines) - targets} non-target")


if __name__ == "__main__":
    sys.exit(main())
