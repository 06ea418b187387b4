"""Float weights to the integer parameters the hardware runs (``docs/numerics.md``), with the
float model they approximate and a per-layer error report.

A float network (:mod:`weights.floatnet`: conv weights, batch-norm statistics, blend
logits, as a training framework exports them) is quantized as follows
(``docs/weights-format.md`` has the rationale):

* the image enters as ``x = (p - 128) / 128`` (``p`` the uint8 pixel): activation scale
  exactly 1/128, the int8 stream value ``p - 128`` (numerics §2);
* conv weights: symmetric int8 per output channel, ``s_w[c] = max |w[c]| / 127``;
* activations: one scale per tensor over calibration frames, run as the chip will run them
  (the core shuffle on or off); ``c / 127`` with the clipping level ``c`` chosen by the
  calibration method (:data:`CALIBRATIONS`: ``max |y|``, a percentile of ``|y|``, or the
  level of least mean squared int8 error); tensors the hardware joins without arithmetic
  share one scale (a regular block's passthrough half and
  its branch, a downsampling block's two branches, the frozen and trainable features an
  alpha blend mixes, the two cores the cross-core shuffle swaps);
* batch norm folds into the requantizer: ``scale[c] / 2**shift ~ gamma'[c] s_w[c] s_x / s_y``
  and ``bias[c] / 2**shift ~ (beta[c] - mean[c] gamma'[c]) / s_y`` with
  ``gamma' = gamma / sqrt(var + eps)``; the shift is the largest (<= 62) that keeps every
  scale within int16 and every bias within int32;
* alpha codes: ``round(128 sigmoid(logit))``;
* a head group: its convolution as any (input scale: the cores' outputs', one tensor;
  output scale: calibrated on its activation's output), its activation (``identity`` or
  ``relu``) the exact table at shift :data:`PWL_SHIFT`, its pool and source as given (the
  pool averages at the same scale);
* the input padding of a folded normalisation (``x`` per channel): ``round(128 x)`` as
  int8, the pixel value the stems' windows read outside the frame.
"""

import numpy as np

from sim.golden.backbone import head, int_conv
from sim.golden.primitives import alpha_blend, alpha_code
from spec import names
from spec.dataflow import forward
from spec.formats import INT8_MAX, INT8_MIN, PWL_SHIFT_DEFAULT, RANGES, SHIFT_MAX
from spec.network import Network
from spec.params import ConvParams, HeadGroupParams, pwl_identity, pwl_relu

from .floatnet import float_forward, sigmoid
from .io import WeightFileError

__all__ = ["quantize", "calibration_frames", "error_report", "CALIBRATIONS", "clip_level"]

#: Activation calibration methods (``--calib-method``); the first is the default (it had
#: the least output error on the shipped example and a second network, ``bench/calibration.py``).
CALIBRATIONS = ("percentile", "mse", "max")
CALIB_PIXELS = 512  # output pixels the default calibration frames give, in all
PERCENTILE = 99.99  # of |y|, for ``percentile``
_MSE_CANDIDATES = 64  # clipping levels tried between max/16 and max, for ``mse``
_MSE_SAMPLES = 1 << 20  # values of a tensor the ``mse`` search looks at (an even stride)

_SCALE_MAX, _BIAS_MAX = RANGES["scale"][1], RANGES["bias"][1]
PWL_SHIFT = PWL_SHIFT_DEFAULT  # the activation tables' shift


def calibration_count(net: Network) -> int:
    """How many default calibration frames ``net`` gets (:func:`calibration_frames`)."""
    w, h = net.output_size()
    return min(128, max(8, -(-CALIB_PIXELS // (w * h))))


def calibration_frames(net: Network, count: int | None = None, seed: int = 0) -> np.ndarray:
    """``count`` uint8 pixel frames, uniformly random (deterministic): the default when no
    calibration images are given. Real images calibrate a trained network better. The
    default count gives the smallest feature maps (the outputs) :data:`CALIB_PIXELS` pixels
    in all, between 8 and 128 frames: a clipping level drawn from a few hundred values
    generalises, one from 8 frames of a 2x2 map does not (``docs/weights-format.md``)."""
    if count is None:
        count = calibration_count(net)
    rng = np.random.default_rng(seed)
    return rng.integers(
        0, 256, size=(count, net.height, net.width, net.channels_in), dtype=np.uint8
    )


def _scale_keys(net: Network) -> dict[str, tuple[str, str]]:
    """Per convolution, the keys of its input and output activation scales. ``in`` is the
    image; ``g0`` the stems' outputs; ``g<i>.<k>`` the tensor after the ``k``-th
    downsampling block of stage ``i`` in every core (the cores meet there); a depthwise
    conv's output (no ReLU, read only by its pointwise conv) has its own, and so has each
    head group's (its activation's output, which its pool keeps)."""
    keys = {names.stem(core): ("in", "g0") for core in net.cores}
    group = "g0"
    for i in range(1, len(net.stages) + 1):
        for core in net.cores:
            g, k = group, 0
            for j, blk in enumerate(net.blocks(core, i)):
                if blk.stride == 2:  # a new tensor: both branches' outputs
                    k += 1
                    out = f"g{i}.{k}"
                else:  # the branch joins the passthrough half: the same tensor
                    out = g
                layers = [names.conv(core, i, j, layer) for layer in names.block_layers(blk.stride)]
                for dw, pw in zip(layers[0::2], layers[1::2], strict=True):
                    keys[dw] = (g, dw)
                    keys[pw] = (dw, out)
                g = out
        group = g  # every core's stage ends in the same tensor (same downsamplings)
    for k in range(len(net.head)):  # a head group reads the cores' outputs, one tensor
        keys[names.head_group(k)] = (group, names.head_group(k))
    return keys


def clip_level(values: list, method: str) -> float:
    """The clipping level of a tensor (its largest float value the int8 code 127 stands for)
    from the magnitudes ``values`` (a list of arrays) it takes over the calibration frames:
    ``max``, the :data:`PERCENTILE` percentile, or ``mse``, the level whose int8 codes
    (rounded, saturated at 127) have the least mean squared error."""
    v = np.concatenate([np.ravel(a) for a in values])
    top = float(v.max(initial=0.0))
    if top <= 0 or method == "max":
        return top
    if method == "percentile":
        return float(np.percentile(v, PERCENTILE))
    if method != "mse":
        raise ValueError(f"calibration method {method!r}: expected one of {CALIBRATIONS}")
    v = v[:: max(1, v.size // _MSE_SAMPLES)]
    best, best_err = top, np.inf
    for c in top * np.geomspace(1 / 16, 1, _MSE_CANDIDATES):
        s = c / 127
        err = float(np.mean((np.minimum(np.round(v / s), 127) * s - v) ** 2))
        if err < best_err:
            best, best_err = float(c), err
    return best


def quantize(
    net: Network,
    fparams: dict,
    calib_pixels,
    *,
    shuffle: bool = False,
    method: str = CALIBRATIONS[0],
) -> tuple[dict, dict]:
    """Integer parameters for ``net`` (as :func:`spec.params.check_params` wants) from
    float ones, and the activation scale of every convolution's output (for
    :func:`error_report`). ``calib_pixels``: uint8 frames (N, H, W, C), run with the core
    shuffle ``shuffle``; ``method``: one of :data:`CALIBRATIONS`."""
    if method not in CALIBRATIONS:
        raise ValueError(f"calibration method {method!r}: expected one of {CALIBRATIONS}")
    record = {}
    with np.errstate(all="ignore"):  # overflow is reported below, by layer
        float_forward(
            net,
            fparams,
            (np.asarray(calib_pixels, float) - 128) / 128,
            shuffle=shuffle,
            record=record,
        )
    for name, y in record.items():
        if not np.isfinite(y).all():
            raise WeightFileError(
                f"{name}: the float network overflows on the calibration "
                f"frames (outputs reach inf or NaN); check its weights and "
                f"batch-norm statistics"
            )
    keys = _scale_keys(net)
    seen = {}
    for name, y in record.items():
        seen.setdefault(keys[name][1], []).append(np.abs(y))
    level = {k: clip_level(v, method) for k, v in seen.items()}
    act = {k: (v / 127 if v > 0 else 1.0) for k, v in level.items()}
    act["in"] = 1 / 128  # exact: x = p - 128 stands for (p - 128) / 128
    params = {}
    for spec in net.convs():
        s_x, s_y = act[keys[spec.name][0]], act[keys[spec.name][1]]
        params[spec.name] = ConvParams(*_requantized(spec.name, fparams[spec.name], s_x, s_y))
    for k, g in enumerate(net.head):
        name = names.head_group(k)
        p = fparams[name]
        s_x, s_y = act[keys[name][0]], act[keys[name][1]]
        table = (pwl_relu if p.activation == "relu" else pwl_identity)(g.segments, PWL_SHIFT)
        params[name] = HeadGroupParams(
            *_requantized(name, p.conv, s_x, s_y),
            *(np.asarray(v, np.int64) for v in table),
            PWL_SHIFT,
            p.pool,
            p.source,
        )
    for blend in net.blends():
        logits = np.asarray(fparams[blend.name], float)
        params[blend.name] = alpha_code(sigmoid(logits))
    if names.INPUT_PAD in fparams:  # x = (p - 128) / 128 pads as the int8 value 128 x
        pad = np.clip(np.round(128 * np.asarray(fparams[names.INPUT_PAD], float)), -128, 127)
        if pad.any():
            params[names.INPUT_PAD] = pad.astype(np.int64)
    convs = [spec.name for spec in net.convs()] + [
        names.head_group(k) for k in range(len(net.head))
    ]
    return params, {name: act[keys[name][1]] for name in convs}


def _requantized(name, p, s_x, s_y):
    """``(weight, scale, bias, shift)`` of float conv ``p`` (a :class:`FloatConv`) between
    activation scales ``s_x`` and ``s_y``: symmetric int8 weights per output channel, the
    batch norm folded into the requantizer at the largest shift that fits."""
    w = np.asarray(p.weight, float)
    rows = w.reshape(w.shape[0], -1)
    s_w = np.abs(rows).max(axis=1) / 127
    s_w = np.where(s_w > 0, s_w, 1.0)
    q = np.clip(np.round(rows / s_w[:, None]), INT8_MIN, INT8_MAX).astype(np.int64)
    q = q.reshape(w.shape)
    with np.errstate(all="ignore"):
        gain, offset = p.folded()
        mult, add = gain * s_w * s_x / s_y, offset / s_y
    if not (np.isfinite(mult).all() and np.isfinite(add).all()):
        raise WeightFileError(
            f"{name}: its folded batch norm overflows (gain or "
            f"offset not finite); check gamma, var and eps"
        )
    shift = SHIFT_MAX
    m_max, b_max = float(np.abs(mult).max()), float(np.abs(add).max())
    while shift > 0 and (m_max * 2**shift > _SCALE_MAX or b_max * 2**shift + 0.5 > _BIAS_MAX):
        shift -= 1
    scale = np.clip(np.round(mult * 2**shift), -_SCALE_MAX - 1, _SCALE_MAX)
    bias = np.clip(np.round(add * 2**shift), -_BIAS_MAX - 1, _BIAS_MAX)
    return q, scale.astype(np.int64), bias.astype(np.int64), shift


def _error_row(q, scale, ref) -> dict:
    """How far int8 values ``q`` times ``scale`` lie from the float values ``ref``."""
    err = q * scale - ref
    sig = float(np.sqrt(np.mean(ref**2)))
    rms = float(np.sqrt(np.mean(err**2)))
    return {
        "rel_rms": round(rms / sig, 6) if sig else 0.0,
        "sqnr_db": round(float(20 * np.log10(sig / rms)), 2) if rms and sig else None,
        "max_abs": round(float(np.abs(err).max()), 6),
        "saturated": round(float(np.mean(np.abs(q) >= 127)), 6),
    }


def error_report(
    net: Network, fparams: dict, params: dict, out_scales: dict, pixels, *, shuffle=False
) -> dict:
    """How far the integer network lies from the float one over ``pixels`` (uint8 frames),
    both run with the core shuffle ``shuffle``: ``{"outputs": rows, "layers": rows}``, a row
    per output (``output``: the core or head group) and per convolution in network order
    (``layer``), each with ``rel_rms`` = RMS(error) / RMS(float), ``sqnr_db``, ``max_abs``
    (real units: int8 values times their activation scale) and the fraction of int8 values
    at the saturation limit. Errors accumulate through the network, as they do in the chip."""
    pixels = np.asarray(pixels)
    fl = {}
    fl_out = float_forward(
        net, fparams, (pixels.astype(float) - 128) / 128, shuffle=shuffle, record=fl
    )
    ints = {spec.name: [] for spec in net.convs()}
    int_out = {core: [] for core in net.cores}
    conv = int_conv(net, params)

    def recording(name, x):
        y = conv(name, x)
        ints[name].append(y)
        return y

    heads = [names.head_group(k) for k in range(len(net.head))]
    int_out |= {name: [] for name in heads}
    for frame in pixels.astype(np.int64) - 128:
        out = forward(
            net, frame, recording, lambda n, xf, xt: alpha_blend(params[n], xf, xt), shuffle=shuffle
        )
        out |= head(net, params, out)
        for name in int_out:
            int_out[name].append(out[name])
    layers = [
        {"layer": spec.name}
        | _error_row(np.stack(ints[spec.name]), out_scales[spec.name], fl[spec.name])
        for spec in net.convs()
    ]
    outputs = []
    for core in net.cores:
        last = [c.name for c in net.convs() if c.name.startswith(f"{core}.")][-1]
        # a core's output is one tensor with its last conv's output (the scale keys)
        outputs.append(
            {"output": core} | _error_row(np.stack(int_out[core]), out_scales[last], fl_out[core])
        )
    for name in heads:  # a head group's answer has its activation's scale, pooled or not
        outputs.append(
            {"output": name} | _error_row(np.stack(int_out[name]), out_scales[name], fl_out[name])
        )
    return {"outputs": outputs, "layers": layers}
