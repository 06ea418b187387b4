"""Where a board build's flip-flops are: the ``TRELLIS_FF`` cells of a synthesized netlist
(Yosys's ``top.json``, as ``python -m generators.board --tool-dir DIR`` leaves it), counted by
the backbone block they sit in and by the kind of component (window, product, requantizer,
...), from the hierarchical names Yosys keeps when it flattens.

    python -m generators.board --board ulx3s-85f --freeze F --trainable T --fps 8000 \\
        --out OUT --tool-dir TOOLS
    python bench/netlist_ffs.py --netlist TOOLS/top.json --json FILE

A placement that stalls in nextpnr's legaliser at a high flip-flop utilisation needs to know
which flip-flops to cut; this says where they are. Seconds (the netlist's JSON is parsed
whole: ~150 MB for the ``small`` preset).
"""

import argparse
import collections
import json
import re
import sys
from pathlib import Path

#: The backbone's instance inside the board top (``link.backbone``) and inside a bare build.
_PREFIXES = (("link", "backbone"), ())
#: A component's name: digits at the end of an instance name (lanes, branches) made one.
_INDEX = re.compile(r"\d+$")
#: Yosys's names for the flip-flops it builds beside a block RAM's output port (its read
#: register rebuilt in the fabric for a read-write collision's result).
_BRAM_PORT = re.compile(r"_DO[AB]\d+_TRELLIS_FF")
#: A register's own name: Yosys's suffixes cut (``win00_TRELLIS_FF_Q_3`` -> ``win00``).
_LEAF = re.compile(r"(_TRELLIS|\[|\$).*")


def place(name: str):
    """Where a flattened cell or net name sits in the backbone: ``(block, kind, leaf)``
    (the first name inside the backbone; the instance path inside the block, its indices
    made ``#``, or ``(block)``; the cell's own name, Yosys's suffixes cut), or None
    outside it."""
    parts = name.lstrip("\\$").split(".")
    prefix = next((p for p in _PREFIXES if tuple(parts[: len(p)]) == p and p), None)
    if prefix is None or len(parts) <= len(prefix) + 1:
        return None
    inner = parts[len(prefix) :]
    kind = ".".join(_INDEX.sub("#", p) for p in inner[1:-1]) or "(block)"
    return inner[0], kind, _LEAF.sub("", inner[-1])


def count(netlist: dict, top: str = "top") -> dict:
    """The ``TRELLIS_FF`` cells of module ``top``: in all, per backbone block (the first
    name inside the backbone), per component kind (the instance path inside the block, its
    indices made ``#``) and per register (kind and register name; the 100 largest)."""
    cells = netlist["modules"][top]["cells"]
    blocks, kinds, parts, registers = (collections.Counter() for _ in range(4))
    total = outside = 0
    # Block RAM data outputs: which cell drives each net bit.
    bram_out = {
        bit: name
        for name, cell in cells.items()
        if cell["type"] == "DP16KD"
        for port, bits in cell["connections"].items()
        if cell.get("port_directions", {}).get(port) == "output"
        for bit in bits
    }
    collision = 0
    fed = collections.Counter()  # per block RAM, the flip-flops its outputs drive directly
    for name, cell in cells.items():
        if cell["type"] != "TRELLIS_FF":
            continue
        total += 1
        collision += bool(_BRAM_PORT.search(name))
        data = cell.get("connections", {}).get("DI", [])
        if data and data[0] in bram_out:
            fed[bram_out[data[0]]] += 1
        where = place(name)
        if where is None:
            outside += 1
            continue
        block, kind, leaf = where
        blocks[block] += 1
        kinds[kind] += 1
        parts[kind.split(".")[-1]] += 1
        registers[f"{kind.split('.')[-1]}:{leaf}"] += 1
    return {
        "flip_flops": total,
        "outside_backbone": outside,
        # flip-flops whose data comes straight from a block RAM's output (they crowd the
        # slices beside it), how many block RAMs have any, the most on one
        "block_ram_fed": sum(fed.values()),
        "block_rams_feeding": len(fed),
        "most_on_one_block_ram": max(fed.values(), default=0),
        "block_ram_port_registers": collision,
        "by_block": dict(blocks.most_common()),
        "by_kind": dict(kinds.most_common()),
        # the kinds summed by their last part (window, product, requant, ...)
        "by_part": dict(parts.most_common()),
        # the registers' long tail (one name per lane of some layers) left out
        "by_register": dict(registers.most_common(100)),
    }


def table(result: dict, rows: int) -> str:
    out = [f"flip-flops: {result['flip_flops']:,} ({result['outside_backbone']:,} outside the "]
    out[0] += "backbone)"
    out.append(
        f"fed straight from a block RAM's output: {result['block_ram_fed']:,} (on "
        f"{result['block_rams_feeding']} block RAMs, at most {result['most_on_one_block_ram']} "
        f"on one); Yosys's block RAM port registers (`_DOA`/`_DOB` names): "
        f"{result['block_ram_port_registers']:,}"
    )
    sections = (("by_block", "block"), ("by_kind", "kind"), ("by_register", "register"))
    return "\n".join(out + tables(result, sections, rows, "FFs"))


def tables(
    result: dict, sections, rows: int, column: str, total: int = 0, width: int = 40
) -> list[str]:
    """Lines of ``result[key]``'s first ``rows`` entries under ``title`` for each
    ``(key, title)`` of ``sections`` (names cut to ``width``); with ``total``, each entry's
    share of it too."""
    out = []
    for key, title in sections:
        out += ["", f"{title:{width}} {column:>8}" + (f" {'share':>6}" if total else "")]
        for name, n in list(result[key].items())[:rows]:
            share = f" {n / total:>6.1%}" if total else ""
            out.append(f"{name[:width]:{width}} {n:>8,}{share}")
    return out


def main(argv=None) -> int:
    return netlist_command("netlist_ffs", __doc__, count, table, argv, rows=20)


def netlist_command(name, doc, count, table, argv, rows: int) -> int:
    """The command line of a bench reading a synthesized netlist: ``--netlist``, ``--top``,
    ``--rows``, ``--json``; ``count(netlist, top)`` printed as ``table(result, rows)``."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--netlist", required=True, type=Path, help="Yosys's top.json")
    p.add_argument("--top", default="top", help="the top module (default top)")
    p.add_argument("--rows", type=int, default=rows, help=f"rows per table (default {rows})")
    p.add_argument("--json", type=Path, help="write the result here")
    args = p.parse_args(argv)

    def compute():
        return count(json.loads(args.netlist.read_text()), args.top)

    return run(name, args.netlist, compute, lambda r: table(r, args.rows), args.json)


def run(name, source, compute, text, json_path) -> int:
    """A diagnostic bench's ending: ``compute()``'s result printed as ``text(result)`` and
    written to ``json_path`` (if given), 0; or, if ``source`` cannot be read, one line
    naming it on stderr, 2."""
    try:
        result = compute()
    except (OSError, ValueError, KeyError) as e:
        print(f"{name}: {source}: {e}", file=sys.stderr)
        return 2
    print(text(result))
    if json_path:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
