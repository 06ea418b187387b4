"""A board's host link in simulation: frames and parameter writes sent over the UART pins of
a Verilator build of :class:`semifreddo_hw.link.UARTLink`, the answer decoded and every output
beat compared with the golden model (numpy and :mod:`spec.link` only)."""

import numpy as np

from spec import names
from spec.link import (
    decode,
    encode_frame,
    encode_shuffle,
    encode_status,
    encode_swap,
    encode_write,
)
from spec.stream import EOF_BIT, EOL_BIT

from .backbone import output_beats
from .errors import SimulationMismatch
from .golden.backbone import backbone

__all__ = ["host_bytes", "expected_answer", "answer_bytes", "check_answer", "run_link"]


def host_bytes(net, frames, *, writes=(), shuffle=False, swap=False) -> bytes:
    """What the host sends: the parameter writes (and, ``swap``, for a design with two
    parameter sets, the swap that makes them the frames' set), the shuffle setting
    (networks with the shuffle), the frames, then a status request."""
    out = b"".join(encode_write(a, v) for a, v in writes)
    if swap:
        out += encode_swap()
    if net.core_shuffle:
        out += encode_shuffle(shuffle)
    return out + b"".join(encode_frame(f) for f in frames) + encode_status()


def expected_answer(net, params, frames, *, shuffle=False) -> dict:
    """Per output (:meth:`spec.network.Network.outputs`), the golden ``(beats, sides)`` the
    board sends for ``frames``: a head group that pools sends one beat per frame."""
    golden = [backbone(net, params, f, shuffle=shuffle) for f in frames]
    return {out: output_beats([g[out] for g in golden]) for out, _ in net.outputs()}


def answer_bytes(net, params, frames, *, shuffle=False) -> int:
    """Bytes of the board's answer to :func:`host_bytes`: every output beat with its tag,
    and the status record."""
    channels = dict(net.outputs())
    want = expected_answer(net, params, frames, shuffle=shuffle)
    return sum(len(b) * (1 + channels[o]) for o, (b, _) in want.items()) + 2


def check_answer(net, params, frames, answer: bytes, channels, *, shuffle=False) -> dict:
    """Check the board's ``answer`` to :func:`host_bytes`: per output, every beat and marker
    against the golden model, nothing more, and one status record with every flag low.
    Raises :class:`~sim.errors.SimulationMismatch` naming the first difference; returns the
    beats received per output port."""
    got = decode(answer, channels)
    expected = expected_answer(net, params, frames, shuffle=shuffle)
    for k, (out, _) in enumerate(net.outputs()):
        port = names.output_port(out)
        want, sides = expected[out]
        beats, markers = got.beats[k], got.markers[k]
        for n, (w, side) in enumerate(zip(want, sides, strict=True)):
            if n >= len(beats):
                raise SimulationMismatch(f"{port}: {len(beats)} of {len(want)} beats came back")
            exp = (bool(side >> EOL_BIT & 1), bool(side >> EOF_BIT & 1))
            diff = np.flatnonzero(np.asarray(w) != beats[n])
            if diff.size or markers[n] != exp:
                raise SimulationMismatch(
                    f"{port}: beat {n}: {diff.size} lanes differ"
                    + "".join(f"; lane {j}: expected {w[j]} got {beats[n][j]}" for j in diff[:4])
                    + (f"; markers: expected {exp} got {markers[n]}" if markers[n] != exp else "")
                )
        if len(beats) > len(want):
            raise SimulationMismatch(f"{port}: {len(beats) - len(want)} beats too many")
    if got.rest or len(got.status) != 1 or any(got.status[0].values()):
        raise SimulationMismatch(
            f"status: expected one record with every flag low, got {got.status} "
            f"and {len(got.rest)} stray bytes"
        )
    return {names.output_port(o): len(got.beats[k]) for k, (o, _) in enumerate(net.outputs())}


def run_link(
    design,
    net,
    params,
    frames,
    channels,
    *,
    divisor,
    writes=(),
    shuffle=False,
    swap=False,
    test_name,
    seed=0,
    gap=0.2,
) -> dict:
    """Send :func:`host_bytes` through ``design`` (a :class:`sim.rtl.VerilatorDesign` of the
    link, UART ``divisor``; ``swap``: its backbone has two parameter sets) and check the
    answer (:func:`check_answer`)."""
    send = host_bytes(net, frames, writes=writes, shuffle=shuffle, swap=swap and bool(writes))
    expect = answer_bytes(net, params, frames, shuffle=shuffle)
    # Each byte takes 10 bits each way plus the random pauses; then a frame's latency.
    limit = (len(send) + expect) * divisor * 15 + 100 * net.width * net.height
    stats = design.run_bench(
        "sim.tb.uart_tb",
        {
            "send": send.hex(),
            "divisor": divisor,
            "gap": gap,
            "expect": expect,
            "max_cycles": limit,
            "seed": seed,
        },
        test_name,
    )
    if stats["line_errors"]:
        raise SimulationMismatch(f"tx: {stats['line_errors']} bytes with a low stop bit")
    answer = bytes.fromhex(stats["received"])
    received = check_answer(net, params, frames, answer, channels, shuffle=shuffle)
    return {"cycles": stats["cycles"], "sent": send, "answer": answer, "received": received}
