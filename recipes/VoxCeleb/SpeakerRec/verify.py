#!/usr/bin/env python3
"""Score a VoxCeleb trial list with a model trained by train.py.

    python verify.py hparams/verification.yaml \
        --train_output_folder=results/tdy_resnet34_half/1986 --data_folder=/path/to/VoxCeleb1

Embeds every file of the trial list (whole utterances, or the paper's 10 crops
of 400 frames with ``--crop=True``) exactly as the pretrained interface embeds
a file (``speechbrain_tdy.embedding.files.embed_files``), so that the
calibration measured here applies to ``verify_files``; scores trials by cosine
similarity (optionally s-norm / adaptive s-norm against a cohort of training
embeddings).

It calibrates the scores on the ``dev_verification_file`` (or, without one,
on the evaluation list itself, with a warning): an affine map from score to
log-likelihood ratio, fitted by logistic regression weighted at
``calibration_prior`` (with ``--calibration_durations=True``, the log
durations of the two recordings are quality measures of the map too), and
the EER threshold of that list; both, with the scoring they hold for, go to
``<train_output_folder>/threshold.json`` for export
(:mod:`speechbrain_tdy.scoring.calibration`).

It writes to ``output_folder``: ``scores.txt``, ``results.json`` and
``det.png``. ``results.json`` holds the EER (percent), its threshold, minDCF
at ``p_target`` and the number of trials, and what calibration costs on the
evaluation list: Cllr and minCllr (bits), and at p_target 0.01 and 0.05 the
actual DCF of the calibrated decisions beside the minimum DCF, their P_miss
and P_fa, and the DCF of deciding at the calibration's EER threshold
instead; the DET curve marks the calibrated operating points.

The run folder may have been moved or copied: its checkpoint is found under
it. A run without a checkpoint is an error unless ``allow_untrained: True``
(to score an untrained model on purpose); ``results.json`` names the
checkpoint scored.
"""
import datetime
import io
import json
import logging
import random
import sys
from pathlib import Path

import matplotlib
import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from scipy.stats import norm
from sklearn.metrics import DetCurveDisplay
from voxceleb_prepare import check_trials_not_trained_on  # the recipe folder is on sys.path

from speechbrain_tdy.dataio.audio import crop_samples, header_duration
from speechbrain_tdy.dataio.manifest import load_manifest
from speechbrain_tdy.dataio.trials import read_trials
from speechbrain_tdy.embedding.files import embed_files
from speechbrain_tdy.nnet.tdy_conv import INFERENCE_TEMPERATURE
from speechbrain_tdy.scoring.calibration import CALIBRATION, Calibration, fit_score_to_llr, write_calibration
from speechbrain_tdy.scoring.metrics import calibration_report, error_rates
from speechbrain_tdy.scoring.scores import score_trials
from speechbrain_tdy.storage.atomic import (
    Replaceable,
    check_destination,
    readable_by,
    write_bytes_atomically,
    write_text_atomically,
)
from speechbrain_tdy.storage.figures import FIGURE, save_figure
from speechbrain_tdy.storage.model_files import CALIBRATION_FILE, TORCH_COHORT_FILE, read_cohort
from speechbrain_tdy.storage.run_folder import load_training_run

matplotlib.use("Agg")
logger = logging.getLogger(__name__)


def load_trained_model(train_output_folder, device, allow_untrained=False):
    """Embedding function (wavs, relative lengths) -> embeddings of the best
    checkpoint of a train.py run, and the run (see ``load_training_run``)."""
    run = load_training_run(train_output_folder, allow_untrained)
    pipeline = run.pipeline.to(device)
    print(describe_checkpoint(run.checkpoint, run.epoch), flush=True)

    def embed(wavs, lens):
        return pipeline.embed(wavs.to(device), lens.to(device))

    return embed, run


def describe_checkpoint(checkpoint, epoch):
    """One line saying which checkpoint is scored: its folder, the epoch it ends
    (``epoch``, from the recovered epoch counter) and its metadata.

    >>> from pathlib import Path
    >>> from speechbrain.utils.checkpoints import Checkpoint
    >>> meta = {"temperature": 1.0, "ErrorRate": 0.25, "EER": 8.5, "end-of-epoch": True}
    >>> describe_checkpoint(Checkpoint(Path("save/CKPT+x"), meta, {}), 11)
    'Scoring checkpoint save/CKPT+x: epoch 11, trained at temperature 1 (scored at 1), dev speaker-classification error 0.250, dev EER 8.50%'
    >>> describe_checkpoint(None, 0)
    'Scoring an untrained model: the run has no checkpoint'
    """
    if checkpoint is None:
        return "Scoring an untrained model: the run has no checkpoint"
    meta = checkpoint.meta
    parts = [f"Scoring checkpoint {checkpoint.path}: epoch {epoch}"
             + ("" if meta.get("end-of-epoch", True) else " (saved within the epoch)")]
    if "temperature" in meta:
        parts.append(f"trained at temperature {meta['temperature']:g} (scored at {INFERENCE_TEMPERATURE:g})")
    if "ErrorRate" in meta:
        parts.append(f"dev speaker-classification error {meta['ErrorRate']:.3f}")
    if "EER" in meta:
        parts.append(f"dev EER {meta['EER']:.2f}%")
    return ", ".join(parts)


def trial_files(trials):
    return sorted({path for trial in trials for path in (trial.enrol, trial.test)})


def cohort_embeddings(embed, train_csv, size, seed, sample_rate, batch_samples=None):
    """Embeddings of ``size`` random training utterances (one row each)."""
    rows = list(load_manifest(train_csv).values())
    random.Random(seed).shuffle(rows)
    paths = [row["wav"] for row in rows[:size]]
    embeddings = embed_files(embed, paths, sample_rate=sample_rate, batch_samples=batch_samples)
    return torch.stack([embeddings[p] for p in paths])


def read_scores(path):
    """[(enrol, test, label, score)] of a scores.txt of this script; ValueError naming the line otherwise."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if len(fields) != 4 or fields[2] not in ("0", "1"):
            raise ValueError(f"{path}:{number}: expected 'enrol test label score'")
        rows.append((fields[0], fields[1], int(fields[2]), float(fields[3])))
    return rows


def read_results(path):
    """The results.json of this script; ValueError naming the file otherwise."""
    results = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(results, dict) or not {"EER", "minDCF", "n_trials"} <= set(results):
        raise ValueError(f"{path}: not the results of verify.py")
    return results


#: What a rerun may replace: this script's own outputs, known by their content.
SCORES = Replaceable("the scores of verify.py ('enrol test label score' per line)", readable_by(read_scores))
RESULTS = Replaceable("the results of verify.py (JSON with EER, minDCF, n_trials)", readable_by(read_results))
COHORT = Replaceable("cohort embeddings (a tensor file)", readable_by(read_cohort))


def outputs(output_folder, run_folder):
    """{path: Replaceable} of every file this script writes."""
    return {output_folder / "scores.txt": SCORES, output_folder / "results.json": RESULTS,
            output_folder / "det.png": FIGURE, run_folder / CALIBRATION_FILE: CALIBRATION,
            run_folder / TORCH_COHORT_FILE: COHORT}


def trial_durations(trials, wav_folder):
    """Header durations in seconds (n, 2) of the two recordings of each trial."""
    seconds = {path: header_duration(Path(wav_folder) / path) for path in trial_files(trials)}
    return torch.tensor([[seconds[trial.enrol], seconds[trial.test]] for trial in trials], dtype=torch.float64)


def calibrate(labels, scores, durations, rates, trial_file, on_evaluation_list, hparams):
    """The Calibration of ``scores`` (n,) of the trials of ``trial_file`` with
    these ``labels``, whose :func:`error_rates` are ``rates``: the affine LLR
    map (with the trials' ``durations`` (n, 2) if not None) and the EER
    threshold, for the scoring of ``hparams``."""
    eer, threshold, min_dcf = rates
    llr = fit_score_to_llr(scores, labels, hparams["calibration_prior"], durations)
    if llr.slope == 0:
        logger.warning("The scores of %s do not rank its target trials above its non-target trials: the "
                       "calibrated LLRs carry no information (slope 0)", trial_file)
    score_norm = hparams["score_norm"]
    return Calibration(
        threshold=threshold, crop=bool(hparams["crop"]), crop_frames=hparams["crop_frames"],
        num_crops=hparams["num_crops"], score_norm=score_norm,
        as_norm_top_n=hparams["as_norm_top_n"] if score_norm == "as-norm" else None, calibrated_on=str(trial_file),
        eer=eer, min_dcf=min_dcf, on_evaluation_list=on_evaluation_list,
        calibrated_at=datetime.date.today().isoformat(), p_target=hparams["p_target"], llr=llr,
    )


def report_lines(results):
    """The log's summary of ``results``: error rates, then what calibration costs."""
    costs = ", ".join(f"{prior}: {cost['actual']:.4f} / {cost['minimum']:.4f} (EER threshold: "
                      f"{cost['at_threshold']:.4f})" for prior, cost in results["DCF"].items())
    return [
        f"EER {results['EER']:.2f}%, minDCF({results['p_target']:g}) {results['minDCF']:.4f} on "
        f"{results['n_trials']} trials of {results['verification_file']}",
        f"Calibrated on {results['calibrated_on']}: Cllr {results['Cllr']:.4f} bits (minCllr {results['minCllr']:.4f}); "
        f"actual / minimum DCF at p_target {costs}",
    ]


def write_outputs(output_folder, trials, scores, labels, results):
    """scores.txt, results.json and det.png, each written atomically."""
    output_folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{t.enrol} {t.test} {t.label} {s:.9g}\n" for t, s in zip(trials, scores.tolist())]  # exact float32
    write_text_atomically(output_folder / "scores.txt", "".join(lines), SCORES)
    write_text_atomically(output_folder / "results.json", json.dumps(results, indent=2) + "\n", RESULTS)
    display = DetCurveDisplay.from_predictions(labels, scores.numpy(), name=f"EER {results['EER']:.2f}%")
    for (prior, cost), marker in zip(results["DCF"].items(), "os^v"):
        p_fa, p_miss = (min(max(p, 1e-4), 1 - 1e-4) for p in (cost["P_fa"], cost["P_miss"]))  # inside the axes
        display.ax_.plot(norm.ppf(p_fa), norm.ppf(p_miss), marker, label=f"calibrated decisions at p_target {prior}: "
                         f"DCF {cost['actual']:.3f} (min {cost['minimum']:.3f})")
    display.ax_.legend(loc="upper right")
    display.ax_.set_title("DET curve")
    save_figure(display.figure_, output_folder / "det.png")
    return results


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    with open(hparams_file, encoding="utf-8") as stream:
        hparams = load_hyperpyyaml(stream, overrides)
    device = run_opts.get("device", "cpu")
    run_folder = Path(hparams["train_output_folder"])
    for path, replace in outputs(Path(hparams["output_folder"]), run_folder).items():
        check_destination(path, replace)  # before any work: a rerun replaces only what it wrote
    embed, run = load_trained_model(run_folder, device, hparams["allow_untrained"])
    crop_length = crop_samples(hparams["crop_frames"]) if hparams["crop"] else None
    score_norm = hparams["score_norm"]
    top_n = hparams["as_norm_top_n"] if score_norm == "as-norm" else None
    batch_seconds = hparams.get("batch_seconds")
    batch_samples = None if batch_seconds is None else int(batch_seconds * hparams["sample_rate"])
    cohort = None
    if score_norm:
        cohort = cohort_embeddings(embed, run.save_folder / "train.csv", hparams["cohort_size"], hparams["seed"],
                                   hparams["sample_rate"], batch_samples)
        buffer = io.BytesIO()
        torch.save(cohort, buffer)
        write_bytes_atomically(run_folder / TORCH_COHORT_FILE, buffer.getvalue(), COHORT)

    def score_list(trial_file):
        """(trials, scores (n,), durations (n, 2) or None) of a trial list."""
        check_trials_not_trained_on(trial_file, hparams["trial_wav_folder"],
                                    [run.save_folder / "train.csv", run.save_folder / "dev.csv"])
        trials = read_trials(trial_file)
        embeddings = embed_files(
            embed, trial_files(trials), hparams["trial_wav_folder"], hparams["sample_rate"],
            crop_samples=crop_length, num_crops=hparams["num_crops"], batch_samples=batch_samples,
        )
        durations = trial_durations(trials, hparams["trial_wav_folder"]) if hparams["calibration_durations"] else None
        return trials, score_trials(trials, embeddings, score_norm, cohort, top_n), durations

    trials, scores, durations = score_list(hparams["verification_file"])
    labels = [t.label for t in trials]
    eer, threshold, min_dcf = error_rates(scores, labels, hparams["p_target"])
    calibration_list = hparams.get("dev_verification_file")
    if calibration_list:
        dev_trials, dev_scores, dev_durations = score_list(calibration_list)
        dev_labels = [t.label for t in dev_trials]
        calibration = calibrate(dev_labels, dev_scores, dev_durations,
                                error_rates(dev_scores, dev_labels, hparams["p_target"]), calibration_list, False,
                                hparams)
    else:
        logger.warning("No dev_verification_file: the scores are calibrated on the evaluation list itself, so "
                       "decisions on new trials will be less accurate than its EER and actual DCF say")
        calibration_list = hparams["verification_file"]
        calibration = calibrate(labels, scores, durations, (eer, threshold, min_dcf), calibration_list, True, hparams)
    results = {"EER": eer, "minDCF": min_dcf, "p_target": hparams["p_target"], "n_trials": len(trials),
               "threshold": threshold, "verification_file": str(hparams["verification_file"]),
               "checkpoint": run.checkpoint_summary(), "calibrated_on": str(calibration_list),
               **calibration_report(scores, calibration.llrs(scores, durations), labels,
                                    score_threshold=calibration.threshold)}
    write_outputs(Path(hparams["output_folder"]), trials, scores, labels, results)
    write_calibration(run_folder / CALIBRATION_FILE, calibration)
    for line in report_lines(results):
        logger.info(line)
        print(line)
    print(json.dumps(results))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (ValueError, OSError) as error:  # bad input: the message names the file, line or setting
        sys.exit(f"error: {error}")
