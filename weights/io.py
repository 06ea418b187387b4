"""Safe loading of untrusted ``.npz`` weight files.

Weight files come from other people's training runs. Loading never unpickles, never trusts a
name, shape, dtype or value, and every problem becomes one :class:`WeightFileError` whose
message names the file and the offending entry.
"""

import io
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["WeightFileError", "load_npz", "save_npz", "check_header", "check_int_range",
           "MAX_ENTRY_BYTES"]

#: No entry of a weight file may unpack to more (the paper's largest layer is 16 KB): a
#: zip bomb is refused before it is read.
MAX_ENTRY_BYTES = 256 << 20

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


class WeightFileError(Exception):
    """A weight file that cannot be used; the message says what and where."""


def load_npz(path) -> dict[str, np.ndarray]:
    """All arrays of ``path``, loaded without pickle, as a name -> array dict."""
    path = Path(path)
    if not path.is_file():
        raise WeightFileError(f"{path}: no such file")
    try:
        if not zipfile.is_zipfile(path):
            with open(path, "rb") as f:
                bare = f.read(6) == b"\x93NUMPY"
            raise WeightFileError(f"{path}: not an .npz archive (a bare .npy array)" if bare
                                  else f"{path}: not a readable .npz file (not a complete zip "
                                  f"archive)")
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.file_size > MAX_ENTRY_BYTES:
                    raise WeightFileError(f"{path}: entry {info.filename!r} unpacks to "
                                          f"{info.file_size} bytes (at most "
                                          f"{MAX_ENTRY_BYTES})")
        with np.load(path, allow_pickle=False) as f:
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise WeightFileError(f"{path}: not an .npz archive (a bare .npy array?)")
            arrays = {}
            for name in f.files:
                if not _NAME.match(name):
                    raise WeightFileError(f"{path}: entry name {name!r} is not a valid name")
                try:
                    value = f[name]
                except ValueError as e:
                    if "allow_pickle" in str(e):
                        raise WeightFileError(f"{path}: entry {name!r} holds Python objects "
                                              f"(pickled data is refused)") from None
                    raise WeightFileError(f"{path}: entry {name!r} is unreadable: {e}") from None
                if not isinstance(value, np.ndarray):
                    raise WeightFileError(f"{path}: entry {name!r} is not a NumPy array "
                                          f"(a raw file in the archive)")
                arrays[name] = value
    except WeightFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise WeightFileError(f"{path}: not a readable .npz file ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'truncated'})") from None
    if not arrays:
        raise WeightFileError(f"{path}: the archive holds no arrays")
    return arrays


def check_int_range(path, name: str, a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``a`` as int64 if it is an integer array within ``[lo, hi]``, else an error."""
    if not np.issubdtype(a.dtype, np.integer):
        raise WeightFileError(f"{path}: {name} has dtype {a.dtype}, expected integers "
                              f"(quantized weights)")
    if a.size:
        bad = np.argwhere((a < lo) | (a > hi))
        if len(bad):
            idx = tuple(int(v) for v in bad[0])
            raise WeightFileError(f"{path}: {name}{list(idx)} = {a[idx]} is outside "
                                  f"[{lo}, {hi}]")
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
        raise WeightFileError(f"{path}: format version {int(v)} is not supported (this build "
                              f"reads {fmt} version {', '.join(map(str, versions))})")
    return int(v)


def save_npz(path, arrays: dict) -> None:
    """Write ``arrays`` as an ``.npz`` that ``numpy.load`` reads, byte-identical for equal
    arrays (sorted entries, fixed timestamps; ``numpy.savez`` stamps the current time), and
    atomically (a temporary file renamed into place)."""
    path = Path(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(arrays):
            data = io.BytesIO()
            np.lib.format.write_array(data, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data.getvalue())
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
