# amaranth: UnusedElaboratable=no
"""Measured silicon: synthesis area of frozen vs configurable layers, the paper's Table 3,
and a freezing sweep.

    python bench/area.py --parts table3 sweep --jobs 2 --json bench/area_cores.json \
        --plot bench/area_sweep.png
    python bench/area.py --parts matrices --check-rows --jobs 2 --timeout 300 \
        --json bench/area_matrices.json --skip ...

Both take 24 minutes on 2 idle cores with the ``--skip`` list docs/performance.md gives
(8 and 16); the cut syntheses (ABC on da4ml's largest combinational netlists and on the
constant products) were each stopped after 10 to 15 minutes without a result.
``--one-stage`` adds the frozen layers built without internal register stages. The test
suite runs the smallest case only.

Every number here comes from a Yosys netlist (:mod:`generators.synth`: flows ``generic``
(gates and a CMOS transistor estimate), ``ice40`` and ``ecp5`` (LUT4, carries, flip-flops;
multipliers in LUTs, no DSPs)), never from the plan. Three parts (``--parts``):

* ``matrices``: for seeded int8 matrices (``--sizes``, dense and 50 % zeros) and depthwise
  3x3 layers (``--depthwise`` channels), four variants of ``y = W @ x``: ``frozen`` (this
  project's FrozenMatVec), ``configurable`` (ConfigurableMatVec: weights in memory,
  multipliers), ``da4ml`` (da4ml's own Verilog for the same matrix) and ``constants`` (the
  products written as ``x * w`` and left to Yosys), and with ``--one-stage``
  ``frozen_one_stage``. All have registered inputs and registered outputs; memories are
  counted in bits, not mapped.
* ``table3``: the five Table 3 configurations (the presets of ``spec.network``), emitted as
  a build emits them and synthesized part by part (:func:`generators.synth.part_units`:
  each convolution, each product, each block's glue, each blend and shuffle, the top's own
  glue), summed per core.
* ``sweep``: the frozen core of the same build with its first layers frozen and the rest
  configurable, area against the frozen fraction of its weights.

The JSON holds every record; seconds fields are the only ones that change between runs.
``--cache`` keeps synthesis results and emitted Verilog in the project's cache (for reruns;
published timings are from runs without it, which use a fresh temporary cache).
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from generators.synth import (  # noqa: E402
    FLOWS,
    Runner,
    add_up,
    derived,
    metrics,
    part_units,
    verilog_modules,
)
from semifreddo_hw.adder_graph import signed_width  # noqa: E402
from semifreddo_hw.backbone import Backbone  # noqa: E402
from semifreddo_hw.cmvm import plan_depthwise  # noqa: E402
from semifreddo_hw.conv import Conv  # noqa: E402
from semifreddo_hw.emit import part_text, to_verilog_parts  # noqa: E402
from semifreddo_hw.matvec import ConfigurableMatVec, FrozenMatVec  # noqa: E402
from spec.names import part_module  # noqa: E402
from spec.network import preset  # noqa: E402
from weights.synthetic import gaussian_int8, random_params  # noqa: E402

#: The paper's Table 3 area column (mm^2), configuration -> area.
PAPER_MM2 = {
    "two_cores_shuffle": 4.0,
    "two_cores": 4.0,
    "one_core": 2.66,
    "frozen_only": 1.32,
    "trainable_only": 2.68,
}
TABLE3 = tuple(PAPER_MM2)


# -- the four variants of one matrix ---------------------------------------------------------

_PORT = re.compile(r"^\s*(input|output)\s+(?:\[(-?\d+):0\]\s+)?(\w+);", re.MULTILINE)


def _ports(text: str, module: str) -> dict[str, int]:
    body = text[text.index(f"module {module}(") :]
    body = body[: body.index("endmodule")]
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
    conns = (
        ".clk(clk), .rst(1'b0), .i__payload(x_r), .i__valid(1'b1), .o__payload(y), .o__ready(1'b1)"
    )
    if wr:
        ports += f", input [{wr - 1}:0] wp, input wv"
        conns += ", .write__payload(wp), .write__valid(wv)"
    reg = (
        f"  reg [{n_in - 1}:0] x_r;\n  always @(posedge clk) x_r <= x;\n"
        if register_inputs
        else f"  wire [{n_in - 1}:0] x_r = x;\n"
    )
    return f"{core_text}\nmodule {top}({ports});\n{reg}  {core} c({conns});\nendmodule\n"


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
        terms = [
            f"x{i} * {'-' if v < 0 else ''}{width}'sd{abs(int(v))}" for i, v in enumerate(w[j]) if v
        ]
        lines.append(f"  wire signed [{width - 1}:0] s{j} = {' + '.join(terms) or '0'};")
        outs.append((off, width, f"s{j}"))
        off += width
    lines += [f"  always @(posedge clk) y[{o + wd - 1}:{o}] <= {s};" for o, wd, s in outs]
    return (
        f"// y = W x as constant products, left to synthesis ({n_out}x{n_in}).\n"
        f"module {top}(input clk, input [{8 * n_in - 1}:0] x, output reg [{off - 1}:0] y);\n"
        f"  reg [{8 * n_in - 1}:0] x_r;\n  always @(posedge clk) x_r <= x;\n"
        + "\n".join(lines)
        + "\nendmodule\n"
    )


def da4ml_verilog(w: np.ndarray, top: str) -> tuple[str, int]:
    """da4ml's own Verilog for ``y = W @ x`` (int8 inputs): its tracing front end
    (``FixedVariableArray @ kernel``, which calls the same ``cmvm.solve`` as this project's
    planner, once), ``comb_trace`` and its combinational Verilog generator with its
    ``shift_adder``/``negative`` primitives, under a top with registered inputs and outputs.
    Returns the text and da4ml's adder count."""
    from da4ml.codegen.rtl import verilog as dv
    from da4ml.trace import FixedVariableArray, comb_trace

    n_out, n_in = w.shape
    inp = FixedVariableArray.from_kif(
        np.ones(n_in, np.int8), np.full(n_in, 7), np.zeros(n_in, np.int8)
    )
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
    wrapper = (
        f"module {top}(input clk, input [{8 * n_in - 1}:0] x, "
        f"output reg [{n_bits_out - 1}:0] y);\n"
        f"  reg [{8 * n_in - 1}:0] x_r;\n  wire [{n_bits_out - 1}:0] y_c;\n"
        f"  always @(posedge clk) begin x_r <= x; y <= y_c; end\n"
        f"  {top}_comb c(.model_inp({{{', '.join(reversed(used))}}}), "
        f".model_out(y_c));\nendmodule\n"
    )
    return "\n".join([prims, core, wrapper]), adders


def input_register_verilog(n_bits: int, top: str) -> str:
    return (
        f"module {top}(input clk, input [{n_bits - 1}:0] x, output reg [{n_bits - 1}:0] y);"
        f"\n  always @(posedge clk) y <= x;\nendmodule\n"
    )


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


def _frozen_unit(fz: FrozenMatVec) -> tuple[tuple[str, str], dict]:
    """A frozen layer's unit (under the common top) and its plan's counts."""
    plan = fz.graph.pipelined(fz.levels_per_stage, -128, 127)
    return (wrap_project(part_text(fz, "core"), "core", "top"), "top"), {
        "plan_adders": fz.graph.adders,
        "plan_adder_bits": sum(op.width for op in plan.ops if op.kind in ("add", "neg")),
        "plan_register_bits": fz.report()["register_bits"],
        "latency_cycles": fz.latency,
        "levels_per_stage": fz.levels_per_stage,
    }


def run_matrices(
    runner: Runner, sizes, depthwise, seed, check_rows=False, zeros_sizes=None, one_stage=False
):
    """Synthesize every variant of every case; returns the records. ``check_rows``: the
    smallest dense matrix's configurable layer is also synthesized whole
    (``configurable_whole``). ``one_stage``: the frozen layer also built with one register
    stage, no internal pipeline (``frozen_one_stage``: the same plan, ``levels_per_stage``
    its depth), the timing da4ml's netlist has."""
    units, meta = {}, {}
    for label, kind, density, w, mask, graph in matrix_cases(sizes, depthwise, seed, zeros_sizes):
        n_out, n_in = w.shape
        case = f"{label}_d{int(round(density * 100))}"
        fz = FrozenMatVec(w, graph=graph) if graph is not None else FrozenMatVec(w)
        units[(case, "frozen")], meta[(case, "frozen")] = _frozen_unit(fz)
        if one_stage:
            one = FrozenMatVec(w, graph=fz.graph, levels_per_stage=max(1, fz.graph.depth))
            units[(case, "frozen_one_stage")], meta[(case, "frozen_one_stage")] = _frozen_unit(one)
        # Configurable: every output row is the same netlist (weights are run-time data, one
        # multiplier per weight, one adder tree per row; rows share only the inputs), so
        # one row is synthesized, without input registers, and counted n_out times; the
        # input registers are a unit of their own. The configurable layer is the same for
        # any weight values: the 50 % case reuses the dense one's netlist.
        cm = ConfigurableMatVec(n_in, 1, mask=mask[:1])
        units[(case, "configurable_row")] = (
            wrap_project(part_text(cm, "core"), "core", "top", register_inputs=False),
            "top",
        )
        units[(case, "input_registers")] = (input_register_verilog(8 * n_in, "top"), "top")
        whole = ConfigurableMatVec(n_in, n_out, mask=mask)
        full = whole.report()
        tree_bits = sum(
            op.width
            for t in whole.taps
            if t
            for op in whole.trees[len(t)]
            .pipelined(whole.levels_per_stage, *whole.product_range)
            .ops
            if op.kind in ("add", "neg")
        )
        meta[(case, "configurable")] = {
            "plan_adders": full["adders"],
            "plan_adder_bits": tree_bits,
            "plan_multipliers": full["multipliers"],
            "plan_register_bits": full["register_bits"],
            "latency_cycles": full["latency_cycles"],
            "rows_synthesized": 1,
            "rows": n_out,
        }
        if check_rows and sizes and case == f"{min(sizes)}x{min(sizes)}_d100":
            units[(case, "configurable_whole")] = (
                wrap_project(part_text(whole, "core"), "core", "top"),
                "top",
            )
            meta[(case, "configurable_whole")] = dict(
                meta[(case, "configurable")], rows_synthesized=n_out
            )
        text, adders = da4ml_verilog(w, "top")
        units[(case, "da4ml")] = (text, "top")
        meta[(case, "da4ml")] = {"plan_adders": adders, "latency_cycles": 1}
        units[(case, "constants")] = (constants_verilog(w, "top"), "top")
        meta[(case, "constants")] = {"latency_cycles": 1}
        meta[case] = {
            "shape": label,
            "kind": kind,
            "density": density,
            "weights": int(mask.sum()),
            "nonzero_weights": int(np.count_nonzero(w)),
            "n_in": n_in,
            "n_out": n_out,
        }
    res = runner.run({f"{c}/{v}": u for (c, v), u in units.items()})
    flows = runner.flows
    records = []
    for case in dict.fromkeys(c for c, _v in units):
        info = meta[case]
        variants = ["frozen", "configurable", "da4ml", "constants"]
        variants += [v for v in ("frozen_one_stage", "configurable_whole") if (case, v) in units]
        for variant in variants:
            if variant == "configurable":
                row, inreg = res[f"{case}/configurable_row"], res[f"{case}/input_registers"]
                counts = add_up([row, inreg], flows, [info["n_out"], 1])
                for key in ("seconds", *(f"seconds_{f}" for f in flows)):
                    both = (row.get(key), inreg.get(key))
                    counts[key] = None if None in both else round(sum(both), 2)
                if "not_measured" in row:
                    counts["not_measured"] = row["not_measured"]
            else:
                counts = {k: v for k, v in res[f"{case}/{variant}"].items() if k != "memories"}
                counts.update(derived(counts))
            records.append(
                {
                    "shape": info["shape"],
                    "kind": info["kind"],
                    "density": info["density"],
                    "variant": variant,
                    "weights": info["weights"],
                    "nonzero_weights": info["nonzero_weights"],
                    "n_in": info["n_in"],
                    "n_out": info["n_out"],
                    **meta[(case, variant)],
                    **counts,
                }
            )
    _add_ratios(records, flows)
    return records


def _add_ratios(records, flows):
    """``<metric>_vs_configurable``: this variant's count over the configurable one's."""
    conf = {(r["shape"], r["density"]): r for r in records if r["variant"] == "configurable"}
    for r in records:
        c = conf[(r["shape"], r["density"])]
        for m in metrics(flows):
            ok = c.get(m) and r.get(m) is not None
            r[f"{m}_vs_configurable"] = round(r[m] / c[m], 4) if ok else None


# -- Table 3 and the sweep: backbones synthesized part by part --------------------------------

#: First-level modules of a backbone synthesized as parts of their own, beside the
#: convolutions (``part_units`` makes every convolution and product a part): blocks,
#: blends, shuffles. Whatever else the top holds (balancing FIFOs, register slices, the
#: parameter bus) stays in the top's part, the glue.
_SUBPARTS = re.compile(r"(?P<core>frozen|a|b)_m\d+_\d+|(?P<blend>a|b)_blend\d+|shuffle\d+")


def _group(root: str, top: str) -> str:
    """Which total a part adds to: ``frozen``, ``a``, ``b`` (cores), ``blends``, ``shuffle``
    or ``glue`` (the top's own part)."""
    if root == top:
        return "glue"
    name = root.removeprefix(f"{top}.").removeprefix(f"{top}__")
    m = _SUBPARTS.fullmatch(name)
    if m is not None:
        return m["core"] or ("blends" if m["blend"] else "shuffle")
    return name.split("_")[0]  # a convolution or product part: <core>_...


def backbone_units(dut: Backbone, top: str = "bb") -> dict:
    """``{root: (group, Part)}``: ``dut`` emitted as a build emits it (its convolutions as
    parts), cut into the parts of :func:`generators.synth.part_units` plus blocks, blends
    and shuffles."""
    text = to_verilog_parts(dut, top, dut.parts(top), use_cache=True)
    subparts = [n for n in verilog_modules(text) if n.count(".") == 1 and n.startswith(f"{top}.")]
    subparts = [n for n in subparts if _SUBPARTS.fullmatch(n.split(".", 1)[1])]
    return {root: (_group(root, top), p) for root, p in part_units(text, top, subparts).items()}


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
    """``[(merged counts, instances)]`` added up."""
    return add_up([r for r, _n in records], flows, [n for _r, n in records])


def run_table3(runner: Runner, seed, flows):
    params = _table3_params(seed)
    configs, all_units = {}, {}
    for name in TABLE3:
        net = preset(name)
        dut = Backbone(net, _subset(net, params))
        units = backbone_units(dut)
        rep = dut.report()
        keys = (
            "frozen_weights",
            "configurable_weights",
            "adders",
            "multipliers",
            "parameter_memory_bits",
            "line_buffer_bits",
            "balance_fifo_bits",
        )
        configs[name] = {
            "units": units,
            "net": net.to_dict(),
            "plan": {k: rep[k] for k in keys},
        }
        for u, (_g, part) in units.items():
            all_units[f"{name}/{u}"] = (part.text, u)
    res = runner.run(all_units, flows)
    out = {}
    for name, cfg in configs.items():
        groups = {}
        for u, (g, part) in cfg["units"].items():
            groups.setdefault(g, []).append((res[f"{name}/{u}"], part.count))
        out[name] = {
            "network": cfg["net"],
            "plan": cfg["plan"],
            "groups": {g: _sum(rs, flows) for g, rs in groups.items()},
            "total": _sum([r for rs in groups.values() for r in rs], flows),
            "parts": len(cfg["units"]),
            "seconds": round(sum(res[f"{name}/{u}"]["seconds"] for u in cfg["units"]), 2),
        }
    base = out["two_cores_shuffle"]["total"]
    for name, r in out.items():
        r["normalized"] = {m: round(r["total"][m] / base[m], 3) for m in metrics(flows)}
        r["paper_mm2"] = PAPER_MM2[name]
        r["paper_normalized"] = round(PAPER_MM2[name] / PAPER_MM2["two_cores_shuffle"], 3)
    return out


def _structure(spec) -> tuple:
    """What a configurable convolution's netlist depends on (its weights, scales and
    biases are memory contents, counted in bits, not mapped)."""
    return (
        spec.kind,
        spec.c_in,
        spec.c_out,
        spec.stride,
        spec.relu,
        spec.width if spec.kind != "pointwise" else 0,
        spec.height if spec.kind != "pointwise" else 0,
    )


def run_sweep(runner: Runner, seed, flows, targets=(0.0, 0.5, 0.75, 1.0), top="bb"):
    """The frozen core of the Table 3 build, its first ``k`` convolutions frozen and the
    rest configurable, for every ``k``; the block glue (bypass and skew FIFOs, joins) is the
    frozen build's at every point. A configurable convolution's memory contents do not
    change its netlist, so each configurable twin is built with the parameters of a
    convolution of the same structure in trainable core ``a`` where there is one (the
    Table 3 run synthesized it already), else of the first frozen one of its structure."""
    net = preset("frozen_only")
    all_params = _table3_params(seed)
    params = _subset(net, all_params)
    glue = {
        u: part
        for u, (g, part) in backbone_units(Backbone(net, params), top).items()
        if g == "frozen" and u.startswith(f"{top}.")
    }
    specs = [c for c in net.convs() if c.name.startswith("frozen.")]
    donors = {}
    for c in preset("two_cores_shuffle").convs():
        if c.name.startswith("a."):
            donors.setdefault(_structure(c), (c.name, all_params[c.name]))
    for c in specs:
        donors.setdefault(_structure(c), (c.name, params[c.name]))
    units, parts_of = {}, {}
    for spec in specs:
        module = part_module(top, spec.name)
        for configurable in (False, True):
            p = donors[_structure(spec)][1] if configurable else params[spec.name]
            conv = Conv(
                spec.kind,
                p.weight,
                width=spec.width,
                height=spec.height,
                stride=spec.stride,
                shift=p.shift,
                relu=spec.relu,
                scale_init=p.scale.tolist(),
                bias_init=p.bias.tolist(),
                configurable=configurable,
            )
            parts = part_units(part_text(conv, module), module)
            parts_of[(spec.name, configurable)] = [
                (f"{spec.name}/{int(configurable)}/{r}", p.count) for r, p in parts.items()
            ]
            for r, part in parts.items():
                units[f"{spec.name}/{int(configurable)}/{r}"] = (part.text, r)
    units |= {f"glue/{u}": (part.text, u) for u, part in glue.items()}
    res = runner.run(units, flows)
    glue_sum = _sum([(res[f"glue/{u}"], part.count) for u, part in glue.items()], flows)
    weights = [int(np.prod(s.weight_shape)) for s in specs]
    total_w = sum(weights)
    points = []
    for k in range(len(specs) + 1):
        parts = [(res[u], n) for i, s in enumerate(specs) for u, n in parts_of[(s.name, i >= k)]]
        area = _sum([*parts, (glue_sum, 1)], flows)
        points.append(
            {
                "frozen_layers": k,
                "layers": len(specs),
                "frozen_weights": sum(weights[:k]),
                "weights": total_w,
                "frozen_fraction": round(sum(weights[:k]) / total_w, 4),
                **area,
            }
        )
    ref = points[0]
    for pnt in points:
        pnt["normalized"] = {m: round(pnt[m] / ref[m], 4) for m in metrics(flows)}
    chosen = {}
    for t in targets:
        best = min(points, key=lambda p: (abs(p["frozen_fraction"] - t), p["frozen_layers"]))
        chosen[str(t)] = best["frozen_layers"]
    return {
        "network": net.to_dict(),
        "points": points,
        "targets": chosen,
        "order": [s.name for s in specs],
    }


# -- printing and plotting -------------------------------------------------------------------


def _fmt(v):
    return f"{v:,}" if isinstance(v, int) else "-" if v is None else f"{v:.3g}"


def print_matrices(records, flows):
    cols = metrics(flows) + [
        k for k in ("generic_ffs", "ice40_carry", "ecp5_ccu2") if any(k in r for r in records)
    ]
    print(f"{'case':<12} {'variant':<13}" + "".join(f"{c:>22}" for c in cols) + f"{'s':>8}")
    for r in records:
        cells = []
        for c in cols:
            ratio = r.get(f"{c}_vs_configurable")
            cells.append(f"{_fmt(r[c])}" + (f" ({ratio:.3f})" if ratio is not None else ""))
        case = f"{r['shape']} d{int(r['density'] * 100)}"
        print(
            f"{case:<12} {r['variant']:<13}"
            + "".join(f"{c:>22}" for c in cells)
            + f"{_fmt(r['seconds']):>8}"
        )


#: docs/performance.md's matrices table: (heading, record key, ratio to configurable shown).
_MARKDOWN_COLUMNS = (
    ("ECP5 LUT4", "ecp5_lut4", True),
    ("CCU2C", "ecp5_ccu2", False),
    ("ECP5 LUT4 eq.", "ecp5_lut4_equiv", True),
    ("iCE40 LUT4", "ice40_lut4", True),
    ("transistors", "transistors", True),
    ("logic transistors", "transistors_logic", True),
    ("gates", "generic_cells", True),
    ("ECP5 FF", "ecp5_ff", False),
)


def markdown_matrices(records) -> str:
    """The matrices' records as the Markdown table of ``docs/performance.md``: in brackets
    the ratio to the configurable layer of the same case, ``n/m`` where not measured, and
    each variant's Yosys seconds (all flows)."""
    head = ["case", "variant", *(h for h, _k, _r in _MARKDOWN_COLUMNS), "Yosys s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        cells = [f"{r['shape']} d{int(r['density'] * 100)}", r["variant"]]
        for _h, key, with_ratio in _MARKDOWN_COLUMNS:
            value = r.get(key)
            ratio = r.get(f"{key}_vs_configurable") if r["variant"] != "configurable" else None
            shown = "n/m" if value is None else f"{value:,}"
            if value is not None and with_ratio and ratio is not None:
                shown += f" ({ratio:.3f})"
            cells.append(shown)
        cells.append(f"{r['seconds']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _short(m: str) -> str:
    return {
        "transistors": "transistors",
        "transistors_logic": "logic T",
        "generic_cells": "gen. cells",
        "ice40_lut4": "iCE40 LUT4",
        "ecp5_lut4": "ECP5 LUT4",
        "ecp5_lut4_equiv": "ECP5 LUT4eq",
    }.get(m, m)


def print_table3(t3, flows):
    ms = metrics(flows)
    print("Table 3, measured (totals; norm = / two_cores_shuffle):")
    print(f"{'configuration':<19}" + "".join(f"{_short(m):>13}" for m in ms) + f"{'mem bits':>10}")
    for name, r in t3.items():
        print(
            f"{name:<19}"
            + "".join(f"{r['total'][m]:>13,}" for m in ms)
            + f"{r['total']['memory_bits']:>10,}"
        )
    print(
        f"{'normalized':<19}"
        + "".join(f"{_short(m):>13}" for m in ms)
        + f"{'paper mm2':>10}{'paper':>7}"
    )
    for name, r in t3.items():
        print(
            f"{name:<19}"
            + "".join(f"{r['normalized'][m]:>13.3f}" for m in ms)
            + f"{r['paper_mm2']:>10}{r['paper_normalized']:>7.3f}"
        )
    print("per part group (two_cores_shuffle):")
    for g, a in t3["two_cores_shuffle"]["groups"].items():
        print(f"{g:<19}" + "".join(f"{a[m]:>13,}" for m in ms) + f"{a['memory_bits']:>10,}")


def print_sweep(sw, flows):
    ms = metrics(flows)
    print("Freezing sweep (frozen core; norm = / all configurable):")
    print(
        f"{'target':>6} {'frozen layers':>13} {'fraction':>9}"
        + "".join(f"{_short(m):>13}" for m in ms)
    )
    for t, k in sw["targets"].items():
        p = sw["points"][k]
        print(
            f"{float(t):>6.2f} {k:>7}/{p['layers']:<5} {p['frozen_fraction']:>9.3f}"
            + "".join(f"{p[m]:>13,}" for m in ms)
        )
        print(f"{'':>30}" + "".join(f"{p['normalized'][m]:>13.3f}" for m in ms))


#: The variants whose plans print_plan_vs_netlist sets beside their netlists.
_PLANNED = ("frozen", "frozen_one_stage", "configurable")


def print_plan_vs_netlist(records):
    """The plan's estimates next to the netlist's counts, per matrix case: adders (the plan's
    adder bits against ECP5's carry bits, two per CCU2C) and flip-flops (the plan's register
    bits plus the input registers against each flow's flip-flops)."""
    print("Plan (estimate) vs netlist (measured):")
    print(
        f"{'case':<12} {'variant':<13}{'adders':>8}{'adder bits':>11}{'CCU2 bits':>10}"
        f"{'reg bits':>10}{'gen FF':>8}{'iCE40 FF':>9}{'ECP5 FF':>8}"
    )
    for r in records:
        if r["variant"] not in _PLANNED or "plan_register_bits" not in r:
            continue
        regs = r["plan_register_bits"] + 8 * r["n_in"]
        ccu2 = r.get("ecp5_ccu2")
        case = f"{r['shape']} d{int(r['density'] * 100)}"
        print(
            f"{case:<12} {r['variant']:<13}{_fmt(r['plan_adders']):>8}"
            f"{_fmt(r.get('plan_adder_bits')):>11}{_fmt(None if ccu2 is None else 2 * ccu2):>10}"
            f"{_fmt(regs):>10}{_fmt(r.get('generic_ffs')):>8}{_fmt(r.get('ice40_ff')):>9}"
            f"{_fmt(r.get('ecp5_ff')):>8}"
        )


def plot_sweep(sw, flows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    x = [p["frozen_fraction"] * 100 for p in sw["points"]]
    for m, style in zip(metrics(flows), ("o-", "s--", "^-.", "v:", "D-", "x--"), strict=False):
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


def _parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="write every record here")
    ap.add_argument("--plot", type=Path, help="write the sweep's plot (PNG) here")
    ap.add_argument(
        "--parts",
        nargs="+",
        choices=("matrices", "table3", "sweep"),
        default=["matrices", "table3", "sweep"],
    )
    ap.add_argument("--sizes", type=int, nargs="*", default=[16, 32, 64])
    ap.add_argument(
        "--zeros-sizes",
        type=int,
        nargs="*",
        help="sizes also built with 50 %% zeros (default: all of --sizes)",
    )
    ap.add_argument(
        "--depthwise",
        type=int,
        nargs="*",
        default=[16, 32, 64],
        help="channels of the depthwise 3x3 layers",
    )
    ap.add_argument("--flows", nargs="+", choices=FLOWS, default=list(FLOWS))
    ap.add_argument(
        "--core-flows",
        nargs="+",
        choices=FLOWS,
        default=["generic", "ecp5"],
        help="flows for Table 3 and the sweep (fewer: their parts are many)",
    )
    ap.add_argument(
        "--check-rows",
        action="store_true",
        help="also synthesize the smallest dense configurable layer whole, to check the "
        "row-by-row count against it",
    )
    ap.add_argument(
        "--one-stage",
        action="store_true",
        help="also synthesize each frozen layer with no internal register stage "
        "(frozen_one_stage, the timing of da4ml's netlist)",
    )
    ap.add_argument("--jobs", type=int, default=1, help="Yosys processes at a time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--cache",
        action="store_true",
        help="read and keep synthesis results and emitted Verilog in the project's cache",
    )
    ap.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds one Yosys run may take; past it, that flow's counts are null "
        "(recorded in not_measured)",
    )
    ap.add_argument(
        "--skip",
        nargs="*",
        default=[],
        metavar="UNIT:FLOW",
        help="leave out one unit's flow (its counts are null), e.g. 64x64_d100/da4ml:generic",
    )
    ap.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="print the tables of an earlier run's JSON; synthesize nothing",
    )
    ap.add_argument(
        "--markdown",
        action="store_true",
        help="with --report: the matrices' table in Markdown, as docs/performance.md has it",
    )
    return ap


def _print_all(out):
    if "table3" in out:
        print_table3(out["table3"], out["core_flows"])
    if "sweep" in out:
        print_sweep(out["sweep"], out["core_flows"])
    if "matrices" in out:
        print_matrices(out["matrices"], out["flows"])
        print_plan_vs_netlist(out["matrices"])


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.markdown and not args.report:
        _parser().error("--markdown prints an earlier run's table: give --report FILE")
    if args.report:
        out = json.loads(args.report.read_text())
        if args.markdown:
            if "matrices" not in out:
                _parser().error(f"{args.report} has no matrices part")
            print(markdown_matrices(out["matrices"]))
        else:
            _print_all(out)
        return 0
    if args.cache:
        return _run(args)
    # Without --cache: a fresh cache for this run only (cold plans, cold emission).
    with tempfile.TemporaryDirectory(prefix="semifreddo-area-") as tmp:
        old = os.environ.get("SEMIFREDDO_CACHE_DIR")
        os.environ["SEMIFREDDO_CACHE_DIR"] = tmp
        try:
            return _run(args)
        finally:
            if old is None:
                del os.environ["SEMIFREDDO_CACHE_DIR"]
            else:
                os.environ["SEMIFREDDO_CACHE_DIR"] = old


def _run(args):
    t0 = time.perf_counter()
    runner = Runner(
        args.flows,
        jobs=args.jobs,
        use_cache=args.cache,
        timeout=args.timeout,
        skip=args.skip,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    out = {"yosys": runner.version, "flows": args.flows, "seed": args.seed, "jobs": args.jobs}
    core_flows = [f for f in args.flows if f in args.core_flows]
    out["core_flows"] = core_flows
    # Table 3 and the sweep first: their parts are small and many; the matrices take long.
    if "table3" in args.parts:
        t = time.perf_counter()
        out["table3"] = run_table3(runner, args.seed, core_flows)
        out["table3_seconds"] = round(time.perf_counter() - t, 1)
    if "sweep" in args.parts:
        t = time.perf_counter()
        out["sweep"] = run_sweep(runner, args.seed, core_flows)
        out["sweep_seconds"] = round(time.perf_counter() - t, 1)
        if args.plot:
            plot_sweep(out["sweep"], core_flows, args.plot)
    if "matrices" in args.parts:
        t = time.perf_counter()
        out["matrices"] = run_matrices(
            runner,
            args.sizes,
            args.depthwise,
            args.seed,
            args.check_rows,
            args.zeros_sizes,
            args.one_stage,
        )
        out["matrices_seconds"] = round(time.perf_counter() - t, 1)
    _print_all(out)
    out["yosys_seconds"] = round(runner.seconds, 1)
    # Every distinct synthesis's own time, whether run now or read from --cache.
    out["yosys_seconds_all_units"] = round(
        sum(r["seconds"] for r in runner.memo.values() if r.get("seconds")), 1
    )
    out["total_seconds"] = round(time.perf_counter() - t0, 1)
    print(
        f"total {out['total_seconds']} s (Yosys {out['yosys_seconds']} s, "
        f"jobs {args.jobs}, {out['yosys']})"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
