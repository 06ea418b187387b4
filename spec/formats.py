"""Number formats (``docs/numerics.md`` §2): one place for every width and range.

The golden model and the hardware implement the arithmetic separately; both take the formats
from here, as do the weight files, the quantizer and the parameter bus.
"""

__all__ = [
    "signed_range",
    "INT8_MIN",
    "INT8_MAX",
    "WEIGHT_BITS",
    "SCALE_BITS",
    "BIAS_BITS",
    "SHIFT_MAX",
    "ALPHA_ONE",
    "ALPHA_BITS",
    "PARAM_VALUE_BITS",
    "PWL_SLOPE_BITS",
    "PWL_INTERCEPT_BITS",
    "PWL_SEGMENTS",
    "PWL_SHIFT_DEFAULT",
    "POOL_MULT_BITS",
    "RANGES",
    "pool_constants",
    "param_address_bits",
    "param_word",
]


def signed_range(bits: int) -> tuple[int, int]:
    """The least and greatest value of a ``bits``-bit two's complement number."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


#: Feature maps and weights: int8, zero point 0.
WEIGHT_BITS = 8
INT8_MIN, INT8_MAX = signed_range(WEIGHT_BITS)
#: Requantizer scale and bias (per output channel, run-time), and shift (per layer, build time).
SCALE_BITS, BIAS_BITS, SHIFT_MAX = 16, 32, 62
#: Alpha-blend codes: unsigned, ``ALPHA_ONE`` means alpha = 1.
ALPHA_ONE, ALPHA_BITS = 128, 8
#: A value on the run-time parameter bus: wide enough for a bias.
PARAM_VALUE_BITS = BIAS_BITS

#: Piecewise-linear activation (the head, ``docs/numerics.md`` §7): per segment a signed
#: slope and intercept, run-time; the default segment count of a table.
PWL_SLOPE_BITS, PWL_INTERCEPT_BITS, PWL_SEGMENTS = 16, 32, 8
#: The activation's shift where nothing else sets it (quantized heads, a zero power-up):
#: the identity and ReLU tables are exact at any shift up to 14.
PWL_SHIFT_DEFAULT = 8
#: Global average pooling (§6): the divider's multiplier has at least this many significant
#: bits.
POOL_MULT_BITS = 16

#: Inclusive range of each integer parameter, by field name.
RANGES = {
    "weight": (INT8_MIN, INT8_MAX),
    "scale": signed_range(SCALE_BITS),
    "bias": signed_range(BIAS_BITS),
    "shift": (0, SHIFT_MAX),
    "alpha": (0, ALPHA_ONE),
    "pwl_breakpoint": (INT8_MIN, INT8_MAX),
    "pwl_slope": signed_range(PWL_SLOPE_BITS),
    "pwl_intercept": signed_range(PWL_INTERCEPT_BITS),
    "pwl_shift": (0, SHIFT_MAX),
    "pool": (0, 1),
}


def pool_constants(pixels: int) -> tuple[int, int]:
    """``(mult, shift)`` of a global average pool over ``pixels`` pixels (§6): the smallest
    ``shift`` for which ``mult = round(2**shift / pixels)`` (half up) has at least
    :data:`POOL_MULT_BITS` significant bits, so ``mult / 2**shift`` is ``1 / pixels`` to
    within a relative ``2**-15``. One pixel gives ``(2**15, 15)``: the identity."""
    if not isinstance(pixels, int) or pixels < 1:
        raise ValueError(f"pixels must be a positive integer, not {pixels!r}")
    shift = 0
    while True:
        mult = ((1 << (shift + 1)) + pixels) // (2 * pixels)
        if mult >= 1 << (POOL_MULT_BITS - 1):
            return mult, shift
        shift += 1


def param_address_bits(addresses: int) -> int:
    """Width of the ``addr`` field of a parameter bus over ``addresses`` addresses (at least
    one bit)."""
    return max(1, (addresses - 1).bit_length())


def param_word(addr: int, value: int, addresses: int) -> int:
    """One parameter-bus write as a bit pattern: ``addr`` in the low
    :func:`param_address_bits` bits, then ``value`` as :data:`PARAM_VALUE_BITS`-bit two's
    complement (the bus's ``{addr, value}`` layout)."""
    return addr | (value & ((1 << PARAM_VALUE_BITS) - 1)) << param_address_bits(addresses)
