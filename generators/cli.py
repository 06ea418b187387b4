"""What every command of the package does with errors: one readable line, never a traceback.

Exit codes: 0 done; 2 bad input (``error: ...``); 1 interrupted or an internal error.
"""

import argparse
import sys

__all__ = ["run_command", "Parser"]


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line too (``error: ...``, exit code 2);
    ``--help`` still shows the usage."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def run_command(body, bad_input: tuple[type[BaseException], ...]) -> int:
    """``body()`` (returns an exit code or None for 0), with ``bad_input`` exceptions turned
    into ``error: <message>`` and exit code 2, anything else into one line and exit 1."""
    try:
        return body() or 0
    except bad_input as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - one readable line, never a traceback
        print(f"internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
