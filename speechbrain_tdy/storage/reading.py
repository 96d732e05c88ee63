"""Reading files a user or a downloaded folder gives: bounded before any byte is read.

The counterpart of :mod:`speechbrain_tdy.storage.atomic` for reading. Every
file the package opens on a user's behalf (audio, input and trial lists,
model-folder files, galleries, run folders) is first looked at with
``os.stat``: only a regular file is opened, so a FIFO, a device or a socket
named where a file is expected is refused instead of blocking or streaming
forever, and its size is checked before it is read. Compressed containers
(PyTorch checkpoints and ``.npz`` files are zip archives) are bounded by the
sizes their central directory declares, before anything is inflated
(:func:`inflated_size`). YAML files are composed with bounded size, depth and
node count, and without aliases unless asked; JSON files without deep nesting.
"""
import json
import os
import stat
import zipfile

import yaml

#: Largest YAML file read (model folders' and runs' hyperparams.yaml, CKPT.yaml).
MAX_YAML_BYTES = 256 * 1024
#: Most YAML nodes in one file (aliases count once).
MAX_YAML_NODES = 20_000
#: Deepest nesting of mappings and sequences (model folders and runs use 3).
MAX_YAML_DEPTH = 32

#: What a file that is not a regular one is, by ``stat`` type.
SPECIAL_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                 (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))


def file_kind(mode):
    """What a ``st_mode`` is, in words, for one that is not a regular file.

    >>> file_kind(stat.S_IFIFO)
    'a FIFO'
    """
    return next((kind for test, kind in SPECIAL_KINDS if test(mode)), "a special file")


def check_regular_file(path, what="a file", max_bytes=None, error=ValueError):
    """The size in bytes of ``path``, a regular file (links followed) of at
    most ``max_bytes``; FileNotFoundError, or ``error`` naming the file, what
    it is and ``what`` was expected, without opening it.

    >>> check_regular_file("/dev/null", "a trial list")
    Traceback (most recent call last):
    ...
    ValueError: /dev/null: a device, not a trial list
    """
    try:
        info = os.stat(path)
    except FileNotFoundError as missing:
        kind = "a broken symbolic link" if os.path.islink(path) else "no such file"
        raise FileNotFoundError(f"{path}: {kind}, not {what}") from missing
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: {file_kind(info.st_mode)}, not {what}")
    if max_bytes is not None and info.st_size > max_bytes:
        raise error(f"{path}: {info.st_size:,} bytes, over the {max_bytes:,}-byte limit for {what}")
    return info.st_size


def read_bytes(path, what, max_bytes, error=ValueError):
    """The bytes of ``path`` (see :func:`check_regular_file`), never more than
    ``max_bytes`` even if the file grows while it is read."""
    check_regular_file(path, what, max_bytes, error)
    with open(path, "rb") as stream:
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise error(f"{path}: over the {max_bytes:,}-byte limit for {what} (it grew while it was read)")
    return data


def read_text(path, what, max_bytes, error=ValueError):
    """UTF-8 text (a byte-order mark is dropped) of ``path``, bounded as :func:`read_bytes`."""
    data = read_bytes(path, what, max_bytes, error)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as bad:
        raise error(f"{path}: not UTF-8 text ({bad.reason} at byte {bad.start}), so not {what}") from bad


def parse_json(text, where):
    """A JSON document; ValueError naming ``where`` for malformed JSON and for
    nesting too deep to parse (a RecursionError otherwise). Numbers are
    checked by their readers (see :func:`~speechbrain_tdy.storage.checks.checked_number`).

    >>> parse_json("[" * 100_000, "gallery.json")
    Traceback (most recent call last):
    ...
    ValueError: gallery.json: nested too deeply to be a JSON file of this package
    """
    try:
        return json.loads(text)
    except RecursionError as error:
        raise ValueError(f"{where}: nested too deeply to be a JSON file of this package") from error
    except ValueError as error:
        raise ValueError(f"{where}: not a valid JSON file: {error}") from error


def read_json(path, what, max_bytes):
    """The JSON document of ``path``: :func:`read_text` then :func:`parse_json`."""
    return parse_json(read_text(path, what, max_bytes), path)


def inflated_size(source, what, where=None):
    """Bytes the entries of the zip archive ``source`` (a path or a binary
    file object) inflate to in all, from the sizes its central directory
    declares, before anything is inflated; None if ``source`` is not a zip
    archive (PyTorch files and ``.npz`` files are). ValueError naming
    ``where`` (default ``source``) for a damaged one."""
    if not zipfile.is_zipfile(source):
        return None
    try:
        with zipfile.ZipFile(source) as archive:
            return sum(entry.file_size for entry in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ValueError(f"{where or source}: a damaged zip archive ({error}), not {what}") from error


def compose_yaml(path, what, max_bytes=MAX_YAML_BYTES, allow_aliases=False, error=ValueError):
    """The YAML node tree of ``path``, a mapping at the top level, read with
    bounded work: a regular file of at most ``max_bytes``, plain YAML
    (PyYAML's safe composer), at most :data:`MAX_YAML_NODES` nodes nested at most
    :data:`MAX_YAML_DEPTH` deep, and no aliases unless ``allow_aliases`` (an
    alias is composed once, so the tree stays linear in the file; its
    expansion is bounded by the reader of the values, see
    :func:`~speechbrain_tdy.storage.safe_hparams.plain_values`).
    ``error`` (a ValueError class) names the file, and the line where there is one.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "CKPT.yaml")
    >>> _ = open(path, "w").write("a: " + "[" * 100 + "]" * 100)
    >>> compose_yaml(path, "a checkpoint's CKPT.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...CKPT.yaml, line 1: nested more than 32 deep, too deep for a checkpoint's CKPT.yaml
    """
    text = read_text(path, what, max_bytes, error)
    loader = _BoundedLoader(text, path, what, allow_aliases, error)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as bad:
        raise error(f"{path}: not a valid YAML file, so not {what} ({bad})") from bad
    finally:
        loader.dispose()
    if not isinstance(root, yaml.MappingNode):
        raise error(f"{path}: not {what}: it holds no mapping of names to values")
    return root


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing deep nesting, too many nodes and (unless
    allowed) aliases as it composes, before any of them is built."""

    def __init__(self, text, path, what, allow_aliases, error):
        super().__init__(text)
        self.path, self.what, self.allow_aliases, self.error = path, what, allow_aliases, error
        self.depth = self.nodes = 0

    def compose_node(self, parent, index):
        line = self.peek_event().start_mark.line + 1
        if self.check_event(yaml.AliasEvent) and not self.allow_aliases:
            raise self.error(f"{self.path}, line {line}: YAML aliases are refused in {self.what}")
        self.depth, self.nodes = self.depth + 1, self.nodes + 1
        if self.depth > MAX_YAML_DEPTH:
            raise self.error(f"{self.path}, line {line}: nested more than {MAX_YAML_DEPTH} deep, too deep for "
                             f"{self.what}")
        if self.nodes > MAX_YAML_NODES:
            raise self.error(f"{self.path}, line {line}: more than {MAX_YAML_NODES:,} YAML nodes, too many for "
                             f"{self.what}")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
