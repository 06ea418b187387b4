"""The build as ordered steps, each a plain function that can be run and checked alone:

    load -> validate -> plan -> elaborate -> emit

This first flow builds the frozen pointwise layers of a frozen weight file (format
``semifreddo-frozen`` version 1, ``docs/weights-format.md``) into one Verilog module per
layer. The backbone, the trainable part and the head join the same steps later.
"""

import dataclasses
import json
import re
import time

import numpy as np

from semifreddo_hw.adder_graph import AdderGraph, plan_cmvm
from semifreddo_hw.emit import part_text
from semifreddo_hw.matvec import FrozenMatVec
from weights.io import WeightFileError, check_header, check_int_range, load_npz

__all__ = ["FrozenLayer", "load", "validate", "plan", "elaborate", "emit", "report"]

FORMAT, VERSION = "semifreddo-frozen", 1
_LAYER = re.compile(r"^([A-Za-z_][A-Za-z0-9_]{0,63})\.weight$")  # names reach file names


@dataclasses.dataclass
class FrozenLayer:
    name: str
    weights: np.ndarray  # (C_out, C_in) int64 within int8
    graph: AdderGraph | None = None
    component: FrozenMatVec | None = None


def load(path) -> dict[str, np.ndarray]:
    return load_npz(path)


def validate(path, arrays: dict[str, np.ndarray]) -> list[FrozenLayer]:
    """Check the header and every layer; layers come back in name order."""
    arrays = dict(arrays)
    check_header(path, arrays, FORMAT, (VERSION,))
    layers = []
    for name in sorted(arrays):
        m = _LAYER.fullmatch(name)
        if not m:
            raise WeightFileError(f"{path}: unexpected entry {name!r} (layers are "
                                  f"'<layer>.weight')")
        a = arrays[name]
        if a.ndim == 4 and a.shape[2:] == (1, 1):
            a = a[:, :, 0, 0]
        if a.ndim != 2 or 0 in a.shape:
            raise WeightFileError(f"{path}: {name} has shape {a.shape}, expected "
                                  f"(C_out, C_in) or (C_out, C_in, 1, 1)")
        layers.append(FrozenLayer(m.group(1), check_int_range(path, name, a, -128, 127)))
    if not layers:
        raise WeightFileError(f"{path}: no '<layer>.weight' entries")
    seen = {}
    for layer in layers:  # output files must not collide on case-insensitive file systems
        other = seen.setdefault(layer.name.lower(), layer.name)
        if other != layer.name:
            raise WeightFileError(f"{path}: layer names {other!r} and {layer.name!r} differ "
                                  f"only in case")
    return layers


def plan(layers: list[FrozenLayer], solver: str, log=lambda _: None) -> None:
    """Plan every layer's adder graph (cached by content: see ``plan_cmvm``)."""
    for layer in layers:
        t0 = time.perf_counter()
        layer.graph = g = plan_cmvm(layer.weights, solver)
        wall = time.perf_counter() - t0
        nz = int(np.count_nonzero(layer.weights))
        how = (f"solved in {wall:.1f} s" if wall >= 0.5 * g.solve_seconds
               else f"from cache, first solved in {g.solve_seconds:.1f} s")
        log(f"      {layer.name}: {nz} nonzero weights, {g.adders} adders, {how}")


def elaborate(layers: list[FrozenLayer], levels_per_stage: int) -> None:
    for layer in layers:
        layer.component = FrozenMatVec(layer.weights, graph=layer.graph,
                                       levels_per_stage=levels_per_stage)


def emit(layers: list[FrozenLayer], top: str) -> dict[str, str]:
    """File name -> Verilog text, one module ``<top>_<layer>`` per layer (the products'
    own text writer, as in whole-backbone builds)."""
    return {f"{top}_{layer.name}.v": part_text(layer.component, f"{top}_{layer.name}")
            for layer in layers}


def report(layers: list[FrozenLayer], source: str) -> tuple[str, str]:
    """``report.json`` and ``report.md`` texts. Plan estimates only; nothing timed, so that
    identical inputs give identical reports."""
    rows = []
    for layer in layers:
        r = layer.component.report()
        r.pop("solve_seconds")
        rows.append({"layer": layer.name, **r})
    keys = ("weights", "nonzero_weights", "adders", "register_bits", "multipliers",
            "memory_bits")
    total = {k: sum(r[k] for r in rows) for k in keys}
    data = {"format": "semifreddo-report", "version": 1, "source": source,
            "kind": "estimates (plan), not measurements", "layers": rows, "total": total}
    md = [f"# Build report: {source}", "",
          "Plan estimates (not post-synthesis measurements).", "",
          "| layer | shape | nonzero / weights | adders | adders per nonzero | adder levels "
          "| latency (cycles) | register bits | multipliers | memory bits |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        per = r["adders"] / r["nonzero_weights"] if r["nonzero_weights"] else 0.0
        md.append(f"| {r['layer']} | {r['shape'][0]}x{r['shape'][1]} | "
                  f"{r['nonzero_weights']} / {r['weights']} | {r['adders']} | {per:.3f} | "
                  f"{r['adder_levels']} | {r['latency_cycles']} | {r['register_bits']} | "
                  f"{r['multipliers']} | {r['memory_bits']} |")
    md += ["", f"Total: {total['nonzero_weights']} nonzero of {total['weights']} frozen "
               f"weights, {total['adders']} adders, {total['register_bits']} register bits, "
               f"{total['multipliers']} multipliers, {total['memory_bits']} memory bits.", ""]
    return json.dumps(data, indent=2, sort_keys=True) + "\n", "\n".join(md)
