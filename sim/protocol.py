"""The stream rule of ``amaranth.lib.stream``, checked on every port a testbench drives or
reads: once a producer raises ``valid``, it holds ``valid`` and the payload unchanged until
the beat moves (``valid`` and ``ready`` high at a clock edge). Both testbenches (cocotb's
:mod:`sim.tb.stream_tb` and Amaranth's :mod:`sim.pysim`) sample each port once per cycle,
just before the edge, and feed a :class:`StreamMonitor`; the first violation is a
:class:`~sim.errors.SimulationMismatch` naming the port and the cycle.

Frame markers need no rule of their own here: every beat, side bits included, is compared
with the golden model's, which places them.
"""

from .errors import SimulationMismatch

__all__ = ["StreamMonitor"]


class StreamMonitor:
    """Checks one stream port, a sample per cycle (:meth:`sample`)."""

    def __init__(self, port: str):
        self.port = port
        self.held = None  # the payload of a beat offered and not yet taken
        self.beats = 0  # beats moved so far

    def sample(self, cycle: int, valid: bool, ready: bool, payload: int) -> None:
        """The port's ``valid``, ``ready`` and payload (as an integer) just before the edge
        that ends ``cycle``."""
        if self.held is not None:
            if not valid:
                raise SimulationMismatch(
                    f"{self.port}: stream protocol: valid dropped in cycle {cycle} before beat "
                    f"{self.beats} was taken"
                )
            if payload != self.held:
                raise SimulationMismatch(
                    f"{self.port}: stream protocol: payload of beat {self.beats} changed in "
                    f"cycle {cycle} before it was taken ({self.held:#x} -> {payload:#x})"
                )
        self.held = payload if valid and not ready else None
        self.beats += bool(valid and ready)
