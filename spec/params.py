"""The integer parameters of a network (``docs/numerics.md`` §3-5) and their checks.

A parameter set is a dict: each convolution's name maps to a :class:`ConvParams`, each
blend's name to its alpha codes (one per channel), each head group's name to a
:class:`HeadGroupParams`; with repeated trainable blocks, each later pass's layer
(:func:`spec.names.block_pass`) to a :class:`ConvParams` (its shift that of pass 0) and each
block's pass count (:func:`spec.names.block_repeat`) to an integer; optionally
:data:`spec.names.INPUT_PAD` to the int8 value per input channel that the stems pad the
frame with (a build-time constant; zeros when absent).
"""

import dataclasses

import numpy as np

from . import names
from .formats import INT8_MAX, INT8_MIN, PWL_SLOPE_BITS, RANGES, SHIFT_MAX
from .network import BlendSpec, HeadGroupSpec, Network, check_keys

__all__ = [
    "ConvParams",
    "HeadGroupParams",
    "HeadPassParams",
    "PASS_FIELDS",
    "check_params",
    "head_passes",
    "block_passes",
    "repeat_counts",
    "pwl_identity",
    "pwl_relu",
    "pwl_spaced",
]


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
    ``source`` (which of the group's sources it reads); ``repeat``, the passes a frame takes
    through a repeated group (1 .. its spec's ``repeats``; passes after the first take their
    weights, scales, biases and table from :class:`HeadPassParams`)."""

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
    repeat: int = 1

    def quant(self) -> dict:
        """The requantizer as the hardware blocks and golden twins take it."""
        return {"scale": self.scale, "bias": self.bias, "shift": self.shift}

    def table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The activation's ``(breakpoints, slopes, intercepts)``."""
        return self.breakpoints, self.slopes, self.intercepts


#: A repeated head group's entries of each later pass (weight files, address map), in
#: :class:`HeadPassParams` order.
PASS_FIELDS = ("weight", "scale", "bias", "pwl_breakpoint", "pwl_slope", "pwl_intercept")


@dataclasses.dataclass(frozen=True, eq=False)
class HeadPassParams:
    """A repeated head group's parameters for one pass after the first
    (:func:`spec.names.head_pass`): the fields of :class:`HeadGroupParams` that each pass
    has of its own (the shifts, switches and repeat count are the group's)."""

    weight: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    breakpoints: np.ndarray
    slopes: np.ndarray
    intercepts: np.ndarray

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


def _check_shift(name, v):
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= SHIFT_MAX:
        raise ValueError(f"{name}: an integer in 0..{SHIFT_MAX} expected, not {v!r}")


def _check_head_group(name, spec: HeadGroupSpec, p, kind=None) -> None:
    """Group ``name``'s parameters (``kind`` :class:`HeadPassParams`: a later pass's)."""
    kind = kind or HeadGroupParams
    if not isinstance(p, kind):
        raise ValueError(f"{name}: {kind.__name__} expected, not {type(p).__name__}")
    _check_array(f"{name}.weight", p.weight, (spec.c_out, spec.c_in), *RANGES["weight"])
    for field in ("scale", "bias"):
        _check_array(f"{name}.{field}", getattr(p, field), (spec.c_out,), *RANGES[field])
    k = spec.segments
    for field, attr, n in (
        ("pwl_breakpoint", "breakpoints", k - 1),
        ("pwl_slope", "slopes", k),
        ("pwl_intercept", "intercepts", k),
    ):
        _check_array(f"{name}.{field}", getattr(p, attr), (n,), *RANGES[field])
    if np.any(np.diff(np.asarray(p.breakpoints)) <= 0):
        raise ValueError(f"{name}.pwl_breakpoint: breakpoints must increase strictly")
    if kind is HeadPassParams:
        return
    _check_shift(f"{name}.shift", p.shift)
    _check_shift(f"{name}.pwl_shift", p.pwl_shift)
    for field, lo, top in (
        ("pool", 0, 1),
        ("source", 0, len(spec.sources) - 1),
        ("repeat", 1, spec.repeats),
    ):
        v = getattr(p, field)
        if not isinstance(v, int | np.integer) or isinstance(v, bool) or not lo <= v <= top:
            raise ValueError(f"{name}.{field}: an integer in {lo}..{top} expected, not {v!r}")


def head_passes(net: Network, params: dict, k: int) -> list:
    """Group ``k``'s parameters per pass, first to its spec's last (``params`` checked):
    its :class:`HeadGroupParams`, then a :class:`HeadPassParams` per later pass."""
    return [params[names.head_group(k)]] + [
        params[names.head_pass(k, j)] for j in range(1, net.head[k].repeats)
    ]


def block_passes(net: Network, params: dict, core: str) -> tuple[int, list[dict]]:
    """Trainable core ``core``'s repeated block (``params`` checked): its run-time pass
    count and, per pass from the first, ``{layer: ConvParams}``."""
    where = net.repeated_block()
    return repeat_counts(net, params)[core], [
        {layer: params[_pass_layer(core, where, p, layer)] for layer in names.REGULAR_LAYERS}
        for p in range(net.trainable_repeats)
    ]


def repeat_counts(net: Network, params: dict) -> dict[str, int]:
    """Each trainable core's run-time pass count of its repeated block (``{}`` without)."""
    where = net.repeated_block()
    if where is None:
        return {}
    return {c: int(params[names.block_repeat(c, *where)]) for c in net.cores if c != "frozen"}


def _pass_layer(core, where, p, layer) -> str:
    """The name of pass ``p``'s ``layer`` of ``core``'s repeated block at ``where``."""
    return names.conv(core, *where, layer) if p == 0 else names.block_pass(core, *where, p, layer)


def check_params(net: Network, params: dict) -> None:
    """Raise ``ValueError`` naming the first entry of ``params`` that does not fit ``net``:
    a missing or extra name, a wrong type, shape or dtype, a value out of range."""
    wanted = (
        {c.name: c for c in net.convs()}
        | {b.name: b for b in net.blends()}
        | {names.head_group(k): g for k, g in enumerate(net.head)}
        | {
            names.head_pass(k, j): (g, HeadPassParams)
            for k, g in enumerate(net.head)
            for j in range(1, g.repeats)
        }
        | {c.name: c for c in net.pass_convs()}
        | {name: "repeat" for name in net.repeat_counts()}
    )
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
        if isinstance(spec, HeadGroupSpec):
            _check_head_group(name, spec, p)
            continue
        if isinstance(spec, tuple):  # a repeated group's later pass
            _check_head_group(name, spec[0], p, spec[1])
            continue
        if spec == "repeat":  # a repeated block's pass count
            top = net.trainable_repeats
            if not isinstance(p, int | np.integer) or isinstance(p, bool) or not 1 <= p <= top:
                raise ValueError(f"{name}: an integer in 1..{top} expected, not {p!r}")
            continue
        if not isinstance(p, ConvParams):
            raise ValueError(f"{name}: ConvParams expected, not {type(p).__name__}")
        _check_array(f"{name}.weight", p.weight, spec.weight_shape, *RANGES["weight"])
        for field in ("scale", "bias"):
            _check_array(f"{name}.{field}", getattr(p, field), (spec.c_out,), *RANGES[field])
        _check_shift(f"{name}.shift", p.shift)
    where = net.repeated_block()
    for core in net.cores if where else ():  # a requantizer's shift is built in: one a layer
        for p in range(1, net.trainable_repeats) if core != "frozen" else ():
            for layer in names.REGULAR_LAYERS:
                first, name = (_pass_layer(core, where, q, layer) for q in (0, p))
                if params[name].shift != params[first].shift:
                    raise ValueError(
                        f"{name}.shift: {params[name].shift}, but every pass shares its "
                        f"layer's built-in shift ({first}: {params[first].shift})"
                    )


def pwl_identity(segments: int, shift: int) -> tuple[list, list, list]:
    """``(breakpoints, slopes, intercepts)`` of ``y = x`` with ``segments`` segments at
    ``shift`` (slopes ``2**shift``: ``shift`` at most 14)."""
    if not 0 <= shift <= PWL_SLOPE_BITS - 2:
        raise ValueError(f"the identity needs a shift in 0..{PWL_SLOPE_BITS - 2}, not {shift}")
    return pwl_spaced(segments), [1 << shift] * segments, [0] * segments


def pwl_relu(segments: int, shift: int) -> tuple[list, list, list]:
    """The table of ``y = max(x, 0)``: slope 0 in the segments below the breakpoint at 0,
    ``2**shift`` from it on."""
    bp, slopes, icepts = pwl_identity(segments, shift)
    zero = bp.index(0)  # segments 0 .. zero hold the negative inputs
    return bp, [0 if k <= zero else s for k, s in enumerate(slopes)], icepts


def pwl_spaced(segments: int) -> list[int]:
    """``segments - 1`` strictly increasing int8 breakpoints spread over the int8 range,
    one of them 0."""
    if not isinstance(segments, int) or not 2 <= segments <= 256:
        raise ValueError(f"segments must be an integer in 2..256, not {segments!r}")
    below = (segments - 1) // 2
    step = 256 // segments
    return [max(INT8_MIN + 1, min(INT8_MAX, j * step)) for j in range(-below, segments - below - 1)]
