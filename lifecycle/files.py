"""Files that leave the database: written privately and completely, or not at all.

Access exports, carrier files, manifests, the guard's key and Dagster's instance file all hold
something a stranger must not read, and a reader must never see half of one. So every such file
is written here: beside its final name, 0600 from the first byte whatever the umask, every byte
checked as written (a full disk gives a short write, not always an error), synced, then renamed
into place. On any failure the partial file is removed and the previous file stays as it was.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


@dataclass(frozen=True)
class WrittenFile:
    """What was written: where, how many bytes, and their SHA-256."""

    path: Path
    bytes: int
    sha256: str


def private_dir(path: Path) -> Path:
    """Creates `path` (and its parents) if needed and makes it readable by its owner only."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR)
    return path


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # no progress: a full disk that did not say so
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def write_private(
    path: Path, content: bytes | Iterable[bytes], exclusive: bool = False
) -> WrittenFile:
    """Writes `content` (bytes, or chunks of bytes) to `path` atomically, readable by its owner only.

    With `exclusive`, an existing `path` is kept and FileExistsError raised (the file then came
    from another process that won a race, and is theirs to keep).
    """
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    digest, size = hashlib.sha256(), 0
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    try:
        try:
            os.fchmod(fd, PRIVATE_FILE)
            for chunk in [content] if isinstance(content, bytes | bytearray) else content:
                _write_all(fd, chunk)
                digest.update(chunk)
                size += len(chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            os.link(partial, path)  # atomic: fails if another process made the file first
        else:
            os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return WrittenFile(path=path, bytes=size, sha256=digest.hexdigest())
