"""Regenerate the shipped example weight files (deterministic).

``frozen_pointwise.npz``: two frozen pointwise (1x1) layers of the ``small`` preset's first
stage, 32->32 and 32->16 channels, format ``semifreddo-frozen`` v1. The weights are not
uniform random: like a trained, per-channel-quantized layer they are Gaussian per output
channel with a few large weights per row (a heavy-tailed Student-t draw), scaled so each
row's largest magnitude is 127, and about 25 % of them pruned to zero.

    python -m weights.examples.make_examples
"""

from pathlib import Path

import numpy as np

from weights.synthetic import trained_like_int8


def main():
    rng = np.random.default_rng(2020)
    out = Path(__file__).with_name("frozen_pointwise.npz")
    np.savez(out, format=np.array("semifreddo-frozen"), version=np.array(1),
             **{"stage1_pw.weight": trained_like_int8(rng, 32, 32).astype(np.int8),
                "stage1_proj.weight": trained_like_int8(rng, 16, 32).astype(np.int8)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
