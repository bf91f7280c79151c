"""The errors a user causes and can fix: bad schema, data, flags or job-dir, an offline model, a resource
limit. The CLI prints their message as one paragraph, without a traceback, and exits with code 2; any
other exception is a bug and keeps its traceback. Set TFRS_TWOTOWER_DEBUG=1 to see tracebacks always.

Each type also derives from the built-in a Python caller would catch (`DataError` is a `ValueError`,
`JobDirError` an `OSError`), so `except ValueError` keeps working.

Example:
>>> try:
...     raise DataError("`train.tfrecord` record 3 is corrupted (checksum mismatch).")
... except ValueError as e:
...     is_user_error(e)
True
"""

from __future__ import annotations

import linecache
import os
import re

EXIT_USER_ERROR = 2
EXIT_PREEMPTED = 143  # 128 + SIGTERM, what shells and Kubernetes report for a SIGTERM'd process


class UserError(Exception):
    """Base of the conditions a user caused: the message names the file or setting and the fix."""


class ConfigError(UserError, ValueError):
    """A setting (flag, `TrainingConfig` field) that cannot work."""


class DataError(UserError, ValueError):
    """An input file that cannot be read as the flags say (corrupt, wrong format, wrong encoding)."""


class JobDirError(UserError, OSError):
    """job-dir cannot be used: another run is there, it is a file, it is not writable."""

    def __str__(self) -> str:  # OSError's str would prefix an errno
        return str(self.args[0]) if self.args else ""


class UnsafeLinkError(JobDirError):
    """A path in job-dir is a symbolic link to a place outside job-dir: writing or deleting through it
    would change files that are not the run's."""


class CheckpointError(UserError, RuntimeError):
    """No checkpoint in job-dir can be restored."""


class ExportError(UserError, FileNotFoundError):
    """A job-dir whose exports are missing or incomplete for what was asked."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ModelLoadError(UserError, FileNotFoundError):
    """A model path or handle (`embedding_module`) that is missing or not a loadable SavedModel."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ResourceLimitError(UserError, ValueError):
    """A setting that needs more memory than the machine has."""


class NonFiniteValueError(UserError, ValueError):
    """An inf or NaN Numeric/Vector value in a serving request."""


class Interrupted(Exception):
    """The run received SIGTERM (preemption, eviction): it wrote a checkpoint, marked run_state.json
    "interrupted" and stopped. Not a bug and not a user error: the CLI exits with `EXIT_PREEMPTED`.
    Re-run the same command to resume."""


# Kept for callers of the old tuple: the built-ins the CLI used to treat as user errors.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError,)

_LEGACY = (ValueError, FileNotFoundError, ImportError, KeyError, TypeError)
_DELIBERATE = re.compile(r"^raise\s+[A-Za-z_][\w.]*\(")


def is_user_error(error: BaseException) -> bool:
    """Whether the CLI should print `error` without a traceback.

    A `UserError`, or one of the built-ins our code raises on purpose for a bad value (`raise
    ValueError(...)` written in tfrs_twotower: the message names the setting). The same built-in raised
    elsewhere (inside TensorFlow, numpy, or implicitly, as a dict lookup's KeyError) is a bug.
    """
    if isinstance(error, UserError):
        return True
    if not isinstance(error, _LEGACY):
        return False
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = tb.tb_frame.f_code.co_filename
    package = os.path.dirname(os.path.abspath(__file__))
    if not os.path.abspath(filename).startswith(package + os.sep):
        return False
    return bool(_DELIBERATE.match(linecache.getline(filename, tb.tb_lineno).strip()))


def error_paragraph(error: BaseException) -> str:
    """The message as one paragraph (a schema's problem list keeps its lines)."""
    text = str(error).strip()
    if isinstance(error, KeyError) and len(error.args) == 1:
        text = str(error.args[0])
    return text
