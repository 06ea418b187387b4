"""The integer parameters of a network (``docs/numerics.md`` §3-5) and their checks.

A parameter set is a dict: each convolution's name maps to a :class:`ConvParams`, each
blend's name to its alpha codes (one per channel); optionally
:data:`spec.names.INPUT_PAD` to the int8 value per input channel that the stems pad the
frame with (a build-time constant; zeros when absent).
"""

import dataclasses

import numpy as np

from . import names
from .formats import RANGES, SHIFT_MAX
from .network import BlendSpec, Network, check_keys

__all__ = ["ConvParams", "HeadGroupParams", "check_params"]


@dataclasses.dataclass(frozen=True, eq=False)
class ConvParams:
    """Integer parameters of one convolution: int8 ``weight`` (shaped as
    :attr:`spec.network.ConvSpec.weight_shape`), per-output-channel ``scale`` and ``bias``
    (run-time values, also in the frozen core), and the build-time ``shift``."""

    weight: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    shift: int

    def quant(self) -> dict:
        """The requantizer as the hardware blocks and golden twins take it."""
        return {"scale": self.scale, "bias": self.bias, "shift": self.shift}


@dataclasses.dataclass(frozen=True, eq=False)
class HeadGroupParams:
    """Integer parameters of one head group (``docs/numerics.md`` §4, §6, §7): the pointwise
    convolution's int8 ``weight`` ``(c_out, c_in)``, ``scale``, ``bias`` and build-time
    ``shift`` (its requantizer, no ReLU); the activation's table (``breakpoints``, strictly
    increasing int8, one fewer than the ``slopes`` and ``intercepts``) and build-time
    ``pwl_shift``; the run-time switches ``pool`` (0/1: one averaged vector per frame) and
    ``source`` (which of the group's sources it reads)."""

    weight: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    shift: int
    breakpoints: np.ndarray
    slopes: np.ndarray
    intercepts: np.ndarray
    pwl_shift: int
    pool: int = 0
    source: int = 0

    def quant(self) -> dict:
        """The requantizer as the hardware blocks and golden twins take it."""
        return {"scale": self.scale, "bias": self.bias, "shift": self.shift}

    def table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The activation's ``(breakpoints, slopes, intercepts)``."""
        return self.breakpoints, self.slopes, self.intercepts


def _check_array(name, value, shape, lo, hi):
    a = np.asarray(value)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name}: integers expected, not {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name}: shape {a.shape}, expected {shape}")
    if a.size and (a.min() < lo or a.max() > hi):
        raise ValueError(f"{name}: values must lie in [{lo}, {hi}], found [{a.min()}, {a.max()}]")


def check_params(net: Network, params: dict) -> None:
    """Raise ``ValueError`` naming the first entry of ``params`` that does not fit ``net``:
    a missing or extra name, a wrong type, shape or dtype, a value out of range."""
    wanted = {c.name: c for c in net.convs()} | {b.name: b for b in net.blends()}
    if names.INPUT_PAD in params:
        _check_array(names.INPUT_PAD, params[names.INPUT_PAD], (net.channels_in,), -128, 127)
    check_keys(
        {k: v for k, v in params.items() if k != names.INPUT_PAD},
        wanted,
        unknown=lambda name: f"{name}: no such layer in network {net.name!r}",
        missing=lambda name: f"{name}: missing",
    )
    for name, spec in wanted.items():
        p = params[name]
        if isinstance(spec, BlendSpec):
            _check_array(name, p, (spec.channels,), *RANGES["alpha"])
            continue
        if not isinstance(p, ConvParams):
            raise ValueError(f"{name}: ConvParams expected, not {type(p).__name__}")
        _check_array(f"{name}.weight", p.weight, spec.weight_shape, *RANGES["weight"])
        for field in ("scale", "bias"):
            _check_array(f"{name}.{field}", getattr(p, field), (spec.c_out,), *RANGES[field])
        if not isinstance(p.shift, int) or not 0 <= p.shift <= SHIFT_MAX:
            raise ValueError(
                f"{name}.shift: an integer in 0..{SHIFT_MAX} expected, not {p.shift!r}"
            )
