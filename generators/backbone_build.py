"""Building a whole backbone (frozen file version 2, ``docs/weights-format.md``): the
:class:`~.design.Design` the build steps run when ``load`` finds one."""

import dataclasses
import json
import time

from semifreddo_hw.backbone import Backbone
from semifreddo_hw.conv import memory_window_fits
from semifreddo_hw.dsp import dsp_platform
from semifreddo_hw.emit import to_verilog_parts
from spec.network import sums_per_output
from weights.files import (
    DEFAULT_SHIFT,
    Weights,
    entry_name,
    frozen_arrays,
    load_frames,
    load_weights,
    trainable_arrays,
)
from weights.io import WeightFileError, npz_bytes
from weights.quantize import calibration_frames, error_report, quantize

from .design import BuildConfig, Product

__all__ = [
    "BackboneDesign",
    "FOLDS",
    "rate_folds",
    "rate_digits",
    "rate_roms",
    "rate_options",
    "rate_periods",
    "input_period",
    "address_map_json",
]

#: ``--fold``: ``spatial`` builds every layer for one beat per clock (the paper's ASIC);
#: ``rate`` folds each layer as far as the rate of its beats allows (an FPGA's fit):
#: configurable products and requantizers by :func:`rate_folds`, frozen products
#: digit-serially by :func:`rate_digits`.
FOLDS = ("spatial", "rate")


def rate_folds(net, input_period: int = 1, roms=()) -> dict[str, int]:
    """Per convolution and alpha blend, the largest fold that keeps up with the bursts of its beats
    (:meth:`spec.network.Network.peak_periods`), so that the folded backbone still takes
    one pixel per clock, or one every ``input_period`` clocks (:func:`input_period`): a
    divisor of its output channels, or for a configurable layer also the output channels
    times a divisor of the products each output sums (:class:`semifreddo_hw.conv.Conv`'s
    ``fold``: its sums then come in slices), as is a frozen layer named in ``roms``
    (:func:`rate_roms`)."""
    periods = net.peak_periods()
    folds = {
        c.name: _fold(c, periods[c.name] * input_period, c.name in roms)
        for c in net.convs() + net.head_convs()
    }
    blend_periods = net.blend_periods()
    for b in net.blends():  # an alpha blend folds by channel groups, as a requantizer does
        period = blend_periods[b.name] * input_period
        folds[b.name] = max(f for f in range(1, min(period, b.channels) + 1) if b.channels % f == 0)
    return folds


def _fold(c, period: int, rom: bool = False) -> int:
    sums = sums_per_output(c.kind, c.c_in)
    if period > c.c_out and (rom or not c.frozen):
        return c.c_out * max(k for k in range(1, period // c.c_out + 1) if sums % k == 0)
    return max(f for f in range(1, min(period, c.c_out) + 1) if c.c_out % f == 0)


#: The shortest beat period at which a frozen product goes digit-serial: at two digits the
#: serial graph is no smaller than the word-parallel one (``bench/digit_serial.py``).
SERIAL_FROM = 4


def rate_digits(net, input_period: int = 1, roms=()) -> dict[str, int]:
    """Per frozen convolution whose beats come no more often than every
    :data:`SERIAL_FROM` cycles (and not in ``roms``), that period: the most cycles its
    product may take per beat, run digit-serially
    (:class:`semifreddo_hw.digit_serial.DigitSerialMatVec`; bit-serial where the period is
    as long as the output is wide)."""
    periods = net.peak_periods()
    return {
        c.name: periods[c.name] * input_period
        for c in net.convs()
        if c.frozen and c.name not in roms and periods[c.name] * input_period >= SERIAL_FROM
    }


def rate_roms(net, input_period: int = 1, rom_from: int = 0) -> list[str]:
    """The frozen convolutions of ``rom_from`` weights or more (0: none) whose beats leave
    one multiplier time for all of them (folded as a configurable layer would be, down to
    one output channel's one product a cycle), and whose products a memory window gives
    (or which have no window): built from a ROM of their weights beside that multiplier
    (:class:`semifreddo_hw.conv.Conv`'s ``rom``) instead of a bit-serial shift-add graph of
    every channel, which would idle nearly all the time (``docs/folding.md``, "Frozen
    layers from a ROM"). A 3x3 layer on a frame under three pixels wide has no memory
    window; its serializer would pick one of the window's ``9 * c`` lanes a cycle, a
    multiplexer that crowded the board build's routing, so it stays bit-serial."""
    if not rom_from:
        return []
    periods = net.peak_periods()
    roms = []
    for c in net.convs():
        weights = c.c_out * sums_per_output(c.kind, c.c_in)
        period = periods[c.name] * input_period
        if not c.frozen or weights < rom_from or _fold(c, period, rom=True) != weights:
            continue
        if c.kind == "pointwise" or memory_window_fits(c.width, c.stride, weights, period):
            roms.append(c.name)
    return roms


def rate_periods(net, input_period: int = 1) -> dict[str, int]:
    """Per convolution, the fewest cycles between the beats its product sees
    (:meth:`spec.network.Network.peak_periods` at one pixel every ``input_period`` clocks):
    :class:`semifreddo_hw.conv.Conv`'s ``period``; per alpha blend, its stream's
    (:meth:`~spec.network.Network.blend_periods`): :class:`~semifreddo_hw.blend.AlphaBlend`'s."""
    periods = net.peak_periods() | net.blend_periods()
    return {name: p * input_period for name, p in periods.items()}


def rate_options(net, input_period: int = 1, *, serial: bool = True, rom_from: int = 0) -> dict:
    """:class:`semifreddo_hw.backbone.Backbone`'s ``folds``, ``digits``, ``periods`` and
    ``roms`` of a ``--fold rate`` build (``serial=False``: frozen products stay
    word-parallel; ``rom_from``: :func:`rate_roms`)."""
    roms = rate_roms(net, input_period, rom_from)
    return {
        "folds": rate_folds(net, input_period, roms),
        "digits": rate_digits(net, input_period, roms) if serial else None,
        "periods": rate_periods(net, input_period),
        "roms": roms,
    }


def input_period(net, fps: float, clock_mhz: float) -> int:
    """Clock cycles per input pixel that still make ``fps`` frames per second at
    ``clock_mhz`` (FINN's target frame rate): at least 1."""
    if fps <= 0 or clock_mhz <= 0:
        raise ValueError("the frame rate and the clock must be positive")
    return max(1, int(clock_mhz * 1e6 // (fps * net.width * net.height)))


@dataclasses.dataclass
class BackboneDesign:
    """A backbone build: its weights (``load``), integer parameters and quantization errors
    (``quantize``), and hardware (``elaborate``)."""

    weights: Weights
    params: dict | None = None
    quant_errors: dict | None = None
    calibration: str | None = None  # how activation scales were calibrated
    hardware: Backbone | None = None

    @classmethod
    def load(cls, config: BuildConfig, log) -> "BackboneDesign":
        w = load_weights(config.freeze, config.trainable, config.network)
        if config.calib is not None and w.form != "float":
            raise WeightFileError(
                f"--calib {config.calib}: the weights are already int8; "
                f"calibration frames only serve to quantize float weights"
            )
        if not w.trainable:
            log(
                "warning: no --trainable file: every run-time parameter (trainable weights, "
                f"scales, biases, alphas) powers up as 0 and every shift is {DEFAULT_SHIFT}"
            )
        head = f", a head of {len(w.net.head)} group(s)" if w.net.head else ""
        log(
            f"      network {w.net.name}, cores {', '.join(w.net.cores)}{head}, "
            f"weights in {w.form} form"
        )
        return cls(w)

    def quantize(self, config: BuildConfig) -> None:
        """Integer parameters: as given (int8 form) or quantized from float, with the error
        of every layer against the float network over the calibration frames."""
        w = self.weights
        if w.form == "int8":
            self.params = w.params
            return
        frames = (
            calibration_frames(w.net)
            if config.calib is None
            else load_frames(config.calib, w.net, "--calib")
        )
        self.params, scales = quantize(
            w.net, w.fparams, frames, shuffle=w.shuffle, method=config.calib_method
        )
        source = "random frames" if config.calib is None else f"frames of {config.calib.name}"
        self.calibration = f"{config.calib_method} over {len(frames)} {source}"
        self.quant_errors = error_report(
            w.net, w.fparams, self.params, scales, frames, shuffle=w.shuffle
        )

    def products(self, config: BuildConfig) -> list[Product]:
        """The frozen convolutions with a shift-add graph: not those read from a ROM."""
        net = self.weights.net
        roms = set()
        if config.fold == "rate":
            roms = set(rate_roms(net, self.input_period(config), config.frozen_rom))
        return [
            Product(c.name, c.kind, self.params[c.name].weight)
            for c in net.convs()
            if c.frozen and c.name not in roms
        ]

    def _rate(self, config: BuildConfig) -> dict:
        """:func:`rate_options` of a ``--fold rate`` build, else nothing."""
        if config.fold != "rate":
            return {}
        return rate_options(self.weights.net, self.input_period(config), rom_from=config.frozen_rom)

    def input_period(self, config: BuildConfig) -> int:
        """Clock cycles per input pixel the folds may assume (1 unless ``--fps``)."""
        if config.fps is None:
            return 1
        return input_period(self.weights.net, config.fps, config.clock_mhz)

    def elaborate(self, graphs: dict, config: BuildConfig) -> None:
        self.hardware = Backbone(
            self.weights.net,
            self.params,
            graphs=graphs,
            **self._rate(config),
            solver=config.solver,
            levels_per_stage=config.levels_per_stage,
            serial_levels_per_stage=config.serial_levels_per_stage,
            swap=config.swap,
            relays=config.relays,
        )

    def emit(self, config: BuildConfig, log) -> dict[str, str]:
        """``<top>.v``: one module per convolution, parts from the cache where they are
        there; ``log`` hears how far the conversion has got every few seconds."""
        dut, top = self.hardware, config.top
        t0 = last = time.perf_counter()

        def progress(done, total):
            nonlocal last
            now = time.perf_counter()
            if done == total or now - last >= 5:
                log(f"      {done}/{total} layer modules converted ({now - t0:.0f} s)")
                last = now

        log(f"      {len(dut.parts(top))} layer modules, {config.jobs} job(s)")
        return {
            f"{top}.v": to_verilog_parts(
                dut,
                top,
                dut.parts(top),
                jobs=config.jobs,
                use_cache=True,
                progress=progress,
                platform=dsp_platform(dut, config.dsp, config.dsp_blocks),
            )
        }

    def outputs(self, config: BuildConfig) -> dict[str, str | bytes]:
        """The integer weights the hardware was built from, the network description, the
        run-time parameter image and its address map, and the reports."""
        net, dut = self.weights.net, self.hardware
        r = _report(self, config.top, self.input_period(config) if config.fold == "rate" else 1)
        return {
            "network.json": json.dumps(net.to_dict(), indent=2, sort_keys=True) + "\n",
            "frozen.npz": npz_bytes(frozen_arrays(net, self.params)),
            "trainable.npz": npz_bytes(trainable_arrays(net, self.params, self.weights.shuffle)),
            "param_writes.hex": "".join(
                f"{a:08x} {v & 0xFFFFFFFF:08x}\n" for a, v in dut.param_writes(self.params)
            ),
            "address_map.json": address_map_json(dut.address_map),
            "report.json": json.dumps(r, indent=2, sort_keys=True) + "\n",
            "report.md": _report_md(r, net),
        }


def address_map_json(regions) -> str:
    """``address_map.json``: one object per region of the ``param_write`` address space
    (:class:`semifreddo_hw.param_bus.Region`), one per line, keys in a fixed order, with
    the trainable file's entry each region loads (``docs/backbone.md``, "The address
    map")."""
    records = [
        {
            "layer": r.layer,
            "field": r.field,
            "base": r.base,
            "count": r.count,
            "width": r.width,
            "signed": r.signed,
            "entry": entry_name(r.layer, r.field),
            "entry_axes": list(r.source_axes),
            "axes": list(r.axes),
            "shape": list(r.shape),
            "row": r.row,
            "row_stride": r.row_stride,
        }
        for r in regions
    ]
    return "[\n" + ",\n".join(" " + json.dumps(rec) for rec in records) + "\n]\n"


def _report(d: "BackboneDesign", top: str, period: int = 1) -> dict:
    r = d.hardware.report()
    for layer in r["layers"].values():
        layer.pop("solve_seconds", None)  # a timing: would make reports differ run to run
    net = d.weights.net
    r = {
        "format": "semifreddo-report",
        "version": 3,
        "kind": "plan estimates, not post-synthesis measurements",
        "top": top,
        "weights_form": d.weights.form,
        "power_up": "given" if d.weights.trainable else "zero (no trainable file)",
        "core_shuffle": ("on" if d.weights.shuffle else "off") if net.core_shuffle else "none",
        "throughput": {
            "pixels_per_cycle": 1 if period == 1 else round(1 / period, 6),
            "cycles_per_frame": net.width * net.height * period,
            "frames_per_second_at_100MHz": round(100e6 / (net.width * net.height * period), 2),
        },
        **r,
    }
    if d.quant_errors is not None:
        r["quantization"] = d.quant_errors
        r["calibration"] = d.calibration
    return r


def _report_md(r: dict, net) -> str:
    t = r["throughput"]
    md = [
        f"# Build report: {r['top']} ({r['network']})",
        "",
        "Plan estimates (not post-synthesis measurements). Cores: "
        f"{', '.join(r['cores'])}; input {net.width}x{net.height}x{net.channels_in}; "
        f"weights given in {r['weights_form']} form; run-time parameters power up "
        f"{r['power_up']}; core shuffle {r['core_shuffle']} (the trainable file's setting: "
        "drive the `shuffle` input so).",
        "",
        (
            "Two run-time parameter sets: writes go to the shadow set and `param_swap` "
            "switches frames to it at a frame boundary (the parameter memory bits count both "
            "sets; build with `--no-swap` for one)."
            if r["parameter_sets"] == 2
            else "One run-time parameter set (built with `--no-swap`): write parameters only "
            "while no frame is inside the pipeline."
        ),
        "",
        "| quantity | value |",
        "|---|---|",
    ]
    for key in (
        "frozen_weights",
        "frozen_nonzero_weights",
        "configurable_weights",
        "alpha_codes",
        "adders",
        "multipliers",
        "parameter_memory_bits",
        "line_buffer_bits",
        "rom_bits",
        "balance_fifo_bits",
        "parameter_addresses",
    ):
        if key not in r:  # only where frozen layers read their weights from ROMs
            continue
        md.append(f"| {key.replace('_', ' ')} | {r[key]:,} |")
        if key == "multipliers" and "blend_multipliers" in r:
            md.append(f"| alpha blend multipliers (folded) | {r['blend_multipliers']:,} |")
        if key == "balance_fifo_bits" and "repeat_fifo_bits" in r:
            md.append(
                f"| repeated blocks: passes, feedback FIFO bits | {r['trainable_repeats']}, "
                f"{r['repeat_fifo_bits']:,} |"
            )
    md.append(f"| pruned frozen weights | {r['frozen_weights'] - r['frozen_nonzero_weights']:,} |")
    md.append(
        f"| register bits (layers) | {sum(x['register_bits'] for x in r['layers'].values()):,} |"
    )
    md += [
        f"| throughput | {t['pixels_per_cycle']} pixel per clock, "
        f"{t['cycles_per_frame']:,} cycles per frame, "
        f"{t['frames_per_second_at_100MHz']} frames/s at 100 MHz |",
        "",
        "## Layers",
        "",
        "Latency: cycles through a layer's product and requantizer, without its line "
        "buffer's rows. The whole pipeline's latency and rate, measured without stalls, "
        "are printed by `python -m sim.verify --build DIR`.",
        "",
    ]
    # Fold and digits columns only where a layer is folded or digit-serial: a spatial
    # build's report stays as it was.
    extra = [k for k in ("fold", "digits") if any(k in x for x in r["layers"].values())]
    head = "".join(f" {k} |" for k in extra)
    md += [
        "| layer | kind | frozen | weights | adders | multipliers | latency (cycles) "
        f"| register bits | memory bits |{head}",
        f"|---|---|---|---|---|---|---|---|---|{'---|' * len(extra)}",
    ]
    for name, x in r["layers"].items():
        cols = "".join(f" {x.get(k, 1)} |" for k in extra)
        frozen = "no" if x["configurable"] else "yes, ROM" if x.get("rom") else "yes"
        md.append(
            f"| {name} | {x['kind']} | {frozen} | "
            f"{x['weights']} | {x['adders']} | {x['multipliers']} | "
            f"{x['latency_cycles']} | {x['register_bits']} | {x['memory_bits']} |{cols}"
        )
    if "head" in r:
        md += [
            "",
            f"## Head ({r['head']['weights']:,} configurable weights)",
            "",
            "Per group: pointwise convolution (configurable), requantizer, piecewise-linear "
            "activation, global average pool switched at run time (`docs/head.md`). Its "
            "parameters are in the memory bits and parameter addresses above.",
            "",
            "| group | c_in -> c_out | sources (core, first channel) | segments | fold "
            "| multipliers (product, activation) | memory bits |",
            "|---|---|---|---|---|---|---|",
        ]
        for (name, g), spec in zip(r["head"]["groups"].items(), net.head, strict=True):
            md.append(
                f"| {name} | {spec.c_in} -> {spec.c_out} | "
                + ", ".join(f"{c} {f}" for c, f in g["sources"])
                + f" | {g['segments']} | {g.get('fold', 1)} | "
                f"{g['multipliers']}, {g['pwl_multipliers']} | {g['memory_bits']:,} |"
            )
    if "quantization" in r:
        md += [
            "",
            "## Quantization error (integer network vs float, calibration frames)",
            "",
            f"Activation scales calibrated by {r['calibration']}, with the core shuffle "
            f"{r['core_shuffle']}, as the chip runs. Errors accumulate through the network, "
            "as in the chip.",
        ]
        for key in ("output", "layer"):
            md += [
                "",
                f"| {key} | relative RMS error | SQNR (dB) | max abs error | saturated |",
                "|---|---|---|---|---|",
            ]
            for q in r["quantization"][f"{key}s"]:
                md.append(
                    f"| {q[key]} | {q['rel_rms']:.4f} | {q['sqnr_db']} | "
                    f"{q['max_abs']:.4f} | {q['saturated']:.4f} |"
                )
    return "\n".join(md) + "\n"
