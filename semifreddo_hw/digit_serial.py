# amaranth: UnusedElaboratable=no
"""Digit-serial frozen products: the shift-add graph of a frozen layer, a few bits per cycle.

A word-parallel :class:`~.matvec.FrozenMatVec` takes one beat per clock and pays every adder at
the full width of its value. A layer that sees a beat only every ``D`` cycles (after stride-2
layers, ``docs/folding.md``) can run the same graph over ``D`` cycles instead:
:class:`DigitSerialMatVec` cuts every value into ``D`` digits of ``d = ceil(out_width / D)``
bits, least significant first, and each adder becomes a ``d``-bit adder with a carry register.
A left shift, free in parallel, becomes a delay (``shift // d`` digits, plus ``shift % d``
bits borrowed from the previous digit). Delay registers and carries restart after each
word's last digit (a synchronous reset, free in FPGA flip-flops), so a word never sees its
predecessor's bits. At ``D = out_width`` the graph is bit-serial.

Measured (``bench/digit_serial.py``, ECP5): the logic shrinks with the digit width, to about
a third of the word-parallel graph's at two-bit digits; at two digits it is no smaller,
which is why ``--fold rate`` goes digit-serial only from a period of four cycles.

The arithmetic is exact: adding, subtracting and shifting left commute with reduction modulo
``2 ** (D * d)``, and every output fits in ``out_width <= D * d`` signed bits, so its low
``D * d`` bits are its value. Intermediate nodes may wrap; outputs cannot.

Timing: every stage of the graph's pipeline (:meth:`~.adder_graph.AdderGraph.pipelined`,
``levels_per_stage`` adder levels each) holds one digit; a beat's ``D`` digits follow each
other without gaps, and the whole pipeline advances on one enable that stops while the
collector holds a digit of the next beat and the output register is still full. Stage
``s`` knows which digit it holds from a phase count that travels along with a valid bit;
its carries and delays advance only on valid digits, so gaps between beats change nothing.
"""

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib.wiring import In

from spec.formats import INT8_MAX, INT8_MIN

from .fanout import kept_copy
from .matvec import FrozenMatVec

__all__ = ["DigitSerialMatVec", "fewest_digits"]


def fewest_digits(out_width: int, digits: int) -> int:
    """The fewest digits of the width that ``digits`` digits would have for
    ``out_width``-bit outputs (at most ``out_width``: bit-serial): no digit that only
    repeats sign bits, so the beat interval and latency are no longer than they need be."""
    if not isinstance(digits, int) or digits < 1:
        raise ValueError(f"digits must be a positive integer, not {digits!r}")
    width = -(-out_width // min(digits, out_width))
    return -(-out_width // width)


class DigitSerialMatVec(FrozenMatVec):
    """``y = W @ x`` for a constant int8 matrix ``W``, one beat every ``digits`` cycles.

    Same ports, result and planning as :class:`~.matvec.FrozenMatVec` (the graph, its
    ``solver`` and ``levels_per_stage``); the graph runs on :attr:`digit_width`-bit digits,
    ``digits`` per beat. An input beat is taken whenever the previous one's last digit
    enters the graph, so beats ``digits`` cycles apart stream without stalls. The output
    beat waits in a register until taken; the graph stops while its last stage holds a digit
    of the next beat and that register is still full. :attr:`latency` cycles from an
    accepted beat to its output without stalls.

    With ``hold``, the digitizer keeps no copy of the beat: it reads each digit from ``i``,
    which the producer holds (the stream rule), and takes the beat with its last digit. That
    saves a register per input bit (a 3x3 window of 16 channels is 1,152 of them) and the
    load multiplexers, and suits a producer that refills its output register in the cycle
    of the transfer (a sliding window): beats ``digits`` cycles apart still stream without
    stalls. :attr:`latency` then counts from the cycle the beat is first offered.

    With ``spaced``, for beats at least :attr:`interval` (latency plus one) cycles apart: one
    beat at a time. A beat starts only when none is inside and the output register is
    empty, so nothing inside ever waits: no enable reaches the graph's registers and
    ``i.ready`` comes from flip-flops. Where a layer's beats are that rare (``--fps``
    builds), that keeps the downstream ``ready`` from running through the graph's enable,
    a net of thousands of loads, into the producer. The start is registered (a cycle more
    of :attr:`latency` with ``hold``), so the control is flip-flops only, and each group of
    a stage's registers follows a kept copy of it (:attr:`OPS_PER_COPY`, :attr:`copy_bits`).

    :func:`fewest_digits` gives the digit count that keeps the digit width of a given one
    with no idle digits (17-bit outputs in 16 digits need only 9 two-bit digits).
    """

    def __init__(
        self,
        weights,
        *,
        digits: int,
        solver: str = "da4ml",
        levels_per_stage: int = 2,
        side_width: int = 0,
        graph=None,
        hold: bool = False,
        spaced: bool = False,
        pad=None,
    ):
        n_in = np.shape(weights)[-1]
        if pad is not None:
            pad = tuple(int(v) for v in pad)
            if len(pad) != n_in or any(not INT8_MIN <= v <= INT8_MAX for v in pad):
                raise ValueError(f"pad must be {n_in} int8 constants, one per input lane")
            if not hold:
                raise ValueError("pad needs hold: the digits are padded as they are picked")
        self.lane_pad = pad
        super().__init__(
            weights,
            solver=solver,
            levels_per_stage=levels_per_stage,
            side_width=side_width,
            graph=graph,
        )
        if not isinstance(digits, int) or not 1 <= digits <= self.out_width:
            raise ValueError(
                f"digits must be an integer in 1..{self.out_width} (the output width), "
                f"not {digits!r}"
            )
        self.digits = digits
        self.hold, self.spaced = bool(hold), bool(spaced)
        #: Bits per digit: the ``digits`` digits cover the widest output.
        self.digit_width = -(-self.out_width // digits)

    #: Spaced, a copy of a stage's control serves at most this many ops' restarting
    #: registers (carries, delayed digits), :attr:`LANES_PER_COPY` lanes of the digit pick,
    #: :attr:`OUTPUTS_PER_COPY` outputs of the collector (module ``fanout``). A stage has
    #: one copy of the ops' and outputs' control (:attr:`WHOLE_STAGE`). Smaller groups (16
    #: ops, 16 lanes and 8 outputs to a copy were tried) split the control into hundreds
    #: of small reset and enable nets, and on the ECP5, where a tile's eight flip-flops
    #: share one reset and a slice's two one enable, nextpnr's HeAP legaliser did not
    #: finish its first iteration on ``small`` in 20 minutes, where the same build with one
    #: copy a stage iterated every two to three minutes (``docs/bringup.md``).
    WHOLE_STAGE = 1 << 30
    OPS_PER_COPY = OUTPUTS_PER_COPY = WHOLE_STAGE
    #: The pick index is a multiplexer's select, not a reset or an enable: its copies
    #: share one enable and add no control set. One copy for every lane of a stage-4
    #: depthwise layer's window spread their multiplexers over 40 tiles on the placed
    #: board build of ``small`` (that layer's product held its longest paths, 14 ns).
    LANES_PER_COPY = 16

    #: From this many entries a ``hold`` digitizer's pick has a stage of its own
    #: (:attr:`input_levels`): a multiplexer of more than four is more than one LUT level.
    PICK_STAGE_FROM = 5

    @property
    def input_levels(self) -> int:
        """Levels of the first stage the digit pick takes (:meth:`AdderGraph.schedule
        <.adder_graph.AdderGraph.schedule>`): all of them, so that the picked digits are
        registered before any adder, where ``hold`` picks from :attr:`PICK_STAGE_FROM`
        entries or more (one- and two-bit digits: a register a lane of one or two bits).
        The bit-serial pick is a multiplexer of eight entries by a shared index and then
        the padding's; in front of a stage's adders it was the routed critical path of a
        board build of ``small`` (12.5 ns, a stage-4 depthwise layer)."""
        if self.hold and self._pick_entries >= self.PICK_STAGE_FROM:
            return self.levels_per_stage
        return 0

    @property
    def pick_stage_bits(self) -> int:
        """Register bits of the pick's own stage (:attr:`input_levels`; 0 without, or where
        the graph has no adder, whose one stage registers the picked digits anyway): a
        digit per lane read and the stage's control (valid bit, phase, side bits)."""
        if not self.input_levels or not self.graph.depth:
            return 0
        lanes = len({op.args[0] for op in self._plan.ops if op.kind == "in"})
        control = 1 + (self.digits - 1).bit_length() + self.side_width
        return lanes * self.digit_width + control

    @property
    def _plan(self):
        return self.graph.pipelined(
            self.levels_per_stage, INT8_MIN, INT8_MAX, input_levels=self.input_levels
        )

    @property
    def interval(self) -> int:
        """Cycles between beats at full throughput (``spaced``: the latency and one)."""
        return self.latency + 1 if self.spaced else self.digits

    @property
    def latency(self) -> int:
        """Cycles from an input beat's acceptance (with :attr:`hold`, its first offer) to its
        output beat, without stalls: one to load the digitizer (with :attr:`hold`, none, or
        with :attr:`spaced` one to register the start), the graph's stages plus one (the
        collector), the digits. The graph's stages include the pick's own where it has one
        (:attr:`input_levels`)."""
        load = 0 if self.hold and not self.spaced else 1
        stages = self.graph.schedule(self.levels_per_stage, self.input_levels).stages
        return stages + load + self.digits

    @property
    def _pick_entries(self) -> int:
        """Entries of the ``hold`` digitizer's pick: one per digit holding an int8 value's
        own bits, the last also every later (sign) digit."""
        return min(self.digits, -(-7 // self.digit_width) + 1)

    @property
    def pick_index_bits(self) -> int:
        """Bits of the register keeping the picked entry beside the phase (``hold`` with
        sign digits past the entries; 0 otherwise)."""
        top = self._pick_entries
        return (top - 1).bit_length() if self.hold and top < self.digits else 0

    @property
    def beats_held(self) -> int:
        """Most beats inside at once: those in the digitizer and the graph (a digit each per
        stage, ``digits`` per beat) and the one waiting at the output (``spaced``: one)."""
        return 1 if self.spaced else -(-self.latency // self.digits) + 1

    def _more_members(self) -> dict:
        return {} if self.lane_pad is None else {"outside": In(len(self.lane_pad))}

    def _layout(self):
        """The serial graph's structure: per op its stage, and per (op, delay) the delayed
        digits shifted operands read."""
        plan = self._plan
        d, D = self.digit_width, self.digits
        stage = []
        for op in plan.ops:
            if op.kind == "in":
                stage.append(1)
            elif op.kind == "reg":
                stage.append(stage[op.args[0]] + 1)
            elif op.kind == "neg":
                stage.append(stage[op.args[0]])
            else:
                (a, _, _), (b, _, _) = op.args
                if stage[a] != stage[b]:
                    raise AssertionError(f"operands of {op.name} are in different stages")
                stage.append(stage[a])
        delays: dict[int, int] = {}  # op -> most digits of history a shifted operand reads

        def need(op, shift):
            q, r = divmod(shift, d)
            deepest = q + (1 if r else 0)
            if q < D and deepest:
                delays[op] = max(delays.get(op, 0), min(deepest, D - 1))

        for op in plan.ops:
            if op.kind == "add":
                for a, sa, _ in op.args:
                    need(a, sa)
        for out in plan.outputs:
            if out is not None:
                need(*out)
        return plan, stage, delays

    def _control_groups(self, plan, stage, delays) -> dict:
        """Spaced: op -> ``(stage, k)``, the copy of its stage's control that its restarting
        registers follow (the ops with any, :attr:`OPS_PER_COPY` to a copy in op order);
        otherwise empty (the stages' own control)."""
        if not self.spaced:
            return {}
        groups, count = {}, {}
        for n, op in enumerate(plan.ops):
            if op.kind in ("add", "neg") or delays.get(n, 0):
                s = stage[n]
                groups[n] = (s, count.get(s, 0) // self.OPS_PER_COPY)
                count[s] = count.get(s, 0) + 1
        return groups

    @property
    def copy_bits(self) -> int:
        """Register bits of the control's copies (spaced; none otherwise): a valid bit and
        a last-digit flag per group of ops, a pick index per group of lanes (in place of
        :attr:`pick_index_bits`), a valid bit and phase per group of outputs."""
        if not self.spaced:
            return 0
        plan, stage, delays = self._layout()
        phase_bits = (self.digits - 1).bit_length()
        n_ops = len(set(self._control_groups(plan, stage, delays).values()))
        bits = n_ops * (1 + (self.digits > 1))
        top = self._pick_entries
        if self.hold and top > 1:
            lanes = len({op.args[0] for op in plan.ops if op.kind == "in"})
            bits += -(-lanes // self.LANES_PER_COPY) * (top - 1).bit_length()
        k = self.OUTPUTS_PER_COPY
        outputs = len({j // k for j, o in enumerate(plan.outputs) if o is not None})
        return bits + outputs * (1 + phase_bits)

    def report(self) -> dict:
        """As :meth:`FrozenMatVec.report`, plus ``digits`` and ``digit_width``; register bits
        count the digit registers, carries, shift delays, the digitizer and the output."""
        r = super().report()
        plan, stage, delays = self._layout()
        d = self.digit_width
        n_stages = plan.stages + 1
        used = {op.args[0] for op in plan.ops if op.kind == "in"}
        regs = sum(d for op in plan.ops if op.kind == "reg")
        for op in plan.ops:  # carries: two bits where both operands are subtracted
            if op.kind == "add":
                regs += 2 if op.args[0][2] and op.args[1][2] else 1
            elif op.kind == "neg":
                regs += 1
        regs += sum(delays.values()) * d
        regs += (0 if self.hold else 8 * len(used)) + self.out_width * sum(
            o is not None for o in plan.outputs
        )
        control = (n_stages + 1) * (1 + (self.digits - 1).bit_length() + self.side_width)
        control += self.copy_bits if self.spaced else self.pick_index_bits
        r.update(
            digits=self.digits,
            digit_width=d,
            latency_cycles=self.latency,
            register_bits=regs + control,
            **({"spaced": True} if self.spaced else {}),
        )
        return r

    def elaborate(self, platform):
        m = Module()
        plan, stage, delays = self._layout()
        d, D = self.digit_width, self.digits
        n_stages = plan.stages + 1  # the graph's stages, then the collector
        collector = n_stages

        # Control per stage: valid digit, its index in the word, the word's side bits.
        en = Signal()
        valid = [None] + [Signal(name=f"valid{s}") for s in range(1, n_stages + 1)]
        phase = [None] + [Signal(range(D), name=f"phase{s}") for s in range(1, n_stages + 1)]
        side = [None] + [Signal(self.side_width, name=f"side{s}") for s in range(1, n_stages + 1)]
        with m.If(en):
            for s in range(1, n_stages):
                m.d.sync += [
                    valid[s + 1].eq(valid[s]),
                    phase[s + 1].eq(phase[s]),
                    side[s + 1].eq(side[s]),
                ]

        # The digitizer (stage 1): holds the beat, shifting its lanes right one digit at a
        # time, sign bits filling in from the top; with ``hold``, the producer holds it and
        # each digit is selected from ``i`` by the phase.
        x = self.i.payload.data
        used = sorted({op.args[0] for op in plan.ops if op.kind == "in"})
        last = phase[1] == D - 1
        if self.spaced:
            # One word at a time: a word starts only when none is inside and the output
            # register is empty, so nothing ever waits and ``en`` is constant. The start is
            # registered (``run``), so every stage's control is flip-flops, which the
            # groups of registers below can have copies of.
            busy, run = Signal(name="busy"), Signal(name="run")  # inside; stage 1 mid-word
            start = self.i.valid & ~busy & ~self.o.valid
            run_next = start | (run & ~last)
            m.d.sync += run.eq(run_next)
            m.d.comb += valid[1].eq(run)
            with m.If(start):
                m.d.sync += busy.eq(1)
            if self.hold:
                # The producer moves on in a word's last digit, which is known a cycle
                # ahead: ``i.ready`` comes from a flip-flop (a window's step, which
                # enables all its registers, then starts at one).
                ready = Signal(name="ready")
                m.d.sync += ready.eq(start if D == 1 else valid[1] & (phase[1] == D - 2))
                m.d.comb += [side[1].eq(self.i.payload.side), self.i.ready.eq(ready)]
            else:
                lanes = {k: Signal.like(x[k], name=f"x{k}") for k in used}
                m.d.comb += self.i.ready.eq(~busy & ~self.o.valid)
                with m.If(start):
                    m.d.sync += [v.eq(x[k]) for k, v in lanes.items()]
                    m.d.sync += side[1].eq(self.i.payload.side)
                with m.If(run):
                    m.d.sync += [v.eq(v >> min(d, 7)) for v in lanes.values()]
        elif self.hold:
            m.d.comb += [
                valid[1].eq(self.i.valid),
                side[1].eq(self.i.payload.side),
                self.i.ready.eq(en & last),
            ]
        else:
            lanes = {k: Signal.like(x[k], name=f"x{k}") for k in used}
            m.d.comb += self.i.ready.eq(en & (~valid[1] | last))
            with m.If(en):
                with m.If(valid[1]):
                    m.d.sync += [v.eq(v >> min(d, 7)) for v in lanes.values()]
                with m.If(~valid[1] | last):
                    m.d.sync += valid[1].eq(self.i.valid)
                with m.If(self.i.valid & self.i.ready):
                    m.d.sync += [v.eq(x[k]) for k, v in lanes.items()]
                    m.d.sync += side[1].eq(self.i.payload.side)

        # Per stage: a valid digit advances (``step``), the word's last one does (``done``).
        step = [None] + [Signal(name=f"step{s}") for s in range(1, n_stages + 1)]
        done = [None] + [Signal(name=f"done{s}") for s in range(1, n_stages + 1)]
        for s in range(1, n_stages + 1):
            m.d.comb += [step[s].eq(en & valid[s]), done[s].eq(step[s] & (phase[s] == D - 1))]
        next_phase = Mux(last, 0, phase[1] + 1)
        with m.If(step[1]):  # (spaced, ``en`` is 1: every valid digit)
            m.d.sync += phase[1].eq(next_phase)

        # Spaced, the control of every stage is flip-flops (en is 1): groups of a stage's
        # registers get copies of them (.fanout), each placed beside its group, instead
        # of one valid bit and phase per stage reaching every register of the stage.
        def ahead(s):
            """Stage ``s``'s valid bit and phase of the next cycle, and when the phase
            moves."""
            if s == 1:
                return run_next, next_phase, step[1]
            return valid[s - 1], phase[s - 1], None

        groups, copies = self._control_groups(plan, stage, delays), {}

        def control(n):
            """``(step, done)`` for the restarting registers of op ``n``."""
            if n not in groups:
                return step[stage[n]], done[stage[n]]
            if groups[n] not in copies:
                s, k = groups[n]
                v, p, move = ahead(s)
                step_ = kept_copy(m, v, name=f"valid{s}_c{k}")
                last_ = 1 if D == 1 else kept_copy(m, p == D - 1, name=f"last{s}_c{k}", enable=move)
                copies[groups[n]] = step_, step_ & last_
            return copies[groups[n]]

        def restarting(n, reg, value, init=0):
            """``reg`` (of op ``n``) takes ``value`` with each digit of its stage and
            ``init`` after a word's last: a register of the next word starts clean (a
            synchronous reset, which FPGA flip-flops have, so the restart costs no logic)."""
            step_, done_ = control(n)
            with m.If(done_):
                m.d.sync += reg.eq(init)
            with m.Elif(step_):
                m.d.sync += reg.eq(value)

        digit = {}  # op -> its current digit (unsigned, d bits)
        history = {}  # (op, k) -> the op's digit k digits ago in this word, else zero

        def held(op, k):
            if k == 0:
                return digit[op]
            if (op, k) not in history:
                reg = Signal(d, name=f"{plan.ops[op].name}_h{k}")
                restarting(op, reg, held(op, k - 1))
                history[op, k] = reg
            return history[op, k]

        def shifted(op, shift):
            """Digit of ``op << shift``: the word's digits ``shift // d`` and one more back
            (``shift % d`` bits of it), zero before the word's own bits (from
            :func:`held`)."""
            q, r = divmod(shift, d)
            if q >= D:
                return None
            low = held(op, q)[: d - r]
            if not r:
                return low
            if q + 1 >= D:  # the borrowed bits would come from before the word: zero
                return Cat(Const(0, r), low)
            return Cat(held(op, q + 1)[d - r :], low)

        # With ``hold``: digit t of an int8 value (a lane of ``i``, or a pad constant) is
        # picked by the phase. From phase ceil(7 / d) on, every bit is the sign: one entry
        # serves them.
        top = self._pick_entries
        index = phase[1]
        if self.pick_index_bits and not self.spaced:  # the sign digits' entry, kept in a
            # register beside the phase (a comparison fewer in front of the lanes'
            # multiplexers; spaced, each group of lanes has a copy)
            index = Signal(range(top), name="pick")
            with m.If(step[1]):
                m.d.sync += index.eq(Mux(next_phase >= top, top - 1, next_phase))

        indices = {}  # spaced: a kept copy of the index per group of lanes
        index_width = max(0, top - 1).bit_length()

        def pick(v, lane):
            v = Value.cast(v)
            picks = [Cat(*(v[min(t * d + b, 7)] for b in range(d))) for t in range(top)]
            if top == 1:
                return picks[0]
            if not self.spaced:
                return Array(picks)[index]
            k = used.index(lane) // self.LANES_PER_COPY
            if k not in indices:
                ahead_ = Mux(next_phase >= top, top - 1, next_phase)
                indices[k] = kept_copy(m, ahead_[:index_width], name=f"pick_c{k}", enable=step[1])
            return Array(picks)[indices[k]]

        for n, op in enumerate(plan.ops):
            if op.kind == "in":
                if self.hold:  # bits t*d .. t*d + d - 1 of the lane at phase t, sign-extended
                    lane = op.args[0]
                    digit[n] = Signal(d, name=f"x{lane}_digit")
                    value = pick(x[lane], lane)
                    if self.lane_pad is not None:  # a lane outside the frame: its constant
                        pad = Const(self.lane_pad[lane], signed(8))
                        value = Mux(self.outside[lane], pick(pad, lane), value)
                    m.d.comb += digit[n].eq(value)
                else:
                    v = lanes[op.args[0]]
                    digit[n] = Cat(*(v[min(b, 7)] for b in range(d)))
            elif op.kind == "reg":
                reg = Signal(d, name=op.name)
                with m.If(en):
                    m.d.sync += reg.eq(digit[op.args[0]])
                digit[n] = reg
            else:
                if op.kind == "neg":
                    terms = [(~digit[op.args[0]])[:d]]
                    carry_in = 1  # -a = ~a + 1
                else:
                    terms = []
                    carry_in = 0
                    for a, sa, na in op.args:
                        t = shifted(a, sa)
                        t = Const(0, d) if t is None else t
                        if na:
                            t = (~t)[:d]
                            carry_in += 1
                        terms.append(t)
                width = max(1, carry_in.bit_length())
                carry = Signal(width, name=f"{op.name}_c", init=carry_in)
                total = Signal(d + width, name=f"{op.name}_sum")
                m.d.comb += total.eq(sum(terms[1:], terms[0]) + carry)
                restarting(n, carry, total[d:], carry_in)
                out = Signal(d, name=op.name)
                m.d.comb += out.eq(total[:d])
                digit[n] = out

        # The collector writes each output digit into its place of the output register.
        if self.spaced:
            m.d.comb += en.eq(1)
            with m.If(valid[collector] & (phase[collector] == D - 1)):
                m.d.sync += busy.eq(0)
        else:
            stall = valid[collector] & self.o.valid & ~self.o.ready
            m.d.comb += en.eq(~stall)
        write = en & valid[collector]
        writes = {}  # spaced: kept copies of the collector's valid bit and phase per group

        def writing(j, t):
            """Output ``j``'s digit ``t`` is written."""
            if not self.spaced:
                return write & (phase[collector] == t)
            k = j // self.OUTPUTS_PER_COPY
            if k not in writes:
                v, p, move = ahead(collector)
                writes[k] = (
                    kept_copy(m, v, name=f"write_c{k}"),
                    kept_copy(m, p, name=f"write_phase_c{k}", enable=move),
                )
            return writes[k][0] & (writes[k][1] == t)

        for j, out in enumerate(plan.outputs):
            lane = self.o.payload.data[j]
            if out is None:
                m.d.comb += lane.eq(0)
                continue
            acc = Signal(self.out_width, name=f"y{j}")
            m.d.comb += lane.eq(acc)
            if stage[out[0]] != collector:
                raise AssertionError(f"output {j} is not registered for the collector")
            value = shifted(*out)
            for t in range(-(-self.out_width // d)):
                hi = min((t + 1) * d, self.out_width)
                with m.If(writing(j, t)):
                    m.d.sync += acc[t * d : hi].eq(0 if value is None else value[: hi - t * d])
        out_side = Signal(self.side_width, name="out_side")
        m.d.comb += self.o.payload.side.eq(out_side)
        with m.If(write & (phase[collector] == D - 1)):
            m.d.sync += [self.o.valid.eq(1), out_side.eq(side[collector])]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
