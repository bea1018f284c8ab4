# Copyright (c) monai_unet2015 contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.


"""User mistakes in short words: the error class of bad bundle input and the hook that prints it plainly.

``monai.bundle run`` wraps every error raised while evaluating a config expression in one or more
``RuntimeError: Failed to evaluate ...``, so the last lines of a 60-250 line traceback name an expression, not
the mistake. :py:func:`install_short_errors` (the first step of every bundle's ``initialize``) replaces
``sys.excepthook`` so that a *user error* ends the run with two lines: what is wrong and how to fix it. A
user error is a :py:class:`BundleInputError`, or a ``ValueError`` / ``TypeError`` / ``FileNotFoundError``
raised by this package's own argument checks; every other exception is a bug and keeps its full traceback.
Set ``MONAI_UNET2015_TRACEBACK=1`` for full tracebacks of everything.
"""

from __future__ import annotations

import os
import sys
import traceback
from types import TracebackType

__all__ = ["BundleInputError", "user_error_message", "install_short_errors", "TRACEBACK_ENV"]

TRACEBACK_ENV = "MONAI_UNET2015_TRACEBACK"
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_USER_ERROR_TYPES = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError)


class BundleInputError(ValueError):
    """Bad input to a bundle or to the command line: a path, an option value, an image, a checkpoint.

    Examples::

        >>> try:
        ...     raise BundleInputError("--dataset_dir /nowhere does not exist.")
        ... except ValueError as e:
        ...     print(e)
        --dataset_dir /nowhere does not exist.
    """


def _chain(exc: BaseException) -> list[BaseException]:
    seen, out = set(), []
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return out


def _raised_in_package(exc: BaseException) -> bool:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return False
    return os.path.abspath(last.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep)


def user_error_message(exc: BaseException) -> str | None:
    """The plain message of ``exc`` if it (or an exception it was raised from) is a user error, else ``None``.

    Examples::

        >>> try:
        ...     try:
        ...         raise BundleInputError("--tta got 'maybe'")
        ...     except BundleInputError as inner:
        ...         raise RuntimeError("Failed to evaluate ...") from inner
        ... except RuntimeError as e:
        ...     print(user_error_message(e))
        --tta got 'maybe'
        >>> print(user_error_message(KeyError("a bug")))
        None
    """
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, BundleInputError):
            return str(e)
    root = chain[-1]
    if isinstance(root, _USER_ERROR_TYPES) and _raised_in_package(root):
        return str(root)
    return None


def _hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    message = None if os.environ.get(TRACEBACK_ENV, "") not in ("", "0") else user_error_message(exc)
    if message is None:
        traceback.print_exception(exc_type, exc, tb)
        return
    sys.stderr.write(f"(set {TRACEBACK_ENV}=1 for the full traceback)\nerror: {message}\n")
    sys.stderr.flush()


def install_short_errors() -> bool:
    """Make user errors end the process with a two-line message instead of a long traceback; returns ``True``.

    Idempotent; bugs keep their full traceback (see the module docstring).

    Examples::

        >>> install_short_errors()
        True
    """
    sys.excepthook = _hook
    return True
