"""Speaker galleries: enrolled speakers for identification.

A speaker is the mean of the L2-normalised embeddings of its recordings and
their number, so enrolling more recordings later updates the mean exactly.

A gallery is a folder holding ``gallery.json`` (names, recording counts, the
embedding size) and ``embeddings-<sha256>.npz`` (the means as a float32
matrix, and the enrolling model's ``fingerprint()``, its embedding of a fixed
probe signal, to refuse a gallery enrolled with another model). Nothing is
pickled. Files are written by :mod:`speechbrain_tdy.storage.atomic`'s rule
(fresh temporary names, then renames); ``gallery.json`` is renamed last and
names the matrix by its checksum, so a killed command leaves the previous
gallery intact. ``gallery.json`` also lists, with their checksums, the
matrices a save wrote that the gallery no longer uses (``unused_files``):
before writing a new matrix a save lists it there, and after the new index
is in place it deletes them, so a save that replaces a gallery, killed at any
point, leaves no matrix behind that the next save does not delete (the first
save into a folder has no index to list it in yet); no other file is ever
deleted.
One command at a time changes a gallery: it holds ``gallery.lock`` in the
folder (:meth:`SpeakerGallery.editing`). In Python::

    model = TDYSpeakerRecognition.from_hparams(source="my_model")
    model.gallery = SpeakerGallery.load("speakers")     # or a new SpeakerGallery()
    model.enroll("alice", ["alice1.wav", "alice2.wav"])
    names, values = model.identify("who.wav", top_k=3)   # posteriors, or scores (see identify)
    model.gallery.save("speakers")

The command line is :mod:`speechbrain_tdy.cli.gallery`.
"""
import contextlib
import hashlib
import io
import json
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import torch

from speechbrain_tdy.storage.atomic import (
    Replaceable,
    check_destination,
    exclusive_lock,
    write_bytes_atomically,
    write_text_atomically,
)
from speechbrain_tdy.storage.checks import checked_number
from speechbrain_tdy.storage.reading import inflated_size, parse_json, read_bytes, read_text

#: The name ``identify`` gives to a recording that matches no enrolled speaker.
UNKNOWN = "unknown"
GALLERY_FILE = "gallery.json"
LOCK_FILE = "gallery.lock"
FORMAT = "speechbrain-tdy speaker gallery 1"
#: Largest gallery.json read (a million speakers take about 60 MB).
MAX_INDEX_BYTES = 128 * 1024 * 1024
#: Largest embedding size a gallery may hold (as the model folders' ``emb_dim``).
MAX_DIM = 8192
#: Bytes of a matrix file beyond its float32 values (.npy headers, zip records).
MATRIX_OVERHEAD_BYTES = 64 * 1024


class GalleryError(ValueError):
    """A gallery file that cannot be used, with its path and the reason."""


class SpeakerGallery:
    """Enrolled speakers: name -> mean of L2-normalised embeddings (dim,) and
    the number of recordings it averages.

    Example
    -------
    >>> gallery = SpeakerGallery()
    >>> gallery.add("alice", torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    >>> gallery.add("alice", torch.tensor([[1.0, 0.0]]))
    >>> gallery.names, gallery.recordings("alice"), gallery.means()
    (['alice'], 3, tensor([[0.6667, 0.3333]]))
    """

    def __init__(self):
        self._means, self._counts = {}, {}
        #: ``fingerprint()`` (dim,) of the model that enrolled the speakers.
        self.fingerprint = None

    @property
    def names(self):
        """Enrolled names, in enrolment order."""
        return list(self._means)

    @property
    def dim(self):
        """Embedding size, or None for an empty gallery without a fingerprint."""
        if self.fingerprint is not None:
            return self.fingerprint.shape[0]
        return next(iter(self._means.values())).shape[0] if self._means else None

    def __len__(self):
        return len(self._means)

    def __contains__(self, name):
        return name in self._means

    def recordings(self, name):
        """Number of recordings enrolled for ``name``."""
        return self._counts[self._known(name)]

    def add(self, name, embeddings):
        """Enrol ``embeddings`` (n, dim), L2-normalised, for ``name`` (new or known)."""
        check_speaker_name(name, "A speaker name")
        embeddings = torch.as_tensor(embeddings, dtype=torch.float32).detach().cpu()
        if embeddings.dim() != 2 or embeddings.shape[0] == 0:
            raise ValueError(f"Expected embeddings of shape (n, dim) with n >= 1, got {tuple(embeddings.shape)}")
        if self.dim is not None and embeddings.shape[1] != self.dim:
            raise ValueError(f"This gallery holds {self.dim}-dimensional embeddings, got {embeddings.shape[1]}")
        count = self._counts.get(name, 0)
        total = self._means.get(name, torch.zeros(embeddings.shape[1])) * count + embeddings.sum(dim=0)
        self._counts[name] = count + embeddings.shape[0]
        self._means[name] = total / self._counts[name]

    def remove(self, name):
        """Forget ``name``."""
        del self._means[self._known(name)], self._counts[name]

    def means(self):
        """Mean embeddings (n_speakers, dim), in the order of :attr:`names`."""
        if not self._means:
            return torch.zeros(0, self.dim or 0)
        return torch.stack(list(self._means.values()))

    def save(self, folder):
        """Write the gallery to ``folder`` (created if needed) without ever
        leaving a half-written gallery there, holding the folder's lock
        (LockedError if another command holds it). Of the files already
        there, only ``gallery.json`` (if it is a gallery's) and the matrices
        it names with their checksums are replaced or deleted."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(folder / LOCK_FILE, "gallery command"):
            self._write(folder)

    @classmethod
    @contextlib.contextmanager
    def editing(cls, folder, create=True):
        """Context manager for one change of the gallery in ``folder``: holds
        its lock (a second editor gets LockedError at once, so no change is
        lost), yields the gallery and saves it if the block ends without an
        error. A folder without a gallery gives a new one with ``create``,
        else FileNotFoundError."""
        folder = Path(folder)
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        elif not (folder / GALLERY_FILE).is_file():
            raise _missing(folder)
        with exclusive_lock(folder / LOCK_FILE, "gallery command"):
            gallery = cls.load(folder) if (folder / GALLERY_FILE).is_file() else cls()
            yield gallery
            gallery._write(folder)

    def _write(self, folder):
        """The save itself, the lock held: intent, matrix, index, clean-up (see the module docstring)."""
        index_path = folder / GALLERY_FILE
        check_destination(index_path, INDEX)
        previous = json.loads(index_path.read_text(encoding="utf-8")) if index_path.is_file() else None
        buffer = io.BytesIO()
        arrays = {"means": self.means().numpy().astype(np.float32)}
        if self.fingerprint is not None:
            arrays["fingerprint"] = self.fingerprint.numpy().astype(np.float32)
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        matrix = f"embeddings-{digest[:16]}.npz"
        unused = _unused_files(folder, previous, keep=matrix)
        if previous is not None and previous["embeddings_file"] != matrix:
            # Listed before it exists: a save killed before the new index names it leaves a file the next one deletes.
            intent = dict(previous, unused_files=unused + [{"file": matrix, "sha256": digest}])
            write_text_atomically(index_path, json.dumps(intent, indent=2) + "\n", INDEX)
        write_bytes_atomically(folder / matrix, data, _matrix_with_digest(digest))
        index = {
            "format": FORMAT,
            "dim": self.dim,
            "embeddings_file": matrix,
            "sha256": digest,
            "speakers": [{"name": name, "recordings": self._counts[name]} for name in self.names],
            "unused_files": unused,
        }
        write_text_atomically(index_path, json.dumps(index, indent=2) + "\n", INDEX)
        for entry in unused:
            _delete_if_unchanged(folder / entry["file"], entry["sha256"])

    @classmethod
    def load(cls, folder):
        """Read a gallery written by :meth:`save`; GalleryError naming the file
        and the problem for anything else (names :meth:`add` refuses, counts
        that are not whole numbers, means or a fingerprint of another size than
        the gallery's ``dim`` or not finite)."""
        path = Path(folder) / GALLERY_FILE
        speakers, dim, matrix, data = _read_index(folder)
        means, fingerprint = _read_matrix(matrix, data, len(speakers), dim)
        gallery = cls()
        gallery.fingerprint = None if fingerprint is None else torch.from_numpy(fingerprint)
        for (name, count), mean in zip(speakers, torch.from_numpy(means)):
            try:
                check_speaker_name(name, "speaker name")
                checked_number(count, f"speaker {name!r}: recordings", int, 1, 10**9)
            except ValueError as error:
                raise GalleryError(f"{path}: {error}") from None
            if name in gallery:
                raise GalleryError(f"{path}: speaker {name!r} is listed twice")
            gallery._means[name], gallery._counts[name] = mean, count
        return gallery

    def _known(self, name):
        if name not in self._means:
            raise KeyError(f"No speaker {name!r} in the gallery (enrolled: {', '.join(self.names) or 'none'})")
        return name


def check_speaker_name(name, what):
    """ValueError unless ``name`` is a printable one-line name, not ``unknown``:
    names are printed one per line by ``identify``, so a tab, newline or
    terminal escape in one could forge output."""
    if not isinstance(name, str) or not name.strip() or name != name.strip() or len(name) > 256:
        raise ValueError(f"{what} must be a non-empty string of at most 256 characters without surrounding "
                         f"spaces, got {name!r:.80}")
    if any(unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp") for char in name):
        raise ValueError(f"{what} must not hold control characters (tabs, newlines, escapes), got {name!r:.80}")
    if name == UNKNOWN:
        raise ValueError(f"{UNKNOWN!r} is what identify() answers for unknown speakers; pick another name")


def _read_index(folder):
    """(speakers [(name, recordings)], dim, matrix path, matrix bytes) of the
    gallery in ``folder``, read with bounded work (at most :data:`MAX_INDEX_BYTES`
    of JSON, a matrix of at most the size its speakers need) and the matrix
    checked against the checksum gallery.json holds; FileNotFoundError or
    GalleryError naming the file and the problem."""
    path = Path(folder) / GALLERY_FILE
    if not path.exists():
        raise _missing(folder)
    text = read_text(path, "a gallery file", MAX_INDEX_BYTES, GalleryError)
    try:
        index = parse_json(text, GALLERY_FILE)
        speakers = [(entry["name"], entry["recordings"]) for entry in index["speakers"]]
        matrix, digest = Path(folder) / index["embeddings_file"], index["sha256"]
        dim = index["dim"] if index["dim"] is None else checked_number(index["dim"], "dim", int, 1, MAX_DIM)
    except (ValueError, KeyError, TypeError) as error:
        raise GalleryError(f"{path}: not a speaker gallery ({type(error).__name__}: {error})") from error
    if index.get("format") != FORMAT:
        raise GalleryError(f"{path}: not a speaker gallery of this version (format {index.get('format')!r})")
    if matrix.parent != Path(folder) or not matrix.name.startswith("embeddings-"):
        raise GalleryError(f"{path}: names {str(index['embeddings_file'])!r:.80} as its embeddings file; a gallery's "
                           "is an embeddings-*.npz in its own folder")
    if speakers and dim is None:
        raise GalleryError(f"{path}: lists speakers but no embedding size ('dim')")
    limit = (len(speakers) + 1) * (dim or 0) * 4 + MATRIX_OVERHEAD_BYTES  # the means and the fingerprint
    try:
        data = read_bytes(matrix, "a gallery's embeddings file", limit, GalleryError)
    except OSError as error:
        raise GalleryError(f"{path} names {matrix.name}, which cannot be read: {error}") from error
    if hashlib.sha256(data).hexdigest() != digest:
        raise GalleryError(f"{matrix}: checksum differs from the one in {path}; the file was changed or damaged")
    return speakers, dim, matrix, data


def _read_matrix(matrix, data, n_speakers, dim):
    """(means (n_speakers, dim), fingerprint (dim,) or None) float32 arrays of
    the .npz bytes ``data``, its zip entries bounded before they are inflated;
    GalleryError naming ``matrix`` for anything else."""
    try:
        inflated = inflated_size(io.BytesIO(data), "a gallery's embeddings file", matrix)
        if inflated is None or inflated > len(data) + MATRIX_OVERHEAD_BYTES:  # save() stores its arrays uncompressed
            raise ValueError(f"an .npz archive of at most {len(data) + MATRIX_OVERHEAD_BYTES:,} inflated bytes "
                             f"expected, got {'none' if inflated is None else f'{inflated:,} bytes'}")
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            if not {"means"} <= set(arrays.files) <= {"means", "fingerprint"}:
                raise ValueError(f"expected arrays 'means' and 'fingerprint', found {arrays.files}")
            means, fingerprint = arrays["means"], arrays["fingerprint"] if "fingerprint" in arrays else None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise GalleryError(f"{matrix}: not a gallery's embeddings file ({error})") from error
    shape = (n_speakers, dim or 0)
    if means.shape != shape or means.dtype != np.float32 or not np.isfinite(means).all():
        raise GalleryError(f"{matrix}: expected {shape[0]} finite float32 means of dimension {shape[1]} (the "
                           f"gallery's 'dim'), got {means.dtype} values of shape {means.shape}")
    if fingerprint is not None and (fingerprint.shape != (dim,) or fingerprint.dtype != np.float32
                                    or not np.isfinite(fingerprint).all()):
        raise GalleryError(f"{matrix}: expected a finite float32 model fingerprint of dimension {dim}, got "
                           f"{fingerprint.dtype} values of shape {fingerprint.shape}: not one model's gallery")
    return means, fingerprint


def _missing(folder):
    return FileNotFoundError(f"{Path(folder) / GALLERY_FILE}: no such gallery file (create a gallery by enrolling "
                             "a speaker)")


def _is_index(path):
    try:
        index = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(index, dict) and index.get("format") == FORMAT and isinstance(index.get("embeddings_file"), str)


#: The gallery.json a save may replace: one of this format.
INDEX = Replaceable(f"a speaker gallery index (format {FORMAT!r})", _is_index)


def _matrix_with_digest(digest):
    """The matrix a save may replace: a file of the very same content (the same save again)."""
    return Replaceable(f"the gallery matrix of checksum {digest}",
                       lambda path: hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest)


def _unused_files(folder, index, keep):
    """[{"file", "sha256"}] that the gallery ``index`` (a dict, or None) names
    as no longer used, with its matrix; those still present, except ``keep``."""
    if index is None:
        return []
    listed = index.get("unused_files")
    entries = [{"file": index["embeddings_file"], "sha256": index.get("sha256")}] + (
        listed if isinstance(listed, list) else [])
    named = {}
    for entry in entries:
        name = entry.get("file") if isinstance(entry, dict) else None
        if isinstance(name, str) and name != keep and Path(name).name == name and (folder / name).is_file():
            named.setdefault(name, {"file": name, "sha256": entry.get("sha256")})
    return list(named.values())


def _delete_if_unchanged(path, digest):
    """Delete ``path`` if it is a plain file whose checksum is ``digest`` (what a save wrote there)."""
    if path.is_symlink() or not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
        return
    path.unlink()
