"""Small private files that a crash leaves either old or new, never half written."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

PRIVATE = 0o600

# Any permission for the group or for others is looser than private.
_SHARED_BITS = stat.S_IRWXG | stat.S_IRWXO

# (inode, modification time in ns, size): an atomic replace always brings
# a new inode, so a change shows even where mtime is coarse.
Signature = tuple[int, int, int]


@dataclass(frozen=True)
class Contents:
    """A file's bytes and what reading it found about its mode."""

    data: bytes
    signature: Signature
    loose_mode: int | None = None
    tighten_error: str | None = None


def signature_of(path: Path) -> Signature | None:
    """The file's signature, or None when there is no file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return _signature(info)


def read_private(path: Path, limit: int) -> Contents:
    """Up to `limit` + 1 bytes of `path`, first tightening a looser mode to 0600.

    Raises OSError as `open` does; the caller decides what a missing or
    unreadable file means.
    """
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        loose, error = _tighten(handle.fileno(), info)
        data = handle.read(limit + 1)
    return Contents(data, _signature(info), loose, error)


def replace_atomically(path: Path, data: bytes) -> Signature:
    """Put `data` at `path` so that readers see the old file or the new one.

    The steps: a temporary file in the same folder (a rename is atomic only
    within one file system), written, flushed and fsynced; renamed over the
    old file; then the folder fsynced, so that the rename itself survives
    a power cut. Returns the new file's signature.
    """
    folder = path.parent
    # mkstemp creates the file with mode 0600 whatever the umask.
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            written = _signature(os.fstat(handle.fileno()))
        os.replace(temporary, path)
    except BaseException:
        _remove_quietly(temporary)
        raise

    _fsync_folder(folder)
    return written


def _tighten(fd: int, info: os.stat_result) -> tuple[int | None, str | None]:
    mode = stat.S_IMODE(info.st_mode)
    if not mode & _SHARED_BITS:
        return None, None
    try:
        os.fchmod(fd, PRIVATE)
    except OSError as exc:
        return mode, exc.strerror or type(exc).__name__
    return mode, None


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _signature(info: os.stat_result) -> Signature:
    return (info.st_ino, info.st_mtime_ns, info.st_size)
