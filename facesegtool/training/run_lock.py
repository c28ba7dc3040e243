"""One train run per run folder: a second `train --out DIR` stops at once, naming the holder's pid.

The lock is an flock on DIR/.train.lock, so the kernel drops it when the holder dies (even by
kill -9) and a resume after a crash is never blocked by a stale file.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import FacesegError

LOCK_NAME = ".train.lock"


class RunLockedError(FacesegError, RuntimeError):
    """Another process is training into the same folder."""


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold the run folder `out` (created if needed) for the block; removes a folder it created and left empty."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fd = _acquire(path)
    try:
        yield
    finally:
        os.close(fd)  # the file stays: unlinking it would let two later runs lock two different files
        if created and [p.name for p in out.iterdir()] == [LOCK_NAME]:
            path.unlink(missing_ok=True)
            out.rmdir()


def _acquire(path: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunLockedError(
                f"--out {path.parent}: another `facesegtool train` (pid {holder}) is training into this folder; "
                "wait for it to finish, or choose another --out") from None
        if os.path.exists(path) and os.stat(path).st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)  # the file was replaced while we waited for it: lock the new one
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd
