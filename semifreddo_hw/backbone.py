# amaranth: UnusedElaboratable=no
"""The SemifreddoNet backbone: a frozen core and up to two trainable cores side by side in one
pipeline (DESIGN.md §2, paper §3.1-3.2, Fig. 3).

From one input pixel stream, each core runs its own stem; then, per Semifreddo module ``i``,
the frozen core's stage (constant weights) runs beside each trainable core's stage (weights in
SRAM). A trainable stage reads the per-channel alpha blend of the frozen core's features and
its own core's (when there is a frozen core), after which the run-time cross-core shuffle
may swap half the channels of the two blended streams. Every core ends in its own output
stream.

The trainable stages are shorter than the frozen ones, so their outputs are delay-balanced:
each meeting point of a frozen and a trainable path (every blend, and the outputs) has FIFOs
sized from the two paths' lag bounds (:attr:`Backbone.balance`), so the pipeline takes one
pixel per clock and never deadlocks whatever the valid/ready pattern of the input and of
outputs drained concurrently. Register slices (:class:`~.streams.SkidBuffer`) after every
block cut the combinational ``ready`` paths between blocks.

All run-time parameters (every requantizer's scale and bias, the trainable cores' weights,
the alpha codes) are written through one always-ready ``param_write`` stream of
``{addr, value}``; :attr:`Backbone.address_map` says where each lives and
:meth:`Backbone.param_writes` turns a parameter set into the writes that load it.
"""

import dataclasses

import numpy as np
from amaranth.hdl import Cat, Module, Shape, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from weights.network import Network, check_params

from .blend import AlphaBlend, CoreShuffle
from .blocks import DownsamplingBlock, RegularBlock
from .conv import Conv
from .parallel import fork_map
from .streams import SkidBuffer, StreamFIFO, fork, vector_layout
from .window import MARKER_BITS

__all__ = ["Backbone", "Region", "BALANCE_MARGIN", "plan_frozen"]

#: Beats added to every balancing FIFO beyond the lag bounds' difference.
BALANCE_MARGIN = 4
_VALUE = signed(32)  # a parameter write's value: wide enough for a bias


@dataclasses.dataclass(frozen=True)
class Region:
    """Parameters ``base .. base + count - 1`` of the ``param_write`` address space: the
    ``field`` (``scale``, ``bias``, ``weight`` or ``alpha``) of layer ``layer``, element
    order as the layer's bank (channel order for scales, biases and alphas)."""

    layer: str
    field: str
    base: int
    count: int
    width: int
    signed: bool


def _plan_one(job) -> None:
    spec, p, solver = job
    Conv(spec.kind, p.weight, width=spec.width, height=spec.height, stride=spec.stride,
         shift=p.shift, solver=solver)


def plan_frozen(net: Network, params: dict, *, solver: str = "da4ml", jobs: int = 1) -> None:
    """Plan every frozen convolution of ``net`` in ``jobs`` forked worker processes, largest
    first, filling the plan cache (:func:`~.adder_graph.plan_cmvm`) so that building the
    :class:`Backbone` afterwards only reads it. The plans are the same as one process
    would make."""
    frozen = sorted((c for c in net.convs() if c.frozen),
                    key=lambda c: -int(np.prod(c.weight_shape)))
    fork_map(_plan_one, [(c, params[c.name], solver) for c in frozen], jobs)


class Backbone(wiring.Component):
    """The backbone of ``net`` (a :class:`weights.network.Network`) with parameters
    ``params`` (checked by :func:`weights.network.check_params`): frozen weights become
    constants; the trainable weights, all scales and biases and the alpha codes are
    power-up values of run-time memories.

    Ports
    -----
    i : In(stream)
        Input pixels (``channels_in`` int8 lanes, EOL/EOF markers), one per beat.
    o_frozen, o_a, o_b : Out(stream)
        The output feature maps of each core present (int8 lanes, markers), aligned: they
        leave together within the balancing FIFOs' slack, so drain them concurrently (or
        tie an unused one's ``ready`` high); holding one back stalls them all.
    param_write : In(stream, always ready)
        ``{addr, value}``: one run-time parameter (see :attr:`address_map`); writes outside
        the map are ignored, values are taken modulo their field's width. Write between
        frames.
    shuffle : In(1)
        Cross-core shuffle on (networks with ``core_shuffle``); change between frames.
    framing_error, marker_mismatch : Out(1)
        Sticky: a window saw markers that disagree with the frame size; a blend or shuffle
        joined beats with different markers.
    """

    def __init__(self, net: Network, params: dict, *, solver: str = "da4ml",
                 levels_per_stage: int = 2):
        if not isinstance(net, Network):
            raise TypeError(f"net must be a weights.network.Network, not {type(net).__name__}")
        check_params(net, params)
        self.net = net
        kw = dict(solver=solver, levels_per_stage=levels_per_stage)
        self.stems = {core: self._stem(core, params, kw) for core in net.cores}
        self.stages = {core: [[self._block(core, i, j, blk, params, kw)
                               for j, blk in enumerate(net.blocks(core, i))]
                              for i in range(1, len(net.stages) + 1)]
                       for core in net.cores}
        self.blends = {b.name: AlphaBlend(b.channels, alpha_init=params[b.name].tolist())
                       for b in net.blends()}
        self.shuffles = [CoreShuffle(s.trainable[0].channels_in) for s in net.stages] \
            if net.core_shuffle else []
        self.balance = self._balance()
        self.address_map = self._address_map()

        in_layout = vector_layout(signed(8), net.channels_in, MARKER_BITS)
        out_layout = vector_layout(signed(8), self._stage_channels(len(net.stages)),
                                   MARKER_BITS)
        top = self.address_map[-1]
        self.address_width = max(1, ceil_log2(top.base + top.count))
        members = {
            "i": In(stream.Signature(in_layout)),
            **{f"o_{core}": Out(stream.Signature(out_layout)) for core in net.cores},
            "param_write": In(stream.Signature(data.StructLayout(
                {"addr": unsigned(self.address_width), "value": _VALUE}), always_ready=True)),
            "framing_error": Out(1),
            "marker_mismatch": Out(1),
        }
        if net.core_shuffle:
            members["shuffle"] = In(1)
        super().__init__(members)

    # -- construction ------------------------------------------------------------------

    def _stem(self, core, params, kw):
        p, net = params[f"{core}.stem"], self.net
        return Conv("full", p.weight, width=net.width, height=net.height, stride=2,
                    shift=p.shift, relu=True, scale_init=p.scale.tolist(),
                    bias_init=p.bias.tolist(), configurable=core != "frozen", **kw)

    @staticmethod
    def _block(core, i, j, blk, params, kw):
        pre = f"{core}.m{i}.{j}."
        kw = dict(kw, configurable=core != "frozen")
        if blk.stride == 2:
            branches = [{"dw": params[pre + b + "dw"].weight,
                         "dw_quant": params[pre + b + "dw"].quant(),
                         "pw": params[pre + b + "pw"].weight,
                         "pw_quant": params[pre + b + "pw"].quant()} for b in ("b0_", "b1_")]
            return DownsamplingBlock(blk.channels_in, blk.width_in, blk.height_in,
                                     branches=branches, **kw)
        return RegularBlock(blk.channels_in, blk.width_in, blk.height_in,
                            dw=params[pre + "dw"].weight, dw_quant=params[pre + "dw"].quant(),
                            pw=params[pre + "pw"].weight, pw_quant=params[pre + "pw"].quant(),
                            **kw)

    def layers(self):
        """``(name, owner, port prefix, Conv)`` for every convolution, in network order:
        ``owner`` is the stem or block whose ``<prefix>scale_write`` (etc.) ports reach it."""
        for core in self.net.cores:
            yield f"{core}.stem", self.stems[core], "", self.stems[core]
            for i, stage in enumerate(self.stages[core], 1):
                for j, block in enumerate(stage):
                    for name, conv in block.layers.items():
                        yield f"{core}.m{i}.{j}.{name}", block, f"{name}_", conv

    def parts(self, name: str) -> dict:
        """Every convolution as a part for :func:`~.emit.to_verilog_parts`, keyed by its
        module name (``<name>__<layer, dots as underscores>``)."""
        return {f"{name}__{layer.replace('.', '_')}": conv
                for layer, _owner, _prefix, conv in self.layers()}

    def _stage_bounds(self, core, i) -> tuple[int, int]:
        """Fewest and most beats stage ``i`` of ``core`` holds, past its first block's
        window (the same for every core's stage ``i``, which reads the same pixels), with
        the register slices after each block."""
        first, *rest = self.stages[core][i - 1]
        lo = sum(b.lag[0] for b in rest)
        hi = first.pipe_beats + sum(b.lag[1] for b in rest) + SkidBuffer.beats * (1 + len(rest))
        return lo, hi

    def _balance(self) -> list[dict]:
        """Per meeting point (0: after the stems, ``i``: after stage ``i``), the depth of the
        FIFO delaying each trainable core's stream (``trainable``) and the frozen core's
        stream towards the blends or output (``frozen``; 0: none). A path that can hold
        ``hi`` beats beside one that may hold as few as ``lo`` gets ahead by at most
        ``hi - lo`` beats; a FIFO that deep (plus a margin) lets it wait without stalling
        the other path, so the common fork never waits on a path that needs more input."""
        net = self.net
        if not net.blended:
            return [{"trainable": 0, "frozen": 0} for _ in range(len(net.stages) + 1)]
        skid = SkidBuffer.beats
        t = next(c for c in net.cores if c != "frozen")
        points = [((0, self.stems["frozen"].pipe_beats + skid),
                   (0, self.stems[t].pipe_beats + skid))]
        for i in range(1, len(net.stages) + 1):
            lo_t, hi_t = self._stage_bounds(t, i)
            # The trainable path also passes the blend and a register slice in front.
            points.append((self._stage_bounds("frozen", i),
                           (lo_t, hi_t + AlphaBlend.latency + skid)))
        return [{"trainable": max(0, hi_f - lo_t) + BALANCE_MARGIN,
                 "frozen": hi_t - lo_f + BALANCE_MARGIN if hi_t > lo_f else 0}
                for (lo_f, hi_f), (lo_t, hi_t) in points]

    def _address_map(self) -> list[Region]:
        regions, base = [], 0

        def add(layer, field, bank):
            nonlocal base
            shape = Shape.cast(bank.elem)
            regions.append(Region(layer, field, base, bank.count, shape.width, shape.signed))
            base += bank.count

        for name, _owner, _prefix, conv in self.layers():
            add(name, "scale", conv.requant.scales)
            add(name, "bias", conv.requant.biases)
            if conv.configurable:
                add(name, "weight", conv.product.bank)
        for name, blend in self.blends.items():
            add(name, "alpha", blend.alphas)
        return regions

    def param_writes(self, params: dict) -> list[tuple[int, int]]:
        """``(addr, value)`` writes that load every run-time parameter of ``params``: same
        network, same frozen weights and shifts (build-time constants; a difference is a
        ``ValueError``)."""
        check_params(self.net, params)
        convs = {name: conv for name, _o, _p, conv in self.layers()}
        for name, conv in convs.items():
            p = params[name]
            if p.shift != conv.requant.shift:
                raise ValueError(f"{name}.shift: {p.shift}, but the hardware was built with "
                                 f"{conv.requant.shift} (a build-time constant)")
            if not conv.configurable and not np.array_equal(p.weight, conv.weights):
                raise ValueError(f"{name}.weight: differs from the frozen weights the "
                                 f"hardware was built with")
        writes = []
        for r in self.address_map:
            p = params[r.layer]
            if r.field == "alpha":
                values = p
            elif r.field == "weight":
                conv = convs[r.layer]
                values = np.zeros(r.count, dtype=np.int64)
                for idx in np.ndindex(p.weight.shape):
                    values[conv.weight_index(*idx)] = p.weight[idx]
            else:
                values = getattr(p, r.field)
            writes += [(r.base + k, int(v)) for k, v in enumerate(values)]
        return writes

    # -- reports -----------------------------------------------------------------------

    def report(self) -> dict:
        """Plan estimates: per layer (as :meth:`Conv.report
        <semifreddo_hw.conv.Conv.report>`) and totals, with the balancing FIFOs."""
        layers = {name: conv.report() for name, _o, _p, conv in self.layers()}
        lane_bits = {i: self._stage_channels(i) * 8 + MARKER_BITS
                     for i in range(len(self.net.stages) + 1)}
        fifo_bits = sum((b["trainable"] * (len(self.net.cores) - 1) + b["frozen"]) * lane_bits[i]
                        for i, b in enumerate(self.balance) if self.net.blended)
        frozen = [r for r in layers.values() if not r["configurable"]]
        config = [r for r in layers.values() if r["configurable"]]
        return {
            "network": self.net.name,
            "cores": list(self.net.cores),
            "frozen_weights": sum(r["weights"] for r in frozen),
            "frozen_nonzero_weights": sum(r.get("nonzero_weights", 0) for r in frozen),
            "configurable_weights": sum(r["weights"] for r in config),
            "alpha_codes": sum(b.channels for b in self.blends.values()),
            "adders": sum(r["adders"] for r in layers.values()),
            "multipliers": sum(r["multipliers"] for r in layers.values()),
            "parameter_memory_bits": sum(r["memory_bits"] for r in layers.values())
            + sum(b.alphas.bits for b in self.blends.values()),
            "line_buffer_bits": sum(r.get("line_buffer_bits", 0) for r in layers.values()),
            "balance_fifo_bits": fifo_bits,
            "balance": self.balance,
            "parameter_addresses": self.address_map[-1].base + self.address_map[-1].count,
            "layers": layers,
        }

    def _stage_channels(self, i) -> int:
        """Channels after stage ``i`` (0: after the stems)."""
        if i == 0:
            return self.net.stem_channels
        s = self.net.stages[i - 1]
        return (s.frozen or s.trainable)[-1].channels_out

    # -- elaboration -------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        net = self.net
        errors, mismatches = [], []

        def sub(name, component):
            m.submodules[name] = component
            return component

        def slice_(name, src):
            """``src`` through a register slice; returns the slice's output stream."""
            s = sub(name, SkidBuffer(src.payload.shape()))
            wiring.connect(m, src, s.i)
            return s.o

        def delay(name, src, depth):
            if not depth:
                return src
            q = sub(name, StreamFIFO(src.payload.shape(), depth))
            wiring.connect(m, src, q.i)
            return q.o

        def broadcast(src, dsts):
            fork(m, src, *dsts)
            m.d.comb += [d.payload.eq(src.payload) for d in dsts]

        self._connect_params(m)

        # Stems, all fed from the input.
        broadcast(self.i, [stem.i for stem in self.stems.values()])
        feats = {}
        for core, stem in self.stems.items():
            sub(f"{core}_stem", stem)
            errors.append(stem.framing_error)
            feats[core] = slice_(f"{core}_stem_slice", stem.o)

        for i in range(len(net.stages) + 1):
            # Meeting point i: balance the trainable streams against the frozen one.
            bal = self.balance[i]
            if net.blended:
                for core in feats:
                    if core != "frozen":
                        feats[core] = delay(f"{core}_bal{i}", feats[core], bal["trainable"])
            if i == len(net.stages):
                if net.blended:
                    feats["frozen"] = delay(f"frozen_bal{i}", feats["frozen"], bal["frozen"])
                break
            mod = i + 1
            inputs = dict(feats)
            if net.blended:
                frozen_dsts = []
                for core in feats:
                    if core == "frozen":
                        continue
                    blend = sub(f"{core}_blend{mod}", self.blends[f"{core}.m{mod}.alpha"])
                    wiring.connect(m, feats[core], blend.t)
                    frozen_dsts.append(blend.f)
                    mismatches.append(blend.marker_mismatch)
                    inputs[core] = blend.o
                first = self.stages["frozen"][i][0]
                to_blends = stream.Signature(feats["frozen"].payload.shape()).create()
                broadcast(feats["frozen"], [first.i, to_blends])
                broadcast(delay(f"frozen_bal{i}", to_blends, bal["frozen"]), frozen_dsts)
            elif "frozen" in feats:
                wiring.connect(m, feats["frozen"], self.stages["frozen"][i][0].i)
            if net.core_shuffle:
                shuffle = sub(f"shuffle{mod}", self.shuffles[i])
                m.d.comb += shuffle.enable.eq(self.shuffle)
                wiring.connect(m, inputs["a"], shuffle.a)
                wiring.connect(m, inputs["b"], shuffle.b)
                inputs["a"], inputs["b"] = shuffle.a_o, shuffle.b_o
                with m.If(shuffle.a.valid & shuffle.a.ready &
                          (shuffle.a.payload.side != shuffle.b.payload.side)):
                    m.d.sync += self.marker_mismatch.eq(1)
            for core in feats:
                blocks = self.stages[core][i]
                if core == "frozen":
                    src = None  # already connected to the first block
                else:
                    src = slice_(f"{core}_m{mod}_in", inputs[core])
                for j, block in enumerate(blocks):
                    sub(f"{core}_m{mod}_{j}", block)
                    errors.append(block.framing_error)
                    if src is not None:
                        wiring.connect(m, src, block.i)
                    src = slice_(f"{core}_m{mod}_{j}_out", block.o)
                feats[core] = src

        for core, src in feats.items():
            wiring.connect(m, src, wiring.flipped(getattr(self, f"o_{core}")))
        with m.If(Cat(*errors).any()):
            m.d.sync += self.framing_error.eq(1)
        if mismatches:
            with m.If(Cat(*mismatches).any()):
                m.d.sync += self.marker_mismatch.eq(1)
        return m

    def _connect_params(self, m):
        """Decode ``param_write`` onto every bank's write port."""
        req = self.param_write
        ports = {}
        for name, owner, prefix, conv in self.layers():
            ports[(name, "scale")] = getattr(owner, f"{prefix}scale_write")
            ports[(name, "bias")] = getattr(owner, f"{prefix}bias_write")
            if conv.configurable:
                ports[(name, "weight")] = getattr(owner, f"{prefix}weight_write")
        for name, blend in self.blends.items():
            ports[(name, "alpha")] = blend.alpha_write
        for r in self.address_map:
            port = ports[(r.layer, r.field)]
            offset = req.payload.addr - r.base
            m.d.comb += [
                port.valid.eq(req.valid & (req.payload.addr >= r.base) &
                              (req.payload.addr < r.base + r.count)),
                port.payload.index.eq(offset[:len(port.payload.index)]),
                port.payload.value.eq(req.payload.value[:r.width]),
            ]
