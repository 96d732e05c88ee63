"""Embeddings files: one .npz, or a folder of .npy, written batch by batch and resumable.

Files are written by :mod:`speechbrain_tdy.storage.atomic`'s rule: an existing
OUT is used (resumed, merged into) only if its content proves it an output of
``speechbrain-tdy embed`` for the same model (:func:`check_embeddings_file`,
:func:`check_embeddings_folder`); anything else is refused before any work.
"""
import io
import os
import time
from pathlib import Path

import numpy as np

from speechbrain_tdy.embedding.fingerprint import same_fingerprint
from speechbrain_tdy.storage.atomic import (
    Replaceable,
    UnsafeOutputError,
    check_destination,
    write_bytes_atomically,
)

#: The arrays of an embeddings .npz.
KEYS = ("ids", "embeddings", "fingerprint")
FINGERPRINT_FILE = ".fingerprint.npy"


def lock_path(out):
    """The lock file that one ``embed`` run into ``out`` holds: ``OUT.lock`` beside OUT."""
    out = Path(out)
    return out.with_name(out.name + ".lock")


class NpzOutput:
    """OUT.npz: ``ids`` (n,), ``embeddings`` (n, dim) float32 and the model's
    ``fingerprint`` (dim,). Finished batches go to OUT.parts/ under unique
    names and are merged into OUT (with what OUT held before) by :meth:`close`,
    which then deletes the part files it merged."""

    def __init__(self, path, fingerprint):
        self.path, self.fingerprint = Path(path), fingerprint
        stem = self.path.name[: -len(".npz")]
        self.parts = self.path.with_name(stem + ".parts")
        self.report = self.path.with_name(stem + ".bad_files.txt")
        self.replace = Replaceable("an embeddings file of speechbrain-tdy embed from this model",
                                   lambda path: check_embeddings_file(path, fingerprint))
        check_destination(self.path, self.replace)
        check_destination(self.parts, Replaceable("the folder of OUT's finished batches", Path.is_dir), folder=True)

    def finished(self):
        """id -> embedding of everything OUT and OUT.parts/ hold."""
        return {utt_id: embedding for _, embeddings in self._stored() for utt_id, embedding in embeddings.items()}

    def write(self, ids, embeddings):
        """Save one finished batch: ids (n,), embeddings (n, dim), under a name no other batch has."""
        self.parts.mkdir(parents=True, exist_ok=True)
        name = f"batch-{time.time_ns()}-{os.getpid()}.npz"
        write_bytes_atomically(self.parts / name, npz_bytes(ids, embeddings, self.fingerprint))

    def close(self, order):
        """Merge OUT and the finished batches into OUT, the ids of ``order`` first;
        then delete the part files merged (each one read and checked as ours)."""
        stored = self._stored()
        done = {utt_id: embedding for _, embeddings in stored for utt_id, embedding in embeddings.items()}
        ids = [i for i in order if i in done] + sorted(set(done) - set(order))
        if ids:
            save_embeddings(self.path, ids, np.stack([done[i] for i in ids]), self.fingerprint, self.replace)
        for file, _ in stored:
            if file != self.path:
                file.unlink()
        if self.parts.is_dir() and not any(self.parts.iterdir()):
            self.parts.rmdir()

    def _stored(self):
        """[(file, {id: embedding})] of OUT and each finished batch; ValueError
        naming a file there that is not an embeddings file of this model."""
        parts = sorted(self.parts.glob("batch-*.npz")) if self.parts.is_dir() else []
        return [(file, read_embeddings(file, self.fingerprint))
                for file in ([self.path] if self.path.is_file() else []) + parts]


class NpyFolderOutput:
    """OUT/<id>.npy (dim,) float32 per utterance (ids with ``/`` in subfolders)
    and the model's fingerprint in OUT/.fingerprint.npy. Existing files are
    kept (they count as done); new ones are created, never replaced."""

    def __init__(self, path, fingerprint, utterances):
        self.path, self.fingerprint = Path(path), fingerprint
        self.report = self.path / "bad_files.txt"
        for utterance in utterances:
            parts = Path(utterance.id).parts
            if Path(utterance.id).is_absolute() or ".." in parts or not parts:
                raise ValueError(f"{utterance.source}: id {utterance.id!r} cannot be a file name below {self.path}; "
                                 "write to a .npz file instead")
        check_destination(self.path, Replaceable(
            f"a folder of speechbrain-tdy embed from this model (with its {FINGERPRINT_FILE})",
            lambda folder: check_embeddings_folder(folder, fingerprint)), folder=True)
        self.utterances = utterances

    def finished(self):
        """id -> None for every utterance whose file exists."""
        return {u.id: None for u in self.utterances if (self.path / f"{u.id}.npy").is_file()}

    def write(self, ids, embeddings):
        """Save one finished batch, one new file per utterance."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / FINGERPRINT_FILE).is_file():
            write_bytes_atomically(self.path / FINGERPRINT_FILE, npy_bytes(self.fingerprint))
        root = self.path.resolve()
        for utt_id, embedding in zip(ids, embeddings):
            target = self.path / f"{utt_id}.npy"
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.parent.resolve() != root / Path(utt_id).parent:
                raise UnsafeOutputError(f"{target.parent} is or lies in a symbolic link inside {self.path}; "
                                        "nothing is written through it")
            write_bytes_atomically(target, npy_bytes(embedding))

    def close(self, order):
        """Nothing to merge: every file is in place once written."""


def check_embeddings_file(path, fingerprint):
    """True if ``path`` is an embeddings .npz (our keys) written with the model
    of ``fingerprint``; ValueError naming the file and what is wrong otherwise.
    Reads the fingerprint only."""
    with _open_embeddings(path) as arrays:
        _check_fingerprint(path, arrays["fingerprint"], fingerprint)
    return True


def check_embeddings_folder(folder, fingerprint):
    """True if ``folder`` holds the ``.fingerprint.npy`` of the model of
    ``fingerprint``; ValueError naming the folder otherwise."""
    stored = Path(folder) / FINGERPRINT_FILE
    if not stored.is_file():
        raise ValueError(f"{folder} holds files but no {FINGERPRINT_FILE}: not an output folder of "
                         "speechbrain-tdy embed; give a new or empty folder")
    try:
        saved = np.load(stored, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{stored}: not a fingerprint of speechbrain-tdy embed ({error})") from error
    _check_fingerprint(folder, saved, fingerprint)
    return True


def npy_bytes(array):
    """``array`` as the bytes of a float32 .npy file."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32))
    return buffer.getvalue()


def npz_bytes(ids, embeddings, fingerprint):
    """The bytes of an embeddings .npz: ids (n,), embeddings (n, dim), fingerprint (dim,)."""
    buffer = io.BytesIO()
    np.savez(buffer, ids=np.array(ids, dtype=str), embeddings=np.asarray(embeddings, dtype=np.float32),
             fingerprint=np.asarray(fingerprint, dtype=np.float32))
    return buffer.getvalue()


def save_embeddings(path, ids, embeddings, fingerprint, replace=None):
    """Write an embeddings .npz atomically; an existing ``path`` only where ``replace`` allows."""
    write_bytes_atomically(path, npz_bytes(ids, embeddings, fingerprint), replace)


def read_embeddings(path, fingerprint=None):
    """id -> embedding (dim,) of an embeddings .npz (no pickle). ValueError
    naming the file if it is not one, or if ``fingerprint`` is given and the
    file was written by another model."""
    with _open_embeddings(path) as arrays:
        ids, embeddings, stored = arrays["ids"], arrays["embeddings"], arrays["fingerprint"]
    if ids.ndim != 1 or embeddings.ndim != 2 or len(ids) != len(embeddings):
        raise ValueError(f"{path}: ids {ids.shape} and embeddings {embeddings.shape} do not match")
    if fingerprint is not None:
        _check_fingerprint(path, stored, fingerprint)
    return dict(zip(ids.tolist(), embeddings))


def _open_embeddings(path):
    """The open arrays (NpzFile, no pickle) of the embeddings file ``path``;
    ValueError naming the file if it is not one."""
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not an embeddings file of speechbrain-tdy embed ({error})") from error
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not an embeddings file of speechbrain-tdy embed (one array, not an .npz)")
    missing = sorted(set(KEYS) - set(arrays.files))
    if missing:
        arrays.close()
        raise ValueError(f"{path}: not an embeddings file of speechbrain-tdy embed (no {', '.join(missing)})")
    return arrays


def _check_fingerprint(where, stored, fingerprint):
    if not same_fingerprint(stored, fingerprint):
        raise ValueError(f"{where} holds embeddings of another model; give another OUT")
