"""What repeated passes cost in frame rate (paper §3.4, Table 2), measured in Verilator:
a preset with a head group built for up to ``--max`` passes (its last core's output, ``c``
to ``c`` channels), or with ``--what block`` its trainable cores' last stage one regular
block longer and that block repeated (``docs/backbone.md``), the pass count written at run
time through ``param_write``, frames
streamed back to back with the input always offered and the outputs always read, every
output beat checked against the golden model. Cycles per frame are the cost of each frame
past the first (cycles for ``--frames`` frames minus those for one, over the difference),
printed beside the paper's Table 2 as a fraction of the one-pass frame time.

    python bench/repeat.py --preset small --fold rate --json bench/repeat_small.json
    python bench/repeat.py --preset small --input-period 8 --json bench/repeat_small_p8.json
    python bench/repeat.py --what block --preset small --json bench/repeat_block_small.json

The paper's hardware runs the repeated blocks once per pass over the frame, so its frame
rate falls as 1/N (200, 100, 67, 50, 40, 33 fps at VGA). Ours interleaves the passes of a
beat in the idle cycles of a late, downscaled layer (``docs/head.md``): while ``N`` times
the group's fold fits the period between its beats the frame time does not move. A
repeated block runs its passes frame by frame (a 3x3 layer needs its neighbours): the
block's later passes take the idle time between frames at its downscaled rate.
"""

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from generators.backbone_build import rate_options  # noqa: E402
from semifreddo_hw.backbone import Backbone  # noqa: E402
from semifreddo_hw.emit import to_verilog_parts  # noqa: E402
from sim.backbone import PARAM_PORT, random_frames, run_backbone  # noqa: E402
from sim.rtl import VerilatorDesign, struct_word  # noqa: E402
from spec import names  # noqa: E402
from spec.network import (  # noqa: E402
    HEAD_MAX_REPEATS,
    PRESETS,
    HeadGroupSpec,
    network_from_dict,
    preset,
)
from weights.synthetic import random_params  # noqa: E402

#: Paper Table 2: frames per second at VGA for 1..6 repetitions of the modular blocks.
PAPER_FPS = {1: 200, 2: 100, 3: 67, 4: 50, 5: 40, 6: 33}


def repeat_network(name: str, repeats: int):
    """Preset ``name`` with one head group: the last core's output, all its channels, to as
    many, built for ``repeats`` passes."""
    net = preset(name)
    c = net.channels_after(len(net.stages))
    group = HeadGroupSpec(c, c, ((net.cores[-1], 0),), repeats=repeats)
    return dataclasses.replace(net, name=f"{name}_repeat{repeats}", head=(group,))


def block_network(name: str, repeats: int):
    """Preset ``name`` with its trainable cores' last stage one regular block longer, that
    block built for ``repeats`` passes."""
    d = preset(name).to_dict()
    d["plan"][-1][1] = d["plan"][-1][1] + [1]
    d |= {"name": f"{name}_block_repeat{repeats}", "trainable_repeats": repeats}
    return network_from_dict(d)


def measure(args, log) -> dict:
    block = args.what == "block"
    net = (block_network if block else repeat_network)(args.preset, args.max)
    params = random_params(net, np.random.default_rng(args.seed))
    options = rate_options(net, args.input_period) if args.fold == "rate" else {}
    t0 = time.perf_counter()
    dut = Backbone(net, params, **options)
    top = f"bb_{net.name}_{args.fold}_p{args.input_period}"
    text = to_verilog_parts(dut, top, dut.parts(top), jobs=args.jobs)
    with tempfile.TemporaryDirectory(prefix="semifreddo-repeat-") as tmp:
        design = VerilatorDesign.from_verilog(text, top, Path(tmp), optimize=True)
        log(f"built {top} in {time.perf_counter() - t0:.0f} s")
        layout = dut.signature.members[PARAM_PORT].signature.members["payload"].shape
        regions = [r for r in dut.address_map if r.field == "repeat"]
        records = []
        for n in range(1, args.max + 1):
            if block:
                p = {**params, **{name: n for name in net.repeat_counts()}}
            else:
                g0 = names.head_group(0)
                p = {**params, g0: dataclasses.replace(params[g0], repeat=n)}
            writes = [(PARAM_PORT, struct_word(layout, addr=r.base, value=n)) for r in regions]
            cycles = {}
            for count in (1, args.frames):
                frames = random_frames(net, np.random.default_rng(args.seed + count), count)
                stats = run_backbone(
                    design,
                    net,
                    p,
                    frames,
                    shuffle=net.core_shuffle,
                    writes=writes,
                    test_name=f"n{n}_f{count}",
                    seed=n,
                    in_stall=0.0,
                    out_stall=0.0,
                )
                cycles[count] = stats["cycles"]
            per_frame = (cycles[args.frames] - cycles[1]) / (args.frames - 1)
            records.append(
                {
                    "repeats": n,
                    "cycles_per_frame": per_frame,
                    "cycles_one_frame": cycles[1],
                    "pixels_per_frame": net.width * net.height,
                }
            )
            log(f"N={n}: {per_frame:.1f} cycles per frame")
    base = records[0]["cycles_per_frame"]
    for r in records:
        r["frame_time_vs_one_pass"] = round(r["cycles_per_frame"] / base, 4)
        fps = PAPER_FPS.get(r["repeats"])
        r["paper_frame_time_vs_one_pass"] = round(PAPER_FPS[1] / fps, 4) if fps else None
    if block:
        core, loop = dut.loops()[0]
        where = {
            "block": {
                "name": names.block(core, *net.repeated_block()),
                "channels": loop.block.channels,
                "frame": [loop.block.width, loop.block.height],
                "fold": {k: conv.fold for k, conv in loop.layers.items()},
                "loop_depth": loop.loop_depth,
                "loop_fifo_bits": loop.memory_bits,
            }
        }
    else:
        group = dict(dut.head_groups())[names.head_group(0)]
        where = {
            "head_group": {
                "channels": group.c_in,
                "fold": group.conv.fold,
                "loop_depth": group.loop_depth,
                "output_pixels_per_frame": int(np.prod(net.output_size())),
            }
        }
    return {
        "what": args.what,
        "preset": args.preset,
        "network": net.name,
        "fold": args.fold,
        "input_period": args.input_period,
        "frame": [net.width, net.height],
        **where,
        "frames": args.frames,
        "records": records,
    }


def table(result) -> str:
    rows = [
        f"{'N':>2} {'cycles/frame':>13} {'vs N=1':>7} {'paper fps':>10} {'paper vs N=1':>13}",
    ]
    for r in result["records"]:
        fps = PAPER_FPS.get(r["repeats"])
        paper = f"{r['paper_frame_time_vs_one_pass']:.2f}" if fps else "-"
        rows.append(
            f"{r['repeats']:>2} {r['cycles_per_frame']:>13.1f} "
            f"{r['frame_time_vs_one_pass']:>7.3f} {fps or '-':>10} {paper:>13}"
        )
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--what",
        default="head",
        choices=["head", "block"],
        help="repeat a head group (default) or the trainable cores' last block",
    )
    p.add_argument("--preset", default="small", choices=sorted(PRESETS))
    p.add_argument("--fold", default="rate", choices=["rate", "spatial"])
    p.add_argument("--max", type=int, default=HEAD_MAX_REPEATS, help="passes built (default 8)")
    p.add_argument("--frames", type=int, default=3, help="frames back to back (default 3)")
    p.add_argument(
        "--input-period",
        type=int,
        default=1,
        help="clocks between input pixels, as the build's --fps gives (default 1): the "
        "build folds to it; the input is still offered every clock, so the frame time is "
        "what the folded design takes (period x pixels while nothing else limits it)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    if args.frames < 2 or not 1 <= args.max <= HEAD_MAX_REPEATS:
        p.error(f"--frames must be 2 or more and --max in 1..{HEAD_MAX_REPEATS}")
    result = measure(args, lambda s: print(s, file=sys.stderr, flush=True))
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
