# amaranth: UnusedElaboratable=no
"""The board's host link: the UART on its own (Amaranth's simulator: loopback, glitches,
framing errors, overruns), then a whole backbone behind it in Verilator, driven through its
``rx``/``tx`` pins as a host would, every output beat compared with the golden model."""

import dataclasses
import os
import threading
import tty

import numpy as np
import pytest
import serial
from amaranth.hdl import Module, signed
from amaranth.sim import Simulator

from generators.backbone_build import rate_folds
from semifreddo_hw.backbone import Backbone
from semifreddo_hw.emit import to_verilog_parts, to_verilog_with_instances
from semifreddo_hw.link import BeatBytes, UARTLink, output_bytes
from semifreddo_hw.streams import vector_layout
from semifreddo_hw.uart import UARTRx, UARTTx, uart_divisor
from sim.backbone import random_frames
from sim.host import exchange
from sim.link import check_answer, run_link
from sim.pysim import run_stream_pysim
from sim.rtl import VerilatorDesign
from spec import names
from spec.link import (
    STATUS_FLAGS,
    STATUS_LIVE,
    beat_tag,
    decode,
    encode_status,
    encode_swap,
)
from spec.network import network_from_dict
from spec.stream import EOF_BIT, EOL_BIT
from tests.backbone_helpers import SHORT_PLAN, retrained
from tests.cli_helpers import run_module
from weights.synthetic import random_params


def test_divisor_is_checked():
    assert uart_divisor(100e6, 1_000_000) == 100
    assert uart_divisor(100e6, 3_000_000) == 33
    with pytest.raises(ValueError, match="at least 8"):
        uart_divisor(25e6, 6_000_000)
    with pytest.raises(ValueError, match="off"):
        uart_divisor(1e6, 95_000)  # 10.5 cycles per bit: 11 is 4 % off
    with pytest.raises(ValueError, match="divisor"):
        UARTTx(4)


@pytest.mark.parametrize("divisor", [8, 13])
def test_uart_loopback(divisor):
    """Random bytes, back to back and with pauses, the receiver's reader stalling at
    random: every byte arrives once, in order, and no error flag rises."""
    rng = np.random.default_rng(divisor)
    sent = [0x00, 0xFF, 0x55, 0xAA, *rng.integers(0, 256, 40).tolist()]
    got = []

    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    sim = Simulator(m)
    sim.add_clock(1e-6)

    async def reader(ctx):
        await ctx.tick()
        while True:
            ctx.set(rx.o.ready, int(rng.random() < 0.9))
            _, _, valid, ready, payload = await ctx.tick().sample(
                rx.o.valid, rx.o.ready, rx.o.payload
            )
            if valid and ready:
                got.append(payload)

    async def writer(ctx):
        for byte in sent:
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
            ctx.set(tx.i.valid, 0)
            if rng.random() < 0.3:
                await ctx.tick().repeat(int(rng.integers(1, 3 * divisor)))
        await ctx.tick().repeat(12 * divisor)
        assert not ctx.get(rx.overrun) and not ctx.get(rx.framing_error)

    sim.add_process(reader)
    sim.add_testbench(writer)
    sim.run()
    assert got == sent


def _drive_line(divisor, pattern):
    """Drive the receiver's line with ``pattern`` (a list of ``(level, cycles)``), reading
    every byte at once; returns the bytes and the two sticky flags."""
    rx = UARTRx(divisor)
    got, flags = [], {}

    async def bench(ctx):
        ctx.set(rx.o.ready, 1)
        for level, cycles in pattern:
            ctx.set(rx.rx, level)
            for _ in range(cycles):
                await ctx.tick()
                if ctx.get(rx.o.valid):
                    got.append(ctx.get(rx.o.payload))
        flags.update(overrun=ctx.get(rx.overrun), framing=ctx.get(rx.framing_error))

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got, flags


def _byte_bits(byte, divisor, stop=1):
    return [(0, divisor)] + [((byte >> b) & 1, divisor) for b in range(8)] + [(stop, divisor)]


def test_uart_rx_ignores_glitches_and_flags_bad_stop_bits():
    div = 10
    # A one-cycle low pulse is no start bit; then a good byte; then one with a low stop bit
    # (lost, flagged); after the line idles again, a good byte.
    pattern = [(1, 30), (0, 1), (1, 40), *_byte_bits(0xA5, div), (1, 20)]
    pattern += [*_byte_bits(0x3C, div, stop=0), (0, 3 * div), (1, 30), *_byte_bits(0x81, div)]
    got, flags = _drive_line(div, pattern + [(1, 30)])
    assert got == [0xA5, 0x81]
    assert flags == {"overrun": 0, "framing": 1}


def test_uart_rx_overrun_keeps_the_first_byte():
    div = 8
    rx = UARTRx(div)
    got = {}

    async def bench(ctx):
        ctx.set(rx.o.ready, 0)
        for byte in (0x11, 0x22):
            for level, cycles in _byte_bits(byte, div):
                ctx.set(rx.rx, level)
                await ctx.tick().repeat(cycles)
        await ctx.tick().repeat(2 * div)
        got.update(payload=ctx.get(rx.o.payload), valid=ctx.get(rx.o.valid))
        got["overrun"] = ctx.get(rx.overrun)

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == {"payload": 0x11, "valid": 1, "overrun": 1}


# -- the board-level check: a folded backbone behind the link, in Verilator ----------------

DIVISOR = 8  # the fewest cycles per bit the receiver takes: the shortest simulation

#: The Table 3 topology (frozen core, two trainable cores, blends, shuffle) at 16x12, on two
#: stages (the backbone tests' short plan): every byte costs 80 simulated cycles, so the
#: frames are kept small, and the build is most of what this test costs, so the network is
#: too (Table 1's four stages run folded, without the UART, in tests/test_backbone_folded.py).
NET = network_from_dict(
    {
        "name": "link16x12",
        "width": 16,
        "height": 12,
        "channels_in": 3,
        "stem_channels": 2,
        "plan": SHORT_PLAN,
        "trainable_cores": 2,
        "frozen_core": True,
        "core_shuffle": True,
        # a head: its groups' beats go over the line too, tagged after the cores'
        "head": [
            {"c_in": 4, "c_out": 3, "sources": [["frozen", 0], ["b", 0]], "segments": 8},
            {"c_in": 2, "c_out": 2, "sources": [["a", 2]], "segments": 4},
        ],
    }
)
#: The head group that averages its frames (the other sends a beat per pixel).
POOLED = "head.g0"


@pytest.fixture(scope="module")
def board(rtl_build_dir):
    params = random_params(NET, np.random.default_rng(5))
    for k in range(len(NET.head)):
        name = names.head_group(k)
        params[name] = dataclasses.replace(params[name], pool=int(name == POOLED))
    # Two parameter sets, as builds have by default: the writes land in the shadow set and
    # the host's swap command switches the frames to it.
    dut = Backbone(NET, params, folds=rate_folds(NET), swap=True)
    link = UARTLink(dut, DIVISOR, tx_depth=1 << (output_bytes(dut) - 1).bit_length())
    text = "\n".join(
        [
            to_verilog_with_instances(link, "board_link", {"bb": dut}),
            to_verilog_parts(dut, "bb", dut.parts("bb"), jobs=1),
        ]
    )
    design = VerilatorDesign.from_verilog(text, "board_link", rtl_build_dir, optimize=True)
    return NET, params, dut, link, design


#: Layers whose run-time parameters the board-level test rewrites over the line: a folded
#: configurable stem, a folded pointwise layer of the last stage, a frozen layer's scales and
#: biases, the head's groups; and every alpha.
REWRITTEN = ("a.stem", "b.m2.0.pw", "frozen.m1.1.pw", "head.g0", "head.g1")


@pytest.fixture(scope="module")
def e2e(board):
    """New parameters for :data:`REWRITTEN` and every alpha, written over the line (only
    the words that change), the shuffle switched on, two frames sent with random pauses
    between bytes (checked by :func:`sim.link.run_link`)."""
    net, params, dut, link, design = board
    rng = np.random.default_rng(6)
    fresh = retrained(net, params, rng)
    new = {**params, **{k: fresh[k] for k in REWRITTEN}}
    new |= {b.name: fresh[b.name] for b in net.blends()}
    old_words = dict(dut.param_writes(params))
    writes = [(a, v) for a, v in dut.param_writes(new) if old_words[a] != v]
    assert len(writes) > 50  # the new values differ: the test can tell written from not
    frames = random_frames(net, rng, 2)
    stats = run_link(
        design,
        net,
        new,
        frames,
        link.channels,
        divisor=DIVISOR,
        writes=writes,
        shuffle=True,
        swap=True,
        test_name="link_e2e",
        seed=7,
    )
    return new, frames, stats


def test_frames_and_parameters_over_the_uart(board, e2e):
    """Every output beat of every core comes back over the line, bit-exact, and the status
    record shows no error (run_link raises otherwise)."""
    net, *_ = board
    _, _, stats = e2e
    w, h = net.output_size()
    assert stats["received"] == {
        names.output_port(o): 2 * (1 if o == POOLED else w * h) for o, _ in net.outputs()
    }


def test_host_tool_against_the_simulated_board(board, e2e):
    """sim.host's exchange over a pseudo-terminal (pyserial), the other end replaying what
    the simulated board answered to exactly these bytes: the host gets the whole answer and
    it checks out against the golden model."""
    net, _, _, link, _ = board
    new, frames, stats = e2e
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    heard = bytearray()

    def fake_board():
        while len(heard) < len(stats["sent"]):
            heard.extend(os.read(master, 4096))
        os.write(master, stats["answer"])

    thread = threading.Thread(target=fake_board, daemon=True)
    thread.start()
    port = serial.Serial(os.ttyname(slave), baudrate=1_000_000, timeout=0.1)
    try:
        answer = exchange(port, stats["sent"], len(stats["answer"]), timeout=5.0)
    finally:
        port.close()
        thread.join(5)
        os.close(master)
        os.close(slave)
    assert bytes(heard) == stats["sent"]
    check_answer(net, new, frames, answer, link.channels, shuffle=True)


def _status_after(board, send: bytes, test_name: str) -> list[dict]:
    """The status records the simulated board answers to ``send`` (ending in a status
    request)."""
    net, params, dut, link, design = board
    stats = design.run_bench(
        "sim.tb.uart_tb",
        {
            "send": send.hex(),
            "divisor": DIVISOR,
            "gap": 0.0,
            "expect": 2,
            "max_cycles": 100_000,
            "seed": 1,
        },
        test_name,
    )
    return decode(bytes.fromhex(stats["received"]), link.channels).status


def test_bad_command_is_flagged(board):
    status = _status_after(board, b"?" + encode_status(), "link_bad_command")
    assert status == [{f: f == "bad_command" for f in STATUS_FLAGS + STATUS_LIVE}]


def test_a_swap_is_busy_until_a_frame_flows(board):
    """``X`` asks for a swap; with no frame sent it waits, and the status says so."""
    status = _status_after(board, encode_swap() + encode_status(), "link_swap_busy")
    assert status == [{f: f == "param_busy" for f in STATUS_FLAGS + STATUS_LIVE}]


@pytest.mark.parametrize(
    ("swap", "send", "bad"),
    [(False, b"X", True), (True, b"X", False), (False, b"?", True), (False, b"C\x01", False)],
)
def test_parser_flags_only_commands_it_does_not_know(swap, send, bad):
    """Amaranth's simulator, the parser behind the UART: a byte that names no command, or
    the swap command where the build keeps one parameter set, raises ``bad_command``; the
    swap with two sets and the shuffle command (with its byte) do not."""
    params = random_params(NET, np.random.default_rng(5))
    link = UARTLink(Backbone(NET, params, folds=rate_folds(NET), swap=swap), 8)
    flag = STATUS_FLAGS.index("bad_command")
    seen = {}

    async def bench(ctx):
        ctx.set(link.rx, 1)
        await ctx.tick().repeat(4)
        for level, cycles in [bit for byte in send for bit in _byte_bits(byte, 8)]:
            ctx.set(link.rx, level)
            await ctx.tick().repeat(cycles)
        await ctx.tick().repeat(20)
        seen["bad"] = bool((ctx.get(link.status) >> flag) & 1)

    sim = Simulator(link)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen["bad"] == bad


def test_host_command_refuses_bad_input(tmp_path):
    """sim.host on a directory that is no build: one line, exit 2, before any port opens."""
    r = run_module("sim.host", "--port", "/dev/null", "--build", tmp_path / "nothing")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a build directory" in lines[0], r.stderr


@pytest.mark.parametrize(("lanes", "core", "seed"), [(1, 0, 0), (3, 2, 1), (7, 15, 2), (32, 1, 3)])
def test_beat_bytes_sends_the_tag_then_every_lane(lanes, core, seed):
    """Random beats (extreme values among them) with random markers, under random stalls
    on both sides: each beat's tag, then its lanes as bytes, the last byte flagged."""
    rng = np.random.default_rng(seed)
    beats = rng.integers(-128, 128, (9, lanes))
    beats[0], beats[1] = -128, 127
    sides = rng.integers(0, 8, len(beats)).tolist()  # EOL, EOF and a bit beyond
    expected, last = [], []
    for beat, side in zip(beats, sides, strict=True):
        tag = beat_tag(core, bool(side >> EOL_BIT & 1), bool(side >> EOF_BIT & 1))
        expected += [[tag], *([v & 0xFF] for v in beat)]
        last += [0] * lanes + [1]
    dut = BeatBytes(vector_layout(signed(8), lanes, 3), core)
    run_stream_pysim(dut, beats.tolist(), expected, in_sides=sides, out_sides=last, seed=seed)


def test_beat_bytes_checks_its_core_and_lanes():
    with pytest.raises(ValueError, match="core must be an output index"):
        BeatBytes(vector_layout(signed(8), 4, 2), 16)
    with pytest.raises(ValueError, match="lanes must be bytes"):
        BeatBytes(vector_layout(signed(9), 4, 2), 0)
