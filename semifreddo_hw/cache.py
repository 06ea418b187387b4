"""The generator's cache of slow products (adder-graph plans, emitted Verilog parts), keyed by
content, so that a rebuild with the same weights solves and converts nothing again.

Entries live in ``$SEMIFREDDO_CACHE_DIR`` (default ``$XDG_CACHE_HOME/semifreddo-hw``, or
``~/.cache/semifreddo-hw``), one folder per kind of entry. A cache that cannot be read or
written only costs time: every reader checks what it reads and rebuilds what it cannot use.
"""

import hashlib
import json
import os
from pathlib import Path

from common.files import atomic_write

__all__ = ["root", "key", "read", "write"]


def root() -> Path:
    """The cache's folder."""
    env = os.environ.get("SEMIFREDDO_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "semifreddo-hw"


def key(meta: dict, data: bytes = b"") -> str:
    """A key for an entry made from ``meta`` (JSON-able) and ``data``."""
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    h.update(data)
    return h.hexdigest()


def read(kind: str, entry: str) -> str | None:
    """The text stored under ``entry`` in folder ``kind``, or None."""
    try:
        return (root() / kind / entry).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def write(kind: str, entry: str, text: str) -> None:
    """Store ``text`` under ``entry`` in folder ``kind`` (atomically; silently skipped when
    the cache is not writable)."""
    folder = root() / kind
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / entry, text)
    except OSError:
        pass  # a read-only cache only costs time, never correctness
