"""Payload layouts shared by the streaming blocks."""

from amaranth.hdl import Cat, ShapeCastable, unsigned
from amaranth.lib import data

__all__ = ["vector_layout", "fork", "join", "shuffle_lanes"]


def vector_layout(elem: ShapeCastable, count: int, side_width: int = 0) -> data.StructLayout:
    """One beat: ``data``, ``count`` lanes of ``elem`` (lane 0 in the low bits), and ``side``,
    ``side_width`` bits that a block carries through unchanged, aligned with its result (line
    and frame markers, say)."""
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"lane count must be a positive integer, not {count!r}")
    if not isinstance(side_width, int) or side_width < 0:
        raise ValueError(f"side_width must be a non-negative integer, not {side_width!r}")
    return data.StructLayout({"data": data.ArrayLayout(elem, count),
                              "side": unsigned(side_width)})


def fork(m, src, *dsts) -> None:
    """Give every beat of stream ``src`` to all of ``dsts`` at once: it moves only in a cycle
    where every destination is ready (no destination ever sees a beat twice or misses one)."""
    m.d.comb += src.ready.eq(Cat(*(d.ready for d in dsts)).all())
    for k, d in enumerate(dsts):
        others = [o.ready for j, o in enumerate(dsts) if j != k]
        m.d.comb += d.valid.eq(src.valid & (Cat(*others).all() if others else 1))


def join(m, srcs, dst) -> None:
    """Handshake for a beat of ``dst`` built from one beat of each of ``srcs`` (the payload
    is the caller's): valid when all are, and all are consumed together."""
    all_valid = Cat(*(s.valid for s in srcs)).all()
    m.d.comb += dst.valid.eq(all_valid)
    for s in srcs:
        m.d.comb += s.ready.eq(dst.ready & all_valid)


def shuffle_lanes(channels: int) -> list[int]:
    """Two-group channel shuffle as a lane map: output ``2k`` is input ``k`` and output
    ``2k + 1`` is input ``channels/2 + k`` (wiring only)."""
    if channels % 2:
        raise ValueError(f"channel shuffle needs an even channel count, not {channels}")
    half = channels // 2
    return [k // 2 + (half if k % 2 else 0) for k in range(channels)]
