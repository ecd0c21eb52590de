"""What every frreg CLI shares: error reporting and the crash guard (terminal progress
is :func:`frreg._terminal.progress_printer`, which the export draws with too)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TextIO

from frreg.errors import FrregError
from frreg.schema import EXIT_INTERNAL, EXIT_INTERRUPTED

#: Set to 1 to let an internal error raise with its traceback instead.
DEBUG_ENV = "FRREG_DEBUG"


def guarded(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Wrap a CLI ``main`` so that a crash exits :data:`EXIT_INTERNAL`, never 1 (HOLD).

    The one line names the exception; ``FRREG_DEBUG=1`` re-raises it with its
    traceback. Ctrl-C exits :data:`EXIT_INTERRUPTED`.
    """

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(*args: object, **kwargs: object) -> int:
            try:
                return main(*args, **kwargs)
            except KeyboardInterrupt:
                print(f"{prog}: interrupted", file=sys.stderr)
                return EXIT_INTERRUPTED
            except Exception as exc:
                if os.environ.get(DEBUG_ENV) == "1":
                    raise
                print(
                    f"{prog}: internal error: {type(exc).__name__}: {exc} "
                    f"(exit {EXIT_INTERNAL}; rerun with {DEBUG_ENV}=1 for the traceback)",
                    file=sys.stderr,
                )
                return EXIT_INTERNAL

        return run

    return wrap


def fail(prog: str, err: FrregError, stream: TextIO | None = None) -> int:
    """Print ``prog: error: message`` (one line) and return the error's exit code."""
    print(f"{prog}: error: {err}", file=stream or sys.stderr)
    return err.exit_code
