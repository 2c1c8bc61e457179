"""One-line errors for the bundle commands.

``python -m monai.bundle run`` evaluates every config expression inside MONAI's config parser, which wraps whatever
the expression raises in ``RuntimeError: Failed to evaluate ConfigExpression: ...``. The user then reads a
60-line traceback whose last line quotes an expression, while the line that says what to fix (``no trained
weights at ...``, ``the weights ... were trained with other settings ...; pass --ngf 8``) sits in the middle.

:func:`concise_errors`, which :func:`mr2ct.bundle.complete` calls first in every bundle workflow, installs an
``sys.excepthook`` that prints such an error as one line, ``error: <message>``, when its cause is an input error
(``ValueError``, ``FileNotFoundError``, ``NotADirectoryError``, ``FileExistsError``): the kinds the bundles'
checks raise for a bad setting, path or file. Every other error, and every error with ``MR2CT_TRACEBACK=1`` set,
keeps Python's full traceback. The exit status is 1 either way.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType

from mr2ct.data.datasets import root_cause

__all__ = ["TRACEBACK_VARIABLE", "concise_errors", "input_error"]

TRACEBACK_VARIABLE = "MR2CT_TRACEBACK"
_MONAI_WRAPPER = "Failed to evaluate"
_INPUT_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, FileExistsError)


def input_error(error: BaseException) -> BaseException | None:
    """The input error that a MONAI ``Failed to evaluate`` wrapper ``error`` was raised from, else None.

    Follows the chain of causes (``raise ... from``) to its root; an error that MONAI did not wrap, or whose root
    is not an input error (a bug, an out-of-memory, an interrupt), gives None.
    """
    if not (isinstance(error, RuntimeError) and str(error).startswith(_MONAI_WRAPPER)):
        return None
    root = root_cause(error)
    return root if isinstance(root, _INPUT_ERRORS) else None


def _excepthook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    cause = input_error(error)
    if cause is None or os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0"):
        sys.__excepthook__(kind, error, trace)
        return
    message = str(cause).replace("\n", " ")
    print(f"error: {message}\n(set {TRACEBACK_VARIABLE}=1 for the full traceback)", file=sys.stderr)


def concise_errors() -> None:
    """Make the running bundle command report an input error as one line instead of MONAI's nested traceback.

    Leaves a hook that someone else installed (a debugger, an IDE) in place.
    """
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _excepthook
