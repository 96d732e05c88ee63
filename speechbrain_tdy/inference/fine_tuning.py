"""Starting a training run from a trained model: ``train.py ... --init_from=MODEL``.

MODEL is a model folder or a hub id (exported, converted from the authors'
checkpoints, or downloaded), loaded through the safe loader of
:class:`~speechbrain_tdy.inference.TDYSpeakerRecognition`, or the output
folder of a train.py run (its best checkpoint, as ``verify.py`` and export
choose it: a second training stage starts from the first). Its embedding
model's parameters become the recipe model's initial parameters, bit for bit;
the loss head is the recipe's own, new, for the training speakers. The
architecture and its sizes must be the recipe's: the error names the first
difference.
"""
import logging
import warnings

from speechbrain_tdy.inference.interface import TDYSpeakerRecognition
from speechbrain_tdy.lobes.registry import get_architecture
from speechbrain_tdy.storage.model_files import check_state_dict
from speechbrain_tdy.storage.run_folder import is_training_run, load_training_run

logger = logging.getLogger(__name__)


def load_initial_parameters(embedding_model, architecture, values, source, savedir=None):
    """Copy the embedding-model parameters of ``source`` into ``embedding_model``.

    Arguments
    ---------
    embedding_model : torch.nn.Module
        The recipe's model, of registry entry ``architecture`` built with
        ``values`` (:meth:`~speechbrain_tdy.lobes.registry.Architecture.model_values`).
    source : str
        Model folder, hub id, or train.py output folder (its best checkpoint).
    savedir : str or None
        Where hub files are linked (None: the HuggingFace cache).

    Raises ValueError naming ``source`` and the first difference when the
    folder holds another architecture or other sizes.
    """
    ours = get_architecture(architecture)
    theirs_name, their_values, their_model = _source_model(source, savedir, ours)
    if theirs_name != ours.name:
        raise ValueError(f"--init_from {source}: its model is {theirs_name}, the recipe trains {ours.name}")
    for key, value in values.items():
        if their_values[key] != value:
            raise ValueError(f"--init_from {source}: its {key} is {their_values[key]}, the recipe's is {value}")
    state = their_model.state_dict()
    check_state_dict(embedding_model.state_dict(), state, f"the recipe's {ours.name} (--init_from {source})")
    embedding_model.load_state_dict(state)
    logger.info("Initial parameters of the embedding model from %s", source)


def _source_model(source, savedir, ours):
    """(architecture name, model values, embedding model) of a run folder or a model folder / hub id."""
    if is_training_run(source):
        run = load_training_run(source)
        return run.architecture.name, run.model_values, run.embedding_model
    with warnings.catch_warnings():  # a folder without threshold.json is fine to start from
        warnings.simplefilter("ignore", UserWarning)
        folder = TDYSpeakerRecognition.from_hparams(source=source, savedir=savedir, run_opts={"device": "cpu"},
                                                    compile=False)
    hparams = vars(folder.hparams)
    name = get_architecture(hparams["architecture"]).name if "architecture" in hparams else "of no named architecture"
    return name, ours.values_in(hparams), folder.mods.embedding_model


def freeze_stages(embedding_model, count):
    """Stop training the first ``count`` stages of ``embedding_model`` (see its
    ``stages()``): their parameters get no gradient, and their batch norms
    keep their statistics as long as the returned modules are kept in eval
    mode (the caller does so after each ``train()``). Returns those modules."""
    stages = embedding_model.stages()
    if not 0 <= count <= len(stages):
        raise ValueError(f"freeze must be in [0, {len(stages)}] for {type(embedding_model).__name__}, got {count}")
    frozen = stages[:count]
    for stage in frozen:
        stage.requires_grad_(False)
    return frozen
