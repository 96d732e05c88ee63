"""Export a model trained by the recipe as a model folder ready for the hub.

    speechbrain-tdy export RECIPE_OUTPUT_DIR OUT_DIR [--overwrite] [--license L] [--dataset D ...]

RECIPE_OUTPUT_DIR is the ``output_folder`` of ``train.py`` (best checkpoint:
lowest dev EER, else lowest classification error; the folder may have been
moved or copied). Run ``verify.py`` first: it calibrates the model's scores
(``threshold.json``: log-likelihood ratios and the EER threshold), may
compute the cohort for score normalisation, and measures the EER and
detection costs that the model card reports. OUT_DIR
must not exist, or be a model folder replaced with ``--overwrite``. See
:mod:`speechbrain_tdy.export.model_folder` for the folder's contents. The
model card's hub metadata names the ``--license`` (default apache-2.0) and
the training ``--dataset`` hub ids (default: recognised from the run's data
folder, e.g. voxceleb), and carries verify.py's results as a model-index.
"""
import warnings

from speechbrain_tdy.export.model_folder import DEFAULT_LICENSE, known_dataset, model_card, write_model_folder
from speechbrain_tdy.scoring.calibration import read_calibration
from speechbrain_tdy.storage.checks import checked_number
from speechbrain_tdy.storage.model_files import (
    CALIBRATION_FILE,
    LABELS_FILE,
    TORCH_COHORT_FILE,
    load_label_encoder,
    read_cohort,
)
from speechbrain_tdy.storage.reading import read_json
from speechbrain_tdy.storage.run_folder import load_training_run


def export(run_folder, out_dir, overwrite=False, license=DEFAULT_LICENSE, datasets=None):
    """Write the model folder of the train.py run in ``run_folder`` to ``out_dir``;
    ``license`` and ``datasets`` (hub ids; None: recognised from the run's
    data folder) go into the model card's metadata."""
    run = load_training_run(run_folder)
    if datasets is None:
        recognised = known_dataset(run.hparams.get("data_folder", ""))
        datasets = [recognised] if recognised else []
    results_file = run.folder / "verification" / "results.json"
    results = read_results(results_file) if results_file.is_file() else None
    calibration = cohort = None
    if (run.folder / CALIBRATION_FILE).is_file():
        calibration = read_calibration(run.folder / CALIBRATION_FILE)
        if calibration.on_evaluation_list:
            warnings.warn(f"The threshold of {run.folder} was calibrated on its evaluation list (no dev list was "
                          "given to verify.py): decisions on new trials will be less accurate than its EER says")
    else:
        warnings.warn(f"{run.folder} has no threshold.json (run verify.py first): the exported model has no "
                      "decision threshold, and verify_files will ask for threshold=")
    if (run.folder / TORCH_COHORT_FILE).is_file():
        cohort = read_cohort(run.folder / TORCH_COHORT_FILE, run.model_values["emb_dim"])
    label_encoder = run.save_folder / LABELS_FILE
    card = model_card(
        title=f"{run.architecture.name} trained with speechbrain-tdy",
        architecture=run.architecture.name,
        values=run.model_values,
        n_parameters=sum(p.numel() for p in run.embedding_model.parameters()),
        training=training_summary(run, label_encoder),
        results=results,
        calibration=calibration,
        license=license,
        datasets=datasets,
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


def read_results(path):
    """The ``results.json`` of the recipe's ``verify.py`` at ``path``, with
    every value the model card uses checked; ValueError naming the file and
    key otherwise. Files written before calibrated LLRs (no Cllr, no
    p_target) read with p_target 0.05, the value verify.py used then."""
    results = read_json(path, "a results.json of verify.py", MAX_RESULTS_BYTES)
    if not isinstance(results, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(results).__name__}")
    where = f"{path}: "
    checked = {
        "EER": checked_number(results.get("EER"), where + "EER", (int, float), 0, 100),
        "minDCF": checked_number(results.get("minDCF"), where + "minDCF", (int, float), 0, 1),
        "p_target": checked_number(results.get("p_target", 0.05), where + "p_target", (int, float), 0, 1),
        "n_trials": checked_number(results.get("n_trials"), where + "n_trials", int, 1),
        "verification_file": results.get("verification_file", "the evaluation list"),
    }
    if not isinstance(checked["verification_file"], str) or len(checked["verification_file"]) > 4096:
        raise ValueError(f"{where}verification_file must be a path, got {checked['verification_file']!r:.60}")
    if "Cllr" in results:
        checked["Cllr"] = checked_number(results["Cllr"], where + "Cllr", (int, float), 0)
        checked["minCllr"] = checked_number(results.get("minCllr"), where + "minCllr", (int, float), 0)
        costs = results.get("DCF")
        if not isinstance(costs, dict) or not costs:
            raise ValueError(f"{where}DCF must be an object of detection costs per prior, got {costs!r:.60}")
        checked["DCF"] = {
            str(prior): {key: checked_number(cost.get(key) if isinstance(cost, dict) else None,
                                             f"{where}DCF: {prior}: {key}", (int, float), 0, 1)
                         for key in ("actual", "minimum")}
            for prior, cost in list(costs.items())[:16]
        }
    return checked
