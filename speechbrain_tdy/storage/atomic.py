"""Writing files and folders: the one rule for every output of the package, the recipe and the tools.

* **A fresh temporary, then a rename.** Content is written under a new name in
  the destination's folder (``.NAME.XXXXXXXX.partial.EXT``, created with
  ``O_CREAT | O_EXCL | O_NOFOLLOW``, so never a name that exists or a link) and
  renamed into place: a reader sees the old file or the whole new one. On an
  error the temporary is removed; a killed process may leave it behind
  (hidden, marked ``partial``), and nothing removes such files by their
  pattern, since they may be another run's: delete them by hand.
* **The destination.** A symbolic link, or anything but a plain file (a
  folder for :func:`atomic_folder`), is refused, never followed or replaced.
  A destination that does not exist is claimed create-or-refuse (a hard link
  for a file, a rename for a folder), so a file that appears meanwhile is
  never replaced. An existing destination is replaced only where the writer
  passes a :class:`Replaceable`: a check that its *content* proves it to be a
  file of the writer's own format (an embeddings file with our keys and the
  same model, a gallery index of our format, a folder of model-folder files
  only). The check runs just before the rename (and before any work starts,
  to fail early); a replaced folder is first moved into a fresh private
  folder, checked there, and only the files the check accepted are deleted.
  Commands replace their own earlier outputs where that is their job (a
  resumed ``embed``, a gallery update, a rerun of ``verify.py``) and
  otherwise only when the user asks (``--overwrite``).
* **Nothing is deleted by a name pattern.** A writer removes the files it
  created or ones it proved to be its own, by name.
* **One writer at a time.** :func:`exclusive_lock` is a lock file in the
  manner of git's ``index.lock``: created with ``O_CREAT | O_EXCL``, removed
  only by the process that created it; a second command stops at once, with
  an error naming the lock and how to remove a stale one.

New files get the permissions ``open()`` would give them (``0o666`` or
``0o777`` less the umask).
"""
import contextlib
import errno
import os
import shutil
import socket
import stat
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


def _read_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _read_umask()


class OutputExistsError(FileExistsError):
    """The destination exists and may not be replaced; nothing was written there."""


class UnsafeOutputError(FileExistsError):
    """The destination, or the temporary file of a write, is a symbolic link; nothing was written there."""


class LockedError(FileExistsError):
    """Another process holds the lock of an output (or one was killed holding it)."""


@dataclass(frozen=True)
class Replaceable:
    """Which existing destination a writer may replace: ``check(path) -> bool``
    says whether the content of ``path`` proves it one of the writer's own
    files (or folders), or raises ValueError saying why it is not;
    ``description`` names such a file in errors ("an embeddings file of
    speechbrain-tdy embed")."""

    description: str
    check: Callable


def starts_with(header):
    """A :class:`Replaceable` check: the file begins with ``header`` (str, UTF-8),
    the first line a writer puts in its text files to know them again."""
    expected = header.encode("utf-8")

    def check(path):
        with open(path, "rb") as stream:
            return stream.read(len(expected)) == expected

    return check


def readable_by(read):
    """A :class:`Replaceable` check: ``read(path)``, a checked reader of the
    writer's format, accepts the file (raises neither ValueError nor OSError)."""

    def check(path):
        try:
            read(path)
        except (ValueError, OSError):
            return False
        return True

    return check


def check_destination(path, replace=None, folder=False):
    """Refuse ``path`` as a destination (before any work is done) unless it is
    absent or, with ``replace``, a plain file (``folder``: a real folder) that
    ``replace.check`` accepts; an empty folder counts as absent for a folder.
    Raises UnsafeOutputError (a link) or OutputExistsError naming ``path``."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise UnsafeOutputError(f"{path} is a symbolic link; give the path of a new {'folder' if folder else 'file'} "
                                "(links are neither followed nor replaced)")
    if folder and stat.S_ISDIR(mode) and not any(path.iterdir()):
        return
    if replace is None:
        raise OutputExistsError(f"{path} already exists; nothing was written there")
    if not (stat.S_ISDIR(mode) if folder else stat.S_ISREG(mode)) or not replace.check(path):
        raise OutputExistsError(f"{path} exists and is not {replace.description}, so it was left as it was; "
                                "move it away or write elsewhere")


@contextlib.contextmanager
def atomic_path(path, replace=None):
    """Context manager yielding a fresh temporary path beside ``path`` to write;
    on success it becomes ``path`` (see the module docstring for the rule).

    Arguments
    ---------
    path : str or Path
        The destination file; its folder must exist.
    replace : Replaceable or None
        The existing files that may be replaced; None: ``path`` must not exist
        (OutputExistsError, checked on entry and again when claiming it).

    Example
    -------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as partial:
    ...     _ = partial.write_text("done")
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('done', ['out.txt'])
    >>> with atomic_path(target) as partial:  # doctest: +ELLIPSIS
    ...     _ = partial.write_text("again")
    Traceback (most recent call last):
    ...
    speechbrain_tdy.storage.atomic.OutputExistsError: .../out.txt already exists; nothing was written there
    """
    path = Path(path)
    check_destination(path, replace)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".partial{path.suffix}")
    partial = Path(name)
    try:
        os.fchmod(handle, 0o666 & ~UMASK)
        created = os.fstat(handle)
    finally:
        os.close(handle)
    try:
        yield partial
        if not _same_file(partial, created):
            raise UnsafeOutputError(f"{partial}, the temporary file of {path}, was replaced while it was written")
        _claim_file(partial, path, replace)
    finally:
        if _same_file(partial, created):
            partial.unlink()


def _same_file(path, status):
    """Whether ``path`` is still the plain file of ``status`` (not a link put in its place)."""
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(now.st_mode) and (now.st_dev, now.st_ino) == (status.st_dev, status.st_ino)


def _claim_file(partial, path, replace):
    if replace is not None:
        check_destination(path, replace)
        os.replace(partial, path)
        return
    try:
        os.link(partial, path)  # fails if anything is at ``path``, a dangling link included
    except FileExistsError:
        raise OutputExistsError(f"{path} appeared while it was being written; it was left as it was") from None
    except OSError as error:  # a file system without hard links: the check is as close to the rename as it gets
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        check_destination(path)
        os.replace(partial, path)


def write_bytes_atomically(path, data, replace=None):
    """Write ``data`` (bytes) to ``path`` by :func:`atomic_path`."""
    with atomic_path(path, replace) as partial:
        partial.write_bytes(data)


def write_text_atomically(path, text, replace=None):
    """Write ``text`` (UTF-8) to ``path`` by :func:`atomic_path`."""
    write_bytes_atomically(path, text.encode("utf-8"), replace)


@contextlib.contextmanager
def atomic_folder(path, replace=None):
    """Context manager yielding a fresh staging folder beside ``path`` to fill;
    on success it is renamed to ``path``.

    ``path`` is claimed by the rename itself, which fails if anything but an
    empty folder is there. With ``replace``, an existing folder is moved into a
    fresh private folder, checked there by ``replace.check``, swapped for the
    new one, and only then are its files deleted one by one (a folder that
    fails the check is put back). On an error the staging folder is removed
    and ``path`` is as it was.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> with atomic_folder(target) as staging:
    ...     _ = (staging / "a.txt").write_text("a")
    >>> sorted(p.name for p in target.parent.iterdir()), (target / "a.txt").read_text()
    (['model'], 'a')
    """
    path = Path(path)
    check_destination(path, replace, folder=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.partial-"))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~UMASK)
        _claim_folder(staging, path, replace)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # our own fresh folder; gone once claimed


def _claim_folder(staging, path, replace):
    try:
        os.rename(staging, path)  # succeeds only onto nothing or an empty folder
        return
    except OSError as error:
        if error.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise
    if replace is None:
        raise OutputExistsError(f"{path} appeared while it was being written; it was left as it was")
    check_destination(path, replace, folder=True)  # a link or a file: refused without touching it
    aside = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
    old = aside / path.name
    os.rename(path, old)  # out of reach of other writers: only we can reach ``aside``
    if not replace.check(old):
        _put_back(old, path)
        raise OutputExistsError(f"{path} stopped being {replace.description} while the new one was written, "
                                "so it was left as it was")
    try:
        os.rename(staging, path)
    except OSError as error:
        _put_back(old, path)
        raise OutputExistsError(f"{path} appeared again while it was being replaced ({error.strerror}); "
                                "it was left as it was") from error
    if _delete_checked_folder(old):
        aside.rmdir()


def _put_back(old, path):
    try:
        os.rename(old, path)
    except OSError as error:
        raise OutputExistsError(f"something appeared at {path} while this command replaced the folder there; "
                                f"that folder is now {old}") from error
    old.parent.rmdir()


def _delete_checked_folder(folder):
    """Delete the plain files of ``folder`` (which a Replaceable check accepted),
    then the folder if that emptied it; returns whether it did (else a warning says what is left)."""
    for entry in folder.iterdir():
        if entry.is_file() and not entry.is_symlink():
            entry.unlink()
    if any(folder.iterdir()):
        warnings.warn(f"{folder} held more than the replaced files when they were deleted; what is left there "
                      "was not touched")
        return False
    folder.rmdir()
    return True


@contextlib.contextmanager
def exclusive_lock(path, command):
    """Hold the lock file ``path`` for the ``with`` block: created with
    ``O_CREAT | O_EXCL`` (never through a link), removed at the end only if it
    is still the file this call created.

    ``command`` names what holds the lock, for the error another process gets:
    LockedError naming the lock, its holder and how to remove a stale one.

    >>> import tempfile, pathlib
    >>> lock = pathlib.Path(tempfile.mkdtemp()) / "out.lock"
    >>> with exclusive_lock(lock, "speechbrain-tdy embed"):  # doctest: +ELLIPSIS
    ...     with exclusive_lock(lock, "speechbrain-tdy embed"):
    ...         pass
    Traceback (most recent call last):
    ...
    speechbrain_tdy.storage.atomic.LockedError: .../out.lock exists: another speechbrain-tdy embed is writing ...
    >>> lock.exists()
    False
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        handle = os.open(path, flags, 0o666 & ~UMASK)
    except FileExistsError:
        raise LockedError(f"{path} exists: another {command} is writing this output ({_holder(path)}), or one was "
                          f"killed. If none is running, remove {path} and run again") from None
    holder = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
    try:
        os.write(handle, holder.encode("utf-8"))
        created = os.fstat(handle)
    finally:
        os.close(handle)
    try:
        yield path
    finally:  # ours if the same file still holds our line (a new lock may reuse a removed one's inode)
        if _same_file(path, created) and path.read_text(encoding="utf-8", errors="replace") == holder:
            path.unlink()


def _holder(path):
    """The first line of the lock file ``path`` (who holds it), or why it cannot be read."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return "not a lock file"
        with open(path, encoding="utf-8", errors="replace") as stream:
            return stream.readline(200).strip() or "empty lock file"
    except OSError as error:
        return f"unreadable: {error.strerror}"
