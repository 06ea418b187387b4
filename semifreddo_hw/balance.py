"""Delay balancing where two paths of different length meet (``docs/backbone.md``).

Every streaming block states its *lag*: the fewest and most output beats it holds while
frames stream through. Two paths forked from one stream and joined again run apart by at
most the longer one's most minus the shorter one's fewest; a FIFO that deep (plus a margin)
on the path that runs ahead lets it wait without stalling the fork, so the common input
never waits on a path that needs more input, and nothing deadlocks.
"""

__all__ = ["BALANCE_MARGIN", "chain_bounds", "fifo_depths"]

#: Beats added to every balancing FIFO beyond the lag bounds' difference.
BALANCE_MARGIN = 4


def chain_bounds(first, rest, slice_beats: int) -> tuple[int, int]:
    """Fewest and most beats a chain of blocks holds past its first block's window: the
    first block's pipelines, the ``rest`` whole, and a register slice of ``slice_beats``
    after each block."""
    lo = sum(b.lag[0] for b in rest)
    hi = first.pipe_beats + sum(b.lag[1] for b in rest) + slice_beats * (1 + len(rest))
    return lo, hi


def fifo_depths(frozen: tuple[int, int], trainable: tuple[int, int]) -> dict:
    """FIFO depths for a frozen and a trainable path (their ``(fewest, most)`` beats) that
    meet: ``trainable`` on the trainable path, ``frozen`` on the frozen path (0: none)."""
    (lo_f, hi_f), (lo_t, hi_t) = frozen, trainable
    return {
        "trainable": max(0, hi_f - lo_t) + BALANCE_MARGIN,
        "frozen": hi_t - lo_f + BALANCE_MARGIN if hi_t > lo_f else 0,
    }
