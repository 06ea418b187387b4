# amaranth: UnusedElaboratable=no
"""The model head (paper §3.3; ``docs/head.md``): per group, a configurable pointwise
convolution over a run-time choice of input lanes, its requantizer, a run-time
piecewise-linear activation and a run-time global average pool.

* :class:`PiecewiseLinear`: ``docs/numerics.md`` §7, one table per block, every lane;
* :class:`GlobalAvgPool`: §6, one vector per frame when on, the beats unchanged when off;
* :class:`HeadGroup`: lanes picked -> :class:`~.conv.Conv` (pointwise, configurable) ->
  :class:`PiecewiseLinear` -> :class:`GlobalAvgPool`;
* :class:`Head`: every group reads every beat of one input.

Every run-time parameter sits in a :class:`~.param_bank.ParamBank` with ``sets`` weight sets;
each stage reads it with the set its beat's epoch marker (:data:`spec.stream.EPOCH`) names,
so a swap lands on a frame boundary as in the backbone.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spec.formats import (
    INT8_MAX,
    INT8_MIN,
    PWL_INTERCEPT_BITS,
    PWL_SEGMENTS,
    PWL_SLOPE_BITS,
    SHIFT_MAX,
    pool_constants,
)
from spec.params import PASS_FIELDS
from spec.stream import EOF_BIT, EPOCH_BIT, MARKER_BITS

from .adder_graph import signed_width
from .conv import Conv
from .fold import Deserializer, Serializer, group_lanes
from .param_bank import ParamBank
from .pipeline import Pipeline
from .streams import SkidBuffer, StreamFIFO, beat_set, fork, forward, marker_width, vector_layout

__all__ = ["PiecewiseLinear", "GlobalAvgPool", "HeadGroup", "Head"]


def _int8_stream(lanes: int, passes: int = 1) -> stream.Signature:
    return stream.Signature(vector_layout(signed(8), lanes, marker_width(passes)))


def _epoch(beat):
    """The parameter set a beat is computed with (its epoch marker)."""
    return beat.payload.side[EPOCH_BIT]


class PiecewiseLinear(wiring.Component):
    """``y = clamp(round((m[k] * x + c[k]) / 2**shift), -128, 127)`` on every lane, ``k`` the
    number of breakpoints ``<= x`` (``docs/numerics.md`` §7; the count, so the block is
    defined for any table, and equals the specification's segment when the breakpoints
    increase). One table of ``segments`` segments for all lanes, in run-time memories.

    Three pipeline stages (segment; product; add, round, clamp); with ``fold`` F the beat
    goes through as F sub-beats of ``channels / F`` lanes (:class:`~.fold.Serializer`), one
    per cycle, on an F-th of the multipliers.

    Ports: ``i``, ``o`` (int8 lanes, markers); ``breakpoint_write``, ``slope_write``,
    ``intercept_write`` (bank writes ``{set, index, value}``, element ``k`` at index ``k``).
    Each stage reads its table with the set its beat's epoch marker names; with ``passes``
    P > 1, each pass has its own table (``pass_init``: passes 1 .. P - 1's power-up tables)
    and a beat's set is ``pass * sets + epoch`` (:func:`~.streams.beat_set`).
    """

    def __init__(
        self,
        channels: int,
        *,
        shift: int,
        segments: int = PWL_SEGMENTS,
        init=None,
        fold: int = 1,
        sets: int = 1,
        passes: int = 1,
        pass_init=(),
    ):
        for name, v, lo in (
            ("channels", channels, 1),
            ("fold", fold, 1),
            ("sets", sets, 1),
            ("passes", passes, 1),
        ):
            if not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")
        if len(pass_init) != passes - 1:
            raise ValueError(f"pass_init must give {passes - 1} passes' tables")
        if not isinstance(segments, int) or not 2 <= segments <= 256:
            raise ValueError(f"segments must be an integer in 2..256, not {segments!r}")
        if not isinstance(shift, int) or not 0 <= shift <= SHIFT_MAX:
            raise ValueError(f"shift must be an integer in 0..{SHIFT_MAX}, not {shift!r}")
        if channels % fold:
            raise ValueError(f"fold {fold} must divide the {channels} channels")
        if init is None:
            init = ([0] * (segments - 1), [0] * segments, [0] * segments)
        tables = [[list(v) for v in t] for t in [init, *pass_init]]
        if any(tuple(map(len, t)) != (segments - 1, segments, segments) for t in tables):
            raise ValueError(
                f"a table of {segments} segments has {segments - 1} breakpoints and "
                f"{segments} slopes and intercepts"
            )
        self.channels, self.shift, self.segments = channels, shift, segments
        self.fold, self.sets, self.passes, self.lanes = fold, sets, passes, channels // fold
        rows = [[t[f] for t in tables for _ in range(sets)] for f in range(3)]
        banks = sets * passes
        self.breakpoints = ParamBank(signed(8), segments - 1, sets=banks, init=rows[0])
        self.slopes = ParamBank(signed(PWL_SLOPE_BITS), segments, sets=banks, init=rows[1])
        self.intercepts = ParamBank(signed(PWL_INTERCEPT_BITS), segments, sets=banks, init=rows[2])
        super().__init__(
            {
                "i": In(_int8_stream(channels, passes)),
                "o": Out(_int8_stream(channels, passes)),
                "breakpoint_write": self.breakpoints.signature.members["write"],
                "slope_write": self.slopes.signature.members["write"],
                "intercept_write": self.intercepts.signature.members["write"],
            }
        )

    latency = 3

    def banks(self):
        """``(field, bank)`` of the table's memories, in address order."""
        return [
            ("pwl_breakpoint", self.breakpoints),
            ("pwl_slope", self.slopes),
            ("pwl_intercept", self.intercepts),
        ]

    def elaborate(self, platform):
        m = Module()
        for field, bank in self.banks():
            m.submodules[field] = bank
        for port, bank in (
            (self.breakpoint_write, self.breakpoints),
            (self.slope_write, self.slopes),
            (self.intercept_write, self.intercepts),
        ):
            forward(m, port, bank.write)
        src, dst = self.i, self.o
        if self.fold > 1:
            side = marker_width(self.passes)
            ser = Serializer(signed(8), self.channels, group_lanes(self.channels, self.fold), side)
            des = Deserializer(signed(8), self.lanes, self.fold, side)
            m.submodules.ser, m.submodules.des = ser, des
            wiring.connect(m, wiring.flipped(self.i), ser.i)
            wiring.connect(m, des.o, wiring.flipped(self.o))
            src, dst = ser.o, des.i
        self._lanes(m, src, dst)
        return m

    def _lanes(self, m, src, dst):
        """The three stages on ``src``'s lanes, into ``dst``."""
        pipe = Pipeline(self.latency, name="pwl")
        pipe.connect(m, src, dst)
        side1 = pipe.stage(src.payload.side, name="side1")
        side2 = pipe.stage(side1, name="side2")
        m.d.comb += dst.payload.side.eq(pipe.stage(side2, name="side3"))
        if self.sets * self.passes > 1:  # each stage reads the table with its own beat's set
            m.d.comb += [
                bank.select.eq(beat_set(side, self.sets, self.passes))
                for bank, side in (
                    (self.breakpoints, src.payload.side),
                    (self.slopes, side1),
                    (self.intercepts, side2),
                )
            ]
        bps = [self.breakpoints.element(j) for j in range(self.segments - 1)]
        slopes = [self.slopes.element(k) for k in range(self.segments)]
        icepts = [self.intercepts.element(k) for k in range(self.segments)]
        s_lo, s_hi = -(1 << (PWL_SLOPE_BITS - 1)), (1 << (PWL_SLOPE_BITS - 1)) - 1
        p_lo, p_hi = min(s_lo * INT8_MAX, s_hi * INT8_MIN), s_lo * INT8_MIN
        c_lo, c_hi = -(1 << (PWL_INTERCEPT_BITS - 1)), (1 << (PWL_INTERCEPT_BITS - 1)) - 1
        rnd = (1 << self.shift) >> 1
        t_width = signed_width(p_lo + c_lo, p_hi + c_hi + rnd)
        for c in range(self.lanes):
            x = src.payload.data[c]
            k = sum((b <= x for b in bps), start=Const(0, range(self.segments)))
            x1 = pipe.stage(x, name=f"x{c}")
            k1 = pipe.stage(k, unsigned(ceil_log2(self.segments)), name=f"k{c}")
            prod = pipe.stage(
                _pick(slopes, k1) * x1, signed(signed_width(p_lo, p_hi)), name=f"prod{c}"
            )
            k2 = pipe.stage(k1, name=f"k2_{c}")
            t = Signal(signed(t_width), name=f"t{c}")
            r = Signal(signed(max(1, t_width - self.shift)), name=f"r{c}")
            m.d.comb += [t.eq(prod + _pick(icepts, k2) + rnd), r.eq(t >> self.shift)]
            y = pipe.stage(
                Mux(r > INT8_MAX, INT8_MAX, Mux(r < INT8_MIN, INT8_MIN, r)), signed(8), name=f"y{c}"
            )
            m.d.comb += dst.payload.data[c].eq(y)
        pipe.finish(m)


def _pick(values, index):
    """``values[index]`` (a multiplexer; indices past the end read the last value)."""
    out = values[-1]
    for k in reversed(range(len(values) - 1)):
        out = Mux(index == k, values[k], out)
    return out


class GlobalAvgPool(wiring.Component):
    """Per channel, the average of each frame (``docs/numerics.md`` §6) while ``enable``:
    the frame's sum in raster order, then one beat of ``clamp(round(sum * mult /
    2**shift))`` with the markers of the frame's last beat (end of line and of frame: a 1x1
    frame). With ``enable`` low the beats pass unchanged (combinationally).

    ``enable`` is read with each beat; keep it steady over a frame (a design with two
    parameter sets reads it from the frame's set; with one, write it between frames, as
    every run-time parameter). A beat passed unpooled clears the sums, so a frame whose
    pooling was cut short leaves nothing in the next one's average.

    After a frame's last beat the block takes ``channels + 1`` cycles to divide, one
    channel per cycle on one multiplier, and takes no beat meanwhile; the next frame's beats
    then add up while the answer waits to be taken, up to the next frame's last beat.

    Ports: ``i``, ``o`` (int8 lanes, markers), ``enable`` In(1).
    """

    def __init__(self, channels: int, width: int, height: int):
        for name, v in (("channels", channels), ("width", width), ("height", height)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        self.channels, self.width, self.height = channels, width, height
        self.pixels = width * height
        self.mult, self.shift = pool_constants(self.pixels)
        super().__init__(
            {"i": In(_int8_stream(channels)), "o": Out(_int8_stream(channels)), "enable": In(1)}
        )

    @property
    def sum_width(self) -> int:
        """Width of a channel's running sum: exact over a frame of int8 values."""
        return signed_width(INT8_MIN * self.pixels, INT8_MAX * self.pixels)

    def elaborate(self, platform):
        m = Module()
        n = self.channels
        sums = [Signal(signed(self.sum_width), name=f"sum{c}") for c in range(n)]
        answer = [Signal(signed(8), name=f"avg{c}") for c in range(n)]
        answer_side = Signal(MARKER_BITS)
        answer_valid = Signal()  # a frame's answer waits on o
        busy = Signal()  # dividing: the sums shift out through the multiplier
        count = Signal(range(n + 1))
        prod = Signal(signed(self.sum_width + self.mult.bit_length() + 1))
        prod_valid = Signal()

        i, o = self.i, self.o
        last = i.payload.side[EOF_BIT]
        pooled = self.enable
        # A pooled frame's last beat waits while an earlier answer is not taken.
        m.d.comb += i.ready.eq(~busy & Mux(pooled, ~(answer_valid & last), ~answer_valid & o.ready))
        with m.If(answer_valid):
            m.d.comb += [o.valid.eq(1), o.payload.side.eq(answer_side)]
            m.d.comb += [o.payload.data[c].eq(answer[c]) for c in range(n)]
        with m.Else():
            m.d.comb += [o.valid.eq(i.valid & ~busy & ~pooled), o.payload.eq(i.payload)]
        with m.If(answer_valid & o.ready):
            m.d.sync += answer_valid.eq(0)

        with m.If(i.valid & i.ready & pooled):
            m.d.sync += [s.eq(s + i.payload.data[c]) for c, s in enumerate(sums)]
            with m.If(last):
                m.d.sync += [busy.eq(1), count.eq(0), answer_side.eq(i.payload.side)]
        with m.Elif(i.valid & i.ready):
            # A beat passed unpooled: a frame cut short by turning the pool off leaves no
            # partial sums behind for the next pooled frame.
            m.d.sync += [s.eq(0) for s in sums]
        # Dividing: channel 0's sum into the multiplier, the sums shift down (zeros in:
        # the next frame starts from 0), the quotients shift into the answer.
        m.d.sync += prod_valid.eq(0)
        with m.If(busy):
            m.d.sync += count.eq(count + 1)
            with m.If(count < n):
                m.d.sync += [prod.eq(sums[0] * self.mult), prod_valid.eq(1)]
                m.d.sync += [sums[c].eq(sums[c + 1] if c + 1 < n else 0) for c in range(n)]
            with m.Else():
                m.d.sync += [busy.eq(0), answer_valid.eq(1)]
        rnd = (1 << self.shift) >> 1
        r = Signal(signed(len(prod) + 1))
        m.d.comb += r.eq((prod + rnd) >> self.shift)
        with m.If(prod_valid):
            y = Mux(r > INT8_MAX, INT8_MAX, Mux(r < INT8_MIN, INT8_MIN, r))
            m.d.sync += [answer[c].eq(answer[c + 1]) for c in range(n - 1)]
            m.d.sync += answer[n - 1].eq(y)
        return m


class HeadGroup(wiring.Component):
    """One group of the head: ``c_in`` lanes of the input from a run-time choice of
    ``sources`` (the first lane of each choice), a configurable pointwise convolution to
    ``c_out`` channels with its requantizer (no ReLU: the activation follows), a
    :class:`PiecewiseLinear` activation and a :class:`GlobalAvgPool` switched at run time.

    Parameters: ``channels`` (input lanes), ``width``/``height`` (the input's frame size),
    ``weights`` ``(c_out, c_in)`` int8 power-up image, ``shift``/``scale_init``/
    ``bias_init`` (the requantizer's), ``pwl_shift``/``segments``/``pwl_init`` (the
    activation's), ``pool_init`` (0/1), ``source_init`` (an index into ``sources``),
    ``fold`` (the convolution's and activation's, :class:`~.conv.Conv`), ``sets``;
    ``repeats`` R > 1 (``c_in == c_out``) builds the group for up to R passes per beat
    (paper §3.4), each through the same convolution and activation with its own weights,
    scales, biases and table (``pass_init``: passes 1 .. R - 1's power-up ``(weights,
    scale, bias, table)``), pass ``j + 1`` reading pass ``j``'s output; the run-time count
    (``repeat_init``, the ``repeat_write`` port; 0 runs one pass, past R runs R) is read per
    beat with its epoch. The passes interleave: a beat's next pass goes back in through a
    feedback FIFO ahead of new beats, and a new beat enters only while fewer than
    :attr:`loop_depth` are inside (so the FIFO never fills) and, with two sets, behind
    beats of its own epoch only (so the order stays the input's).
    A beat takes the loop's products ``count`` times: a folded group that sees a beat every
    ``period`` cycles keeps its rate while ``count * fold <= period``.

    Ports: ``i`` (``channels`` lanes), ``o`` (``c_out`` lanes: a beat per pixel, or one per
    frame pooled), and a write port per run-time memory (:meth:`banks`: ``weight_write``,
    ``scale_write``, ``bias_write``, ``breakpoint_write``, ``slope_write``,
    ``intercept_write``, ``pool_write``, ``source_write``). A source index past the last
    reads source 0.
    """

    def __init__(
        self,
        channels: int,
        sources,
        weights,
        *,
        width: int,
        height: int,
        shift: int,
        scale_init=None,
        bias_init=None,
        pwl_shift: int = 0,
        segments: int = PWL_SEGMENTS,
        pwl_init=None,
        pool_init: int = 0,
        source_init: int = 0,
        fold: int = 1,
        sets: int = 1,
        levels_per_stage: int = 2,
        period: int | None = None,
        repeats: int = 1,
        repeat_init: int = 1,
        pass_init=(),
    ):
        if not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"repeats must be a positive integer, not {repeats!r}")
        if not isinstance(repeat_init, int) or not 1 <= repeat_init <= repeats:
            raise ValueError(f"repeat_init must be an integer in 1..{repeats}")
        if len(pass_init) != repeats - 1:
            raise ValueError(f"pass_init must give {repeats - 1} later passes")
        self.conv = Conv(
            "pointwise",
            weights,
            shift=shift,
            scale_init=scale_init,
            bias_init=bias_init,
            configurable=True,
            fold=fold,
            sets=sets,
            levels_per_stage=levels_per_stage,
            period=period,
            passes=repeats,
            pass_init=[(w, sc, bi) for w, sc, bi, _ in pass_init],
        )
        self.c_in, self.c_out = self.conv.c_in, self.conv.c_out
        if repeats > 1 and self.c_in != self.c_out:
            raise ValueError(
                f"a repeated group needs c_in == c_out, not {self.c_in} -> {self.c_out}"
            )
        self.repeats = repeats
        sources = tuple(sources)
        if not sources or any(
            not isinstance(s, int) or not 0 <= s <= channels - self.c_in for s in sources
        ):
            raise ValueError(
                f"sources must be first lanes of {self.c_in} input lanes within {channels}, "
                f"not {sources!r}"
            )
        if not 0 <= source_init < len(sources) or pool_init not in (0, 1):
            raise ValueError("source_init must index sources and pool_init be 0 or 1")
        self.channels, self.sources, self.sets = channels, sources, sets
        pwl_fold = fold if fold <= self.c_out and self.c_out % fold == 0 else 1
        self.pwl = PiecewiseLinear(
            self.c_out,
            shift=pwl_shift,
            segments=segments,
            init=pwl_init,
            fold=pwl_fold,
            sets=sets,
            passes=repeats,
            pass_init=[t for *_, t in pass_init],
        )
        self.pool = GlobalAvgPool(self.c_out, width, height)
        self.repeat_bank = None
        if repeats > 1:
            self.repeat_bank = ParamBank(
                unsigned(repeats.bit_length()), 1, sets=sets, init=[[repeat_init]] * sets
            )
        self.pool_bank = ParamBank(unsigned(1), 1, sets=sets, init=[[pool_init]] * sets)
        self.source_bank = ParamBank(
            unsigned(max(1, ceil_log2(len(sources)))), 1, sets=sets, init=[[source_init]] * sets
        )
        super().__init__(
            {
                "i": In(_int8_stream(channels)),
                "o": Out(_int8_stream(self.c_out)),
                **{f"{name}_write": self._port(bank) for name, bank in self._writes()},
            }
        )

    @property
    def loop_depth(self) -> int:
        """Most beats inside a repeated group's loop at once (its feedback FIFO's depth):
        enough to keep the products busy, since the pipelines hold fewer."""
        return self.conv.pipe_beats + self.pwl.latency * self.pwl.fold + 4

    @classmethod
    def of_network(cls, net, k: int, p, passes=(), **kw) -> "HeadGroup":
        """Group ``k`` of ``net``'s head (a :class:`spec.network.Network`) with parameters
        ``p`` (:class:`spec.params.HeadGroupParams`) and, repeated, ``passes`` (its later
        passes' :class:`spec.params.HeadPassParams`); ``kw``: ``fold``, ``period``,
        ``sets``, ``levels_per_stage``."""
        g = net.head[k]
        if g.repeats > 1:
            kw |= dict(
                repeats=g.repeats,
                repeat_init=int(p.repeat),
                pass_init=[
                    (q.weight, *([int(v) for v in a] for a in (q.scale, q.bias)), q.table())
                    for q in passes
                ],
            )
        out_w, out_h = net.output_size()
        return cls(
            len(net.cores) * net.channels_after(len(net.stages)),
            [net.head_lane(core, first) for core, first in g.sources],
            p.weight,
            width=out_w,
            height=out_h,
            shift=p.shift,
            scale_init=[int(v) for v in p.scale],
            bias_init=[int(v) for v in p.bias],
            pwl_shift=p.pwl_shift,
            segments=g.segments,
            pwl_init=[[int(v) for v in t] for t in p.table()],
            pool_init=int(p.pool),
            source_init=int(p.source),
            **kw,
        )

    @staticmethod
    def _port(bank):
        return bank.signature.members["write"]

    def _writes(self):
        """``(port name, bank)`` of every run-time memory, in address order."""
        conv = self.conv
        return [
            ("weight", conv.product.bank),
            ("scale", conv.requant.scales),
            ("bias", conv.requant.biases),
            ("breakpoint", self.pwl.breakpoints),
            ("slope", self.pwl.slopes),
            ("intercept", self.pwl.intercepts),
            ("pool", self.pool_bank),
            ("source", self.source_bank),
            *([("repeat", self.repeat_bank)] if self.repeat_bank is not None else []),
        ]

    def pass_banks(self):
        """``(field, bank, port name)`` of the memories that hold a set per pass (a repeated
        group's later passes write them at sets ``pass * sets + epoch``)."""
        return [b for b in self.banks() if b[0] in PASS_FIELDS]

    def banks(self):
        """``(field, bank, port name)`` of every run-time memory, in address order."""
        fields = dict(breakpoint="pwl_breakpoint", slope="pwl_slope", intercept="pwl_intercept")
        return [(fields.get(n, n), bank, f"{n}_write") for n, bank in self._writes()]

    def elaborate(self, platform):
        m = Module()
        m.submodules.conv, m.submodules.pwl, m.submodules.pool = self.conv, self.pwl, self.pool
        m.submodules.pool_bank, m.submodules.source_bank = self.pool_bank, self.source_bank
        inner = {
            "weight": self.conv.weight_write,
            "scale": self.conv.scale_write,
            "bias": self.conv.bias_write,
            "breakpoint": self.pwl.breakpoint_write,
            "slope": self.pwl.slope_write,
            "intercept": self.pwl.intercept_write,
            "pool": self.pool_bank.write,
            "source": self.source_bank.write,
        }
        if self.repeat_bank is not None:
            m.submodules.repeat_bank = self.repeat_bank
            inner["repeat"] = self.repeat_bank.write
        for name, port in inner.items():
            forward(m, getattr(self, f"{name}_write"), port)

        # The chosen lanes, registered (a multiplexer over the whole input in front).
        pick = SkidBuffer(vector_layout(signed(8), self.c_in, MARKER_BITS))
        m.submodules.pick = pick
        choice = self.source_bank.element(0)
        if self.sets > 1:
            m.d.comb += [
                self.source_bank.select.eq(_epoch(self.i)),
                self.pool_bank.select.eq(_epoch(self.pool.i)),
            ]
        m.d.comb += [
            pick.i.valid.eq(self.i.valid),
            self.i.ready.eq(pick.i.ready),
            pick.i.payload.side.eq(self.i.payload.side),
        ]
        for k in range(self.c_in):
            lanes = [self.i.payload.data[s + k] for s in self.sources]
            m.d.comb += pick.i.payload.data[k].eq(
                Mux(choice < len(lanes), _pick(lanes, choice), lanes[0])
            )
        wiring.connect(m, self.conv.o, self.pwl.i)
        if self.repeats == 1:
            wiring.connect(m, pick.o, self.conv.i)
            wiring.connect(m, self.pwl.o, self.pool.i)
        else:
            self._loop(m, pick.o, self.pwl.o, self.pool.i)
        m.d.comb += self.pool.enable.eq(self.pool_bank.element(0))
        wiring.connect(m, self.pool.o, wiring.flipped(self.o))
        return m

    def _loop(self, m, src, back, dst):
        """The passes of a repeated group: beats of ``src`` (markers only) into the
        convolution as pass 0, the activation's beats (``back``) back in for their next pass
        or, after the last, out to ``dst`` (markers only)."""
        depth = self.loop_depth
        m.submodules.feedback = fb = StreamFIFO(back.payload.shape(), depth)
        inside = Signal(range(depth + 1), name="loop_inside")  # admitted, not yet out
        admit, leave = Signal(name="loop_admit"), Signal(name="loop_leave")
        conv = self.conv.i
        # A beat's next pass goes first; a new beat enters only while the FIFO could take
        # every beat inside (so a pass's output always finds room: no deadlock) and, with
        # two sets, only behind beats of its own epoch (the sets' counts may differ, and a
        # beat of fewer passes would overtake): at a swap the loop drains once.
        room = Signal(name="loop_room")
        m.d.comb += room.eq(inside < depth)
        if self.sets > 1:
            epoch = Signal(name="loop_epoch")  # of the beats inside
            with m.If(admit):
                m.d.sync += epoch.eq(_epoch(src))
            m.d.comb += room.eq((inside == 0) | ((inside < depth) & (epoch == _epoch(src))))
        m.d.comb += [
            admit.eq(src.valid & src.ready),
            conv.valid.eq(fb.o.valid | (src.valid & room)),
            fb.o.ready.eq(conv.ready),
            src.ready.eq(conv.ready & ~fb.o.valid & room),
        ]
        with m.If(fb.o.valid):
            m.d.comb += conv.payload.eq(fb.o.payload)
        with m.Else():  # pass 0: the pass bits above the markers are zero
            m.d.comb += [
                conv.payload.data.eq(src.payload.data),
                conv.payload.side.eq(src.payload.side),
            ]
        # After its pass: out when it was the last (the count read with the beat's epoch).
        pass_ = back.payload.side[MARKER_BITS:]
        count = self.repeat_bank.element(0)
        if self.sets > 1:
            m.d.comb += self.repeat_bank.select.eq(_epoch(back))
        last = Signal(name="loop_last")
        m.d.comb += [
            last.eq((pass_ + 1 >= count) | (pass_ == self.repeats - 1)),
            dst.payload.data.eq(back.payload.data),
            dst.payload.side.eq(back.payload.side[:MARKER_BITS]),
            dst.valid.eq(back.valid & last),
            fb.i.payload.data.eq(back.payload.data),
            fb.i.payload.side.eq(Cat(back.payload.side[:MARKER_BITS], pass_ + 1)),
            fb.i.valid.eq(back.valid & ~last),
            back.ready.eq(Mux(last, dst.ready, fb.i.ready)),
            leave.eq(dst.valid & dst.ready),
        ]
        m.d.sync += inside.eq(inside + admit - leave)


class Head(wiring.Component):
    """The head's groups (:class:`HeadGroup`\\ s, built by the caller on the same input
    width), each reading every beat of ``i``.

    Ports: ``i``; ``o<k>`` per group ``k``; group ``k``'s write ports as ``g<k>_<name>``.
    Drain the outputs concurrently: a group holding its output back stalls the input of
    all.
    """

    def __init__(self, groups):
        groups = list(groups)
        if not groups or any(not isinstance(g, HeadGroup) for g in groups):
            raise TypeError("groups must be a non-empty list of HeadGroup")
        if len({g.channels for g in groups}) != 1:
            raise ValueError("every group must read the same input lanes")
        self.groups = groups
        members = {"i": In(_int8_stream(groups[0].channels))}
        for k, g in enumerate(groups):
            members[f"o{k}"] = Out(_int8_stream(g.c_out))
            for _, bank, port in g.banks():
                members[f"g{k}_{port}"] = HeadGroup._port(bank)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        dsts = []
        for k, g in enumerate(self.groups):
            m.submodules[f"g{k}"] = g
            dsts.append(g.i)
            for _, _, port in g.banks():
                forward(m, getattr(self, f"g{k}_{port}"), getattr(g, port))
            wiring.connect(m, g.o, wiring.flipped(getattr(self, f"o{k}")))
        fork(m, self.i, *dsts)
        m.d.comb += [d.payload.eq(self.i.payload) for d in dsts]
        return m
