"""Cycles per frame of the streaming blocks, measured in simulation (Amaranth's simulator,
no stalls): for 1 and 3 back-to-back frames, the cycles from the first input to the last
output, the cost of each extra frame, and the fixed latency (cycles for one frame minus its
pixels).

    python bench/throughput.py --json bench/throughput.json
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from semifreddo_hw.blocks import DownsamplingBlock, RegularBlock  # noqa: E402
from semifreddo_hw.window import SlidingWindow  # noqa: E402
from sim.golden.blocks import downsampling_block, regular_block  # noqa: E402
from sim.golden.layers import window3x3  # noqa: E402
from sim.pysim import run_stream_pysim  # noqa: E402
from spec.stream import frames_to_beats  # noqa: E402
from weights.synthetic import trained_like_int8  # noqa: E402

W, H = 13, 7


def _branch(rng, c):
    q = {"scale": [1] * c, "bias": [0] * c, "shift": 6}
    return dict(
        dw=trained_like_int8(rng, c, 9).reshape(c, 3, 3),
        dw_quant=q,
        pw=trained_like_int8(rng, c, c),
        pw_quant=q,
    )


def cases(rng):
    p = _branch(rng, 4)
    yield "window 3x3 s1", 8, SlidingWindow(8, W, H), lambda f: window3x3(f, 1)
    yield "window 3x3 s2", 8, SlidingWindow(8, W, H, stride=2), lambda f: window3x3(f, 2)
    yield "regular block", 8, RegularBlock(8, W, H, **p), lambda f: regular_block(f, **p)
    br = [_branch(rng, 8), _branch(rng, 8)]
    yield (
        "downsampling block",
        8,
        DownsamplingBlock(8, W, H, branches=br),
        lambda f: downsampling_block(f, branches=br),
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    print(
        f"{'block':<20} {'frame':>8} {'pixels':>7} {'1 frame':>8} {'3 frames':>9} "
        f"{'per extra frame':>16} {'fixed latency':>14}"
    )
    records = []
    for name, c, dut, ref in cases(rng):
        cycles = {}
        for n in (1, 3):
            frames = [rng.integers(-128, 128, size=(H, W, c)) for _ in range(n)]
            x, xs = frames_to_beats(frames)
            y, ys = frames_to_beats([ref(f) for f in frames])
            cycles[n] = run_stream_pysim(
                dut, x, y, in_sides=xs, out_sides=ys, in_stall=0, out_stall=0
            )
        rec = {
            "block": name,
            "frame": f"{W}x{H}x{c}",
            "pixels": W * H,
            "cycles_1_frame": cycles[1],
            "cycles_3_frames": cycles[3],
            "cycles_per_extra_frame": (cycles[3] - cycles[1]) // 2,
            "fixed_latency": cycles[1] - W * H,
        }
        records.append(rec)
        print(
            f"{name:<20} {rec['frame']:>8} {rec['pixels']:>7} {cycles[1]:>8} "
            f"{cycles[3]:>9} {rec['cycles_per_extra_frame']:>16} "
            f"{rec['fixed_latency']:>14}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
