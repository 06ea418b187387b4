"""``python -m generators.build --freeze FILE [--trainable FILE]``: weights in, Verilog,
parameter images and reports out (``docs/weights-format.md``, ``README.md``).

A ``semifreddo-frozen`` version 2 file builds the whole backbone (:mod:`generators.flow`);
version 1 (frozen pointwise layers only) builds one module per layer (:mod:`.steps`).

Exit codes: 0 built; 2 bad input (one line on stderr naming the problem, nothing written);
1 internal error. The output directory appears whole or not at all.
"""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from semifreddo_hw.adder_graph import SOLVERS
from semifreddo_hw.emit import is_module_name
from semifreddo_hw.parallel import cpu_jobs
from weights.io import WeightFileError, load_npz
from weights.network import PRESETS

from . import flow, steps
from .cli import Parser, run_command


class BuildError(Exception):
    """Bad input other than the weight file itself (an argument)."""


#: Marks a directory as written by this tool: only such a directory is ever replaced.
MARKER = ".semifreddo-build"


def _check_out(out: Path) -> None:
    """Refuse to replace anything but an earlier build output, and a place where nothing can
    be written (checked before the build, not after it)."""
    try:
        if len(out.name) > 200:  # room for the temporary directory's suffix
            raise BuildError(f"--out {out}: the name is too long (at most 200 characters)")
        if out.is_symlink() or (out.exists() and not out.is_dir()):
            raise BuildError(f"--out {out} exists and is not a directory")
        if out.is_dir() and not (out / MARKER).is_file():
            raise BuildError(f"--out {out} exists and is not a build output directory "
                             f"(no {MARKER}); refusing to replace it")
        parent = out.resolve().parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise BuildError(f"--out {out}: {parent} is not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise BuildError(f"--out {out}: {parent} is not writable")
    except OSError as e:
        raise BuildError(f"--out {out}: {e.strerror or e}") from None


def parse_args(argv):
    p = Parser(prog="python -m generators.build",
                                description="Build SemifreddoNets gateware from weights.")
    p.add_argument("--freeze", required=True, metavar="FILE",
                   help="frozen weight file (.npz, docs/weights-format.md)")
    p.add_argument("--trainable", metavar="FILE",
                   help="trainable weight file (.npz): trainable cores, alphas, every layer's "
                        "requantization; without it run-time parameters power up as zero")
    net = p.add_mutually_exclusive_group()
    net.add_argument("--preset", choices=sorted(PRESETS), metavar="NAME",
                     help=f"network description by name ({', '.join(PRESETS)}); needed "
                          f"only when the frozen file has none, and must agree if it has")
    net.add_argument("--config", metavar="FILE",
                     help="network description as JSON (the frozen file's 'network' entry "
                          "format)")
    p.add_argument("--calib", metavar="FILE",
                   help="calibration frames for float weights: .npz with 'frames' uint8 "
                        "(N, H, W, C) (default: 8 deterministic random frames)")
    p.add_argument("--jobs", type=int, default=cpu_jobs(), metavar="N",
                   help="worker processes for planning and Verilog emission "
                        "(default: the CPUs available)")
    p.add_argument("--out", default="build/out", metavar="DIR",
                   help="output directory, replaced atomically (default: build/out)")
    p.add_argument("--top", default="semifreddo", metavar="NAME",
                   help="Verilog module name prefix (default: semifreddo)")
    p.add_argument("--solver", choices=SOLVERS, default="da4ml",
                   help="adder-graph planner (default: da4ml; csd is the unshared baseline)")
    p.add_argument("--levels-per-stage", type=int, default=2, metavar="N",
                   help="adder levels between pipeline registers (default: 2)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p.parse_args(argv)


def _write_atomically(out: Path, write) -> None:
    """``write(directory)`` fills a fresh temporary directory beside ``out``, which then
    replaces ``out`` in one rename (an earlier build is removed after)."""
    out = out.resolve()
    made = [d for d in reversed(out.parents) if not d.exists()]  # removed again on failure
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    except OSError as e:
        _remove_empty(made)
        raise BuildError(f"--out {out}: cannot create it ({e.strerror or e})") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result should not be
    try:
        write(tmp)
        (tmp / MARKER).write_text("written by python -m generators.build; replaced on rebuild\n")
        _check_out(out)  # again: something may have appeared there during the build
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


def _remove_empty(dirs) -> None:
    """Remove the directories ``dirs`` (outermost first) created for an output that failed."""
    for d in reversed(dirs):
        try:
            d.rmdir()
        except OSError:
            return


def _version(path) -> int:
    """The frozen file's format version (checked in full by the flow that reads it)."""
    v = load_npz(path).get("version")
    return int(v) if v is not None and v.shape == () and v.dtype.kind in "iu" else 2


def build(args, log=print) -> Path:
    if not is_module_name(args.top):
        raise BuildError(f"--top {args.top!r} is not a Verilog identifier of at most 64 "
                         f"characters (and not a keyword)")
    if args.levels_per_stage < 1:
        raise BuildError("--levels-per-stage must be at least 1")
    if args.jobs < 1:
        raise BuildError("--jobs must be at least 1")
    _check_out(Path(args.out))
    if _version(args.freeze) == 1:
        return _build_layers(args, log)
    return _build_backbone(args, log)


def _build_backbone(args, log) -> Path:
    t0 = time.perf_counter()

    def step(k, name):
        log(f"[{k}/6] {name} ({time.perf_counter() - t0:.1f} s)")

    step(1, f"load {args.freeze}" + (f" and {args.trainable}" if args.trainable else ""))
    b = flow.load(args.freeze, args.trainable,
                  flow.cli_network(args.preset, args.config), args.top)
    net = b.weights.net
    if args.calib is not None and b.weights.form != "float":
        raise BuildError(f"--calib {args.calib}: the weights are already int8; calibration "
                         f"frames only serve to quantize float weights")
    if not b.weights.trainable:
        log("warning: no --trainable file: every run-time parameter (trainable weights, "
            f"scales, biases, alphas) powers up as 0 and every shift is {flow.DEFAULT_SHIFT}")
    step(2, "quantize" if b.weights.form == "float" else "weights already int8")
    flow.quantize_step(b, args.calib)
    n_frozen = sum(c.frozen for c in net.convs())
    step(3, f"plan {n_frozen} frozen layer(s) with {args.solver}, {args.jobs} job(s)")
    flow.plan(b, args.solver, args.jobs)
    step(4, f"elaborate {net.name}: cores {', '.join(net.cores)}")
    flow.elaborate(b, args.solver, args.levels_per_stage)
    step(5, f"emit Verilog: {len(b.backbone.parts(args.top))} layer modules, "
            f"{args.jobs} job(s)")
    flow.emit(b, args.jobs, log)
    step(6, "write outputs")
    _write_atomically(Path(args.out), lambda d: flow.outputs(b, d))
    log(f"wrote {args.out} ({time.perf_counter() - t0:.1f} s)")
    return Path(args.out)


def _build_layers(args, log) -> Path:
    if args.trainable or args.preset or args.config or args.calib:
        raise BuildError("a version 1 frozen file (pointwise layers) takes no --trainable, "
                         "--preset, --config or --calib")
    source = Path(args.freeze)
    t0 = time.perf_counter()

    def step(k, name):
        log(f"[{k}/5] {name} ({time.perf_counter() - t0:.1f} s)")

    step(1, f"load {source}")
    arrays = steps.load(source)
    step(2, "validate")
    layers = steps.validate(source, arrays)
    step(3, f"plan {len(layers)} layer(s) with {args.solver}")
    steps.plan(layers, args.solver, log)
    step(4, "elaborate")
    steps.elaborate(layers, args.levels_per_stage)
    step(5, "emit Verilog and reports")
    files = steps.emit(layers, args.top)
    files["report.json"], files["report.md"] = steps.report(layers, source.name)

    def write(d):
        for name, text in files.items():
            (d / name).write_text(text)

    _write_atomically(Path(args.out), write)
    log(f"wrote {args.out}: {len(files)} files ({time.perf_counter() - t0:.1f} s)")
    return Path(args.out)


def main(argv=None) -> int:
    args = parse_args(argv)
    log = (lambda *_: None) if args.quiet else (lambda m: print(m, file=sys.stderr))

    def body():
        build(args, log)

    return run_command(body, (WeightFileError, BuildError))

if __name__ == "__main__":
    sys.exit(main())
