"""The released architectures, one entry each.

Every other place that needs to know an architecture derives it from
:data:`ARCHITECTURES`: the converter (the authors' model names are aliases),
export and the training-run reader (which model a run trained), the
inference ``hyperparams.yaml`` of a model folder (:meth:`Architecture.hparams_text`,
the top-level ``hparams/*.yaml`` are its output at the defaults) and the safe
loader of model folders (:data:`MODEL_ARGUMENT_RULES` bounds what an untrusted
file may ask to build).

>>> arch = get_architecture("TDy_ResNet34_quarter")
>>> arch.name, arch.model_values(n_mels=40)["channels"]
('tdy_resnet34_quarter', [16, 32, 64, 128])
"""
import math
from dataclasses import dataclass

import torch

from speechbrain_tdy.dataio.audio import MIN_DURATION
from speechbrain_tdy.lobes.features import WINDOWS, LogMelInstanceNorm
from speechbrain_tdy.lobes.resnet import CONVS, HALF_CHANNELS, QUARTER_CHANNELS, ResNet
from speechbrain_tdy.lobes.vggm import CONVS as VGGM_CONVS
from speechbrain_tdy.lobes.vggm import VGGM
from speechbrain_tdy.nnet.pooling import POOLINGS

#: Largest model (parameters and buffers) a model folder may ask to build.
MAX_MODEL_ELEMENTS = 200_000_000


@dataclass(frozen=True)
class Architecture:
    """One released architecture.

    Arguments
    ---------
    name : str
        Our name (recipe ``architecture:`` key, ``hparams/<name>.yaml``).
    official_name : str
        The authors' model name (their trainer's ``--model``).
    title : str
        Human-readable name, with the parameter count at 64 mels and AVG pooling.
    conv : str
        "static", "tdy" or "dtdy".
    channels, layers : tuple of 4 ints or None
        Stage widths and blocks per stage of a ResNet (None: VGG-M).
    """

    name: str
    official_name: str
    title: str
    conv: str
    channels: tuple = None
    layers: tuple = (3, 4, 6, 3)

    @property
    def is_vggm(self):
        return self.channels is None

    @property
    def poolings(self):
        return ("AVG", "SAP") if self.is_vggm else POOLINGS

    def model_values(self, n_mels=64, emb_dim=512, pooling="AVG", channels=None, layers=None):
        """The values that fix a built model, checked; ``channels``/``layers``
        (ResNets) default to the architecture's.

        >>> get_architecture("tdy_vggm").model_values(pooling="SAP")
        {'n_mels': 64, 'emb_dim': 512, 'pooling': 'SAP'}
        """
        if pooling not in self.poolings:
            raise ValueError(f"{self.name}: pooling must be one of {', '.join(self.poolings)}, got {pooling!r}")
        values = {"n_mels": _bounded_int("n_mels", n_mels, 1, 512), "emb_dim": _bounded_int("emb_dim", emb_dim, 1, 8192),
                  "pooling": pooling}
        if self.is_vggm:
            if n_mels != 64:
                raise ValueError(f"{self.name} is built for 64 mel bins, got n_mels={n_mels}")
            return values
        for key, given, default, high in (("channels", channels, self.channels, 2048), ("layers", layers, self.layers, 64)):
            given = default if given is None else given
            if not isinstance(given, (list, tuple)) or len(given) != 4:
                raise ValueError(f"{self.name}: {key} must be a list of 4 integers, got {given!r}")
            values[key] = [_bounded_int(key, item, 1, high) for item in given]
        return values

    def build(self, values, temperature=1.0):
        """(front end, embedding model) for checked ``values`` (see :meth:`model_values`),
        the TDY layers at ``temperature`` (1: inference)."""
        if self.is_vggm:
            front_end = LogMelInstanceNorm(n_mels=64, window="hann", f_max=8000)
            model = VGGM(conv=self.conv, pooling=values["pooling"], lin_neurons=values["emb_dim"],
                         temperature=temperature)
            return front_end, model
        model = ResNet(n_mels=values["n_mels"], channels=values["channels"], layers=values["layers"],
                         conv=self.conv, pooling=values["pooling"], lin_neurons=values["emb_dim"],
                         temperature=temperature)
        return LogMelInstanceNorm(n_mels=values["n_mels"]), model

    def hparams_text(self, values=None, threshold_file=None, cohort_file=None, n_parameters=None):
        """The inference ``hyperparams.yaml`` of a model folder of this architecture.

        >>> text = get_architecture("resnet34_half").hparams_text({"n_mels": 40, "pooling": "SAP", "emb_dim": 256})
        >>> "n_mels: 40" in text and "conv: static" in text
        True
        """
        values = self.model_values(**(values or {}))
        size = f"{n_parameters:,} parameters" if n_parameters is not None else self.title
        lines = [
            "# " + "#" * 76,
            f"# Inference hyperparameters: {self.title}.",
            f"# This model: {values['n_mels']} mels, {values['pooling']} pooling, {values['emb_dim']}-d embeddings"
            + (f", {size}." if n_parameters is not None else "."),
            "# Load with speechbrain_tdy.inference.TDYSpeakerRecognition.from_hparams.",
            "# " + "#" * 76,
            "",
            f"architecture: {self.name}",
            "sample_rate: 16000",
            f"n_mels: {values['n_mels']}" + ("  # VGG-M collapses exactly 64 mel bins to one" if self.is_vggm else ""),
            f"emb_dim: {values['emb_dim']}",
            f"pooling: {values['pooling']}  # {' or '.join(self.poolings)}",
        ]
        if self.is_vggm:
            lines += [
                "",
                "compute_features: !new:speechbrain_tdy.lobes.LogMelInstanceNorm",
                "    n_mels: !ref <n_mels>",
                "    window: hann",
                "    f_max: 8000",
                "",
                "embedding_model: !new:speechbrain_tdy.lobes.VGGM",
                "    n_mels: !ref <n_mels>",
                f"    conv: {self.conv}",
            ]
        else:
            lines += [
                f"channels: {_flow(values['channels'])}",
                f"layers: {_flow(values['layers'])}",
                "",
                "compute_features: !new:speechbrain_tdy.lobes.LogMelInstanceNorm",
                "    n_mels: !ref <n_mels>",
                "",
                "embedding_model: !new:speechbrain_tdy.lobes.ResNet",
                "    n_mels: !ref <n_mels>",
                "    channels: !ref <channels>",
                "    layers: !ref <layers>",
                f"    conv: {self.conv}",
            ]
        lines += [
            "    pooling: !ref <pooling>",
            "    lin_neurons: !ref <emb_dim>",
            "    temperature: 1.0",
            "",
            "# Scoring (see TDYSpeakerRecognition): decision threshold calibrated on a",
            "# trial list and cohort for score normalisation, files of the model folder",
            "# (null: none).",
            f"threshold_file: {threshold_file or 'null'}",
            f"cohort_file: {cohort_file or 'null'}",
            "as_norm_top_n: 100",
            "crop_frames: 400  # the paper's evaluation: 10 crops of 400 frames",
            "num_crops: 10",
            f"min_duration: {MIN_DURATION}  # seconds; shorter files are wrap-padded",
            "chunk_frames: 3000  # longer recordings are embedded chunk by chunk",
            "chunk_context_frames: 384",
            "",
            "modules:",
            "    compute_features: !ref <compute_features>",
            "    embedding_model: !ref <embedding_model>",
            "",
            "# Parameters come from embedding_model.ckpt beside this file.",
            "# TDYPretrainer: SpeechBrain's generic interfaces stop at once, naming TDYSpeakerRecognition.",
            "pretrainer: !new:speechbrain_tdy.inference.pretrainer.TDYPretrainer",
            "    loadables:",
            "        embedding_model: !ref <embedding_model>",
            "",
        ]
        return "\n".join(lines)


def _flow(items):
    return "[" + ", ".join(str(item) for item in items) + "]"


def _bounded_int(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


ARCHITECTURES = {
    arch.name: arch
    for arch in (
        Architecture("tdy_resnet34_half", "TDy_ResNet34_half",
                     "TDY-ResNet-34 (x0.5), 51.9M parameters at 64 mels (paper: 1.48% EER on VoxCeleb1-O)",
                     "tdy", HALF_CHANNELS),
        Architecture("tdy_resnet34_quarter", "TDy_ResNet34_quarter",
                     "TDY-ResNet-34 (x0.25), 13.3M parameters at 64 mels (paper: 1.58% EER on VoxCeleb1-O)",
                     "tdy", QUARTER_CHANNELS),
        Architecture("resnet34_half", "ResNet34_half", "ResNet-34 (x0.5), static baseline of TDY-ResNet-34 (x0.5)",
                     "static", HALF_CHANNELS),
        Architecture("resnet34_quarter", "ResNet34_quarter",
                     "ResNet-34 (x0.25), static baseline of TDY-ResNet-34 (x0.25)", "static", QUARTER_CHANNELS),
        Architecture("dtdy_resnet34_half", "DTDY_ResNet34_half",
                     "DTDY-ResNet-34 (x0.5), 12.0M parameters at 64 mels (paper, with ASP: 0.96% EER)",
                     "dtdy", HALF_CHANNELS),
        # The authors' quarter-width DTDY model has 2 blocks per stage.
        Architecture("dtdy_resnet34_quarter", "DTDY_ResNet34_quarter",
                     "DTDY-ResNet (x0.25), 2 blocks per stage as in the authors' code", "dtdy", QUARTER_CHANNELS,
                     (2, 2, 2, 2)),
        Architecture("tdy_vggm", "TDy_VGGVox", "TDY-VGG-M, 71.2M parameters (paper: 3.04% EER on VoxCeleb1-O)", "tdy"),
        Architecture("vggm", "VGGVox", "VGG-M (VGGVox), static baseline of TDY-VGG-M", "static"),
    )
}


def get_architecture(name):
    """The entry of ``name``: one of ours or an authors' model name."""
    for arch in ARCHITECTURES.values():
        if name in (arch.name, arch.official_name):
            return arch
    known = ", ".join(f"{a.name} ({a.official_name})" for a in ARCHITECTURES.values())
    raise ValueError(f"Unknown architecture {name!r}; known: {known}")


# What an untrusted hyperparams.yaml may pass to each object it builds: argument
# name -> check(value) returning an error message or None.
def _int_in(low, high):
    return lambda v: None if (isinstance(v, int) and not isinstance(v, bool) and low <= v <= high) else \
        f"an integer in [{low}, {high}]"


def _ints_in(low, high, count):
    check = _int_in(low, high)
    return lambda v: None if (isinstance(v, (list, tuple)) and len(v) == count and not any(map(check, v))) else \
        f"a list of {count} integers in [{low}, {high}]"


def _one_of(*options):
    return lambda v: None if any(v == o and type(v) is type(o) for o in options) else f"one of {options}"


def _positive_number(v):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    return None if ok else "a finite positive number"


MODEL_ARGUMENT_RULES = {
    LogMelInstanceNorm: {"n_mels": _int_in(1, 512), "window": _one_of(*WINDOWS), "f_max": _positive_number},
    ResNet: {"n_mels": _int_in(1, 512), "channels": _ints_in(1, 2048, 4), "layers": _ints_in(1, 64, 4),
               "conv": _one_of(*CONVS), "pooling": _one_of(*POOLINGS), "lin_neurons": _int_in(1, 8192),
               "temperature": _positive_number, "n_kernels": _int_in(1, 32)},
    VGGM: {"n_mels": _int_in(1, 512), "conv": _one_of(*VGGM_CONVS), "pooling": _one_of("AVG", "SAP"),
           "lin_neurons": _int_in(1, 8192), "temperature": _positive_number, "n_kernels": _int_in(1, 32)},
}


def build_checked(cls, kwargs, where="hyperparams.yaml"):
    """``cls(**kwargs)`` for a class of :data:`MODEL_ARGUMENT_RULES`, after checking
    every argument and, for the embedding models, the model's size (built
    first on the meta device, which allocates nothing)."""
    rules = MODEL_ARGUMENT_RULES[cls]
    for key, value in kwargs.items():
        if key not in rules:
            raise ValueError(f"{where}: {cls.__name__} takes no argument {key!r} here (allowed: {', '.join(rules)})")
        problem = rules[key](value)
        if problem:
            raise ValueError(f"{where}: {cls.__name__} argument {key} must be {problem}, got {value!r}")
    if cls is not LogMelInstanceNorm:
        with torch.device("meta"):
            meta_model = cls(**kwargs)
            size = sum(t.numel() for t in (*meta_model.parameters(), *meta_model.buffers()))
        if size > MAX_MODEL_ELEMENTS:
            raise ValueError(f"{where}: {cls.__name__}({kwargs}) would hold {size:,} values, "
                             f"more than the {MAX_MODEL_ELEMENTS:,} any released model needs")
    return cls(**kwargs)
