"""Loading the ``hyperparams.yaml`` of a model folder without running what it names.

HyperPyYAML runs code: its ``!new:``/``!name:``/``!apply:`` tags import and call
any Python object it can locate (following module attributes from anywhere),
``!ref`` evaluates arithmetic, and scalars in parentheses become tuples through
an unsafe YAML loader. A model folder from a hub is untrusted, so its file is
read here instead, by a loader of our own:

* the text is parsed with PyYAML's safe composer (plain YAML types only; no
  ``!!python/...``), with a bounded size, nesting depth and node count and
  no aliases (:func:`~speechbrain_tdy.storage.reading.compose_yaml`, which
  every YAML file the package reads goes through);
* ``!new:NAME`` builds only the objects of :data:`OBJECTS`, looked up by their
  exact name (nothing is imported or located), each with checked arguments
  and a bounded size;
* ``!ref <key>`` is a plain reference to a top-level key (no expressions);
* every other tag is refused, with the file and line.

What this loader accepts is what :meth:`speechbrain_tdy.lobes.registry.Architecture.hparams_text`
writes, which stays a valid HyperPyYAML file for SpeechBrain's own loader.
"""
import re
from pathlib import Path

import yaml
from speechbrain.utils.parameter_transfer import Pretrainer
from torch import nn

from speechbrain_tdy.lobes.features import LogMelInstanceNorm
from speechbrain_tdy.lobes.registry import build_checked
from speechbrain_tdy.lobes.resnet import ResNet
from speechbrain_tdy.lobes.vggm import VGGM
from speechbrain_tdy.storage.pretrainer import TDYPretrainer
from speechbrain_tdy.storage.reading import MAX_YAML_BYTES, compose_yaml

#: Most characters the plain values of a run's file may hold once YAML
#: aliases are expanded (a file without aliases holds fewer than its size).
MAX_EXPANDED_CHARS = 4 * MAX_YAML_BYTES
PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map")}
REFERENCE = re.compile(r"^<([A-Za-z_][A-Za-z0-9_]*)>$")
LOADABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class UnsafeHyperparamsError(ValueError):
    """A hyperparams.yaml that the safe loader refuses, with the file and line."""

    def __init__(self, message):
        super().__init__(message + ". Model folders are loaded without running code; pass trust_remote_code=True "
                         "(HyperPyYAML runs what the file names) only for a file you trust.")


def _pretrainer(cls, where, loadables):
    if not isinstance(loadables, dict) or not loadables:
        raise UnsafeHyperparamsError(f"{where}: Pretrainer loadables must be a mapping of names to modules")
    for name, module in loadables.items():
        if not isinstance(name, str) or not LOADABLE_NAME.match(name) or not isinstance(module, nn.Module):
            raise UnsafeHyperparamsError(f"{where}: Pretrainer loadable {name!r} must be a plain name "
                                         "mapped to a module built in this file")
    return cls(loadables=loadables)


#: Exact names a ``!new:`` tag may build -> function(where, **kwargs).
OBJECTS = {
    **{f"speechbrain_tdy.lobes.{cls.__name__}": cls for cls in (LogMelInstanceNorm, ResNet, VGGM)},
    "speechbrain.utils.parameter_transfer.Pretrainer": Pretrainer,
    "speechbrain_tdy.inference.pretrainer.TDYPretrainer": TDYPretrainer,
}
PRETRAINERS = (Pretrainer, TDYPretrainer)


class _New:
    def __init__(self, name, node, arguments):
        self.name, self.node, self.arguments = name, node, arguments


class _Ref:
    def __init__(self, key, node):
        self.key, self.node = key, node


def load_model_hparams(path, overrides=None):
    """The hyperparameters (dict) of a model folder's ``path``, built safely.

    ``overrides`` (top-level key -> plain value) replace values of the file
    before anything is built. Raises UnsafeHyperparamsError naming ``path``
    and the line for anything outside what model folders hold.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "hyperparams.yaml")
    >>> _ = open(path, "w").write("n_mels: 24\\nfront: !new:speechbrain_tdy.lobes.LogMelInstanceNorm\\n  n_mels: !ref <n_mels>\\n")
    >>> load_model_hparams(path)["front"].n_mels
    24
    >>> _ = open(path, "w").write("x: !new:torch.nn.functional.np.f2py.subprocess.Popen [[touch, owned]]\\n")
    >>> load_model_hparams(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    speechbrain_tdy.storage.safe_hparams.UnsafeHyperparamsError: ...line 1: !new:torch.nn.functional.np.f2py.subprocess.Popen is not an object model folders may build...
    """
    path = Path(path)
    root = compose_yaml(path, "a model folder's hyperparams.yaml", error=UnsafeHyperparamsError)
    top = {}
    for key_node, value_node in root.value:
        if key_node.tag != "tag:yaml.org,2002:str":
            raise UnsafeHyperparamsError(f"{path}, line {key_node.start_mark.line + 1}: top-level keys must be names")
        top[key_node.value] = _describe(value_node, path)
    for key, value in (overrides or {}).items():
        top[key] = value
    return _Resolver(top, path).resolve_all()


def _describe(node, path):
    """Plain Python values for plain nodes; _New/_Ref placeholders for our tags."""
    where = f"{path}, line {node.start_mark.line + 1}"
    tag = node.tag
    if tag.startswith("!new:"):
        name = tag[len("!new:"):]
        if name not in OBJECTS:
            raise UnsafeHyperparamsError(f"{where}: {tag} is not an object model folders may build "
                                         f"(allowed: {', '.join(sorted(OBJECTS))})")
        if isinstance(node, yaml.MappingNode):
            arguments = _describe(yaml.MappingNode("tag:yaml.org,2002:map", node.value, node.start_mark), path)
        elif isinstance(node, yaml.ScalarNode) and node.value == "":
            arguments = {}
        else:
            raise UnsafeHyperparamsError(f"{where}: {tag} takes keyword arguments (a mapping)")
        return _New(name, node, arguments)
    if tag == "!ref":
        match = REFERENCE.match(node.value) if isinstance(node, yaml.ScalarNode) else None
        if match is None:
            raise UnsafeHyperparamsError(f"{where}: !ref must name one top-level key, as in '!ref <n_mels>' "
                                         "(expressions are refused)")
        return _Ref(match.group(1), node)
    if tag not in PLAIN_TAGS:
        raise UnsafeHyperparamsError(f"{where}: {tag} is refused (model folders use plain YAML, "
                                     "!new: of the lobes and !ref <key>)")
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            if key_node.tag != "tag:yaml.org,2002:str":
                raise UnsafeHyperparamsError(f"{path}, line {key_node.start_mark.line + 1}: keys must be names")
            result[key_node.value] = _describe(value_node, path)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_describe(item, path) for item in node.value]
    return yaml.constructor.SafeConstructor().construct_object(node)


class _Resolver:
    """Builds the described values, each top-level key and object once."""

    def __init__(self, top, path):
        self.top, self.path = top, path
        self.done, self.building = {}, set()
        self.objects = {}

    def resolve_all(self):
        return {key: self.resolve_key(key) for key in self.top}

    def resolve_key(self, key, node=None):
        if key in self.done:
            return self.done[key]
        if key not in self.top:
            raise UnsafeHyperparamsError(f"{self.path}, line {node.start_mark.line + 1}: !ref <{key}> names no "
                                         "top-level key")
        if key in self.building:
            raise UnsafeHyperparamsError(f"{self.path}: !ref <{key}> refers to itself")
        self.building.add(key)
        self.done[key] = self.resolve(self.top[key])
        self.building.discard(key)
        return self.done[key]

    def resolve(self, value):
        if isinstance(value, _Ref):
            return self.resolve_key(value.key, value.node)
        if isinstance(value, _New):
            if id(value) not in self.objects:
                self.objects[id(value)] = self.build(value)
            return self.objects[id(value)]
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value

    def build(self, new):
        where = f"{self.path}, line {new.node.start_mark.line + 1}"
        kwargs = self.resolve(new.arguments)
        cls = OBJECTS[new.name]
        if cls in PRETRAINERS:
            if set(kwargs) != {"loadables"}:
                raise UnsafeHyperparamsError(f"{where}: Pretrainer takes only 'loadables' in a model folder "
                                             "(parameters are read from <name>.safetensors, or <name>.ckpt, beside this file)")
            return _pretrainer(cls, where, kwargs["loadables"])
        try:
            return build_checked(cls, kwargs, where)
        except (TypeError, ValueError) as error:
            raise UnsafeHyperparamsError(str(error) if where in str(error) else f"{where}: {error}") from error


def plain_values(path):
    """The top-level values of a HyperPyYAML file that need no code: plain YAML
    values, and ``!ref`` strings made only of ``<key>`` references to such
    values and path characters (e.g. ``!ref <data_folder>/veri_test.txt``).
    Anything else (objects, expressions) is left out, never run.

    Used to read a training run's hyperparams.yaml, whose objects are the
    recipe's (optimisers, augmentations) and are not needed to use its model.
    SpeechBrain writes YAML anchors there, so aliases are allowed, but the
    values may not expand to more than :data:`MAX_EXPANDED_CHARS` characters
    in all: ValueError naming the file, the line and the key beyond that.
    """
    path = Path(path)
    root = compose_yaml(path, "a run's hyperparams.yaml", allow_aliases=True)
    values, refs = {}, {}
    constructor = yaml.constructor.SafeConstructor()  # builds each aliased node once
    sizes, total = {}, 0
    for key_node, node in root.value:
        where = f"{path}, line {key_node.start_mark.line + 1}"
        if key_node.tag != "tag:yaml.org,2002:str":
            raise ValueError(f"{where}: top-level keys must be names")
        key = key_node.value
        if node.tag == "!ref" and isinstance(node, yaml.ScalarNode):
            refs[key] = (node.value, where)
            continue
        size = _plain_size(node, sizes)
        if size is None:
            continue
        total += size
        _check_expansion(total, key, where)
        values[key] = constructor.construct_object(node, deep=True)
    for key, (text, where) in refs.items():
        if re.fullmatch(r"(<[A-Za-z_]\w*>|[\w./-])+", text):
            parts = re.split(r"<([A-Za-z_]\w*)>", text)
            names = parts[1::2]
            if all(isinstance(values.get(name), (str, int)) for name in names):
                parts = [str(values[p]) if i % 2 else p for i, p in enumerate(parts)]
                total += sum(map(len, parts))
                _check_expansion(total, key, where)
                values[key] = "".join(parts)
    return values


def _check_expansion(total, key, where):
    if total > MAX_EXPANDED_CHARS:
        raise ValueError(f"{where}: {key} takes the file's values beyond {MAX_EXPANDED_CHARS:,} characters once "
                         "its YAML aliases are expanded; a run's settings are small values")


def _plain_size(node, sizes):
    """Characters of ``node`` with its aliases expanded (scalars count their
    length and one), or None if it holds other than plain YAML types;
    ``sizes`` caches answers by node, so an aliased node is looked at once."""
    if id(node) not in sizes:
        if node.tag not in PLAIN_TAGS:
            size = None
        elif isinstance(node, yaml.ScalarNode):
            size = len(node.value) + 1
        else:
            items = [item for pair in node.value for item in pair] if isinstance(node, yaml.MappingNode) \
                else node.value
            parts = [_plain_size(item, sizes) for item in items]
            size = None if None in parts else 1 + sum(parts)
        sizes[id(node)] = size
    return sizes[id(node)]
