"""Seconds per frame of the golden model (``sim.golden``) on the ``paper`` preset: one VGA
frame (640x480x3) through all cores with synthetic parameters (``random_params``, seed 0),
on one core (BLAS limited to one thread), timed side by side with the straightforward int64
code the golden model had before it computed in floats (kept below as the reference), on the
same frame in the same run; the two must agree bit for bit.

    python bench/golden.py --json bench/golden.json

Runs alternate (reference, golden, reference, golden, ..., then the remaining golden runs)
so that both see the same machine load; the table gives the best and the median of each,
wall-clock and CPU seconds.
"""

import os

# One core: numpy's BLAS reads these when it loads, so before the first numpy import.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim.golden.backbone import backbone  # noqa: E402
from sim.golden.primitives import pixels_to_int8  # noqa: E402
from spec.dataflow import forward  # noqa: E402
from spec.formats import ALPHA_ONE, INT8_MAX, INT8_MIN  # noqa: E402
from spec.network import preset  # noqa: E402
from weights.synthetic import random_params  # noqa: E402

# The reference: sim/golden as it was before (commit 9b955f7), its int64 arithmetic and its
# range checks copied unchanged (the type checks left out): one int64 matrix product per 3x3
# tap (numpy's own loops, no BLAS), the depthwise layer as a dense (C, C, 3, 3) convolution,
# and a fresh array for every step of the requantizer. Both paths walk today's
# spec.dataflow.forward, whose block join became one pass in the same change (about 0.1 s
# of the old frame's 8.5 s, not counted in the reference).


def _ref_padded(frame):
    f = np.asarray(frame, dtype=np.int64)
    h, w, c = f.shape
    p = np.zeros((h + 2, w + 2, c), dtype=np.int64)
    p[1:-1, 1:-1] = f
    return p, h, w


def _ref_conv3x3(frame, weights, stride=1):
    p, h, w = _ref_padded(frame)
    wt = np.asarray(weights, dtype=np.int64)
    ho, wo = -(-h // stride), -(-w // stride)
    acc = np.zeros((ho, wo, wt.shape[0]), dtype=np.int64)
    for ky in range(3):
        for kx in range(3):
            patch = p[
                ky : ky + stride * (ho - 1) + 1 : stride, kx : kx + stride * (wo - 1) + 1 : stride
            ]
            acc += patch @ wt[:, :, ky, kx].T
    return acc


def _ref_depthwise3x3(frame, kernels, stride=1):
    k = np.asarray(kernels, dtype=np.int64)
    c = k.shape[0]
    full = np.zeros((c, c, 3, 3), dtype=np.int64)
    full[np.arange(c), np.arange(c)] = k
    return _ref_conv3x3(frame, full, stride)


def _ref_pointwise(frame, weights):
    return np.asarray(frame, dtype=np.int64) @ np.asarray(weights, dtype=np.int64).T


def _ref_round_shift(t, shift):
    return t if shift == 0 else (t + (1 << (shift - 1))) >> shift


def _mag(a):
    return max((abs(int(v)) for v in (a.min(initial=0), a.max(initial=0))), default=0)


def _ref_requantize(acc, scale, bias, shift, relu=False):
    acc, scale, bias = (np.asarray(a).astype(np.int64) for a in (acc, scale, bias))
    if _mag(acc) * _mag(scale) + _mag(bias) + ((1 << shift) >> 1) >= 1 << 63:
        raise OverflowError("requantize intermediates exceed int64")
    t = _ref_round_shift(acc * scale + bias, shift)
    return np.clip(t, 0 if relu else INT8_MIN, INT8_MAX)


def _ref_alpha_blend(code, x_frozen, x_trainable):
    a = np.asarray(code).astype(np.int64)
    xf, xt = (np.asarray(x).astype(np.int64) for x in (x_frozen, x_trainable))
    for x in (xf, xt):
        if x.size and (x.min() < INT8_MIN or x.max() > INT8_MAX):
            raise ValueError("blend inputs must lie in int8")
    return _ref_round_shift(a * xf + (ALPHA_ONE - a) * xt, 7)


def reference(net, params, frame):
    """:func:`sim.golden.backbone.backbone` with the reference arithmetic above."""
    specs = {c.name: c for c in net.convs()}

    def conv(name, x):
        spec, p = specs[name], params[name]
        acc = {
            "full": lambda: _ref_conv3x3(x, p.weight, spec.stride),
            "depthwise": lambda: _ref_depthwise3x3(x, p.weight, spec.stride),
            "pointwise": lambda: _ref_pointwise(x, p.weight),
        }[spec.kind]()
        return _ref_requantize(acc, p.scale, p.bias, p.shift, relu=spec.relu)

    def blend(name, xf, xt):
        return _ref_alpha_blend(params[name], xf, xt)

    return forward(net, np.asarray(frame, dtype=np.int64), conv, blend)


def _timed(func):
    wall, cpu = time.perf_counter(), time.process_time()
    out = func()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _summary(wall, cpu):
    return {
        "runs": len(wall),
        "wall_seconds": [round(t, 4) for t in wall],
        "cpu_seconds": [round(t, 4) for t in cpu],
        "best_wall_seconds": round(min(wall), 4),
        "median_wall_seconds": round(statistics.median(wall), 4),
        "best_cpu_seconds": round(min(cpu), 4),
        "median_cpu_seconds": round(statistics.median(cpu), 4),
    }


def run(preset_name, seed, runs, reference_runs, log=print):
    net = preset(preset_name)
    rng = np.random.default_rng(seed)
    params = random_params(net, rng)
    pixels = rng.integers(0, 256, size=(net.height, net.width, net.channels_in))
    frame = pixels_to_int8(pixels)
    times = {"reference": ([], []), "golden": ([], [])}
    load = [round(v, 2) for v in os.getloadavg()]
    identical = True
    for i in range(max(runs, reference_runs)):
        if i < reference_runs:
            want, wall, cpu = _timed(lambda: reference(net, params, frame))
            times["reference"][0].append(wall)
            times["reference"][1].append(cpu)
            log(f"  reference run {i + 1}: {wall:.3f} s wall, {cpu:.3f} s CPU")
        if i < runs:
            got, wall, cpu = _timed(lambda: backbone(net, params, frame))
            times["golden"][0].append(wall)
            times["golden"][1].append(cpu)
            log(f"  golden    run {i + 1}: {wall:.3f} s wall, {cpu:.3f} s CPU")
            identical &= set(got) == set(want) and all(
                got[k].dtype == np.int64 and np.array_equal(got[k], want[k]) for k in want
            )
    ref, new = _summary(*times["reference"]), _summary(*times["golden"])
    return {
        "preset": preset_name,
        "frame": f"{net.width}x{net.height}x{net.channels_in}",
        "cores": list(net.cores),
        "outputs": {k: list(v.shape) for k, v in got.items()},
        "seed": seed,
        "blas_threads": 1,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        # Other processes' load, 1/5/15-minute averages, before and after: wall-clock seconds
        # grow with it, CPU seconds much less.
        "load_average_before": load,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "reference": ref,
        "golden": new,
        "speedup_best_wall": round(ref["best_wall_seconds"] / new["best_wall_seconds"], 2),
        "speedup_best_cpu": round(ref["best_cpu_seconds"] / new["best_cpu_seconds"], 2),
        "golden_frames_per_second_best_wall": round(1 / new["best_wall_seconds"], 2),
        "bit_identical": bool(identical),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="FILE", help="write the record here")
    p.add_argument("--preset", default="paper", help="network preset (default paper)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=int, default=7, help="golden-model runs (default 7)")
    p.add_argument("--reference-runs", type=int, default=3, help="reference runs (default 3: slow)")
    args = p.parse_args(argv)
    if args.runs < 1 or args.reference_runs < 1:
        p.error("--runs and --reference-runs must be at least 1")
    rec = run(args.preset, args.seed, args.runs, args.reference_runs)
    print(f"{rec['preset']} {rec['frame']}, cores {', '.join(rec['cores'])}, one BLAS thread")
    print(f"{'':<10} {'runs':>5} {'best wall s':>12} {'median wall s':>14} {'best CPU s':>11}")
    for name in ("reference", "golden"):
        r = rec[name]
        print(
            f"{name:<10} {r['runs']:>5} {r['best_wall_seconds']:>12.3f} "
            f"{r['median_wall_seconds']:>14.3f} {r['best_cpu_seconds']:>11.3f}"
        )
    print(
        f"speedup {rec['speedup_best_wall']}x (wall), {rec['speedup_best_cpu']}x (CPU); "
        f"{rec['golden_frames_per_second_best_wall']} frames/s; "
        f"bit-identical: {rec['bit_identical']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rec, indent=2) + "\n")
    return 0 if rec["bit_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
