"""Safe loading of untrusted ``.npz`` weight files.

Weight files come from other people's training runs. Loading never unpickles, never trusts a
name, shape, dtype or value, and every problem becomes one :class:`WeightFileError` whose
message names the file and the offending entry.
"""

import re
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["WeightFileError", "load_npz", "check_int_range"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


class WeightFileError(Exception):
    """A weight file that cannot be used; the message says what and where."""


def load_npz(path) -> dict[str, np.ndarray]:
    """All arrays of ``path``, loaded without pickle, as a name -> array dict."""
    path = Path(path)
    if not path.is_file():
        raise WeightFileError(f"{path}: no such file")
    try:
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
