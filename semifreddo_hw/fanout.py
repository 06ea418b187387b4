"""Registered copies of a signal for groups of far loads, kept apart through synthesis.

A register whose loads are spread over the die (the parameter bus into every memory, a
digit-serial layer's per-stage control into every carry of the stage) is a long route
whatever the logic behind it. FPGA flows cure it with a copy of the register per group of
loads, each placed beside its group. Synthesis undoes that: registers with the same inputs
are merged (Yosys' ``opt_merge``, the vendors' equivalent-register removal). Each copy made
here is a signal with the ``keep`` attribute, which the vendor tools honour on a register;
Yosys keeps the attribute on the wire, not on the flip-flop that drives it, so the board
flow's script runs :data:`KEEP_COPIES` first, which marks those flip-flops kept too.

Measured: on the ``small`` board build, the parameter bus's per-group registers (one set
per block, blend and repeat loop) had all been merged into the first group's, so one
register drove the write ports of every memory on the die.
"""

from amaranth.hdl import Signal, Value

__all__ = ["KEEP", "KEEP_COPIES", "kept_copy"]

#: The attributes of a register that synthesis must not merge with an equal one.
KEEP = {"keep": 1}

#: Yosys commands (after ``proc``): every flip-flop driving a wire with the ``keep``
#: attribute gets it too, so ``opt_merge`` leaves the copies apart.
KEEP_COPIES = "setattr -set keep 1 a:keep %ci1:+$dff[Q] t:$dff %i"


def kept_copy(m, value, *, name: str, enable=None, domain: str = "sync") -> Signal:
    """A register of ``value`` (loaded while ``enable`` is high, every cycle if None) that
    synthesis keeps apart from every equal one: one cycle later, for one group of loads."""
    value = Value.cast(value)
    copy = Signal(value.shape(), name=name, attrs=KEEP)
    load = m.d[domain]
    if enable is None:
        load += copy.eq(value)
    else:
        with m.If(enable):
            load += copy.eq(value)
    return copy
