"""Run-time configurable parameters: weights, scales and biases that live in SRAM."""

from amaranth.hdl import Cat, Module, Mux, Shape, ShapeCastable, Signal, Value, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["ParamBank", "PhaseBank", "per_set", "write_layout"]

_CHUNK = 256  # elements per memory


def _rows(elem, count: int, sets: int, init) -> list[list[int]]:
    """``init`` (``sets`` rows of ``count`` values; None: zeros) as lists of ints, each
    checked to fit ``elem``."""
    shape = Shape.cast(elem)
    lo, hi = (
        (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1)
        if shape.signed
        else (0, (1 << shape.width) - 1)
    )
    rows = (
        [[0] * count for _ in range(sets)]
        if init is None
        else [[int(v) for v in row] for row in init]
    )
    if len(rows) != sets or any(len(r) != count for r in rows):
        raise ValueError(f"init must be {sets} row(s) of {count} values")
    for r, row in enumerate(rows):
        for k, v in enumerate(row):
            if not lo <= v <= hi:
                raise ValueError(f"init[{r}][{k}] = {v} does not fit {shape}")
    return rows


def per_set(init, default, sets: int) -> list:
    """``sets`` rows of power-up values from ``init``: None (``default`` in every set), one
    row (every set), or a sequence of ``sets`` rows (one per set, as a block run several
    passes per beat has: :func:`~.streams.beat_set`)."""
    if init is None:
        return [list(default)] * sets
    if len(init) and all(hasattr(r, "__len__") for r in init):
        return [list(r) for r in init]  # checked against the bank's shape by _rows
    return [list(init)] * sets


def write_layout(elem: ShapeCastable, count: int, sets: int) -> data.StructLayout:
    """One parameter write: element ``index`` of weight set ``set`` becomes ``value``."""
    return data.StructLayout(
        {"set": unsigned(ceil_log2(sets)), "index": unsigned(ceil_log2(count)), "value": elem}
    )


class ParamBank(wiring.Component):
    """``count`` parameters of shape ``elem``, all readable every cycle, writable one at a time.

    A fully pipelined layer needs every parameter in every cycle, so the bank is one memory
    row per weight set (``sets`` rows, one by default), ``count`` elements wide, with a
    per-element write enable: a synthesis tool maps it to flip-flops or wide RAM as it sees
    fit (the row is split over memories of at most 256 elements). ``init`` gives the
    power-up contents (an initial image), a list of ``sets`` rows.

    Ports
    -----
    write : In(stream, always ready)
        ``{set, index, value}``; writes with ``index >= count`` or ``set >= sets`` are ignored.
    select : In(range(sets))
        The weight set :attr:`data` shows (for blocks run several times per frame); a
        value past the last set shows set 0.
    data : Out(ArrayLayout(elem, 256)).array(chunks)
        The selected set, read asynchronously: a write shows from the next cycle, a new
        ``select`` at once. Element ``k`` is :meth:`element` ``(k)``; the row comes in
        chunks of 256 because Amaranth caps one signal at 65,536 bits (a 128x128
        layer's weights are 131,072). Lanes past ``count`` read 0.
        Write a set only while no beat computed with it is inside the block.
    """

    def __init__(self, elem: ShapeCastable, count: int, *, sets: int = 1, init=None):
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, not {count!r}")
        if not isinstance(sets, int) or sets < 1:
            raise ValueError(f"sets must be a positive integer, not {sets!r}")
        rows = _rows(elem, count, sets, init)
        self.elem, self.count, self.sets, self.init = elem, count, sets, rows
        super().__init__(
            {
                "write": In(stream.Signature(write_layout(elem, count, sets), always_ready=True)),
                "select": In(range(sets)),
                "data": Out(data.ArrayLayout(elem, _CHUNK)).array(-(-count // _CHUNK)),
            }
        )

    @property
    def address_count(self) -> int:
        """Write indices of one set: one per element."""
        return self.count

    @property
    def write_rows(self) -> tuple[int, int]:
        """``(elements, indices)`` of one row of write indices (:class:`PhaseBank`'s): here
        one row holds every element, no gaps."""
        return self.count, self.count

    def address(self, k: int) -> int:
        """The write index of element ``k``: ``k``."""
        if not 0 <= k < self.count:
            raise IndexError(f"element {k} out of range for {self.count} parameters")
        return k

    def element(self, k: int):
        """Element ``k`` of the selected set (a value of shape ``elem``)."""
        if not 0 <= k < self.count:
            raise IndexError(f"element {k} out of range for {self.count} parameters")
        return self.data[k // _CHUNK][k % _CHUNK]

    @property
    def bits(self) -> int:
        """Storage bits of the bank."""
        return Shape.cast(self.elem).width * self.count * self.sets

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self.elem).width
        req = self.write.payload
        write_ok = self.write.valid & (req.set < self.sets)
        # Memories of at most _CHUNK elements each: narrower arrays map better onto RAM
        # blocks, and keep the emitted Verilog within simulator line limits.
        for base in range(0, self.count, _CHUNK):
            n = min(_CHUNK, self.count - base)
            mem = memory.Memory(
                shape=data.ArrayLayout(self.elem, n),
                depth=self.sets,
                init=[row[base : base + n] for row in self.init],
            )
            m.submodules[f"mem{base // _CHUNK}"] = mem
            wr = mem.write_port(granularity=1)
            rd = mem.read_port(domain="comb")
            m.d.comb += [
                wr.addr.eq(req.set),
                wr.data.eq(Value.cast(req.value).replicate(n)),
                # A select past the last set reads set 0, not undefined memory.
                rd.addr.eq(Mux(self.select < self.sets, self.select, 0)),
                Value.cast(self.data[base // _CHUNK])[: n * width].eq(rd.data),
            ]
            # One-hot element enable within this memory: a decoder of equality tests (a
            # variable shift of a one-bit constant makes Amaranth's netlist checks slow down
            # with the square of the element count).
            m.d.comb += wr.en.eq(Cat(write_ok & (req.index == base + e) for e in range(n)))
        return m


class PhaseBank(wiring.Component):
    """``count`` parameters of shape ``elem`` (per weight set), read one row of ``lanes`` at
    a time: the parameters of a folded block (:mod:`.fold`), which works on one group of
    ``lanes`` channels (or weights) per cycle.

    Row ``set * rows + phase`` (``rows = count / lanes``) holds elements ``phase * lanes ...``
    of that set: a memory ``lanes`` elements wide and ``sets * rows`` deep, read
    synchronously, the shape of a block RAM. On the write port, element ``k`` is at index
    :meth:`address` ``(k)``: its row times ``stride`` (``lanes`` rounded up to a power of
    two) plus its lane, so that row and lane are bit fields of the index and the write path
    needs no divider; indices in the gaps are ignored.

    Ports
    -----
    write : In(stream, always ready)
        ``{set, index, value}`` as :class:`ParamBank`'s (index: :meth:`address`);
        out-of-range writes are ignored.
    select, phase : In
        The set and row to read; a ``select`` past the last set reads set 0.
    en : In(1)
        Read enable: ``data`` shows the row addressed in the last cycle ``en`` was high.
    data : Out(ArrayLayout(elem, lanes))
        The row read. Write a set only while no beat computed with it is inside the block.
    """

    def __init__(self, elem: ShapeCastable, count: int, lanes: int, *, sets: int = 1, init=None):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
        if not isinstance(count, int) or count < 1 or count % lanes:
            raise ValueError(f"count must be a positive multiple of {lanes} lanes, not {count!r}")
        if not isinstance(sets, int) or sets < 1:
            raise ValueError(f"sets must be a positive integer, not {sets!r}")
        self.lanes, self.rows, self.stride = lanes, count // lanes, 1 << ceil_log2(lanes)
        self.elem, self.count, self.sets = elem, count, sets
        self.init = _rows(elem, count, sets, init)
        super().__init__(
            {
                "write": In(
                    stream.Signature(
                        write_layout(elem, self.address_count, sets), always_ready=True
                    )
                ),
                "select": In(range(sets)),
                "phase": In(range(self.rows)),
                "en": In(1),
                "data": Out(data.ArrayLayout(elem, lanes)),
            }
        )

    @property
    def address_count(self) -> int:
        """Write indices of one set (elements and gaps)."""
        return self.rows * self.stride

    @property
    def write_rows(self) -> tuple[int, int]:
        """``(lanes, stride)``: element ``k`` is at write index ``k // lanes * stride + k %
        lanes`` (:meth:`address`)."""
        return self.lanes, self.stride

    def address(self, k: int) -> int:
        """The write index of element ``k`` (row-major: row ``k // lanes``)."""
        if not 0 <= k < self.count:
            raise IndexError(f"element {k} out of range for {self.count} parameters")
        return k // self.lanes * self.stride + k % self.lanes

    @property
    def bits(self) -> int:
        """Storage bits of the bank."""
        return Shape.cast(self.elem).width * self.count * self.sets

    def _row(self, set_, phase):
        """The memory row of ``phase`` in weight set ``set_`` (no multiplier for one set)."""
        return phase if self.sets == 1 else set_ * self.rows + phase

    def elaborate(self, platform):
        m = Module()
        lanes, rows = self.lanes, self.rows
        shift = self.stride.bit_length() - 1
        mem = memory.Memory(
            shape=data.ArrayLayout(self.elem, lanes),
            depth=self.sets * rows,
            init=[row[p * lanes : (p + 1) * lanes] for row in self.init for p in range(rows)],
            # A set is written only while no beat reads it (the other set, with two, may be
            # read meanwhile: another row): no read-during-write logic around the block RAM.
            attrs={"no_rw_check": 1},
        )
        m.submodules.mem = mem
        req = self.write.payload
        wr = mem.write_port(granularity=1)
        row = req.index >> shift
        ok = self.write.valid & (req.set < self.sets) & (row < rows)
        m.d.comb += [
            wr.addr.eq(self._row(req.set, row)),
            wr.data.eq(Value.cast(req.value).replicate(lanes)),
        ]
        if shift == 0:
            m.d.comb += wr.en.eq(ok)
        else:
            lane = Signal(range(self.stride), name="wr_lane")
            m.d.comb += lane.eq(req.index[:shift])
            m.d.comb += wr.en.eq(Cat(ok & (lane == e) for e in range(lanes)))
        # A combinational read into a register with an enable: what Yosys maps onto one
        # block RAM with nothing around it (its synchronous read port adds bypass logic).
        rd = mem.read_port(domain="comb")
        select = Mux(self.select < self.sets, self.select, 0)
        m.d.comb += rd.addr.eq(self._row(select, self.phase))
        # Without a reset (the row is read beside its beat's valid bit), so that on an ECP5
        # the register the read becomes has no reset either and the block RAM's output
        # register can take the product's copy of it (``generators.ecp5_outreg``).
        row_reg = Signal.like(self.data, name="row", reset_less=True)
        m.d.comb += self.data.eq(row_reg)
        with m.If(self.en):
            m.d.sync += Value.cast(row_reg).eq(rd.data)
        return m
