# amaranth: UnusedElaboratable=no
"""Simplified ShuffleNetV2 blocks (paper Fig. 4, ``docs/layers.md``), frozen or configurable.

* :class:`RegularBlock` (stride 1): split the channels in half; the first half passes
  through, the second goes depthwise 3x3 (requantized, no ReLU) then pointwise (requantized,
  ReLU); concatenate; two-group channel shuffle.
* :class:`DownsamplingBlock` (stride 2): both branches take all channels through depthwise
  3x3 stride 2 then pointwise; concatenate (twice the channels); channel shuffle.

Both pass any keyword (``solver``, ``levels_per_stage``, ``configurable``) on to every
:class:`~.conv.Conv`, and ``layer_options`` (a layer's name -> more keywords, such as its
planned ``graph`` or its ``fold``) to that layer's. Each layer's requantizer is described by
a dict ``{"scale": [...], "bias": [...],
"shift": int}`` (scale and bias are the power-up values; they stay writable through the
block's ``<layer>_scale_write`` / ``<layer>_bias_write`` ports). With ``configurable``, the
conv weights are power-up images in SRAM, writable through ``<layer>_weight_write``
(elements as :meth:`Conv.weight_index <semifreddo_hw.conv.Conv.weight_index>` of
``block.layers[name]``). Layers are named as :mod:`spec.names` says (``dw``, ``pw``; ``b0_dw``,
``b0_pw``, ``b1_dw``, ``b1_pw``).
"""

from amaranth.hdl import Module, signed
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from spec import names
from spec.stream import MARKER_BITS

from .conv import Conv
from .streams import (
    StreamFIFO,
    fork,
    forward,
    half_rate_slice,
    join,
    marker_width,
    shuffle_lanes,
    vector_layout,
)

__all__ = ["RegularBlock", "DownsamplingBlock"]


def _layers(branches, layer_names, channels, layer_options, geometry, options):
    """The depthwise and pointwise layers of each branch (a dict ``{"dw", "dw_quant", "pw",
    "pw_quant"}``), named ``layer_names`` in pairs, each mapping ``channels`` to
    ``channels``; the depthwise layers on a frame of ``geometry`` (width, height, stride)."""
    layer_options, layers = layer_options or {}, {}

    def conv(kind, weights, quant, relu, name, geometry):
        return Conv(
            kind,
            weights,
            shift=quant["shift"],
            relu=relu,
            scale_init=list(quant["scale"]),
            bias_init=list(quant["bias"]),
            **geometry,
            **options,
            **layer_options.get(name, {}),
        )

    pairs = zip(layer_names[0::2], layer_names[1::2], strict=True)
    for (dw_name, pw_name), br in zip(pairs, branches, strict=True):
        layers[dw_name] = conv("depthwise", br["dw"], br["dw_quant"], False, dw_name, geometry)
        layers[pw_name] = conv("pointwise", br["pw"], br["pw_quant"], True, pw_name, {})
    for name, layer in layers.items():
        if layer.c_out != channels or layer.c_in != channels:
            raise ValueError(
                f"{name} weights must map {channels} channels to {channels}, not "
                f"{layer.c_in} to {layer.c_out}"
            )
    return layers


def _branch_beats(dw: Conv, pw: Conv) -> int:
    """Most beats a depthwise -> pointwise branch holds between taking a pixel and giving
    back the corresponding output: the window's lag and output register, plus one beat per
    pipeline stage."""
    return dw.lag[1] + pw.lag[1]


class _Block(wiring.Component):
    """Shared parts: the pixel-stream ports, per-layer parameter ports, the branch chains
    (:attr:`branches`: ``(dw, pw)`` layer pairs)."""

    def __init__(self, c_in, c_out, layers: dict[str, Conv], side: int = MARKER_BITS):
        self.layers = layers
        pairs = list(layers.values())
        self.branches = list(zip(pairs[0::2], pairs[1::2], strict=True))
        members = {
            "i": In(stream.Signature(vector_layout(signed(8), c_in, side))),
            "o": Out(stream.Signature(vector_layout(signed(8), c_out, side))),
            "framing_error": Out(1),
        }
        for name, layer in layers.items():
            for port in self._param_ports(layer):
                members[f"{name}_{port}"] = layer.signature.members[port]
        super().__init__(members)

    @property
    def lag(self) -> tuple[int, int]:
        """Fewest and most output beats the block holds while frames stream through (see
        :attr:`SlidingWindow.lag <semifreddo_hw.window.SlidingWindow.lag>`)."""
        lo, _ = self._window.lag
        return lo, self._window.lag[1] + self.pipe_beats

    @property
    def _window(self):
        return next(layer.window for layer in self.layers.values() if layer.window)

    @staticmethod
    def _param_ports(layer):
        return ("scale_write", "bias_write") + (("weight_write",) if layer.configurable else ())

    def _add_layers(self, m):
        for name, layer in self.layers.items():
            m.submodules[name] = layer
            for port in self._param_ports(layer):
                src, dst = getattr(self, f"{name}_{port}"), getattr(layer, port)
                forward(m, src, dst)


class RegularBlock(_Block):
    """Stride-1 block on a ``width`` x ``height`` frame of ``channels`` (even) channels.

    ``dw``: ``(channels/2, 3, 3)``, ``pw``: ``(channels/2, channels/2)`` int8 weights;
    ``dw_quant``, ``pw_quant``: requantizer dicts. The pass-through half waits in a FIFO as
    deep as the conv branch can fall behind, so the block takes one pixel per clock.

    ``passes`` P > 1 (configurable only) builds the block for P passes, frame by frame (a
    repeated block, :class:`~.repeat.RepeatLoop`): ``pass_init`` gives passes 1 .. P - 1,
    each ``{"dw", "dw_quant", "pw", "pw_quant"}``; the beats carry their frame's pass index
    above the markers, and ``frame_bits`` more bits above it (carried through untouched).
    """

    def __init__(
        self,
        channels,
        width,
        height,
        *,
        dw,
        dw_quant,
        pw,
        pw_quant,
        layer_options=None,
        passes: int = 1,
        pass_init=(),
        frame_bits: int = 0,
        **options,
    ):
        if not isinstance(channels, int) or channels < 2 or channels % 2:
            raise ValueError(f"channels must be an even integer >= 2, not {channels!r}")
        if len(pass_init) != passes - 1:
            raise ValueError(f"pass_init must give {passes - 1} later passes")
        self.channels, self.width, self.height = channels, width, height
        branch = {"dw": dw, "dw_quant": dw_quant, "pw": pw, "pw_quant": pw_quant}
        geometry = {"width": width, "height": height, "stride": 1}
        layer_options = dict(layer_options or {})
        if passes > 1 or frame_bits:
            for layer in names.REGULAR_LAYERS:
                inits = [
                    (q[layer], q[f"{layer}_quant"]["scale"], q[f"{layer}_quant"]["bias"])
                    for q in pass_init
                ]
                layer_options[layer] = layer_options.get(layer, {}) | dict(
                    passes=passes, pass_init=inits, frame_bits=frame_bits
                )
        layers = _layers(
            [branch], names.REGULAR_LAYERS, channels // 2, layer_options, geometry, options
        )
        self.passes = passes
        super().__init__(channels, channels, layers, marker_width(passes) + frame_bits)
        self.bypass_depth = _branch_beats(*self.branches[0]) + 2

    @property
    def registered_output(self) -> bool:
        """Whether ``o`` is driven from flip-flops and its ``ready`` reaches only registers'
        enables (the bypass's register slice, beside a registered deserializer:
        :class:`~.fold.Deserializer`), so that no register slice need follow the block."""
        ((_, pw),) = self.branches
        return pw.deserializer is not None and pw.deserializer.registered

    @property
    def pipe_beats(self) -> int:
        """Most beats the block holds past its window: the branch's pipelines (the bypass
        FIFO holds the same pixels, beside it)."""
        ((dw, pw),) = self.branches
        return dw.pipe_beats + pw.pipe_beats

    def elaborate(self, platform):
        m = Module()
        self._add_layers(m)
        ((dw, pw),) = self.branches
        half = self.channels // 2
        m.submodules.bypass = bypass = fifo.SyncFIFOBuffered(
            width=half * 8, depth=self.bypass_depth
        )
        m.d.comb += self.framing_error.eq(dw.framing_error)

        # Fork: first half into the bypass FIFO, second half (and markers) into the branch.
        x = self.i.payload.data
        fork(m, self.i, bypass.w_stream, dw.i)
        m.d.comb += [
            bypass.w_data.eq(x.as_value()[: half * 8]),
            dw.i.payload.data.eq(x.as_value()[half * 8 :]),
            dw.i.payload.side.eq(self.i.payload.side),
        ]
        wiring.connect(m, dw.o, pw.i)

        # A rate build's bypass (beats two or more cycles apart) leaves its FIFO through a
        # register slice: the join's ``ready`` then ends at the slice's register instead of
        # running on into the FIFO's read enable and read address (on the placed board
        # build a FIFO's block RAM, its counters and the join sat up to 45 tiles apart: 15
        # ns). The slice holds a beat more, which the fork never needs; the bypass is far
        # shorter than the branch beside it.
        out = bypass.r_stream
        if dw.period is not None and dw.period >= 2:
            out = half_rate_slice(m, "bypass_out", out)
        # Join: concatenate [bypass, branch] and shuffle; markers come from the branch.
        join(m, [out, pw.o], self.o)
        cat = [out.payload[k * 8 : (k + 1) * 8] for k in range(half)] + [
            pw.o.payload.data[k] for k in range(half)
        ]
        for k, src in enumerate(shuffle_lanes(self.channels)):
            m.d.comb += self.o.payload.data[k].eq(cat[src])
        m.d.comb += self.o.payload.side.eq(pw.o.payload.side)
        return m


class DownsamplingBlock(_Block):
    """Stride-2 block: ``channels`` in, ``2 * channels`` out, half the width and height
    (rounded up). ``branches`` is two dicts ``{"dw", "dw_quant", "pw", "pw_quant"}`` with
    ``dw`` ``(channels, 3, 3)`` and ``pw`` ``(channels, channels)``. The branch with fewer
    pipeline stages gets a FIFO at its end so that neither stalls the other."""

    def __init__(self, channels, width, height, *, branches, layer_options=None, **options):
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, not {channels!r}")
        if len(branches) != 2:
            raise ValueError("a downsampling block has exactly two branches")
        self.channels, self.width, self.height = channels, width, height
        geometry = {"width": width, "height": height, "stride": 2}
        layers = _layers(
            branches, names.DOWNSAMPLING_LAYERS, channels, layer_options, geometry, options
        )
        super().__init__(channels, 2 * channels, layers)
        beats = [_branch_beats(dw, pw) for dw, pw in self.branches]
        #: Beats of each branch's skew FIFO; 0: none (:meth:`_skew_free`).
        self.skew_depth = 0 if self._skew_free() else max(beats) - min(beats) + 2

    def _skew_free(self) -> bool:
        """Whether the branches can meet without skew FIFOs: both end in a registered
        deserializer (a rate build), and their beats come further apart than the branches'
        latencies differ plus a beat's sub-beats and its turn in the output register, so
        the branch ahead waits for the other within the gap before its next beat.
        (Without FIFOs nothing deadlocks either way: the branch behind has been given every
        pixel the one ahead used; the FIFOs only keep the rate.)"""
        pws = [pw for _, pw in self.branches]
        if any(pw.deserializer is None or not pw.deserializer.registered for pw in pws):
            return False
        latency = [dw.latency + pw.latency for dw, pw in self.branches]
        gap = max(latency) - min(latency) + max(pw.deserializer.fold for pw in pws) + 2
        return min(pw.period for pw in pws) > gap

    @property
    def registered_output(self) -> bool:
        """Whether ``o`` is driven from flip-flops and its ``ready`` reaches only registers'
        enables: always (the skew FIFOs' output registers, or without them the branches'
        registered deserializers)."""
        return True

    @property
    def pipe_beats(self) -> int:
        """Most beats the block holds past its windows: the deeper branch's pipelines and
        its skew FIFO."""
        return max(dw.pipe_beats + pw.pipe_beats for dw, pw in self.branches) + self.skew_depth

    def elaborate(self, platform):
        m = Module()
        self._add_layers(m)
        ends = []
        for b, (dw, pw) in enumerate(self.branches):
            m.d.comb += [dw.i.payload.eq(self.i.payload)]
            wiring.connect(m, dw.o, pw.i)
            # Each branch ends in a small FIFO that absorbs the difference in pipeline depth
            # (none where the beats' gap absorbs it).
            if not self.skew_depth:
                ends.append(pw.o)
                continue
            q = StreamFIFO(pw.o.payload.shape(), self.skew_depth)
            m.submodules[f"b{b}_skew"] = q
            wiring.connect(m, pw.o, q.i)
            ends.append(q.o)
        (dw0, _), (dw1, _) = self.branches
        fork(m, self.i, dw0.i, dw1.i)
        m.d.comb += self.framing_error.eq(dw0.framing_error | dw1.framing_error)
        join(m, ends, self.o)
        cat = [ends[0].payload.data[k] for k in range(self.channels)] + [
            ends[1].payload.data[k] for k in range(self.channels)
        ]
        for k, src in enumerate(shuffle_lanes(2 * self.channels)):
            m.d.comb += self.o.payload.data[k].eq(cat[src])
        m.d.comb += self.o.payload.side.eq(ends[0].payload.side)
        return m
