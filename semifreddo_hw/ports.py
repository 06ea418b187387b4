"""A component's signature members as Verilog ports, as every emitter names them."""

from amaranth.hdl import Const, Value, ValueCastable
from amaranth.lib import wiring

__all__ = ["ports_of", "port_members"]


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
