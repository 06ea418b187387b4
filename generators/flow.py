"""The backbone build as ordered steps, each a plain function:

    load -> quantize (float files only) -> plan -> elaborate -> emit -> outputs

From a frozen file (``semifreddo-frozen`` version 2) and optionally a trainable file
(``docs/weights-format.md``) to the files of a build directory (:func:`outputs`): the
Verilog, the quantized weights and run-time parameter image, the network description, and
the reports. Nothing here is timed into an output: identical inputs give identical files.
"""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from semifreddo_hw.backbone import Backbone, plan_frozen
from semifreddo_hw.emit import to_verilog_parts
from weights.files import DEFAULT_SHIFT, Weights, load_weights, save_frozen, save_trainable
from weights.io import WeightFileError, load_npz, read_json
from weights.network import network_from_dict, preset
from weights.quantize import calibration_frames, error_report, quantize

__all__ = ["DEFAULT_SHIFT", "Build", "cli_network", "load", "quantize_step", "plan",
           "elaborate", "emit", "outputs", "BUILD_FILES"]

#: The files of a build directory (besides the marker), as :func:`outputs` writes them.
BUILD_FILES = ("{top}.v", "network.json", "frozen.npz", "trainable.npz", "param_writes.hex",
               "address_map.json", "report.json", "report.md")


@dataclasses.dataclass
class Build:
    weights: Weights
    top: str
    params: dict | None = None  # integer parameters (given, or quantized)
    quant_errors: list | None = None
    backbone: Backbone | None = None
    verilog: str | None = None


def cli_network(preset_name: str | None, config: str | None):
    """The network named on the command line (``--preset`` or ``--config FILE.json``)."""
    if preset_name is not None:
        try:
            return preset(preset_name)
        except ValueError as e:
            raise WeightFileError(f"--preset: {e}") from None
    if config is not None:
        d = read_json(config, f"--config {config}")
        try:
            return network_from_dict(d)
        except ValueError as e:
            raise WeightFileError(f"--config {config}: {e}") from None
    return None


def load(frozen, trainable, net, top: str) -> Build:
    return Build(load_weights(frozen, trainable, net), top)


def calibration(path, net) -> np.ndarray:
    """uint8 frames (N, H, W, C) from ``--calib`` (a ``.npz`` with one entry ``frames``), or
    the deterministic random default."""
    if path is None:
        return calibration_frames(net)
    arrays = load_npz(path)
    if set(arrays) != {"frames"}:
        raise WeightFileError(f"{path}: a calibration file holds exactly one entry 'frames'")
    f = arrays["frames"]
    want = (net.height, net.width, net.channels_in)
    if f.ndim != 4 or f.shape[1:] != want or f.shape[0] < 1:
        raise WeightFileError(f"{path}: frames has shape {f.shape}, expected (N, {want[0]}, "
                              f"{want[1]}, {want[2]})")
    if f.dtype != np.uint8:
        raise WeightFileError(f"{path}: frames has dtype {f.dtype}, expected uint8 pixels")
    return f


def quantize_step(b: Build, calib_path=None) -> None:
    """Integer parameters: as given (int8 form) or quantized from float, with the error of
    every layer against the float network over the calibration frames."""
    w = b.weights
    if w.form == "int8":
        b.params = w.params
        return
    frames = calibration(calib_path, w.net)
    b.params, scales = quantize(w.net, w.fparams, frames)
    b.quant_errors = error_report(w.net, w.fparams, b.params, scales, frames)


def plan(b: Build, solver: str, jobs: int) -> None:
    plan_frozen(b.weights.net, b.params, solver=solver, jobs=jobs)


def elaborate(b: Build, solver: str, levels_per_stage: int) -> None:
    b.backbone = Backbone(b.weights.net, b.params, solver=solver,
                          levels_per_stage=levels_per_stage)


def emit(b: Build, jobs: int, log=lambda _: None) -> None:
    """The Verilog, parts from the cache where they are there; ``log`` hears how far the
    conversion has got every few seconds."""
    dut = b.backbone
    t0 = last = time.perf_counter()

    def progress(done, total):
        nonlocal last
        now = time.perf_counter()
        if done == total or now - last >= 5:
            log(f"      {done}/{total} layer modules converted ({now - t0:.0f} s)")
            last = now

    b.verilog = to_verilog_parts(dut, b.top, dut.parts(b.top), jobs=jobs, cache=True,
                                 progress=progress)


def _report(b: Build) -> dict:
    r = b.backbone.report()
    for layer in r["layers"].values():
        layer.pop("solve_seconds", None)  # a timing: would make reports differ run to run
    net = b.weights.net
    r = {"format": "semifreddo-report", "version": 2,
         "kind": "plan estimates, not post-synthesis measurements",
         "top": b.top, "weights_form": b.weights.form,
         "power_up": "given" if b.weights.trainable else "zero (no trainable file)",
         "throughput": {"pixels_per_cycle": 1, "cycles_per_frame": net.width * net.height,
                        "frames_per_second_at_100MHz": round(100e6 / (net.width * net.height),
                                                             2)},
         **r}
    if b.quant_errors is not None:
        r["quantization"] = b.quant_errors
    return r


def _report_md(r: dict, net) -> str:
    t = r["throughput"]
    md = [f"# Build report: {r['top']} ({r['network']})", "",
          "Plan estimates (not post-synthesis measurements). Cores: "
          f"{', '.join(r['cores'])}; input {net.width}x{net.height}x{net.channels_in}; "
          f"weights given in {r['weights_form']} form; run-time parameters power up "
          f"{r['power_up']}.", "",
          "| quantity | value |", "|---|---|"]
    for key in ("frozen_weights", "frozen_nonzero_weights", "configurable_weights",
                "alpha_codes", "adders", "multipliers", "parameter_memory_bits",
                "line_buffer_bits", "balance_fifo_bits", "parameter_addresses"):
        md.append(f"| {key.replace('_', ' ')} | {r[key]:,} |")
    md.append(f"| pruned frozen weights | "
              f"{r['frozen_weights'] - r['frozen_nonzero_weights']:,} |")
    md.append(f"| register bits (layers) | "
              f"{sum(x['register_bits'] for x in r['layers'].values()):,} |")
    md += [f"| throughput | {t['pixels_per_cycle']} pixel per clock, "
           f"{t['cycles_per_frame']:,} cycles per frame, "
           f"{t['frames_per_second_at_100MHz']} frames/s at 100 MHz |", "",
           "## Layers", "",
           "Latency: cycles through a layer's product and requantizer, without its line "
           "buffer's rows. The whole pipeline's latency and rate, measured without stalls, "
           "are printed by `python -m sim.verify --build DIR`.", "",
           "| layer | kind | frozen | weights | adders | multipliers | latency (cycles) "
           "| register bits | memory bits |", "|---|---|---|---|---|---|---|---|---|"]
    for name, x in r["layers"].items():
        md.append(f"| {name} | {x['kind']} | {'no' if x['configurable'] else 'yes'} | "
                  f"{x['weights']} | {x['adders']} | {x['multipliers']} | "
                  f"{x['latency_cycles']} | {x['register_bits']} | {x['memory_bits']} |")
    if "quantization" in r:
        md += ["", "## Quantization error (integer network vs float, calibration frames)", "",
               "Errors accumulate through the network, as in the chip.", "",
               "| layer | relative RMS error | SQNR (dB) | max abs error | saturated |",
               "|---|---|---|---|---|"]
        for q in r["quantization"]:
            md.append(f"| {q['layer']} | {q['rel_rms']:.4f} | {q['sqnr_db']} | "
                      f"{q['max_abs']:.4f} | {q['saturated']:.4f} |")
    return "\n".join(md) + "\n"


def outputs(b: Build, directory: Path) -> None:
    """Write every file of the build into ``directory`` (an empty temporary directory)."""
    net, dut = b.weights.net, b.backbone
    (directory / f"{b.top}.v").write_text(b.verilog)
    (directory / "network.json").write_text(json.dumps(net.to_dict(), indent=2,
                                                       sort_keys=True) + "\n")
    save_frozen(directory / "frozen.npz", net, b.params)
    save_trainable(directory / "trainable.npz", net, b.params)
    (directory / "param_writes.hex").write_text("".join(
        f"{a:08x} {v & 0xFFFFFFFF:08x}\n" for a, v in dut.param_writes(b.params)))
    (directory / "address_map.json").write_text(json.dumps(
        [dataclasses.asdict(r) for r in dut.address_map], indent=1) + "\n")
    r = _report(b)
    (directory / "report.json").write_text(json.dumps(r, indent=2, sort_keys=True) + "\n")
    (directory / "report.md").write_text(_report_md(r, net))
