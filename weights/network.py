"""The network description: topology of a SemifreddoNet backbone (DESIGN.md §2, paper
Table 1), the single source of truth for the golden model and the generator.

Pure Python (no Amaranth, no hardware code), so the golden model can use it. This first part
holds topology only: frame size, channel plan, per-stage strides and repeats of the frozen
and trainable cores, which cores exist. Weights and the Semifreddo module wiring build on it.
"""

import dataclasses

__all__ = ["BlockSpec", "StageSpec", "Network", "PRESETS", "preset"]


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One ShuffleNet block: ``stride`` 2 is a downsampling block (C -> 2C), 1 a regular
    block (C -> C)."""

    stride: int
    channels_in: int
    width_in: int
    height_in: int

    @property
    def channels_out(self) -> int:
        return self.channels_in * (2 if self.stride == 2 else 1)

    @property
    def weights(self) -> int:
        """Conv weights: regular = dw (C/2 x 9) + pw (C/2 x C/2); downsampling = two
        branches of dw (C x 9) + pw (C x C)."""
        c = self.channels_in
        if self.stride == 2:
            return 2 * (c * 9 + c * c)
        return c // 2 * 9 + (c // 2) ** 2


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """One Semifreddo module: the frozen core's blocks and the trainable cores' blocks."""

    frozen: tuple[BlockSpec, ...]
    trainable: tuple[BlockSpec, ...]


@dataclasses.dataclass(frozen=True)
class Network:
    """A backbone: input frame, stem width, stages, which cores exist, options."""

    name: str
    width: int
    height: int
    channels_in: int
    stem_channels: int
    stages: tuple[StageSpec, ...]
    trainable_cores: int = 2  # 0, 1 or 2
    frozen_core: bool = True
    core_shuffle: bool = True  # hardware present (enabled at run time)

    def __post_init__(self):
        if not 1 <= self.channels_in <= 4:
            raise ValueError(f"{self.name}: input channels must be 1-4, not {self.channels_in}")
        if self.trainable_cores not in (0, 1, 2):
            raise ValueError(f"{self.name}: trainable_cores must be 0, 1 or 2")
        if not self.frozen_core and self.trainable_cores == 0:
            raise ValueError(f"{self.name}: a backbone needs at least one core")
        if self.core_shuffle and self.trainable_cores != 2:
            raise ValueError(f"{self.name}: the core shuffle needs two trainable cores")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"{self.name}: frame size must be positive")

    @property
    def stem_weights(self) -> int:
        return self.stem_channels * self.channels_in * 9

    @property
    def frozen_weights(self) -> int:
        """Frozen conv weights (stem and blocks of the frozen core; 0 without one)."""
        if not self.frozen_core:
            return 0
        return self.stem_weights + sum(b.weights for s in self.stages for b in s.frozen)

    @property
    def trainable_weights_per_core(self) -> int:
        """Conv weights of one trainable core (stem and blocks)."""
        if not self.trainable_cores:
            return 0
        return self.stem_weights + sum(b.weights for s in self.stages for b in s.trainable)


def _build(name, width, height, channels_in, stem_channels, plan, **options):
    """``plan``: per stage ``(frozen strides, trainable strides)``, e.g. ``((2, 1, 1, 1),
    (2,))``. Frame sizes and channels follow from the strides (stride 2 halves the frame,
    rounding up, and doubles the channels)."""
    w, h, c = -(-width // 2), -(-height // 2), stem_channels  # after the stride-2 stem
    stages = []
    for frozen_strides, trainable_strides in plan:
        blocks = {}
        for core, strides in (("frozen", frozen_strides), ("trainable", trainable_strides)):
            bw, bh, bc = w, h, c
            out = []
            for s in strides:
                out.append(BlockSpec(s, bc, bw, bh))
                if s == 2:
                    bw, bh, bc = -(-bw // 2), -(-bh // 2), 2 * bc
            blocks[core] = (tuple(out), (bw, bh, bc))
        if blocks["frozen"][1] != blocks["trainable"][1] and trainable_strides:
            raise ValueError(f"{name}: frozen and trainable stages disagree on output size")
        stages.append(StageSpec(blocks["frozen"][0], blocks["trainable"][0]))
        w, h, c = blocks["frozen"][1]
    return Network(name, width, height, channels_in, stem_channels, tuple(stages), **options)


#: Table 1: frozen stages 2x1 then 1x3 (the third module 1x1 then 1x3); trainable 2x1 (1x1).
_PAPER_PLAN = (((2, 1, 1, 1), (2,)), ((2, 1, 1, 1), (2,)), ((1, 1, 1, 1), (1,)),
               ((2, 1, 1, 1), (2,)))

PRESETS = {
    "paper": lambda: _build("paper", 640, 480, 3, 32, _PAPER_PLAN),
    # Small enough for end-to-end simulation and small FPGAs: 32x24 input, channels / 8.
    "small": lambda: _build("small", 32, 24, 3, 4, _PAPER_PLAN),
    # The five configurations of Table 3, at the small size.
    "two_cores_shuffle": lambda: _build("two_cores_shuffle", 32, 24, 3, 4, _PAPER_PLAN),
    "two_cores": lambda: _build("two_cores", 32, 24, 3, 4, _PAPER_PLAN, core_shuffle=False),
    "one_core": lambda: _build("one_core", 32, 24, 3, 4, _PAPER_PLAN, trainable_cores=1,
                               core_shuffle=False),
    "frozen_only": lambda: _build("frozen_only", 32, 24, 3, 4, _PAPER_PLAN,
                                  trainable_cores=0, core_shuffle=False),
    "trainable_only": lambda: _build("trainable_only", 32, 24, 3, 4, _PAPER_PLAN,
                                     frozen_core=False),
}


def preset(name: str) -> Network:
    """The named preset (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ValueError(f"no preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]()
