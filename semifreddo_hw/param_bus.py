"""One write bus for every run-time parameter of a design (``docs/backbone.md``).

Every :class:`~.param_bank.ParamBank` of a design (scales, biases, trainable weights, alpha
codes) gets a :class:`Region` of one address space; a single always-ready stream of
``{addr, value}`` writes them all. :class:`ParamBus` lays out the regions, decodes the
stream onto the banks' write ports, and turns parameter values into the writes that load
them.

Each region starts at a multiple of its span (its address count rounded up to a power of
two), so that decoding a write is an equality on the address's high bits and the bank's
index is its low bits: no adder or magnitude comparator per region on the one address that
fans out to every bank (``small`` at ``--fold rate --fps 8000``, 176 regions: the top
module's own logic went from 4,502 LUT4 and 1,139 CCU2C to 4,230 and 332 in
``python -m generators.synth --build DIR --flows ecp5``). The address space has gaps
between regions (6,240 addresses for 4,320 there), which writes ignore.
"""

import dataclasses
import math
from typing import NamedTuple

from amaranth.hdl import Mux, Shape, signed, unsigned
from amaranth.lib import data, stream
from amaranth.utils import ceil_log2

from spec.formats import PARAM_VALUE_BITS, param_address_bits

from .fanout import kept_copy

__all__ = ["Region", "ParamBus", "ElementOrder"]


class ElementOrder(NamedTuple):
    """The element order of a bank: row-major over ``axes`` of sizes ``shape``; the same
    parameters as an array (``params``, the weight files) have axes ``source_axes``, a
    permutation of ``axes``."""

    axes: tuple[str, ...]
    shape: tuple[int, ...]
    source_axes: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Region:
    """Addresses ``base .. base + count - 1`` of the address space (``base`` a multiple of
    ``count`` rounded up to a power of two): the ``field``
    (``scale``, ``bias``, ``weight`` or ``alpha``) of layer ``layer``, at the layer's bank's
    addresses; each value ``width`` bits wide, two's complement when ``signed`` (the bus
    keeps the low ``width`` bits of a write).

    Element order: the parameters, in row-major order over ``axes`` (of sizes ``shape``),
    are elements ``k = 0, 1, ...``; the array that holds them in ``params`` and in the
    weight files has the same axes in the order ``source_axes`` (a conv's weights:
    :data:`spec.network.WEIGHT_AXES`; the bank's order: :data:`~.conv.BANK_AXES`). Element
    ``k`` is at address ``base + k // row * row_stride + k % row``: a spatial layer's bank
    is one row (``row == row_stride``, the element count), a folded layer's
    (:class:`~.param_bank.PhaseBank`) rows of ``row`` elements ``row_stride`` addresses apart
    (``row`` rounded up to a power of two), with gaps that writes ignore."""

    layer: str
    field: str
    base: int
    count: int
    width: int
    signed: bool
    axes: tuple[str, ...]
    shape: tuple[int, ...]
    source_axes: tuple[str, ...]
    row: int
    row_stride: int


class ParamBus:
    """The address space over ``banks``: ``(layer, field, bank, order)`` in address order
    (``order``: the bank's element order, an :class:`ElementOrder`), or ``(layer, field,
    bank, order, first_set)`` for a region that writes the bank from set ``first_set`` on
    (a repeated head group's later pass: several regions on one bank)."""

    def __init__(self, banks):
        self.regions, self._banks, self._first_sets, base = [], [], [], 0
        for layer, field, bank, order, *first_set in banks:
            self._first_sets.append(first_set[0] if first_set else 0)
            shape = Shape.cast(bank.elem)
            count = bank.address_count
            span = 1 << ceil_log2(count)
            base = -(-base // span) * span  # aligned: see the module docstring
            if math.prod(order.shape) != bank.count or sorted(order.axes) != sorted(
                order.source_axes
            ):
                raise ValueError(f"{layer}.{field}: {order} does not fit {bank.count} elements")
            self.regions.append(
                Region(
                    layer,
                    field,
                    base,
                    count,
                    shape.width,
                    shape.signed,
                    tuple(order.axes),
                    tuple(order.shape),
                    tuple(order.source_axes),
                    *bank.write_rows,
                )
            )
            self._banks.append(bank)
            base += count
        self.size = base
        self.address_width = param_address_bits(self.size)

    #: Groups (:meth:`connect`) sharing one first-level copy of the bus.
    GROUPS_PER_REGION = 8

    def signature(self, *, always_ready: bool = True) -> stream.Signature:
        """The bus: ``{addr, value}`` (value signed, taken modulo its field's width)."""
        return stream.Signature(
            data.StructLayout(
                {"addr": unsigned(self.address_width), "value": signed(PARAM_VALUE_BITS)}
            ),
            always_ready=always_ready,
        )

    def connect(self, m, bus, ports: dict, *, set_=None, groups: dict | None = None) -> None:
        """Decode ``bus`` onto the write port of each region (``ports[(layer, field)]``):
        a write reaches the one region whose addresses hold ``addr``, in its bank's weight
        set ``set_`` (a value; None: set 0) past the region's first set. A region is hit by
        its base's high bits (it is aligned to its span) and indexed by the low ones.

        ``groups`` (``{(layer, field): key}``, every port's): each key's ports decode a
        copy of the write (and of ``set_``) registered for them alone, two cycles later,
        and each port's decoded write is registered once more for it alone (kept copies,
        :func:`~.fanout.kept_copy`: synthesis would merge equal registers back into one):
        a copy per :attr:`GROUPS_PER_REGION` groups in the order of their first regions'
        addresses (a network's neighbouring layers), and from it one per group. The one
        bus that reaches every memory of a design then ends at a few flip-flops per port,
        which the placer puts beside the port's memory; unregistered, the path from the
        bus's source through the decode into a far memory's write enable was among the
        longest of a placed board build, and with one level of copies the bus's source
        into 70 groups' copies still had 27 of the placed ``small``'s pairs of parts over
        12 ns."""
        write = (bus.valid & bus.ready, bus.payload.addr, bus.payload.value, set_)
        by_port = {}  # the regions writing each port (one, or a repeated group's passes)
        for r, first in zip(self.regions, self._first_sets, strict=True):
            port = ports[(r.layer, r.field)]
            by_port.setdefault(id(port), (port, []))[1].append((r, first))
        if groups is None:
            self._decode(m, write, by_port.values())
            return
        by_group = {}  # a port's group: its first region's
        for port, regions in by_port.values():
            key = groups[(regions[0][0].layer, regions[0][0].field)]
            by_group.setdefault(key, []).append((port, regions))

        def copy(write, width, tag):
            """A kept copy (.fanout) of ``write``, its value cut to ``width`` bits."""
            valid, addr, value, chosen = write
            return (
                kept_copy(m, valid, name=f"param_valid_{tag}"),
                kept_copy(m, addr, name=f"param_addr_{tag}"),
                kept_copy(m, value[:width], name=f"param_value_{tag}"),
                None if chosen is None else kept_copy(m, chosen, name=f"param_set_{tag}"),
            )

        def width(group):
            return max(r.width for _, regions in group for r, _ in regions)

        groups_ = list(by_group.values())
        n = self.GROUPS_PER_REGION
        for j in range(0, len(groups_), n):
            region = copy(write, max(width(g) for g in groups_[j : j + n]), f"r{j // n}")
            for k, group in enumerate(groups_[j : j + n], start=j):
                self._decode(m, copy(region, width(group), f"g{k}"), group, tag=f"g{k}")

    @staticmethod
    def _decode(m, write, by_port, *, tag=None) -> None:
        """:meth:`connect`'s decode of ``write`` (``valid``, ``addr``, ``value``, set or
        None) onto each port of ``by_port`` (``(port, [(region, first set), ...])``).

        With a ``tag`` (a group's), each port's decoded write (hit, index and set) comes
        from registers of its own a cycle later, and the value from one more register of
        the group: the decode then ends at flip-flops the placer puts beside the port's
        memory, instead of running on into a far memory's write enable (on the placed
        board build of ``small``, a group's registers through the decode into its farthest
        block RAM were 12-14 ns)."""
        valid_in, addr, value, set_ = write
        if tag is not None:
            value = kept_copy(m, value, name=f"param_value_{tag}_d")
        for n, (port, port_regions) in enumerate(by_port):
            valid, index, set_index = 0, 0, 0
            for r, first in port_regions:
                # The span's high bits pick the region; its low bits are the bank's index
                # (past the bank's count they are ignored: the banks' own contract).
                k = ceil_log2(r.count)
                hit = valid_in & (addr[k:] == r.base >> k)
                offset = addr[:k][: len(port.payload.index)]
                chosen = first if set_ is None else first + set_
                if len(port_regions) == 1:
                    valid, index, set_index = hit, offset, chosen
                else:
                    valid = valid | hit
                    index, set_index = Mux(hit, offset, index), Mux(hit, chosen, set_index)
            sets = set_ is not None or len(port_regions) > 1  # the port's set is driven
            if tag is not None:
                valid = kept_copy(m, valid, name=f"param_valid_{tag}_p{n}")
                index = kept_copy(m, index, name=f"param_index_{tag}_p{n}")
                if sets:
                    set_index = kept_copy(m, set_index, name=f"param_set_{tag}_p{n}")
            if sets:
                m.d.comb += port.payload.set.eq(set_index)
            m.d.comb += [
                port.valid.eq(valid),
                port.payload.index.eq(index),
                port.payload.value.eq(value[: port_regions[0][0].width]),
            ]

    def writes(self, values) -> list[tuple[int, int]]:
        """``(addr, value)`` writes loading every region, in address order, where
        ``values(region)`` gives its bank's elements in element order (a folded bank's gaps,
        :class:`~.param_bank.PhaseBank`, are written 0)."""
        out = []
        for r, bank in zip(self.regions, self._banks, strict=True):
            image = [0] * r.count
            for k, v in enumerate(values(r)):
                image[bank.address(k)] = int(v)
            out += [(r.base + a, v) for a, v in enumerate(image)]
        return out
