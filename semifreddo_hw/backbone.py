# amaranth: UnusedElaboratable=no
"""The SemifreddoNet backbone: a frozen core and up to two trainable cores side by side in one
pipeline (paper §3.1-3.2, Fig. 3; ``docs/backbone.md``).

From one input pixel stream, each core runs its own stem; then, per Semifreddo module ``i``,
the frozen core's stage (constant weights) runs beside each trainable core's stage (weights in
SRAM). A trainable stage reads the per-channel alpha blend of the frozen core's features and
its own core's (when there is a frozen core), after which the run-time cross-core shuffle
may swap half the channels of the two blended streams. Every core ends in its own output
stream; a network with a model head (``docs/head.md``) also feeds the cores' outputs, side
by side, to the head's groups, each with an output stream of its own.

The trainable stages are shorter than the frozen ones, so their outputs are delay-balanced:
each meeting point of a frozen and a trainable path (every blend, and the outputs) has FIFOs
sized from the two paths' lag bounds (:attr:`Backbone.balance`, :mod:`.balance`), so the
pipeline takes one pixel per clock and never deadlocks whatever the valid/ready pattern of
the input and of outputs drained concurrently. Register slices
(:class:`~.streams.HalfRateSlice`) after every block cut the combinational ``ready`` paths
between blocks: one register each, as every stream after the stride-2 stems carries a beat
at most every other cycle. A block whose output already comes from flip-flops needs none
(a downsampling block's skew FIFOs; a regular block of a rate build whose last layer's
deserializer is registered). The frozen stream that passes the trainable stages has a
slice of its own on the way, so has each blend's output into the core shuffle (a join of
two streams from blends placed apart). An FPGA build may ask for more (``relays``) on the streams
that pass other blocks in :meth:`Backbone.placement_order`, so that a floorplan in that
order has no stream crossing the die in one cycle.

All run-time parameters (every requantizer's scale and bias, the trainable cores' weights,
the alpha codes) are written through one ``param_write`` stream of ``{addr, value}``
(:mod:`.param_bus`); :attr:`Backbone.address_map` says where each lives and
:meth:`Backbone.param_writes` turns a parameter set into the writes that load it.

Built with ``swap``, every parameter memory holds two sets, and each frame is computed
entirely with one of them: writes go to the set no entering frame uses (the shadow);
``param_swap`` makes it the set of the next frame to start at the input, which carries it
as its epoch marker (:data:`spec.stream.EPOCH`) through every layer, each reading its
parameters with the set its beat names. From the swap until the first beat of the new set
has left every output (``param_busy``), ``param_write`` holds further writes back: they
belong to the next set, whose memory frames of the old set still read.
"""

from typing import NamedTuple

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spec import names
from spec.network import WEIGHT_AXES, Network
from spec.params import block_passes, check_params, head_passes
from spec.stream import EOF_BIT, EPOCH_BIT, MARKER_BITS

from .balance import BALANCE_MARGIN, chain_bounds, fifo_depths
from .blend import AlphaBlend, CoreShuffle
from .blocks import DownsamplingBlock, RegularBlock
from .conv import Conv
from .fanout import kept_copy
from .head import Head, HeadGroup
from .param_bus import ElementOrder, ParamBus, Region
from .repeat import RepeatLoop
from .streams import (
    HalfRateSlice,
    SkidBuffer,
    StreamFIFO,
    fork,
    half_rate_slice,
    join,
    vector_layout,
)

__all__ = ["Backbone", "Layer", "Region"]


class Layer(NamedTuple):
    """A convolution of the backbone: its ``name`` (:mod:`spec.names`), the ``conv``, and
    the stem or block (``owner``) whose ``<prefix>scale_write``, ``<prefix>bias_write`` (and
    ``<prefix>weight_write``) ports reach its parameter banks."""

    name: str
    owner: wiring.Component
    prefix: str
    conv: Conv


class Backbone(wiring.Component):
    """The backbone of ``net`` (a :class:`spec.network.Network`) with parameters ``params``
    (checked by :func:`spec.params.check_params`): frozen weights become constants; the
    trainable weights, all scales and biases and the alpha codes are power-up values of
    run-time memories. ``graphs`` maps frozen convolutions to their planned adder graphs
    (:func:`~.conv.plan_conv`, as the build's plan step makes them); a layer without one
    is planned here. ``folds`` maps convolutions and alpha blends to their fold and
    ``digits`` frozen convolutions to the cycles their product may take per beat
    (:class:`~.conv.Conv`, :class:`~.blend.AlphaBlend`; default 1 both, spatial and
    word-parallel); ``periods`` convolutions and alpha blends to the fewest cycles between
    their beats (Conv's and AlphaBlend's ``period``: where given, 3x3 layers read their
    windows in place, and folded layers and blends with a cycle to spare register their
    output); ``roms`` names frozen convolutions whose products read their weights from a
    ROM beside multipliers (Conv's ``rom``; folded as a configurable layer is).

    Ports
    -----
    i : In(stream)
        Input pixels (``channels_in`` int8 lanes, EOL/EOF markers), one per beat.
    o_frozen, o_a, o_b : Out(stream)
        The output feature maps of each core present (int8 lanes, markers). They share one
        input: drain them concurrently (or tie an unused one's ``ready`` high); holding one
        back for longer than the balancing FIFOs' slack stalls them all.
    o_head_g0, o_head_g1, ... : Out(stream)
        With a head, each group's output (:func:`spec.names.output_port`): a beat per
        output pixel, or one per frame where the group pools. Drained as the cores'.
    param_write : In(stream)
        ``{addr, value}``: one run-time parameter (see :attr:`address_map`); writes outside
        the map are ignored, values are taken modulo their field's width. Without ``swap``
        always ready, and a write takes effect at once: write between frames, with the
        pipeline empty. With ``swap`` writes go to the shadow set and are held back
        (``ready`` low) while ``param_busy``.
    param_swap : In(1), with ``swap``
        A pulse: the shadow set is complete; frames from the next one to start at the input
        (whose first beat, the one after an end-of-frame beat or the very first, is offered
        on ``i`` after the pulse's cycle) are computed with it.
    param_busy : Out(1), with ``swap``
        A swap is asked for and waits for a frame to start, or frames of the old set may
        still be inside (until every output has passed a beat of the new set). Low again:
        the update has reached the outputs. A reset returns the frames to set 0.
    shuffle : In(1)
        Cross-core shuffle on (networks with ``core_shuffle``); change between frames.
    framing_error, marker_mismatch : Out(1)
        Sticky: a window saw markers that disagree with the frame size; a blend or shuffle
        joined beats with different markers.
    """

    def __init__(
        self,
        net: Network,
        params: dict,
        *,
        graphs: dict | None = None,
        folds: dict | None = None,
        digits: dict | None = None,
        periods: dict | None = None,
        roms=(),
        solver: str = "da4ml",
        levels_per_stage: int = 2,
        serial_levels_per_stage: int = 3,
        swap: bool = False,
        relays: int = 0,
    ):
        if not isinstance(net, Network):
            raise TypeError(f"net must be a spec.network.Network, not {type(net).__name__}")
        if not isinstance(swap, bool):
            raise TypeError(f"swap must be a bool, not {type(swap).__name__}")
        if not isinstance(relays, int) or isinstance(relays, bool):
            raise TypeError(f"relays must be an integer, not {type(relays).__name__}")
        if relays < 0:
            raise ValueError(f"relays must be 0 or more, not {relays}")
        check_params(net, params)
        self.net, self.swap = net, swap
        #: Register slices on each stream that passes other blocks in
        #: :meth:`placement_order` (a trainable stage's input and output, the frozen stage's
        #: first half into its second): on an FPGA floorplanned in that order those streams
        #: cross the die, and the placer spreads a chain of registers along the way, so that
        #: no hop is longer than a cycle. Only latency: the balancing FIFOs count them.
        self.relays = relays
        sets = 2 if swap else 1
        kw = dict(
            solver=solver,
            levels_per_stage=levels_per_stage,
            serial_levels_per_stage=serial_levels_per_stage,
            sets=sets,
        )
        graphs, folds, digits, periods = graphs or {}, folds or {}, digits or {}, periods or {}
        if unknown := sorted(set(roms) - {c.name for c in net.convs() if c.frozen}):
            raise ValueError(f"roms names no frozen convolution of {net.name}: {unknown}")
        # Per convolution, what it takes beyond the parameters: its planned graph, fold,
        # digits and beat period.
        options = {
            c.name: {
                **({"graph": graphs[c.name]} if c.name in graphs else {}),
                **({"fold": folds[c.name]} if folds.get(c.name, 1) > 1 else {}),
                **({"digits": digits[c.name]} if digits.get(c.name, 1) > 1 else {}),
                **({"period": periods[c.name]} if c.name in periods else {}),
                **({"rom": True} if c.name in roms else {}),
            }
            for c in net.convs()
        }
        self.stems = {core: self._stem(core, params, options, kw) for core in net.cores}
        self.stages = {
            core: [
                [
                    self._block(net, core, i, j, blk, params, options, kw)
                    for j, blk in enumerate(net.blocks(core, i))
                ]
                for i in range(1, len(net.stages) + 1)
            ]
            for core in net.cores
        }
        self.blends = {
            b.name: AlphaBlend(
                b.channels,
                alpha_init=params[b.name].tolist(),
                fold=folds.get(b.name, 1),
                sets=sets,
                period=periods.get(b.name),
            )
            for b in net.blends()
        }
        self.shuffles = (
            [CoreShuffle(s.trainable[0].channels_in) for s in net.stages]
            if net.core_shuffle
            else []
        )
        self.balance = self._balance()
        self.head = (
            Head([self._head_group(k, params, folds, periods, kw) for k in range(len(net.head))])
            if net.head
            else None
        )
        self.bus = ParamBus(self._banks())

        in_layout = vector_layout(signed(8), net.channels_in, MARKER_BITS)
        out_layout = vector_layout(signed(8), net.channels_after(len(net.stages)), MARKER_BITS)
        members = {
            "i": In(stream.Signature(in_layout)),
            **{names.output_port(core): Out(stream.Signature(out_layout)) for core in net.cores},
            **{
                names.output_port(names.head_group(k)): Out(
                    stream.Signature(vector_layout(signed(8), g.c_out, MARKER_BITS))
                )
                for k, g in enumerate(net.head)
            },
            "param_write": In(self.bus.signature(always_ready=not swap)),
            "framing_error": Out(1),
            "marker_mismatch": Out(1),
        }
        if swap:
            members["param_swap"] = In(1)
            members["param_busy"] = Out(1)
        if net.core_shuffle:
            members["shuffle"] = In(1)
        super().__init__(members)

    # -- construction ------------------------------------------------------------------

    def _stem(self, core, params, options, kw):
        name, net = names.stem(core), self.net
        p = params[name]
        return Conv(
            "full",
            p.weight,
            width=net.width,
            height=net.height,
            stride=2,
            shift=p.shift,
            relu=True,
            scale_init=p.scale.tolist(),
            bias_init=p.bias.tolist(),
            configurable=core != "frozen",
            # the input padding of a normalisation folded into the stems (build-time)
            pad=params.get(names.INPUT_PAD),
            **options[name],
            **kw,
        )

    @staticmethod
    def _block(net, core, i, j, blk, params, options, kw):
        layers = {layer: names.conv(core, i, j, layer) for layer in names.block_layers(blk.stride)}
        kw = dict(
            kw,
            configurable=core != "frozen",
            layer_options={layer: options[n] for layer, n in layers.items()},
        )
        branches = [
            {
                "dw": params[layers[dw]].weight,
                "dw_quant": params[layers[dw]].quant(),
                "pw": params[layers[pw]].weight,
                "pw_quant": params[layers[pw]].quant(),
            }
            for dw, pw in zip(list(layers)[0::2], list(layers)[1::2], strict=True)
        ]
        if blk.stride == 2:
            return DownsamplingBlock(
                blk.channels_in, blk.width_in, blk.height_in, branches=branches, **kw
            )
        if core == "frozen" or (i, j) != net.repeated_block():
            return RegularBlock(blk.channels_in, blk.width_in, blk.height_in, **branches[0], **kw)
        # A trainable core's repeated block: built for every pass, in its loop.
        count, passes = block_passes(net, params, core)
        later = [
            {k: p[k].weight for k in p} | {f"{k}_quant": p[k].quant() for k in p}
            for p in passes[1:]
        ]
        block = RegularBlock(
            blk.channels_in,
            blk.width_in,
            blk.height_in,
            **branches[0],
            passes=net.trainable_repeats,
            pass_init=later,
            frame_bits=1,
            **kw,
        )
        return RepeatLoop(block, repeat_init=count, sets=kw["sets"])

    def _head_group(self, k, params, folds, periods, kw):
        """Head group ``k`` with its parameters (and its later passes') from ``params``,
        folded as ``folds`` says."""
        name = names.head_group(k)
        p, *passes = head_passes(self.net, params, k)
        return HeadGroup.of_network(
            self.net,
            k,
            p,
            passes,
            fold=folds.get(name, 1),
            period=periods.get(name),
            levels_per_stage=kw["levels_per_stage"],
            sets=kw["sets"],
        )

    def head_passes(self):
        """``(name, HeadGroup)`` of every repeated head group's later pass, in order."""
        return [
            (names.head_pass(k, j), g)
            for k, (_, g) in enumerate(self.head_groups())
            for j in range(1, g.repeats)
        ]

    def loops(self):
        """``(core, RepeatLoop)`` of every trainable core's repeated block, in core order."""
        where = self.net.repeated_block()
        if where is None:
            return []
        i, j = where
        return [(c, self.stages[c][i - 1][j]) for c in self.net.cores if c != "frozen"]

    def pass_layers(self):
        """``(name, Conv)`` of every repeated block's later passes' layers (the pass's name,
        the layer that runs it)."""
        return [(name, loop.layers[layer]) for name, loop, layer, _ in self._passes()]

    def _passes(self):
        """``(name, loop, layer, pass)`` of every repeated block's later passes' layers."""
        return [
            (names.block_pass(core, *self.net.repeated_block(), p, layer), loop, layer, p)
            for core, loop in self.loops()
            for p in range(1, loop.passes)
            for layer in loop.layers
        ]

    def head_groups(self):
        """``(name, HeadGroup)`` of every head group, in order."""
        groups = self.head.groups if self.head is not None else []
        return [(names.head_group(k), g) for k, g in enumerate(groups)]

    def layers(self):
        """Every convolution (a :class:`Layer`), in network order."""
        for core in self.net.cores:
            yield Layer(names.stem(core), self.stems[core], "", self.stems[core])
            for i, stage in enumerate(self.stages[core], 1):
                for j, block in enumerate(stage):
                    for layer, conv in block.layers.items():
                        yield Layer(names.conv(core, i, j, layer), block, f"{layer}_", conv)

    def parts(self, name: str) -> dict:
        """Every convolution as a part for :func:`~.emit.to_verilog_parts`, keyed by its
        module name (:func:`spec.names.part_module`)."""
        convs = [(layer.name, layer.conv) for layer in self.layers()]
        convs += [(n, g.conv) for n, g in self.head_groups()]
        return {names.part_module(name, n): conv for n, conv in convs}

    def _balance(self) -> list[dict]:
        """Per meeting point (0: after the stems, ``i``: after stage ``i``), the depths of
        the FIFOs delaying each trainable core's stream and the frozen core's stream towards
        the blends or outputs (:func:`~.balance.fifo_depths`). Every core's stage ``i``
        reads the same pixels through the same first window, so the windows cancel."""
        net = self.net
        skid = HalfRateSlice.beats
        if not net.blended:
            depths = [{"trainable": 0, "frozen": 0} for _ in range(len(net.stages) + 1)]
            return self._balance_loops(depths, skid)
        t = next(c for c in net.cores if c != "frozen")
        stem_in = SkidBuffer.beats  # every stem's input buffer
        # Each path into a blend passes a register slice (the frozen one each fork
        # branch's, the trainable one behind its balancing FIFO).
        depths = [
            fifo_depths(
                (0, self.stems["frozen"].pipe_beats + skid + stem_in + skid),
                (0, self.stems[t].pipe_beats + skid + stem_in + skid),
            )
        ]
        for i in range(len(net.stages)):
            lo_t, hi_t = chain_bounds(self.stages[t][i][0], self.stages[t][i][1:], skid)
            # Both paths also pass a register slice in front and another into the blend
            # (the trainable path the blend too).
            blend = max(
                self.blends[names.blend(c, i + 1)].pipe_beats for c in net.cores if c != "frozen"
            )
            lo_f, hi_f = chain_bounds(
                self.stages["frozen"][i][0], self.stages["frozen"][i][1:], skid
            )
            # The trainable path from meeting point i's fork starts in the frozen core's
            # FIFO towards the blends and the slice behind it: while trainable stage i runs
            # behind, that FIFO fills (to its depth at most), and the frozen path beside
            # holds those beats too.
            ahead = depths[i]["frozen"] + skid
            hi_t += ahead + blend + 2 * skid + 2 * self.relays * skid
            hi_t += (skid + CoreShuffle.beats) * net.core_shuffle  # its slice, its register
            hi_f += (self.relays + 1) * skid * (self._frozen_split(i) is not None)
            depths.append(fifo_depths((lo_f, hi_f + 2 * skid), (lo_t, hi_t)))
        return self._balance_loops(depths, skid)

    def _balance_loops(self, depths, skid) -> list[dict]:
        """``depths`` with the trainable outputs' FIFOs deep enough for repeated blocks: one
        core's loop may run a frame of passes more than another's (their counts differ), and
        a head joining the cores must not stall the one behind."""
        if len(self.loops()) < 2:  # one trainable core: the frozen FIFO balances it
            return depths
        t = self.loops()[0][0]
        lo, hi = chain_bounds(self.stages[t][-1][0], self.stages[t][-1][1:], skid)
        hi += 2 * self.relays * skid
        last = dict(depths[-1])
        last["trainable"] = max(last["trainable"], hi - lo + BALANCE_MARGIN)
        return depths[:-1] + [last]

    # -- run-time parameters -------------------------------------------------------------

    def _banks(self):
        """``(layer, field, bank, order)`` of every run-time memory, in address order
        (:class:`~.param_bus.ElementOrder`: per output channel, or the weights in
        :attr:`Conv.bank_axes <semifreddo_hw.conv.Conv.bank_axes>` order)."""
        for layer in self.layers():
            yield from _conv_banks(layer.name, layer.conv)
        # A repeated block's later passes: regions of their own on the same banks (the
        # sets of each pass), then each block's pass count (entry "<block>.repeat": the
        # parameters' name for it, spec.names.block_repeat).
        for name, loop, layer, p in self._passes():
            yield from _conv_banks(name, loop.layers[layer], p * loop.sets)
        for core, loop in self.loops():
            name = names.block(core, *self.net.repeated_block())
            yield name, "repeat", loop.repeat_bank, ElementOrder((), (), ())
        for name, blend in self.blends.items():
            yield name, "alpha", blend.alphas, ElementOrder(("c",), (blend.channels,), ("c",))
        for k, (name, g) in enumerate(self.head_groups()):
            for field, bank, _ in g.banks():
                yield name, field, bank, _head_order(g, field, bank)
            # A repeated group's later passes: regions of their own on the same banks.
            for j in range(1, g.repeats):
                for field, bank, _ in g.pass_banks():
                    order = _head_order(g, field, bank)
                    yield names.head_pass(k, j), field, bank, order, j * g.sets

    @property
    def address_map(self) -> list[Region]:
        """Where each run-time parameter lives on ``param_write``, and in what element
        order (:class:`~.param_bus.Region`)."""
        return self.bus.regions

    def param_writes(self, params: dict) -> list[tuple[int, int]]:
        """``(addr, value)`` writes that load every run-time parameter of ``params``: same
        network, same frozen weights and shifts (build-time constants; a difference is a
        ``ValueError``)."""
        check_params(self.net, params)
        convs = {layer.name: layer.conv for layer in self.layers()}
        convs |= {n: g.conv for n, g in self.head_groups()}
        convs |= dict(self.pass_layers())
        for n, g in self.head_groups():
            if params[n].pwl_shift != g.pwl.shift:
                raise ValueError(
                    f"{n}.pwl_shift: {params[n].pwl_shift}, but the hardware was built with "
                    f"{g.pwl.shift} (a build-time constant)"
                )
        for name, conv in convs.items():
            p = params[name]
            if p.shift != conv.requant.shift:
                raise ValueError(
                    f"{name}.shift: {p.shift}, but the hardware was built with "
                    f"{conv.requant.shift} (a build-time constant)"
                )
            if not conv.configurable and not np.array_equal(p.weight, conv.weights):
                raise ValueError(
                    f"{name}.weight: differs from the frozen weights the hardware was built with"
                )

        passes = {n: g.conv for n, g in self.head_passes()}
        table = {"pwl_breakpoint": "breakpoints", "pwl_slope": "slopes"}
        table["pwl_intercept"] = "intercepts"

        def values(r: Region):
            if r.layer not in params:  # a repeated block's count, "<block>.repeat"
                return [params[f"{r.layer}.{r.field}"]]
            p = params[r.layer]
            if r.field == "alpha":
                return p
            if r.field in table:
                return getattr(p, table[r.field])
            if r.field in ("pool", "source", "repeat"):
                return [getattr(p, r.field)]
            if r.field == "weight":
                conv = convs.get(r.layer) or passes[r.layer]
                out = np.zeros(conv.product.bank.count, dtype=np.int64)
                for idx in np.ndindex(p.weight.shape):
                    out[conv.weight_element(*idx)] = p.weight[idx]
                return out
            return getattr(p, r.field)

        return self.bus.writes(values)

    # -- reports -----------------------------------------------------------------------

    def report(self) -> dict:
        """Plan estimates: per layer (as :meth:`Conv.report
        <semifreddo_hw.conv.Conv.report>`) and totals, with the balancing FIFOs."""
        net = self.net
        layers = {layer.name: layer.conv.report() for layer in self.layers()}
        lane_bits = {i: net.channels_after(i) * 8 + MARKER_BITS for i in range(len(net.stages) + 1)}
        fifo_bits = sum(
            (b["trainable"] * net.trainable_cores + b["frozen"]) * lane_bits[i]
            for i, b in enumerate(self.balance)
        )
        frozen = [r for r in layers.values() if not r["configurable"]]
        config = [r for r in layers.values() if r["configurable"]]
        return {
            "network": net.name,
            "cores": list(net.cores),
            "frozen_weights": sum(r["weights"] for r in frozen),
            "frozen_nonzero_weights": sum(r.get("nonzero_weights", 0) for r in frozen),
            "configurable_weights": sum(r["weights"] for r in config),
            "alpha_codes": sum(b.channels for b in self.blends.values()),
            # folded blends share multipliers (one per channel otherwise: the codes' count)
            **(
                {"blend_multipliers": sum(b.lanes for b in self.blends.values())}
                if any(b.fold > 1 for b in self.blends.values())
                else {}
            ),
            "adders": sum(r["adders"] for r in layers.values()),
            "multipliers": sum(r["multipliers"] for r in layers.values()),
            "parameter_memory_bits": sum(r["memory_bits"] for r in layers.values())
            + sum(b.alphas.bits for b in self.blends.values())
            + sum(bank.bits for _, g in self.head_groups() for _, bank, _ in g.banks()),
            "line_buffer_bits": sum(r.get("line_buffer_bits", 0) for r in layers.values()),
            # frozen layers' weights in ROMs (Conv's ``rom``): memory, but no parameters
            **(
                {"rom_bits": sum(r.get("rom_bits", 0) for r in layers.values())}
                if any(r.get("rom") for r in layers.values())
                else {}
            ),
            "balance_fifo_bits": fifo_bits,
            **(
                {
                    "trainable_repeats": net.trainable_repeats,
                    "repeat_fifo_bits": sum(loop.memory_bits for _, loop in self.loops()),
                }
                if self.loops()
                else {}
            ),
            "balance": self.balance,
            **({"relays": self.relays} if self.relays else {}),
            "parameter_addresses": self.bus.size,
            "parameter_sets": 2 if self.swap else 1,
            "layers": layers,
            **({"head": self._head_report()} if self.head is not None else {}),
        }

    def _head_report(self) -> dict:
        """The head's groups: the convolution's plan (as a layer's), the activation and the
        pool, the sources as input lanes."""
        groups = {}
        for (name, g), spec in zip(self.head_groups(), self.net.head, strict=True):
            groups[name] = {
                **g.conv.report(),
                "sources": [list(s) for s in spec.sources],
                "segments": spec.segments,
                "pwl_multipliers": g.pwl.lanes,
                "pool_sum_bits": g.pool.sum_width * g.c_out,
                "memory_bits": sum(bank.bits for _, bank, _ in g.banks()),
                **({"repeats": g.repeats} if g.repeats > 1 else {}),
            }
        return {"weights": sum(spec.weights for spec in self.net.head), "groups": groups}

    # -- elaboration -------------------------------------------------------------------

    def placement_order(self) -> list[str]:
        """The backbone's submodules, by name, in the order its streams pass them: the
        input's slice and the stems, then per stage its meeting point and its blocks, then
        the outputs and the head. Each trainable core's stage sits between the first and
        second half of the frozen stage beside it (it reads the meeting point in front and
        feeds the one behind). A floorplan along this order keeps each block beside those
        it streams to (:mod:`generators.ecp5_floorplan`). Names a build leaves out (a FIFO
        of depth 0, the slice behind a block whose output is registered) are listed all
        the same."""
        net = self.net
        trainable = [c for c in net.cores if c != "frozen"]
        order = ["input_slice"] + [f"{c}_stem{s}" for c in net.cores for s in ("_in", "", "_slice")]
        for i in range(len(net.stages)):
            mod = i + 1
            order += [f"{c}_bal{i}" for c in net.cores]
            for c in trainable:
                order += [f"{c}_blend{mod}_t", f"{c}_blend{mod}_f", f"{c}_blend{mod}"]
            order += [f"shuffle{mod}_{c}" for c in trainable if net.core_shuffle]
            order += [f"shuffle{mod}", f"frozen_m{mod}_in"]
            stage = {}
            for c in net.cores:
                stage[c] = []
                if c != "frozen":  # its relays, then its input slice
                    stage[c] = [f"{c}_m{mod}_in{r}" for r in self._relay_names()]
                    stage[c] += [f"{c}_m{mod}_in"]
                for j in range(len(self.stages[c][i])):
                    stage[c] += [f"{c}_m{mod}_{j}", f"{c}_m{mod}_{j}_out"]
                if c != "frozen":
                    stage[c] += [f"{c}_m{mod}{r}" for r in self._relay_names()]
            frozen = stage.pop("frozen", [])
            split = self._frozen_split(i)
            half = 2 * (split or 0)  # two names a block
            crossing = ["_cross", *self._relay_names()] if split is not None else []
            relays = [f"frozen_m{mod}{r}" for r in crossing]
            trained = [n for c in trainable for n in stage[c]]
            order += frozen[:half] + trained + relays + frozen[half:]
        last = len(net.stages)
        order += [f"{c}_bal{last}" for c in net.cores] + [f"{c}_out" for c in net.cores]
        return order + ["head"]

    def _relay_names(self) -> list[str]:
        """The suffixes of a crossing's relay slices (:attr:`relays`), in stream order."""
        return [f"_relay{r}" for r in range(self.relays)]

    def _frozen_split(self, i: int) -> int | None:
        """The frozen stage ``i + 1``'s first block that :meth:`placement_order` puts after
        the trainable stages (the stream from the block before, or from the stage's input
        slice, passes them); None where nothing is put between."""
        if "frozen" not in self.stages or len(self.net.cores) < 2:
            return None
        return len(self.stages["frozen"][i]) // 2

    def _relay(self, m, name: str, src):
        """``src`` through the :attr:`relays` slices of crossing ``name``."""
        for suffix in self._relay_names():
            src = half_rate_slice(m, f"{name}{suffix}", src)
        return src

    def elaborate(self, platform):
        m = Module()
        errors, mismatches = [], []
        entry, shadow = self._epochs(m)
        self._connect_params(m, shadow)
        feats = self._stems(m, entry, errors)
        for i in range(len(self.net.stages)):
            inputs = self._meeting_point(m, i, feats, mismatches)
            feats = self._stage(m, i, inputs, errors)
        self._outputs(m, feats)
        _sticky_any(m, self.framing_error, errors, "framing_error")
        _sticky_any(m, self.marker_mismatch, mismatches, "marker_mismatch")
        return m

    def _epochs(self, m):
        """The input with each frame's epoch marker: the set it is computed with (0 without
        ``swap``); returns that stream and the set writes go to (None without ``swap``)."""
        entry = stream.Signature(self.i.payload.shape()).create()
        m.d.comb += [
            entry.valid.eq(self.i.valid),
            self.i.ready.eq(entry.ready),
            entry.payload.eq(self.i.payload),
        ]
        if not self.swap:
            m.d.comb += entry.payload.side[EPOCH_BIT].eq(0)
            return entry, None
        cur = Signal(name="epoch")  # the set of the frame entering now
        pending = Signal(name="swap_pending")  # asked for, waiting for a frame to start
        flight = Signal(name="swap_flight")  # frames of the old set may be inside
        at_start = Signal(init=1, name="frame_start")  # the next input beat starts a frame
        # A frame's set is decided when its first beat is offered, and held with the beat
        # until the input's skid buffer takes it.
        held, held_epoch = Signal(name="epoch_held"), Signal(name="epoch_held_value")
        epoch = Signal(name="epoch_in")
        m.d.comb += [
            epoch.eq(Mux(held, held_epoch, cur ^ (pending & ~flight & at_start))),
            entry.payload.side[EPOCH_BIT].eq(epoch),
            self.param_busy.eq(pending | flight),
        ]
        m.d.sync += [held.eq(self.i.valid & ~self.i.ready), held_epoch.eq(epoch)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [at_start.eq(self.i.payload.side[EOF_BIT]), cur.eq(epoch)]
            with m.If(epoch != cur):
                m.d.sync += [pending.eq(0), flight.eq(1)]
        with m.If(self.param_swap):  # after the apply: a request in that cycle waits
            m.d.sync += pending.eq(1)
        # The old set is free once every output has passed a beat of the new one (frames
        # leave each output in order).
        # Each output's beats are registered first (its epoch, not the comparison with
        # ``cur``, which may change in the next cycle): the outputs are far from the input
        # on an FPGA, and this bookkeeping sits with the input. A cycle later is safe: the
        # old set is freed later, never sooner.
        seen = []
        for out in self._output_names():
            o, s = getattr(self, names.output_port(out)), Signal(name=f"swap_seen_{out}")
            passed = Signal(name=f"swap_out_{out}")
            passed_epoch = Signal(name=f"swap_out_{out}_epoch")
            m.d.sync += [passed.eq(o.valid & o.ready), passed_epoch.eq(o.payload.side[EPOCH_BIT])]
            now = Signal(name=f"swap_seen_{out}_now")
            m.d.comb += now.eq(s | (passed & (passed_epoch == cur)))
            seen.append((s, now))
        with m.If(flight):
            m.d.sync += [s.eq(now) for s, now in seen]
            with m.If(Cat(*(now for _, now in seen)).all()):
                m.d.sync += [flight.eq(0)] + [s.eq(0) for s, _ in seen]
        # Writes after a swap belong to the next set: held until this one is done.
        m.d.comb += self.param_write.ready.eq(~(pending | flight))
        return entry, ~cur

    def _output_names(self) -> list[str]:
        """The cores and head groups, each with an output stream."""
        return list(self.net.cores) + [n for n, _ in self.head_groups()]

    def _connect_params(self, m, shadow):
        """Decode ``param_write`` onto every bank's write port (into set ``shadow``), through
        a register per block, blend, repeat loop and the head (:meth:`.ParamBus.connect`'s
        ``groups``)."""
        ports, groups = {}, {}

        def add(key, port, owner):
            ports[key], groups[key] = port, id(owner)

        for layer in self.layers():
            for field in ("scale", "bias") + (("weight",) if layer.conv.configurable else ()):
                port = getattr(layer.owner, f"{layer.prefix}{field}_write")
                add((layer.name, field), port, layer.owner)
        for name, loop, layer, _ in self._passes():  # the same ports, the pass's sets
            for field in ("scale", "bias", "weight"):
                add((name, field), getattr(loop, f"{layer}_{field}_write"), loop)
        for core, loop in self.loops():
            add((names.block(core, *self.net.repeated_block()), "repeat"), loop.repeat_write, loop)
        for name, blend in self.blends.items():
            add((name, "alpha"), blend.alpha_write, blend)
        for k, (name, g) in enumerate(self.head_groups()):
            for field, _, port in g.banks():
                add((name, field), getattr(self.head, f"g{k}_{port}"), self.head)
            for j in range(1, g.repeats):  # the same ports, the pass's sets
                for field, _, port in g.pass_banks():
                    add(
                        (names.head_pass(k, j), field),
                        getattr(self.head, f"g{k}_{port}"),
                        self.head,
                    )
        self.bus.connect(m, self.param_write, ports, set_=shadow, groups=groups)

    def _stems(self, m, entry, errors) -> dict:
        """Every core's stem, all fed from ``entry`` through a skid buffer each (so that no
        stem's ``ready`` runs through the fork into the others' windows or back to the
        input: on the ECP5 that path was the design's longest, 10.25 levels by
        ``bench/logic_depth.py``); returns their output streams."""
        skids = {core: SkidBuffer(entry.payload.shape()) for core in self.stems}
        # And a skid buffer in front of the fork: the input's ``ready`` is then a flip-flop,
        # not the fork's AND of every stem's (the link's parser and the epoch bookkeeping
        # act on it; on the placed board build that path from a stem's buffer to the
        # link's parser was the longest). Before the fork, it delays every core alike.
        m.submodules.input_slice = first = SkidBuffer(entry.payload.shape())
        wiring.connect(m, entry, first.i)
        _broadcast(m, first.o, [skid.i for skid in skids.values()])
        feats = {}
        for core, stem in self.stems.items():
            m.submodules[f"{core}_stem_in"] = skids[core]
            m.submodules[f"{core}_stem"] = stem
            wiring.connect(m, skids[core].o, stem.i)
            errors.append(stem.framing_error)
            feats[core] = half_rate_slice(m, f"{core}_stem_slice", stem.o)
        return feats

    def _balanced(self, m, i, feats) -> dict:
        """The trainable streams at meeting point ``i``, through their balancing FIFOs."""
        depth = self.balance[i]["trainable"]
        return {
            core: _delay(m, f"{core}_bal{i}", src, depth) if core != "frozen" else src
            for core, src in feats.items()
        }

    def _meeting_point(self, m, i, feats, mismatches) -> dict:
        """Meeting point ``i`` in front of stage ``i + 1``: the trainable streams balanced,
        blended with the frozen one (which also feeds the frozen stage's first block), and
        cross-core shuffled; returns each trainable stage's input (the frozen one is
        connected here)."""
        net, mod = self.net, i + 1
        inputs = feats = self._balanced(m, i, feats)
        if net.blended:
            # Every branch of the frozen stream's forks starts at a register slice: a
            # fork's ``ready`` is then flip-flops, not the blends' joins and the frozen
            # block's window far apart on the die (on the placed ``small`` board build
            # the fork into the blends was among the longest paths).
            shape = feats["frozen"].payload.shape()
            inputs, frozen_dsts = dict(feats), []
            for core in feats:
                if core == "frozen":
                    continue
                blend = self.blends[names.blend(core, mod)]
                m.submodules[f"{core}_blend{mod}"] = blend
                # The trainable side too: its balancing FIFO's read data comes out of a
                # block RAM late in the cycle (5.8 ns on the ECP5), and the blend's join
                # would run its ``ready`` back into the FIFO's read enable; a slice's
                # register takes the data at once (the board flow moves it into the block
                # RAM, generators.ecp5_outreg) and its emptiness is the FIFO's read enable.
                wiring.connect(m, half_rate_slice(m, f"{core}_blend{mod}_t", feats[core]), blend.t)
                frozen_dsts.append(stream.Signature(shape).create())
                wiring.connect(
                    m, half_rate_slice(m, f"{core}_blend{mod}_f", frozen_dsts[-1]), blend.f
                )
                mismatches.append(blend.marker_mismatch)
                inputs[core] = blend.o
            to_first, to_blends = (stream.Signature(shape).create() for _ in range(2))
            _broadcast(m, feats["frozen"], [to_first, to_blends])
            self._enter_frozen(m, i, half_rate_slice(m, f"frozen_m{mod}_in", to_first))
            _broadcast(
                m, _delay(m, f"frozen_bal{i}", to_blends, self.balance[i]["frozen"]), frozen_dsts
            )
        elif "frozen" in feats:
            self._enter_frozen(m, i, feats["frozen"])
        if net.core_shuffle:
            inputs = dict(inputs)
            shuffle = self.shuffles[i]
            m.submodules[f"shuffle{mod}"] = shuffle
            # From a register of each stage's own: the setting changes between frames
            # only, and on the placed board build the link's register into the stage-1
            # shuffles' multiplexers across the die was 12.7 ns.
            enable = kept_copy(m, self.shuffle, name=f"shuffle{mod}_enable")
            m.d.comb += shuffle.enable.eq(enable)
            # Each blend's output through a slice of its own: the shuffle joins the two
            # blends' streams, placed apart (each beside its own DSP blocks), and joined
            # straight from their deserializers the pair's handshake ran from one blend to
            # the other and back (12.35 ns on the placed board build of ``small``). The
            # slices' flip-flops float to where the join is.
            for core, port in (("a", shuffle.a), ("b", shuffle.b)):
                wiring.connect(m, half_rate_slice(m, f"shuffle{mod}_{core}", inputs[core]), port)
            inputs["a"], inputs["b"] = shuffle.a_o, shuffle.b_o
            # Compared into a register beside the shuffle, then gathered with the blends'
            # (_sticky_any): straight into the backbone's flag, the pair's handshake ran
            # across the die to it (on the placed board build, a blend's deserializer
            # through the shuffle's join into ``marker_mismatch``: 13.4 ns).
            differ = Signal(name=f"shuffle{mod}_mismatch")
            m.d.sync += differ.eq(
                shuffle.a.valid
                & shuffle.a.ready
                & (shuffle.a.payload.side != shuffle.b.payload.side)
            )
            mismatches.append(differ)
        return inputs

    def _enter_frozen(self, m, i, src) -> None:
        """``src`` into the frozen stage ``i + 1``'s first block, through the stage's relays
        where :meth:`placement_order` puts the trainable stages in front of that block."""
        if self._frozen_split(i) == 0:
            src = self._cross_frozen(m, i + 1, src)
        wiring.connect(m, src, self.stages["frozen"][i][0].i)

    def _cross_frozen(self, m, mod: int, src):
        """``src`` across the trainable stages ``mod`` to the frozen stage's block
        :meth:`_frozen_split`: through a slice (``frozen_m<mod>_cross``), then the
        :attr:`relays`. The slice is there in every build: straight from the first half's
        last block into the second half's input fork, the handshake crossed the trainable
        stages twice (12.9 ns on the placed board build of ``small``, 40 tiles each way);
        the slice's flip-flops float to the middle."""
        src = half_rate_slice(m, f"frozen_m{mod}_cross", src)
        return self._relay(m, f"frozen_m{mod}", src)

    def _stage(self, m, i, inputs, errors) -> dict:
        """Every core's stage ``i + 1`` from ``inputs`` (the frozen stage's first block is
        already connected), each block followed by a register slice unless its output
        already comes from flip-flops (``registered_output``); the :attr:`relays` of each
        trainable stage in front of its input slice and behind its last block, and the frozen
        stage's crossing slice and relays in front of its block :meth:`_frozen_split`. The
        balancing FIFOs count a slice's beat after every block all the same: a bound a beat
        high where none is."""
        mod, feats = i + 1, {}
        split = self._frozen_split(i)
        for core, src in inputs.items():
            if core != "frozen":
                src = self._relay(m, f"{core}_m{mod}_in", src)
                src = half_rate_slice(m, f"{core}_m{mod}_in", src)
            for j, block in enumerate(self.stages[core][i]):
                m.submodules[f"{core}_m{mod}_{j}"] = block
                errors.append(block.framing_error)
                if core == "frozen" and j and j == split:
                    src = self._cross_frozen(m, mod, src)
                if core != "frozen" or j:
                    wiring.connect(m, src, block.i)
                if getattr(block, "registered_output", False):
                    src = block.o
                else:
                    src = half_rate_slice(m, f"{core}_m{mod}_{j}_out", block.o)
            feats[core] = src if core == "frozen" else self._relay(m, f"{core}_m{mod}", src)
        return feats

    def _outputs(self, m, feats) -> None:
        """The last meeting point: the trainable outputs balanced against the frozen one."""
        last = len(self.net.stages)
        feats = self._balanced(m, last, feats)
        if self.net.blended:
            feats["frozen"] = _delay(
                m, f"frozen_bal{last}", feats["frozen"], self.balance[last]["frozen"]
            )
        # Every output from flip-flops: a balancing FIFO's read data comes out of a block
        # RAM, on the ECP5 5.8 ns after the clock, too late for the logic that reads it
        # beyond the backbone (a board link's sender, the swap's bookkeeping above, the
        # head), wherever the placer puts that (bench/placed_paths.py).
        feats = {core: half_rate_slice(m, f"{core}_out", src) for core, src in feats.items()}
        if self.head is None:
            for core, src in feats.items():
                wiring.connect(m, src, wiring.flipped(getattr(self, names.output_port(core))))
            return
        # Each core's output also goes to the head, the cores side by side in one beat.
        m.submodules.head = head = self.head
        feeds = []
        for core, src in feats.items():
            feed = stream.Signature(src.payload.shape()).create()
            _broadcast(m, src, [wiring.flipped(getattr(self, names.output_port(core))), feed])
            feeds.append(feed)
        join(m, feeds, head.i)
        width = len(feeds[0].payload.data)
        for j, feed in enumerate(feeds):
            for c in range(width):
                m.d.comb += head.i.payload.data[j * width + c].eq(feed.payload.data[c])
        m.d.comb += head.i.payload.side.eq(feeds[0].payload.side)
        with m.If(
            head.i.valid
            & head.i.ready
            & Cat(*(f.payload.side != feeds[0].payload.side for f in feeds[1:])).any()
        ):
            m.d.sync += self.marker_mismatch.eq(1)
        for k, (name, _) in enumerate(self.head_groups()):
            wiring.connect(
                m, getattr(head, f"o{k}"), wiring.flipped(getattr(self, names.output_port(name)))
            )


def _conv_banks(name, conv, first_set=None):
    """The parameter regions of convolution ``name`` (``first_set``: of a later pass)."""
    channels = ElementOrder(("co",), (conv.c_out,), ("co",))
    extra = () if first_set is None else (first_set,)
    yield name, "scale", conv.requant.scales, channels, *extra
    yield name, "bias", conv.requant.biases, channels, *extra
    if conv.configurable:
        weights = ElementOrder(conv.bank_axes, conv.bank_shape, WEIGHT_AXES[conv.kind])
        yield name, "weight", conv.product.bank, weights, *extra


def _head_order(g, field, bank) -> ElementOrder:
    """The element order of head group ``g``'s bank ``field``."""
    if field == "weight":
        return ElementOrder(g.conv.bank_axes, g.conv.bank_shape, ("co", "ci"))
    if field in ("scale", "bias"):
        return ElementOrder(("co",), (g.c_out,), ("co",))
    if field in ("pool", "source", "repeat"):
        return ElementOrder((), (), ())  # one value: a scalar entry
    return ElementOrder(("k",), (bank.count,), ("k",))  # the activation's table


def _delay(m, name, src, depth):
    """``src`` through a FIFO of ``depth`` beats (none for 0)."""
    if not depth:
        return src
    q = StreamFIFO(src.payload.shape(), depth)
    m.submodules[name] = q
    wiring.connect(m, src, q.i)
    return q.o


def _sticky_any(m, flag, sources, name) -> None:
    """Set sticky ``flag`` two cycles after any of ``sources`` is high. Each source is
    registered twice first: they are raised all over the die, and a route from a far one
    then ends at flip-flops instead of running on through the OR into ``flag`` (a window's
    flag, pulled towards the OR, was among the longest paths of the placed board build;
    with one register it still was: one hop across the die is more than a cycle)."""
    if not sources:
        return
    near = [Signal(name=f"{name}{k}_near") for k in range(len(sources))]
    seen = [Signal(name=f"{name}{k}") for k in range(len(sources))]
    m.d.sync += [r.eq(src) for r, src in zip(near, sources, strict=True)]
    m.d.sync += [r.eq(src) for r, src in zip(seen, near, strict=True)]
    with m.If(Cat(*seen).any()):
        m.d.sync += flag.eq(1)


def _broadcast(m, src, dsts):
    """Every beat of ``src``, payload and all, to each of ``dsts``."""
    fork(m, src, *dsts)
    m.d.comb += [d.payload.eq(src.payload) for d in dsts]
