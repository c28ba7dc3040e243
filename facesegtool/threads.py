"""How many CPU threads a command may ask for.

torch.set_num_threads(100000) segfaults and a negative count raises deep inside torch, so every
--threads is checked here first, with a bound far above any useful count.
"""

from __future__ import annotations

import os

from .errors import FacesegError

THREADS_PER_CPU = 4  # past a few threads per CPU a run only gets slower; far past it torch crashes


class ThreadCountError(FacesegError, ValueError):
    """A --threads that torch would crash on or refuse."""


def max_threads() -> int:
    return max(8, THREADS_PER_CPU * (os.cpu_count() or 1))


def check_threads(threads: int, option: str = "--threads") -> int:
    """`threads` if it is a usable thread count, else ThreadCountError saying what to give instead."""
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= max_threads():
        raise ThreadCountError(f"{option} {threads!r}: give a thread count from 1 to {max_threads()} "
                               f"(this machine has {os.cpu_count()} CPUs)")
    return threads
