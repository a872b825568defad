"""Atomic file and folder writes: a unique temporary name beside the target, then a rename.

Every output of litesr goes through here, so that a crash or a full disk never leaves a
half-written file under its final name, two writers of one output never share a temporary
name, and results get the permissions the user's umask asks for (``mkstemp`` alone would
make them owner-only).

A writer killed outright (``kill -9``, power loss) cannot remove its temporary file
``.<name>.XXXXXXXX.tmp``. :func:`remove_stale_temporaries` removes those of one output on a
later run; it tells them from live ones by a lock that :func:`atomic_path` holds on its
temporary until the rename (the kernel drops it when the writer dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def honour_umask(path: Path, *, directory: bool = False) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have given it."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a unique temporary path beside ``path``; on success rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was. The
    temporary is locked (``flock``) while the context lasts: see
    :func:`remove_stale_temporaries`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield tmp
        honour_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


_MKSTEMP_PART = re.compile(r"[a-z0-9_]{8}")  # the random part of a mkstemp name


def remove_stale_temporaries(path: str | os.PathLike[str], *, before: float) -> list[Path]:
    """Remove the temporary files that writers of ``path`` killed mid-write left beside it;
    return them.

    The rule: a file is removed when its name is ``.<name of path>.XXXXXXXX.tmp`` (the
    pattern :func:`atomic_path` gives ``path``'s own temporaries, so those of other outputs
    are never touched), it is a regular file, it was last modified before ``before`` (a
    ``time.time()``, the start of the current run), and no process holds its lock (a live
    :func:`atomic_path` holds it until the rename).
    """
    path = Path(path)
    prefix = f".{path.name}."
    try:
        names = os.listdir(path.parent)
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for name in names:
        if not (
            name.startswith(prefix)
            and name.endswith(".tmp")
            and _MKSTEMP_PART.fullmatch(name[len(prefix) : -len(".tmp")])
        ):
            continue
        candidate = path.parent / name
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:  # gone meanwhile, a symbolic link, or unreadable: not ours to remove
            continue
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_mtime >= before:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live writer
                continue
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a unique temporary folder beside ``path``; on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        honour_umask(tmp, directory=True)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class OutputBusy(RuntimeError):
    """Another process is writing the same output."""


@contextlib.contextmanager
def output_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` for as long as an output is being made.

    A second process making the same output fails at once with :class:`OutputBusy` naming
    the file, instead of the two runs overwriting each other's checkpoints.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise OutputBusy(f"{path} is being made by another process (lock: {lock})") from err
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
