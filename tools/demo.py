"""The README's main job: mini corpus -> train TDY-ResNet-34 (x0.25) -> verify -> export.

    python tools/demo.py [--output demo_output] [--seed N] [--epochs N] [--static]

(``make demo`` runs it with the defaults.)

Runs the VoxCeleb recipe exactly as a user would (``train.py`` and
``verify.py`` with their hparams files and command-line overrides), on a
synthetic corpus in VoxCeleb's layout, then exports the model and scores one
trial through the pretrained interface. Re-running reuses what is done.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mini_corpus import generate_corpus  # beside this file
from speechbrain_tdy.dataio.augmentation_files import write_synthetic_noise_and_rirs
from speechbrain_tdy.dataio.trials import read_trials

# The corpus writer's processes re-import this file (they are spawned), so the
# modules that import torch are imported where they are used, not here: each
# writer would otherwise pay torch's import time.

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "VoxCeleb" / "SpeakerRec"

# Small enough to run in minutes on 2 CPU cores (timings and results: the
# recipe's README, recipes/VoxCeleb/SpeakerRec/README.md): 16 mels,
# 0.8-s crops, batches of 8 speakers x 2 utterances (35 steps per epoch), no
# augmentation, 11 epochs at twice the paper's learning rate, reached step by
# step over the first 2 epochs and halved after epochs 4 and 8, and validation
# on 3-s centre crops. Every residual block starts as the identity
# (zero_init_residual): without it, both TDY and static models stayed near
# chance for the first few epochs and ended far apart from seed to seed.
# A TDY step at 16 mels is cheaper than one at 24, so 11 epochs cost less
# than 8 did at 24 mels, and they learn more (docs/HISTORY.md). TDY
# must be annealed before it is used at the inference temperature 1, so the
# demo anneals faster than the paper: at every step, from 31 to 1 by the start
# of epoch 4.
DEMO_OVERRIDES = {
    "n_mels": 16,
    "emb_dim": 128,
    "crop_frames": 80,
    "batch_speakers": 8,
    "n_per_speaker": 2,
    "zero_init_residual": True,
    "number_of_epochs": 11,
    "lr": 0.002,
    "lr_warmup_epochs": 2,  # at 2e-3 from the first step, some seeds stayed at chance (docs/HISTORY.md)
    "lr_decay": 0.5,
    "lr_decay_every": 4,
    "temperature_step": 10,
    "valid_crop_frames": 300,  # classification error on 3-s centre crops of the dev utterances
    "eer_every_n_epochs": 0,  # verify.py scores the dev list once, to calibrate
    "augment": False,
    "num_workers": 0,
    "split_ratio": [90, 10],
}


def run(script, hparams, overrides):
    """Run a recipe script with ``--key=value`` overrides, as a user would."""
    args = [sys.executable, script, hparams] + [f"--{k}={v}" for k, v in overrides.items()]
    print("$", " ".join(args[1:]), flush=True)
    subprocess.run(args, cwd=RECIPE, check=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="demo_output", help="folder for corpus, models and results")
    parser.add_argument("--seed", type=int, default=1986,
                        help="seed of the training run (initialisation, crops, batches); the corpus is always the same")
    parser.add_argument("--epochs", type=int, default=DEMO_OVERRIDES["number_of_epochs"])
    parser.add_argument("--speakers", type=int, default=None, help="training speakers of the mini corpus")
    parser.add_argument("--static", action="store_true",
                        help="instead, train and score the static ResNet-34 (x0.25) with the same settings (baseline)")
    args = parser.parse_args(argv)
    start = time.time()
    output = Path(args.output).resolve()
    corpus = output / "corpus"

    if not (corpus / "veri_test.txt").is_file():
        kwargs = {} if args.speakers is None else {"n_speakers": args.speakers}
        print(f"Writing the mini corpus to {corpus}", flush=True)

        def progress(done, total):
            if done % 10 == 0 or done == total:
                print(f"  {done}/{total} speakers written ({time.time() - start:.0f} s)", flush=True)

        generate_corpus(corpus, workers=os.cpu_count() or 1, progress=progress, **kwargs)
    if not (corpus / "rir").is_dir():
        write_synthetic_noise_and_rirs(corpus)

    overrides = dict(
        DEMO_OVERRIDES, seed=args.seed, number_of_epochs=args.epochs, data_folder=corpus,
        dev_verification_file=corpus / "veri_dev.txt",
    )
    if args.static:
        static = output / "resnet34_quarter"
        run("train.py", "hparams/resnet34_half.yaml",
            dict(overrides, output_folder=static, architecture="resnet34_quarter"))
        run("verify.py", "hparams/verification.yaml",
            {"data_folder": corpus, "train_output_folder": static, "dev_verification_file": corpus / "veri_dev.txt"})
        results = json.loads((static / "verification" / "results.json").read_text())
        print()
        print(f"Static ResNet-34 (x0.25) on the mini corpus test list ({results['n_trials']} trials):")
        print(f"  EER {results['EER']:.2f}%  minDCF(0.05) {results['minDCF']:.3f}   wall time {time.time() - start:.0f} s")
        return

    trained = output / "tdy_resnet34_quarter"
    run("train.py", "hparams/tdy_resnet34_quarter.yaml", dict(overrides, output_folder=trained))
    run("verify.py", "hparams/verification.yaml",
        {"data_folder": corpus, "train_output_folder": trained, "dev_verification_file": corpus / "veri_dev.txt"})

    results = json.loads((trained / "verification" / "results.json").read_text())
    exported = output / "exported_model"
    llr, decision = export_and_score_one_trial(trained, exported, corpus)

    print()
    print(f"TDY-ResNet-34 (x0.25) on the mini corpus test list ({results['n_trials']} trials):")
    print(f"  EER {results['EER']:.2f}%  minDCF(0.05) {results['minDCF']:.3f}   (chance: EER 50%, minDCF 0.050)")
    print(f"  model:  {trained / 'save'}")
    print(f"  scores: {trained / 'verification' / 'scores.txt'}")
    print(f"  DET:    {trained / 'verification' / 'det.png'}")
    print(f"  export: {exported}  (one trial through TDYSpeakerRecognition: LLR {llr:.3f}, same speaker at "
          f"p_target 0.05: {decision})")
    print(f"  wall time {time.time() - start:.0f} s")


def export_and_score_one_trial(trained, exported, corpus):
    """Export the run folder ``trained`` to ``exported`` (in this process: no
    second start-up), then score the first trial of the test list through the
    pretrained interface. Returns (log-likelihood ratio, same speaker)."""
    from speechbrain_tdy.cli.export import main as export_main
    from speechbrain_tdy.inference import TDYSpeakerRecognition

    print(f"$ python -m speechbrain_tdy.export {trained} {exported} --overwrite", flush=True)
    export_main([str(trained), str(exported), "--overwrite"])
    trial = read_trials(corpus / "veri_test.txt")[0]
    model = TDYSpeakerRecognition.from_hparams(source=str(exported))
    llr, decision = model.verify_files(str(corpus / "wav" / trial.enrol), str(corpus / "wav" / trial.test))
    return float(llr), bool(decision)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    main()
