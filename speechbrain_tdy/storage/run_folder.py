"""Reading what the recipe's ``train.py`` leaves in its output folder.

An output folder holds ``hyperparams.yaml`` (the training hyperparameters
with the command-line overrides applied), ``save/CKPT+*`` checkpoints and
``save/label_encoder.txt``, and, once ``verify.py`` has run,
``verification/results.json``, ``threshold.json`` and possibly
``cohort_embeddings.pt``.

A run folder can be moved or copied: everything is found under the folder
given, never through the absolute paths its hyperparams.yaml recorded. Its
hyperparams.yaml is read for plain values only (architecture, n_mels, ...);
none of its objects is built or run, and the model comes from the
architecture registry.
"""
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from speechbrain_tdy.embedding.pipeline import EmbeddingPipeline
from speechbrain_tdy.lobes.registry import Architecture, get_architecture
from speechbrain_tdy.nnet.tdy_conv import INFERENCE_TEMPERATURE
from speechbrain_tdy.storage.checkpoints import AtomicCheckpointer
from speechbrain_tdy.storage.model_files import HPARAMS_FILE, load_parameters
from speechbrain_tdy.storage.reading import read_text
from speechbrain_tdy.storage.safe_hparams import plain_values

logger = logging.getLogger(__name__)

#: Largest epoch-counter file read (SpeechBrain writes a number).
MAX_COUNTER_BYTES = 64


@dataclass
class TrainingRun:
    """A train.py output folder with its model at the chosen checkpoint (eval mode, temperature 1)."""

    folder: Path
    hparams: dict
    architecture: Architecture
    model_values: dict
    pipeline: EmbeddingPipeline
    checkpoint: object  # speechbrain Checkpoint, or None for an untrained model

    @property
    def embedding_model(self):
        return self.pipeline.embedding_model

    @property
    def save_folder(self):
        return self.folder / "save"

    @property
    def epoch(self):
        """Epoch the checkpoint ends, from the recipe's epoch counter (recoverable
        "counter"; 0 without checkpoint or counter)."""
        path = self.checkpoint.paramfiles.get("counter") if self.checkpoint is not None else None
        if path is None:
            return 0
        try:
            return int(read_text(path, "an epoch counter", MAX_COUNTER_BYTES).strip())
        except (OSError, ValueError) as error:
            raise ValueError(f"{path} does not hold an epoch number ({error})") from error

    def checkpoint_summary(self):
        """What is scored: {"name", "epoch", and the checkpoint's metadata (training
        temperature, dev metrics)}, or {"name": None, "untrained": True}."""
        if self.checkpoint is None:
            return {"name": None, "untrained": True}
        meta = {key: value for key, value in self.checkpoint.meta.items() if key != "unixtime"}
        return {"name": self.checkpoint.path.name, "epoch": self.epoch, **meta}


def is_training_run(folder):
    """Whether ``folder`` is a local train.py output folder (not a model folder)."""
    folder = Path(folder)
    return (folder / HPARAMS_FILE).is_file() and (folder / "save").is_dir()


def load_training_run(output_folder, allow_untrained=False):
    """The train.py run in ``output_folder`` with its model at its best checkpoint.

    See :func:`best_checkpoint` for which checkpoint that is. Raises
    FileNotFoundError if the folder is not a run, or if it has no checkpoint
    and ``allow_untrained`` is False (then the model is untrained).
    """
    folder = Path(output_folder)
    hparams_file = folder / HPARAMS_FILE
    if not hparams_file.exists():
        raise FileNotFoundError(f"{hparams_file} not found: is {folder} an output folder of train.py?")
    hparams = plain_values(hparams_file)
    if "architecture" not in hparams:
        raise ValueError(f"{hparams_file} names no architecture")
    arch = get_architecture(hparams["architecture"])
    try:
        values = arch.values_in(hparams)
    except ValueError as error:
        raise ValueError(f"{hparams_file}: {error}") from error
    compute_features, embedding_model = arch.build(values, temperature=INFERENCE_TEMPERATURE)
    save_folder = folder / "save"
    checkpoints = AtomicCheckpointer(save_folder).list_checkpoints() if save_folder.is_dir() else []
    checkpoint = None
    if checkpoints:
        checkpoint = best_checkpoint(checkpoints)
        if "embedding_model" not in checkpoint.paramfiles:
            raise FileNotFoundError(f"{checkpoint.path} holds no embedding_model.ckpt")
        load_parameters(embedding_model, checkpoint.paramfiles["embedding_model"])
    elif not allow_untrained:
        raise FileNotFoundError(f"No checkpoint in {save_folder}: {folder} has not finished an epoch of training "
                                "(set allow_untrained: True to score an untrained model on purpose)")
    else:
        logger.warning("No checkpoint in %s: using an untrained model, as allow_untrained asks", save_folder)
    return TrainingRun(folder, hparams, arch, values, EmbeddingPipeline(compute_features, embedding_model).eval(),
                       checkpoint)


def trained_at_inference_temperature(checkpoint):
    """Whether a train.py checkpoint was trained at temperature 1 (or has no TDY layer).

    A TDY model saved while its temperature was still being annealed gives
    other, worse embeddings at the inference temperature 1.
    """
    temperature = checkpoint.meta.get("temperature")
    return temperature is None or temperature <= INFERENCE_TEMPERATURE


def checkpoint_preference(checkpoint):
    """Sort key of train.py checkpoints, higher is better: the run's one
    ranking, by which training chooses the checkpoints it keeps
    (``save_and_keep_only``) and :func:`best_checkpoint` the one it uses, so
    that the checkpoint used is never deleted first.

    Validated end-of-epoch checkpoints first (intra-epoch ones have no dev
    metrics); then those trained at the inference temperature; then those
    with a dev EER, the lower the better; then the lower dev classification
    error; of equals, the later one.
    """
    meta = checkpoint.meta
    validated = "ErrorRate" in meta
    return (
        validated,
        validated and trained_at_inference_temperature(checkpoint),
        "EER" in meta,
        -meta.get("EER", math.inf),
        -meta.get("ErrorRate", math.inf),
        meta.get("unixtime", 0),
    )


#: A run keeps this many best checkpoints by :func:`checkpoint_preference`
#: and (SpeechBrain's ``keep_recent``, to resume from) this many latest ones.
KEPT_CHECKPOINTS = 2


def save_epoch_checkpoint(checkpointer, meta):
    """Save the end-of-epoch checkpoint with its dev metrics ``meta`` and delete
    those that are neither among the ``KEPT_CHECKPOINTS`` best nor latest.
    A NaN or infinite metric is left out, with a warning: it ranks as neither
    better nor worse than any other, and the run's reader refuses it."""
    bad = [key for key, value in meta.items() if isinstance(value, float) and not math.isfinite(value)]
    if bad:
        logger.warning("Leaving the non-finite %s out of the checkpoint's metadata", ", ".join(bad))
        meta = {key: value for key, value in meta.items() if key not in bad}
    return checkpointer.save_and_keep_only(meta=meta, importance_keys=[checkpoint_preference],
                                           num_to_keep=KEPT_CHECKPOINTS)


def best_checkpoint(checkpoints):
    """The checkpoint to use for inference among a run's ``checkpoints``: the
    first by :func:`checkpoint_preference`. A run stopped while annealing
    gives its best checkpoint with a warning; a run killed during its first
    epoch, which only has intra-epoch checkpoints, its latest."""
    best = max(checkpoints, key=checkpoint_preference)
    if "ErrorRate" in best.meta and not trained_at_inference_temperature(best):
        logger.warning("No checkpoint was trained at temperature %s yet: the run stopped while annealing, "
                       "so its embeddings at that temperature are poor", INFERENCE_TEMPERATURE)
    return best
