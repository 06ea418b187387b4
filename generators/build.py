"""``python -m generators.build --freeze FILE [--trainable FILE]``: weights in, Verilog,
parameter images and reports out (``docs/weights-format.md``, ``README.md``).

A ``semifreddo-frozen`` version 2 file builds the whole backbone; version 1 (frozen pointwise
layers only) builds one module per layer. Both run the steps of :mod:`.steps`.

Exit codes: 0 built; 2 bad input (one line on stderr naming the problem, nothing written);
1 internal error. The output directory appears whole or not at all, and only ever replaces
an earlier build's. ``timing.json`` records each step's time and peak memory; every other
file is the same for the same inputs.
"""

import json
import sys
from pathlib import Path

from common.cli import Parser, run_command
from common.files import GuardedDir, OutputError
from common.parallel import cpu_jobs
from semifreddo_hw.cmvm import SOLVERS
from spec.names import is_module_name
from spec.network import PRESETS
from weights.files import network_option
from weights.io import WeightFileError
from weights.quantize import CALIBRATIONS, PERCENTILE

from . import steps
from .backbone_build import FOLDS
from .design import BuildConfig

__all__ = [
    "BuildError",
    "MARKER",
    "build",
    "run_build",
    "write_output",
    "output_dir",
    "parser",
    "main",
]


class BuildError(Exception):
    """Bad input other than the weight file itself (an argument)."""


#: Marks a directory as written by this tool: only such a directory is ever replaced.
MARKER = ".semifreddo-build"


def output_dir(out) -> GuardedDir:
    """The build output directory ``out``, guarded by :data:`MARKER`."""
    return GuardedDir(out, MARKER, what=f"--out {out}", kind="a build output directory")


def parser(
    prog: str = "python -m generators.build",
    description: str = "Build SemifreddoNets gateware from weights.",
) -> Parser:
    """The build's options (the board command adds its own)."""
    p = Parser(prog=prog, description=description)
    p.add_argument(
        "--freeze",
        required=True,
        metavar="FILE",
        help="frozen weight file (.npz, docs/weights-format.md)",
    )
    p.add_argument(
        "--trainable",
        metavar="FILE",
        help="trainable weight file (.npz): trainable cores, alphas, every layer's "
        "requantization; without it run-time parameters power up as zero",
    )
    net = p.add_mutually_exclusive_group()
    net.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        metavar="NAME",
        help=f"network description by name ({', '.join(PRESETS)}); needed "
        f"only when the frozen file has none, and must agree if it has",
    )
    net.add_argument(
        "--config",
        metavar="FILE",
        help="network description as JSON (the frozen file's 'network' entry format)",
    )
    p.add_argument(
        "--calib",
        metavar="FILE",
        help="calibration frames for float weights: .npz with 'frames' uint8 "
        "(N, H, W, C) (default: 8 to 128 deterministic random frames, enough for 512 output "
        "pixels)",
    )
    p.add_argument(
        "--calib-method",
        choices=CALIBRATIONS,
        default=CALIBRATIONS[0],
        help=f"activation clipping level for float weights: percentile ({PERCENTILE} %% of "
        "|y|, default), mse (least squared int8 error) or max (the largest |y|)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=cpu_jobs(),
        metavar="N",
        help="worker processes for planning and Verilog emission (default: the CPUs available)",
    )
    p.add_argument(
        "--out",
        default="build/out",
        metavar="DIR",
        help="output directory, replaced atomically (default: build/out)",
    )
    p.add_argument(
        "--top",
        default="semifreddo",
        metavar="NAME",
        help="Verilog module name prefix (default: semifreddo)",
    )
    p.add_argument(
        "--solver",
        choices=SOLVERS,
        default="da4ml",
        help="adder-graph planner (default: da4ml; csd is the unshared baseline)",
    )
    p.add_argument(
        "--fold",
        choices=FOLDS,
        default="spatial",
        help="spatial: one beat per clock in every layer (default); rate: each layer folded "
        "to the rate of its beats, multipliers and parameters shared over cycles, frozen "
        "products digit-serial (FPGAs)",
    )
    p.add_argument(
        "--fps",
        type=float,
        metavar="N",
        help="with --fold rate: fold as far as N frames per second at --clock-mhz allow "
        "(the input then takes a pixel every clock_mhz / (N * width * height) cycles)",
    )
    p.add_argument(
        "--frozen-rom",
        type=int,
        default=0,
        metavar="N",
        help="with --fold rate: a frozen layer of N weights or more whose beats leave one "
        "multiplier time for all of them reads its weights from a ROM beside that multiplier "
        "instead of running a bit-serial shift-add graph (default 0: never; the board "
        "build's default is generators.board.BOARD_FROZEN_ROM, 72)",
    )
    p.add_argument(
        "--relays",
        type=int,
        default=0,
        metavar="N",
        help="N register slices on each stream that passes other blocks in the floorplan's "
        "order (a trainable stage's input and output, the frozen stage's halves): latency "
        "only, for FPGA placement (default 0)",
    )
    p.add_argument(
        "--clock-mhz",
        type=float,
        default=100.0,
        metavar="MHZ",
        help="the design clock, for --fps (default: 100)",
    )
    p.add_argument(
        "--no-swap",
        dest="swap",
        action="store_false",
        help="one set of run-time parameters instead of two (half the parameter memory; "
        "write them only while no frame is inside); by default writes go to a shadow set "
        "that param_swap switches in at a frame boundary",
    )
    p.add_argument(
        "--levels-per-stage",
        type=int,
        default=2,
        metavar="N",
        help="adder levels between pipeline registers (default: 2)",
    )
    p.add_argument(
        "--serial-levels-per-stage",
        type=int,
        default=3,
        metavar="N",
        help="the same for bit-serial frozen products (--fold rate), where an adder level is "
        "one LUT (default: 3)",
    )
    return p


def run_build(args, log=print, **options) -> tuple[GuardedDir, steps.Build, dict]:
    """Check the arguments and run the build steps: the guarded output directory (checked,
    not yet written), the finished :class:`~.steps.Build` and the files to write.
    ``options``: further :class:`~.design.BuildConfig` fields (a board's ``dsp``)."""
    if not is_module_name(args.top):
        raise BuildError(
            f"--top {args.top!r} is not a Verilog identifier of at most 64 "
            f"characters (and not a keyword)"
        )
    if args.levels_per_stage < 1 or args.serial_levels_per_stage < 1:
        raise BuildError("--levels-per-stage and --serial-levels-per-stage must be at least 1")
    if args.jobs < 1:
        raise BuildError("--jobs must be at least 1")
    if args.fps is not None and (args.fold != "rate" or args.fps <= 0 or args.clock_mhz <= 0):
        raise BuildError("--fps needs --fold rate, a positive rate and a positive --clock-mhz")
    if args.frozen_rom < 0:
        raise BuildError("--frozen-rom must be 0 or more")
    if args.relays < 0:
        raise BuildError("--relays must be 0 or more")
    if args.frozen_rom and args.fold != "rate":
        raise BuildError(
            "--frozen-rom needs --fold rate (a spatial build's frozen layers stay shift-add graphs)"
        )
    out = output_dir(args.out)
    out.check()
    config = BuildConfig(
        freeze=Path(args.freeze),
        trainable=None if args.trainable is None else Path(args.trainable),
        network=network_option(args.preset, args.config),
        calib=None if args.calib is None else Path(args.calib),
        calib_method=args.calib_method,
        top=args.top,
        solver=args.solver,
        levels_per_stage=args.levels_per_stage,
        serial_levels_per_stage=args.serial_levels_per_stage,
        fold=args.fold,
        fps=args.fps,
        clock_mhz=args.clock_mhz,
        swap=args.swap,
        frozen_rom=args.frozen_rom,
        relays=args.relays,
        jobs=args.jobs,
        **options,
    )
    b = steps.run(config, log)
    return out, b, {**b.files, "timing.json": json.dumps(b.timing, indent=2) + "\n"}


def write_output(out: GuardedDir, files: dict, log=print) -> None:
    """Write ``files`` (``{relative path: text or bytes}``) as the output directory, whole."""

    def write(d: Path) -> None:
        for name, data in files.items():
            path = d / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, str):
                path.write_text(data)
            else:
                path.write_bytes(data)

    out.replace(write, "written by python -m generators.build; replaced on rebuild\n")
    log(f"wrote {out.path}: {len(files)} files")


def build(args, log=print) -> Path:
    """Check the arguments, run the build steps, write the output directory."""
    out, _, files = run_build(args, log)
    write_output(out, files, log)
    return Path(args.out)


def _run(args, log) -> None:
    build(args, log)


def main(argv=None) -> int:
    return run_command(parser(), _run, (WeightFileError, BuildError, OutputError), argv)


if __name__ == "__main__":
    sys.exit(main())
