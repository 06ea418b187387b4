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
* Every value is a ``signed`` wire or register exactly as wide as its range, so Verilog's
  expression rules (operands sign-extended to the assignment's width, arithmetic modulo that
  width) compute each adder exactly.
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
        return self.wire(name, shape.width, _slice(port, offset, shape.width), signed=shape.signed)

    def wire(self, name: str, width: int, expr: str, *, signed: bool = True) -> str:
        self.body.append(f"  wire {'signed ' if signed else ''}{_range(width)}{name} = {expr};")
        return name

    def reg(self, name: str, width: int, source: str, *, signed: bool = True) -> str:
        """A pipeline register taking ``source`` whenever the pipeline advances."""
        self.body.append(f"  reg {'signed ' if signed else ''}{_range(width)}{name};")
        self.regs.append(f"      {name} <= {source};")
        return name

    def delay(self, expr: str, width: int, cycles: int, name: str, *, signed: bool = True) -> str:
        for k in range(cycles):
            expr = self.reg(f"{name}_d{k + 1}", width, expr, signed=signed)
        return expr

    def handshake(self, latency: int) -> None:
        """:class:`~.pipeline.Pipeline` for streams ``i`` and ``o``, ``latency`` > 0 stages."""
        top = latency - 1
        shift_in = "i__valid" if latency == 1 else f"{{mv_valid[{top - 1}:0], i__valid}}"
        self.body += [
            f"  reg [{top}:0] mv_valid = {latency}'h0;",
            f"  wire mv_en = ~mv_valid[{top}] | o__ready;",
            "  assign i__ready = mv_en;",
            f"  assign o__valid = mv_valid[{top}];",
            "  always @(posedge clk)",
            "    if (rst) mv_valid <= 0;",
            f"    else if (mv_en) mv_valid <= {shift_in};",
        ]

    def graph(self, plan: Pipelined, inputs: list[str], prefix: str) -> list[str | None]:
        """Write ``plan`` over the named ``inputs`` (one per graph input); returns an
        expression per graph output (``None``: constant zero)."""
        names = list(inputs)
        for op in plan.ops[len(inputs) :]:
            name = f"{prefix}{op.name}"
            if op.kind == "reg":
                self.reg(name, op.width, names[op.args[0]])
            elif op.kind == "neg":
                self.wire(name, op.width, f"-{names[op.args[0]]}")
            else:
                (a, sa, na), (b, sb, nb) = op.args
                ea = f"({names[a]} <<< {sa})" if sa else names[a]
                eb = f"({names[b]} <<< {sb})" if sb else names[b]
                self.wire(name, op.width, f"{'-' if na else ''}{ea} {'-' if nb else '+'} {eb}")
            names.append(name)
        return [
            None if o is None else f"({names[o[0]]} <<< {o[1]})" if o[1] else names[o[0]]
            for o in plan.outputs
        ]

    def lanes_in(self, count: int) -> list[str]:
        """Wires ``x<k>`` for the ``count`` data lanes of ``i``."""
        return [self.port_wire(f"x{k}", "i__payload", "data", k) for k in range(count)]

    def lanes_out(self, values: list[str | None]) -> None:
        """Drive the data lanes of ``o`` (signed values, sign-extended; ``None``: zero)."""
        for k, v in enumerate(values):
            offset, shape = self.port_field("o__payload", "data", k)
            self.body.append(
                f"  assign {_slice('o__payload', offset, shape.width)} = {'0' if v is None else v};"
            )

    def side(self, latency: int) -> None:
        """The ``side`` bits of ``i``, ``latency`` pipeline advances later on ``o``."""
        offset, shape = self.port_field("i__payload", "side")
        if shape.width:
            d = self.delay(
                _slice("i__payload", offset, shape.width),
                shape.width,
                latency,
                "side",
                signed=False,
            )
            out, _ = self.port_field("o__payload", "side")
            self.body.append(f"  assign {_slice('o__payload', out, shape.width)} = {d};")

    def text(self) -> str:
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
                *self.body,
                *always,
                "endmodule",
                "",
            ]
        )


def frozen_matvec(mv: FrozenMatVec, module: str) -> str:
    """Verilog module ``module`` for ``mv``."""
    n_out, n_in = mv.weights.shape
    m = _Module(mv, module, f"FrozenMatVec {n_out}x{n_in}, {mv.graph.adders} adders")
    m.handshake(mv.latency)
    x = m.lanes_in(n_in)
    plan = mv.graph.pipelined(mv.levels_per_stage, INT8_MIN, INT8_MAX)
    m.lanes_out(m.graph(plan, x, "mv_"))
    m.side(mv.latency)
    return m.text()


def _param_bank(m: _Module, bank) -> str:
    """Write :class:`~.param_bank.ParamBank` ``bank`` (ports ``write`` and ``select``) as the
    array ``mv_w``; returns the prefix of an element's index in the selected set."""
    width = Shape.cast(bank.elem).width
    cells = bank.sets * bank.count
    m.body += [
        f"  reg signed {_range(width)}mv_w [0:{cells - 1}];",
        "  integer mv_k;",
        "  initial begin",
        f"    for (mv_k = 0; mv_k < {cells}; mv_k = mv_k + 1) mv_w[mv_k] = 0;",
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
            if limit < 1 << m.port_field("write__payload", field)[1].width:
                write_ok.append(f"{name} < {limit}")
            addr.append(f"{name} * {bank.count}" if field == "set" else name)
    value = m.port_wire("mv_wr_value", "write__payload", "value")
    m.body += [
        "  always @(posedge clk)",
        f"    if ({' && '.join(write_ok)})",
        f"      mv_w[{' + '.join(addr) or '0'}] <= {value};",
    ]
    if bank.sets == 1:
        return ""
    # The selected set's first element; a select past the last set reads set 0.
    m.wire(
        "mv_row",
        ceil_log2(cells),
        f"(select < {bank.sets} ? select : 0) * {bank.count}",
        signed=False,
    )
    return "mv_row + "


def configurable_matvec(mv: ConfigurableMatVec, module: str) -> str:
    """Verilog module ``module`` for ``mv``."""
    m = _Module(
        mv,
        module,
        f"ConfigurableMatVec {mv.n_out}x{mv.n_in}, {mv.bank.count} weights x {mv.bank.sets} set(s)",
    )
    m.handshake(mv.latency)
    row = _param_bank(m, mv.bank)
    x = m.lanes_in(mv.n_in)
    plans = {
        n: tree.pipelined(mv.levels_per_stage, *mv.product_range) for n, tree in mv.trees.items()
    }
    outs, k = [], 0
    for j, taps in enumerate(mv.taps):
        if not taps:
            outs.append(None)
            continue
        products = [
            m.reg(f"p{j}_{i}", signed_width(*mv.product_range), f"{x[i]} * mv_w[{row}{k + n}]")
            for n, i in enumerate(taps)
        ]
        k += len(taps)
        plan = plans[len(taps)]
        (y,) = m.graph(plan, products, f"sum{j}_")
        out_op, shift = plan.outputs[0]
        outs.append(
            m.delay(y, plan.ops[out_op].width + shift, mv.latency - 1 - plan.stages, f"sum{j}_bal")
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
