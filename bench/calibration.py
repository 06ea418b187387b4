"""Quantization error of float networks against the calibration choices, side by side: each
activation calibration method (max, percentile, mse), on 8 random frames (the build's old
default) and on the new default count, with the calibration frames run with the core
shuffle off (what the build did before the setting was part of the trainable file) and as
the model runs it. The first row of a model is the old default (max, 8 frames, shuffle
off); the row marked ``default`` is the new one. Every row is evaluated on the same 128
held-out frames, with the network run as the chip runs it; the numbers are each core
output's relative RMS error (integer output times its scale against the float output).

    python bench/calibration.py --json bench/calibration.json

Models: the shipped float example (``small``, core shuffle on) and a second synthetic float
network (``two_cores_shuffle`` preset, another seed, shuffle on).

A second table: an input normalisation folded into the stems of the example
(``weights/onnx_input.py``: ``p / 255``, and torchvision's ``(p / 255 - mean) / std``),
quantized by default, with the stems padding the frame as the float model does (the
``input.pad`` constants) against padding it with 0 (pixel 128), same held-out frames.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spec import names  # noqa: E402
from spec.network import preset  # noqa: E402
from weights.files import load_weights  # noqa: E402
from weights.onnx_input import InputNorm, fold_input  # noqa: E402
from weights.quantize import (  # noqa: E402
    CALIBRATIONS,
    calibration_frames,
    error_report,
    quantize,
)
from weights.synthetic import random_float_params  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OLD_FRAMES, EVAL_FRAMES = 8, 128  # the build's old default calibration: 8 random frames


def models():
    ex = ROOT / "weights" / "examples"
    w = load_weights(ex / "small_frozen.npz", ex / "small_trainable.npz")
    yield "small example", w.net, w.fparams, w.shuffle
    net = preset("two_cores_shuffle")
    fp = random_float_params(
        net, np.random.default_rng(7), calibration_frames(net, 8, seed=3), shuffle=True
    )
    yield "two_cores_shuffle (synthetic)", net, fp, True


def run() -> list[dict]:
    records = []
    for model, net, fp, shuffle in models():
        held_out = calibration_frames(net, EVAL_FRAMES, seed=1)
        combos = [
            (frames, method, calib_shuffle)
            for frames in (calibration_frames(net, OLD_FRAMES), calibration_frames(net))
            for method in CALIBRATIONS[::-1]  # max first: the old default
            for calib_shuffle in sorted({False, shuffle})
        ]
        for calib, method, calib_shuffle in combos:
            params, scales = quantize(net, fp, calib, shuffle=calib_shuffle, method=method)
            rep = error_report(net, fp, params, scales, held_out, shuffle=shuffle)
            records.append(
                {
                    "model": model,
                    "calib_frames": len(calib),
                    "method": method,
                    "calibrated_with_shuffle": calib_shuffle,
                    "runs_with_shuffle": shuffle,
                    "default": (len(calib), method, calib_shuffle)
                    == (len(calibration_frames(net)), CALIBRATIONS[0], shuffle),
                    "rel_rms": {o["output"]: o["rel_rms"] for o in rep["outputs"]},
                    "median_layer_rel_rms": float(np.median([r["rel_rms"] for r in rep["layers"]])),
                }
            )
    return records


#: Input normalisations as the stem reads them: s = scale * x + offset, x = (p - 128) / 128.
_MEAN, _STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
NORMS = {
    "p / 255": (np.full(3, 128 / 255), np.full(3, 128 / 255)),
    "(p / 255 - mean) / std": (128 / 255 / _STD, (128 / 255 - _MEAN) / _STD),
}


def run_padding() -> list[dict]:
    ex = ROOT / "weights" / "examples"
    w = load_weights(ex / "small_frozen.npz", ex / "small_trainable.npz")
    net, held_out = w.net, calibration_frames(w.net, EVAL_FRAMES, seed=1)
    records = []
    for label, (scale, offset) in NORMS.items():
        norm = InputNorm(scale, offset, (label,))
        fp = dict(w.fparams) | {names.INPUT_PAD: norm.pad}
        for core in net.cores:
            fp[names.stem(core)] = fold_input(fp[names.stem(core)], norm)
        params, scales = quantize(net, fp, calibration_frames(net), shuffle=w.shuffle)
        for padded in (True, False):
            p = params if padded else {k: v for k, v in params.items() if k != names.INPUT_PAD}
            rep = error_report(net, fp, p, scales, held_out, shuffle=w.shuffle)
            records.append(
                {
                    "normalisation": label,
                    "pad": params[names.INPUT_PAD].tolist() if padded else [0] * 3,
                    "stem_rel_rms": {
                        r["layer"]: r["rel_rms"]
                        for r in rep["layers"]
                        if r["layer"].endswith("stem")
                    },
                    "rel_rms": {o["output"]: o["rel_rms"] for o in rep["outputs"]},
                }
            )
    return records


def print_padding(records) -> None:
    print(
        f"\n{'normalisation':<24} {'stem padding':<16} {'worst stem':>11}"
        + "".join(f"{'output ' + o:>14}" for o in records[0]["rel_rms"])
    )
    for r in records:
        print(
            f"{r['normalisation']:<24} {str(r['pad']):<16} {max(r['stem_rel_rms'].values()):>11.4f}"
            + "".join(f"{v:>14.4f}" for v in r["rel_rms"].values())
        )


def print_table(records) -> None:
    outs = sorted({k for r in records for k in r["rel_rms"]}, key="frozen ab".find)
    print(
        f"{'model':<30} {'frames':>6} {'method':<11} {'calib shuffle':<14}"
        + "".join(f"{'rel RMS ' + o:>16}" for o in outs)
        + f"{'median layer':>14}"
    )
    for r in records:
        print(
            f"{r['model']:<30} {r['calib_frames']:>6} {r['method']:<11} "
            f"{'on' if r['calibrated_with_shuffle'] else 'off':<14}"
            + "".join(f"{r['rel_rms'].get(o, float('nan')):>16.4f}" for o in outs)
            + f"{r['median_layer_rel_rms']:>14.4f}"
            + ("  default" if r["default"] else "")
        )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    records = run()
    print_table(records)
    padding = run_padding()
    print_padding(padding)
    if args.json:
        out = {"calibration": records, "input_padding": padding}
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
