# amaranth: UnusedElaboratable=no
"""Convolution layers on pixel streams: window, product (frozen or configurable), requantizer.

Three kinds, all with int8 pixel streams in and out (``side`` = :data:`~.window.EOL` /
:data:`~.window.EOF` markers):

* ``pointwise``: 1x1, ``weights`` ``(C_out, C_in)``;
* ``depthwise``: 3x3 per channel, ``weights`` ``(C, 3, 3)``, stride 1 or 2;
* ``full``: 3x3 over all input channels (the stem), ``weights`` ``(C_out, C_in, 3, 3)``.

Frozen weights are constants (a :class:`~.matvec.FrozenMatVec`: shift-add, no multiplier);
configurable ones sit in SRAM (a :class:`~.matvec.ConfigurableMatVec` with multipliers, only
for the weights the kind has). Either way the requantizer's scale and bias stay
configurable at run time.
"""

import hashlib
import json

import numpy as np
from amaranth.hdl import Module, Shape, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spec.formats import INT8_MAX, INT8_MIN
from spec.network import WEIGHT_AXES, sums_per_output

from .adder_graph import AdderGraph, signed_width
from .cmvm import plan_cmvm, plan_depthwise
from .digit_serial import DigitSerialMatVec, fewest_digits
from .fold import (
    Accumulator,
    Deserializer,
    Serializer,
    group_lanes,
    repeat_lanes,
    slice_lanes,
)
from .matvec import ConfigurableMatVec, FrozenMatVec, check_levels
from .requant import Requantizer
from .streams import SkidBuffer, beat_set, forward, marker_width, vector_layout
from .window import MemoryWindow, SlidingWindow, check_frame, lane_pad

__all__ = ["Conv", "KINDS", "BANK_AXES", "product_matrix", "plan_conv"]

KINDS = ("pointwise", "depthwise", "full")
#: The element order of a configurable layer's weight memory, whatever its fold: element
#: ``k`` is the ``k``-th weight in row-major order over these axes (named as
#: :data:`spec.network.WEIGHT_AXES`). A full layer's differs from its ``weights`` array's
#: order: the product's lanes are tap-major, ``(ky, kx, ci)`` (:func:`product_matrix`).
BANK_AXES = {
    "full": ("co", "ky", "kx", "ci"),
    "depthwise": ("c", "ky", "kx"),
    "pointwise": ("co", "ci"),
}
_SHAPES = {"pointwise": "(C_out, C_in)", "depthwise": "(C, 3, 3)", "full": "(C_out, C_in, 3, 3)"}


def _checked(kind: str, weights) -> np.ndarray:
    """``weights`` as int64 after checking that they are int8 and shaped for ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    w = np.asarray(weights)
    if not np.issubdtype(w.dtype, np.integer):
        raise TypeError(f"weights must be an integer array, not {w.dtype}")
    if w.size and (w.min() < INT8_MIN or w.max() > INT8_MAX):
        raise ValueError("weights must lie in int8 [-128, 127]")
    if w.ndim != _SHAPES[kind].count(",") + 1 or (kind != "pointwise" and w.shape[-2:] != (3, 3)):
        raise ValueError(f"{kind} weights must have shape {_SHAPES[kind]}, not {w.shape}")
    return w.astype(np.int64)


def product_matrix(kind: str, weights) -> tuple[np.ndarray, np.ndarray]:
    """The matrix of a ``kind`` layer's product over the window's lanes (lane
    ``(ky * 3 + kx) * C_in + ci``; a pointwise layer's input lanes) and the mask of the
    weights it has (a depthwise layer has nine per output channel)."""
    w = _checked(kind, weights)
    c_out = w.shape[0]
    if kind == "pointwise":
        return w, np.ones(w.shape, bool)
    if kind == "depthwise":
        taps = w.reshape(c_out, 9)
        mask = np.zeros((c_out, 9 * c_out), bool)
        matrix = np.zeros(mask.shape, dtype=np.int64)
        for k in range(9):
            mask[np.arange(c_out), k * c_out + np.arange(c_out)] = True
            matrix[np.arange(c_out), k * c_out + np.arange(c_out)] = taps[:, k]
        return matrix, mask
    matrix = w.transpose(0, 2, 3, 1).reshape(c_out, 9 * w.shape[1])
    return matrix, np.ones(matrix.shape, bool)


def plan_conv(kind: str, weights, solver: str = "da4ml") -> AdderGraph:
    """The adder graph of a frozen ``kind`` layer's product (:func:`product_matrix`); a
    depthwise layer is planned channel by channel."""
    w = _checked(kind, weights)
    if kind == "depthwise":
        return plan_depthwise(w.reshape(w.shape[0], 9), solver)
    return plan_cmvm(product_matrix(kind, w)[0], solver)


def _ints(values):
    return None if values is None else [int(v) for v in values]


def _pass_rows(first, later, sets: int):
    """A requantizer bank's power-up: ``first`` (pass 0's values or None) as it is without
    later passes, else one row per bank set, pass by pass (every pass's values given)."""
    if not later:
        return first
    if any(v is None for v in [first, *later]):
        raise ValueError("a layer run several passes needs every pass's scales and biases")
    return [_ints(v) for v in [first, *later] for _ in range(sets)]


def memory_window_fits(width: int, stride: int, fold: int, period: int | None) -> bool:
    """Whether a :class:`~.window.MemoryWindow` can give a 3x3 layer's ``fold`` sub-beats
    (each one tap's lanes) at beats ``period`` cycles apart: the period leaves the window's
    step a cycle after the sub-beats (one more behind a stride-2 window, as for ``hold``)
    and the frame is 3 or more wide."""
    return period is not None and width >= 3 and period >= fold + 1 + (1 if stride == 2 else 0)


class Conv(wiring.Component):
    """One convolution layer: [3x3 window ->] product -> requantizer.

    Parameters
    ----------
    kind : "pointwise", "depthwise" or "full"
    weights : int8 array shaped for ``kind`` (see the module docstring); for a
        configurable layer, the power-up image
    configurable : weights in SRAM with multipliers (written through ``weight_write``,
        element :meth:`weight_index`) instead of constants
    width, height : frame size at the layer input (3x3 kinds only need them)
    stride : 1 or 2 (3x3 kinds)
    shift, relu, scale_init, bias_init : the requantizer's (``docs/numerics.md`` §4)
    graph : the product's adder graph (frozen only), as :func:`plan_conv` makes it; planned
        here when not given
    levels_per_stage : adder levels between the product's pipeline registers
    serial_levels_per_stage : the same for a bit-serial product (``digits`` giving one-bit
        digits), where an adder level is one LUT and its carry a flip-flop: three of them
        are about as deep as two levels of word-parallel carry-chain adders, and each
        stage fewer saves a register per op crossing it (``docs/folding.md``)
    fold : 1 (spatial, one beat per cycle) or F dividing the output channels: the layer takes
        a beat every F cycles and does a channel group per cycle (:mod:`.fold`), the
        requantizer folded, and the product too when configurable (a frozen product stays
        spatial). A configurable layer may also fold ``F = c_out * K`` ways, ``K`` dividing
        the products each output sums (``c_in``, 9 or ``9 * c_in``): one output channel per
        ``K`` cycles, its sum in ``K`` slices added up by an :class:`~.fold.Accumulator`
    pad : int8 per input channel: what the window reads outside the frame (3x3 kinds;
        default zeros). The stems use it for the input padding of a folded normalisation.
    digits : frozen only: 1 (a word-parallel product) or D > 1, the product's graph run
        digit-serially (:class:`~.digit_serial.DigitSerialMatVec`) over at most D cycles
        per beat (:func:`~.digit_serial.fewest_digits` of D: as narrow digits as D allows,
        none idle; bit-serial is the end); the layer then takes a beat at most every D
        cycles
    period : the fewest cycles between the beats the product will see (a rate-folded
        build knows it: :meth:`spec.network.Network.peak_periods`), or None. Given, a 3x3
        layer whose product takes a beat over several cycles (folded configurable or ROM,
        digit-serial frozen) reads the window's output register in place (``hold``) instead of
        copying the neighbourhood, wherever the window still keeps up: behind a stride-1
        window always (each step gives a window), behind a stride-2 one when the period
        leaves a cycle more than the product takes (the window's steps that give nothing
        wait for the held beat). A digit-serial product whose latency the period exceeds
        runs ``spaced`` (one beat at a time, no stalls inside: see
        :class:`~.digit_serial.DigitSerialMatVec`). A folded configurable or ROM layer (with a
        period given) gets a register slice (``cut``) between its serializer and its
        product: the downstream ``ready`` stops there. Where the period leaves the window's
        pixels two cycles or more apart (2 stride 1, 8 stride 2), the window has a register
        slice in front (``sliced``), so the producer's ``ready`` stops there too; and a folded
        layer's requantizer (and configurable or ROM product) runs ``buffered``
        (:class:`~.pipeline.Pipeline`): stages that never stall, a queue behind them.
    sets : 1, or 2 for two run-time parameter sets (scales, biases and configurable
        weights; both start with the given values): each beat is computed with the set its
        epoch marker (:data:`spec.stream.EPOCH`) names, and the write ports name the set
        they write.
    passes : 1, or P > 1 for a configurable layer run several passes (a repeated head group,
        a beat's passes; a repeated block, a frame's): each pass has its own ``sets`` of
        scales, biases and weights, the beats carry their pass index above the markers
        (:func:`~.streams.marker_width`) and each is computed with set
        ``pass * sets + epoch`` (:func:`~.streams.beat_set`)
    pass_init : with ``passes`` P, the power-up ``(weights, scale_init, bias_init)`` of
        passes 1 .. P - 1 (pass 0's are the arguments above)
    frame_bits : side bits above the pass index that every beat of a frame carries alike
        (a repeated block's last-pass flag), carried through untouched
    rom : frozen only: the product built as a folded configurable layer's (``fold`` as for
        a configurable layer: multipliers shared over cycles) whose weight memory is never
        written, a ROM of the frozen weights. Where a layer's beats are hundreds of cycles
        apart, one multiplier and a ROM are far smaller than any shift-add graph of its
        weights (``docs/folding.md``, "Frozen layers from a ROM"). The layer keeps a frozen
        layer's ports: no ``weight_write``, no weight region.

    Ports: ``i``, ``o`` (int8 pixel streams), ``scale_write``, ``bias_write``,
    ``weight_write`` (configurable only),
    ``framing_error`` (3x3 kinds: the window saw markers that disagree with the frame size).
    """

    def __init__(
        self,
        kind: str,
        weights,
        *,
        width: int = 1,
        height: int = 1,
        stride: int = 1,
        shift: int = 0,
        relu: bool = False,
        scale_init=None,
        bias_init=None,
        solver: str = "da4ml",
        levels_per_stage: int = 2,
        serial_levels_per_stage: int = 3,
        configurable: bool = False,
        graph: AdderGraph | None = None,
        fold: int = 1,
        pad=None,
        digits: int = 1,
        period: int | None = None,
        sets: int = 1,
        passes: int = 1,
        pass_init=(),
        frame_bits: int = 0,
        rom: bool = False,
    ):
        w = _checked(kind, weights)
        if not isinstance(passes, int) or passes < 1:
            raise ValueError(f"passes must be a positive integer, not {passes!r}")
        if passes > 1 and not configurable:
            raise ValueError("only a configurable layer runs several passes")
        pass_init = [(_checked(kind, pw), sc, bi) for pw, sc, bi in pass_init]
        if len(pass_init) != passes - 1 or any(pw.shape != w.shape for pw, _, _ in pass_init):
            raise ValueError(f"pass_init must give {passes - 1} passes' weights shaped {w.shape}")
        if not isinstance(frame_bits, int) or frame_bits < 0:
            raise ValueError(f"frame_bits must be a non-negative integer, not {frame_bits!r}")
        side = marker_width(passes) + frame_bits
        if sets not in (1, 2):
            raise ValueError(f"sets must be 1 or 2, not {sets!r}")
        if period is not None and (not isinstance(period, int) or period < 1):
            raise ValueError(f"period must be a positive integer or None, not {period!r}")
        if not isinstance(fold, int) or fold < 1:
            raise ValueError(f"fold must be a positive integer, not {fold!r}")
        if not isinstance(digits, int) or digits < 1:
            raise ValueError(f"digits must be a positive integer, not {digits!r}")
        check_levels(levels_per_stage)
        check_levels(serial_levels_per_stage, "serial_levels_per_stage")
        if digits > 1 and configurable:
            raise ValueError("only a frozen product runs digit-serially (digits > 1)")
        if rom and (configurable or digits > 1):
            raise ValueError("rom is for a frozen product that does not run digit-serially")
        if kind == "pointwise" and stride != 1:
            raise ValueError("a pointwise layer has stride 1")
        self.period = period
        self._args = {
            "kind": kind,
            "shape": list(w.shape),
            "width": width,
            "height": height,
            "stride": stride,
            "shift": shift,
            "relu": bool(relu),
            "scale_init": None if scale_init is None else [int(v) for v in scale_init],
            "bias_init": None if bias_init is None else [int(v) for v in bias_init],
            "solver": solver,
            "levels_per_stage": levels_per_stage,
            "configurable": bool(configurable),
            **({"fold": fold} if fold > 1 else {}),
            **({"digits": digits} if digits > 1 else {}),
            **({"sets": sets} if sets > 1 else {}),
            **(
                {
                    "passes": passes,
                    "pass_init": [[pw.tolist(), _ints(sc), _ints(bi)] for pw, sc, bi in pass_init],
                }
                if passes > 1
                else {}
            ),
            **({"frame_bits": frame_bits} if frame_bits else {}),
            **({"rom": True} if rom else {}),
            # a build without an input padding keeps its parts' cache keys
            **({"pad": [int(v) for v in pad]} if pad is not None and any(pad) else {}),
        }
        self.kind, self.weights, self.stride = kind, w, stride
        self.configurable, self.sets, self.passes = configurable, sets, passes
        #: Whether the product is a :class:`~.matvec.ConfigurableMatVec` (multipliers and a
        #: weight memory): a configurable layer's, or a frozen one's read from a ROM.
        self.rom, self.mac = bool(rom), bool(configurable or rom)
        banks = sets * passes  # parameter sets in each bank: pass * sets + epoch
        c_out = w.shape[0]
        c_in = {"pointwise": w.shape[-1], "depthwise": c_out, "full": w.shape[1]}[kind]
        self.c_in, self.c_out = c_in, c_out
        # The window is built once the layer knows how its consumer reads it (below).
        windowed = kind != "pointwise"
        frame_pad = check_frame(c_in, width, height, stride, pad) if windowed else None
        # Pixels at least two cycles apart at the window (a stride-2 window takes four per
        # product beat): a register slice in front of it (SlidingWindow's ``sliced``).
        sliced = windowed and period is not None and period >= (2 if stride == 1 else 8)
        # A folded layer of a rate build: the requantizer's stages (and a configurable or ROM
        # product's) never stall, a queue behind them, so that the deserializer's ready
        # stops at the queue instead of running back through their enables into the banks.
        buffered = fold > 1 and period is not None
        if buffered:
            self._args["buffered"] = True
        if pad is not None and not windowed:
            raise ValueError("a pointwise layer has no window to pad")
        matrix, mask = product_matrix(kind, w)
        # the power-up weight image of each bank set, pass by pass
        images = [matrix, *(product_matrix(kind, pw)[0] for pw, _, _ in pass_init)]
        images = [img for img in images for _ in range(sets if configurable else 1)]
        self.fold = fold
        # Folded: sub-beat p computes output channels p * P ... from the lanes groups[p]
        # (all of them, or channel group p of each tap of a depthwise window); past one
        # channel per cycle, slice k of channel p // K's products.
        sums = sums_per_output(kind, c_in)
        self.slices = fold // c_out if fold > c_out else 1
        if c_out % fold and (
            not self.mac or fold % c_out or sums % self.slices or self.slices == 1
        ):
            raise ValueError(
                f"fold {fold} must divide the {c_out} output channels"
                + (
                    f", or be {c_out} times a divisor of the {sums} products each output sums"
                    if self.mac
                    else ""
                )
            )
        channel_groups = fold // self.slices

        def holds(work: int) -> bool:
            """Whether the product, taking ``work`` cycles per beat, may hold the window's
            beat (see ``period``): a register per input bit saved."""
            if not windowed or period is None or work == 1:
                return False
            return stride == 1 or period > work

        def consumer_pad(hold: bool):
            """Held, the window is padded by its consumer (``defer_pad``): per lane, the
            constant a lane outside the frame reads."""
            return lane_pad(frame_pad) if hold and windowed else None

        def memory_window(groups) -> bool:
            """Whether a :class:`~.window.MemoryWindow` may give a folded configurable
            layer's sub-beats: each one tap's lanes, and :func:`memory_window_fits`."""
            if not windowed or any(len({k // c_in for k in g}) != 1 for g in groups):
                return False
            return memory_window_fits(width, stride, fold, period)

        hold, work = holds(fold), fold  # work: the cycles a held beat stays held
        self.window = self.serializer = self.deserializer = self.accumulator = None
        group = c_out // channel_groups
        if self.mac:
            if fold == 1:
                elements = np.full(mask.shape, -1)
                elements[mask] = np.arange(int(mask.sum()))
                self.product = ConfigurableMatVec(
                    matrix.shape[1],
                    c_out,
                    mask=mask,
                    init=np.stack(images),
                    sets=len(images),  # a ROM holds the one
                    levels_per_stage=levels_per_stage,
                    side_width=side,
                )
            else:
                groups = slice_lanes(
                    group_lanes(c_in, channel_groups, taps=9)
                    if kind == "depthwise"
                    else repeat_lanes(matrix.shape[1], channel_groups),
                    self.slices,
                )
                rows = [slice(q * group, (q + 1) * group) for q in range(channel_groups)]
                self.product = ConfigurableMatVec(
                    len(groups[0]),
                    group,
                    mask=mask[rows[0]][:, groups[0]],
                    init=np.stack(
                        [
                            np.stack(
                                [img[rows[p // self.slices]][:, groups[p]] for p in range(fold)]
                            )
                            for img in images
                        ]
                    ),
                    sets=len(images),  # a ROM holds the one
                    levels_per_stage=levels_per_stage,
                    side_width=side,
                    fold=fold,
                    buffered=buffered,
                )
                elements = np.full(mask.shape, -1)
                phase_of = {}  # (channel group, lane) -> the phase reading it
                for p, lanes in enumerate(groups):
                    phase_of.update({(p // self.slices, col): p for col in lanes})
                for r, col in zip(*np.nonzero(mask), strict=True):
                    p = phase_of[r // group, col]
                    elements[r, col] = self.product.index(r % group, groups[p].index(col), p)
                if memory_window(groups):
                    # The window itself gives the sub-beats, read from its line memory.
                    self.window = MemoryWindow(
                        c_in,
                        width,
                        height,
                        stride=stride,
                        pad=pad,
                        groups=groups,
                        side=side,
                        sliced=sliced,
                    )
                    self._args["memory_window"] = True
                    hold = False
                else:
                    self.serializer = Serializer(
                        signed(8),
                        matrix.shape[1],
                        groups,
                        side,
                        hold=hold,
                        pad=consumer_pad(hold),
                    )
                if self.slices > 1:  # the slices' partial sums added, as wide as the whole
                    widest = int(mask.sum(axis=1).max())
                    lo, hi = self.product.product_range
                    self.accumulator = Accumulator(
                        signed(self.product.out_width),
                        signed(signed_width(widest * lo, widest * hi)),
                        group,
                        self.slices,
                        side,
                    )
            # Bank element of each weight, in the shape of ``weights``.
            if kind == "pointwise":
                self._elements = elements
            elif kind == "depthwise":
                self._elements = np.stack(
                    [elements[np.arange(c_out), k * c_out + np.arange(c_out)] for k in range(9)],
                    axis=1,
                ).reshape(c_out, 3, 3)
            else:
                self._elements = elements.reshape(c_out, 3, 3, c_in).transpose(0, 3, 1, 2)
        else:
            if graph is None:
                graph = plan_conv(kind, w, solver)
            product = dict(graph=graph, levels_per_stage=levels_per_stage, side_width=side)
            self.product = FrozenMatVec(matrix, **product)
            spaced = ser_hold = False
            if digits > 1 and self.product.out_width > 1:
                d = fewest_digits(self.product.out_width, digits)
                if d == self.product.out_width:  # bit-serial: a level is one LUT
                    product["levels_per_stage"] = serial_levels_per_stage
                    self._args["serial_levels_per_stage"] = serial_levels_per_stage
                # Beats rarer than the product's latency: one at a time, nothing stalls
                # inside (a spare cycle behind a stride-2 window, as for ``hold``); then
                # also without a window the product reads its input in place, and where
                # the period leaves ``fold`` cycles more the serializer behind it reads the
                # product's output in place (the next beat waits for it anyway).
                spare = 1 if windowed and stride == 2 else 0
                one = DigitSerialMatVec(matrix, digits=d, hold=True, spaced=True, **product)
                spaced = period is not None and period >= one.interval + spare
                ser_hold = spaced and fold > 1 and period >= one.interval + spare + fold
                hold, work = holds(d) or spaced, one.interval if spaced else d
                self.product = DigitSerialMatVec(
                    matrix, digits=d, hold=hold, spaced=spaced, pad=consumer_pad(hold), **product
                )
                if spaced:
                    self._args["spaced"] = True
                if ser_hold:  # part of the hardware, so of the fingerprint
                    self._args["serializer_hold"] = True
            if fold > 1:  # the product stays spatial; its accumulators go group by group
                self.serializer = Serializer(
                    signed(self.product.out_width),
                    c_out,
                    group_lanes(c_out, fold),
                    side,
                    hold=ser_hold,
                )
        #: Whether the product (or a configurable or ROM layer's serializer) reads its input beat
        #: in place: the window's, or a spaced product's producer's (see ``period``).
        self.hold = hold and (
            self.serializer is not None if self.mac else isinstance(self.product, DigitSerialMatVec)
        )
        if self.hold:
            self._args["hold"] = True
        # A sliced window loads its registers a cycle after the step (``late``), a flip-flop's
        # fanout instead of the step's, where the cycle it then frees a held beat later still
        # keeps the period: stride 1, a cycle to spare; stride 2, three (the step that gives
        # nothing waits for the release, and the slice takes the next pixel two cycles on).
        late = sliced and (not self.hold or period >= work + (1 if stride == 1 else 3))
        if windowed and self.window is None:  # held, the consumer pads what it picks
            self.window = SlidingWindow(
                c_in,
                width,
                height,
                stride=stride,
                pad=pad,
                defer_pad=self.hold,
                side=side,
                sliced=sliced,
                late=late,
            )
            if late:
                self._args["late_window"] = True
        if self.window is not None and sliced:
            self._args["sliced_window"] = True
        # A folded configurable or ROM layer of a rate build: a register slice between the
        # serializer and the product (two sub-beats of a channel group, a few dozen bits),
        # so that the downstream ready stops there instead of running on through the
        # serializer into the window.
        self.cut = None
        if self.mac and fold > 1 and period is not None:
            self.cut = SkidBuffer((self.serializer or self.window).o.payload.shape())
            self._args["cut"] = True
        if fold > 1:
            # A rate build whose beats leave the requantizer's groups a cycle to spare: the
            # output beat from flip-flops (a block ending here needs no register slice
            # behind it, and the downstream ready stops at the deserializer).
            registered = period is not None and period >= channel_groups + 1
            self.deserializer = Deserializer(
                signed(8), group, channel_groups, side, registered=registered
            )
            if registered:
                self._args["registered_output"] = True
        self.requant = Requantizer(
            c_out,
            self.product.out_width if self.accumulator is None else self.accumulator.width,
            shift=shift,
            relu=relu,
            scale_init=_pass_rows(scale_init, [sc for _, sc, _ in pass_init], sets),
            bias_init=_pass_rows(bias_init, [bi for _, _, bi in pass_init], sets),
            side_width=side,
            fold=channel_groups,
            sets=banks,
            buffered=buffered,
        )
        members = {
            "i": In(stream.Signature(vector_layout(signed(8), c_in, side))),
            "o": Out(stream.Signature(vector_layout(signed(8), c_out, side))),
            "scale_write": self.requant.signature.members["scale_write"],
            "bias_write": self.requant.signature.members["bias_write"],
            "framing_error": Out(1),
        }
        if configurable:
            members["weight_write"] = self.product.signature.members["write"]
        super().__init__(members)

    def fingerprint(self) -> str:
        """A digest of everything the layer's hardware is built from: arguments, weights,
        power-up values and, when frozen, its adder graph."""
        h = hashlib.sha256(json.dumps(self._args, sort_keys=True).encode())
        h.update(np.ascontiguousarray(self.weights, dtype="<i8").tobytes())
        if not self.mac:
            g = self.product.graph
            h.update(json.dumps([g.n_in, g.adds, g.outputs]).encode())
        return h.hexdigest()

    def verilog_parts(self) -> dict:
        """Emitted as a part (:func:`~.emit.to_verilog_parts`), the product is a module of
        its own, written as text (:mod:`.verilog_text`) rather than converted by Amaranth."""
        return {"product": self.product}

    @property
    def pipe_beats(self) -> int:
        """Most beats the product and requantizer pipelines hold: one per register stage
        (buffered, what the queue has room for: ``beats_held``); folded, a register stage
        holds a sub-beat, so a beat's sub-beats spread over ``fold`` stages, one more beat
        is partly in flight and one partly in the deserializer."""
        r, f = self.requant.beats_held, self.fold
        if self.mac:
            p = self.product.beats_held + 2 * (self.cut is not None)  # the slice's two sub-beats
            if self.accumulator is not None:  # fold sub-beats per beat, then fold / slices
                return -(-p // f) + 1 + -(-(r + 1) // (f // self.slices)) + 2
            return p + r if f == 1 else -(-(p + r) // f) + 2
        p = self.product.beats_held
        return p + r if f == 1 else p + -(-r // f) + 2

    @property
    def lag(self) -> tuple[int, int]:
        """Fewest and most output beats the layer holds while frames stream through: the
        window's lag (3x3 kinds) plus, at most, a full pipeline."""
        lo, hi = self.window.lag if self.window is not None else (0, 0)
        return lo, hi + self.pipe_beats

    def weight_element(self, *index) -> int:
        """The weight bank's element holding ``weights[index]`` (index as for the ``weights``
        array: ``(co, ci)``, ``(c, ky, kx)`` or ``(co, ci, ky, kx)``)."""
        if not self.configurable:
            raise ValueError("a frozen layer has no weight memory")
        return int(self._elements[index])

    @property
    def bank_axes(self) -> tuple[str, ...]:
        """The weight memory's element order (:data:`BANK_AXES`): :meth:`weight_element` of
        ``weights[index]`` is the row-major index of ``index``, reordered to these axes, in
        :attr:`bank_shape`."""
        return BANK_AXES[self.kind]

    @property
    def bank_shape(self) -> tuple[int, ...]:
        """The sizes of :attr:`bank_axes`."""
        sizes = dict(zip(WEIGHT_AXES[self.kind], self.weights.shape, strict=True))
        return tuple(sizes[a] for a in self.bank_axes)

    def weight_index(self, *index) -> int:
        """The ``weight_write`` index that writes ``weights[index]`` (the element's address
        in the bank: the element itself, unless folded)."""
        return self.product.bank.address(self.weight_element(*index))

    @property
    def latency(self) -> int:
        """Cycles from a beat at the product to its output beat without stalls (for 3x3
        kinds the window's lag comes before): the product, the slice behind a configurable
        serializer, the accumulator, the requantizer, and folded, the beat's other sub-beats
        and the deserializer."""
        n = self.product.latency + self.requant.latency + (self.cut is not None)
        if self.accumulator is not None:
            n += self.accumulator.latency
        if self.fold > 1:  # a beat's last sub-beat leaves fold - 1 cycles after its first
            n += self.fold - 1 + self.deserializer.latency
        return n

    def report(self) -> dict:
        r = {
            "kind": self.kind,
            "stride": self.stride,
            "configurable": self.configurable,
            **self.product.report(),
        }
        if self.rom:  # the ROM is no parameter memory
            rom_bits = r.pop("memory_bits")
            r.update(rom=True, rom_bits=rom_bits, memory_bits=0)
            r["nonzero_weights"] = int(np.count_nonzero(self.weights))
        r["weights"] = int(self.weights.size)  # not the depthwise block matrix's size
        r["latency_cycles"] = self.latency  # plus, for 3x3 kinds, the window's lag
        r["memory_bits"] += self.requant.scales.bits + self.requant.biases.bits
        r["register_bits"] += self.requant.register_bits
        if self.fold > 1:
            r["fold"] = self.fold
            r["register_bits"] += self.deserializer.register_bits
            if self.serializer is not None:
                r["register_bits"] += self.serializer.register_bits
        if self.cut is not None:
            r["register_bits"] += 2 * Shape.cast(self.cut.i.payload.shape()).width
        if self.accumulator is not None:
            r["slices"] = self.slices
            r["register_bits"] += self.accumulator.register_bits
        if self.hold:
            r["hold"] = True
        if isinstance(self.window, MemoryWindow):
            r["memory_window"] = True
        if self.window is not None:
            r["line_buffer_bits"] = self.window.memory_bits
            r["frame_cycles"] = self.window.frame_cycles
            r["register_bits"] += self.window.register_bits
        return r

    def elaborate(self, platform):
        m = Module()
        m.submodules.product = product = self.product
        m.submodules.requant = requant = self.requant
        # The stream through the layer: [window ->] [serializer ->] product [-> serializer]
        # -> requantizer [-> deserializer] (the serializer before a configurable folded
        # product, after a frozen one).
        chain = [product, requant]
        if self.serializer is not None:
            m.submodules.serializer = self.serializer
            chain.insert(0 if self.mac else 1, self.serializer)
        if self.deserializer is not None:
            m.submodules.deserializer = self.deserializer
            chain.append(self.deserializer)
        if self.accumulator is not None:
            m.submodules.accumulator = self.accumulator
            chain.insert(chain.index(product) + 1, self.accumulator)
        if self.cut is not None:
            m.submodules.cut = self.cut
            chain.insert(chain.index(product), self.cut)
        if self.window is not None:
            m.submodules.window = window = self.window
            wiring.connect(m, wiring.flipped(self.i), window.i)
            wiring.connect(m, window.o, chain[0].i)
            if "outside" in window.signature.members:  # padded by the consumer
                m.d.comb += chain[0].outside.eq(window.outside)
            m.d.comb += self.framing_error.eq(window.framing_error)
        else:
            wiring.connect(m, wiring.flipped(self.i), chain[0].i)
            # Driven, so that the port is an output when the layer is emitted on its own.
            m.d.comb += self.framing_error.eq(0)
        for a, b in zip(chain, chain[1:], strict=False):
            wiring.connect(m, a.o, b.i)
        wiring.connect(m, chain[-1].o, wiring.flipped(self.o))
        ports = [(self.scale_write, requant.scale_write), (self.bias_write, requant.bias_write)]
        if self.configurable:
            ports.append((self.weight_write, product.write))
        for src, dst in ports:
            forward(m, src, dst)
        if self.rom:  # never written: the weight memory is a ROM
            m.d.comb += product.write.valid.eq(0)
        if self.sets * self.passes > 1:  # each block reads its parameters with its beat's set
            for block in (requant, product) if self.configurable else (requant,):
                m.d.comb += block.select.eq(beat_set(block.i.payload.side, self.sets, self.passes))
        return m
