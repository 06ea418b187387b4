"""Payload layouts shared by the streaming blocks."""

from amaranth.hdl import ShapeCastable, unsigned
from amaranth.lib import data

__all__ = ["vector_layout"]


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
