"""Load checkpoints trained with the authors' code into this package's models.

The authors' trainer saves the state dict of a wrapper whose embedding network
is ``__S__`` and loss head ``__L__`` (optionally inside
``{"model_state_dict": ...}``). :func:`load_official_checkpoint` renames their
keys to ours, checks that every key and shape matches, and returns a
waveform-to-embedding module at inference temperature 1.

From the command line, a checkpoint becomes a model folder for
:class:`speechbrain_tdy.inference.TDYSpeakerRecognition` (and the hub)::

    speechbrain-tdy convert CHECKPOINT OUT_DIR --model TDy_ResNet34_half \
        --encoder-type AVG --n-mels 64 [--n-out 512]
"""
import os
import re

import torch

from speechbrain_tdy.embedding.pipeline import EmbeddingPipeline
from speechbrain_tdy.export.model_folder import model_card, write_model_folder
from speechbrain_tdy.lobes.registry import ARCHITECTURES, MAX_MODEL_ELEMENTS, get_architecture
from speechbrain_tdy.storage.model_files import check_state_dict, load_tensor_file

#: Largest checkpoint of the authors' trainer loaded: float32 parameters of the
#: largest model the registry allows, with its loss head and Adam's two moments.
MAX_CHECKPOINT_BYTES = 4 * 4 * MAX_MODEL_ELEMENTS
#: The authors' model names (aliases of the architectures).
OFFICIAL_MODELS = tuple(arch.official_name for arch in ARCHITECTURES.values())

# Front-end buffers the authors store; ours are rebuilt by LogMelInstanceNorm.
_FRONT_END_KEY = re.compile(r"^(torchfb|instancenorm)\.")

# (pattern, replacement) applied in order to each of the authors' keys.
_RESNET_RENAMES = (
    (r"\.downsample\.0\.", ".downsample.conv."),
    (r"\.downsample\.1\.", ".downsample.bn."),
    (r"\.fc_phi\.semodule\.fc\.0\.", ".fc_phi.se_gate."),
    (r"^sap_linear\.", "pooling.linear."),
    (r"^attention$", "pooling.attention"),
    (r"^attention\.", "pooling.attention."),
)
_VGGM_RENAMES = (
    (r"^(layer\d)\.0\.", r"\1.conv."),
    (r"^(layer\d)\.1\.", r"\1.bn."),
    (r"^sap_linear\.", "pooling.linear."),
    (r"^attention$", "pooling.attention"),
)


def build_official_model(model, encoder_type="AVG", n_mels=64, n_out=512):
    """(front end, embedding model at inference temperature 1) equivalent to the authors' ``model``.

    >>> front_end, encoder = build_official_model("TDy_ResNet34_quarter", "SAP", n_mels=40)
    >>> type(encoder).__name__, front_end.n_mels
    ('ResNet', 40)
    """
    if model not in OFFICIAL_MODELS:
        raise ValueError(f"Unknown model {model!r}; known models: {', '.join(OFFICIAL_MODELS)}")
    arch = get_architecture(model)
    return arch.build(arch.model_values(n_mels=n_mels, emb_dim=n_out, pooling=encoder_type))


def official_to_package_key(key, model):
    """Our parameter name for one of the authors' (unprefixed) keys of ``model``.

    >>> official_to_package_key("layer2.0.downsample.0.weight", "TDy_ResNet34_half")
    'layer2.0.downsample.conv.weight'
    >>> official_to_package_key("layer3.0.weight", "TDy_VGGVox")
    'layer3.conv.weight'
    """
    renames = _VGGM_RENAMES if get_architecture(model).is_vggm else _RESNET_RENAMES
    for pattern, replacement in renames:
        key = re.sub(pattern, replacement, key)
    return key


def read_official_state_dict(checkpoint):
    """The embedding network's state dict (authors' key names, no prefix).

    ``checkpoint`` is a path to a file saved by the authors' trainer or a state
    dict, with or without the ``__S__.`` prefix; loss-head (``__L__.``) and
    front-end buffers are dropped. Files are loaded with ``weights_only=True``.
    """
    source = "the given state dict"
    if isinstance(checkpoint, (str, os.PathLike)):
        source = os.fspath(checkpoint)
        if not os.path.isfile(source):
            raise FileNotFoundError(f"{source}: no such checkpoint file")
        checkpoint = load_tensor_file(source, "a PyTorch checkpoint", max_bytes=MAX_CHECKPOINT_BYTES)
    if isinstance(checkpoint, dict) and "model_state_dict" in checkpoint:
        checkpoint = checkpoint["model_state_dict"]
    if not isinstance(checkpoint, dict) or not all(torch.is_tensor(v) for v in checkpoint.values()):
        raise ValueError(f"{source} is not a state dict of tensors (authors' TDY-CNN checkpoint expected)")
    state = {}
    for key, value in checkpoint.items():
        key = key.removeprefix("module.")
        if key.startswith("__L__."):
            continue
        key = key.removeprefix("__S__.")
        if not _FRONT_END_KEY.match(key):
            state[key] = value
    if not state:
        raise ValueError(f"{source} holds no embedding-network (__S__.) parameters")
    return state


def load_official_checkpoint(checkpoint, model, encoder_type, n_mels, n_out=512):
    """Build the authors' ``model`` from this package's lobes and load ``checkpoint``.

    Arguments
    ---------
    checkpoint : str, os.PathLike or dict
        Path of a checkpoint saved by the authors' trainer (``__S__.``/``__L__.``
        keys, optionally under "model_state_dict"), or a state dict with their
        key names.
    model : str
        The authors' model name, one of ``OFFICIAL_MODELS``.
    encoder_type : str
        "AVG", "SAP" or "ASP" (VGG models: "AVG" or "SAP").
    n_mels : int
        Mel bins the model was trained with.
    n_out : int
        Embedding size.

    Returns
    -------
    EmbeddingPipeline
        Eval-mode module, waveforms (batch, samples) at 16 kHz -> (batch, n_out),
        with every TDY layer at inference temperature 1.
    """
    front_end, encoder = build_official_model(model, encoder_type, n_mels, n_out)
    official = read_official_state_dict(checkpoint)
    state = {official_to_package_key(key, model): value for key, value in official.items()}
    check_state_dict(encoder.state_dict(), state, f"{model} (encoder_type={encoder_type}, n_mels={n_mels}, n_out={n_out})")
    encoder.load_state_dict(state)
    return EmbeddingPipeline(front_end, encoder).eval()


#: The license a converted checkpoint's card names unless told: the authors' weights are theirs to license.
CONVERTED_LICENSE = "unknown"


def convert_to_folder(checkpoint, out_dir, model, encoder_type, n_mels, n_out=512, overwrite=False,
                      license=CONVERTED_LICENSE, datasets=()):
    """Write a model folder (see :mod:`speechbrain_tdy.export.model_folder`) for one of
    the authors' checkpoints; it loads with ``TDYSpeakerRecognition.from_hparams``.
    An existing ``out_dir`` is replaced only with ``overwrite`` and only if it
    is a model folder. ``license`` and ``datasets`` (hub ids of the training
    data) go into the model card's metadata."""
    arch = get_architecture(model)
    embedder = load_official_checkpoint(checkpoint, model, encoder_type, n_mels, n_out)
    values = arch.model_values(n_mels=n_mels, emb_dim=n_out, pooling=encoder_type)
    encoder = embedder.embedding_model
    card = model_card(
        title=f"{model} ({encoder_type} pooling, {n_mels} mels), converted from the authors' trainer",
        architecture=arch.name,
        values=values,
        n_parameters=sum(p.numel() for p in encoder.parameters()),
        training=f"Trained with the authors' TDY-CNN code; converted from `{os.path.basename(os.fspath(checkpoint))}` "
        "by `speechbrain-tdy convert`.",
        results=None,
        calibration=None,
        license=license,
        datasets=datasets,
    )
    inputs = [checkpoint] if isinstance(checkpoint, (str, os.PathLike)) else []
    return write_model_folder(out_dir, arch, values, encoder, embedder, card, overwrite=overwrite, inputs=inputs)
