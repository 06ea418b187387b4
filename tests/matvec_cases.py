# amaranth: UnusedElaboratable=no
"""Frozen matrix-vector blocks shared by the tests of the Verilog text backend (the formal
proofs against Amaranth's conversion, the lint): extremes, zero rows and columns, side
bits, both solvers, one to three adder levels per stage."""

import zlib

import numpy as np

from semifreddo_hw.matvec import FrozenMatVec
from weights.synthetic import gaussian_int8


def _extremes(rng, n_out, n_in):
    w = rng.choice([-128, 127, -127, 0], size=(n_out, n_in))
    w[rng.integers(n_out)] = 0
    w[:, rng.integers(n_in)] = 0
    return w


# name: (weights maker, solver, adder levels per register stage, side-band bits)
FROZEN = {
    "1x1": (lambda r: np.array([[-128]]), "da4ml", 2, 0),
    "5x3_extremes": (lambda r: _extremes(r, 5, 3), "da4ml", 2, 1),
    "8x6_random": (lambda r: gaussian_int8(r, 8, 6), "da4ml", 1, 0),
    "7x5_csd": (lambda r: gaussian_int8(r, 7, 5, 0.3), "csd", 1, 2),
    "6x9_deep": (lambda r: gaussian_int8(r, 6, 9, 0.2), "da4ml", 3, 0),
    "4x4_all_zero": (lambda r: np.zeros((4, 4), int), "da4ml", 2, 0),
}


def frozen(name: str, cases=FROZEN) -> FrozenMatVec:
    """The block of case ``name`` of ``cases`` (a table like :data:`FROZEN`), its weights
    drawn from a generator seeded by the name."""
    make, solver, levels, side = cases[name]
    w = make(np.random.default_rng(zlib.crc32(name.encode())))
    return FrozenMatVec(w, solver=solver, levels_per_stage=levels, side_width=side)
