# amaranth: UnusedElaboratable=no
"""Measured silicon: synthesis area of frozen vs configurable layers, the paper's Table 3,
and a freezing sweep.

    python bench/area.py --json bench/area.json --plot bench/area_sweep.png

Every number here comes from a Yosys netlist (:mod:`generators.synth`: flows ``generic``
(gates and a CMOS transistor estimate), ``ice40`` and ``ecp5`` (LUT4, carries, flip-flops;
multipliers in LUTs, no DSPs)), never from the plan. Three parts (``--parts``):

* ``matrices``: for seeded int8 matrices (``--sizes``, dense and 50 % zeros) and depthwise
  3x3 layers (``--depthwise`` channels), four variants of ``y = W @ x``: ``frozen`` (this
  project's FrozenMatVec), ``configurable`` (ConfigurableMatVec: weights in memory,
  multipliers), ``da4ml`` (da4ml's own Verilog for the same matrix) and ``constants`` (the
  products written as ``x * w`` and left to Yosys). All have registered inputs and
  registered outputs; memories are counted in bits, not mapped.
* ``table3``: the five Table 3 configurations (``--preset-size``: the presets of
  ``weights.network``), synthesized part by part (each convolution, each block's glue, the
  blends, the shuffles, the backbone's own glue), summed per core.
* ``sweep``: the frozen core of the same build with its first layers frozen and the rest
  configurable, area against the frozen fraction of its weights.

The JSON holds every record; seconds fields are the only ones that change between runs.
``--cache DIR`` keeps synthesis results by content (for reruns; the published timings are
from a run without it).
"""

import argparse
import concurrent.futures
import contextlib
import hashlib
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from amaranth.hdl import Value  # noqa: E402
from amaranth.lib import wiring  # noqa: E402

from generators.synth import FLOWS, SynthTimeout, synthesize, yosys_version  # noqa: E402
from semifreddo_hw.adder_graph import plan_depthwise, signed_width  # noqa: E402
from semifreddo_hw.backbone import Backbone  # noqa: E402
from semifreddo_hw.conv import Conv  # noqa: E402
from semifreddo_hw.emit import part_text, port_members, to_verilog_parts  # noqa: E402
from semifreddo_hw.matvec import ConfigurableMatVec, FrozenMatVec  # noqa: E402
from weights.network import preset  # noqa: E402
from weights.synthetic import gaussian_int8, random_params  # noqa: E402

#: The paper's Table 3 area column (mm^2), configuration -> area.
PAPER_MM2 = {"two_cores_shuffle": 4.0, "two_cores": 4.0, "one_core": 2.66,
             "frozen_only": 1.32, "trainable_only": 2.68}
TABLE3 = tuple(PAPER_MM2)

#: Netlist counts added up across parts (per flow).
SUMMED = {
    "generic": ("generic_cells", "generic_ffs", "transistors", "transistors_ff"),
    "ice40": ("ice40_lut4", "ice40_carry", "ice40_ff", "ice40_bram", "ice40_dsp"),
    "ecp5": ("ecp5_lut4", "ecp5_ccu2", "ecp5_ff", "ecp5_bram", "ecp5_lutram", "ecp5_dsp"),
}


# -- running Yosys ---------------------------------------------------------------------------

class Synth:
    """Synthesizes units (Verilog text + top module) with every flow, ``jobs`` Yosys
    processes at a time, each distinct (text, top, flow) once."""

    def __init__(self, flows, jobs=1, cache_dir=None, skip=(), timeout=None):
        self.flows, self.jobs, self.timeout = tuple(flows), jobs, timeout
        self.skip = set(skip)  # "unit name:flow" not synthesized (counts None)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.memo: dict[str, dict] = {}
        self.seconds = 0.0  # Yosys wall time actually spent (cache hits cost nothing)

    def _key(self, text, top, flow):
        return hashlib.sha256(f"{flow}\0{top}\0{text}".encode()).hexdigest()

    def _one(self, job):
        key, text, top, flow, _name = job
        path = self.cache_dir / f"{key}.json" if self.cache_dir else None
        if path is not None and path.is_file():
            return key, json.loads(path.read_text()), 0.0
        try:
            r = synthesize(text, top, flow, timeout=self.timeout)
        except SynthTimeout:
            r = {"flow": flow, "top": top, "seconds": self.timeout, "timed_out": True}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(r))
        return key, r, r["seconds"]

    def run(self, units: dict, flows=None) -> dict:
        """``units``: ``{name: (text, top)}`` -> ``{name: merged counts of every flow}``
        (``flows``: a subset of this runner's)."""
        flows = tuple(f for f in self.flows if flows is None or f in flows)
        jobs, keys = [], {}
        for name, (text, top) in units.items():
            if top != "top":  # one netlist per design, whatever its module is called
                text, top = re.sub(rf"\b{top}(?=\b|__)", "top", text), "top"
            for flow in flows:
                if f"{name}:{flow}" in self.skip:
                    continue
                k = self._key(text, top, flow)
                keys[(name, flow)] = k
                if k not in self.memo and all(j[0] != k for j in jobs):
                    jobs.append((k, text, top, flow, name))
        done = 0
        with concurrent.futures.ThreadPoolExecutor(self.jobs) as pool:
            for job, (key, r, secs) in zip(jobs, pool.map(self._one, jobs), strict=True):
                self.memo[key] = r
                self.seconds += secs
                done += 1
                print(f"  [{done}/{len(jobs)}] {job[4]} {r['flow']}: {r['seconds']} s",
                      file=sys.stderr, flush=True)
        out = {}
        for name in units:
            merged = {"seconds": 0.0}
            for flow in flows:
                r = self.memo.get(keys.get((name, flow)), {"timed_out": False})
                if (name, flow) not in keys or r.get("timed_out"):  # skipped or too slow
                    merged.update({k: None for k in (*SUMMED[flow], f"seconds_{flow}")})
                    merged.setdefault("memories", [])
                    merged.setdefault("memory_bits", None)
                    merged.setdefault("not_measured", []).append(
                        f"{flow}: " + ("no result within --timeout" if (name, flow) in keys
                                       else "--skip"))
                    continue
                merged.update({k: v for k, v in r.items()
                               if k not in ("flow", "top", "seconds", "cells", "memories")})
                merged[f"seconds_{flow}"] = r["seconds"]
                merged["seconds"] = round(merged["seconds"] + r["seconds"], 2)
                merged["memories"] = r["memories"]
                merged["memory_bits"] = r["memory_bits"]
            out[name] = merged
        return out


# -- the four variants of one matrix ---------------------------------------------------------

_PORT = re.compile(r"^\s*(input|output)\s+(?:\[(-?\d+):0\]\s+)?(\w+);", re.MULTILINE)


def _ports(text: str, module: str) -> dict[str, int]:
    body = text[text.index(f"module {module}("):]
    body = body[:body.index("endmodule")]
    return {name: int(hi) + 1 if hi else 1 for _d, hi, name in _PORT.findall(body)}


def wrap_project(core_text: str, core: str, top: str, *, register_inputs=True) -> str:
    """``core`` (a FrozenMatVec or ConfigurableMatVec module, outputs registered) under a
    top module ``top(clk, x, y[, wp, wv])``: inputs through one register stage (unless
    ``register_inputs`` is false), always valid, always ready; a configurable block keeps
    its weight write port as top-level inputs (else its memory would be constant)."""
    p = _ports(core_text, core)
    n_in, n_out = p["i__payload"], p["o__payload"]
    wr = p.get("write__payload")
    ports = f"input clk, input [{n_in - 1}:0] x, output [{n_out - 1}:0] y"
    conns = ".clk(clk), .rst(1'b0), .i__payload(x_r), .i__valid(1'b1), .o__payload(y), " \
            ".o__ready(1'b1)"
    if wr:
        ports += f", input [{wr - 1}:0] wp, input wv"
        conns += ", .write__payload(wp), .write__valid(wv)"
    reg = f"  reg [{n_in - 1}:0] x_r;\n  always @(posedge clk) x_r <= x;\n" if register_inputs \
        else f"  wire [{n_in - 1}:0] x_r = x;\n"
    return (f"{core_text}\nmodule {top}({ports});\n{reg}  {core} c({conns});\nendmodule\n")


def constants_verilog(w: np.ndarray, top: str) -> str:
    """``y_j = sum_i W[j][i] * x_i`` as Verilog products of constants (zero weights left
    out), each output exactly as wide as its range; inputs and outputs registered."""
    n_out, n_in = w.shape
    lines = [f"  wire signed [7:0] x{i} = x_r[{8 * i + 7}:{8 * i}];" for i in range(n_in)]
    outs, off = [], 0
    for j in range(n_out):
        pos, neg = np.clip(w[j], 0, None), np.clip(w[j], None, 0)
        lo, hi = int(pos.sum() * -128 + neg.sum() * 127), int(pos.sum() * 127 + neg.sum() * -128)
        width = signed_width(lo, hi)
        terms = [f"x{i} * {'-' if v < 0 else ''}{width}'sd{abs(int(v))}"
                 for i, v in enumerate(w[j]) if v]
        lines.append(f"  wire signed [{width - 1}:0] s{j} = {' + '.join(terms) or '0'};")
        outs.append((off, width, f"s{j}"))
        off += width
    lines += [f"  always @(posedge clk) y[{o + wd - 1}:{o}] <= {s};" for o, wd, s in outs]
    return (f"// y = W x as constant products, left to synthesis ({n_out}x{n_in}).\n"
            f"module {top}(input clk, input [{8 * n_in - 1}:0] x, output reg [{off - 1}:0] y);\n"
            f"  reg [{8 * n_in - 1}:0] x_r;\n  always @(posedge clk) x_r <= x;\n"
            + "\n".join(lines) + "\nendmodule\n")


def da4ml_verilog(w: np.ndarray, top: str) -> tuple[str, int]:
    """da4ml's own Verilog for ``y = W @ x`` (int8 inputs): its tracing front end
    (``FixedVariableArray @ kernel``, which calls the same ``cmvm.solve`` as this project's
    planner, once), ``comb_trace`` and its combinational Verilog generator with its
    ``shift_adder``/``negative`` primitives, under a top with registered inputs and outputs.
    Returns the text and da4ml's adder count."""
    from da4ml.codegen.rtl import verilog as dv
    from da4ml.trace import FixedVariableArray, comb_trace

    n_out, n_in = w.shape
    inp = FixedVariableArray.from_kif(np.ones(n_in, np.int8), np.full(n_in, 7),
                                      np.zeros(n_in, np.int8))
    comb = comb_trace(inp, inp @ np.ascontiguousarray(w.T, dtype=np.float32))
    core = dv.comb_logic_gen(comb, f"{top}_comb")
    adders = sum(1 for op in comb.ops if op.opcode in (0, 1))
    src = Path(dv.__file__).parent / "source"
    prims = "\n".join((src / f"{m}.v").read_text() for m in ("shift_adder", "negative"))
    from da4ml.types import minimal_kif

    # model_inp packs the inputs da4ml uses, first at the least significant end; an input
    # no output reads (a zero column) has no bits there.
    widths = [sum(minimal_kif(q)) for q in comb.inp_qint]
    assert set(widths) <= {0, 8}, widths
    used = [f"x_r[{8 * i + 7}:{8 * i}]" for i, wd in enumerate(widths) if wd]
    n_bits_out = int(re.search(r"output \[(\d+):0\] model_out", core).group(1)) + 1
    wrapper = (f"module {top}(input clk, input [{8 * n_in - 1}:0] x, "
               f"output reg [{n_bits_out - 1}:0] y);\n"
               f"  reg [{8 * n_in - 1}:0] x_r;\n  wire [{n_bits_out - 1}:0] y_c;\n"
               f"  always @(posedge clk) begin x_r <= x; y <= y_c; end\n"
               f"  {top}_comb c(.model_inp({{{', '.join(reversed(used))}}}), "
               f".model_out(y_c));\nendmodule\n")
    return "\n".join([prims, core, wrapper]), adders


def input_register_verilog(n_bits: int, top: str) -> str:
    return (f"module {top}(input clk, input [{n_bits - 1}:0] x, output reg [{n_bits - 1}:0] y);"
            f"\n  always @(posedge clk) y <= x;\nendmodule\n")


def _depthwise_matrix(taps: np.ndarray):
    c = taps.shape[0]
    w = np.zeros((c, 9 * c), dtype=np.int64)
    mask = np.zeros(w.shape, bool)
    for k in range(9):
        w[np.arange(c), k * c + np.arange(c)] = taps[:, k]
        mask[np.arange(c), k * c + np.arange(c)] = True
    return w, mask


def matrix_cases(sizes, depthwise, seed, zeros_sizes=None):
    """``(shape label, kind, density, W, mask, frozen graph or None)`` per case: each size
    dense and (if in ``zeros_sizes``, default all) with 50 % zeros, then depthwise."""
    dense, sparse, dw = [], [], []
    for n in sizes:
        for zeros, to in ((0.0, dense), (0.5, sparse)):
            if zeros and zeros_sizes is not None and n not in zeros_sizes:
                continue
            w = gaussian_int8(np.random.default_rng([seed, n, int(zeros * 100)]), n, n, zeros)
            to.append((f"{n}x{n}", "matrix", 1 - zeros, w, np.ones(w.shape, bool), None))
    for c in depthwise:
        taps = gaussian_int8(np.random.default_rng([seed, c, 9]), c, 9)
        w, mask = _depthwise_matrix(taps)
        dw.append((f"dw{c}", "depthwise", 1.0, w, mask, plan_depthwise(taps)))
    # Synthesized in this order (a run cut short with --cache keeps what it finished).
    return dense + dw + sorted(sparse, key=lambda c: c[3].size)


def run_matrices(synth: Synth, sizes, depthwise, seed, check_rows=False, zeros_sizes=None):
    """Synthesize every variant of every case; returns the records. ``check_rows``: the
    smallest dense matrix's configurable layer is also synthesized whole
    (``configurable_whole``)."""
    units, meta = {}, {}
    for label, kind, density, w, mask, graph in matrix_cases(sizes, depthwise, seed,
                                                             zeros_sizes):
        n_out, n_in = w.shape
        case = f"{label}_d{int(round(density * 100))}"
        fz = FrozenMatVec(w, graph=graph) if graph is not None else FrozenMatVec(w)
        units[(case, "frozen")] = (wrap_project(fz.verilog("core"), "core", "top"), "top")
        plan = fz.graph.pipelined(fz.levels_per_stage, -128, 127)
        meta[(case, "frozen")] = {"plan_adders": fz.graph.adders,
                                  "plan_adder_bits": sum(op.width for op in plan.ops
                                                         if op.kind in ("add", "neg")),
                                  "plan_register_bits": fz.report()["register_bits"],
                                  "latency_cycles": fz.latency}
        # Configurable: every output row is the same netlist (weights are run-time data, one
        # multiplier per weight, one adder tree per row; rows share only the inputs), so
        # one row is synthesized, without input registers, and counted n_out times; the
        # input registers are a unit of their own. The configurable layer is the same for
        # any weight values: the 50 % case reuses the dense one's netlist.
        cm = ConfigurableMatVec(n_in, 1, mask=mask[:1])
        units[(case, "configurable_row")] = (
            wrap_project(cm.verilog("core"), "core", "top", register_inputs=False), "top")
        units[(case, "input_registers")] = (input_register_verilog(8 * n_in, "top"), "top")
        whole = ConfigurableMatVec(n_in, n_out, mask=mask)
        full = whole.report()
        tree_bits = sum(op.width for t in whole.taps if t
                        for op in whole.trees[len(t)].pipelined(
                            whole.levels_per_stage, *whole.product_range).ops
                        if op.kind in ("add", "neg"))
        meta[(case, "configurable")] = {"plan_adders": full["adders"],
                                        "plan_adder_bits": tree_bits,
                                        "plan_multipliers": full["multipliers"],
                                        "plan_register_bits": full["register_bits"],
                                        "latency_cycles": full["latency_cycles"],
                                        "rows_synthesized": 1, "rows": n_out}
        if check_rows and sizes and case == f"{min(sizes)}x{min(sizes)}_d100":
            units[(case, "configurable_whole")] = (wrap_project(
                ConfigurableMatVec(n_in, n_out, mask=mask).verilog("core"), "core", "top"),
                "top")
            meta[(case, "configurable_whole")] = dict(meta[(case, "configurable")],
                                                      rows_synthesized=n_out)
        text, adders = da4ml_verilog(w, "top")
        units[(case, "da4ml")] = (text, "top")
        meta[(case, "da4ml")] = {"plan_adders": adders, "latency_cycles": 1}
        units[(case, "constants")] = (constants_verilog(w, "top"), "top")
        meta[(case, "constants")] = {"latency_cycles": 1}
        meta[case] = {"shape": label if kind == "depthwise" else label, "kind": kind,
                      "density": density, "weights": int(mask.sum()),
                      "nonzero_weights": int(np.count_nonzero(w)), "n_in": n_in,
                      "n_out": n_out}
    res = synth.run({f"{c}/{v}": u for (c, v), u in units.items()})
    records = []
    for case in dict.fromkeys(c for c, _v in units):
        info = meta[case]
        variants = ["frozen", "configurable", "da4ml", "constants"]
        if (case, "configurable_whole") in units:
            variants.append("configurable_whole")
        for variant in variants:
            if variant == "configurable":
                row, inreg = res[f"{case}/configurable_row"], res[f"{case}/input_registers"]
                n = info["n_out"]
                counts = {k: row[k] * n + inreg[k] for k in _summable(row)}
                counts["memory_bits"] = row["memory_bits"] * n
                counts["seconds"] = round(row["seconds"] + inreg["seconds"], 2)
                for flow in synth.flows:
                    counts[f"seconds_{flow}"] = round(row[f"seconds_{flow}"]
                                                      + inreg[f"seconds_{flow}"], 2)
            else:
                r = res[f"{case}/{variant}"]
                counts = {k: v for k, v in r.items() if k != "memories"}
            counts.update(_derived(counts))
            records.append({"shape": info["shape"], "kind": info["kind"],
                            "density": info["density"], "variant": variant,
                            "weights": info["weights"],
                            "nonzero_weights": info["nonzero_weights"],
                            **meta[(case, variant)], **counts})
    _add_ratios(records, synth.flows)
    return records


def _summable(r: dict) -> list[str]:
    return [k for flow, keys in SUMMED.items() for k in keys if k in r]


def _derived(r: dict) -> dict:
    """Counts derived from the netlist's: transistors outside flip-flops, and ECP5 logic in
    LUT4 equivalents (a CCU2C carry cell takes the place of two LUT4s)."""
    d = {}
    if "transistors" in r:
        d["transistors_logic"] = None if r["transistors"] is None else \
            r["transistors"] - r["transistors_ff"]
    if "ecp5_lut4" in r:
        d["ecp5_lut4_equiv"] = None if r["ecp5_lut4"] is None else \
            r["ecp5_lut4"] + 2 * r["ecp5_ccu2"]
    return d


def _metrics(flows):
    m = []
    if "generic" in flows:
        m += ["transistors", "transistors_logic", "generic_cells"]
    if "ice40" in flows:
        m += ["ice40_lut4"]
    if "ecp5" in flows:
        m += ["ecp5_lut4", "ecp5_lut4_equiv"]
    return m


def _add_ratios(records, flows):
    """``<metric>_vs_configurable``: this variant's count over the configurable one's."""
    conf = {(r["shape"], r["density"]): r for r in records if r["variant"] == "configurable"}
    for r in records:
        c = conf[(r["shape"], r["density"])]
        for m in _metrics(flows):
            r[f"{m}_vs_configurable"] = round(r[m] / c[m], 4) \
                if c[m] and r[m] is not None else None


# -- Table 3 and the sweep: backbones synthesized part by part --------------------------------

def _stub(component, module: str) -> str:
    """A blackbox module with ``component``'s ports (what a part looks like from outside)."""
    ports = [(n, len(Value.cast(v)), f) for n, v, f in port_members(component)]
    decl = [f"  {'input' if f == wiring.In else 'output'} "
            f"{'' if w == 1 else f'[{w - 1}:0] '}{n};" for n, w, f in ports]
    return "\n".join(["(* blackbox *)",
                      f"module {module}({', '.join(['clk', 'rst', *(n for n, _w, _f in ports)])});",
                      "  input clk;", "  input rst;", *decl, "endmodule", ""])


@contextlib.contextmanager
def _as_stubs(components):
    """While active, each of ``components`` emits as a blackbox stub (:func:`part_text`
    reads an object's ``verilog`` and ``verilog_parts`` attributes)."""
    for c in components:
        c.verilog = lambda module, c=c: _stub(c, module)
        c.verilog_parts = lambda: {}
    try:
        yield
    finally:
        for c in components:
            del c.verilog, c.verilog_parts


@contextlib.contextmanager
def _with_parts(component, parts: dict):
    component.verilog_parts = lambda: parts
    try:
        yield
    finally:
        del component.verilog_parts


def _conv_module(layer: str) -> str:
    """Module name of a convolution part: ``bb__frozen_m1_0__dw``, ``bb__a_stem``."""
    core, *rest = layer.split(".")
    if rest == ["stem"]:
        return f"bb__{core}_stem"
    return f"bb__{core}_{rest[0]}_{rest[1]}__{rest[2]}"


def _fingerprint(comp) -> str | None:
    """What a part's netlist is built from (its text is reused when this repeats): a
    convolution's own fingerprint, a block's convolutions and sizes; ``None`` otherwise."""
    if isinstance(comp, Conv):
        return comp.fingerprint()
    if hasattr(comp, "layers"):
        h = hashlib.sha256(type(comp).__name__.encode())
        for attr in ("channels", "width", "height", "bypass_depth", "skew_depth"):
            h.update(f"{attr}={getattr(comp, attr, None)};".encode())
        for name, conv in comp.layers.items():
            h.update(f"{name}={conv.fingerprint()};".encode())
        return h.hexdigest()
    return None


class Texts:
    """Verilog of parts, emitted once per fingerprint and renamed for each module name
    (the same convolution or block in several configurations, or in core a and core b)."""

    def __init__(self):
        self.memo: dict[str, tuple[str, str]] = {}

    def get(self, key: str | None, module: str, make) -> str:
        if key is None:
            return make()
        if key not in self.memo:
            self.memo[key] = (module, make())
        old, text = self.memo[key]
        return text if old == module else re.sub(rf"\b{old}(?=\b|__)", module, text)


def backbone_units(dut: Backbone, texts: Texts) -> dict:
    """``{unit: (group, text, top)}`` for a backbone: the top's own glue (every child a
    blackbox), each stem, each block's glue, each conv, each blend and shuffle. Groups:
    ``frozen``, ``a``, ``b`` (cores), ``blends``, ``shuffle``, ``glue``."""
    children, units = {}, {}
    for core in dut.net.cores:
        children[f"bb__{core}_stem"] = (core, dut.stems[core])
        for i, stage in enumerate(dut.stages[core], 1):
            for j, block in enumerate(stage):
                children[f"bb__{core}_m{i}_{j}"] = (core, block)
    for name, blend in dut.blends.items():
        core, mod, _ = name.split(".")
        children[f"bb__{core}_blend{mod[1:]}"] = ("blends", blend)
    for i, sh in enumerate(dut.shuffles, 1):
        children[f"bb__shuffle{i}"] = ("shuffle", sh)
    comps = {m: c for m, (_g, c) in children.items()}
    with _as_stubs(comps.values()):
        units["bb"] = ("glue", to_verilog_parts(dut, "bb", comps), "bb")
    for module, (group, comp) in children.items():
        if not hasattr(comp, "layers"):  # a stem, blend or shuffle
            units[module] = (group, texts.get(_fingerprint(comp), module,
                                              lambda c=comp, m=module: part_text(c, m)), module)
            continue
        convs = dict(comp.layers)

        def glue(comp=comp, module=module, convs=convs):
            with _as_stubs(convs.values()), _with_parts(comp, convs):
                return part_text(comp, module)
        units[module] = (group, texts.get(_fingerprint(comp), module, glue), module)
        for name, conv in comp.layers.items():
            m = f"{module}__{name}"
            units[m] = (group, texts.get(conv.fingerprint(), m,
                                         lambda c=conv, m=m: part_text(c, m)), m)
    return units


def _table3_params(seed):
    """Parameters by layer name for every Table 3 configuration: those of the largest
    (two_cores_shuffle), core b given core a's (its netlist does not depend on them:
    trainable weights, scales, biases and alphas are memory contents)."""
    params = random_params(preset("two_cores_shuffle"), np.random.default_rng(seed))
    for name in list(params):
        if name.startswith("b."):
            params[name] = params["a." + name[2:]]
    return params


def _subset(net, params):
    names = [c.name for c in net.convs()] + [b.name for b in net.blends()]
    return {n: params[n] for n in names}


def _sum(records, flows):
    keys = [k for f in flows for k in SUMMED[f]] + ["memory_bits"]
    total = {k: sum(r.get(k, 0) for r in records) for k in keys}
    return {**total, **_derived(total)}


def run_table3(synth: Synth, seed, texts: Texts, flows):
    params = _table3_params(seed)
    configs, all_units = {}, {}
    for name in TABLE3:
        net = preset(name)
        dut = Backbone(net, _subset(net, params))
        units = backbone_units(dut, texts)
        rep = dut.report()
        configs[name] = {"units": units, "net": net.to_dict(), "plan": {
            k: rep[k] for k in ("frozen_weights", "configurable_weights", "adders",
                                "multipliers", "parameter_memory_bits", "line_buffer_bits",
                                "balance_fifo_bits")}}
        for u, (_g, text, top) in units.items():
            all_units[(name, u)] = (text, top)
    res = synth.run({f"{c}/{u}": v for (c, u), v in all_units.items()}, flows)
    out = {}
    for name, cfg in configs.items():
        groups = {}
        for u, (g, _t, _top) in cfg["units"].items():
            groups.setdefault(g, []).append(res[f"{name}/{u}"])
        by_group = {g: _sum(rs, flows) for g, rs in groups.items()}
        total = _sum([r for rs in groups.values() for r in rs], flows)
        out[name] = {"network": cfg["net"], "plan": cfg["plan"], "groups": by_group,
                     "total": total, "parts": len(cfg["units"]),
                     "seconds": round(sum(res[f"{name}/{u}"]["seconds"]
                                          for u in cfg["units"]), 2)}
    base = out["two_cores_shuffle"]["total"]
    for name, r in out.items():
        r["normalized"] = {m: round(r["total"][m] / base[m], 3) for m in _metrics(flows)}
        r["paper_mm2"] = PAPER_MM2[name]
        r["paper_normalized"] = round(PAPER_MM2[name] / PAPER_MM2["two_cores_shuffle"], 3)
    return out


def _structure(spec) -> tuple:
    """What a configurable convolution's netlist depends on (its weights, scales and
    biases are memory contents, counted in bits, not mapped)."""
    return (spec.kind, spec.c_in, spec.c_out, spec.stride, spec.relu,
            spec.width if spec.kind != "pointwise" else 0,
            spec.height if spec.kind != "pointwise" else 0)


def run_sweep(synth: Synth, seed, texts: Texts, flows, targets=(0.0, 0.5, 0.75, 1.0)):
    """The frozen core of the Table 3 build, its first ``k`` convolutions frozen and the
    rest configurable, for every ``k``; the block glue (bypass and skew FIFOs, joins) is the
    frozen build's at every point. A configurable convolution's memory contents do not
    change its netlist, so each configurable twin is built with the parameters of a
    convolution of the same structure in trainable core ``a`` where there is one (the
    Table 3 run synthesized it already), else of the first frozen one of its structure."""
    net = preset("frozen_only")
    all_params = _table3_params(seed)
    params = _subset(net, all_params)
    dut = Backbone(net, params)
    glue = {u: v for u, v in backbone_units(dut, texts).items()
            if v[0] == "frozen" and u.count("__") == 1 and not u.endswith("_stem")}
    specs = [c for c in net.convs() if c.name.startswith("frozen.")]
    donors = {}
    for c in preset("two_cores_shuffle").convs():
        if c.name.startswith("a."):
            donors.setdefault(_structure(c), (c.name, all_params[c.name]))
    for c in specs:
        donors.setdefault(_structure(c), (c.name, params[c.name]))
    units = {}
    for spec in specs:
        module = _conv_module(spec.name)
        for configurable in (False, True):
            donor, p = donors[_structure(spec)] if configurable else \
                (spec.name, params[spec.name])
            conv = Conv(spec.kind, p.weight, width=spec.width, height=spec.height,
                        stride=spec.stride, shift=p.shift, relu=spec.relu,
                        scale_init=p.scale.tolist(), bias_init=p.bias.tolist(),
                        configurable=configurable)
            units[(spec.name, configurable)] = (
                texts.get(conv.fingerprint(), module, lambda c=conv, m=module: part_text(c, m)),
                module)
    res = synth.run({**{f"{n}/{int(c)}": u for (n, c), u in units.items()},
                     **{f"glue/{u}": (t, top) for u, (_g, t, top) in glue.items()}}, flows)
    glue_sum = _sum([res[f"glue/{u}"] for u in glue], flows)
    weights = [int(np.prod(s.weight_shape)) for s in specs]
    total_w = sum(weights)
    points = []
    for k in range(len(specs) + 1):
        parts = [res[f"{s.name}/{int(i >= k)}"] for i, s in enumerate(specs)]
        area = _sum(parts + [glue_sum], flows)
        points.append({"frozen_layers": k, "layers": len(specs),
                       "frozen_weights": sum(weights[:k]), "weights": total_w,
                       "frozen_fraction": round(sum(weights[:k]) / total_w, 4), **area})
    ref = points[0]
    for pnt in points:
        pnt["normalized"] = {m: round(pnt[m] / ref[m], 4) for m in _metrics(flows)}
    chosen = {}
    for t in targets:
        best = min(points, key=lambda p: (abs(p["frozen_fraction"] - t), p["frozen_layers"]))
        chosen[str(t)] = best["frozen_layers"]
    return {"network": net.to_dict(), "points": points, "targets": chosen,
            "order": [s.name for s in specs]}


# -- printing and plotting -------------------------------------------------------------------

def _fmt(v):
    return f"{v:,}" if isinstance(v, int) else "-" if v is None else f"{v:.3g}"


def print_matrices(records, flows):
    cols = _metrics(flows) + [k for k in ("generic_ffs", "ice40_carry", "ecp5_ccu2")
                              if any(k in r for r in records)]
    print(f"{'case':<12} {'variant':<13}" + "".join(f"{c:>22}" for c in cols) + f"{'s':>8}")
    for r in records:
        cells = []
        for c in cols:
            ratio = r.get(f"{c}_vs_configurable")
            cells.append(f"{_fmt(r[c])}" + (f" ({ratio:.3f})" if ratio is not None else ""))
        case = f"{r['shape']} d{int(r['density'] * 100)}"
        print(f"{case:<12} {r['variant']:<13}" + "".join(f"{c:>22}" for c in cells)
              + f"{r['seconds']:>8.1f}")


def _short(m: str) -> str:
    return {"transistors": "transistors", "transistors_logic": "logic T",
            "generic_cells": "gen. cells", "ice40_lut4": "iCE40 LUT4", "ecp5_lut4": "ECP5 LUT4",
            "ecp5_lut4_equiv": "ECP5 LUT4eq"}.get(m, m)


def print_table3(t3, flows):
    ms = _metrics(flows)
    print("Table 3, measured (totals; norm = / two_cores_shuffle):")
    print(f"{'configuration':<19}" + "".join(f"{_short(m):>13}" for m in ms)
          + f"{'mem bits':>10}")
    for name, r in t3.items():
        print(f"{name:<19}" + "".join(f"{r['total'][m]:>13,}" for m in ms)
              + f"{r['total']['memory_bits']:>10,}")
    print(f"{'normalized':<19}" + "".join(f"{_short(m):>13}" for m in ms)
          + f"{'paper mm2':>10}{'paper':>7}")
    for name, r in t3.items():
        print(f"{name:<19}" + "".join(f"{r['normalized'][m]:>13.3f}" for m in ms)
              + f"{r['paper_mm2']:>10}{r['paper_normalized']:>7.3f}")
    print("per part group (two_cores_shuffle):")
    for g, a in t3["two_cores_shuffle"]["groups"].items():
        print(f"{g:<19}" + "".join(f"{a[m]:>13,}" for m in ms) + f"{a['memory_bits']:>10,}")


def print_sweep(sw, flows):
    ms = _metrics(flows)
    print("Freezing sweep (frozen core; norm = / all configurable):")
    print(f"{'target':>6} {'frozen layers':>13} {'fraction':>9}"
          + "".join(f"{_short(m):>13}" for m in ms))
    for t, k in sw["targets"].items():
        p = sw["points"][k]
        print(f"{float(t):>6.2f} {k:>7}/{p['layers']:<5} {p['frozen_fraction']:>9.3f}"
              + "".join(f"{p[m]:>13,}" for m in ms))
        print(f"{'':>30}" + "".join(f"{p['normalized'][m]:>13.3f}" for m in ms))


def print_plan_vs_netlist(records):
    """The plan's estimates next to the netlist's counts, per matrix case: adders (the plan's
    adder bits against ECP5's carry bits, two per CCU2C) and flip-flops (the plan's register
    bits plus the input registers against each flow's flip-flops)."""
    print("Plan (estimate) vs netlist (measured):")
    print(f"{'case':<12} {'variant':<13}{'adders':>8}{'adder bits':>11}{'CCU2 bits':>10}"
          f"{'reg bits':>10}{'gen FF':>8}{'iCE40 FF':>9}{'ECP5 FF':>8}")
    for r in records:
        if r["variant"] not in ("frozen", "configurable") or "plan_register_bits" not in r:
            continue
        n_in = {"matrix": 1, "depthwise": 9}[r["kind"]] * int(r["shape"].split("x")[0]
                                                              .removeprefix("dw"))
        regs = r["plan_register_bits"] + 8 * n_in
        case = f"{r['shape']} d{int(r['density'] * 100)}"
        print(f"{case:<12} {r['variant']:<13}{r['plan_adders']:>8,}"
              f"{r.get('plan_adder_bits', 0):>11,}{2 * r.get('ecp5_ccu2', 0):>10,}"
              f"{regs:>10,}{r.get('generic_ffs', 0):>8,}{r.get('ice40_ff', 0):>9,}"
              f"{r.get('ecp5_ff', 0):>8,}")


def plot_sweep(sw, flows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    x = [p["frozen_fraction"] * 100 for p in sw["points"]]
    for m, style in zip(_metrics(flows), ("o-", "s--", "^-.", "v:", "D-", "x--"), strict=False):
        ax.plot(x, [p["normalized"][m] for p in sw["points"]], style, ms=3, label=m)
    for _t, k in sw["targets"].items():
        ax.axvline(sw["points"][k]["frozen_fraction"] * 100, color="0.85", lw=0.8, zorder=0)
    ax.set_xlabel("weights frozen (%)")
    ax.set_ylabel("area / all-configurable core")
    ax.set_title("Freezing sweep: frozen core of the Table 3 build (measured)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="write every record here")
    ap.add_argument("--plot", type=Path, help="write the sweep's plot (PNG) here")
    ap.add_argument("--parts", nargs="+", choices=("matrices", "table3", "sweep"),
                    default=["matrices", "table3", "sweep"])
    ap.add_argument("--sizes", type=int, nargs="*", default=[16, 32, 64])
    ap.add_argument("--zeros-sizes", type=int, nargs="*",
                    help="sizes also built with 50 %% zeros (default: all of --sizes)")
    ap.add_argument("--depthwise", type=int, nargs="*", default=[16, 32, 64],
                    help="channels of the depthwise 3x3 layers")
    ap.add_argument("--flows", nargs="+", choices=FLOWS, default=list(FLOWS))
    ap.add_argument("--core-flows", nargs="+", choices=FLOWS, default=["generic", "ecp5"],
                    help="flows for Table 3 and the sweep (fewer: their parts are many)")
    ap.add_argument("--check-rows", action="store_true",
                    help="also synthesize the smallest dense configurable layer whole, to "
                         "check the row-by-row count against it")
    ap.add_argument("--jobs", type=int, default=1, help="Yosys processes at a time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, help="reuse synthesis results kept here")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds one Yosys run may take; past it, that flow's counts are "
                         "null (recorded in not_measured)")
    ap.add_argument("--skip", nargs="*", default=[], metavar="UNIT:FLOW",
                    help="leave out one unit's flow (its counts are null), e.g. "
                         "64x64_d100/da4ml:generic")
    ap.add_argument("--report", type=Path, metavar="FILE",
                    help="print the tables of an earlier run's JSON; synthesize nothing")
    args = ap.parse_args(argv)
    if args.report:
        old = json.loads(args.report.read_text())
        if "table3" in old:
            print_table3(old["table3"], old["core_flows"])
        if "sweep" in old:
            print_sweep(old["sweep"], old["core_flows"])
        if "matrices" in old:
            print_matrices(old["matrices"], old["flows"])
            print_plan_vs_netlist(old["matrices"])
        return 0
    t0 = time.perf_counter()
    synth = Synth(args.flows, args.jobs, args.cache, args.skip, args.timeout)
    texts = Texts()
    out = {"yosys": yosys_version(), "flows": args.flows, "seed": args.seed,
           "jobs": args.jobs}
    core_flows = [f for f in args.flows if f in args.core_flows]
    out["core_flows"] = core_flows
    # Table 3 and the sweep first: their parts are small and many; the matrices take long.
    if "table3" in args.parts:
        t = time.perf_counter()
        out["table3"] = run_table3(synth, args.seed, texts, core_flows)
        out["table3_seconds"] = round(time.perf_counter() - t, 1)
        print_table3(out["table3"], core_flows)
    if "sweep" in args.parts:
        t = time.perf_counter()
        out["sweep"] = run_sweep(synth, args.seed, texts, core_flows)
        out["sweep_seconds"] = round(time.perf_counter() - t, 1)
        print_sweep(out["sweep"], core_flows)
        if args.plot:
            plot_sweep(out["sweep"], core_flows, args.plot)
    if "matrices" in args.parts:
        t = time.perf_counter()
        out["matrices"] = run_matrices(synth, args.sizes, args.depthwise, args.seed,
                                       args.check_rows, args.zeros_sizes)
        out["matrices_seconds"] = round(time.perf_counter() - t, 1)
        print_matrices(out["matrices"], args.flows)
        print_plan_vs_netlist(out["matrices"])
    out["yosys_seconds"] = round(synth.seconds, 1)
    # Every distinct synthesis's own time, whether run now or read from --cache.
    out["yosys_seconds_all_units"] = round(sum(r["seconds"] for r in synth.memo.values()), 1)
    out["total_seconds"] = round(time.perf_counter() - t0, 1)
    print(f"total {out['total_seconds']} s (Yosys {out['yosys_seconds']} s, "
          f"jobs {args.jobs}, {out['yosys']})")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
