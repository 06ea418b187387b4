"""Regenerate the shipped example weight files (deterministic: byte-identical on rerun).

    python -m weights.examples.make_examples

None of them is uniform random noise; all have the statistics of trained layers:

* ``small_frozen.npz`` + ``small_trainable.npz``: the ``small`` preset (32x24x3, channels
  / 8) in **float** form, as a training framework exports it: heavy-tailed (Student-t)
  conv weights with the smallest quarter pruned to zero, batch norms whose mean and variance
  are the statistics of their own inputs over calibration frames, gamma in [0.5, 1.5],
  small betas, blend logits around 0, trained and run with the core shuffle on. The build
  quantizes them and reports the error.
* ``paper_frozen.npz`` + ``paper_trainable.npz``: the ``paper`` preset (640x480x3, Table 1)
  in **int8** form, already quantized: per-channel int8 weights of the same kind, and
  per-channel scales calibrated so activations stay int8-sized through the ReLUs.
* ``frozen_pointwise.npz``: two frozen pointwise layers (32->32, 32->16), format version 1
  (the first, pointwise-only build flow).
"""

from pathlib import Path

import numpy as np

from spec.network import preset
from weights.files import save_frozen, save_trainable
from weights.io import save_npz
from weights.quantize import calibration_frames
from weights.synthetic import random_float_params, random_params, trained_like_int8

HERE = Path(__file__).resolve().parent


def main(out: Path = HERE):
    """Write the examples into ``out``."""
    net = preset("small")
    fp = random_float_params(
        net, np.random.default_rng(2020), calibration_frames(net, 8), shuffle=True
    )
    save_frozen(out / "small_frozen.npz", net, fp)
    save_trainable(out / "small_trainable.npz", net, fp, shuffle=True)
    net = preset("paper")
    params = random_params(net, np.random.default_rng(2020))
    save_frozen(out / "paper_frozen.npz", net, params)
    save_trainable(out / "paper_trainable.npz", net, params, shuffle=True)
    rng = np.random.default_rng(2020)
    save_npz(
        out / "frozen_pointwise.npz",
        {
            "format": np.array("semifreddo-frozen"),
            "version": np.array(1),
            "stage1_pw.weight": trained_like_int8(rng, 32, 32).astype(np.int8),
            "stage1_proj.weight": trained_like_int8(rng, 16, 32).astype(np.int8),
        },
    )
    print(f"wrote the examples in {out}")


if __name__ == "__main__":
    main()
