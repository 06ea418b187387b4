# amaranth: UnusedElaboratable=no
"""Building a set of frozen pointwise layers (frozen file version 1, the first format): one
Verilog module per layer, ``<top>_<layer>``; the :class:`~.design.Design` the build steps
run when ``load`` finds such a file. The products are written as Verilog text, never
elaborated by Amaranth (hence no unused-elaboratable warnings from this module)."""

import dataclasses
import json

import numpy as np

from semifreddo_hw.emit import part_text
from semifreddo_hw.matvec import FrozenMatVec
from weights.files import load_layers
from weights.io import WeightFileError

from .design import BuildConfig, Product

__all__ = ["LayerSet"]


@dataclasses.dataclass
class LayerSet:
    """Frozen pointwise layers by name (``load``) and their products (``elaborate``)."""

    source: str
    weights: dict[str, np.ndarray]
    components: dict[str, FrozenMatVec] | None = None

    @classmethod
    def load(cls, config: BuildConfig) -> "LayerSet":
        if config.trainable or config.network or config.calib:
            raise WeightFileError(
                "a version 1 frozen file (pointwise layers) takes no "
                "--trainable, --preset, --config or --calib"
            )
        return cls(config.freeze.name, load_layers(config.freeze))

    def quantize(self, config: BuildConfig) -> None:
        """Nothing to do: version 1 files hold int8 weights."""

    def products(self, config: BuildConfig) -> list[Product]:
        return [Product(name, "pointwise", w) for name, w in self.weights.items()]

    def elaborate(self, graphs: dict, config: BuildConfig) -> None:
        self.components = {
            name: FrozenMatVec(w, graph=graphs[name], levels_per_stage=config.levels_per_stage)
            for name, w in self.weights.items()
        }

    def emit(self, config: BuildConfig, log) -> dict[str, str]:
        """One file per layer, module ``<top>_<layer>`` (the products' text writer)."""
        return {
            f"{config.top}_{name}.v": part_text(c, f"{config.top}_{name}")
            for name, c in self.components.items()
        }

    def outputs(self, config: BuildConfig) -> dict[str, str]:
        data, md = _report(self.components, self.source)
        return {"report.json": data, "report.md": md}


def _report(components: dict, source: str) -> tuple[str, str]:
    """``report.json`` and ``report.md`` texts. Plan estimates only; nothing timed, so that
    identical inputs give identical reports."""
    rows = []
    for name, component in components.items():
        r = component.report()
        r.pop("solve_seconds")
        rows.append({"layer": name, **r})
    keys = ("weights", "nonzero_weights", "adders", "register_bits", "multipliers", "memory_bits")
    total = {k: sum(r[k] for r in rows) for k in keys}
    data = {
        "format": "semifreddo-report",
        "version": 1,
        "source": source,
        "kind": "estimates (plan), not measurements",
        "layers": rows,
        "total": total,
    }
    md = [
        f"# Build report: {source}",
        "",
        "Plan estimates (not post-synthesis measurements).",
        "",
        "| layer | shape | nonzero / weights | adders | adders per nonzero | adder levels "
        "| latency (cycles) | register bits | multipliers | memory bits |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per = r["adders"] / r["nonzero_weights"] if r["nonzero_weights"] else 0.0
        md.append(
            f"| {r['layer']} | {r['shape'][0]}x{r['shape'][1]} | "
            f"{r['nonzero_weights']} / {r['weights']} | {r['adders']} | {per:.3f} | "
            f"{r['adder_levels']} | {r['latency_cycles']} | {r['register_bits']} | "
            f"{r['multipliers']} | {r['memory_bits']} |"
        )
    md += [
        "",
        f"Total: {total['nonzero_weights']} nonzero of {total['weights']} frozen "
        f"weights, {total['adders']} adders, {total['register_bits']} register bits, "
        f"{total['multipliers']} multipliers, {total['memory_bits']} memory bits.",
        "",
    ]
    return json.dumps(data, indent=2, sort_keys=True) + "\n", "\n".join(md)
