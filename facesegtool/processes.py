"""Child processes that die with the process that started them.

A converter worker or a sweep trial left running after its parent died (kill -9, a crash) would
go on unwatched, holding CPU and writing into folders nobody cleans; the kernel's parent-death
signal stops it even when the parent's own cleanup never runs.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from typing import Callable


def die_with_parent(parent: int, sig: int) -> None:
    """In the child, before exec: ask the kernel to send `sig` when the parent dies."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def dies_with_this_process(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen that ties the child to this process (None off Linux, which has no
    parent-death signal)."""
    if not sys.platform.startswith("linux"):
        return None
    return functools.partial(die_with_parent, os.getpid(), sig)
