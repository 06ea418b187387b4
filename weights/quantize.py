"""Float weights to the integer parameters the hardware runs (``docs/numerics.md``), with the
float model they approximate and a per-layer error report.

A float network (:mod:`weights.floatnet`: conv weights, batch-norm statistics, blend
logits, as a training framework exports them) is quantized as follows
(``docs/weights-format.md`` has the rationale):

* the image enters as ``x = (p - 128) / 128`` (``p`` the uint8 pixel): activation scale
  exactly 1/128, the int8 stream value ``p - 128`` (numerics §2);
* conv weights: symmetric int8 per output channel, ``s_w[c] = max |w[c]| / 127``;
* activations: one scale per tensor, ``max |y| / 127`` over calibration frames; tensors the
  hardware joins without arithmetic share one scale (a regular block's passthrough half and
  its branch, a downsampling block's two branches, the frozen and trainable features an
  alpha blend mixes, the two cores the cross-core shuffle swaps);
* batch norm folds into the requantizer: ``scale[c] / 2**shift ~ gamma'[c] s_w[c] s_x / s_y``
  and ``bias[c] / 2**shift ~ (beta[c] - mean[c] gamma'[c]) / s_y`` with
  ``gamma' = gamma / sqrt(var + eps)``; the shift is the largest (<= 62) that keeps every
  scale within int16 and every bias within int32;
* alpha codes: ``round(128 sigmoid(logit))``.
"""

import numpy as np

from sim.golden.backbone import int_conv
from sim.golden.primitives import alpha_blend, alpha_code
from spec import names
from spec.dataflow import forward
from spec.formats import INT8_MAX, INT8_MIN, RANGES, SHIFT_MAX
from spec.network import Network
from spec.params import ConvParams

from .floatnet import float_forward, sigmoid
from .io import WeightFileError

__all__ = ["quantize", "calibration_frames", "error_report"]

_SCALE_MAX, _BIAS_MAX = RANGES["scale"][1], RANGES["bias"][1]


def calibration_frames(net: Network, count: int = 8, seed: int = 0) -> np.ndarray:
    """``count`` uint8 pixel frames, uniformly random (deterministic): the default when no
    calibration images are given. Real images calibrate a trained network better."""
    rng = np.random.default_rng(seed)
    return rng.integers(
        0, 256, size=(count, net.height, net.width, net.channels_in), dtype=np.uint8
    )


def _scale_keys(net: Network) -> dict[str, tuple[str, str]]:
    """Per convolution, the keys of its input and output activation scales. ``in`` is the
    image; ``g0`` the stems' outputs; ``g<i>.<k>`` the tensor after the ``k``-th
    downsampling block of stage ``i`` in every core (the cores meet there); a depthwise
    conv's output (no ReLU, read only by its pointwise conv) has its own."""
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
    return keys


def quantize(net: Network, fparams: dict, calib_pixels) -> tuple[dict, dict]:
    """Integer parameters for ``net`` (as :func:`spec.params.check_params` wants) from
    float ones, and the activation scale of every convolution's output (for
    :func:`error_report`). ``calib_pixels``: uint8 frames (N, H, W, C)."""
    record = {}
    with np.errstate(all="ignore"):  # overflow is reported below, by layer
        float_forward(net, fparams, (np.asarray(calib_pixels, float) - 128) / 128, record=record)
    for name, y in record.items():
        if not np.isfinite(y).all():
            raise WeightFileError(
                f"{name}: the float network overflows on the calibration "
                f"frames (outputs reach inf or NaN); check its weights and "
                f"batch-norm statistics"
            )
    keys = _scale_keys(net)
    peak = {"in": 1.0}
    for name, y in record.items():
        k = keys[name][1]
        peak[k] = max(peak.get(k, 0.0), float(np.abs(y).max(initial=0.0)))
    act = {k: (v / 127 if v > 0 else 1.0) for k, v in peak.items()}
    act["in"] = 1 / 128  # exact: x = p - 128 stands for (p - 128) / 128
    params = {}
    for spec in net.convs():
        p = fparams[spec.name]
        w = np.asarray(p.weight, float)
        rows = w.reshape(w.shape[0], -1)
        s_w = np.abs(rows).max(axis=1) / 127
        s_w = np.where(s_w > 0, s_w, 1.0)
        q = np.clip(np.round(rows / s_w[:, None]), INT8_MIN, INT8_MAX).astype(np.int64)
        q = q.reshape(w.shape)
        s_x, s_y = act[keys[spec.name][0]], act[keys[spec.name][1]]
        with np.errstate(all="ignore"):
            gain, offset = p.folded()
            mult, add = gain * s_w * s_x / s_y, offset / s_y
        if not (np.isfinite(mult).all() and np.isfinite(add).all()):
            raise WeightFileError(
                f"{spec.name}: its folded batch norm overflows (gain or "
                f"offset not finite); check gamma, var and eps"
            )
        shift = SHIFT_MAX
        m_max, b_max = float(np.abs(mult).max()), float(np.abs(add).max())
        while shift > 0 and (m_max * 2**shift > _SCALE_MAX or b_max * 2**shift + 0.5 > _BIAS_MAX):
            shift -= 1
        scale = np.clip(np.round(mult * 2**shift), -_SCALE_MAX - 1, _SCALE_MAX)
        bias = np.clip(np.round(add * 2**shift), -_BIAS_MAX - 1, _BIAS_MAX)
        params[spec.name] = ConvParams(q, scale.astype(np.int64), bias.astype(np.int64), shift)
    for blend in net.blends():
        logits = np.asarray(fparams[blend.name], float)
        params[blend.name] = alpha_code(sigmoid(logits))
    return params, {spec.name: act[keys[spec.name][1]] for spec in net.convs()}


def error_report(net: Network, fparams: dict, params: dict, out_scales: dict, pixels) -> list[dict]:
    """Per convolution, in network order: how far the integer network's output (times its
    activation scale) lies from the float network's, over ``pixels`` (uint8 frames):
    ``rel_rms`` = RMS(error) / RMS(float output), ``sqnr_db``, ``max_abs`` (in real units)
    and the fraction of int8 outputs at the saturation limit. Errors accumulate through
    the network, as they do in the chip."""
    pixels = np.asarray(pixels)
    fl = {}
    float_forward(net, fparams, (pixels.astype(float) - 128) / 128, record=fl)
    ints = {spec.name: [] for spec in net.convs()}
    conv = int_conv(net, params)

    def recording(name, x):
        y = conv(name, x)
        ints[name].append(y)
        return y

    for frame in pixels.astype(np.int64) - 128:
        forward(net, frame, recording, lambda n, xf, xt: alpha_blend(params[n], xf, xt))
    rows = []
    for spec in net.convs():
        q = np.stack(ints[spec.name])
        err = q * out_scales[spec.name] - fl[spec.name]
        sig = float(np.sqrt(np.mean(fl[spec.name] ** 2)))
        rms = float(np.sqrt(np.mean(err**2)))
        rows.append(
            {
                "layer": spec.name,
                "rel_rms": round(rms / sig, 6) if sig else 0.0,
                "sqnr_db": round(float(20 * np.log10(sig / rms)), 2) if rms and sig else None,
                "max_abs": round(float(np.abs(err).max()), 6),
                "saturated": round(float(np.mean(np.abs(q) >= 127)), 6),
            }
        )
    return rows
