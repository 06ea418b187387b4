"""What the build steps (:mod:`.steps`) share: the configuration, and what they ask of a
design (a whole backbone, :mod:`.backbone_build`, or a set of frozen pointwise layers,
:mod:`.layer_build`)."""

import dataclasses
from pathlib import Path
from typing import NamedTuple, Protocol

from spec.network import Network

__all__ = ["BuildConfig", "Product", "Design"]


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """What the command line asks for."""

    freeze: Path
    trainable: Path | None = None
    network: Network | None = None  # --preset / --config
    calib: Path | None = None
    calib_method: str = "percentile"  # weights.quantize.CALIBRATIONS
    top: str = "semifreddo"
    solver: str = "da4ml"
    levels_per_stage: int = 2
    serial_levels_per_stage: int = 3  # bit-serial products (--fold rate): a level is a LUT
    fold: str = "spatial"  # or "rate": every layer folded as far as its rate allows
    fps: float | None = None  # "rate" only: fold further, down to this frame rate
    clock_mhz: float = 100.0  # the clock --fps is counted at
    swap: bool = True  # two parameter sets, swapped at frame boundaries (--no-swap: one)
    frozen_rom: int = 0  # "rate" only: frozen layers of this many weights from a ROM (0: none)
    relays: int = 0  # register slices on each stream that passes other blocks (Backbone.relays)
    # Board builds: --dsp, the products given the ECP5's DSP blocks, registers and all, out
    # of the part's dsp_blocks (semifreddo_hw.dsp.dsp_platform); None: $mul cells.
    dsp: str | None = None
    dsp_blocks: int = 0
    jobs: int = 1


class Product(NamedTuple):
    """A frozen product to plan: the layer ``name``, its ``kind`` and int8 ``weights``."""

    name: str
    kind: str
    weights: object


class Design(Protocol):
    """What the steps need from a design (a backbone, or a set of pointwise layers)."""

    def quantize(self, config: BuildConfig) -> None: ...
    def products(self, config: BuildConfig) -> list[Product]: ...
    def elaborate(self, graphs: dict, config: BuildConfig) -> None: ...
    def emit(self, config: BuildConfig, log) -> dict[str, str]: ...
    def outputs(self, config: BuildConfig) -> dict[str, str | bytes]: ...
