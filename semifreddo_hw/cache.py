"""The generator's cache of slow products (adder-graph plans, emitted Verilog parts), keyed by
content, so that a rebuild with the same weights solves and converts nothing again.

Entries live in ``$SEMIFREDDO_CACHE_DIR`` (default ``$XDG_CACHE_HOME/semifreddo-hw``, or
``~/.cache/semifreddo-hw``), one folder per kind of entry. A cache that cannot be read or
written only costs time: every reader checks what it reads and rebuilds what it cannot use.

An entry is one header line, then the payload (UTF-8 text)::

    semifreddo-cache 1 <payload bytes> <SHA-256 of the payload, hex>\\n<payload>

written atomically (:func:`common.files.atomic_write`) and depending on the payload alone,
so the same payload always gives the same file. :func:`read` verifies the header, the
length and the checksum, then the caller's own check of the payload (``parse``). An entry
that fails any of them (truncated, a flipped bit, garbage, an entry from before checksums
or of another format version, a directory in its place) is a miss: it is reported as a
:class:`CacheWarning` (once per process until it is replaced), the caller rebuilds it and
:func:`write` replaces it, so a bad entry never reaches an output. In a read-only cache the
rebuilt product is used and not kept.
"""

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from common.files import atomic_write

__all__ = ["FORMAT", "CacheWarning", "root", "key", "read", "write"]

#: The entry format's version, in each header; an entry of any other version is a miss.
FORMAT = 1
_MAGIC = b"semifreddo-cache"

_T = TypeVar("_T")

# Bad entries reported by this process and not replaced since: one that cannot be replaced
# (a read-only cache) is read again by every step that needs it, and one report says enough.
_reported: set[Path] = set()


class CacheWarning(UserWarning):
    """A cache entry that cannot be used (corrupted, truncated, of another format, or failing
    its reader's check): it is rebuilt. A warning rather than a message through a build's
    ``log``: entries are read deep in the planner and the emitter, in worker processes too,
    where no ``log`` reaches. A warning reaches stderr from any of them, is not silenced by
    ``--quiet`` (which is for progress), and tests and callers can filter or catch it."""


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


def _header(payload: bytes) -> bytes:
    digest = hashlib.sha256(payload).hexdigest()
    return b"%s %d %d %s\n" % (_MAGIC, FORMAT, len(payload), digest.encode())


def _payload(data: bytes) -> str:
    """The payload of entry file contents ``data``; ``ValueError`` saying what is wrong."""
    head, newline, payload = data.partition(b"\n")
    fields = head.split(b" ")
    if not data:
        raise ValueError("is empty")
    if not newline and _MAGIC.startswith(fields[0]):
        raise ValueError("is truncated within its header")
    if fields[0] != _MAGIC:
        raise ValueError("has no checksum header (written before entries had one, or garbage)")
    if len(fields) < 2 or fields[1] != b"%d" % FORMAT:
        raise ValueError(f"is not of format {FORMAT} ({head[:40]!r})")
    if len(fields) != 4 or not fields[2].isdigit():
        raise ValueError(f"has a damaged header ({head[:100]!r})")
    if len(payload) != int(fields[2]):
        raise ValueError(f"holds {len(payload)} bytes, its header says {int(fields[2])}")
    if _header(payload) != head + newline:
        raise ValueError("fails its checksum (corrupted)")
    return payload.decode()


def _report(path: Path, reason: str) -> None:
    if path not in _reported:
        _reported.add(path)
        # stacklevel 3: the warning names the reader's caller (the planner, the emitter).
        warnings.warn(f"cache entry {path} {reason}; rebuilding it", CacheWarning, stacklevel=3)


def read(kind: str, entry: str, parse: Callable[[str], _T] = str) -> _T | None:
    """``parse(payload)`` of the entry ``entry`` in folder ``kind``, or None for a miss.
    ``parse`` checks the payload too: a ``ValueError``, ``LookupError`` or ``TypeError``
    from it makes the entry bad. A bad entry (see the module's documentation) is reported
    as a :class:`CacheWarning` and read as a miss."""
    path = root() / kind / entry
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:  # a directory in its place, no permission to read it
        _report(path, f"cannot be read ({e.strerror or e})")
        return None
    try:
        text = _payload(data)
    except ValueError as e:  # UnicodeDecodeError included
        _report(path, str(e))
        return None
    try:
        return parse(text)
    except (ValueError, LookupError, TypeError) as e:
        _report(path, f"fails its check ({type(e).__name__}: {e})")
        return None


def write(kind: str, entry: str, text: str) -> None:
    """Store ``text`` under ``entry`` in folder ``kind`` (atomically, replacing a bad entry;
    silently skipped when the cache is not writable)."""
    path = root() / kind / entry
    payload = text.encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and not path.is_symlink():
            path.rmdir()  # an empty directory in the entry's place; anything else stays
        atomic_write(path, _header(payload) + payload)
    except OSError:
        return  # a read-only cache only costs time, never correctness
    _reported.discard(path)  # replaced: should it go bad again, that is news
