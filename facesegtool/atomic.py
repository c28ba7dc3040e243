"""Atomic file writes: a temp file beside the target, renamed onto it only once complete,
so an interrupted run never leaves a half-written checkpoint, model, report or picture.

Output folders are checked before long work starts (`check_writable_dir`), and a write that
fails names the file or folder the user asked for, never the hidden temp file."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from .errors import FacesegError


class OutputError(FacesegError, OSError):
    """An output path cannot be written; the message names it and says what to do."""


def check_writable_dir(path: str | Path, option: str = "--out") -> Path:
    """Raise OutputError unless `path` is, or can be created as, a folder this process can write to.

    Creates nothing, so a run that stops later for another reason leaves no empty folder behind.
    """
    path = Path(path)
    reason = _unwritable_reason(path)
    if reason:
        raise OutputError(f"{option} {path}: {reason}; choose another {option}")
    return path


def _unwritable_reason(folder: Path) -> str | None:
    """Why files cannot be written in `folder` (created if needed), or None when they can."""
    existing = folder
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if existing.is_symlink() and not existing.exists():
        return f"{existing} is a broken link"
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"no permission to write in {existing}"
    return None


PathsArg = str | Path | Iterable[str | Path] | None  # one path, several, or none


def check_apart(outputs: Mapping[str, PathsArg], inputs: Mapping[str, PathsArg]) -> None:
    """Raise OutputError when an output path would overwrite or delete an input: it is that input
    (same file, links and hard links included) or a folder holding it.

    outputs / inputs: option name -> a path, several paths, or None. Every command calls this with
    all it writes and all it reads before any work starts. An output inside an input folder is
    allowed (a run in P/runs/, a report in the export folder): new names there harm nothing, and
    where an output file could take an input's name the caller lists those files themselves.
    """
    read = [(option, Path(p)) for option, value in inputs.items() for p in _as_paths(value)]
    for out_option, value in outputs.items():
        for out in map(Path, _as_paths(value)):
            target = _real(out)
            for in_option, inp in read:
                source = _real(inp)
                if target == source or _same_file(out, inp):
                    how = "is"
                elif source.is_relative_to(target) or _real(inp.parent).is_relative_to(target):  # a link in it too
                    how = "holds"
                else:
                    continue
                raise OutputError(f"{out_option} {out} {how} the input {in_option} {inp}; writing there would "
                                  f"overwrite or delete it; choose another {out_option}")


def model_file(model: str | Path | None) -> str | Path | None:
    """The file a --model value reads, for check_apart: CODE.py:FUNCTION reads CODE.py."""
    if model is not None and not Path(model).exists() and ":" in str(model):
        return str(model).rsplit(":", 1)[0]
    return model


def _as_paths(value) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    return [v for v in value if v is not None and v != ""]


def _real(path: Path) -> Path:
    """The absolute path with every link resolved (a link to an input is that input)."""
    return Path(os.path.realpath(path))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def remove_stale_temps(folder: str | Path, names: Iterable[str]) -> list[Path]:
    """Delete the temp files atomic_path left for these names in folder when its writer died (kill -9).

    Call only while holding the folder (its run lock): then no live writer owns such a file."""
    stale = [p for name in names for p in Path(folder).glob(f".{glob.escape(name)}.*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _output_error(path: Path, exc: OSError) -> OutputError:
    reason = _unwritable_reason(path.parent) or exc.strerror or str(exc)
    return OutputError(f"cannot write {path}: {reason}; choose another output folder")


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path next to `path`; it replaces `path` if the block succeeds and is removed if not."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as exc:  # name the file asked for, not the hidden temp file
        raise _output_error(path, exc) from None
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; artifacts are meant to be read and shared
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as exc:  # e.g. disk full
            raise _output_error(Path(path), exc) from None
    return Path(path)


LOW_SPACE = 64 << 20  # below this a failed write is most likely a full disk


def low_space_note(folder: str | Path) -> str:
    """'; only N MB free on the disk of FOLDER: ...' when that disk is (nearly) full, else ''."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    if free >= LOW_SPACE:
        return ""
    return f"; only {free / 1e6:.1f} MB free on the disk of {folder}: free some space or choose another --out"
