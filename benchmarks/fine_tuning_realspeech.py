"""Fine-tuning against training from scratch, measured on real speech.

    OMP_NUM_THREADS=1 python benchmarks/fine_tuning_realspeech.py REALSPEECH_DIR WORK_DIR
    (options: --pretrain_epochs N, --epochs S, --seed SEED)

Prepares both sets of the shared real speech (``tools/realspeech_corpus.py``)
under WORK_DIR, then trains TDY-ResNet-34 (x0.25)'s layers with small
settings (``SMALL``: 16 mels, half its channel widths, 0.8-s crops) and scores on FSDD's test list with ``verify.py``
(threshold calibrated on FSDD's dev list):

1. scratch:   from random weights on FSDD (set B) for S epochs;
2. pretrain:  on LibriSpeech's 241 training speakers (set A) for N epochs,
   beside (1) (one thread each: on a busy CPU two threads per run were
   several times slower than one);
3. fine-tune: from (2) with ``--init_from`` on FSDD for the same S epochs,
   the same batches and learning-rate schedule (temperature 1: no re-annealing).

A = LibriSpeech, B = FSDD: the many speakers of A are what pretraining can
teach and the 6 speakers of B are what scratch training lacks; the reverse
(pretraining on 6 speakers) could hardly teach speaker discrimination. It
prints EER, minDCF and the wall time of each run in one table and writes it
to WORK_DIR/results.md. Nothing is written into the repository.
"""
import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from speechbrain_tdy.scoring.metrics import error_rates

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "VoxCeleb" / "SpeakerRec"

#: Small settings, so that each run takes minutes on a shared CPU: 16 mels and
#: half the recipe's channel widths (the layers, 3-4-6-3, and TDY are the recipe's).
SMALL = {
    "n_mels": 16, "emb_dim": 128, "channels": [8, 16, 32, 64], "crop_frames": 80, "n_per_speaker": 2,
    "zero_init_residual": True, "lr": 0.002, "lr_warmup_epochs": 1, "lr_decay": 0.5, "lr_decay_every": 4,
    "temperature_step": 10, "valid_crop_frames": 300, "eer_every_n_epochs": 0, "augment": False, "num_workers": 0,
    "split_ratio": [90, 10],
}


def run(args, cwd=RECIPE):
    """Run a command as a user would; returns its wall time in seconds."""
    print("$", " ".join(map(str, args)), flush=True)
    start = time.time()
    subprocess.run([str(a) for a in args], cwd=cwd, check=True)
    return time.time() - start


def train(corpus, output, epochs, batch_speakers, closed_set, **extra):
    overrides = dict(SMALL, data_folder=corpus, output_folder=output, number_of_epochs=epochs,
                     batch_speakers=batch_speakers, dev_verification_file=corpus / "veri_dev.txt",
                     exclude_trial_speakers=not closed_set, **extra)
    return run([sys.executable, "train.py", "hparams/tdy_resnet34_quarter.yaml"]
               + [f"--{k}={v}".replace(" ", "") for k, v in overrides.items()])


def verify(corpus, trained):
    seconds = run([sys.executable, "verify.py", "hparams/verification.yaml", f"--data_folder={corpus}",
                   f"--train_output_folder={trained}", f"--dev_verification_file={corpus / 'veri_dev.txt'}"])
    return json.loads((trained / "verification" / "results.json").read_text()), seconds


def speaker_bootstrap_eer(scores_txt, n_resamples=200, seed=0, level=0.9):
    """The ``level`` interval of the EER (percent) over resamples of the test speakers.

    Each resample draws as many speakers as the list has, with replacement; a
    trial counts c(enrol) times if it is a target pair and c(enrol) x c(test)
    times if not, where c counts the draws of a speaker. Trials of one speaker
    are not independent, so this interval, unlike a binomial one over trials,
    shows how little a handful of speakers pins the EER down."""
    rows = [line.split() for line in Path(scores_txt).read_text().splitlines()]
    enrol = [r[0].split("/")[0] for r in rows]
    test = [r[1].split("/")[0] for r in rows]
    labels = torch.tensor([int(r[2]) for r in rows])
    scores = torch.tensor([float(r[3]) for r in rows])
    speakers = sorted(set(enrol) | set(test))
    rng = np.random.default_rng(seed)
    eers = []
    for _ in range(n_resamples):
        drawn = dict(zip(*np.unique(rng.choice(speakers, len(speakers)), return_counts=True)))
        weights = torch.tensor([drawn.get(e, 0) * (1 if label else drawn.get(t, 0))
                                for e, t, label in zip(enrol, test, labels.tolist())])
        kept = labels.repeat_interleave(weights)
        if 0 < int(kept.sum()) < len(kept):
            eers.append(error_rates(scores.repeat_interleave(weights), kept)[0])
    low, high = np.quantile(eers, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("realspeech_dir", type=Path)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--pretrain_epochs", type=int, default=2, help="epochs on LibriSpeech (set A)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs on FSDD (set B), scratch and fine-tuning")
    parser.add_argument("--seed", type=int, default=1986, help="seed of the three training runs")
    args = parser.parse_args(argv)
    work = args.work_dir.resolve()
    corpora = {name: work / name for name in ("librispeech", "fsdd")}
    for name, corpus in corpora.items():
        if not (corpus / "corpus.json").is_file():
            run([sys.executable, REPO / "tools" / "realspeech_corpus.py", args.realspeech_dir.resolve(), corpus,
                 "--set", name], cwd=REPO)  # the corpora's own fixed seed: --seed varies the training only

    # Scratch training and pretraining are independent: they run side by side.
    fsdd, rows = corpora["fsdd"], []
    scratch, pretrained, tuned = work / "scratch_fsdd", work / "pretrain_librispeech", work / "finetune_fsdd"
    with ThreadPoolExecutor(2) as pool:
        scratch_run = pool.submit(train, fsdd, scratch, args.epochs, 6, closed_set=True, seed=args.seed)
        # The temperature reaches 1 by the last epoch of pretraining: fine-tuning runs at 1.
        step = -(-30 // max(1, args.pretrain_epochs - 1))
        pretrain_run = pool.submit(train, corpora["librispeech"], pretrained, args.pretrain_epochs, 8,
                                   closed_set=False, seed=args.seed, temperature_step=step)
        seconds, pretrain_seconds = scratch_run.result(), pretrain_run.result()
    rows.append(("scratch on FSDD", f"{args.epochs} FSDD epochs", seconds, *verify(fsdd, scratch)))
    seconds = train(fsdd, tuned, args.epochs, 6, closed_set=True, seed=args.seed, init_from=pretrained)
    rows.append(("LibriSpeech -> FSDD", f"{args.pretrain_epochs} LibriSpeech + {args.epochs} FSDD epochs",
                 seconds, *verify(fsdd, tuned)))

    lines = [
        f"FSDD test list ({rows[0][3]['n_trials']} trials, 6 speakers, closed set); "
        f"pretraining on LibriSpeech took {pretrain_seconds:.0f} s (beside the scratch run)",
        "",
        "| model | training | EER (%) | EER 90% interval (speaker bootstrap) | minDCF | FSDD training (s) "
        "| scoring (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (name, steps, t, r, v), folder in zip(rows, (scratch, tuned)):
        low, high = speaker_bootstrap_eer(folder / "verification" / "scores.txt")
        lines.append(f"| {name} | {steps} | {r['EER']:.2f} | {low:.1f}-{high:.1f} | {r['minDCF']:.3f} | {t:.0f} "
                     f"| {v:.0f} |")
    table = "\n".join(lines) + "\n"
    (work / "results.md").write_text(table)
    print()
    print(table)


if __name__ == "__main__":
    main()
