"""The build as a named list of steps, each ``step(build)`` (FINN's builder is the model):

    load -> quantize -> plan -> elaborate -> emit -> outputs

Every step reads what earlier steps left in the :class:`Build` and adds its own product:
the weights (``load``), the integer parameters (``quantize``), the adder graph of every
frozen product (``plan``), the hardware (``elaborate``), the Verilog files (``emit``), the
other files of the build directory (``outputs``). What differs between a whole backbone and
a set of pointwise layers is the :class:`Design` that ``load`` picks; the steps and their
order are the same. :func:`run` times each step and records its peak memory.
"""

import dataclasses
import resource
import time
from collections.abc import Callable
from typing import NamedTuple

from common.parallel import fork_map
from semifreddo_hw.adder_graph import AdderGraph
from semifreddo_hw.conv import plan_conv
from weights.files import LAYERS_VERSION, file_version

from .backbone_build import BackboneDesign
from .design import BuildConfig, Design
from .layer_build import LayerSet

__all__ = ["Build", "Step", "STEPS", "run"]


@dataclasses.dataclass
class Build:
    """A build in progress: the configuration and each step's product."""

    config: BuildConfig
    log: Callable[[str], None] = print
    design: Design | None = None  # load (quantize and elaborate fill it in)
    graphs: dict[str, AdderGraph] | None = None  # plan
    files: dict[str, str | bytes] = dataclasses.field(default_factory=dict)  # emit, outputs
    timing: list[dict] = dataclasses.field(default_factory=list)  # run


def load(b: Build) -> None:
    """Read and check the weight files; pick the design."""
    cfg = b.config
    if file_version(cfg.freeze) == LAYERS_VERSION:
        b.design = LayerSet.load(cfg)
    else:
        b.design = BackboneDesign.load(cfg, b.log)


def quantize(b: Build) -> None:
    """Integer parameters: as given, or quantized from float weights."""
    b.design.quantize(b.config)


def _plan(job) -> AdderGraph:
    product, solver = job
    return plan_conv(product.kind, product.weights, solver)


def plan(b: Build) -> None:
    """The adder graph of every frozen product, planned in ``jobs`` worker processes,
    largest first (the graphs come back in memory; the plan cache only saves rebuilds)."""
    products = sorted(b.design.products(b.config), key=lambda p: -p.weights.size)
    b.log(f"      {len(products)} frozen product(s) with {b.config.solver}, {b.config.jobs} job(s)")
    graphs = fork_map(_plan, [(p, b.config.solver) for p in products], b.config.jobs)
    b.graphs = {p.name: g for p, g in zip(products, graphs, strict=True)}


def elaborate(b: Build) -> None:
    """The Amaranth components, built on the planned graphs."""
    b.design.elaborate(b.graphs, b.config)


def emit(b: Build) -> None:
    """The Verilog files."""
    b.files |= b.design.emit(b.config, b.log)


def outputs(b: Build) -> None:
    """The other files of the build directory: weights, parameter images, reports."""
    b.files |= b.design.outputs(b.config)


class Step(NamedTuple):
    name: str
    run: Callable[[Build], None]


#: The build, in order.
STEPS = (
    Step("load", load),
    Step("quantize", quantize),
    Step("plan", plan),
    Step("elaborate", elaborate),
    Step("emit", emit),
    Step("outputs", outputs),
)


def _peak_mb() -> float:
    """Peak resident memory so far of this process and of its largest finished worker."""
    kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    return round(kb / 1024, 1)


def run(config: BuildConfig, log=print, steps=STEPS) -> Build:
    """Run ``steps`` in order on a new :class:`Build`; each step's wall time and the peak
    memory so far go to ``Build.timing``."""
    b = Build(config, log)
    t0 = time.perf_counter()
    for k, step in enumerate(steps, 1):
        log(f"[{k}/{len(steps)}] {step.name} ({time.perf_counter() - t0:.1f} s)")
        start = time.perf_counter()
        step.run(b)
        b.timing.append(
            {
                "step": step.name,
                "seconds": round(time.perf_counter() - start, 3),
                "peak_memory_mb": _peak_mb(),
            }
        )
    return b
