"""Float weights to the integer parameters the hardware runs (``docs/numerics.md``), with the
float model they approximate and a per-layer error report.

A float network (:class:`FloatConv` per convolution, alpha logits per blend) is what a
training framework exports: conv weights, batch-norm statistics, blend logits. It is
quantized as follows (``docs/weights-format.md`` has the rationale):

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

import dataclasses

import numpy as np

from sim.golden.backbone import forward, int_conv
from sim.golden.primitives import alpha_blend, alpha_code
from weights.io import WeightFileError
from weights.network import ConvParams, Network

__all__ = ["FloatConv", "conv_float", "float_forward", "quantize", "calibration_frames",
           "error_report"]

_SCALE_MAX, _BIAS_MAX, _SHIFT_MAX = (1 << 15) - 1, (1 << 31) - 1, 62


@dataclasses.dataclass(frozen=True, eq=False)
class FloatConv:
    """One float convolution followed by batch norm: ``weight`` shaped as
    :attr:`weights.network.ConvSpec.weight_shape`, per-output-channel ``gamma``, ``beta``,
    ``mean``, ``var`` and the norm's ``eps``."""

    weight: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """Per channel ``(gain, offset)``: the norm as ``y = gain * conv + offset``."""
        gain = self.gamma / np.sqrt(self.var + self.eps)
        return gain, self.beta - self.mean * gain


def conv_float(kind, x, w, stride):
    """Float convolution of ``x`` (..., H, W, C), zero padding 1 for the 3x3 kinds."""
    if kind == "pointwise":
        return x @ w.T
    h, wd = x.shape[-3:-1]
    p = np.zeros(x.shape[:-3] + (h + 2, wd + 2, x.shape[-1]))
    p[..., 1:-1, 1:-1, :] = x
    ho, wo = -(-h // stride), -(-wd // stride)
    out = np.zeros(x.shape[:-3] + (ho, wo, w.shape[0]))
    for ky in range(3):
        for kx in range(3):
            patch = p[..., ky:ky + stride * (ho - 1) + 1:stride,
                      kx:kx + stride * (wo - 1) + 1:stride, :]
            out += patch * w[:, ky, kx] if kind == "depthwise" else patch @ w[:, :, ky, kx].T
    return out


def float_forward(net: Network, fparams: dict, x, *, shuffle=False, record=None) -> dict:
    """The float network on ``x`` (real-valued input, (..., H, W, C)): ``{core: output}``.
    With ``record`` (a dict), every convolution's output is stored under its name."""
    specs = {c.name: c for c in net.convs()}

    def conv(name, v):
        spec, p = specs[name], fparams[name]
        gain, offset = p.folded()
        y = conv_float(spec.kind, v, np.asarray(p.weight, float), spec.stride) * gain + offset
        y = np.maximum(y, 0) if spec.relu else y
        if record is not None:
            record[name] = y
        return y

    def blend(name, xf, xt):
        a = sigmoid(fparams[name])
        return a * xf + (1 - a) * xt

    return forward(net, np.asarray(x, float), conv, blend, shuffle=shuffle)


def calibration_frames(net: Network, count: int = 8, seed: int = 0) -> np.ndarray:
    """``count`` uint8 pixel frames, uniformly random (deterministic): the default when no
    calibration images are given. Real images calibrate a trained network better."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, net.height, net.width, net.channels_in),
                        dtype=np.uint8)


def _scale_keys(net: Network) -> dict[str, tuple[str, str]]:
    """Per convolution, the keys of its input and output activation scales. ``in`` is the
    image; ``g0`` the stems' outputs; ``g<i>.<k>`` the tensor after the ``k``-th
    downsampling block of stage ``i`` in every core (the cores meet there); a depthwise
    conv's output (no ReLU, read only by its pointwise conv) has its own."""
    keys = {f"{core}.stem": ("in", "g0") for core in net.cores}
    group = "g0"
    for i in range(1, len(net.stages) + 1):
        for core in net.cores:
            g, k = group, 0
            for j, blk in enumerate(net.blocks(core, i)):
                pre = f"{core}.m{i}.{j}."
                if blk.stride == 2:  # a new tensor: both branches' outputs
                    k += 1
                    out = f"g{i}.{k}"
                    for br in ("b0_", "b1_"):
                        keys[pre + br + "dw"] = (g, pre + br + "dw")
                        keys[pre + br + "pw"] = (pre + br + "dw", out)
                else:  # the branch joins the passthrough half: the same tensor
                    out = g
                    keys[pre + "dw"] = (g, pre + "dw")
                    keys[pre + "pw"] = (pre + "dw", out)
                g = out
        group = g  # every core's stage ends in the same tensor (same downsamplings)
    return keys


def sigmoid(logits) -> np.ndarray:
    """The blend weight of a logit, without overflow for any finite logit."""
    return 0.5 * (1 + np.tanh(np.asarray(logits, float) / 2))


def quantize(net: Network, fparams: dict, calib_pixels) -> tuple[dict, dict]:
    """Integer parameters for ``net`` (as :func:`weights.network.check_params` wants) from
    float ones, and the activation scale of every convolution's output (for
    :func:`error_report`). ``calib_pixels``: uint8 frames (N, H, W, C)."""
    record = {}
    with np.errstate(all="ignore"):  # overflow is reported below, by layer
        float_forward(net, fparams, (np.asarray(calib_pixels, float) - 128) / 128,
                      record=record)
    for name, y in record.items():
        if not np.isfinite(y).all():
            raise WeightFileError(f"{name}: the float network overflows on the calibration "
                                  f"frames (outputs reach inf or NaN); check its weights and "
                                  f"batch-norm statistics")
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
        q = np.clip(np.round(rows / s_w[:, None]), -128, 127).astype(np.int64).reshape(w.shape)
        s_x, s_y = act[keys[spec.name][0]], act[keys[spec.name][1]]
        with np.errstate(all="ignore"):
            gain, offset = p.folded()
            mult, add = gain * s_w * s_x / s_y, offset / s_y
        if not (np.isfinite(mult).all() and np.isfinite(add).all()):
            raise WeightFileError(f"{spec.name}: its folded batch norm overflows (gain or "
                                  f"offset not finite); check gamma, var and eps")
        shift = _SHIFT_MAX
        m_max, b_max = float(np.abs(mult).max()), float(np.abs(add).max())
        while shift > 0 and (m_max * 2 ** shift > _SCALE_MAX or
                             b_max * 2 ** shift + 0.5 > _BIAS_MAX):
            shift -= 1
        scale = np.clip(np.round(mult * 2 ** shift), -_SCALE_MAX - 1, _SCALE_MAX)
        bias = np.clip(np.round(add * 2 ** shift), -_BIAS_MAX - 1, _BIAS_MAX)
        params[spec.name] = ConvParams(q, scale.astype(np.int64), bias.astype(np.int64), shift)
    for blend in net.blends():
        logits = np.asarray(fparams[blend.name], float)
        params[blend.name] = alpha_code(sigmoid(logits))
    return params, {spec.name: act[keys[spec.name][1]] for spec in net.convs()}


def error_report(net: Network, fparams: dict, params: dict, out_scales: dict,
                 pixels) -> list[dict]:
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
        rms = float(np.sqrt(np.mean(err ** 2)))
        rows.append({"layer": spec.name, "rel_rms": round(rms / sig, 6) if sig else 0.0,
                     "sqnr_db": round(float(20 * np.log10(sig / rms)), 2) if rms and sig else None,
                     "max_abs": round(float(np.abs(err).max()), 6),
                     "saturated": round(float(np.mean(np.abs(q) >= 127)), 6)})
    return rows

