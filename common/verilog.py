"""Verilog text as Yosys, Amaranth and :mod:`semifreddo_hw.verilog_text` write it, cut into
modules: ``module`` and ``endmodule`` at the start of a line, one instance per statement."""

import re
from collections import Counter

__all__ = ["blackbox", "instances", "module_token", "module_tree", "verilog_modules"]

_NAME = r"\\\S+|[A-Za-z_][\w$]*"
_MODULE = re.compile(rf"^module\s+({_NAME})", re.MULTILINE)
_ENDMODULE = re.compile(r"^endmodule\b.*$", re.MULTILINE)
_INSTANCE = re.compile(rf"^\s*({_NAME})\s+({_NAME})\s*\(", re.MULTILINE)


def verilog_modules(text: str) -> dict[str, str]:
    """``{module name: its text}`` in the order of ``text`` (Verilog as Yosys and
    :mod:`semifreddo_hw.verilog_text` write it: ``module`` and ``endmodule`` at the start of
    a line). Escaped names are given without their backslash. The attributes and comments
    before a module belong to it."""
    out, pos = {}, 0
    for m in _MODULE.finditer(text):
        if m.start() < pos:
            continue
        end = _ENDMODULE.search(text, m.end())
        if end is None:
            raise ValueError(f"module {m.group(1)}: no endmodule")
        out[m.group(1).lstrip("\\")] = text[pos : end.end()].strip("\n") + "\n"
        pos = end.end()
    return out


def instances(body: str, names) -> Counter:
    """How many times ``body`` instantiates each of the modules ``names``."""
    found = Counter()
    for m in _INSTANCE.finditer(body):
        name = m.group(1).lstrip("\\")
        if name in names:  # a module line's "module NAME (" never names a module "module"
            found[name] += 1
    return found


def module_token(name: str) -> str:
    """How a module name is written in Verilog (escaped when it is not an identifier)."""
    return name if re.fullmatch(r"[A-Za-z_][\w$]*", name) else f"\\{name} "


def blackbox(name: str, text: str) -> str:
    """A blackbox module with the ports of module ``name`` (``text``)."""
    m = re.search(
        rf"^module\s+{re.escape(module_token(name).strip())}\s*\((.*?)\);", text, re.M | re.S
    )
    decl = re.findall(r"^\s*(?:input|output|inout)\b[^;]*;", text[m.end() :], re.MULTILINE)
    return "\n".join(["(* blackbox *)", m.group(0), *decl, "endmodule", ""])


def module_tree(text: str, root: str) -> str:
    """Module ``root`` of ``text`` and every module it instantiates, directly or below, in
    the order of ``text``: a design of its own (``ValueError`` if ``root`` is not there)."""
    mods = verilog_modules(text)
    if root not in mods:
        raise ValueError(f"module {root} is not in the design")
    inside, todo = {root}, [root]
    while todo:
        for k in instances(mods[todo.pop()], mods):
            if k not in inside:
                inside.add(k)
                todo.append(k)
    return "\n".join(body for name, body in mods.items() if name in inside)
