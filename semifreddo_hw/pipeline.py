"""Control for fixed-latency streaming pipelines.

Every arithmetic block here is a function of one input beat, computed over a fixed number of
register stages. :class:`Pipeline` supplies the handshake for such a block: all stages advance
together on one enable, which holds whenever the last stage has a beat the consumer does not
take. Nothing is lost or duplicated under any valid/ready pattern, and with ``o.ready`` held
high the block accepts one beat per clock.
"""

from amaranth.hdl import Module, Signal, Value

__all__ = ["Pipeline"]


class Pipeline:
    """Lock-step handshake for a stream function of ``latency`` register stages.

    Call :meth:`connect` once from ``elaborate``; then register every stage value with
    :meth:`stage` (or :meth:`delay`), which clocks it only while :attr:`en` is high.

    Attributes
    ----------
    en : Signal
        High in cycles where every stage register advances by one beat.
    """

    def __init__(self, latency: int, *, name: str = "pipe"):
        if not isinstance(latency, int) or latency < 0:
            raise ValueError(f"latency must be a non-negative integer, not {latency!r}")
        self.latency = latency
        self.name = name
        self.en = Signal(name=f"{name}_en")
        self._regs: list[tuple[Signal, Value]] = []
        self._finished = False

    def connect(self, m: Module, i, o) -> None:
        """Drive ``i.ready``, ``o.valid`` and the enable; ``i``/``o`` are stream interfaces."""
        if self.latency == 0:
            m.d.comb += [o.valid.eq(i.valid), i.ready.eq(o.ready), self.en.eq(1)]
        else:
            valid = [Signal(name=f"{self.name}_valid{k + 1}") for k in range(self.latency)]
            m.d.comb += [
                self.en.eq(~valid[-1] | o.ready),
                i.ready.eq(self.en),
                o.valid.eq(valid[-1]),
            ]
            with m.If(self.en):
                m.d.sync += valid[0].eq(i.valid)
                m.d.sync += [valid[k].eq(valid[k - 1]) for k in range(1, self.latency)]

    def stage(self, value: Value, shape=None, *, name: str) -> Signal:
        """A register that takes ``value`` whenever the pipeline advances."""
        if self._finished:
            raise RuntimeError("Pipeline.stage() after finish(): the register would be undriven")
        reg = Signal(value.shape() if shape is None else shape, name=name)
        self._regs.append((reg, value))
        return reg

    def delay(self, value: Value, cycles: int, *, name: str) -> Value:
        """``value`` delayed by ``cycles`` pipeline advances (a chain of stage registers)."""
        for k in range(cycles):
            value = self.stage(value, name=f"{name}_d{k + 1}")
        return value

    def finish(self, m: Module) -> None:
        """Emit all stage registers under the enable; call once at the end of ``elaborate``."""
        if self._finished:
            raise RuntimeError("Pipeline.finish() called twice")
        if self._regs:
            with m.If(self.en):
                m.d.sync += [reg.eq(value) for reg, value in self._regs]
        self._regs = []
        self._finished = True
