"""Crash-safe checkpoints.

SpeechBrain's ``Checkpointer`` writes a checkpoint's ``CKPT.yaml`` first and its
parameter files after, in the final folder: a process killed in between leaves
a folder that looks complete and fails to load. :class:`AtomicCheckpointer`
writes each checkpoint into a hidden staging folder and renames it into place
once every file is written, so a checkpoint folder either is complete or does
not exist, and a killed run resumes from the last complete checkpoint.
"""
import logging
import os

from speechbrain.utils.checkpoints import CKPT_PREFIX, METAFNAME, PARAMFILE_EXT, Checkpoint, Checkpointer
from speechbrain.utils.distributed import if_main_process

STAGING_PREFIX = ".partial-"


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
