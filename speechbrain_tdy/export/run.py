"""Export a model trained by the recipe as a model folder ready for the hub.

    speechbrain-tdy export RECIPE_OUTPUT_DIR OUT_DIR [--overwrite]

RECIPE_OUTPUT_DIR is the ``output_folder`` of ``train.py`` (best checkpoint:
lowest dev EER, else lowest classification error; the folder may have been
moved or copied). Run ``verify.py`` first: it calibrates the model's scores
(``threshold.json``: log-likelihood ratios and the EER threshold), may
compute the cohort for score normalisation, and measures the EER and
detection costs that the model card reports. OUT_DIR
must not exist, or be a model folder replaced with ``--overwrite``. See
:mod:`speechbrain_tdy.export.model_folder` for the folder's contents.
"""
import warnings

from speechbrain_tdy.export.model_folder import model_card, write_model_folder
from speechbrain_tdy.scoring.calibration import read_calibration
from speechbrain_tdy.storage.model_files import (
    CALIBRATION_FILE,
    COHORT_FILE,
    LABELS_FILE,
    load_label_encoder,
    read_cohort,
)
from speechbrain_tdy.storage.reading import read_json
from speechbrain_tdy.storage.run_folder import load_training_run


def export(run_folder, out_dir, overwrite=False):
    """Write the model folder of the train.py run in ``run_folder`` to ``out_dir``."""
    run = load_training_run(run_folder)
    calibration = cohort = None
    if (run.folder / CALIBRATION_FILE).is_file():
        calibration = read_calibration(run.folder / CALIBRATION_FILE)
        if calibration.on_evaluation_list:
            warnings.warn(f"The threshold of {run.folder} was calibrated on its evaluation list (no dev list was "
                          "given to verify.py): decisions on new trials will be less accurate than its EER says")
    else:
        warnings.warn(f"{run.folder} has no threshold.json (run verify.py first): the exported model has no "
                      "decision threshold, and verify_files will ask for threshold=")
    if (run.folder / COHORT_FILE).is_file():
        cohort = read_cohort(run.folder / COHORT_FILE, run.model_values["emb_dim"])
    label_encoder = run.save_folder / LABELS_FILE
    card = model_card(
        title=f"{run.architecture.name} trained with speechbrain-tdy",
        architecture=run.architecture.name,
        values=run.model_values,
        n_parameters=sum(p.numel() for p in run.embedding_model.parameters()),
        training=training_summary(run, label_encoder),
        results=results_summary(run.folder / "verification" / "results.json"),
        calibration=calibration,
    )

    return write_model_folder(
        out_dir, run.architecture, run.model_values, run.embedding_model, run.pipeline, card,
        calibration=calibration, cohort=cohort, label_encoder=label_encoder if label_encoder.is_file() else None,
        overwrite=overwrite, inputs=[run.folder],
    )


def training_summary(run, label_encoder):
    speakers = ""
    if label_encoder.is_file():
        speakers = f" ({len(load_label_encoder(label_encoder))} speakers)"
    hparams = run.hparams
    meta = ", ".join(f"{key} {value:.4g}" for key, value in run.checkpoint.meta.items() if key in ("EER", "ErrorRate"))
    return (
        f"Trained with the speechbrain-tdy VoxCeleb recipe on `{hparams.get('data_folder', 'unknown data')}`"
        f"{speakers}: loss {hparams.get('loss')}, crops of {hparams.get('crop_frames')} frames, "
        f"{hparams.get('number_of_epochs')} epochs. Exported checkpoint: `{run.checkpoint.path.name}` (dev {meta})."
    )


#: Largest results.json read (verify.py writes a few hundred bytes).
MAX_RESULTS_BYTES = 1024 * 1024


def results_summary(results_file):
    if not results_file.is_file():
        return None
    results = read_json(results_file, "a results.json of verify.py", MAX_RESULTS_BYTES)
    trials = results.get("verification_file", "the evaluation list")
    summary = (f"EER {results['EER']:.2f}%, minDCF(p_target={results.get('p_target', 0.05):g}) "
               f"{results['minDCF']:.3f} on {results['n_trials']} trials of `{trials}` (the recipe's verify.py).")
    if "Cllr" in results:  # verify.py since calibrated LLRs
        costs = ", ".join(f"p_target={prior}: {cost['actual']:.3f} (minimum {cost['minimum']:.3f})"
                          for prior, cost in results["DCF"].items())
        summary += (f" Calibrated LLRs: Cllr {results['Cllr']:.3f} bits (minCllr {results['minCllr']:.3f}); actual "
                    f"DCF of the decisions at {costs}.")
    return summary
