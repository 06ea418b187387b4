"""Writing outputs so that a reader never sees half of one.

* :func:`atomic_write`: one file, written beside its destination and renamed into place;
* :func:`write_all`: several files, all written or none;
* :class:`GuardedDir`: a directory this tool owns (it holds a marker file), replaced whole
  in one rename, and never a directory that someone else made.
"""

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["OutputError", "atomic_write", "check_outputs", "write_all", "GuardedDir"]


class OutputError(Exception):
    """An output that cannot, or must not, be written there; the message says why."""


def atomic_write(path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` (mode 0644): a temporary file beside it, renamed into
    place, so that ``path`` holds the old contents or the new, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name one file (resolved, or hard links of one)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_outputs(inputs: dict, outputs: dict) -> dict[str, Path]:
    """``outputs`` (option -> path) checked before anything is read or written: different
    files, none of the ``inputs`` (what -> path, or None), each in an existing directory and
    not itself a directory. Returns them as paths; raises :class:`OutputError`."""
    real = {opt: os.path.realpath(path) for opt, path in outputs.items()}
    seen = {}
    for opt, path in outputs.items():
        for what, src in inputs.items():
            if src is not None and _same_file(path, src):
                raise OutputError(f"{opt} {path}: is the {what} (refusing to overwrite it)")
        if real[opt] in seen:
            raise OutputError(
                f"{seen[real[opt]]} and {opt} are the same file ({path}): they must differ"
            )
        seen[real[opt]] = opt
        parent = Path(real[opt]).parent
        if not parent.is_dir():
            raise OutputError(
                f"{opt} {path}: directory {str(parent)!r} "
                + ("is not a directory" if parent.exists() else "does not exist")
            )
        if os.path.lexists(real[opt]) and not Path(real[opt]).is_file():
            raise OutputError(f"{opt} {path}: exists and is not a regular file")
    return {opt: Path(path) for opt, path in outputs.items()}


def write_all(writes: list[tuple[str, Path, Callable[[Path], None]]]) -> None:
    """Each ``(what, path, write)`` of ``writes``: ``write(temporary)`` for all, then the
    temporaries renamed into place, so that a failure leaves none of the files written. An
    ``OSError`` becomes an :class:`OutputError` naming ``what`` and ``path``."""
    tmps, done = [], []
    try:
        for what, path, write in writes:
            try:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
                os.close(fd)
                tmps.append(tmp)
                write(Path(tmp))
            except OSError as e:
                raise OutputError(f"{what} {path}: cannot write ({e.strerror or e})") from None
        for (what, path, _), tmp in zip(writes, tmps, strict=True):
            try:
                os.replace(tmp, path)
            except OSError as e:
                raise OutputError(f"{what} {path}: cannot write ({e.strerror or e})") from None
            done.append(path)
    except BaseException:
        for f in [*tmps, *done]:
            Path(f).unlink(missing_ok=True)
        raise


class GuardedDir:
    """Directory ``path``, owned by this tool when it holds the file ``marker``.

    ``what`` names it in errors (``"--out build/x"``), ``kind`` says what it must be to be
    replaced (``"a build output directory"``). Nothing but a directory holding the marker
    is ever removed or replaced; a symlink never is.
    """

    def __init__(self, path, marker: str, *, what: str, kind: str):
        self.path, self.marker, self.what, self.kind = Path(path), marker, what, kind

    def check(self) -> None:
        """Raise :class:`OutputError` unless ``path`` is absent or owned, its name leaves
        room for a temporary sibling, and its nearest existing parent is a writable
        directory. Checked before work starts, and again just before the replacement."""
        p = self.path
        try:
            if len(p.name) > 200:
                raise OutputError(f"{self.what}: the name is too long (at most 200 characters)")
            if p.is_symlink() or (p.exists() and not p.is_dir()):
                raise OutputError(f"{self.what} exists and is not a directory")
            if p.is_dir() and not (p / self.marker).is_file():
                raise OutputError(
                    f"{self.what} exists and is not {self.kind} (no "
                    f"{self.marker}); refusing to replace it"
                )
            parent = p.resolve().parent
            while not parent.exists():
                parent = parent.parent
            if not parent.is_dir():
                raise OutputError(f"{self.what}: {parent} is not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputError(f"{self.what}: {parent} is not writable")
        except OSError as e:
            raise OutputError(f"{self.what}: {e.strerror or e}") from None

    def replace(self, fill: Callable[[Path], None], note: str) -> None:
        """``fill(directory)`` fills a fresh temporary directory beside ``path`` (marked
        with ``note``), which then replaces ``path`` in one rename; an earlier one is
        removed after. On failure nothing is left: not the temporary directory, nor the
        parents created for it."""
        out = self.path.resolve()
        made = [d for d in reversed(out.parents) if not d.exists()]
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
        except OSError as e:
            _remove_empty(made)
            raise OutputError(f"{self.what}: cannot create it ({e.strerror or e})") from None
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result should not be
        try:
            fill(tmp)
            (tmp / self.marker).write_text(note)
            self.check()  # again: something may have appeared there meanwhile
            old = None
            if out.exists():
                old = out.parent / f".{out.name}.old-{os.getpid()}"
                out.rename(old)
            tmp.rename(out)
            if old is not None:
                shutil.rmtree(old)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            _remove_empty(made)
            raise

    def reset(self, note: str) -> None:
        """Make ``path`` an empty owned directory (marked with ``note``), removing an owned
        one that was there: for work done in place, such as a simulator build."""
        self.check()
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        (self.path / self.marker).write_text(note)


def _remove_empty(dirs) -> None:
    """Remove the directories ``dirs`` (outermost first) created for an output that failed."""
    for d in reversed(dirs):
        try:
            d.rmdir()
        except OSError:
            return
