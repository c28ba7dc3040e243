"""The one base of every error facesegtool raises for bad input or a failed step.

The CLI catches `FacesegError` once and prints its message as one `error:` line (exit status 2);
anything else is a bug and keeps its traceback. Subclasses keep a builtin base too (ValueError,
RuntimeError, OSError) so callers that caught those before still do.

The rule for the rest:
- A library function that refuses the user's input raises a FacesegError subclass, never a plain
  ValueError: a plain ValueError reaching the CLI is a bug and shows its traceback.
- An OSError that names a file (`exc.filename` set: a path the user gave is missing, unreadable,
  or not writable) is also printed as one line, `FILE: reason`; an OSError without a file name
  (a full pipe, a failed syscall) keeps its traceback.
"""


class FacesegError(Exception):
    """A failure the user can act on; the message names the file or option and what to do."""
