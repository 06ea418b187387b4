# amaranth: UnusedElaboratable=no
"""The text backend's Verilog passes Verilator's lint with every warning on, fatal.

Each module written by :mod:`semifreddo_hw.verilog_text` is linted alone by ``verilator
--lint-only -Wall``, every warning fatal but the waivers below; the Verilator is the one the
simulations build with (:mod:`sim.rtl`). Its width warnings let an operand be one bit
narrower than an addition's result (a carry), so the text's widths are also checked exactly
here (:func:`_width_problems`). Folded products are not written as text
(:func:`~semifreddo_hw.verilog_text.text_writer` gives None: Amaranth converts them), so
they are not linted here.

Waivers, each for one port and one exact message or line (a Verilator configuration file,
made per module from what the block is, not from what its text says):

* ``ASCRANGE`` on the line declaring a zero-width port, the ``select`` of a configurable
  block with one weight set: Amaranth's Verilog declares one as ``[-1:0]``, and the text
  keeps Amaranth's port list.
* ``UNUSEDSIGNAL`` on that zero-width ``select``: there is nothing to select.
* ``UNUSEDSIGNAL`` on the bits of ``i__payload`` in the lanes no weight reads (an all-zero
  column of a frozen matrix, a column outside a configurable block's mask): the port has
  every lane of the stream.

The text's own waivers (``lint_off UNUSEDSIGNAL`` around a value whose top bits no reader
needs, as its readers compute modulo a narrower width) are shown to be needed: with them
taken out, Verilator reports exactly those values.
"""

import re
import shutil
import subprocess
import zlib

import numpy as np
import pytest
from amaranth.hdl import Shape

from semifreddo_hw.matvec import ConfigurableMatVec
from semifreddo_hw.verilog_text import configurable_matvec, frozen_matvec, text_writer
from sim.rtl import _ensure_verilator_on_path
from tests import matvec_cases
from weights.synthetic import gaussian_int8

# The formal proofs' blocks, and a larger one.
FROZEN = {
    **matvec_cases.FROZEN,
    "16x16_random": (lambda r: gaussian_int8(r, 16, 16), "da4ml", 3, 0),
}


def _depthwise_mask(channels: int, taps: int):
    """Output ``c`` reads inputs ``c * taps .. c * taps + taps - 1`` (a depthwise layer)."""
    return np.kron(np.eye(channels, dtype=bool), np.ones((1, taps), bool))


def _with_empty_column(n_out, n_in):
    mask = np.random.default_rng(n_out * n_in).random((n_out, n_in)) < 0.6
    mask[:, 1] = False
    mask[0, 0] = True
    return mask


# name: (n_out, n_in, mask, weight sets, levels per stage, side bits)
CONFIGURABLE = {
    "3x4": (3, 4, None, 1, 2, 0),
    "4x36_depthwise_sets2": (4, 36, _depthwise_mask(4, 9), 2, 2, 1),
    "5x6_masked_sets3": (5, 6, _with_empty_column(5, 6), 3, 1, 0),
    "1x1": (1, 1, None, 1, 2, 0),
}


def _frozen(name: str, module: str):
    mv = matvec_cases.frozen(name, FROZEN)
    return mv, frozen_matvec(mv, module), ~mv.weights.any(axis=0)


def _configurable(name: str, module: str):
    n_out, n_in, mask, sets, levels, side = CONFIGURABLE[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    mask = np.ones((n_out, n_in), bool) if mask is None else mask
    init = rng.integers(-128, 128, size=(sets, n_out, n_in)) * mask
    mv = ConfigurableMatVec(
        n_in, n_out, mask=mask, init=init, sets=sets, levels_per_stage=levels, side_width=side
    )
    return mv, configurable_matvec(mv, module), ~mask.any(axis=0)


def _bit_ranges(bits: list[int]) -> str:
    """Bits as Verilator names them: runs, most significant first (``[39:32,23:16]``)."""
    runs: list[list[int]] = []
    for b in sorted(bits, reverse=True):
        if runs and runs[-1][1] == b + 1:
            runs[-1][1] = b
        else:
            runs.append([b, b])
    return ",".join(f"{hi}:{lo}" if hi != lo else f"{hi}" for hi, lo in runs)


def _waivers(mv, text: str, module: str, unread_lanes) -> list[str]:
    """The Verilator configuration waiving the port warnings of the module docstring."""
    out = ["`verilator_config"]
    where = f'-file "*/{module}.v"'
    if isinstance(mv, ConfigurableMatVec) and len(mv.select) == 0:  # one weight set
        line = text.splitlines().index("  input [-1:0] select;") + 1
        out.append(f"lint_off -rule ASCRANGE {where} -lines {line}")
        out.append(f"lint_off -rule UNUSEDSIGNAL {where} -match \"Signal is not used: 'select'\"")
    lanes = np.flatnonzero(unread_lanes)
    if len(lanes):
        data = mv.i.payload.shape()["data"]
        lane = Shape.cast(data.shape.elem_shape).width
        bits = [data.offset + lane * k + b for k in lanes for b in range(lane)]
        message = (
            "Signal is not used: 'i__payload'"
            if len(bits) == len(mv.i.payload.as_value())
            else f"Bits of signal are not used: 'i__payload'[{_bit_ranges(bits)}]"
        )
        out.append(f'lint_off -rule UNUSEDSIGNAL {where} -match "{message}"')
    return out


def _lint(tmp_path, module: str, text: str, waivers: list[str]) -> tuple[int, list[str]]:
    """Verilator's exit status and its warning and error lines for ``text``."""
    _ensure_verilator_on_path()
    source = tmp_path / f"{module}.v"  # named after its module: no DECLFILENAME
    source.write_text(text)
    config = tmp_path / f"{module}.vlt"
    config.write_text("\n".join(waivers) + "\n")
    r = subprocess.run(
        [shutil.which("verilator"), "--lint-only", "-Wall", str(config), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return r.returncode, re.findall(r"^%(?:Warning|Error)\S*: .*$", r.stderr, re.MULTILINE)


CASES = [("frozen", name) for name in FROZEN] + [("configurable", name) for name in CONFIGURABLE]


@pytest.fixture(scope="module")
def blocks():
    made = {}

    def get(kind, name):
        if (kind, name) not in made:
            module = re.sub(r"\W", "_", f"{kind}_{name}")
            mv, text, unread = (_frozen if kind == "frozen" else _configurable)(name, module)
            made[kind, name] = mv, module, text, _waivers(mv, text, module, unread)
        return made[kind, name]

    return get


@pytest.mark.parametrize("kind, name", CASES)
def test_text_is_lint_clean(tmp_path, blocks, kind, name):
    mv, module, text, waivers = blocks(kind, name)
    assert text_writer(mv) is not None
    rc, messages = _lint(tmp_path, module, text, waivers)
    assert (rc, messages) == (0, [])


def test_folded_products_are_not_text():
    assert text_writer(ConfigurableMatVec(4, 3, fold=2)) is None


def _without_text_waivers(text: str) -> tuple[str, list[str]]:
    """``text`` without its ``lint_off``/``lint_on`` lines, and the values they waived."""
    waived = re.findall(
        r"^  // verilator lint_off UNUSEDSIGNAL\n  (?:wire|reg) (?:\[\d+:0\] )?(\w+)\b",
        text,
        re.MULTILINE,
    )
    kept = [line for line in text.split("\n") if not line.startswith("  // verilator lint_")]
    return "\n".join(kept), waived


def test_text_waivers_are_needed(tmp_path, blocks):
    """Each value the text waives has bits no reader needs; no other value has."""
    seen = 0
    for kind, name in CASES:
        mv, module, text, waivers = blocks(kind, name)
        bare, waived = _without_text_waivers(text)
        assert text.count("lint_off") == text.count("lint_on") == len(waived)
        if not waived:
            continue
        seen += 1
        rc, messages = _lint(tmp_path, module, bare, waivers)
        reported = [re.search(r"used: '(\w+)'", m).group(1) for m in messages if "Exiting" not in m]
        assert rc != 0 and all("-UNUSEDSIGNAL:" in m for m in messages if "Exiting" not in m)
        assert sorted(reported) == sorted(waived), (kind, name)
    assert seen  # some case truncates a value (else this test shows nothing)


# -- exact widths ----------------------------------------------------------------------------
#
# Verilator's lint lets an addition, subtraction or negation be one bit wider than its
# operands (a carry, verilator/verilator#3290 and #3295) and a product as wide as both: text
# relying on Verilog to sign-extend by one bit passes it. So the text's expressions are
# checked here too, strictly: both operands of + - * | < and both arms of ?: as wide as each
# other, conditions one bit, and every assignment's value as wide as its target. Unsized
# numbers are allowed only as indices and in the ``integer`` loop of the power-up image.

_TOKEN = re.compile(r"\s*(\d+'[hd][0-9a-f]+|\$?[A-Za-z_]\w*|\d+|&&|<=|[-+*~|<?:{}()\[\],])")
_BINARY = [("&&",), ("|",), ("<",), ("+", "-"), ("*",)]  # loosest first


class _Widths:
    """The self-determined width of each expression of a module, per the rules above."""

    def __init__(self):
        self.widths: dict[str, int] = {}
        self.memories: dict[str, tuple[int, int]] = {}  # name: (element width, index bits)
        self.integers: set[str] = set()  # the power-up image's loop variable
        self.problems: list[str] = []

    def declare(self, name: str, hi: str | None, lo: str | None = "0"):
        self.widths[name] = 1 if hi is None else int(hi) - int(lo) + 1

    def width(self, expr: str) -> int | None:
        """Width of ``expr`` (None: an unsized number); mismatches go to ``problems``."""
        self.tokens, self.expr = _TOKEN.findall(expr), expr
        assert "".join(self.tokens) == re.sub(r"\s", "", expr), expr
        w = self._ternary()
        assert not self.tokens, expr
        return w

    def _take(self, token=None) -> str:
        t = self.tokens.pop(0)
        assert token is None or t == token, (self.expr, t, token)
        return t

    def _same(self, what: str, a, b) -> None:
        if a is None or b is None or a != b:
            self.problems.append(f"{what}: {a} and {b} bits in {self.expr}")

    def _ternary(self):
        cond = self._binary(0)
        if self.tokens[:1] != ["?"]:
            return cond
        self._take()
        a = self._ternary()
        self._take(":")
        b = self._ternary()
        self._same("condition", cond, 1)
        self._same("?:", a, b)
        return a

    def _binary(self, level: int):
        if level == len(_BINARY):
            return self._unary()
        w = self._binary(level + 1)
        while self.tokens and self.tokens[0] in _BINARY[level]:
            op = self._take()
            b = self._binary(level + 1)
            if op == "&&":
                self._same("&&", w, 1)
                self._same("&&", b, 1)
            self._same(op, w, b)
            w = 1 if op in ("<", "&&") else w
        return w

    def _unary(self):
        if self.tokens[0] in ("-", "~"):
            self._take()
            return self._unary()
        return self._primary()

    def _primary(self):
        t = self._take()
        if t == "(":
            w = self._ternary()
            self._take(")")
            return w
        if t == "$signed":
            self._take("(")
            w = self._ternary()
            self._take(")")
            return w
        if t == "{":
            return self._concat()
        if "'" in t:
            return int(t.split("'")[0])
        if t.isdigit():
            return None
        return self._select(t)

    def _concat(self):
        if self.tokens[1:2] == ["{"] and self.tokens[0].isdigit():  # {k{x}}
            k = int(self._take())
            self._take("{")
            w = self._ternary()
            self._take("}")
            self._take("}")
            return k * w
        total = 0
        while True:
            w = self._ternary()
            if w is None:
                self.problems.append(f"unsized number in a concatenation: {self.expr}")
                w = 0
            total += w
            if self._take() == "}":
                return total
            assert self.tokens, self.expr

    def _select(self, name: str):
        if self.tokens[:1] != ["["]:
            return self.widths[name]
        self._take("[")
        if name in self.memories:
            elem, bits = self.memories[name]
            loop = self.tokens[0] in self.integers and self.tokens[1] == "]"
            index = self._ternary()
            if index not in (None, bits) and not loop:
                self.problems.append(f"index of {name}: {index} bits, not {bits}: {self.expr}")
            self._take("]")
            return elem
        hi = int(self._take())
        lo = hi
        if self.tokens[0] == ":":
            self._take()
            lo = int(self._take())
        self._take("]")
        return hi - lo + 1


_DECL = re.compile(r"^\s*(input|output|wire|reg|integer) (?:\[(-?\d+):(-?\d+)\] )?(\w+)(.*);$")
_ASSIGN = re.compile(r"^(?:assign |initial )?(.+?) (?:<=|=) (.+);$")


def _width_problems(text: str) -> list[str]:
    """Where an expression of ``text`` (a module of the text backend) has operands or a
    target of unequal widths."""
    w = _Widths()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("//", "module ", "endmodule", "always ", "end")):
            continue
        if line in ("initial begin", "if (mv_en) begin"):
            continue
        decl = _DECL.match(line)
        if decl:
            kind, hi, lo, name, rest = decl.groups()
            memory = re.fullmatch(r" \[0:(\d+)\]", rest)
            if kind == "integer":
                w.widths[name] = 32
                w.integers.add(name)
            elif memory:
                elem = 1 if hi is None else int(hi) - int(lo) + 1
                w.memories[name] = (elem, (int(memory.group(1))).bit_length())
            else:
                w.declare(name, hi, lo)
                if rest:  # wire name = expr
                    w._same(f"wire {name}", w.widths[name], w.width(rest.removeprefix(" = ")))
            continue
        # "if (cond)" / "else if (cond)" prefixes, and the power-up image's loop header
        cond = re.match(r"^(?:else )?if \(([^()]*)\)\s*(.*)$", line)
        if cond:
            w._same("condition", w.width(cond.group(1)), 1)
            line = cond.group(2)
            if not line:
                continue
        line = re.sub(r"^for \(\w+ = 0; \w+ < \d+; \w+ = \w+ \+ 1\) ", "", line)
        m = _ASSIGN.match(line)
        assert m, line
        target, value = m.groups()
        w._same(f"{target} =", w.width(target), w.width(value))
    return w.problems


@pytest.mark.parametrize("kind, name", CASES)
def test_text_widths_are_exact(blocks, kind, name):
    _mv, _module, text, _waivers = blocks(kind, name)
    assert _width_problems(text) == []


# name: (case, pattern, replacement, whether Verilator's lint sees it)
SLOPPY = {
    # An adder's operand left to Verilog's implicit sign extension by one bit: a carry, to
    # Verilator.
    "one-bit extension": ("5x3_extremes", r"(= )\{\{1\{(\w+)\[\d+\]\}\}, \2\}", r"\1\2", False),
    # ... and by more bits.
    "wider extension": (
        "5x3_extremes",
        r"\{\{(?:[2-9]|\d\d+)\{(\w+)\[\d+\]\}\}, \1\}",
        r"\1",
        True,
    ),
    # An output lane assigned a narrower value.
    "narrower lane": (
        "5x3_extremes",
        r"(assign \S+ = )\{\{1\{(\w+)\[\d+\]\}\}, \2\};",
        r"\1\2;",
        True,
    ),
    # An operand left to implicit truncation.
    "implicit truncation": ("16x16_random", r"\b(mv_\w+)\[\d+:0\]", r"\1", True),
}


@pytest.mark.parametrize("what", SLOPPY)
def test_sloppy_text_fails(tmp_path, blocks, what):
    """The checks can fail: text leaving a width to Verilog's rules fails the width check,
    and Verilator's lint where it sees the difference."""
    case, pattern, replacement, lint_sees_it = SLOPPY[what]
    mv, module, text, waivers = blocks("frozen", case)
    sloppy, n = re.subn(pattern, replacement, text, count=1)
    assert n == 1
    assert _width_problems(sloppy)
    rc, messages = _lint(tmp_path, module, sloppy, waivers)
    width = [m for m in messages if re.match(r"%Warning-WIDTH(EXPAND|TRUNC): ", m)]
    assert (rc != 0, bool(width)) == (lint_sees_it, lint_sees_it), messages
