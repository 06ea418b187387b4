"""Verilog text for the matrix-vector blocks, written directly instead of through Amaranth.

:func:`frozen_matvec` and :func:`configurable_matvec` give, for a
:class:`~.matvec.FrozenMatVec` or :class:`~.matvec.ConfigurableMatVec`, a module that can
replace ``to_verilog(component, module)`` of the same object: the same ports (names, widths,
directions, payloads packed as the Amaranth layouts pack them, plus ``clk`` and ``rst``), the
same latency and handshake (:class:`~.pipeline.Pipeline`), the same register stages (the
adder graphs' :meth:`~.adder_graph.AdderGraph.pipelined` logic, which the Amaranth blocks
build too), and bit-identical output beats. Amaranth builds a netlist of every adder and
register before writing any text, which takes minutes and gigabytes for a 128x128 layer;
these functions write one line per value instead. The same object gives byte-identical text.

Deliberate differences from Amaranth's text, none visible in a stream's beats:

* Only the valid bits of the pipeline are reset (synchronously by ``rst``, as Amaranth's
  sync domain does) and start at 0. Data registers have no reset and no initial value: they
  are only read out with a valid bit set, by which time they hold the beat's value.
  Verilator gives them its power-up value (zero, unless randomised at run time with
  ``+verilator+rand+reset``); a synthesis tool saves the reset logic.
* The :class:`~.param_bank.ParamBank` of a configurable block is one Verilog array of
  ``sets * count`` elements with one write port and an asynchronous read per element (a
  write shows from the next cycle, ``select`` at once; a ``select`` past the last set
  reads set 0; writes with ``set >= sets`` or ``index >= count`` are ignored). Its power-up
  image is an ``initial`` block: Verilator runs it at time 0, and Yosys maps the array to
  flip-flops with those initial values (what FPGA flows load at configuration; an ASIC flow
  ignores them, as it does Amaranth's memory initialisers). ``rst`` does not reset the
  array, as it does not reset Amaranth's memories.
* Nothing is declared ``signed``: every value is a plain vector exactly as wide as its
  range, holding it in two's complement, and every operand of every addition, subtraction,
  negation, multiplication and assignment is written at exactly the width of its
  destination: sign-extended (``{{k{x[w-1]}}, x}``), shifted (``{x, 3'h0}``) or truncated
  (``x[w-1:0]``) explicitly, with sized constants. Nothing is left to Verilog's rules for
  widening operands to an expression's width, whose outcome hangs on the signedness of
  every operand (one unsigned operand makes the whole expression unsigned). Each operation
  is then arithmetic modulo its destination's width, which is the same for signed and
  unsigned operands, and exact because the destination holds the whole range; so
  ``signed`` would change nothing and is left out. (A configurable block's product is two
  int8 values sign-extended to 16 bits, multiplied modulo 2**16; Yosys's ``wreduce``
  recognises the extension and builds an 8x8 signed multiplier, as for Amaranth's text.)
  A value whose top bits no reader needs (its readers compute modulo a narrower width) is
  declared between ``// verilator lint_off UNUSEDSIGNAL`` and ``lint_on``: Verilator's
  ``--lint-only -Wall`` passes on the text, waiving only warnings about ports
  (``tests/test_verilog_lint.py``).
"""

from amaranth.hdl import Shape, Value
from amaranth.lib import data, wiring
from amaranth.utils import ceil_log2

from spec.formats import INT8_MAX, INT8_MIN

from .adder_graph import Pipelined, signed_width
from .matvec import ConfigurableMatVec, FrozenMatVec
from .ports import port_members

__all__ = ["frozen_matvec", "configurable_matvec", "text_writer"]


def _range(width: int) -> str:
    # Yosys writes a zero-width port as [-1:0]; so does this, to keep the port lists equal.
    return "" if width == 1 else f"[{width - 1}:0] "


def _slice(port: str, offset: int, width: int) -> str:
    return f"{port}[{offset}]" if width == 1 else f"{port}[{offset + width - 1}:{offset}]"


def _hex(value: int, width: int) -> str:
    return f"{width}'h{value & ((1 << width) - 1):x}"


def _dec(value: int, width: int) -> str:
    return f"{width}'d{value}"


def _fit(name: str, width: int, to: int, shift: int = 0) -> str:
    """``name``, a ``width``-bit two's complement value, shifted left by ``shift`` and written
    as exactly ``to`` bits: sign-extended, or truncated (exact modulo ``2**to``)."""
    if to <= shift:
        return _hex(0, to)
    parts = []
    if to - shift > width:
        sign = name if width == 1 else f"{name}[{width - 1}]"
        parts.append(f"{{{to - shift - width}{{{sign}}}}}")
    parts.append(name if to - shift >= width else _slice(name, 0, to - shift))
    if shift:
        parts.append(_hex(0, shift))
    return parts[0] if len(parts) == 1 else f"{{{', '.join(parts)}}}"


def _zext(name: str, width: int, to: int) -> str:
    """Unsigned ``name`` (``width`` bits) zero-extended to ``to`` bits."""
    return name if to == width else f"{{{_hex(0, to - width)}, {name}}}"


class _Module:
    """A module being written: port declarations, body lines and the pipeline registers,
    which all advance on one enable (``mv_en``)."""

    def __init__(self, component: wiring.Component, module: str, what: str):
        members = list(port_members(component))
        self.ports = {name: (len(Value.cast(v)), flow) for name, v, flow in members}
        self.layouts = {name: v.shape() for name, v, _ in members if isinstance(v, data.View)}
        self.module, self.what = module, what
        self.body: list[str] = []
        self.regs: list[str] = []  # "target <= source;" under the enable
        self.widths: dict[str, int] = {}  # of each wire and register
        self.declared: dict[str, int] = {}  # the line of ``body`` declaring each
        self.read: dict[str, int] = {}  # low bits of each value some reader needs

    def port_field(self, port: str, *path) -> tuple[int, Shape]:
        """Offset and shape of a field of port ``port``'s layout (``path``: field names and
        array indices), as Amaranth packs the layout."""
        layout, offset = None, 0
        for key in path:
            field = (layout or self.layouts[port])[key]
            offset += field.offset
            layout = field.shape
        return offset, Shape.cast(layout)

    def port_wire(self, name: str, port: str, *path) -> str | None:
        """A wire ``name`` for a field of a port's layout (``None`` if it has no bits)."""
        offset, shape = self.port_field(port, *path)
        if not shape.width:
            return None
        return self.wire(name, shape.width, _slice(port, offset, shape.width))

    def declare(self, name: str, width: int, line: str) -> str:
        self.widths[name], self.declared[name] = width, len(self.body)
        self.body.append(line)
        return name

    def wire(self, name: str, width: int, expr: str) -> str:
        """A wire of ``width`` bits driven by ``expr``, an expression of exactly that width."""
        return self.declare(name, width, f"  wire {_range(width)}{name} = {expr};")

    def reg(self, name: str, width: int, source: str) -> str:
        """A pipeline register taking ``source`` (exactly ``width`` bits) whenever the
        pipeline advances."""
        self.regs.append(f"      {name} <= {source};")
        return self.declare(name, width, f"  reg {_range(width)}{name};")

    def fit(self, name: str, to: int, shift: int = 0) -> str:
        """Two's complement value ``name`` shifted left by ``shift``, as exactly ``to`` bits
        (:func:`_fit`)."""
        width = self.widths[name]
        self.read[name] = max(self.read.get(name, 0), min(width, max(0, to - shift)))
        return _fit(name, width, to, shift)

    def delay(self, expr: str, width: int, cycles: int, name: str) -> str:
        for k in range(cycles):
            expr = self.reg(f"{name}_d{k + 1}", width, expr)
        return expr

    def handshake(self, latency: int) -> None:
        """:class:`~.pipeline.Pipeline` for streams ``i`` and ``o``, ``latency`` > 0 stages."""
        top = latency - 1
        shift_in = "i__valid" if latency == 1 else f"{{mv_valid[{top - 1}:0], i__valid}}"
        self.body += [
            f"  reg [{top}:0] mv_valid;",
            f"  initial mv_valid = {_hex(0, latency)};",
            f"  wire mv_en = ~mv_valid[{top}] | o__ready;",
            "  assign i__ready = mv_en;",
            f"  assign o__valid = mv_valid[{top}];",
            "  always @(posedge clk)",
            f"    if (rst) mv_valid <= {_hex(0, latency)};",
            f"    else if (mv_en) mv_valid <= {shift_in};",
        ]

    def graph(self, plan: Pipelined, inputs: list[str | None], prefix: str) -> list:
        """Write ``plan`` over the named ``inputs`` (one per graph input, as wide as the
        plan's; ``None`` for one it does not read); returns each graph output as ``(name,
        left shift)`` (``None``: constant zero)."""
        names = list(inputs)
        for op in plan.ops[len(inputs) :]:
            name = f"{prefix}{op.name}"
            if op.kind == "reg":
                self.reg(name, op.width, self.fit(names[op.args[0]], op.width))
            elif op.kind == "neg":
                self.wire(name, op.width, f"-{self.fit(names[op.args[0]], op.width)}")
            else:
                (a, sa, na), (b, sb, nb) = op.args
                ea, eb = self.fit(names[a], op.width, sa), self.fit(names[b], op.width, sb)
                self.wire(name, op.width, f"{'-' if na else ''}{ea} {'-' if nb else '+'} {eb}")
            names.append(name)
        return [None if o is None else (names[o[0]], o[1]) for o in plan.outputs]

    def lanes_in(self, lanes) -> dict[int, str]:
        """Wires ``x<k>`` for the data lanes ``lanes`` of ``i`` (those something reads)."""
        return {k: self.port_wire(f"x{k}", "i__payload", "data", k) for k in sorted(lanes)}

    def lanes_out(self, values: list) -> None:
        """Drive the data lanes of ``o`` with ``values`` (``(name, left shift)``,
        sign-extended; ``None``: zero)."""
        for k, v in enumerate(values):
            offset, shape = self.port_field("o__payload", "data", k)
            value = _hex(0, shape.width) if v is None else self.fit(v[0], shape.width, v[1])
            self.body.append(f"  assign {_slice('o__payload', offset, shape.width)} = {value};")

    def side(self, latency: int) -> None:
        """The ``side`` bits of ``i``, ``latency`` pipeline advances later on ``o``."""
        offset, shape = self.port_field("i__payload", "side")
        if shape.width:
            d = self.delay(_slice("i__payload", offset, shape.width), shape.width, latency, "side")
            out, _ = self.port_field("o__payload", "side")
            self.body.append(f"  assign {_slice('o__payload', out, shape.width)} = {d};")

    def text(self) -> str:
        # A value no reader needs whole (they compute modulo a narrower width): its
        # declaration waives Verilator's warning about unused bits.
        body = list(self.body)
        for name, bits in self.read.items():
            if bits < self.widths[name]:
                k = self.declared[name]
                body[k] = "\n".join(
                    [
                        "  // verilator lint_off UNUSEDSIGNAL",
                        body[k],
                        "  // verilator lint_on UNUSEDSIGNAL",
                    ]
                )
        names = ["clk", "rst", *self.ports]
        decls = ["  input clk;", "  input rst;"]
        decls += [
            f"  {'input' if flow == wiring.In else 'output'} {_range(width)}{name};"
            for name, (width, flow) in self.ports.items()
        ]
        always = (
            ["  always @(posedge clk)", "    if (mv_en) begin", *self.regs, "    end"]
            if self.regs
            else []
        )
        return "\n".join(
            [
                f"// {self.what}: written by semifreddo_hw.verilog_text.",
                f"module {self.module}({', '.join(names)});",
                *decls,
                *body,
                *always,
                "endmodule",
                "",
            ]
        )


def _inputs_read(plan: Pipelined, n_in: int) -> set[int]:
    """The graph inputs some value of ``plan`` reads."""
    read = set()
    for op in plan.ops[n_in:]:
        read.update(a[0] if isinstance(a, tuple) else a for a in op.args)
    return {a for a in read if a < n_in}


def frozen_matvec(mv: FrozenMatVec, module: str) -> str:
    """Verilog module ``module`` for ``mv``."""
    n_out, n_in = mv.weights.shape
    m = _Module(mv, module, f"FrozenMatVec {n_out}x{n_in}, {mv.graph.adders} adders")
    m.handshake(mv.latency)
    plan = mv.graph.pipelined(mv.levels_per_stage, INT8_MIN, INT8_MAX)
    x = m.lanes_in(_inputs_read(plan, n_in))
    m.lanes_out(m.graph(plan, [x.get(i) for i in range(n_in)], "mv_"))
    m.side(mv.latency)
    return m.text()


def _param_bank(m: _Module, bank) -> tuple[str, int]:
    """Write :class:`~.param_bank.ParamBank` ``bank`` (ports ``write`` and ``select``) as the
    array ``mv_w``; returns the wire holding the index of the selected set's first element
    (``""`` for one set) and the width of an index."""
    width = Shape.cast(bank.elem).width
    cells = bank.sets * bank.count
    bits = ceil_log2(cells)
    m.body += [
        f"  reg {_range(width)}mv_w [0:{cells - 1}];",
        "  integer mv_k;",
        "  initial begin",
        f"    for (mv_k = 0; mv_k < {cells}; mv_k = mv_k + 1) mv_w[mv_k] = {_hex(0, width)};",
    ]
    m.body += [
        f"    mv_w[{s * bank.count + k}] = {_hex(v, width)};"
        for s, row in enumerate(bank.init)
        for k, v in enumerate(row)
        if v
    ]
    m.body.append("  end")
    # A write {set, index, value}; fields of zero width (one set, one element) are absent.
    write_ok, addr = ["write__valid"], []
    for field, limit in (("set", bank.sets), ("index", bank.count)):
        name = m.port_wire(f"mv_wr_{field}", "write__payload", field)
        if name is not None:
            w = m.port_field("write__payload", field)[1].width
            if limit < 1 << w:
                write_ok.append(f"{name} < {_dec(limit, w)}")
            scale = bank.count if field == "set" else 1
            addr.append(_zext(name, w, bits) + (f" * {_dec(scale, bits)}" if scale > 1 else ""))
    value = m.port_wire("mv_wr_value", "write__payload", "value")
    m.body += [
        "  always @(posedge clk)",
        f"    if ({' && '.join(write_ok)})",
        f"      mv_w[{' + '.join(addr) or '0'}] <= {value};",
    ]
    if bank.sets == 1:
        return "", bits
    # The selected set's first element; a select past the last set reads set 0.
    select = m.ports["select"][0]
    row = _zext("select", select, bits) + (f" * {_dec(bank.count, bits)}" if bank.count > 1 else "")
    if bank.sets < 1 << select:
        row = f"select < {_dec(bank.sets, select)} ? {row} : {_hex(0, bits)}"
    return m.wire("mv_row", bits, row), bits


def configurable_matvec(mv: ConfigurableMatVec, module: str) -> str:
    """Verilog module ``module`` for ``mv``."""
    m = _Module(
        mv,
        module,
        f"ConfigurableMatVec {mv.n_out}x{mv.n_in}, {mv.bank.count} weights x {mv.bank.sets} set(s)",
    )
    m.handshake(mv.latency)
    row, bits = _param_bank(m, mv.bank)
    x = m.lanes_in({i for taps in mv.taps for i in taps})
    plans = {
        n: tree.pipelined(mv.levels_per_stage, *mv.product_range) for n, tree in mv.trees.items()
    }
    weight, product = Shape.cast(mv.bank.elem).width, signed_width(*mv.product_range)
    outs, k = [], 0
    for j, taps in enumerate(mv.taps):
        if not taps:
            outs.append(None)
            continue
        products = []
        for n, i in enumerate(taps):
            # The weight as a wire of its own: the product reads its sign bit too.
            cell = f"{row} + {_dec(k + n, bits)}" if row else str(k + n)
            w = m.wire(f"w{j}_{i}", weight, f"mv_w[{cell}]")
            p = f"{m.fit(x[i], product)} * {m.fit(w, product)}"
            products.append(m.reg(f"p{j}_{i}", product, p))
        k += len(taps)
        plan = plans[len(taps)]
        ((y, shift),) = m.graph(plan, products, f"sum{j}_")
        # Shorter trees wait for the longest.
        width, cycles = m.widths[y] + shift, mv.latency - 1 - plan.stages
        outs.append(
            (m.delay(m.fit(y, width, shift), width, cycles, f"sum{j}_bal"), 0)
            if cycles
            else (y, shift)
        )
    m.lanes_out(outs)
    m.side(mv.latency)
    return m.text()


def text_writer(component):
    """The function writing ``component`` as Verilog text (``writer(component, module)``),
    or None where Amaranth converts it (a folded product: small, and read from block RAM)."""
    if getattr(component, "fold", 1) != 1:
        return None
    return _WRITERS.get(type(component))


_WRITERS = {FrozenMatVec: frozen_matvec, ConfigurableMatVec: configurable_matvec}
