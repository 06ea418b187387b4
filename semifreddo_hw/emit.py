"""Verilog emission for components, deterministic and without constant ports."""

from amaranth.back import verilog
from amaranth.hdl import Const, Value, ValueCastable
from amaranth.lib import wiring

__all__ = ["ports_of", "to_verilog"]


def ports_of(component: wiring.Component) -> list:
    """The component's signature members as Verilog ports, named ``path__to__member``.

    Members fixed to a constant (``ready`` of an ``always_ready`` stream, say) are not ports:
    the constant is part of the contract and the generated module simply has no such input.
    Directions are left to Amaranth, which infers them from what drives each signal.
    """
    ports = []
    for path, _member, value in component.signature.flatten(component):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if not isinstance(value, Value) or isinstance(value, Const):
            continue
        ports.append(("__".join(map(str, path)), value, None))
    return ports


def to_verilog(component: wiring.Component, name: str) -> str:
    """Verilog text for ``component`` as module ``name``, plus ``clk`` and ``rst``.

    Source locations are not emitted, so the text depends only on the design, not on where
    the package is installed: identical inputs give byte-identical Verilog.
    """
    return verilog.convert(component, name=name, ports=ports_of(component), emit_src=False)
