"""The network description: topology of a SemifreddoNet backbone (paper Table 1, Fig. 3-4;
``docs/backbone.md``), the single source of truth for the golden model and the generator.

Frame size, channel plan, per-stage strides and repeats of the frozen and trainable cores,
which cores exist; the flat list of its convolutions and blends, by name
(:meth:`Network.convs`, :meth:`Network.blends`, named as :mod:`spec.names` says); presets;
and the JSON form of a description (:meth:`Network.to_dict`, :func:`network_from_dict`).
"""

import dataclasses
import re

from . import names

__all__ = [
    "BlockSpec",
    "StageSpec",
    "Network",
    "ConvSpec",
    "BlendSpec",
    "HeadGroupSpec",
    "HEAD_MAX_WEIGHTS",
    "HEAD_MAX_GROUPS",
    "HEAD_MAX_REPEATS",
    "BLOCK_MAX_REPEATS",
    "WEIGHT_AXES",
    "PRESETS",
    "preset",
    "network_from_dict",
    "check_keys",
]


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


#: The most configurable weights a head may have in all (paper §3.3: e.g. two groups of
#: 256 -> 256 at full size).
HEAD_MAX_WEIGHTS = 131072
#: The most groups a head may have: with three cores, eleven outputs (the host link tags
#: a beat with its output's index in four bits).
HEAD_MAX_GROUPS = 8
#: Most passes a head group may be built for (paper §3.4, Table 2 lists 1 to 6).
HEAD_MAX_REPEATS = 8
#: Most passes a trainable core's last block may be built for (paper §3.4).
BLOCK_MAX_REPEATS = 8


@dataclasses.dataclass(frozen=True)
class HeadGroupSpec:
    """One group of the model head (``docs/head.md``): a configurable pointwise convolution
    from ``c_in`` channels of the cores' output features to ``c_out`` channels, then a
    piecewise-linear activation of ``segments`` segments and a run-time global average
    pool. ``sources`` are the run-time choices of its input, ``(core, first channel)``
    each: ``c_in`` channels from there on, the cores' outputs side by side in
    :attr:`Network.cores` order (a source may span cores). ``repeats`` (at most
    :data:`HEAD_MAX_REPEATS`; more than 1 needs ``c_in == c_out``) is the most passes a
    frame may take through the convolution and activation, each pass with its own weights
    and table, pass ``j + 1`` reading pass ``j``'s output (paper §3.4); the count is set at
    run time."""

    c_in: int
    c_out: int
    sources: tuple[tuple[str, int], ...]
    segments: int = 8
    repeats: int = 1

    @property
    def weights(self) -> int:
        return self.c_in * self.c_out

    def to_dict(self) -> dict:
        return {
            "c_in": self.c_in,
            "c_out": self.c_out,
            "sources": [[core, first] for core, first in self.sources],
            "segments": self.segments,
            # written only when repeated, so that existing descriptions stay byte-identical
            **({"repeats": self.repeats} if self.repeats != 1 else {}),
        }


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
    head: tuple[HeadGroupSpec, ...] = ()  # the model head's groups (none: features only)
    #: The most passes each trainable core's last block may take per frame (paper §3.4):
    #: pass ``p + 1`` reads pass ``p``'s output, each with its own weights; the count is set
    #: at run time. More than 1 needs a regular (stride 1) last trainable block.
    trainable_repeats: int = 1

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
        r = self.trainable_repeats
        if type(r) is not int or not 1 <= r <= BLOCK_MAX_REPEATS:
            raise ValueError(
                f"{self.name}: trainable_repeats must be an integer in 1..{BLOCK_MAX_REPEATS}"
            )
        if r > 1 and not self.trainable_cores:
            raise ValueError(f"{self.name}: trainable_repeats needs a trainable core")
        if r > 1 and self.stages[-1].trainable[-1].stride != 1:
            raise ValueError(
                f"{self.name}: a repeated block reads its own output, so the last trainable "
                f"block must be a regular (stride 1) block, not a downsampling one"
            )
        self._check_head()

    def _check_head(self):
        channels = self.channels_after(len(self.stages))
        for k, g in enumerate(self.head):
            where = f"{self.name}: head group {k}"
            if not isinstance(g, HeadGroupSpec):
                raise ValueError(f"{where} must be a HeadGroupSpec")
            for key in ("c_in", "c_out", "segments"):
                v = getattr(g, key)
                if type(v) is not int or not 1 <= v <= _MAX_CHANNELS:
                    raise ValueError(f"{where}: {key} must be an integer in 1..{_MAX_CHANNELS}")
            if not 2 <= g.segments <= 256:
                raise ValueError(f"{where}: segments must lie in 2..256, not {g.segments}")
            if type(g.repeats) is not int or not 1 <= g.repeats <= HEAD_MAX_REPEATS:
                raise ValueError(f"{where}: repeats must be an integer in 1..{HEAD_MAX_REPEATS}")
            if g.repeats > 1 and g.c_in != g.c_out:
                raise ValueError(
                    f"{where}: a repeated group reads its own output, so c_in ({g.c_in}) must "
                    f"equal c_out ({g.c_out})"
                )
            if not g.sources or len(g.sources) > 16:
                raise ValueError(f"{where}: 1 to 16 sources expected")
            for core, first in g.sources:
                if core not in self.cores:
                    raise ValueError(f"{where}: source core {core!r} is not in the network")
                # the cores' outputs side by side: a source may run on into the next core
                room = (len(self.cores) - self.cores.index(core)) * channels
                if type(first) is not int or not 0 <= first < channels or first + g.c_in > room:
                    raise ValueError(
                        f"{where}: source ({core!r}, {first}) must start {g.c_in} channels "
                        f"within the {room} from {core!r} on (the cores' {channels} "
                        f"channels each, side by side)"
                    )
        if len(self.head) > HEAD_MAX_GROUPS:
            raise ValueError(f"{self.name}: a head has at most {HEAD_MAX_GROUPS} groups")
        total = sum(g.weights for g in self.head)
        if total > HEAD_MAX_WEIGHTS:
            raise ValueError(
                f"{self.name}: the head has {total} weights, at most {HEAD_MAX_WEIGHTS}"
            )

    def head_lane(self, core: str, first: int) -> int:
        """The head's input lane of channel ``first`` of ``core``'s output (the cores' outputs
        side by side, in :attr:`cores` order)."""
        return self.cores.index(core) * self.channels_after(len(self.stages)) + first

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

    @property
    def plan(self) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
        """Per stage, the strides of the frozen and of the trainable blocks."""
        return tuple(
            (tuple(b.stride for b in s.frozen), tuple(b.stride for b in s.trainable))
            for s in self.stages
        )

    def to_dict(self) -> dict:
        """The description as plain JSON-able data; :func:`network_from_dict` reads it."""
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "channels_in": self.channels_in,
            "stem_channels": self.stem_channels,
            "plan": [[list(f), list(t)] for f, t in self.plan],
            "trainable_cores": self.trainable_cores,
            "frozen_core": self.frozen_core,
            "core_shuffle": self.core_shuffle,
            # only with a head: the description of a network without one is unchanged
            **({"head": [g.to_dict() for g in self.head]} if self.head else {}),
            **({"trainable_repeats": self.trainable_repeats} if self.trainable_repeats > 1 else {}),
        }

    def repeated_block(self) -> tuple[int, int] | None:
        """``(module, index)`` of the block each trainable core repeats (its last), or
        None when :attr:`trainable_repeats` is 1."""
        if self.trainable_repeats == 1:
            return None
        return len(self.stages), len(self.stages[-1].trainable) - 1

    def pass_convs(self) -> list["ConvSpec"]:
        """The later passes' convolutions of every repeated block (:func:`spec.names.
        block_pass`), core by core, pass by pass: each its pass-0 layer's under a new name."""
        where = self.repeated_block()
        if where is None:
            return []
        specs = {c.name: c for c in self.convs()}
        return [
            dataclasses.replace(
                specs[names.conv(core, *where, layer)],
                name=names.block_pass(core, *where, p, layer),
            )
            for core in self.cores
            if core != "frozen"
            for p in range(1, self.trainable_repeats)
            for layer in names.REGULAR_LAYERS
        ]

    def repeat_counts(self) -> list[str]:
        """The run-time pass count of each repeated block (:func:`spec.names.block_repeat`)."""
        where = self.repeated_block()
        if where is None:
            return []
        return [names.block_repeat(core, *where) for core in self.cores if core != "frozen"]

    @property
    def cores(self) -> tuple[str, ...]:
        """The cores present, in order: ``frozen`` (if any), then ``a``, ``b``."""
        return (("frozen",) if self.frozen_core else ()) + names.TRAINABLE_CORES[
            : self.trainable_cores
        ]

    @property
    def blended(self) -> bool:
        """Trainable stages read alpha blends (there is a frozen core to blend with)."""
        return self.frozen_core and self.trainable_cores > 0

    def blocks(self, core: str, module: int) -> tuple[BlockSpec, ...]:
        """Blocks of ``core`` in Semifreddo module ``module`` (from 1)."""
        stage = self.stages[module - 1]
        return stage.frozen if core == "frozen" else stage.trainable

    def channels_after(self, module: int) -> int:
        """Channels of every core's features after Semifreddo module ``module`` (0: after
        the stems)."""
        if module == 0:
            return self.stem_channels
        stage = self.stages[module - 1]
        return (stage.frozen or stage.trainable)[-1].channels_out

    def output_size(self) -> tuple[int, int]:
        """Width and height of every core's output feature maps."""
        last = (self.stages[-1].frozen or self.stages[-1].trainable)[-1]
        return -(-last.width_in // last.stride), -(-last.height_in // last.stride)

    def convs(self) -> list["ConvSpec"]:
        """Every convolution, core by core, in stream order."""
        out = []
        for core in self.cores:
            frozen = core == "frozen"
            out.append(
                ConvSpec(
                    names.stem(core),
                    "full",
                    self.channels_in,
                    self.stem_channels,
                    2,
                    True,
                    self.width,
                    self.height,
                    frozen,
                )
            )
            for i in range(1, len(self.stages) + 1):
                for j, blk in enumerate(self.blocks(core, i)):
                    c, w, h = blk.channels_in, blk.width_in, blk.height_in
                    if blk.stride == 2:  # two branches on all channels, stride 2 then 1
                        w2, h2 = -(-w // 2), -(-h // 2)
                        geometry = [
                            ("depthwise", c, 2, False, w, h),
                            ("pointwise", c, 1, True, w2, h2),
                        ] * 2
                    else:  # one branch on the second half of the channels
                        geometry = [
                            ("depthwise", c // 2, 1, False, w, h),
                            ("pointwise", c // 2, 1, True, w, h),
                        ]
                    out += [
                        ConvSpec(
                            names.conv(core, i, j, layer), kind, n, n, stride, relu, lw, lh, frozen
                        )
                        for layer, (kind, n, stride, relu, lw, lh) in zip(
                            names.block_layers(blk.stride), geometry, strict=True
                        )
                    ]
        return out

    def outputs(self) -> list[tuple[str, int]]:
        """The design's output streams, ``(name, channels)``: the cores in :attr:`cores`
        order, then the head groups (:func:`spec.names.head_group`)."""
        c = self.channels_after(len(self.stages))
        return [(core, c) for core in self.cores] + [
            (names.head_group(k), g.c_out) for k, g in enumerate(self.head)
        ]

    def head_convs(self) -> list["ConvSpec"]:
        """The head groups' pointwise convolutions (configurable, no ReLU: the activation
        table follows), named as the groups (:func:`spec.names.head_group`), on the
        cores' output frame."""
        w, h = self.output_size()
        return [
            ConvSpec(names.head_group(k), "pointwise", g.c_in, g.c_out, 1, False, w, h, False)
            for k, g in enumerate(self.head)
        ]

    def peak_periods(self) -> dict[str, int]:
        """Per convolution, the fewest cycles between two beats its product may see when
        the input streams one pixel per clock: ``2**k`` after ``k`` stride-2 windows (its
        own included). A stride-2 window passes every other pixel of every other row, so
        beats come in bursts at half the rate of its input's bursts (on average four times
        rarer); a layer that keeps up with the bursts needs no buffer."""
        out = {}
        for core in self.cores:
            out[names.stem(core)] = k = 2  # the stem's own window has stride 2
            for i in range(1, len(self.stages) + 1):
                for j, blk in enumerate(self.blocks(core, i)):
                    k *= blk.stride
                    for layer in names.block_layers(blk.stride):
                        out[names.conv(core, i, j, layer)] = k
        # A repeated block takes a frame's beats once per pass in the time of one.
        where = self.repeated_block()
        for core in self.cores if where else ():
            if core != "frozen":
                for layer in names.REGULAR_LAYERS:
                    name = names.conv(core, *where, layer)
                    out[name] = max(1, out[name] // self.trainable_repeats)
        for c in self.head_convs():  # the head reads the cores' outputs
            out[c.name] = k
        return out

    def blend_periods(self) -> dict[str, int]:
        """Per alpha blend, the fewest cycles between two beats it may see (as
        :meth:`peak_periods`): the period of the stream at its meeting point, after the stem
        (2) and the strides of the stages before it."""
        out = {}
        for core in self.cores if self.blended else ():
            if core == "frozen":
                continue
            k = 2
            for i in range(1, len(self.stages) + 1):
                out[names.blend(core, i)] = k
                for blk in self.blocks(core, i):
                    k *= blk.stride
        return out

    def blends(self) -> list["BlendSpec"]:
        """Every alpha blend (none without a frozen core or without trainable cores)."""
        if not self.blended:
            return []
        return [
            BlendSpec(names.blend(core, i), self.channels_after(i - 1))
            for core in self.cores
            if core != "frozen"
            for i in range(1, len(self.stages) + 1)
        ]


#: The axes of each kind's weight array, in its (C) order: output channel ``co``, input
#: channel ``ci``, kernel row ``ky`` and column ``kx``; a depthwise conv's channel ``c`` is
#: both. Weight files, the golden model and the hardware all take weights in this order.
WEIGHT_AXES = {
    "full": ("co", "ci", "ky", "kx"),
    "depthwise": ("c", "ky", "kx"),
    "pointwise": ("co", "ci"),
}


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """One convolution: ``kind`` full/depthwise/pointwise, channels, stride, whether a ReLU
    follows, the frame size at its input, and whether its weights are frozen."""

    name: str
    kind: str
    c_in: int
    c_out: int
    stride: int
    relu: bool
    width: int
    height: int
    frozen: bool

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return {
            "full": (self.c_out, self.c_in, 3, 3),
            "depthwise": (self.c_out, 3, 3),
            "pointwise": (self.c_out, self.c_in),
        }[self.kind]

    @property
    def weight_axes(self) -> tuple[str, ...]:
        """The names of :attr:`weight_shape`'s axes (:data:`WEIGHT_AXES`)."""
        return WEIGHT_AXES[self.kind]


def sums_per_output(kind: str, c_in: int) -> int:
    """The products each output of a ``kind`` convolution with ``c_in`` input channels sums:
    what a configurable layer folded past its output channels may cut into slices."""
    return {"pointwise": c_in, "depthwise": 9, "full": 9 * c_in}[kind]


@dataclasses.dataclass(frozen=True)
class BlendSpec:
    """One per-channel alpha blend (codes 0..128, ``docs/numerics.md`` §5)."""

    name: str
    channels: int


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
        if (
            frozen_strides
            and trainable_strides
            and (
                blocks["frozen"][1] != blocks["trainable"][1]
                or frozen_strides[0] != trainable_strides[0]
            )
        ):
            # The hardware balances the two stages from their first blocks on: those read
            # the same pixels through the same window, so both must have the same stride.
            raise ValueError(
                f"{name}: frozen and trainable stages must start with the same "
                f"stride and agree on output size"
            )
        stages.append(StageSpec(blocks["frozen"][0], blocks["trainable"][0]))
        # without a frozen core the trainable strides alone may describe the stage
        w, h, c = blocks["frozen" if frozen_strides else "trainable"][1]
    return Network(name, width, height, channels_in, stem_channels, tuple(stages), **options)


#: Table 1: frozen stages 2x1 then 1x3 (the third module 1x1 then 1x3); trainable 2x1 (1x1).
_PAPER_PLAN = (
    ((2, 1, 1, 1), (2,)),
    ((2, 1, 1, 1), (2,)),
    ((1, 1, 1, 1), (1,)),
    ((2, 1, 1, 1), (2,)),
)

PRESETS = {
    "paper": lambda: _build("paper", 640, 480, 3, 32, _PAPER_PLAN),
    # Small enough for end-to-end simulation and small FPGAs: 32x24 input, channels / 8.
    "small": lambda: _build("small", 32, 24, 3, 4, _PAPER_PLAN),
    # The five configurations of Table 3 at a small size for tests: 32x24 input, channels / 16
    # (stem 2, outputs 2x2x16), so that all five build and simulate in CI.
    "two_cores_shuffle": lambda: _build("two_cores_shuffle", 32, 24, 3, 2, _PAPER_PLAN),
    "two_cores": lambda: _build("two_cores", 32, 24, 3, 2, _PAPER_PLAN, core_shuffle=False),
    "one_core": lambda: _build(
        "one_core", 32, 24, 3, 2, _PAPER_PLAN, trainable_cores=1, core_shuffle=False
    ),
    "frozen_only": lambda: _build(
        "frozen_only", 32, 24, 3, 2, _PAPER_PLAN, trainable_cores=0, core_shuffle=False
    ),
    "trainable_only": lambda: _build(
        "trainable_only", 32, 24, 3, 2, _PAPER_PLAN, frozen_core=False
    ),
}


_DICT_KEYS = {
    "name": str,
    "width": int,
    "height": int,
    "channels_in": int,
    "stem_channels": int,
    "plan": list,
    "trainable_cores": int,
    "frozen_core": bool,
    "core_shuffle": bool,
}
#: Keys a description may leave out (written only when they differ from the default).
_DICT_OPTIONAL = {"trainable_repeats": int}
_HEAD_KEYS = {"c_in": int, "c_out": int, "sources": list, "segments": int}
_HEAD_OPTIONAL = {"repeats": int}
# The name reaches reports and file contents: plain printable text only.
_NETWORK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_MAX_SIDE, _MAX_CHANNELS = 8192, 4096  # far past any real sensor or layer; bounds the build


def check_keys(given, wanted, *, unknown, missing) -> None:
    """Raise ``ValueError(unknown(key))`` for the first key (in sorted order) of ``given``
    that ``wanted`` lacks, then ``ValueError(missing(key))`` for the first of ``wanted``
    that ``given`` lacks."""
    for key in sorted(set(given) - set(wanted)):
        raise ValueError(unknown(key))
    for key in wanted:
        if key not in given:
            raise ValueError(missing(key))


def network_from_dict(d) -> Network:
    """A :class:`Network` from :meth:`Network.to_dict`'s data, or from ``{"preset": name}``
    (optionally with a ``"head"``). Every key, type and value is checked: a ``ValueError``
    names the first that is wrong."""
    if not isinstance(d, dict):
        raise ValueError(f"a network description is a JSON object, not {type(d).__name__}")
    if "preset" in d:
        extra = sorted(set(d) - {"preset", "head"})
        if extra:
            raise ValueError(f"network: 'preset' cannot be combined with {extra[0]!r}")
        if not isinstance(d["preset"], str):
            raise ValueError("network: 'preset' must be a string")
        net = preset(d["preset"])
        return dataclasses.replace(net, head=_head_from_list(d["head"])) if "head" in d else net
    head = _head_from_list(d.get("head", []))
    optional = {k: d[k] for k in _DICT_OPTIONAL if k in d}
    for key, v in optional.items():
        if type(v) is not _DICT_OPTIONAL[key]:
            raise ValueError(f"network: {key!r} must be {_DICT_OPTIONAL[key].__name__}, not {v!r}")
    check_keys(
        {k: v for k, v in d.items() if k != "head" and k not in _DICT_OPTIONAL},
        _DICT_KEYS,
        unknown=lambda key: f"network: unknown key {key!r}",
        missing=lambda key: f"network: missing key {key!r}",
    )
    for key, kind in _DICT_KEYS.items():
        v = d[key]
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            raise ValueError(f"network: {key!r} must be {kind.__name__}, not {v!r}")
    if not _NETWORK_NAME.fullmatch(d["name"]):
        raise ValueError(
            f"network: 'name' must be 1 to 64 letters, digits, '_', '-' or '.', "
            f"starting with a letter, not {d['name']!r}"
        )
    for key, top in (("width", _MAX_SIDE), ("height", _MAX_SIDE), ("stem_channels", _MAX_CHANNELS)):
        if not 1 <= d[key] <= top:
            raise ValueError(f"network: {key!r} must lie in 1..{top}, not {d[key]}")
    plan = []
    for i, stage in enumerate(d["plan"], 1):
        if not (
            isinstance(stage, list) and len(stage) == 2 and all(isinstance(s, list) for s in stage)
        ):
            raise ValueError(f"network: plan stage {i} must be [frozen strides, trainable strides]")
        for strides in stage:
            if any(type(s) is not int or s not in (1, 2) for s in strides):
                raise ValueError(f"network: plan stage {i}: strides must be 1 or 2")
        if (d["frozen_core"] and not stage[0]) or (d["trainable_cores"] and not stage[1]):
            raise ValueError(f"network: plan stage {i} needs at least one block per core")
        plan.append((tuple(stage[0]), tuple(stage[1])))
    if not plan:
        raise ValueError("network: 'plan' has no stages")
    # A regular block splits its input's channels in halves, and so does the core shuffle in
    # front of every stage; a downsampling block reads them whole and doubles them. So odd
    # stem channels work when every core starts with a downsampling block and no shuffle.
    first = plan[0][0][:1] + plan[0][1][:1]
    if d["stem_channels"] % 2 and (d["core_shuffle"] or first != (2,) * len(first)):
        raise ValueError(
            "network: odd 'stem_channels' need every core's first block to be a downsampling "
            "block (stride 2) and no core shuffle (regular blocks and the shuffle split channels "
            "in halves)"
        )
    channels = d["stem_channels"] * 2 ** sum((f or t).count(2) for f, t in plan)
    if channels > _MAX_CHANNELS:
        raise ValueError(f"network: the plan reaches {channels} channels (at most {_MAX_CHANNELS})")
    return _build(
        d["name"],
        d["width"],
        d["height"],
        d["channels_in"],
        d["stem_channels"],
        tuple(plan),
        trainable_cores=d["trainable_cores"],
        frozen_core=d["frozen_core"],
        core_shuffle=d["core_shuffle"],
        head=head,
        **optional,
    )


def _head_from_list(groups) -> tuple[HeadGroupSpec, ...]:
    """The head's groups from their JSON form (the network checks them against itself)."""
    if not isinstance(groups, list) or len(groups) > HEAD_MAX_GROUPS:
        raise ValueError(f"network: 'head' must be a list of at most {HEAD_MAX_GROUPS} groups")
    out = []
    for k, g in enumerate(groups):
        if not isinstance(g, dict):
            raise ValueError(f"network: head group {k} must be an object")
        check_keys(
            {key: v for key, v in g.items() if key not in _HEAD_OPTIONAL},
            _HEAD_KEYS,
            unknown=lambda key, k=k: f"network: head group {k}: unknown key {key!r}",
            missing=lambda key, k=k: f"network: head group {k}: missing key {key!r}",
        )
        for key, kind in (_HEAD_KEYS | _HEAD_OPTIONAL).items():
            if key not in g:
                continue
            v = g[key]
            if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
                raise ValueError(f"network: head group {k}: {key!r} must be {kind.__name__}")
        sources = []
        for src in g["sources"]:
            if not (
                isinstance(src, list)
                and len(src) == 2
                and isinstance(src[0], str)
                and type(src[1]) is int
            ):
                raise ValueError(
                    f"network: head group {k}: a source is [core, first channel], not {src!r}"
                )
            sources.append((src[0], src[1]))
        out.append(
            HeadGroupSpec(g["c_in"], g["c_out"], tuple(sources), g["segments"], g.get("repeats", 1))
        )
    return tuple(out)


def preset(name: str) -> Network:
    """The named preset (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ValueError(f"no preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]()
