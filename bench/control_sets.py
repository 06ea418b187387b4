"""How hard a board build's flip-flops are to pack on the ECP5: the ``TRELLIS_FF`` cells of a
synthesized netlist (Yosys's ``top.json``) counted by their reset (LSR) and enable (CE) nets.

    python -m generators.board --board ulx3s-85f --freeze F --trainable T --fps 8000 \\
        --out OUT --tool-dir TOOLS
    python bench/control_sets.py --netlist TOOLS/top.json --json FILE

An ECP5 logic tile's eight flip-flops share one LSR net (and clock), a slice's two one CE
net. So each LSR net's flip-flops fill whole tiles and each (LSR, CE) pair's whole slices:
``tiles_needed`` is the sum over LSR nets of the tiles its CE groups' slices fill, a lower
bound on the tiles any placement uses, against the part's (10,455 on the LFE5U-85F).
Hundreds of small LSR or CE groups push it well above the flip-flop count over eight, and
nextpnr's HeAP legaliser stalls near the top (``docs/bringup.md``). Seconds.
"""

import collections
import sys

from netlist_ffs import netlist_command  # the netlist benches' command line

#: Logic tiles of the LFE5U-85F (83,640 flip-flops, eight a tile).
TILES_85F = 10_455


def _net_names(module) -> dict:
    """Net bit -> its shortest name (Yosys keeps many for one net)."""
    names = {}
    for name, info in module.get("netnames", {}).items():
        for b in info["bits"]:
            if isinstance(b, int) and (b not in names or len(name) < len(names[b])):
                names[b] = name
    return names


def count(netlist: dict, top: str = "top") -> dict:
    module = netlist["modules"][top]
    names = _net_names(module)
    pairs = collections.Counter()
    for cell in module["cells"].values():
        if cell["type"] != "TRELLIS_FF":
            continue
        con = cell.get("connections", {})
        pairs[(tuple(con.get("LSR", ["0"])), tuple(con.get("CE", ["1"])))] += 1
    by_lsr = collections.defaultdict(collections.Counter)
    for (lsr, ce), n in pairs.items():
        by_lsr[lsr][ce] += n
    tiles = sum(-(-sum(-(-n // 2) for n in ces.values()) // 4) for ces in by_lsr.values())
    sizes = {lsr: sum(ces.values()) for lsr, ces in by_lsr.items()}

    def label(bits):
        b = bits[0] if len(bits) == 1 else None
        return names.get(b, str(b)) if isinstance(b, int) else f"constant {bits[0]}"

    return {
        "flip_flops": sum(pairs.values()),
        "lsr_nets": len(by_lsr),
        "ce_nets": len({ce for _, ce in pairs}),
        "lsr_ce_pairs": len(pairs),
        "lsr_nets_under_8": sum(1 for n in sizes.values() if n < 8),
        "tiles_needed": tiles,
        "tiles_85f": TILES_85F,
        "tiles_needed_pct": round(100 * tiles / TILES_85F, 1),
        "largest_lsr_nets": {
            label(lsr): n for lsr, n in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
        },
    }


def table(result: dict, rows: int) -> str:
    out = [
        f"flip-flops {result['flip_flops']:,}: {result['lsr_nets']:,} LSR nets "
        f"({result['lsr_nets_under_8']:,} of under 8 flip-flops), {result['ce_nets']:,} CE "
        f"nets, {result['lsr_ce_pairs']:,} (LSR, CE) pairs",
        f"tiles needed: {result['tiles_needed']:,} of {result['tiles_85f']:,} on an "
        f"LFE5U-85F ({result['tiles_needed_pct']} %)",
        "",
        f"{'LSR net':60} {'FFs':>8}",
    ]
    for name, n in list(result["largest_lsr_nets"].items())[:rows]:
        out.append(f"{name[:60]:60} {n:>8,}")
    return "\n".join(out)


def main(argv=None) -> int:
    return netlist_command("control_sets", __doc__, count, table, argv, rows=12)


if __name__ == "__main__":
    sys.exit(main())
