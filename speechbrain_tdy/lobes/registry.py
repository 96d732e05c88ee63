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
from dataclasses import dataclass

import torch

from speechbrain_tdy.dataio.audio import MIN_DURATION
from speechbrain_tdy.lobes.features import WINDOWS, LogMelInstanceNorm
from speechbrain_tdy.lobes.resnet import CONVS, HALF_CHANNELS, QUARTER_CHANNELS, ResNet
from speechbrain_tdy.lobes.vggm import CONVS as VGGM_CONVS
from speechbrain_tdy.lobes.vggm import VGGM
from speechbrain_tdy.nnet.pooling import POOLINGS
from speechbrain_tdy.nnet.tdy_conv import INFERENCE_TEMPERATURE
from speechbrain_tdy.storage.checks import checked_number

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
    name_text : str
        Human-readable name.
    n_parameters : int
        Trainable parameters of the embedding model at the defaults (64 mels,
        512-d embeddings, AVG pooling); the authors' counts.
    conv : str
        "static", "tdy" or "dtdy".
    channels, layers : tuple of 4 ints or None
        Stage widths and blocks per stage of a ResNet (None: VGG-M).
    paper : str or None
        The paper's result for this model, as the model card quotes it.
    """

    name: str
    official_name: str
    name_text: str
    n_parameters: int
    conv: str
    channels: tuple = None
    layers: tuple = (3, 4, 6, 3)
    paper: str = None

    @property
    def title(self):
        """Name, parameter count and the paper's result, e.g. for a model card."""
        size = f"{self.n_parameters / 1e6:.1f}M parameters at 64 mels"
        return f"{self.name_text}, {size}" + (f" (paper: {self.paper})" if self.paper else "")

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
        values = {"n_mels": checked_number(n_mels, "n_mels", int, 1, 512),
                  "emb_dim": checked_number(emb_dim, "emb_dim", int, 1, 8192), "pooling": pooling}
        if self.is_vggm:
            if n_mels != 64:
                raise ValueError(f"{self.name} is built for 64 mel bins, got n_mels={n_mels}")
            return values
        for key, given, default, high in (("channels", channels, self.channels, 2048), ("layers", layers, self.layers, 64)):
            given = default if given is None else given
            if not isinstance(given, (list, tuple)) or len(given) != 4:
                raise ValueError(f"{self.name}: {key} must be a list of 4 integers, got {given!r}")
            values[key] = [checked_number(item, key, int, 1, high) for item in given]
        return values

    def values_in(self, hparams):
        """:meth:`model_values` of the keys a hyperparams mapping sets (a run
        folder's or a model folder's); ValueError for a bad one."""
        keys = ("n_mels", "emb_dim", "pooling") + (() if self.is_vggm else ("channels", "layers"))
        return self.model_values(**{key: hparams[key] for key in keys if key in hparams})

    def model_arguments(self, values):
        """Keyword arguments of :class:`ResNet` / :class:`VGGM` for checked ``values``."""
        arguments = {"n_mels": values["n_mels"], "pooling": values["pooling"], "lin_neurons": values["emb_dim"]}
        if not self.is_vggm:
            arguments.update(channels=values["channels"], layers=values["layers"])
        return arguments

    def front_end(self, n_mels=64):
        """The front end this architecture is trained with (VGG-M: the authors' hann window, up to 8 kHz)."""
        if self.is_vggm:
            return LogMelInstanceNorm(n_mels=n_mels, window="hann", f_max=8000)
        return LogMelInstanceNorm(n_mels=n_mels)

    def embedding_model(self, **kwargs):
        """The embedding model: :class:`ResNet` (this entry's conv, channels and
        layers unless given) or :class:`VGGM` (this entry's conv), with ``kwargs``."""
        if self.is_vggm:
            return VGGM(conv=self.conv, **kwargs)
        return ResNet(**{"channels": self.channels, "layers": self.layers, "conv": self.conv, **kwargs})

    def build(self, values, temperature=INFERENCE_TEMPERATURE):
        """(front end, embedding model) for checked ``values`` (see :meth:`model_values`),
        the TDY layers at ``temperature`` (1: inference)."""
        model = self.embedding_model(**self.model_arguments(values), temperature=temperature)
        return self.front_end(values["n_mels"]), model

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
            f"    temperature: {INFERENCE_TEMPERATURE}",
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
            "# Parameters come from embedding_model.safetensors beside this file (embedding_model.ckpt before).",
            "# TDYPretrainer: SpeechBrain's generic interfaces stop at once, naming TDYSpeakerRecognition.",
            "pretrainer: !new:speechbrain_tdy.inference.pretrainer.TDYPretrainer",
            "    loadables:",
            "        embedding_model: !ref <embedding_model>",
            "",
        ]
        return "\n".join(lines)


def _flow(items):
    return "[" + ", ".join(str(item) for item in items) + "]"


ARCHITECTURES = {
    arch.name: arch
    for arch in (
        Architecture("tdy_resnet34_half", "TDy_ResNet34_half", "TDY-ResNet-34 (x0.5)", 51_923_506, "tdy",
                     HALF_CHANNELS, paper="1.48% EER on VoxCeleb1-O"),
        Architecture("tdy_resnet34_quarter", "TDy_ResNet34_quarter", "TDY-ResNet-34 (x0.25)", 13_271_682, "tdy",
                     QUARTER_CHANNELS, paper="1.58% EER on VoxCeleb1-O"),
        Architecture("resnet34_half", "ResNet34_half", "ResNet-34 (x0.5), static baseline of TDY-ResNet-34 (x0.5)",
                     6_373_728, "static", HALF_CHANNELS),
        Architecture("resnet34_quarter", "ResNet34_quarter",
                     "ResNet-34 (x0.25), static baseline of TDY-ResNet-34 (x0.25)", 1_858_480, "static",
                     QUARTER_CHANNELS),
        Architecture("dtdy_resnet34_half", "DTDY_ResNet34_half", "DTDY-ResNet-34 (x0.5)", 11_991_232, "dtdy",
                     HALF_CHANNELS, paper="0.96% EER on VoxCeleb1-O, with ASP pooling"),
        # The authors' quarter-width DTDY model has 2 blocks per stage.
        Architecture("dtdy_resnet34_quarter", "DTDY_ResNet34_quarter",
                     "DTDY-ResNet (x0.25), 2 blocks per stage as in the authors' code", 2_011_984, "dtdy",
                     QUARTER_CHANNELS, (2, 2, 2, 2)),
        Architecture("tdy_vggm", "TDy_VGGVox", "TDY-VGG-M", 71_165_470, "tdy", paper="3.04% EER on VoxCeleb1-O"),
        Architecture("vggm", "VGGVox", "VGG-M (VGGVox), static baseline of TDY-VGG-M", 4_162_496, "static"),
    )
}


def get_architecture(name):
    """The entry of ``name``: one of ours or an authors' model name."""
    for arch in ARCHITECTURES.values():
        if name in (arch.name, arch.official_name):
            return arch
    known = ", ".join(f"{a.name} ({a.official_name})" for a in ARCHITECTURES.values())
    raise ValueError(f"Unknown architecture {name!r}; known: {known}")


def build_front_end(architecture, n_mels=64):
    """The front end of ``architecture`` (a recipe's ``compute_features``)."""
    return get_architecture(architecture).front_end(n_mels)


def build_embedding_model(architecture, n_mels=64, emb_dim=512, pooling="AVG", channels=None, layers=None, **options):
    """The embedding model of ``architecture`` (a recipe's ``embedding_model``):
    the registry fixes its convolution type and, unless ``channels`` / ``layers``
    are given (e.g. a smaller model for tests), its widths and depth.
    ``options`` are the model's other keyword arguments (``zero_init_residual``,
    ``temperature``, ``n_kernels``), which do not change what the registry fixes."""
    arch = get_architecture(architecture)
    values = arch.model_values(n_mels=n_mels, emb_dim=emb_dim, pooling=pooling, channels=channels, layers=layers)
    return arch.embedding_model(**arch.model_arguments(values), **options)


def _factory(name):
    """``name(**kwargs)``: the embedding model of the registry's entry ``name``."""
    arch = ARCHITECTURES[name]

    def factory(**kwargs):
        return arch.embedding_model(**kwargs)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"{arch.title}. Keyword arguments: those of the model class, over the entry's."
    return factory


tdy_resnet34_half = _factory("tdy_resnet34_half")
tdy_resnet34_quarter = _factory("tdy_resnet34_quarter")
resnet34_half = _factory("resnet34_half")
resnet34_quarter = _factory("resnet34_quarter")
dtdy_resnet34_half = _factory("dtdy_resnet34_half")
dtdy_resnet34_quarter = _factory("dtdy_resnet34_quarter")
tdy_vggm = _factory("tdy_vggm")
vggm = _factory("vggm")


# What an untrusted hyperparams.yaml may pass to each object it builds: argument
# name -> check(value, where), raising ValueError naming ``where``.
def _int_in(low, high):
    return lambda value, where: checked_number(value, where, int, low, high)


def _ints_in(low, high, count):
    def check(value, where):
        if not isinstance(value, (list, tuple)) or len(value) != count:
            raise ValueError(f"{where} must be a list of {count} integers in [{low}, {high}], got {value!r:.60}")
        for item in value:
            checked_number(item, where, int, low, high)
    return check


def _one_of(*options):
    def check(value, where):
        if not any(value == option and type(value) is type(option) for option in options):
            raise ValueError(f"{where} must be one of {options}, got {value!r:.60}")
    return check


def _positive_number(value, where):
    if checked_number(value, where) <= 0:
        raise ValueError(f"{where} must be a finite positive number, got {value!r}")


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
        rules[key](value, f"{where}: {cls.__name__} argument {key}")
    if cls is not LogMelInstanceNorm:
        with torch.device("meta"):
            meta_model = cls(**kwargs)
            size = sum(t.numel() for t in (*meta_model.parameters(), *meta_model.buffers()))
        if size > MAX_MODEL_ELEMENTS:
            raise ValueError(f"{where}: {cls.__name__}({kwargs}) would hold {size:,} values, "
                             f"more than the {MAX_MODEL_ELEMENTS:,} any released model needs")
    return cls(**kwargs)
