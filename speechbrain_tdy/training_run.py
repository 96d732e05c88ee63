"""Reading what the recipe's ``train.py`` leaves in its output folder.

An output folder holds ``hyperparams.yaml`` (the training hyperparameters
with the command-line overrides applied), ``save/CKPT+*`` checkpoints, and,
once ``verify.py`` has run, ``verification/results.json``, ``threshold.json``
and possibly ``cohort_embeddings.pt``.
"""
import logging
from pathlib import Path

from hyperpyyaml import load_hyperpyyaml

from speechbrain_tdy.nnet.temperature import set_temperature

logger = logging.getLogger(__name__)


def load_training_run(output_folder, overrides=None):
    """Training hyperparameters of a train.py run, with the model at its best checkpoint.

    The best checkpoint is the one with the lowest dev EER if every checkpoint
    has one, else the lowest classification error. The embedding model is put
    in eval mode at inference temperature 1.

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
        key = "EER" if all("EER" in c.meta for c in checkpoints) else "ErrorRate"
        checkpoint = checkpointer.recover_if_possible(min_key=key)
    train_hparams["compute_features"].eval()
    train_hparams["embedding_model"].eval()
    set_temperature(train_hparams["embedding_model"], 1.0)
    return train_hparams, checkpoint
