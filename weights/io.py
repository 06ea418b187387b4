"""Safe loading of untrusted ``.npz`` weight files.

Weight files come from other people's training runs. Loading never unpickles, never trusts a
name, shape, dtype or value, and every problem becomes one :class:`WeightFileError` whose
message names the file and the offending entry.
"""

import io
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from common.files import atomic_write

__all__ = [
    "WeightFileError",
    "load_npz",
    "save_npz",
    "check_header",
    "check_int_range",
    "npz_bytes",
    "parse_json",
    "read_json",
    "regular_file",
    "MAX_ENTRY_BYTES",
    "MAX_JSON_BYTES",
]

#: No entry of a weight file may unpack to more (the paper's largest layer is 16 KB): a
#: zip bomb is refused before it is read.
MAX_ENTRY_BYTES = 256 << 20

#: JSON inputs (network descriptions, build reports) are small; a larger file is refused.
MAX_JSON_BYTES = 1 << 20

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


class WeightFileError(Exception):
    """A weight file that cannot be used; the message says what and where."""


def regular_file(path, what: str | None = None) -> int:
    """The size of ``path`` if it is a regular file (``what`` names it in the error): a FIFO
    or a device would block a reader or never end."""
    what = what or str(path)
    try:
        if not os.path.lexists(path):
            raise WeightFileError(f"{what}: no such file")
        if not Path(path).is_file():
            raise WeightFileError(f"{what}: not a regular file")
        return Path(path).stat().st_size
    except OSError as e:
        raise WeightFileError(f"{what}: {e.strerror or e}") from None


def load_npz(path) -> dict[str, np.ndarray]:
    """All arrays of ``path``, loaded without pickle, as a name -> array dict.

    Each entry is read by itself: its name checked, its ``.npy`` header parsed and its
    size computed from the header's shape before anything is allocated."""
    path = Path(path)
    regular_file(path)
    try:
        if not zipfile.is_zipfile(path):
            with open(path, "rb") as f:
                bare = f.read(6) == b"\x93NUMPY"
            raise WeightFileError(
                f"{path}: not an .npz archive (a bare .npy array)"
                if bare
                else f"{path}: not a readable .npz file (not a complete zip archive)"
            )
        arrays = {}
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                name = info.filename.removesuffix(".npy")
                if name in arrays:
                    raise WeightFileError(f"{path}: entry {name!r} appears twice")
                arrays[name] = _entry(path, z, info, name)
    except WeightFileError:
        raise
    except (
        zipfile.BadZipFile,
        EOFError,
        OSError,
        ValueError,
        RuntimeError,
        NotImplementedError,
        MemoryError,
    ) as e:
        raise WeightFileError(
            f"{path}: not a readable .npz file ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else 'truncated'})"
        ) from None
    if not arrays:
        raise WeightFileError(f"{path}: the archive holds no arrays")
    return arrays


def _entry(path, z: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> np.ndarray:
    """One archive entry as an array: a ``.npy`` of plain data within :data:`MAX_ENTRY_BYTES`."""
    if not _NAME.fullmatch(name):
        raise WeightFileError(f"{path}: entry name {name!r} is not a valid name")
    if info.file_size > MAX_ENTRY_BYTES:
        raise WeightFileError(
            f"{path}: entry {info.filename!r} unpacks to {info.file_size} "
            f"bytes (at most {MAX_ENTRY_BYTES})"
        )
    if info.flag_bits & 1:
        raise WeightFileError(f"{path}: entry {name!r} is encrypted")
    try:
        with z.open(info) as f:
            data = f.read(MAX_ENTRY_BYTES + 1)
    except NotImplementedError:
        raise WeightFileError(
            f"{path}: entry {name!r} uses a compression method this tool "
            f"does not read (method {info.compress_type}; use deflate or "
            f"none, as numpy.savez does)"
        ) from None
    if not info.filename.endswith(".npy") or not data.startswith(b"\x93NUMPY"):
        raise WeightFileError(
            f"{path}: entry {name!r} is not a NumPy array (a raw file in the archive)"
        )
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(buf)
        else:
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(buf)
    except ValueError as e:
        raise WeightFileError(
            f"{path}: entry {name!r} has an unreadable .npy header ({str(e).splitlines()[0]})"
        ) from None
    if dtype.hasobject:
        raise WeightFileError(
            f"{path}: entry {name!r} holds Python objects (pickled data is refused)"
        )
    size = dtype.itemsize * int(np.prod(shape, dtype=object))
    if size > MAX_ENTRY_BYTES:
        raise WeightFileError(
            f"{path}: entry {name!r} declares shape {tuple(shape)} of "
            f"{dtype}, {size} bytes (at most {MAX_ENTRY_BYTES})"
        )
    buf.seek(0)
    try:
        return np.lib.format.read_array(buf, allow_pickle=False)
    except ValueError as e:
        raise WeightFileError(
            f"{path}: entry {name!r} is unreadable ({str(e).splitlines()[0]})"
        ) from None


def parse_json(text: str, what: str):
    """``text`` parsed as strict JSON (no repeated keys, no NaN or Infinity, bounded
    nesting); ``what`` names it in the error."""

    def pairs(items):
        d = {}
        for k, v in items:
            if k in d:
                raise WeightFileError(f"{what}: key {k!r} appears twice")
            d[k] = v
        return d

    def constant(c):
        raise WeightFileError(f"{what}: {c} is not a JSON number")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as e:
        raise WeightFileError(f"{what} is not valid JSON ({e.msg} at character {e.pos})") from None
    except RecursionError:
        raise WeightFileError(f"{what} is not valid JSON (nested too deeply)") from None


def read_json(path, what: str | None = None):
    """The JSON in the regular file ``path`` (at most :data:`MAX_JSON_BYTES`, UTF-8)."""
    path = Path(path)
    what = what or str(path)
    if regular_file(path, what) > MAX_JSON_BYTES:
        raise WeightFileError(f"{what}: larger than {MAX_JSON_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise WeightFileError(f"{what} is not valid JSON (not UTF-8: {e.reason})") from None
    except OSError as e:
        raise WeightFileError(f"{what}: {e.strerror or e}") from None
    return parse_json(text, what)


def check_int_range(path, name: str, a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``a`` as int64 if it is an integer array within ``[lo, hi]``, else an error."""
    if a.dtype.kind not in "iu":  # not timedelta64 or bool, which numpy calls integers
        raise WeightFileError(
            f"{path}: {name} has dtype {a.dtype}, expected integers (quantized weights)"
        )
    if a.size:
        bad = np.argwhere((a < lo) | (a > hi))
        if len(bad):
            idx = tuple(int(v) for v in bad[0])
            raise WeightFileError(f"{path}: {name}{list(idx)} = {a[idx]} is outside [{lo}, {hi}]")
    return a.astype(np.int64)


def check_header(path, arrays: dict, fmt: str, versions: tuple[int, ...]) -> int:
    """Pop and check ``format`` (must be ``fmt``) and ``version`` (one of ``versions``)."""
    f = arrays.pop("format", None)
    if f is None or f.shape != () or f.dtype.kind != "U" or str(f) != fmt:
        raise WeightFileError(f"{path}: 'format' must be the string {fmt!r}")
    v = arrays.pop("version", None)
    if v is None or v.shape != () or v.dtype.kind not in "iu":
        raise WeightFileError(f"{path}: 'version' must be an integer scalar")
    if int(v) not in versions:
        raise WeightFileError(
            f"{path}: format version {int(v)} is not supported (this build "
            f"reads {fmt} version {', '.join(map(str, versions))})"
        )
    return int(v)


def save_npz(path, arrays: dict) -> None:
    """Write ``arrays`` as an ``.npz`` (:func:`npz_bytes`), atomically."""
    atomic_write(path, npz_bytes(arrays))


def npz_bytes(arrays: dict) -> bytes:
    """``arrays`` as an ``.npz`` archive that ``numpy.load`` reads, byte-identical for equal
    arrays (sorted entries, fixed timestamps; ``numpy.savez`` stamps the current time)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(arrays):
            data = io.BytesIO()
            # C order always: equal values give equal bytes whatever layout they came in
            np.lib.format.write_array(data, np.asarray(arrays[name], order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data.getvalue())
    return buf.getvalue()
