"""``python -m sim.host --port /dev/ttyUSB0 --build DIR``: the host side of a board built by
``python -m generators.board``: send the build's parameters and frames over the UART, read
the answer, and check every output beat against the golden model (protocol:
:mod:`spec.link`).

The port is anything pyserial opens (a device, or a URL such as ``socket://host:port``).
Exit codes: 0 every beat matched; 1 a wrong or missing answer (one line says which); 2 bad
input.
"""

import sys
import time
from pathlib import Path

import numpy as np

from common.cli import Parser, run_command
from spec import names
from spec.link import decode
from weights.io import WeightFileError, read_json

from .errors import SimulationMismatch
from .link import answer_bytes, check_answer, host_bytes
from .verify import VerifyError, input_frames, load_build, read_param_writes

__all__ = ["main", "read_param_writes", "exchange"]


def exchange(port, send: bytes, expect: int, timeout: float) -> bytes:
    """Write ``send`` to ``port`` (a pyserial port, or anything with ``write``/``read``) and
    read until ``expect`` bytes came back or ``timeout`` seconds passed without a byte."""
    port.write(send)
    answer = bytearray()
    last = time.monotonic()
    while len(answer) < expect and time.monotonic() - last < timeout:
        chunk = port.read(expect - len(answer))
        if chunk:
            answer += chunk
            last = time.monotonic()
    return bytes(answer)


def _parser() -> Parser:
    p = Parser(prog="python -m sim.host", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", required=True, help="serial port or pyserial URL")
    p.add_argument("--build", required=True, metavar="DIR", help="the board's build directory")
    p.add_argument("--baud", type=int, default=1_000_000, help="(default: 1000000)")
    p.add_argument("--frames", type=int, default=1, help="random frames (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input", metavar="FILE", help=".npz with 'frames' uint8 (N, H, W, C)")
    p.add_argument("--no-params", action="store_true", help="do not send param_writes.hex first")
    p.add_argument("--shuffle", choices=("on", "off"), default="on")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds without a byte")
    p.add_argument("--out", metavar="FILE", help="save each output's frames (.npz, by output port)")
    return p


def _run(args, log, open_port=None) -> int:
    import serial  # pyserial (board extra): only to talk to a board

    build = Path(args.build)
    net, params, *_ = load_build(build)
    frames = input_frames(args, net)
    writes = [] if args.no_params else read_param_writes(build / "param_writes.hex")
    shuffle = args.shuffle == "on" and net.core_shuffle
    # A design with two parameter sets loads the writes into its shadow set: swap them in.
    swap = bool(writes) and read_json(build / "report.json").get("parameter_sets") == 2
    send = host_bytes(net, frames, writes=writes, shuffle=shuffle, swap=swap)
    channels = [c for _, c in net.outputs()]
    w, h = net.output_size()
    expect = answer_bytes(net, params, frames, shuffle=shuffle)
    log(f"sending {len(send):,} bytes ({len(writes)} writes, {len(frames)} frame(s))")
    try:
        port = (open_port or serial.serial_for_url)(args.port, baudrate=args.baud, timeout=0.1)
    except (serial.SerialException, OSError) as e:
        raise VerifyError(f"--port {args.port}: {e}") from None
    with port:
        answer = exchange(port, send, expect, args.timeout)
    try:
        received = check_answer(net, params, frames, answer, channels, shuffle=shuffle)
    except SimulationMismatch as e:
        print(f"FAIL {args.port}: {str(e).splitlines()[0]} ({len(answer)} of {expect} bytes)")
        return 1
    print(f"PASS {args.port}: " + ", ".join(f"{p} {n} beats" for p, n in received.items()))
    if args.out:
        got = decode(answer, channels)
        # a pooled head group's answer is one vector per frame
        np.savez(
            args.out,
            **{
                names.output_port(o): np.stack(
                    got.beats[k] if getattr(params.get(o), "pool", 0) else got.frames(k, h, w)
                )
                for k, (o, _) in enumerate(net.outputs())
            },
        )
    return 0


def main(argv=None) -> int:
    return run_command(_parser(), _run, (VerifyError, WeightFileError), argv)


if __name__ == "__main__":
    sys.exit(main())
