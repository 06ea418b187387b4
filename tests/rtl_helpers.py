"""Shared helpers for RTL tests: stimulus with extremes, parameter writes."""

import numpy as np

from sim.rtl import struct_word


def int8_stimulus(rng, beats, lanes):
    """Random int8 vectors, with all--128, all-127, alternating and one-hot beats mixed in."""
    x = rng.integers(-128, 128, size=(beats, lanes))
    specials = [
        np.full(lanes, -128),
        np.full(lanes, 127),
        np.where(np.arange(lanes) % 2, 127, -128),
        np.zeros(lanes, int),
    ]
    onehot = np.zeros(lanes, int)
    onehot[rng.integers(lanes)] = -128
    specials.append(onehot)
    for k, s in enumerate(specials):
        x[(k * 7) % beats] = s
    return x


def writes_for(dut, port, values, *, set_=0):
    """Always-ready parameter writes loading ``values`` (flat) into ``dut.<port>``."""
    layout = dut.signature.members[port].signature.members["payload"].shape
    return [
        (port, struct_word(layout, set=set_, index=k, value=int(v)))
        for k, v in enumerate(np.asarray(values).ravel())
    ]
