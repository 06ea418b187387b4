"""Plan figures of the streaming layers at the paper's frame sizes (estimates, not synthesis).

For the stem (640x480x3 -> 32, stride 2) and the first Semifreddo stage's blocks (a
downsampling block on 320x240x32 and a regular block on 160x120x64), with synthetic
trained-like frozen weights: line-buffer memory bits, register bits, adders, latency and
cycles per frame of each conv layer, as the build report gives them.

    python bench/layers.py --json bench/layers.json
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from semifreddo_hw.blocks import DownsamplingBlock, RegularBlock  # noqa: E402
from semifreddo_hw.conv import Conv  # noqa: E402
from weights.synthetic import trained_like_int8  # noqa: E402


def _quant(n):
    return {"scale": [1] * n, "bias": [0] * n, "shift": 8}


def _branch(rng, c):
    return dict(
        dw=trained_like_int8(rng, c, 9).reshape(c, 3, 3),
        dw_quant=_quant(c),
        pw=trained_like_int8(rng, c, c),
        pw_quant=_quant(c),
    )


def layers(rng):
    stem = trained_like_int8(rng, 32, 27).reshape(32, 3, 3, 3).transpose(0, 3, 1, 2)
    yield "stem", "640x480x3", Conv("full", stem, width=640, height=480, stride=2)
    down = DownsamplingBlock(32, 320, 240, branches=[_branch(rng, 32), _branch(rng, 32)])
    for name, layer in down.layers.items():
        yield f"down.{name}", "320x240x32", layer
    reg = RegularBlock(64, 160, 120, **_branch(rng, 32))
    for name, layer in reg.layers.items():
        yield f"regular.{name}", "160x120x64", layer


KEYS = (
    "line_buffer_bits",
    "register_bits",
    "memory_bits",
    "adders",
    "latency_cycles",
    "frame_cycles",
)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'layer':<16} {'input':<11} " + " ".join(f"{k:>16}" for k in KEYS))
    records = []
    for name, shape, layer in layers(rng):
        r = layer.report()
        rec = {"layer": name, "input": shape, **{k: r.get(k, 0) for k in KEYS}}
        records.append(rec)
        print(f"{name:<16} {shape:<11} " + " ".join(f"{rec[k]:>16}" for k in KEYS))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
