"""Reading what the recipe's ``train.py`` leaves in its output folder.

An output folder holds ``hyperparams.yaml`` (the training hyperparameters
with the command-line overrides applied), ``save/CKPT+*`` checkpoints, and,
once ``verify.py`` has run, ``verification/results.json``, ``threshold.json``
and possibly ``cohort_embeddings.pt``.
"""
import logging
import math
from pathlib import Path

from hyperpyyaml import load_hyperpyyaml

from speechbrain_tdy.nnet.temperature import set_temperature

logger = logging.getLogger(__name__)

INFERENCE_TEMPERATURE = 1.0


def load_training_run(output_folder, overrides=None):
    """Training hyperparameters of a train.py run, with the model at its best checkpoint.

    See :func:`best_checkpoint` for which checkpoint that is. The embedding
    model is put in eval mode at inference temperature 1.

    Returns
    -------
    (dict, Checkpoint or None)
        The loaded hyperparameters and the checkpoint recovered (None if the
        run has no checkpoint: an untrained model).
    """
    hparams_file = Path(output_folder) / "hyperparams.yaml"
    if not hparams_file.is_file():
        raise FileNotFoundError(f"{hparams_file} not found: is {output_folder} an output folder of train.py?")
    with open(hparams_file, encoding="utf-8") as stream:
        train_hparams = load_hyperpyyaml(stream, {"output_folder": str(output_folder), **(overrides or {})})
    checkpointer = train_hparams["checkpointer"]
    checkpoints = checkpointer.list_checkpoints()
    checkpoint = None
    if not checkpoints:
        logger.warning("No checkpoint in %s: using an untrained model", checkpointer.checkpoints_dir)
    else:
        checkpoint = best_checkpoint(checkpoints)
        checkpointer.load_checkpoint(checkpoint)
    train_hparams["compute_features"].eval()
    train_hparams["embedding_model"].eval()
    set_temperature(train_hparams["embedding_model"], INFERENCE_TEMPERATURE)
    return train_hparams, checkpoint


def trained_at_inference_temperature(checkpoint):
    """Whether a train.py checkpoint was trained at temperature 1 (or has no TDY layer).

    A TDY model saved while its temperature was still being annealed gives
    other, worse embeddings at the inference temperature 1.
    """
    temperature = checkpoint.meta.get("temperature")
    return temperature is None or temperature <= INFERENCE_TEMPERATURE


def checkpoint_preference(checkpoint):
    """Sort key of train.py checkpoints, higher is better: trained at the
    inference temperature first, then lower dev classification error
    (intra-epoch checkpoints, which have none, last)."""
    return trained_at_inference_temperature(checkpoint), -checkpoint.meta.get("ErrorRate", math.inf)


def best_checkpoint(checkpoints):
    """The checkpoint to use for inference among a run's ``checkpoints``.

    Among the end-of-epoch checkpoints trained at the inference temperature
    (all of them, with a warning, if none is), the one with the lowest dev EER
    if each has one, else the lowest classification error. A run killed
    during its first epoch only has intra-epoch checkpoints: the latest.
    """
    validated = [c for c in checkpoints if "ErrorRate" in c.meta]
    if not validated:
        return max(checkpoints, key=lambda c: c.meta["unixtime"])
    candidates = [c for c in validated if trained_at_inference_temperature(c)]
    if not candidates:
        logger.warning("No checkpoint was trained at temperature %s yet: the run stopped while annealing, "
                       "so its embeddings at that temperature are poor", INFERENCE_TEMPERATURE)
        candidates = validated
    key = "EER" if all("EER" in c.meta for c in candidates) else "ErrorRate"
    return min(candidates, key=lambda c: c.meta[key])
