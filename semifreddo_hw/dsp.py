"""FPGA DSP blocks with their own registers: the ECP5's ``MULT18X18D``.

Yosys maps a multiply to a DSP block but leaves the block's input and output registers
unused (its ECP5 flow has no pass that packs flip-flops into them), so a product registered
in the fabric crosses the chip twice, to a block in its few rows and back, inside one clock.
Given to ``elaborate`` as the platform (:func:`.emit.to_verilog`'s ``platform``),
:class:`ECP5DSP` has a :class:`~.pipeline.Pipeline` build each product of two of its own
operand registers (:meth:`.pipeline.Pipeline.product`) as one block whose input registers
take the operands' values and whose output register is the product's: the same registers,
the same latency, the same values every cycle, so the design is unchanged but for where its
registers sit. Without it, products stay ``$mul`` cells between fabric registers.

:data:`MULT18X18D_MODEL` is the block's simulation twin, for the subset used here (inputs
and output registered on ``CLK0``/``CE0``/``RST0``, synchronous reset), written from
Lattice's sysDSP usage guide (TN1267): simulators read it beside Verilog that instantiates
the block. Which multiplies go to blocks (``--dsp``) is chosen from the backbone's counts
(:func:`dsp_multiplies`, :func:`dsp_min_width`).
"""

import dataclasses
import re

from amaranth.hdl import (
    ClockSignal,
    Const,
    Instance,
    Module,
    ResetSignal,
    Shape,
    Signal,
    Value,
    signed,
)

__all__ = [
    "DSP_CHOICES",
    "DSP_OPERAND_BITS",
    "DSP_WIDTHS",
    "ECP5DSP",
    "MULT18X18D_MODEL",
    "dsp_min_width",
    "dsp_multiplies",
    "dsp_platform",
    "dsp_target",
    "dsp_width",
    "with_model",
]

#: A ``MULT18X18D``'s operands: signed, 18 bits each (an unsigned operand up to 17 bits).
DSP_OPERAND_BITS = 18

#: The product's width: the block's ``P`` output.
_PRODUCT_BITS = 2 * DSP_OPERAND_BITS


def signed_bits(shape) -> int:
    """Bits of ``shape`` as a signed operand: an unsigned one needs a sign bit more (Yosys
    sees Amaranth's unsigned operand of a signed multiply so, after ``wreduce``)."""
    shape = Shape.cast(shape)
    return shape.width if shape.signed else shape.width + 1


@dataclasses.dataclass(frozen=True)
class ECP5DSP:
    """The elaboration's platform for a build whose products go to ``MULT18X18D`` blocks,
    registers and all: those with both operands at least ``min_width`` signed bits (and, as
    the block takes them, at most 18); narrower ones stay ``$mul`` cells (LUTs, or Yosys's
    own mapping)."""

    min_width: int = 2

    def __post_init__(self):
        if not isinstance(self.min_width, int) or not 2 <= self.min_width <= DSP_OPERAND_BITS:
            raise ValueError(
                f"min_width must be an integer in 2..{DSP_OPERAND_BITS}, not {self.min_width!r}"
            )

    def takes(self, a_shape, b_shape) -> bool:
        """Whether a product of operands of these shapes goes to a block."""
        widths = (signed_bits(a_shape), signed_bits(b_shape))
        return self.min_width <= min(widths) and max(widths) <= DSP_OPERAND_BITS

    def product(self, m: Module, a: Value, b: Value, p: Signal, en: Value, *, name: str) -> None:
        """One block: ``a`` and ``b`` into its input registers, ``p`` from its output
        register, all three clocked when ``en`` is high and cleared by the domain's reset
        (as a pipeline's registers are)."""
        if not self.takes(a.shape(), b.shape()):
            raise ValueError(f"{name}: operands {a.shape()} x {b.shape()} do not fit a block")
        wide_a, wide_b = Signal(signed(DSP_OPERAND_BITS)), Signal(signed(DSP_OPERAND_BITS))
        product = Signal(signed(_PRODUCT_BITS))
        m.d.comb += [wide_a.eq(a), wide_b.eq(b), p.eq(product)]
        ports = {
            **{f"i_A{k}": wide_a[k] for k in range(DSP_OPERAND_BITS)},
            **{f"i_B{k}": wide_b[k] for k in range(DSP_OPERAND_BITS)},
            **{f"i_C{k}": Const(0, 1) for k in range(DSP_OPERAND_BITS)},
            **{f"o_P{k}": product[k] for k in range(_PRODUCT_BITS)},
        }
        registers = {
            f"p_REG_{reg}_{what}": f"{what}0"
            for reg in ("INPUTA", "INPUTB", "OUTPUT")
            for what in ("CLK", "CE", "RST")
        }
        m.submodules[name] = Instance(
            "MULT18X18D",
            **registers,
            p_RESETMODE="SYNC",
            i_SIGNEDA=Const(1, 1),
            i_SIGNEDB=Const(1, 1),
            i_SOURCEA=Const(0, 1),
            i_SOURCEB=Const(0, 1),
            i_CLK0=ClockSignal(),
            i_CE0=en,
            i_RST0=ResetSignal(),
            **ports,
        )


def dsp_target(platform) -> ECP5DSP | None:
    """The :class:`ECP5DSP` an ``elaborate`` was given, or None."""
    return platform if isinstance(platform, ECP5DSP) else None


def _model() -> str:
    bits = range(DSP_OPERAND_BITS)
    ins = ", ".join([f"A{k}" for k in bits] + [f"B{k}" for k in bits] + [f"C{k}" for k in bits])
    outs = ", ".join(f"P{k}" for k in range(_PRODUCT_BITS))
    cat = lambda p, n: "{" + ", ".join(f"{p}{k}" for k in reversed(range(n))) + "}"  # noqa: E731
    regs = "\n".join(
        f'  parameter REG_{r}_{w} = "{d}";'
        for r in ("INPUTA", "INPUTB", "INPUTC", "PIPELINE", "OUTPUT")
        for w, d in (("CLK", "NONE"), ("CE", "CE0"), ("RST", "RST0"))
    )
    return f"""\
// MULT18X18D (Lattice ECP5 sysDSP 18x18 multiplier), simulation model: the subset that
// semifreddo_hw.dsp instantiates (A and B registered or not, the output registered or not,
// on CLK0 / CE0 / RST0 with a synchronous reset; signed or unsigned operands; no pipeline
// register, no cascade, no C input, no shift-register inputs).
module MULT18X18D({ins}, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0, {outs});
  input {ins};
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0;
  output {outs};
{regs}
  parameter RESETMODE = "SYNC";
  parameter GSR = "ENABLED";
  wire [17:0] a = {cat("A", DSP_OPERAND_BITS)};
  wire [17:0] b = {cat("B", DSP_OPERAND_BITS)};
  reg [17:0] a_r = 18'd0, b_r = 18'd0;
  reg [35:0] p_r = 36'd0;
  wire [17:0] a_in = (REG_INPUTA_CLK == "NONE") ? a : a_r;
  wire [17:0] b_in = (REG_INPUTB_CLK == "NONE") ? b : b_r;
  wire [35:0] a_x = {{{{18{{SIGNEDA & a_in[17]}}}}, a_in}};
  wire [35:0] b_x = {{{{18{{SIGNEDB & b_in[17]}}}}, b_in}};
  wire [35:0] p = a_x * b_x;
  always @(posedge CLK0) begin
    if (RST0) begin
      a_r <= 18'd0; b_r <= 18'd0; p_r <= 36'd0;
    end else if (CE0) begin
      a_r <= a; b_r <= b; p_r <= p;
    end
  end
  assign {cat("P", _PRODUCT_BITS)} = (REG_OUTPUT_CLK == "NONE") ? p : p_r;
endmodule
"""


MULT18X18D_MODEL = _model()

_INSTANCE = re.compile(r"^\s*MULT18X18D\s+#\(", re.M)


def with_model(text: str) -> str:
    """Verilog ``text`` for a simulator: with :data:`MULT18X18D_MODEL` after it where it
    instantiates the block and does not define it (a board build's Verilog; Yosys reads
    that without the model, the block being one of the part's cells)."""
    if _INSTANCE.search(text) and "module MULT18X18D(" not in text:
        return text + "\n" + MULT18X18D_MODEL
    return text


#: ``--dsp``: which multiplies go to DSP blocks. A folded build can have hundreds of 8x8
#: ones (weights) and an ECP5-85F 156 blocks. ``auto`` (default) picks, from the build's own
#: counts (:func:`dsp_multiplies`), the narrowest operand width whose multiplies all fit the
#: part (:func:`dsp_min_width`): 8 bits (weights, alpha blends and requantizers), 9 (blends
#: and requantizers) or 10 (the requantizers' scales); ``wide`` is 9, ``all`` every
#: multiply, ``none`` none. The rest are built from LUTs.
DSP_CHOICES = ("auto", "wide", "all", "none")

#: Narrowest operand, in signed bits, of the multiplies given DSP blocks, per kind of
#: multiply: trainable weights are int8 x int8, an alpha blend int9 x 8-bit code (a signed
#: 9 x 9), a requantizer a 16-bit scale times the sum.
DSP_WIDTHS = {"weights": 8, "blends": 9, "requantizers": 10}


def dsp_multiplies(dut) -> dict[str, int]:
    """How many multiplies of each kind (:data:`DSP_WIDTHS`) the backbone ``dut`` has."""
    layers = dut.layers()
    return {
        "weights": dut.report()["multipliers"],
        "blends": sum(b.lanes for b in dut.blends.values()),
        "requantizers": sum(layer.conv.requant.lanes for layer in layers),
    }


def dsp_min_width(counts: dict[str, int], available: int) -> int:
    """``--dsp auto``'s operand width: the narrowest of :data:`DSP_WIDTHS` whose multiplies
    (those as wide or wider) all fit ``available`` blocks; the widest if none do."""
    for width in sorted(set(DSP_WIDTHS.values())):
        if sum(n for k, n in counts.items() if DSP_WIDTHS[k] >= width) <= available:
            return width
    return max(DSP_WIDTHS.values())


def dsp_width(mode: str, counts: dict[str, int], available: int) -> int | None:
    """The narrowest operand, in signed bits, of the multiplies ``--dsp mode`` gives DSP
    blocks (2: every one), or None (``none``)."""
    if mode not in DSP_CHOICES:
        raise ValueError(f"--dsp must be one of {', '.join(DSP_CHOICES)}, not {mode!r}")
    widths = {"wide": DSP_WIDTHS["blends"], "all": 2, "none": None}
    return dsp_min_width(counts, available) if mode == "auto" else widths[mode]


def dsp_platform(dut, mode: str | None, available: int) -> ECP5DSP | None:
    """The platform to elaborate backbone ``dut`` for: its products in ``MULT18X18D``
    blocks as ``--dsp mode`` picks them from ``available`` (None: no mode, or ``none``)."""
    if mode is None:
        return None
    width = dsp_width(mode, dsp_multiplies(dut), available)
    return None if width is None else ECP5DSP(width)
