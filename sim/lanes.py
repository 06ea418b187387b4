"""How stream payloads pack into integers: ``count`` lanes of ``width`` bits (lane 0 lowest),
then side-band bits. Shared by the test runners and the cocotb testbench (no Amaranth here, so
the testbench can import it inside the simulator)."""

import dataclasses

__all__ = ["Lanes", "pack", "unpack"]


@dataclasses.dataclass(frozen=True)
class Lanes:
    """How a stream payload is packed: ``count`` lanes of ``width`` bits (lane 0 lowest),
    then ``side_width`` side-band bits."""

    count: int
    width: int
    signed: bool = True
    side_width: int = 0


def pack(values, lanes: Lanes, side: int = 0) -> int:
    """Lane values (Python ints) and side bits to the payload integer."""
    values = [int(v) for v in values]
    if len(values) != lanes.count:
        raise ValueError(f"expected {lanes.count} lanes, got {len(values)}")
    mask = (1 << lanes.width) - 1
    word = 0
    for k, v in enumerate(values):
        lo, hi = (
            (-(1 << (lanes.width - 1)), (1 << (lanes.width - 1)) - 1) if lanes.signed else (0, mask)
        )
        if not lo <= v <= hi:
            raise ValueError(f"lane {k} value {v} does not fit {lanes.width} bits")
        word |= (v & mask) << (k * lanes.width)
    return word | (int(side) << (lanes.count * lanes.width))


def unpack(word: int, lanes: Lanes) -> tuple[list[int], int]:
    """Inverse of :func:`pack`: (lane values, side bits)."""
    mask = (1 << lanes.width) - 1
    values = []
    for k in range(lanes.count):
        v = (word >> (k * lanes.width)) & mask
        if lanes.signed and v >> (lanes.width - 1):
            v -= 1 << lanes.width
        values.append(v)
    return values, word >> (lanes.count * lanes.width)
