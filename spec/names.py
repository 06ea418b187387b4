"""Names of the backbone's layers and blends, and of the Verilog modules they become.

Cores are ``frozen``, ``a`` and ``b``. A convolution is ``<core>.stem`` or
``<core>.m<i>.<j>.<layer>``: layer ``dw``/``pw`` of regular block ``j`` (from 0) of Semifreddo
module ``i`` (from 1), or ``b0_dw``/``b0_pw``/``b1_dw``/``b1_pw`` for the two branches of a
downsampling block. The alpha blend in front of trainable core ``k``'s stage ``i`` is
``<k>.m<i>.alpha``. Group ``k`` of the model head is ``head.g<k>``. A repeated trainable
block's later passes are ``<block>.pass<p>.<layer>``, its pass count ``<block>.repeat``.
Weight files, the golden model, the hardware, the quantizer and the ONNX import all name
layers through these functions.
"""

import re

__all__ = [
    "CORES",
    "TRAINABLE_CORES",
    "REGULAR_LAYERS",
    "BRANCHES",
    "DOWNSAMPLING_LAYERS",
    "block_layers",
    "stem",
    "block",
    "conv",
    "blend",
    "head_group",
    "head_pass",
    "block_pass",
    "block_repeat",
    "output_port",
    "part_module",
    "is_module_name",
    "INPUT_PAD",
    "CORE_SHUFFLE",
]

CORES = ("frozen", "a", "b")
TRAINABLE_CORES = ("a", "b")
#: Layers of a regular (stride 1) block, in stream order.
REGULAR_LAYERS = ("dw", "pw")
#: Branch prefixes of a downsampling (stride 2) block, and its layers in stream order.
BRANCHES = ("b0_", "b1_")
DOWNSAMPLING_LAYERS = tuple(br + layer for br in BRANCHES for layer in REGULAR_LAYERS)
#: The float model's input padding value per channel (an input normalisation folded into
#: the stems pads the normalised image with zeros, ``weights/onnx_input.py``).
INPUT_PAD = "input.pad"
#: The run-time cross-core shuffle setting, in the trainable file.
CORE_SHUFFLE = "core_shuffle"


def block_layers(stride: int) -> tuple[str, ...]:
    """The layers of a block of this stride."""
    return DOWNSAMPLING_LAYERS if stride == 2 else REGULAR_LAYERS


def stem(core: str) -> str:
    return f"{core}.stem"


def block(core: str, module: int, index: int) -> str:
    """Block ``index`` (from 0) of ``core``'s Semifreddo module ``module`` (from 1)."""
    return f"{core}.m{module}.{index}"


def conv(core: str, module: int, index: int, layer: str) -> str:
    """Layer ``layer`` (one of :func:`block_layers`) of a block."""
    return f"{block(core, module, index)}.{layer}"


def blend(core: str, module: int) -> str:
    """The alpha blend in front of trainable core ``core``'s stage ``module``."""
    return f"{core}.m{module}.alpha"


def head_group(index: int) -> str:
    """Group ``index`` (from 0) of the model head: its convolution, activation and pool."""
    return f"head.g{index}"


def head_pass(index: int, pass_: int) -> str:
    """Pass ``pass_`` (from 1) of a repeated head group ``index``: its own weights, scales,
    biases and activation table (pass 0's are :func:`head_group`'s)."""
    return f"{head_group(index)}.pass{pass_}"


def block_pass(core: str, module: int, index: int, pass_: int, layer: str) -> str:
    """Layer ``layer`` of pass ``pass_`` (from 1) of a repeated block: its own weights,
    scales and biases (pass 0's are :func:`conv`'s)."""
    return f"{block(core, module, index)}.pass{pass_}.{layer}"


def block_repeat(core: str, module: int, index: int) -> str:
    """The run-time pass count of a repeated block."""
    return f"{block(core, module, index)}.repeat"


def output_port(name: str) -> str:
    """The design's output stream of a core (``frozen``, ``a``, ``b``) or of a head group
    (:func:`head_group`): ``o_<name>``, dots as underscores."""
    return "o_" + name.replace(".", "_")


def part_module(top: str, layer: str) -> str:
    """The Verilog module of layer ``layer`` in a design whose top module is ``top``."""
    return f"{top}__{layer.replace('.', '_')}"


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: Verilog-2005 keywords (and ``logic``): not usable as plain module names.
_KEYWORDS = frozenset(
    """always and assign automatic begin buf bufif0 bufif1 case casex casez
cell cmos config deassign default defparam design disable edge else end endcase endconfig
endfunction endgenerate endmodule endprimitive endspecify endtable endtask event for force
forever fork function generate genvar highz0 highz1 if ifnone incdir include initial inout
input instance integer join large liblist library localparam logic macromodule medium module
nand negedge nmos nor noshowcancelled not notif0 notif1 or output parameter pmos posedge
primitive pull0 pull1 pulldown pullup pulsestyle_ondetect pulsestyle_onevent rcmos real
realtime reg release repeat rnmos rpmos rtran rtranif0 rtranif1 scalared showcancelled signed
small specify specparam strong0 strong1 supply0 supply1 table task time tran tranif0 tranif1
tri tri0 tri1 triand trior trireg unsigned use uwire vectored wait wand weak0 weak1 while wire
wor xnor xor""".split()
)


def is_module_name(name: str) -> bool:
    """Whether ``name`` can name a top module: a plain Verilog identifier of at most 64
    characters (it also names files) that is not a keyword."""
    return bool(_MODULE_NAME.fullmatch(name)) and name not in _KEYWORDS
