"""Regenerate the shipped example weight files (deterministic).

``frozen_pointwise.npz``: two frozen pointwise (1x1) layers of the ``small`` preset's first
stage, 32->32 and 32->16 channels, format ``semifreddo-frozen`` v1. The weights are not
uniform random: like a trained, per-channel-quantized layer they are Gaussian per output
channel with a few large weights per row (a heavy-tailed Student-t draw), scaled so each
row's largest magnitude is 127, and about 25 % of them pruned to zero.

    python weights/examples/make_examples.py
"""

from pathlib import Path

import numpy as np


def trained_like(rng, n_out, n_in, pruned=0.25):
    w = rng.standard_t(df=5, size=(n_out, n_in))
    q = np.round(w / (np.abs(w).max(axis=1, keepdims=True) / 127))
    q[np.abs(w) < np.quantile(np.abs(w), pruned)] = 0  # magnitude pruning
    return q.astype(np.int8)


def main():
    rng = np.random.default_rng(2020)
    out = Path(__file__).with_name("frozen_pointwise.npz")
    np.savez(out, format=np.array("semifreddo-frozen"), version=np.array(1),
             **{"stage1_pw.weight": trained_like(rng, 32, 32),
                "stage1_proj.weight": trained_like(rng, 16, 32)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
