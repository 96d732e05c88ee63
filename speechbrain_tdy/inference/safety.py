"""Checking a HyperPyYAML file before loading it.

Loading HyperPyYAML runs code: ``!new:``, ``!name:``, ``!apply:`` and
``!module:`` tags import and call arbitrary Python objects, and ``!include:``
pulls in another file. A ``hyperparams.yaml`` downloaded from a model hub is
therefore checked, without constructing anything, against an allow-list of
the objects released models need.
"""
import yaml

#: Dotted-name prefixes a ``!new:``/``!name:`` tag may reference.
ALLOWED_OBJECTS = (
    "speechbrain_tdy.lobes.",
    "speechbrain_tdy.nnet.",
    "speechbrain.utils.parameter_transfer.Pretrainer",
    "speechbrain.dataio.encoder.CategoricalEncoder",
    "torch.nn.",
)
#: Tags whose target is checked against ``ALLOWED_OBJECTS``.
OBJECT_TAGS = ("!new:", "!name:")
#: Tags that never appear in a released file: they call functions while the
#: file loads or read other files.
REFUSED_TAGS = ("!apply:", "!applyref:", "!module:", "!include:")
#: Plain YAML types (anything else, e.g. ``!!python/object``, is refused).
YAML_TYPES = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map", "merge")}


class UnsafeHyperparamsError(ValueError):
    """A HyperPyYAML file references objects outside the allow-list."""


def unsafe_references(text):
    """Tags in HyperPyYAML ``text`` that fall outside the allow-list, as
    "line N: tag" strings (empty when the file is safe to load).

    >>> unsafe_references("model: !new:speechbrain_tdy.lobes.ResNet34\\n  n_mels: 40\\n")
    []
    >>> unsafe_references("x: !apply:os.system ['touch /tmp/owned']\\n")
    ['line 1: !apply:os.system']
    """
    found = [(number, "%TAG directive") for number, line in enumerate(text.splitlines(), start=1) if line.startswith("%")]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        return [f"not valid YAML ({error})"]
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if not _allowed(node.tag):
            found.append((node.start_mark.line + 1, node.tag))
        if isinstance(node, yaml.MappingNode):
            stack.extend(item for pair in node.value for item in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return [f"line {number}: {tag}" for number, tag in sorted(found)]


def _allowed(tag):
    if not tag.startswith("!"):
        return tag in YAML_TYPES
    if tag.startswith(REFUSED_TAGS):
        return False
    for prefix in OBJECT_TAGS:
        if tag.startswith(prefix):
            return tag[len(prefix) :].startswith(ALLOWED_OBJECTS)
    return True  # !ref, !copy, !tuple, !PLACEHOLDER: no code


def check_hparams_file(path):
    """Raise UnsafeHyperparamsError naming ``path`` and every disallowed tag."""
    with open(path, encoding="utf-8") as stream:
        problems = unsafe_references(stream.read())
    if problems:
        raise UnsafeHyperparamsError(
            f"{path} references objects outside the allow-list ({', '.join(ALLOWED_OBJECTS)}): "
            + "; ".join(problems)
            + ". Loading HyperPyYAML runs the code it names; pass trust_remote_code=True "
            "only if you trust the source of this file."
        )
