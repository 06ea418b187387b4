# amaranth: UnusedElaboratable=no
"""Frozen convolution layers (pointwise, depthwise 3x3, full 3x3 stem) against the golden
model: pysim sweeps and Verilator with random stalls, several frames, odd sizes. In
Verilator, layers are emitted as the backbone's parts are (the product a module of its own,
written as text), one also whole by Amaranth."""

import numpy as np
import pytest
from amaranth.hdl import Shape

from semifreddo_hw.conv import Conv
from semifreddo_hw.emit import part_text
from semifreddo_hw.window import MemoryWindow
from sim.golden.layers import conv3x3, depthwise3x3, pointwise
from sim.golden.primitives import requantize
from sim.pysim import run_stream_pysim
from sim.rtl import VerilatorDesign
from spec.network import WEIGHT_AXES
from spec.stream import frames_to_beats
from tests.netlist import memory_bits, rtlil_cells
from tests.rtl_helpers import bank_writes, extra_frame_cycles, run_pixels, writes_for
from weights.synthetic import trained_like_int8


def make_layer(rng, kind, c_in, c_out, extremes=False):
    taps = {"pointwise": c_in, "depthwise": 9, "full": 9 * c_in}[kind]
    rows = c_in if kind == "depthwise" else c_out
    w = trained_like_int8(rng, rows, taps, pruned=0.3)
    if extremes:
        w = rng.choice([-128, 127, 0], size=w.shape)
    shape = {"pointwise": (c_out, c_in), "depthwise": (c_in, 3, 3), "full": (c_out, 3, 3, c_in)}[
        kind
    ]
    w = w.reshape(shape)
    if kind == "full":
        w = w.transpose(0, 3, 1, 2)  # (C_out, C_in, 3, 3)
    n = c_in if kind == "depthwise" else c_out
    scale = rng.integers(1, 1 << 12, size=n)
    bias = rng.integers(-(1 << 18), 1 << 18, size=n)
    return w, scale, bias


def golden(kind, w, frame, stride, scale, bias, shift, relu):
    acc = {
        "pointwise": lambda: pointwise(frame, w),
        "depthwise": lambda: depthwise3x3(frame, w, stride),
        "full": lambda: conv3x3(frame, w, stride),
    }[kind]()
    return requantize(acc, scale, bias, shift, relu)


def vectors(rng, kind, w, size, c_in, stride, scale, bias, shift, relu, frames=2):
    h, wd = size
    fr = [rng.integers(-128, 128, size=(h, wd, c_in)) for _ in range(frames)]
    fr[0][0] = -128
    x, xs = frames_to_beats(fr)
    y, ys = frames_to_beats([golden(kind, w, f, stride, scale, bias, shift, relu) for f in fr])
    return x, xs, y, ys


# kind, (height, width), c_in, c_out, stride
SWEEP = [
    ("pointwise", (3, 5), 4, 6, 1),
    ("pointwise", (1, 1), 1, 1, 1),
    ("depthwise", (7, 13), 3, 3, 1),
    ("depthwise", (7, 13), 2, 2, 2),
    ("depthwise", (1, 6), 4, 4, 2),
    ("depthwise", (5, 1), 1, 1, 1),
    ("full", (7, 13), 3, 8, 2),
    ("full", (4, 4), 1, 4, 2),
    ("full", (3, 5), 4, 2, 1),
]


def _conv(kind, w, size, stride, shift, relu, scale=None, bias=None, **kw):
    """A layer on a ``size`` = (height, width) frame, power-up scales and biases given."""
    return Conv(
        kind,
        w,
        height=size[0],
        width=size[1],
        stride=stride,
        shift=shift,
        relu=relu,
        scale_init=None if scale is None else scale.tolist(),
        bias_init=None if bias is None else bias.tolist(),
        **kw,
    )


@pytest.mark.parametrize("kind,size,c_in,c_out,stride", SWEEP)
def test_conv_pysim(kind, size, c_in, c_out, stride):
    rng = np.random.default_rng([c_in, c_out, stride, *size])
    w, scale, bias = make_layer(rng, kind, c_in, c_out)
    relu = bool(rng.integers(2))
    dut = _conv(kind, w, size, stride, 12, relu, scale, bias)
    x, xs, y, ys = vectors(rng, kind, w, size, c_in, stride, scale, bias, 12, relu)
    run_stream_pysim(dut, x, y, in_sides=xs, out_sides=ys, in_stall=0.3, out_stall=0.3)


@pytest.mark.parametrize("kind,size,c_in,c_out,stride", SWEEP[::2])
@pytest.mark.parametrize("image", [True, False])
def test_configurable_conv_pysim(kind, size, c_in, c_out, stride, image):
    """Weights from the power-up image, or written through ``weight_write`` over zeros."""
    rng = np.random.default_rng([c_in, c_out, stride, *size, image])
    w, scale, bias = make_layer(rng, kind, c_in, c_out)
    dut = _conv(
        kind,
        w if image else np.zeros_like(w),
        size,
        stride,
        12,
        False,
        scale,
        bias,
        configurable=True,
    )
    writes = (
        []
        if image
        else [
            ("weight_write", {"index": dut.weight_index(*idx), "value": int(w[idx])})
            for idx in np.ndindex(w.shape)
        ]
    )
    x, xs, y, ys = vectors(rng, kind, w, size, c_in, stride, scale, bias, 12, False)
    run_stream_pysim(dut, x, y, writes=writes, in_sides=xs, out_sides=ys)
    r = dut.report()
    assert r["multipliers"] == w.size and r["configurable"]


# kind, (height, width), c_in, c_out, stride, fold
FOLDED = [
    ("pointwise", (3, 5), 4, 6, 1, 3),
    ("pointwise", (2, 3), 8, 8, 1, 8),
    ("depthwise", (5, 7), 6, 6, 1, 2),
    ("depthwise", (5, 7), 4, 4, 2, 4),
    ("full", (5, 6), 3, 8, 2, 4),
]


# Configurable layers folded past their output channels: the sums in fold / c_out slices
# (1 multiplier where the fold is every weight).
SLICED = [
    ("pointwise", (3, 5), 4, 3, 1, 6),
    ("pointwise", (2, 3), 5, 2, 1, 10),
    ("depthwise", (5, 7), 2, 2, 2, 6),
    ("depthwise", (4, 5), 1, 1, 1, 9),
    ("full", (5, 6), 3, 2, 2, 54),
    ("full", (4, 5), 2, 4, 1, 12),
]


@pytest.mark.parametrize(
    "kind,size,c_in,c_out,stride,fold,configurable",
    [(*case, c) for case in FOLDED for c in (False, True)] + [(*c, True) for c in SLICED],
)
def test_folded_conv_pysim(kind, size, c_in, c_out, stride, fold, configurable):
    """A folded layer computes what the spatial one does, under stalls; a configurable one
    also after every weight is rewritten (over a zero power-up image)."""
    rng = np.random.default_rng([c_in, c_out, stride, fold, *size])
    w, scale, bias = make_layer(rng, kind, c_in, c_out, extremes=fold % 2 == 0)
    image = np.zeros_like(w) if configurable else w
    dut = _conv(
        kind, image, size, stride, 11, True, scale, bias, fold=fold, configurable=configurable
    )
    writes = (
        [
            ("weight_write", {"index": dut.weight_index(*idx), "value": int(w[idx])})
            for idx in np.ndindex(w.shape)
        ]
        if configurable
        else []
    )
    x, xs, y, ys = vectors(rng, kind, w, size, c_in, stride, scale, bias, 11, True)
    run_stream_pysim(
        dut, x, y, writes=writes, in_sides=xs, out_sides=ys, in_stall=0.3, out_stall=0.3
    )
    r = dut.report()
    assert r["fold"] == fold
    assert r.get("slices", 1) == max(1, fold // c_out)
    if configurable:
        assert r["multipliers"] * fold == w.size


# Frozen layers read from a ROM (``rom``): kind, (height, width), c_in, c_out, stride, fold,
# period (None: no rate given). Folded as configurable layers are: by channel groups, past
# the channels in slices, down to one multiplier; with a period, behind a memory window or
# a held serializer, with the register slice and the buffered pipelines.
ROM = [
    ("pointwise", (3, 5), 4, 6, 1, 3, None),
    ("pointwise", (2, 3), 5, 2, 1, 10, None),
    ("depthwise", (5, 7), 2, 2, 2, 18, None),
    ("full", (4, 5), 2, 4, 1, 12, None),
    ("depthwise", (5, 7), 2, 2, 1, 18, 19),  # a memory window
    ("depthwise", (4, 2), 3, 3, 2, 27, 40),  # too narrow for one: the serializer holds
    ("pointwise", (3, 4), 4, 4, 1, 16, 17),
]


@pytest.mark.parametrize("kind,size,c_in,c_out,stride,fold,period", ROM)
def test_rom_conv_pysim(kind, size, c_in, c_out, stride, fold, period):
    """A frozen layer read from a ROM computes what the shift-add one does, under stalls,
    with extreme weights; it has a frozen layer's ports (no weight write) and its report
    counts the multipliers it shares and the ROM apart from the parameter memory."""
    rng = np.random.default_rng([c_in, c_out, stride, fold, *size, period or 0])
    w, scale, bias = make_layer(rng, kind, c_in, c_out, extremes=True)
    dut = _conv(kind, w, size, stride, 11, True, scale, bias, fold=fold, rom=True, period=period)
    assert "weight_write" not in dut.signature.members and not dut.configurable
    if period is not None:
        assert dut.cut is not None and dut.requant.buffered
    if kind == "depthwise" and period:  # a memory window where the frame is 3 or more wide
        assert isinstance(dut.window, MemoryWindow) == (size[1] >= 3)
        assert dut.hold == (size[1] < 3)  # else the serializer reads the window in place
    x, xs, y, ys = vectors(rng, kind, w, size, c_in, stride, scale, bias, 11, True)
    run_stream_pysim(dut, x, y, in_sides=xs, out_sides=ys, in_stall=0.3, out_stall=0.3)
    r = dut.report()
    assert r["rom"] and not r["configurable"] and r["fold"] == fold
    assert r["multipliers"] * fold == w.size == r["rom_bits"] // 8
    assert r["memory_bits"] == dut.requant.scales.bits + dut.requant.biases.bits
    assert r["nonzero_weights"] == np.count_nonzero(w)
    # Other hardware than a configurable layer of the same fold: another cache key.
    twin = _conv(
        kind, w, size, stride, 11, True, scale, bias, fold=fold, configurable=True, period=period
    )
    assert dut.fingerprint() != twin.fingerprint()


def test_rom_is_for_a_frozen_word_parallel_product():
    w = np.ones((4, 4), np.int64)
    for kw in (dict(configurable=True), dict(digits=4)):
        with pytest.raises(ValueError, match="rom is for a frozen product"):
            Conv("pointwise", w, rom=True, fold=16, **kw)
    with pytest.raises(ValueError, match="a frozen layer has no weight memory"):
        Conv("pointwise", w, rom=True, fold=16).weight_element(0, 0)


def frame_cost(dut, rng, kind, w, size, c_in, stride, scale, bias, period):
    """``(cycles one more frame costs, its pixels' time)``: frames fed back to back at a
    pixel every ``period / stride`` cycles (the rate ``period`` stands for at the output),
    no stalls. (The stream's very end may come later: a held or spaced layer works through
    the last frame's flush more slowly, but not through frames.)"""
    rate = -(-period // stride)
    frames = vectors(rng, kind, w, size, c_in, stride, scale, bias, 11, True, frames=3)
    return extra_frame_cycles(dut, frames, in_period=rate), len(frames[0]) // 3 * rate


# 3x3 layers given the beat period of a rate-folded build: kind, (height, width), c_in,
# c_out, stride, fold, digits (frozen: digit-serial), configurable, period.
HELD = [
    ("depthwise", (5, 7), 4, 4, 1, 2, 5, False, 5),
    ("depthwise", (6, 5), 4, 4, 2, 2, 7, False, 8),
    ("depthwise", (6, 7), 4, 4, 2, 2, 3, False, 4),  # stride 2 at the rule's edge: 4 > 3
    ("full", (5, 6), 3, 4, 2, 1, 4, False, 9),
    ("depthwise", (5, 7), 4, 4, 1, 2, 6, False, 12),  # spaced: period > latency
    ("full", (6, 5), 3, 4, 2, 2, 5, False, 16),  # spaced
    ("pointwise", (3, 5), 8, 8, 1, 4, 6, False, 40),  # spaced, serializer holds too
    ("pointwise", (4, 3), 6, 6, 1, 6, 4, False, 12),  # spaced, serializer copies
    ("depthwise", (5, 7), 4, 4, 1, 2, 32, False, 40),  # bit-serial: the pick registered
    ("depthwise", (5, 7), 4, 4, 1, 4, 1, True, 4),
    ("depthwise", (4, 7), 2, 2, 2, 6, 1, True, 7),
    ("full", (5, 4), 2, 4, 2, 4, 1, True, 5),
    ("depthwise", (5, 7), 4, 4, 1, 4, 1, True, 9),  # a register slice after the serializer
    ("full", (5, 6), 2, 4, 2, 4, 1, True, 10),  # the same, behind a stride-2 window
    ("depthwise", (5, 7), 4, 4, 1, 4, 1, True, 5),  # the late window at the rule's edge
    ("full", (5, 6), 2, 5, 2, 5, 1, True, 8),  # the same, stride 2 (sliced from 8)
]


@pytest.mark.parametrize("kind,size,c_in,c_out,stride,fold,digits,configurable,period", HELD)
def test_held_window_conv_pysim(
    kind, size, c_in, c_out, stride, fold, digits, configurable, period
):
    """Given the period, the product reads the window (or, spaced, its input) in place
    instead of copying the beat: bit-exact under stalls, registers saved, and fed pixels at
    the rate the period stands for (one every ``period / stride`` cycles) each frame costs
    the time its pixels take."""
    rng = np.random.default_rng([c_in, c_out, stride, fold, digits, period, *size])
    w, scale, bias = make_layer(rng, kind, c_in, c_out, extremes=True)
    kw = dict(fold=fold, digits=digits, configurable=configurable)
    held = _conv(kind, w, size, stride, 11, True, scale, bias, period=period, **kw)
    copying = _conv(kind, w, size, stride, 11, True, scale, bias, **kw)
    assert held.hold and not copying.hold
    taps = 1 if kind == "pointwise" else 9
    copied_bits = taps * c_in * 8  # the input beat, copied by the one that copies
    saved = copying.report()["register_bits"] - held.report()["register_bits"]
    if held.cut is not None:  # the slice's registers are another matter
        saved += 2 * Shape.cast(held.cut.i.payload.shape()).width
    if held.window:  # and the window's input slice and late load
        saved += held.window.slice_bits + getattr(held.window, "late_bits", 0)
    saved += held.requant.queue_bits + getattr(held.product, "queue_bits", 0)  # and queues
    # a digit-serial pick's index, or a spaced product's copies of its control
    spaced = getattr(held.product, "spaced", False)
    saved += getattr(held.product, "copy_bits" if spaced else "pick_index_bits", 0)
    saved += getattr(held.product, "pick_stage_bits", 0)  # the picked digits registered
    if fold > 1:  # and so is a registered deserializer's last group (the period allows it)
        assert held.deserializer.registered == (period >= held.deserializer.fold + 1)
        saved += held.deserializer.register_bits - copying.deserializer.register_bits
    assert saved >= (copied_bits - copied_bits // fold if configurable else copied_bits)
    if not configurable:  # beats rarer than the latency: one at a time
        spare = 1 if stride == 2 else 0
        p = held.product  # spaced, a beat every latency + 1 (the start registered: + 1 held)
        assert (p.pick_stage_bits > 0) == (p.digit_width <= 2)  # one- and two-bit digits
        interval = p.latency + 1 + (p.hold and not p.spaced)
        assert p.spaced == (period >= interval + spare)
        if fold > 1:  # the serializer reads the spaced product's output in place
            ser_hold = period >= interval + spare + fold
            assert held.serializer.hold == ser_hold
            if ser_hold:
                assert saved >= copied_bits + (fold - 1) * (c_out // fold) * held.product.out_width
        assert held.report().get("spaced", False) == held.product.spaced
    assert held.report()["hold"] and "hold" not in copying.report()
    assert (held.cut is not None) == configurable and copying.cut is None
    if held.window is not None and not isinstance(held.window, MemoryWindow):
        # the late load where a held beat leaves it the cycles (stride 1: 1, stride 2: 3)
        work = fold if configurable else held.product.interval if spaced else held.product.digits
        late = held.window.sliced and period >= work + (1 if stride == 1 else 3)
        assert held.window.late == late
    x, xs, y, ys = vectors(rng, kind, w, size, c_in, stride, scale, bias, 11, True)
    run_stream_pysim(held, x, y, in_sides=xs, out_sides=ys, in_stall=0.3, out_stall=0.3)
    # Frames back to back at the rate: each frame costs the copying layer's frame period.
    layer = (kind, w, size, c_in, stride, scale, bias)
    per_frame = [frame_cost(d, rng, *layer, period) for d in (held, copying)]
    assert per_frame[0][0] == per_frame[1][0] == per_frame[0][1], per_frame


@pytest.mark.parametrize(
    "size,c,stride,period", [((5, 7), 2, 1, 19), ((6, 5), 2, 2, 20), ((4, 3), 1, 2, 11)]
)
def test_memory_window_conv_pysim(size, c, stride, period):
    """A depthwise layer folded a lane per cycle (``9 * c`` sub-beats), given a period with
    a cycle to spare, reads its taps from the window's line memory (``MemoryWindow``)
    instead of registers: bit-exact under stalls, the window registers gone, and fed at
    the period's rate each frame costs the time its pixels take."""
    rng = np.random.default_rng([*size, c, stride, period])
    w, scale, bias = make_layer(rng, "depthwise", c, c, extremes=True)
    kw = dict(fold=9 * c, configurable=True)
    mem = _conv("depthwise", w, size, stride, 11, True, scale, bias, period=period, **kw)
    tight = _conv("depthwise", w, size, stride, 11, True, scale, bias, period=period - 1, **kw)
    assert isinstance(mem.window, MemoryWindow) and mem.serializer is None
    assert mem.report()["memory_window"] and "memory_window" not in tight.report()
    # The nine-pixel neighbourhood against the window's two pixel registers (the read and
    # its copy before the lane multiplexers).
    saved = tight.report()["register_bits"] - mem.report()["register_bits"]
    assert saved >= 9 * c * 8 - 2 * c * 8 - 20, saved
    x, xs, y, ys = vectors(rng, "depthwise", w, size, c, stride, scale, bias, 11, True)
    run_stream_pysim(mem, x, y, in_sides=xs, out_sides=ys, in_stall=0.3, out_stall=0.3)
    cost, pixels = frame_cost(mem, rng, "depthwise", w, size, c, stride, scale, bias, period)
    assert cost == pixels, (cost, pixels)


@pytest.mark.parametrize(
    "size,stride,fold,digits,configurable,period",
    [((5, 6), 2, 1, 4, False, 9), ((6, 5), 2, 2, 5, False, 16), ((5, 4), 2, 4, 1, True, 5)],
)
def test_held_window_pads_with_constants(size, stride, fold, digits, configurable, period):
    """A stem's input padding (an int8 constant per channel, extremes included) where the
    consumer pads what it picks from the held window (``defer_pad``): bit-exact under
    stalls against the golden layer padded the same way."""
    rng = np.random.default_rng([*size, stride, fold, digits, period])
    c_in, c_out, pad = 3, 4, [-128, 127, 37]
    w, scale, bias = make_layer(rng, "full", c_in, c_out, extremes=True)
    kw = dict(fold=fold, digits=digits, configurable=configurable, pad=pad)
    dut = _conv("full", w, size, stride, 11, False, scale, bias, period=period, **kw)
    assert dut.hold and dut.window.defer_pad
    fr = [rng.integers(-128, 128, size=(*size, c_in)) for _ in range(2)]
    x, xs = frames_to_beats(fr)
    acc = [conv3x3(f, w, stride, pad) for f in fr]
    y, ys = frames_to_beats([requantize(a, scale, bias, 11, False) for a in acc])
    run_stream_pysim(dut, x, y, in_sides=xs, out_sides=ys, in_stall=0.3, out_stall=0.3)


def test_hold_needs_a_spare_cycle_behind_a_stride_2_window():
    """A stride-2 window's steps that give no window wait for the held beat: the product
    holds only when the period leaves a cycle more than it takes per beat."""
    w, scale, bias = make_layer(np.random.default_rng(5), "depthwise", 4, 4)
    for stride, period, held in [(2, 4, False), (2, 5, True), (1, 4, True)]:
        dut = _conv(
            "depthwise", w, (4, 4), stride, 0, False, configurable=True, fold=4, period=period
        )
        assert dut.hold == held, (stride, period)
    assert not _conv(
        "pointwise",
        w[:, 0, :1].repeat(4, 1),
        (4, 4),
        1,
        0,
        False,
        fold=2,
        configurable=True,
        period=8,
    ).hold
    with pytest.raises(ValueError, match="period must be a positive integer or None"):
        _conv("depthwise", w, (4, 4), 1, 0, False, period=0)


@pytest.mark.parametrize(
    "kind,fold,message",
    [
        ("pointwise", 5, "divide the 4 output channels, or be 4 times a divisor of the 6"),
        ("depthwise", 8, "be 4 times a divisor of the 9 products"),
        ("full", 4 * 5, "be 4 times a divisor of the 27 products"),
    ],
)
def test_fold_past_the_channels_needs_a_divisor_of_the_sums(kind, fold, message):
    shape = {"full": (4, 3, 3, 3), "depthwise": (4, 3, 3), "pointwise": (4, 6)}[kind]
    with pytest.raises(ValueError, match=message):
        Conv(kind, np.zeros(shape, np.int64), width=4, height=4, configurable=True, fold=fold)
    with pytest.raises(ValueError, match="must divide the 4 output channels$"):
        Conv(kind, np.ones(shape, np.int64), width=4, height=4, fold=8)


RTL = {
    "stem_13x7_c3_s2": ("full", (7, 13), 3, 32, 2, False),
    "dw_13x7_c16_s1": ("depthwise", (7, 13), 16, 16, 1, True),
    "dw_9x5_c24_s2": ("depthwise", (5, 9), 24, 24, 2, False),
    "pw_5x3_c32_to_48": ("pointwise", (3, 5), 32, 48, 1, True),
}


#: The layer emitted whole by Amaranth rather than in parts.
AMARANTH_CASE = "dw_9x5_c24_s2"


#: Configurable layers, the last two folded past their output channels (fold, then the
#: sums in slices: 3 of the 9 taps, 6 of the 18 inputs).
CONFIGURABLE_RTL = {
    "cfg_dw_11x5_c8_s2": ("depthwise", (5, 11), 8, 8, 2, True, 1),
    "cfg_stem_9x6_c2_s2": ("full", (6, 9), 2, 16, 2, False, 1),
    "cfg_dw_7x5_c4_s2_fold12": ("depthwise", (5, 7), 4, 4, 2, True, 12),
    "cfg_stem_5x4_c2_fold18": ("full", (4, 5), 2, 3, 1, False, 18),
    # a lane per cycle with a cycle to spare: the taps come from the window's line memory
    "cfg_dw_9x5_c3_s2_memory_window": ("depthwise", (5, 9), 3, 3, 2, True, 27, 29),
}


#: Frozen layers read from a ROM (the weights only in the product memory's initial image,
#: its write port tied off by the layer): as CONFIGURABLE_RTL.
ROM_RTL = {
    "rom_dw_9x5_c3_s2_memory_window": ("depthwise", (5, 9), 3, 3, 2, True, 27, 29),
    "rom_pw_4x3_c6_to_4_fold24": ("pointwise", (3, 4), 6, 4, 1, True, 24, 25),
}


@pytest.mark.parametrize("name", list(RTL) + list(CONFIGURABLE_RTL) + list(ROM_RTL))
def test_conv_rtl_bit_exact(rtl_build_dir, name):
    configurable, rom = name in CONFIGURABLE_RTL, name in ROM_RTL
    kind, size, c_in, c_out, stride, extremes, fold, *period = (
        CONFIGURABLE_RTL.get(name) or ROM_RTL.get(name) or (*RTL[name], 1)
    )
    rng = np.random.default_rng(len(name))
    w, scale, bias = make_layer(rng, kind, c_in, c_out, extremes)
    dut = _conv(
        kind,
        np.zeros_like(w) if configurable else w,
        size,
        stride,
        11,
        True,
        configurable=configurable,
        rom=rom,
        fold=fold,
        period=period[0] if period else None,
    )
    assert isinstance(dut.window, MemoryWindow) == name.endswith("memory_window")
    if name == AMARANTH_CASE:
        design = VerilatorDesign.build(dut, f"conv_{name}", rtl_build_dir)
    else:
        design = VerilatorDesign.from_verilog(
            part_text(dut, f"conv_{name}"), f"conv_{name}", rtl_build_dir
        )
    writes = writes_for(dut, "scale_write", scale) + writes_for(dut, "bias_write", bias)
    if configurable:  # load the weights at run time, in the bank's element order
        order = np.argsort([dut.weight_element(*idx) for idx in np.ndindex(w.shape)])
        writes += bank_writes(dut, "weight_write", dut.product.bank, w.reshape(-1)[order])
    x, xs, y, ys = vectors(rng, kind, w, size, c_in, stride, scale, bias, 11, True, frames=3)
    run_pixels(
        design, (x, xs), (y, ys), c_in, dut.c_out, writes=writes, stalls=[(0.3, 0.3), (0.0, 0.0)]
    )


@pytest.mark.parametrize(
    "kind,fold",
    [(k, f) for k in ("full", "depthwise", "pointwise") for f in (1, 2, 4, 12)]
    + [("full", 108), ("depthwise", 36), ("pointwise", 8), ("pointwise", 24)],
)
def test_bank_axes_give_the_weight_memory_order(kind, fold):
    """What the address map says (``Conv.bank_axes``, ``bank_shape``): the weights,
    reordered to those axes, are the bank's elements in row-major order, spatial or folded."""
    shape = {"full": (4, 3, 3, 3), "depthwise": (4, 3, 3), "pointwise": (4, 6)}[kind]
    w = np.zeros(shape, np.int64)
    dut = Conv(kind, w, width=4, height=4, configurable=True, fold=fold)
    axes = WEIGHT_AXES[kind]
    elements = np.array([dut.weight_element(*i) for i in np.ndindex(shape)]).reshape(shape)
    in_bank_order = elements.transpose([axes.index(a) for a in dut.bank_axes])
    assert in_bank_order.shape == dut.bank_shape
    assert in_bank_order.reshape(-1).tolist() == list(range(w.size))
    assert (kind == "full") == (dut.bank_axes != axes)


def test_conv_report_matches_netlist():
    rng = np.random.default_rng(0)
    w, scale, bias = make_layer(rng, "pointwise", 6, 5)
    dut = Conv("pointwise", w, shift=4)
    r = dut.report()
    assert r["multipliers"] == 0
    valid_bits = dut.product.latency + dut.requant.latency
    assert rtlil_cells(dut)["$dff"][1] == r["register_bits"] + valid_bits
    # A depthwise layer at VGA width: its line buffer, and its weights, counted as the
    # configurable twin's weight memory holds them (8 bits each).
    kernels = make_layer(rng, "depthwise", 3, 3)[0]
    dw = Conv("depthwise", kernels, width=640, height=480)
    assert dw.report()["line_buffer_bits"] == memory_bits(dw.window)
    twin = Conv("depthwise", kernels, width=640, height=480, configurable=True)
    assert dw.report()["weights"] == twin.report()["weights"] == memory_bits(twin.product.bank) // 8


def test_conv_parameters_are_checked():
    with pytest.raises(ValueError, match="kind"):
        Conv("dilated", np.zeros((2, 2), int))
    with pytest.raises(ValueError, match=r"\(C, 3, 3\)"):
        Conv("depthwise", np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="int8"):
        Conv("pointwise", np.full((2, 2), 200))
    with pytest.raises(ValueError, match="stride"):
        Conv("pointwise", np.zeros((2, 2), int), stride=2)


def test_what_the_period_chooses_is_in_the_fingerprint():
    """A spaced product's serializer copies at period 14 and reads in place at 18: other
    hardware, so another fingerprint (the parts cache is keyed by it)."""
    w, scale, bias = make_layer(np.random.default_rng(3), "pointwise", 4, 4)
    a, b = (
        _conv("pointwise", w, (2, 3), 1, 0, False, fold=4, digits=12, period=p) for p in (14, 18)
    )
    assert a.product.spaced and b.product.spaced
    assert not a.serializer.hold and b.serializer.hold
    assert a.fingerprint() != b.fingerprint()


@pytest.mark.parametrize("serial_levels", [1, 3, 5])
def test_bit_serial_product_takes_its_own_levels(serial_levels):
    """A bit-serial product (one-bit digits) is pipelined every ``serial_levels_per_stage``
    adder levels, a wider-digit one every ``levels_per_stage``: bit-exact under stalls at
    either, the stage count following the option, and another fingerprint for another
    value (the parts cache is keyed by it)."""
    rng = np.random.default_rng([serial_levels, 7])
    w, scale, bias = make_layer(rng, "depthwise", 5, 5, extremes=True)
    layer = ("depthwise", w, (5, 6), 1, 11, True, scale, bias)
    kw = dict(digits=20, period=40, levels_per_stage=2)
    serial = _conv(*layer, serial_levels_per_stage=serial_levels, **kw)
    p = serial.product
    assert p.digit_width == 1 and p.levels_per_stage == serial_levels
    assert serial.report()["levels_per_stage"] == serial_levels
    stages = -(-p.graph.depth // serial_levels)
    assert p.graph.schedule(serial_levels).stages == max(1, stages)
    wide = _conv(*layer, serial_levels_per_stage=serial_levels, **{**kw, "digits": 4})
    assert wide.product.digit_width > 1 and wide.product.levels_per_stage == 2
    other = _conv(*layer, serial_levels_per_stage=serial_levels % 5 + 1, **kw)
    assert serial.fingerprint() != other.fingerprint()
    x, xs, y, ys = vectors(rng, "depthwise", w, (5, 6), 5, 1, scale, bias, 11, True)
    run_stream_pysim(serial, x, y, in_sides=xs, out_sides=ys, in_stall=0.3, out_stall=0.3)


def test_serial_levels_are_checked():
    w = np.ones((2, 2), int)
    with pytest.raises(ValueError, match="serial_levels_per_stage must be a positive integer"):
        Conv("pointwise", w, serial_levels_per_stage=0)
    with pytest.raises(ValueError, match="^levels_per_stage must be a positive integer"):
        Conv("pointwise", w, levels_per_stage=0)
