"""Crash-safe checkpoints.

SpeechBrain's ``Checkpointer`` writes a checkpoint's ``CKPT.yaml`` first and its
parameter files after, in the final folder: a process killed in between leaves
a folder that looks complete and fails to load. :class:`AtomicCheckpointer`
writes each checkpoint into a hidden staging folder and renames it into place
once every file is written, so a checkpoint folder either is complete or does
not exist, and a killed run resumes from the last complete checkpoint.

A checkpoint's ``CKPT.yaml`` (its metadata, which ranks checkpoints and goes
into ``results.json`` and model cards) is read by :func:`read_checkpoint_meta`,
with bounded work and checked values, wherever this package lists checkpoints.
"""
import logging
import os

import yaml
from speechbrain.utils.checkpoints import CKPT_PREFIX, METAFNAME, PARAMFILE_EXT, Checkpoint, Checkpointer
from speechbrain.utils.distributed import if_main_process

from speechbrain_tdy.storage.checks import checked_number
from speechbrain_tdy.storage.reading import compose_yaml

STAGING_PREFIX = ".partial-"
#: Largest CKPT.yaml read (SpeechBrain writes a few hundred bytes).
MAX_META_BYTES = 64 * 1024
#: Metadata this package reads as numbers (ranking, summaries).
NUMERIC_META = ("EER", "ErrorRate", "minDCF", "threshold", "temperature", "unixtime")


class AtomicCheckpointer(Checkpointer):
    """A SpeechBrain ``Checkpointer`` whose checkpoints appear atomically.

    Drop-in replacement (same arguments); use it in HyperPyYAML as
    ``checkpointer: !new:speechbrain_tdy.storage.checkpoints.AtomicCheckpointer``.

    Example
    -------
    >>> import tempfile, torch
    >>> folder = tempfile.mkdtemp()
    >>> checkpointer = AtomicCheckpointer(folder, {"model": torch.nn.Linear(2, 2)})
    >>> checkpointer.save_checkpoint().path.name.startswith("CKPT+")
    True
    """

    def _new_checkpoint_dirpath(self):
        return self._staged(super()._new_checkpoint_dirpath())

    def _custom_checkpoint_dirpath(self, name):
        return self._staged(super()._custom_checkpoint_dirpath(name))

    def _staged(self, final_dir):
        self._final_dir = final_dir
        return final_dir.with_name(STAGING_PREFIX + final_dir.name)

    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO):
        """Save into a staging folder, then rename it to its final name."""
        if if_main_process():
            self.remove_partial_checkpoints()
        checkpoint = super().save_checkpoint(meta=meta, end_of_epoch=end_of_epoch, name=name, verbosity=verbosity)
        if checkpoint is None:  # not the main process
            return None
        os.replace(checkpoint.path, self._final_dir)
        paramfiles = {key: self._final_dir / path.name for key, path in checkpoint.paramfiles.items()}
        return Checkpoint(self._final_dir, checkpoint.meta, paramfiles)

    @staticmethod
    def _construct_checkpoint_objects(checkpoint_dirs):
        """SpeechBrain's Checkpoint records of ``checkpoint_dirs``, their
        CKPT.yaml read by :func:`read_checkpoint_meta` instead of an unbounded ``yaml.load``."""
        return [Checkpoint(folder, read_checkpoint_meta(folder / METAFNAME),
                           {path.stem: path for path in folder.iterdir() if path.suffix == PARAMFILE_EXT})
                for folder in checkpoint_dirs]

    def remove_partial_checkpoints(self):
        """Delete staging folders left by a process killed while saving: a
        ``.partial-CKPT+...`` folder holding nothing but files a checkpoint of
        this checkpointer holds (``CKPT.yaml``, ``<recoverable>.ckpt``); any
        other folder of that pattern is left alone."""
        if not self.checkpoints_dir.is_dir():
            return
        names = {METAFNAME} | {name + PARAMFILE_EXT for name in self.recoverables}
        for path in self.checkpoints_dir.iterdir():
            if not path.name.startswith(f"{STAGING_PREFIX}{CKPT_PREFIX}+") or path.is_symlink() or not path.is_dir():
                continue
            entries = list(path.iterdir())
            if all(entry.name in names and entry.is_file() and not entry.is_symlink() for entry in entries):
                for entry in entries:
                    entry.unlink()
                path.rmdir()


def read_checkpoint_meta(path):
    """A checkpoint's ``CKPT.yaml`` as a dict of names to plain scalars, read
    with bounded work (:func:`~speechbrain_tdy.storage.reading.compose_yaml`:
    at most :data:`MAX_META_BYTES`, no aliases); the values of
    :data:`NUMERIC_META` must be finite numbers. ValueError naming the file and the
    key otherwise.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "CKPT.yaml"
    >>> _ = path.write_text("{end-of-epoch: true, EER: low}")
    >>> read_checkpoint_meta(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...CKPT.yaml: EER must be a finite number, got 'low'
    """
    root = compose_yaml(path, "a checkpoint's CKPT.yaml", MAX_META_BYTES)
    try:
        meta = yaml.constructor.SafeConstructor().construct_mapping(root, deep=True)
    except yaml.YAMLError as error:  # e.g. a key that is a list
        raise ValueError(f"{path}: not a checkpoint's metadata ({error})") from error
    for key, value in meta.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool, type(None))):
            raise ValueError(f"{path}: {key!r} must be a name with a plain value (number, text, true/false)")
    for key in NUMERIC_META:
        if meta.get(key) is not None:  # NaN would rank as neither better nor worse than any checkpoint
            checked_number(meta[key], f"{path}: {key}")
    return meta
