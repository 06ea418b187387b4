"""A compiler wrapper for Verilator's makefile (its ``OBJCACHE`` hook), set by :mod:`.rtl`.

Every Verilator build compiles Verilator's run-time library (``verilated.cpp``,
``verilated_vpi.cpp`` and the rest: about 18 s of g++ at ``-Os``, often more than the design
itself) again, the same way each time. This wrapper keeps each of those objects in a cache
folder and copies it into later builds, saying so in the build log. Every other compilation
(the design's own C++, and cocotb's ``main``, which includes the design's header) runs as it
would without the wrapper: nothing that depends on the Verilog is ever cached.

An entry's key is what ccache's preprocessor mode hashes: the compiler (its driver and
``cc1plus``, by path, size and time), the whole command line (flags, defines, include
folders), and the source as that command preprocesses it, so every header it reads is in the
key whichever folder it comes from (Verilator's, the system's, or the build's own ``-I.``):
another Verilator, compiler or flag is another entry, never a stale object. Preprocessing
costs about half a second a file. An entry is one file, written atomically
(:func:`common.files.atomic_write`, so concurrent builds, test workers among them, each see
a whole entry or none)::

    semifreddo-objcache 1 <object bytes> <dependency file bytes> <SHA-256 of both>\\n<both>

and checked on every read: a damaged one (truncated, a flipped bit, another format) is
compiled again and replaced, and the build log says why.

Usage, as make runs it: ``python objcache.py CXX ARGS...``; the cache folder is
``$SEMIFREDDO_VERILATED_CACHE`` (without it, every command just runs). It runs in make's
environment once per compilation, so it needs the standard library and :mod:`common.files`
only.
"""

import hashlib
import os
import shutil
import subprocess
import sys

__all__ = ["CACHE_ENV", "FORMAT", "runtime_compile", "key", "main"]

CACHE_ENV = "SEMIFREDDO_VERILATED_CACHE"

#: The entry format's version, in each header; an entry of any other version is damaged.
FORMAT = 1
_MAGIC = b"semifreddo-objcache"

#: Options that only say where dependencies go: left out when preprocessing for the key.
_DEP_OPTIONS = ("-MMD", "-MD", "-MP")


def runtime_compile(cmd: list[str]) -> tuple[str, str] | None:
    """``(source, object)`` when ``cmd`` compiles one file of Verilator's run-time library
    (a ``.cpp`` beside ``verilated.h``, named by its absolute path, last) into an object
    (``-c -o NAME.o``) with no other output, else None."""
    if cmd.count("-c") != 1 or cmd.count("-o") != 1 or not cmd[-1].endswith(".cpp"):
        return None
    if any(a in ("-E", "-S", "-MF", "-MT", "-MQ") for a in cmd):
        return None
    k = cmd.index("-o")
    source = cmd[-1]
    if k + 1 >= len(cmd) - 1 or not cmd[k + 1].endswith(".o") or not os.path.isabs(source):
        return None
    if not os.path.isfile(os.path.join(os.path.dirname(source), "verilated.h")):
        return None
    return source, cmd[k + 1]


def _compiler(cxx: str) -> bytes:
    """The compiler's identity: its driver's and its C++ front end's paths, sizes and times."""
    found = []
    driver = shutil.which(cxx)
    if driver:
        found.append(driver)
        r = subprocess.run([driver, "-print-prog-name=cc1plus"], capture_output=True, text=True)
        if r.returncode == 0 and os.path.isabs(r.stdout.strip()):
            found.append(r.stdout.strip())
    out = [cxx]
    for path in found:
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except OSError:
            out.append(real)
            continue
        out.append(f"{real} {st.st_size} {st.st_mtime_ns}")
    return "\0".join(out).encode()


def key(cmd: list[str]) -> str | None:
    """The entry of compilation ``cmd`` (see the module's documentation), or None when its
    source does not preprocess (the compilation then runs uncached, and fails)."""
    k = cmd.index("-o")
    pre = [a for a in cmd[:k] + cmd[k + 2 :] if a != "-c" and a not in _DEP_OPTIONS]
    r = subprocess.run([*pre, "-E"], capture_output=True)
    if r.returncode != 0:
        return None
    h = hashlib.sha256(b"%d\0" % FORMAT)
    h.update(_compiler(cmd[0]) + b"\0" + "\0".join(cmd).encode() + b"\0")
    h.update(r.stdout)
    return h.hexdigest()


def _header(obj: bytes, deps: bytes) -> bytes:
    digest = hashlib.sha256(obj + deps).hexdigest()
    return b"%s %d %d %d %s\n" % (_MAGIC, FORMAT, len(obj), len(deps), digest.encode())


def _unpack(data: bytes) -> tuple[bytes, bytes]:
    """The object and dependency file in entry file contents ``data``; ``ValueError``
    saying what is wrong with them."""
    head, newline, body = data.partition(b"\n")
    fields = head.split(b" ")
    if fields[0] != _MAGIC or not newline:
        raise ValueError("has no header (garbage, or truncated)")
    if len(fields) < 2 or fields[1] != b"%d" % FORMAT:
        raise ValueError(f"is not of format {FORMAT}")
    if len(fields) != 5 or not fields[2].isdigit() or not fields[3].isdigit():
        raise ValueError("has a damaged header")
    n = int(fields[2])
    if len(body) != n + int(fields[3]):
        raise ValueError(f"holds {len(body)} bytes, its header says {n + int(fields[3])}")
    obj, deps = body[:n], body[n:]
    if _header(obj, deps) != head + newline:
        raise ValueError("fails its checksum (corrupted)")
    return obj, deps


def _store(entry: str, obj_file: str, dep_file: str) -> None:
    """Keep the object and its dependency file (if any) as ``entry``; a cache that cannot
    be written only costs the next build its compilation."""
    from common.files import atomic_write

    try:
        with open(obj_file, "rb") as f:
            obj = f.read()
        deps = b""
        if os.path.isfile(dep_file):
            with open(dep_file, "rb") as f:
                deps = f.read()
        os.makedirs(os.path.dirname(entry), exist_ok=True)
        atomic_write(entry, _header(obj, deps) + obj + deps)
    except OSError:
        pass


def main(cmd: list[str]) -> int:
    if not cmd:
        print("usage: objcache.py CXX ARGS...", file=sys.stderr)
        return 2
    cache = os.environ.get(CACHE_ENV)
    job = runtime_compile(cmd) if cache else None
    name = key(cmd) if job else None
    if name is None:
        os.execvp(cmd[0], cmd)  # not the run-time library: the compiler, as if called directly
    obj_file = job[1]
    dep_file = os.path.splitext(obj_file)[0] + ".d"  # what -MMD writes beside the object
    entry = os.path.join(cache, name)
    try:
        with open(entry, "rb") as f:
            obj, deps = _unpack(f.read())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:
        print(f"objcache: entry {entry} {getattr(e, 'strerror', None) or e}; compiling again")
    else:
        with open(obj_file, "wb") as f:
            f.write(obj)
        if deps:
            with open(dep_file, "wb") as f:
                f.write(deps)
        print(f"objcache: {obj_file} from {entry}")
        return 0
    rc = subprocess.call(cmd)
    if rc == 0:
        _store(entry, obj_file, dep_file)
    return rc


if __name__ == "__main__":
    # Run by make as a script (``python -I -S``): the repository is not on the path.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main(sys.argv[1:]))
