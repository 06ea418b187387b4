"""How a simulation says the design is wrong, apart from everything else that can fail."""

__all__ = ["SimulationMismatch"]


class SimulationMismatch(Exception):
    """The design under test disagreed with what was expected: a wrong, missing or extra
    output beat, a raised error flag, or no progress (a hang). The message names the first
    such event. Any other exception from a simulation is a fault of the test bench or its
    inputs, never reported as a design mismatch."""
