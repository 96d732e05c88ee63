#!/usr/bin/env python3
"""Score a VoxCeleb trial list with a model trained by train.py.

    python verify.py hparams/verification.yaml \
        --train_output_folder=results/tdy_resnet34_half/1986 --data_folder=/path/to/VoxCeleb1

Embeds every file of the trial list (whole utterances, or the paper's 10 crops
of 400 frames with ``--crop=True``), scores trials by cosine similarity
(optionally s-norm / adaptive s-norm against a cohort of training
embeddings), and writes to ``output_folder``: ``scores.txt``, ``results.json``
(EER in percent, minDCF, number of trials, EER threshold) and ``det.png``.
With a ``dev_verification_file`` it also calibrates the decision threshold
on that list and stores it as ``<train_output_folder>/threshold.json``.
"""
import json
import logging
import os
import random
import sys
from pathlib import Path

import matplotlib
import speechbrain as sb
import torch
import torch.nn.functional as F
from hyperpyyaml import load_hyperpyyaml
from sklearn.metrics import DetCurveDisplay

from speechbrain_tdy.dataio.manifest import load_manifest
from speechbrain_tdy.dataio.trials import read_trials
from speechbrain_tdy.nnet import set_temperature
from speechbrain_tdy.verification import embed_files, error_rates, score_trials

matplotlib.use("Agg")
logger = logging.getLogger(__name__)


def load_trained_model(train_output_folder, data_folder, device):
    """compute_features and embedding_model of a train.py run, best checkpoint
    (lowest dev EER if logged, else lowest classification error), temperature 1."""
    hparams_file = Path(train_output_folder) / "hyperparams.yaml"
    if not hparams_file.is_file():
        raise FileNotFoundError(f"{hparams_file} not found: is {train_output_folder} an output folder of train.py?")
    with open(hparams_file, encoding="utf-8") as stream:
        train_hparams = load_hyperpyyaml(
            stream, {"data_folder": data_folder, "output_folder": str(train_output_folder)}
        )
    checkpointer = train_hparams["checkpointer"]
    checkpoints = checkpointer.list_checkpoints()
    if not checkpoints:
        logger.warning("No checkpoint in %s: scoring an untrained model", checkpointer.checkpoints_dir)
    else:
        key = "EER" if all("EER" in c.meta for c in checkpoints) else "ErrorRate"
        checkpointer.recover_if_possible(min_key=key)
    compute_features = train_hparams["compute_features"].to(device).eval()
    embedding_model = train_hparams["embedding_model"].to(device).eval()
    set_temperature(embedding_model, 1.0)

    def embed(wavs, lens):
        wavs, lens = wavs.to(device), lens.to(device)
        feats = compute_features(wavs, lens)
        return embedding_model(feats, compute_features.frame_lengths(lens, wavs.shape[1])).squeeze(1)

    return embed, train_hparams


def trial_files(trials):
    return sorted({path for trial in trials for path in (trial.enrol, trial.test)})


def cohort_embeddings(embed, train_csv, size, seed, sample_rate):
    """Embeddings of ``size`` random training utterances (one row each)."""
    rows = list(load_manifest(train_csv).values())
    random.Random(seed).shuffle(rows)
    paths = [row["wav"] for row in rows[:size]]
    embeddings = embed_files(embed, paths, "/", sample_rate)
    return torch.stack([embeddings[p] for p in paths])


def normalise_scores(scores, trials, embeddings, cohort, top_n=None):
    """s-norm (top_n None) or adaptive s-norm (mean/std of the top_n cohort scores)."""
    normalised = []
    for score, trial in zip(scores.tolist(), trials):
        stats = []
        for path in (trial.enrol, trial.test):
            cohort_scores = cohort @ embeddings[path]
            if top_n is not None:
                cohort_scores = cohort_scores.topk(min(top_n, len(cohort_scores))).values
            stats.append((cohort_scores.mean(), cohort_scores.std()))
        normalised.append(0.5 * sum((score - mean) / std for mean, std in stats))
    return torch.tensor(normalised)


def write_outputs(output_folder, trials, scores, labels, eer, threshold, min_dcf):
    """scores.txt, results.json and det.png, each written atomically."""
    output_folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{t.enrol} {t.test} {t.label} {s:.6f}\n" for t, s in zip(trials, scores.tolist())]
    _atomic_write(output_folder / "scores.txt", "".join(lines))
    results = {"EER": eer, "minDCF": min_dcf, "n_trials": len(trials), "threshold": threshold}
    _atomic_write(output_folder / "results.json", json.dumps(results, indent=2) + "\n")
    display = DetCurveDisplay.from_predictions(labels, scores.numpy(), name=f"EER {eer:.2f}%")
    display.ax_.set_title("DET curve")
    display.figure_.savefig(output_folder / "det.partial.png")
    os.replace(output_folder / "det.partial.png", output_folder / "det.png")
    return results


def _atomic_write(path, text):
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    with open(hparams_file, encoding="utf-8") as stream:
        hparams = load_hyperpyyaml(stream, overrides)
    device = run_opts.get("device", "cpu")
    embed, train_hparams = load_trained_model(hparams["train_output_folder"], hparams["data_folder"], device)
    crop_samples = hparams["crop_frames"] * 160 + 240 if hparams["crop"] else None

    trials = read_trials(hparams["verification_file"])
    embeddings = embed_files(
        embed, trial_files(trials), hparams["trial_wav_folder"], hparams["sample_rate"], crop_samples, hparams["num_crops"]
    )
    scores = score_trials(trials, embeddings)
    if hparams["score_norm"]:
        if crop_samples is not None:
            raise ValueError("score_norm works on whole-utterance cosine scores; set crop: False")
        cohort = cohort_embeddings(
            embed, train_hparams["train_annotation"], hparams["cohort_size"], hparams["seed"], hparams["sample_rate"]
        )
        torch.save(cohort, Path(hparams["train_output_folder"]) / "cohort_embeddings.pt")
        top_n = hparams["as_norm_top_n"] if hparams["score_norm"] == "as-norm" else None
        scores = normalise_scores(scores, trials, embeddings, cohort, top_n)

    labels = [t.label for t in trials]
    eer, threshold, min_dcf = error_rates(scores, labels, hparams["p_target"])
    results = write_outputs(Path(hparams["output_folder"]), trials, scores, labels, eer, threshold, min_dcf)
    logger.info("Verification results: %s", results)
    print(json.dumps(results))

    if hparams.get("dev_verification_file"):
        dev_trials = read_trials(hparams["dev_verification_file"])
        dev_embeddings = embed_files(embed, trial_files(dev_trials), hparams["trial_wav_folder"], hparams["sample_rate"])
        dev_eer, dev_threshold, _ = error_rates(score_trials(dev_trials, dev_embeddings), [t.label for t in dev_trials])
        calibration = {"threshold": dev_threshold, "calibrated_on": str(hparams["dev_verification_file"]), "EER": dev_eer}
        _atomic_write(Path(hparams["train_output_folder"]) / "threshold.json", json.dumps(calibration, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
