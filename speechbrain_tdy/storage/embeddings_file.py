"""Embeddings files: one .npz, or a folder of .npy, written batch by batch and resumable."""
import io
from pathlib import Path

import numpy as np

from speechbrain_tdy.embedding.fingerprint import same_fingerprint
from speechbrain_tdy.storage.atomic import atomic_path


class NpzOutput:
    """OUT.npz: ``ids`` (n,), ``embeddings`` (n, dim) float32 and the model's
    ``fingerprint`` (dim,). Finished batches go to OUT.parts/ and are merged
    into OUT (with what OUT held before) by :meth:`close`."""

    def __init__(self, path, fingerprint):
        self.path, self.fingerprint = Path(path), fingerprint
        stem = self.path.name[: -len(".npz")]
        self.parts = self.path.with_name(stem + ".parts")
        self.report = self.path.with_name(stem + ".bad_files.txt")

    def finished(self):
        """id -> embedding of everything OUT and OUT.parts/ hold."""
        done = {}
        for file in ([self.path] if self.path.is_file() else []) + self._parts():
            done.update(read_embeddings(file, self.fingerprint))
        return done

    def write(self, ids, embeddings):
        """Save one finished batch: ids (n,), embeddings (n, dim)."""
        self.parts.mkdir(parents=True, exist_ok=True)
        parts = self._parts()
        number = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
        save_embeddings(self.parts / f"batch-{number:07d}.npz", ids, embeddings, self.fingerprint)

    def close(self, order):
        """Merge OUT and the finished batches into OUT, the ids of ``order`` first."""
        done = self.finished()
        ids = [i for i in order if i in done] + sorted(set(done) - set(order))
        if ids:
            save_embeddings(self.path, ids, np.stack([done[i] for i in ids]), self.fingerprint)
        for part in self._parts():
            part.unlink()
        if self.parts.is_dir():
            self.parts.rmdir()

    def _parts(self):
        return sorted(self.parts.glob("batch-*.npz"))


class NpyFolderOutput:
    """OUT/<id>.npy (dim,) float32 per utterance (ids with ``/`` in subfolders)
    and the model's fingerprint in OUT/.fingerprint.npy."""

    def __init__(self, path, fingerprint, utterances):
        self.path, self.fingerprint = Path(path), fingerprint
        self.report = self.path / "bad_files.txt"
        for utterance in utterances:
            parts = Path(utterance.id).parts
            if Path(utterance.id).is_absolute() or ".." in parts or not parts:
                raise ValueError(f"{utterance.source}: id {utterance.id!r} cannot be a file name below {self.path}; "
                                 "write to a .npz file instead")
        stored = self.path / ".fingerprint.npy"
        if stored.is_file() and not same_fingerprint(np.load(stored, allow_pickle=False), fingerprint):
            raise ValueError(f"{self.path} holds embeddings of another model; give another OUT")
        self.utterances = utterances

    def finished(self):
        """id -> None for every utterance whose file exists."""
        return {u.id: None for u in self.utterances if (self.path / f"{u.id}.npy").is_file()}

    def write(self, ids, embeddings):
        """Save one finished batch, one file per utterance."""
        self.path.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path / ".fingerprint.npy") as partial:
            partial.write_bytes(npy_bytes(self.fingerprint))
        for utt_id, embedding in zip(ids, embeddings):
            target = self.path / f"{utt_id}.npy"
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as partial:
                partial.write_bytes(npy_bytes(embedding))

    def close(self, order):
        """Nothing to merge: every file is in place once written."""


def npy_bytes(array):
    """``array`` as the bytes of a float32 .npy file."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32))
    return buffer.getvalue()


def save_embeddings(path, ids, embeddings, fingerprint):
    """Write an embeddings .npz atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, ids=np.array(ids, dtype=str), embeddings=np.asarray(embeddings, dtype=np.float32),
             fingerprint=np.asarray(fingerprint, dtype=np.float32))
    with atomic_path(path) as partial:
        partial.write_bytes(buffer.getvalue())


def read_embeddings(path, fingerprint=None):
    """id -> embedding (dim,) of an embeddings .npz (no pickle). ValueError
    naming the file if it is not one, or if ``fingerprint`` is given and the
    file was written by another model."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            ids, embeddings, stored = arrays["ids"], arrays["embeddings"], arrays["fingerprint"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: not an embeddings file of speechbrain_tdy.embed ({error})") from error
    if ids.ndim != 1 or embeddings.ndim != 2 or len(ids) != len(embeddings):
        raise ValueError(f"{path}: ids {ids.shape} and embeddings {embeddings.shape} do not match")
    if fingerprint is not None and not same_fingerprint(stored, fingerprint):
        raise ValueError(f"{path} holds embeddings of another model; give another OUT")
    return dict(zip(ids.tolist(), embeddings))
