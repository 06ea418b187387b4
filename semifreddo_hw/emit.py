"""Verilog emission for components, deterministic and without constant ports.

Large designs are emitted in parts (:func:`to_verilog_parts`): chosen sub-components become
modules of their own, converted separately (in parallel worker processes when asked) and
instantiated by name from their parent. Amaranth converts a design as one netlist whose time
and memory grow with its size; parts bound both by the largest part instead.
"""

import multiprocessing
import os

from amaranth.back import verilog
from amaranth.hdl import ClockSignal, Const, Instance, ResetSignal, Value, ValueCastable
from amaranth.lib import wiring

__all__ = ["ports_of", "to_verilog", "to_verilog_parts", "cpu_jobs"]


def ports_of(component: wiring.Component) -> list:
    """The component's signature members as Verilog ports, named ``path__to__member``.

    Members fixed to a constant (``ready`` of an ``always_ready`` stream, say) are not ports:
    the constant is part of the contract and the generated module simply has no such input.
    Directions are left to Amaranth, which infers them from what drives each signal.
    """
    return [(name, value, None) for name, value, _flow in _port_members(component)]


def _port_members(component):
    for path, member, value in component.signature.flatten(component):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if not isinstance(value, Value) or isinstance(value, Const):
            continue
        yield "__".join(map(str, path)), value, member.flow


def to_verilog(component: wiring.Component, name: str) -> str:
    """Verilog text for ``component`` as module ``name``, plus ``clk`` and ``rst``.

    Source locations are not emitted, so the text depends only on the design, not on where
    the package is installed: identical inputs give byte-identical Verilog.
    """
    return verilog.convert(component, name=name, ports=ports_of(component), emit_src=False)


def _instance(component, module: str) -> Instance:
    """An instance of ``module`` (``component`` emitted by :func:`to_verilog`) wired to
    ``component``'s own ports."""
    ports = {("i_" if flow == wiring.In else "o_") + name: value
             for name, value, flow in _port_members(component)}
    return Instance(module, i_clk=ClockSignal(), i_rst=ResetSignal(), **ports)


_PARTS: list = []  # what forked workers emit, by index


def _emit_part(k: int) -> str:
    component, name = _PARTS[k]
    return to_verilog(component, name)


def to_verilog_parts(component: wiring.Component, name: str, parts: dict, *,
                     jobs: int = 1) -> str:
    """Verilog for ``component`` as module ``name``, with each sub-component in ``parts``
    (a dict ``{module name: component}``) emitted as a module of its own and instantiated
    where it sits. ``jobs`` worker processes convert the parts (forked, so they see the
    elaborated objects). The text is the same for any ``jobs``: the top module first, then
    the parts in ``parts`` order."""
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, not {jobs!r}")
    items = list(parts.items())
    # While the top is converted, each part elaborates to an instance of its own module: an
    # attribute on the object shadows the class's ``elaborate`` for that conversion only.
    for module, part in items:
        part.elaborate = lambda platform, part=part, module=module: _instance(part, module)
    try:
        top = to_verilog(component, name)
    finally:
        for _, part in items:
            del part.elaborate
    _PARTS[:] = [(part, module) for module, part in items]
    try:
        if jobs == 1 or len(items) < 2 or "fork" not in multiprocessing.get_all_start_methods():
            texts = [_emit_part(k) for k in range(len(items))]
        else:
            with multiprocessing.get_context("fork").Pool(min(jobs, len(items))) as pool:
                texts = pool.map(_emit_part, range(len(items)), chunksize=1)
    finally:
        _PARTS.clear()
    return "\n".join([top, *texts])


def cpu_jobs() -> int:
    """Worker processes to use by default: the CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)
