# amaranth: UnusedElaboratable=no
"""``address_map.json`` is enough to load the run-time parameters: the loader that
``docs/backbone.md`` shows, which reads only the map and the build's ``trainable.npz`` with
``json`` and ``numpy`` (no module of this project), gives exactly ``param_writes.hex``, on a
spatial and a rate-folded build (gaps in the folded banks) of the tiny network: stems,
trainable depthwise and pointwise convs, blends, and every conv's requantizer. A loader that
takes the weight file's element order for the bank's (the stem's is not) gets it wrong."""

import ast
import json
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from generators import steps
from generators.design import BuildConfig
from spec.network import network_from_dict
from tests.backbone_helpers import retrained
from tests.malformed.make_corpus import TINY
from weights.files import save_frozen, save_trainable
from weights.synthetic import random_params

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "backbone.md"
HEADER = {"format", "version", "network"}


def doc_loader():
    """``param_image(map_path, trainable_path)``, the loader of docs/backbone.md (the Python
    block of its section "The address map"), run with nothing imported but what it imports
    itself, which may be only ``json`` and ``numpy``."""
    text = DOC.read_text()
    section = text[text.index("### The address map") :]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    tree = ast.parse(block)
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported == {"json", "numpy"}, imported
    namespace = {}
    exec(compile(tree, f"{DOC} (the loader)", "exec"), namespace)
    return namespace["param_image"]


def read_hex(path: Path) -> dict:
    """``param_writes.hex`` as ``{address: 32-bit word}``; each address once."""
    lines = path.read_text().splitlines()
    image = {int(a, 16): int(v, 16) for a, v in (line.split() for line in lines)}
    assert len(image) == len(lines)
    return image


def differences(image: dict, expected: dict, regions: list) -> list[str]:
    """Each address where ``image`` differs from ``expected``, with its region."""
    out = []
    for a in sorted(set(image) | set(expected)):
        if image.get(a) != expected.get(a):
            r = next((r for r in regions if r["base"] <= a < r["base"] + r["count"]), None)
            where = f"{r['entry']} + {a - r['base']}" if r else "no region"
            out.append(f"{a:#x} ({where}): {image.get(a)} != {expected.get(a)}")
    return out


class Build(NamedTuple):
    fold: str  # the build command's --fold
    dir: Path
    net: object
    params: dict
    hardware: object  # the Backbone


@pytest.fixture(scope="module", params=["spatial", "rate"])
def build(request, tmp_path_factory) -> Build:
    """The build directory's files of the tiny network with random parameters (every step
    of the build command but the Verilog)."""
    root = tmp_path_factory.mktemp(f"map_{request.param}")
    net = network_from_dict(TINY)
    params = random_params(net, np.random.default_rng(3))
    save_frozen(root / "f.npz", net, params)
    save_trainable(root / "t.npz", net, params)
    config = BuildConfig(root / "f.npz", root / "t.npz", fold=request.param)
    b = steps.run(config, lambda _: None, [s for s in steps.STEPS if s.name != "emit"])
    out = root / "build"
    out.mkdir()
    for name, data in b.files.items():
        (out / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    return Build(request.param, out, net, params, b.design.hardware)


def test_the_map_alone_loads_every_parameter(build):
    regions = json.loads((build.dir / "address_map.json").read_text())
    image = doc_loader()(build.dir / "address_map.json", build.dir / "trainable.npz")
    expected = read_hex(build.dir / "param_writes.hex")
    assert not differences(image, expected, regions)
    # every address of every region, and none between regions
    addresses = [a for r in regions for a in range(r["base"], r["base"] + r["count"])]
    assert sorted(image) == sorted(expected) == addresses
    # Every run-time entry of the file is in the map, once: not the shifts and the input
    # padding (build-time constants), nor the core shuffle setting (the `shuffle` input).
    entries = set(np.load(build.dir / "trainable.npz")) - HEADER - {"core_shuffle", "input.pad"}
    assert sorted(r["entry"] for r in regions) == sorted(e for e in entries if "shift" not in e)


def test_the_map_loads_new_parameters(build, tmp_path):
    """Any parameter set for the same chip (new trainable weights, scales, biases, alphas)
    loads from the map as ``Backbone.param_writes`` writes it."""
    new = retrained(build.net, build.params, np.random.default_rng(4))
    save_trainable(tmp_path / "new.npz", build.net, new)
    image = doc_loader()(build.dir / "address_map.json", tmp_path / "new.npz")
    expected = {a: v & 0xFFFFFFFF for a, v in build.hardware.param_writes(new)}
    regions = json.loads((build.dir / "address_map.json").read_text())
    assert not differences(image, expected, regions)
    assert image != read_hex(build.dir / "param_writes.hex")


def test_the_map_states_each_order(build):
    regions = json.loads((build.dir / "address_map.json").read_text())
    stems = [r for r in regions if r["layer"].endswith(".stem") and r["field"] == "weight"]
    assert [r["layer"] for r in stems] == ["a.stem", "b.stem"]
    for r in stems:
        assert r["entry_axes"] == ["co", "ci", "ky", "kx"]
        assert r["axes"] == ["co", "ky", "kx", "ci"]
        assert r["shape"] == [2, 3, 3, 3]
    # The other weights keep the file's order; folded banks have gaps.
    assert all(r["axes"] == r["entry_axes"] for r in regions if r not in stems)
    gaps = [r for r in regions if r["row"] != r["row_stride"]]
    assert bool(gaps) == (build.fold == "rate")
    for r in regions:
        rows = int(np.prod(r["shape"])) // r["row"]
        assert rows * r["row"] == np.prod(r["shape"]) and rows * r["row_stride"] == r["count"]


def test_the_file_order_would_load_the_stems_wrongly(build, tmp_path):
    """A loader that ignored ``axes`` (took the entries in the file's order, as a map without
    orders let one assume): only the stems' weights land wrong, and they do."""
    regions = json.loads((build.dir / "address_map.json").read_text())
    naive = [{**r, "axes": r["entry_axes"], "shape": None} for r in regions]
    for r, n in zip(regions, naive, strict=True):
        n["shape"] = [r["shape"][r["axes"].index(x)] for x in r["entry_axes"]]
    (tmp_path / "naive.json").write_text(json.dumps(naive))
    image = doc_loader()(tmp_path / "naive.json", build.dir / "trainable.npz")
    wrong = differences(image, read_hex(build.dir / "param_writes.hex"), regions)
    assert wrong
    assert {w.split()[1].strip("(") for w in wrong} == {"a.stem.weight", "b.stem.weight"}


def test_param_word_is_the_bus_layout():
    """The host side's packing (spec.formats.param_word) is the bus's own layout."""
    from semifreddo_hw.param_bus import ParamBus
    from sim.rtl import struct_word
    from spec.formats import param_address_bits, param_word

    for size, addr, value in ((1, 0, -1), (5, 4, 2**31 - 1), (300, 299, -(2**31)), (2, 1, 7)):
        bus = ParamBus([])  # no banks; its signature at a given address count:
        bus.size, bus.address_width = size, param_address_bits(size)
        layout = bus.signature().members["payload"].shape
        assert param_word(addr, value, size) == struct_word(layout, addr=addr, value=value)


def test_host_writes_fit_the_port(build):
    """``sim.backbone.param_writes`` packs writes for the build's ``param_write`` port from
    the map alone: its ``addr`` field spans the gaps between regions too, so counting the
    regions' addresses (what ``sim.verify`` once did) gives a field one bit short on the
    rate-folded build, and every value lands shifted."""
    from sim.backbone import PARAM_PORT, param_writes
    from sim.rtl import struct_word
    from spec.formats import param_address_bits

    regions = json.loads((build.dir / "address_map.json").read_text())
    image = read_hex(build.dir / "param_writes.hex")
    layout = build.hardware.signature.members[PARAM_PORT].signature.members["payload"].shape
    words = param_writes(regions, [(a, v - (v >> 31 << 32)) for a, v in image.items()])
    assert words == [
        (PARAM_PORT, struct_word(layout, addr=a, value=v - (v >> 31 << 32)))
        for a, v in image.items()
    ]
    short = param_address_bits(len(image)) < layout["addr"].width
    assert short == (build.fold == "rate")
