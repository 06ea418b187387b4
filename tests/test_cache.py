# amaranth: UnusedElaboratable=no
"""Cache entries carry a checksum: a damaged entry of any kind (a plan, a Verilog part, a
synthesis result) is reported once, rebuilt into what a cold cache gives, and replaced; in a
read-only cache it is rebuilt in memory. The smallest products that are cached keep this
quick: a 2x3 plan, a one-register part, the synthesis of a register."""

import hashlib
import json
import warnings

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from generators import synth
from semifreddo_hw import cache, cmvm, emit
from semifreddo_hw.cmvm import plan_cmvm
from semifreddo_hw.emit import to_verilog_parts

W = np.array([[3, 1, -2], [2, -5, 7]])


class _Reg(wiring.Component):
    """The smallest part: one register (a part is cached when it has a fingerprint)."""

    d: In(4)
    q: Out(4)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.q.eq(self.d)
        return m

    def fingerprint(self) -> str:
        return "reg4"


class _Top(wiring.Component):
    d: In(4)
    q: Out(4)

    def __init__(self):
        super().__init__()
        self.reg = _Reg()

    def elaborate(self, platform):
        m = Module()
        m.submodules.reg = self.reg
        m.d.comb += [self.reg.d.eq(self.d), self.q.eq(self.reg.q)]
        return m


def _plan(use_cache=True) -> dict:
    return plan_cmvm(W, use_cache=use_cache).to_json() | {"solve_seconds": 0}


def _verilog(use_cache=True) -> str:
    top = _Top()
    return to_verilog_parts(top, "top", {"top__reg": top.reg}, use_cache=use_cache)


REG = """module r(input clk, input [3:0] d, output reg [3:0] q);
  always @(posedge clk) q <= d;
endmodule
"""


def _synth(use_cache=True) -> dict:
    r = synth.Runner(["generic"], use_cache=use_cache).run({"r": (REG, "r")})["r"]
    return {k: v for k, v in r.items() if not k.startswith("seconds")}


#: Per kind of entry: the product, through the cache or not, as compared (a plan's graph,
#: the Verilog text byte for byte, the synthesis counts), timings left out.
MAKE = {"cmvm": _plan, "verilog": _verilog, "synth": _synth}
#: Per kind: an entry's payload as compared.
PAYLOAD = {
    "cmvm": lambda text: json.loads(text) | {"solve_seconds": 0},
    "verilog": str,
    "synth": lambda text: json.loads(text) | {"seconds": 0},
}
#: Per kind: an intact entry (its checksum right) whose payload is not the product: a plan
#: of another matrix, the Verilog of another module, the result of another flow (a file
#: copied under a wrong key, say).
WRONG = {
    "cmvm": lambda text: json.dumps(json.loads(text) | {"outputs": [[0, 0, 0], [1, 0, 0]]}),
    "verilog": lambda text: text.replace("top__reg", "other"),
    "synth": lambda text: json.dumps(json.loads(text) | {"flow": "ice40"}),
}


def _header_end(data: bytes) -> int:
    return data.index(b"\n")


def _flip(data: bytes, k: int) -> bytes:
    return data[:k] + bytes([data[k] ^ 1]) + data[k + 1 :]


#: Ways an entry goes bad, each applied to the good entry file ``path`` of ``kind``.
DAMAGE = {
    "truncated": lambda p, kind: p.write_bytes(p.read_bytes()[:-20]),
    "truncated in its header": lambda p, kind: p.write_bytes(p.read_bytes()[:30]),
    "payload byte flipped": lambda p, kind: p.write_bytes(_flip(p.read_bytes(), -10)),
    "checksum byte flipped": lambda p, kind: p.write_bytes(
        _flip(p.read_bytes(), _header_end(p.read_bytes()) - 5)
    ),
    "garbage": lambda p, kind: p.write_bytes(b"\xff\xfe\x00 not an entry\n" * 3),
    "empty": lambda p, kind: p.write_bytes(b""),
    "a directory": lambda p, kind: p.unlink() or p.mkdir(),
    # What this cache held before entries had a checksum: the bare payload.
    "without checksum": lambda p, kind: p.write_bytes(
        p.read_bytes()[_header_end(p.read_bytes()) + 1 :]
    ),
    "another format version": lambda p, kind: p.write_bytes(
        p.read_bytes().replace(b"semifreddo-cache 1 ", b"semifreddo-cache 9 ", 1)
    ),
    "intact but wrong": lambda p, kind: cache.write(
        kind, p.name, WRONG[kind](cache.read(kind, p.name))
    ),
}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """Per kind: the name of the product's one entry, the entry's bytes, and the product
    from a cold cache."""
    root = tmp_path_factory.mktemp("good-cache")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEMIFREDDO_CACHE_DIR", str(root))
        for kind, make in MAKE.items():
            make()
            (entry,) = (root / kind).iterdir()
            out[kind] = entry.name, entry.read_bytes(), make(use_cache=False)
    return out


def _rebuilds(monkeypatch) -> list[str]:
    """The products built from scratch from now on, as their cache folders."""
    built = []
    for kind, module, name in [
        ("cmvm", cmvm, "_plan_da4ml"),
        ("verilog", emit, "part_text"),
        ("synth", synth, "synthesize"),
    ]:
        real = getattr(module, name)
        monkeypatch.setattr(
            module,
            name,
            lambda *a, kind=kind, real=real, **kw: built.append(kind) or real(*a, **kw),
        )
    return built


def _reports(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, cache.CacheWarning)]


def _damaged(tmp_path, monkeypatch, good, kind, damage):
    """A cache in ``tmp_path`` holding the product's entry with ``damage``; its path."""
    monkeypatch.setenv("SEMIFREDDO_CACHE_DIR", str(tmp_path))
    name, data, _ = good[kind]
    path = tmp_path / kind / name
    path.parent.mkdir()
    path.write_bytes(data)
    DAMAGE[damage](path, kind)
    assert not path.is_file() or path.read_bytes() != data
    return path


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("kind", MAKE)
def test_a_bad_entry_is_reported_once_rebuilt_and_replaced(
    kind, damage, good, tmp_path, monkeypatch
):
    path = _damaged(tmp_path, monkeypatch, good, kind, damage)
    built = _rebuilds(monkeypatch)
    with pytest.warns(cache.CacheWarning) as record:
        assert MAKE[kind]() == good[kind][2]
    (report,) = _reports(record)
    assert report.startswith(f"cache entry {path} ") and report.endswith("; rebuilding it")
    assert built == [kind]
    # Replaced by a good entry: the one a cold cache gets (timings aside).
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache.CacheWarning)
        now = cache.read(kind, path.name)
    before = good[kind][1].partition(b"\n")[2].decode()
    assert PAYLOAD[kind](now) == PAYLOAD[kind](before)


@pytest.mark.parametrize("damage", ["truncated", "a directory", "without checksum"])
@pytest.mark.parametrize("kind", MAKE)
def test_a_bad_entry_of_a_read_only_cache_is_rebuilt_in_memory(
    kind, damage, good, tmp_path, monkeypatch
):
    path = _damaged(tmp_path, monkeypatch, good, kind, damage)
    before = path.read_bytes() if path.is_file() else None

    # Every write fails as in a read-only cache (a file mode would not stop root).
    def read_only(*_):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache, "atomic_write", read_only)
    monkeypatch.setattr(type(path), "rmdir", read_only)
    built = _rebuilds(monkeypatch)
    with pytest.warns(cache.CacheWarning) as record:
        assert MAKE[kind]() == good[kind][2]
        assert MAKE[kind]() == good[kind][2]
    assert len(_reports(record)) == 1  # once, though read and rebuilt twice
    assert built == [kind, kind]
    assert (path.read_bytes() if path.is_file() else None) == before


@pytest.mark.filterwarnings("error::semifreddo_hw.cache.CacheWarning")
def test_entry_format(tmp_path, monkeypatch):
    """One header line (magic, format, payload bytes, SHA-256) and the UTF-8 payload; the
    same text always gives the same file."""
    monkeypatch.setenv("SEMIFREDDO_CACHE_DIR", str(tmp_path))
    text = "módulo\n"
    cache.write("t", "e", text)
    path = tmp_path / "t" / "e"
    data = path.read_bytes()
    payload = text.encode()
    digest = hashlib.sha256(payload).hexdigest()
    assert data == f"semifreddo-cache 1 {len(payload)} {digest}\n".encode() + payload
    cache.write("t", "e", text)
    assert path.read_bytes() == data
    assert cache.read("t", "e") == text
    assert cache.read("t", "missing") is None  # a plain miss is no news


def test_commands_print_a_cache_warning_as_one_line(capsys):
    """Through the commands' runner, a warning is one line ``warning: ...`` on stderr (also
    with --quiet), not Python's file-and-source-line form."""
    from common.cli import Parser, run_command

    def body(args, log):
        warnings.warn(
            "cache entry X fails its checksum (corrupted); rebuilding it",
            cache.CacheWarning,
            stacklevel=2,
        )

    assert run_command(Parser(prog="t"), body, (), ["--quiet"]) == 0
    err = capsys.readouterr().err
    assert err == "warning: cache entry X fails its checksum (corrupted); rebuilding it\n"
