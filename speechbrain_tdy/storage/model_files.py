"""The files of a model folder: fetched by plain name, read with checks.

A model folder comes from a local path or a HuggingFace hub repository and is
untrusted. Its files are fetched only by plain names (no folders, no ``..``,
no absolute paths), so a file name written in ``hyperparams.yaml`` can never
make the fetch step link or write outside ``savedir``; parameters and cohorts
are safetensors files, whose header (every tensor's name, dtype and shape) is
checked against the model before one byte of data is read, and folders
written before safetensors (``embedding_model.ckpt``, ``cohort_embeddings.pt``)
load with ``torch.load(weights_only=True)``; every number read is checked.
"""
import re
import warnings
from pathlib import Path

import huggingface_hub
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.fetching import FetchConfig, LocalStrategy, fetch

from speechbrain_tdy.dataio.audio import MAX_DURATION, MIN_DURATION
from speechbrain_tdy.storage.atomic import Replaceable, starts_with, write_text_atomically
from speechbrain_tdy.storage.checks import checked_number
from speechbrain_tdy.storage.reading import check_regular_file, inflated_size

#: A ``savedir`` that holds this file was filled by :class:`ModelSource`; the
#: file names the source, so that another source is never served from it.
SAVEDIR_MARKER = ".speechbrain_tdy_source"

# The files of a model folder (and, for the first five, of a recipe run folder
# that export reads): every name is written here once.
#: Inference HyperPyYAML (``Architecture.hparams_text``); also a run folder's copy of the recipe's.
HPARAMS_FILE = "hyperparams.yaml"
#: The embedding model's state dict (safetensors).
PARAMETERS_FILE = "embedding_model.safetensors"
#: The embedding model's state dict in folders written before safetensors (a torch pickle).
LEGACY_PARAMETERS_FILE = "embedding_model.ckpt"
#: The calibration (:mod:`speechbrain_tdy.scoring.calibration`).
CALIBRATION_FILE = "threshold.json"
#: Cohort embeddings (n, dim) for score normalisation (safetensors, one tensor named :data:`COHORT_TENSOR`).
COHORT_FILE = "cohort_embeddings.safetensors"
COHORT_TENSOR = "embeddings"
#: The cohort as a torch file: a recipe run folder's (``verify.py``), and model folders' before safetensors.
TORCH_COHORT_FILE = "cohort_embeddings.pt"
#: The training speakers (SpeechBrain's CategoricalEncoder file).
LABELS_FILE = "label_encoder.txt"
#: The model card.
CARD_FILE = "README.md"
#: The ONNX export of the waveform-to-embedding pipeline.
ONNX_FILE = "embedding_model.onnx"
#: What a parameter file may hold beyond its tensors' bytes (key names, pickled structure, header).
CHECKPOINT_OVERHEAD_BYTES = 1 << 20
#: safetensors' names of the dtypes a model folder's tensors may have.
SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
                      torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}
#: Largest cohort loaded: a million 256-d float32 embeddings.
MAX_COHORT_BYTES = 1 << 30
#: The marker a ModelSource may rewrite: one naming a source as ``identity`` does.
MARKER = Replaceable(f"a {SAVEDIR_MARKER} file of TDYSpeakerRecognition",
                     lambda path: starts_with("local folder ")(path) or starts_with("hub repository ")(path))
#: Largest label_encoder.txt read (VoxCeleb2's 5,994 speakers take about 150 KB).
MAX_LABEL_ENCODER_BYTES = 16 * 1024 * 1024
PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class CheckpointMismatchError(ValueError):
    """A checkpoint's keys or shapes do not match the requested model."""


def check_plain_name(name, where):
    """``name`` if it is a plain file name (no folder, no ``..``); else ValueError."""
    if not isinstance(name, str) or not PLAIN_NAME.match(name) or name.startswith(".."):
        raise ValueError(f"{where}: {name!r} is not a plain file name of the model folder "
                         "(no folders, '..' or absolute paths)")
    return name


class ModelSource:
    """Fetches files of a model folder or hub repository, by plain name.

    Arguments
    ---------
    source : str
        Local folder (``~`` is expanded) or hub repository id ("org/name").
    savedir : str or None
        Where files are linked or copied (None: used in place). A ``savedir``
        filled from another source is refreshed; one holding files that did not
        come from here is refused.
    local_strategy, fetch_config
        As in SpeechBrain's ``fetch``. Copies of a local folder's files
        (``LocalStrategy.COPY``) are made afresh at each load, so that a copy
        never outlives a change of its source.
    """

    def __init__(self, source, savedir=None, local_strategy=LocalStrategy.SYMLINK, fetch_config=None):
        expanded = Path(str(source)).expanduser()
        self.local = expanded.is_dir()
        self.source = str(expanded) if self.local else str(source)  # "~/model" is a folder, for fetch too
        self.fetch_config = fetch_config or FetchConfig()
        if not self.local:
            check_hub_id(self.source)
        if self.local and local_strategy in (LocalStrategy.COPY, LocalStrategy.COPY_SKIP_CACHE):
            self.fetch_config = FetchConfig(**{**vars(self.fetch_config), "overwrite": True})
        self.local_strategy = local_strategy
        self.savedir = self._prepare_savedir(savedir)

    @property
    def identity(self):
        if self.local:
            return f"local folder {Path(self.source).expanduser().resolve()}"
        return f"hub repository {self.source} at revision {self.fetch_config.revision or 'main'}"

    def _prepare_savedir(self, savedir):
        if savedir is None:
            return None
        savedir = Path(savedir).expanduser()
        if self.local and savedir.resolve() == Path(self.source).expanduser().resolve():
            return None  # the folder itself: use its files in place
        if savedir.is_symlink() or (savedir.exists() and not savedir.is_dir()):
            raise ValueError(f"savedir {savedir} is not a folder")
        marker = savedir / SAVEDIR_MARKER
        if savedir.is_dir() and any(savedir.iterdir()):
            if not marker.is_file():
                raise ValueError(f"savedir {savedir} already holds files that TDYSpeakerRecognition did not fetch "
                                 "there; give an empty or new folder")
            if marker.read_text(encoding="utf-8").strip() != self.identity:
                self.fetch_config = FetchConfig(**{**vars(self.fetch_config), "overwrite": True})
        savedir.mkdir(parents=True, exist_ok=True)
        write_text_atomically(marker, self.identity + "\n", MARKER)
        return savedir

    def get(self, filename):
        """Local path of ``filename`` (a plain name) of the source, a regular
        file (a FIFO, device or folder of that name is refused unopened)."""
        check_plain_name(filename, self.source)
        try:
            path = fetch(filename, source=self.source, savedir=self.savedir, local_strategy=self.local_strategy,
                         fetch_config=self.fetch_config)
        except Exception as error:  # the hub client's and fetch's errors name neither id nor mode
            if self.local:
                raise FileNotFoundError(f"{self.source}: cannot read {filename} ({error})") from error
            offline = huggingface_hub.constants.HF_HUB_OFFLINE or not self.fetch_config.allow_network
            mode = "offline (HF_HUB_OFFLINE=1 or allow_network=False): it is not in the hub cache" if offline \
                else "online"
            raise FileNotFoundError(
                f"Cannot fetch {filename} of hub repository {self.source!r} ({mode}): {error}. "
                f"If {self.source!r} is meant to be a local model folder, no such folder exists."
            ) from error
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{self.source}: the model folder has no file {filename}")
        check_regular_file(path, f"a model folder's {filename}")
        return path

    def parameters(self, name):
        """Local path of the parameters of the loadable ``name``:
        ``<name>.safetensors``, or in a folder written before safetensors
        ``<name>.ckpt`` (a torch pickle, loaded with weights_only), with a
        warning that re-exporting gives safetensors."""
        try:
            return self.get(f"{name}.safetensors")
        except FileNotFoundError as missing:
            try:
                path = self.get(f"{name}.ckpt")
            except FileNotFoundError:
                raise missing from None
        warnings.warn(f"{self.source} holds {name}.ckpt, a torch pickle (loaded with weights_only=True) written "
                      f"before safetensors; `speechbrain-tdy export` or `convert` writes {name}.safetensors",
                      stacklevel=3)
        return path


def check_hub_id(source):
    """Refuse a ``source`` that is neither an existing folder nor a hub id
    (``name`` or ``org/name``), instead of letting the hub client fail on it."""
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$", source) or ".." in source:
        raise FileNotFoundError(f"{source}: no such model folder (and not a hub id of the form org/name)")


def check_state_dict(expected, given, description):
    """Raise CheckpointMismatchError naming missing, unexpected and mis-shaped
    keys; ``expected`` and ``given`` map names to tensors or to shapes."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = [{key: tuple(value.shape if torch.is_tensor(value) else value) for key, value in state.items()}
              for state in (expected, given)]
    mis_shaped = [
        f"{key}: model {shapes[0][key]}, checkpoint {shapes[1][key]}"
        for key in expected
        if key in given and shapes[0][key] != shapes[1][key]
    ]
    problems = []
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", mis_shaped)):
        if items:
            shown = ", ".join(items[:10]) + (f", ... ({len(items)} in all)" if len(items) > 10 else "")
            problems.append(f"{title}: {shown}")
    if problems:
        raise CheckpointMismatchError(f"Checkpoint does not match {description}; " + "; ".join(problems))


def load_tensor_file(path, what, max_bytes):
    """``torch.load(path, weights_only=True)`` with errors naming ``path``.

    Before anything is read, ``path`` must be a regular file whose tensors
    take at most ``max_bytes`` once loaded: a torch file is a zip archive,
    and its entries' inflated sizes are read from the archive's directory, so
    that a small file of compressed entries cannot inflate to gigabytes."""
    path = Path(path)
    size = check_regular_file(path, what)
    inflated = inflated_size(path, what)
    size = size if inflated is None else inflated
    if size > max_bytes:
        raise ValueError(f"{path} would load {size:,} bytes, more than the {max_bytes:,} that {what} of this "
                         "model may hold")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = "the file is empty" if path.stat().st_size == 0 else str(error).strip() or type(error).__name__
        raise ValueError(f"{path} is not {what} that loads with weights_only=True: {reason}") from error


def read_safetensors(path, what, max_bytes, check_header):
    """The tensors {name: tensor} of the safetensors file ``path``, read only
    after ``check_header({name: (shape tuple, dtype name)})`` accepted its
    header (it raises ValueError to refuse). ``path`` must be a regular file
    of at most ``max_bytes``; errors name it."""
    path = Path(path)
    check_regular_file(path, what, max_bytes)
    try:
        with safe_open(str(path), framework="pt") as stream:  # parses the header; data is read by get_tensor
            header = {name: (tuple(stream.get_slice(name).get_shape()), stream.get_slice(name).get_dtype())
                      for name in stream.keys()}
            check_header(header)
            return {name: stream.get_tensor(name) for name in header}
    except (SafetensorError, OSError) as error:
        reason = "the file is empty" if path.stat().st_size == 0 else str(error).strip() or type(error).__name__
        raise ValueError(f"{path} is not {what}: {reason}") from error


def write_safetensors(tensors, path):
    """Write {name: tensor} to ``path`` as safetensors (CPU copies). Not
    atomic by itself: model folders are written in a staging folder
    (:func:`~speechbrain_tdy.storage.atomic.atomic_folder`)."""
    tensors = {name: tensor.detach().cpu().clone() for name, tensor in tensors.items()}  # none shares memory
    Path(path).write_bytes(safetensors_bytes(tensors, metadata={"format": "pt"}))


def load_parameters(obj, path):
    """Load a module's state dict from ``path``, a safetensors file (header
    checked before data is read) or a torch file (weights_only); errors name
    the file. Refuses mismatching keys, shapes or dtypes and non-finite values.
    """
    if isinstance(obj, CategoricalEncoder):
        load_label_encoder(path, obj)
        return
    if not isinstance(obj, torch.nn.Module):
        raise TypeError(f"Cannot load {path} into a {type(obj).__name__}")
    path = Path(path)
    expected = obj.state_dict()
    description = f"the {type(obj).__name__} built by hyperparams.yaml ({path})"
    tensor_bytes = sum(t.numel() * t.element_size() for t in expected.values())
    if path.suffix == ".safetensors":
        def check_header(header):
            check_state_dict(expected, {name: shape for name, (shape, _) in header.items()}, description)
            for name, (_, dtype) in header.items():
                if dtype != SAFETENSORS_DTYPES.get(expected[name].dtype):
                    raise CheckpointMismatchError(f"{path}: {name} is {dtype}, the model's is {expected[name].dtype}")

        state = read_safetensors(path, "a safetensors parameter file", tensor_bytes + CHECKPOINT_OVERHEAD_BYTES,
                                 check_header)
    else:
        state = load_tensor_file(path, "a PyTorch checkpoint", max_bytes=2 * tensor_bytes + CHECKPOINT_OVERHEAD_BYTES)
        if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
            raise ValueError(f"{path} is not a state dict of tensors")
        check_state_dict(expected, state, description)
    bad = [key for key, value in state.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise ValueError(f"{path}: NaN or infinite values in {', '.join(bad[:5])}" + (" ..." if len(bad) > 5 else ""))
    obj.load_state_dict(state)


def load_label_encoder(path, encoder=None):
    """A SpeechBrain ``CategoricalEncoder`` (``encoder`` or a new one) loaded
    from ``path``, a regular file of at most :data:`MAX_LABEL_ENCODER_BYTES`;
    ValueError naming the file otherwise."""
    check_regular_file(path, "a label_encoder.txt", MAX_LABEL_ENCODER_BYTES)
    encoder = CategoricalEncoder() if encoder is None else encoder
    try:
        encoder.load(path)
    except Exception as error:  # SpeechBrain raises what its parser and literal_eval raise, naming no file
        raise ValueError(f"{path}: not a SpeechBrain label_encoder.txt ({type(error).__name__}: {error})") \
            from error
    return encoder


def read_cohort(path, emb_dim=None):
    """Cohort embeddings (n, dim), L2-normalised, from a safetensors file (one
    tensor, :data:`COHORT_TENSOR`; header checked before data is read) or a
    torch file (weights_only).

    Refuses anything but a finite (n >= 2, dim) tensor of non-zero rows that
    are not all the same (s-norm divides by the spread of cohort scores).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        def check_header(header):
            if set(header) != {COHORT_TENSOR} or len(header[COHORT_TENSOR][0]) != 2:
                raise ValueError(f"{path}: expected one tensor {COHORT_TENSOR!r} of shape (n, dim), got "
                                 f"{ {name: shape for name, (shape, _) in header.items()} !s:.200}")

        cohort = read_safetensors(path, "a cohort", MAX_COHORT_BYTES, check_header)[COHORT_TENSOR]
    else:
        cohort = load_tensor_file(path, "a cohort", max_bytes=MAX_COHORT_BYTES)
    if not torch.is_tensor(cohort) or cohort.dim() != 2 or (emb_dim and cohort.shape[1] != emb_dim):
        shape = tuple(cohort.shape) if torch.is_tensor(cohort) else type(cohort).__name__
        raise ValueError(f"{path}: expected cohort embeddings of shape (n, {emb_dim or 'dim'}), got {shape}")
    cohort = cohort.float()
    if cohort.shape[0] < 2:
        raise ValueError(f"{path}: a cohort needs at least 2 embeddings, got {cohort.shape[0]}")
    if not torch.isfinite(cohort).all():
        raise ValueError(f"{path}: the cohort holds NaN or infinite values")
    if (cohort.norm(dim=1) == 0).any():
        raise ValueError(f"{path}: the cohort holds all-zero embeddings")
    cohort = F.normalize(cohort, dim=-1)
    if torch.allclose(cohort, cohort[:1].expand_as(cohort)):
        raise ValueError(f"{path}: every cohort embedding is the same, so cohort scores have no spread")
    return cohort


#: The interface's scalar settings: key -> (default, type, lowest, highest).
SETTINGS = {
    "chunk_frames": (3000, int, 100, 10**6), "chunk_context_frames": (384, int, 0, 10**5),
    "min_duration": (MIN_DURATION, (int, float), 0.0, 60.0), "crop_frames": (400, int, 10, 10**5),
    "num_crops": (10, int, 1, 100), "as_norm_top_n": (100, int, 1, 10**6), "emb_dim": (None, int, 1, 8192),
    "max_duration": (MAX_DURATION, (int, float), 1.0, 7 * 24 * 3600.0),
}


def checked_setting(values, key, where):
    """``values[key]`` (its default if absent), ValueError naming ``where``
    and ``key`` unless it is a number of the setting's type and range."""
    default, kind, low, high = SETTINGS[key]
    value = values.get(key, default)
    if value is None and default is None:
        return None
    return checked_number(value, f"{where}: {key}", kind, low, high)


def check_settings(hparams, where):
    """The interface's scalar settings of a hyperparams dict, checked."""
    settings = {key: checked_setting(hparams, key, where) for key in SETTINGS}
    for key in ("threshold_file", "cohort_file"):
        value = hparams.get(key)
        settings[key] = None if value is None else check_plain_name(value, f"{where}: {key}")
    return settings


#: Every file a model folder may hold; only a folder holding nothing else is
#: ever replaced (with ``overwrite``).
MODEL_FOLDER_FILES = {HPARAMS_FILE, PARAMETERS_FILE, LEGACY_PARAMETERS_FILE, CALIBRATION_FILE, COHORT_FILE,
                      TORCH_COHORT_FILE, LABELS_FILE, CARD_FILE, ONNX_FILE}


def is_model_folder(folder):
    """Whether ``folder`` is a model folder: a real folder with a hyperparams.yaml
    and embedding model parameters and no other entries than model-folder files."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return False
    entries = list(folder.iterdir())
    names = {entry.name for entry in entries}
    return HPARAMS_FILE in names and bool(names & {PARAMETERS_FILE, LEGACY_PARAMETERS_FILE}) and \
        names <= MODEL_FOLDER_FILES and \
        all(entry.is_file() and not entry.is_symlink() for entry in entries)
