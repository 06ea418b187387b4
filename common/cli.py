"""The conventions every command of the package follows (``python -m generators.build``,
``python -m sim.verify``, ``python -m weights.onnx_import``):

* exit code 0 when done, 2 on bad input with one line ``error: ...`` on stderr, 1 when
  interrupted or on an internal error (one line too, never a traceback);
* argument errors are bad input like any other;
* progress goes to stderr, and ``--quiet`` silences it.
"""

import argparse
import sys
import warnings
from collections.abc import Callable

__all__ = ["Parser", "run_command"]


class Parser(argparse.ArgumentParser):
    """An argument parser with a ``--quiet`` option whose errors are one line (``error:
    ...``, exit code 2); ``--help`` still shows the usage."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--quiet", action="store_true", help="no progress output")

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def run_command(
    parser: Parser, body: Callable, bad_input: tuple[type[BaseException], ...], argv=None
) -> int:
    """Parse ``argv`` and run ``body(args, log)`` (it returns an exit code, or None for 0);
    ``log(message)`` prints progress unless ``--quiet``. ``bad_input`` exceptions become
    ``error: <message>`` and exit code 2, anything else one line and exit code 1. Warnings
    (a damaged cache entry, say) print as one line ``warning: <message>``, even with
    ``--quiet``, instead of Python's file-and-source-line form."""
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    def one_line(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line
            return body(args, log) or 0
    except bad_input as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - one readable line, never a traceback
        print(f"internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
