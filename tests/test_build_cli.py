"""The whole-backbone build command end to end: the malformed-file corpus, an ONNX model
imported, quantized, built (twice, byte-identical) and verified in Verilator by
``python -m sim.verify``, which must also catch a build that does not match its weights."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from generators.build import main as build_main
from sim.backbone import param_image
from spec.network import network_from_dict
from tests.backbone_helpers import BUILD_FILES
from tests.cli_helpers import run_module as run
from tests.malformed.make_corpus import TINY
from tests.onnx_models import backbone_onnx
from weights.io import load_npz, save_npz
from weights.quantize import calibration_frames
from weights.synthetic import random_float_params

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "malformed"
CASES = json.loads((CORPUS / "cases.json").read_text())


def test_corpus_is_large_and_distinct():
    assert len(CASES) >= 20
    assert len({c["name"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_malformed_file_exits_2_with_one_line(case, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--freeze", str(CORPUS / case["frozen"]), "--out", str(out), "--quiet", *case["args"]]
    if case["trainable"]:
        argv += ["--trainable", str(CORPUS / case["trainable"])]
    assert build_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert re.search(case["expect"], err[0]), (case["expect"], err[0])
    assert list(tmp_path.iterdir()) == []  # no output directory, no leftovers


def test_malformed_through_the_real_command(tmp_path):
    """The same, as a user runs it: a fresh interpreter, no traceback."""
    for name in ("pickled", "nan_weight", "network_mismatch"):
        case = next(c for c in CASES if c["name"] == name)
        args = ["--freeze", CORPUS / case["frozen"], "--out", tmp_path / "o"]
        if case["trainable"]:
            args += ["--trainable", CORPUS / case["trainable"]]
        r = run("generators.build", *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert re.search(case["expect"], r.stderr.strip().splitlines()[-1])
        assert not (tmp_path / "o").exists()


def test_good_corpus_files_load():
    from weights.files import load_weights

    w = load_weights(CORPUS / "good_frozen.npz", CORPUS / "good_trainable.npz")
    assert w.net == network_from_dict(TINY) and w.form == "int8"
    w = load_weights(CORPUS / "good_float_frozen.npz", CORPUS / "good_float_trainable.npz")
    assert w.form == "float"


def test_entry_size_limit(tmp_path, monkeypatch):
    import weights.io

    monkeypatch.setattr(weights.io, "MAX_ENTRY_BYTES", 1000)
    save_npz(tmp_path / "big.npz", {"x": np.zeros(1000)})
    with pytest.raises(weights.io.WeightFileError, match="'x.npy' unpacks to 8128 bytes"):
        weights.io.load_npz(tmp_path / "big.npz")


# -- ONNX -> float files -> build -> verify ---------------------------------------------


@pytest.fixture(scope="module")
def onnx_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_build")
    net = network_from_dict(TINY)
    fp = random_float_params(net, np.random.default_rng(7), calibration_frames(net))
    onnx.save(backbone_onnx(net, fp, shuffle=True), root / "tiny.onnx")
    (root / "tiny.json").write_text(json.dumps(TINY))
    r = run(
        "weights.onnx_import",
        root / "tiny.onnx",
        "--config",
        root / "tiny.json",
        "--frozen",
        root / "f.npz",
        "--trainable",
        root / "t.npz",
    )
    assert r.returncode == 0, r.stderr
    assert "core shuffle on" in r.stderr
    r = build_tiny(root, root / "build", "--jobs", "2")
    assert r.returncode == 0, r.stderr
    return root, r.stderr


def build_tiny(root, out, *args, **kw):
    """Build the ONNX-imported tiny network's files in ``root`` into ``out``."""
    return run(
        "generators.build",
        "--freeze",
        root / "f.npz",
        "--trainable",
        root / "t.npz",
        "--out",
        out,
        *args,
        **kw,
    )


def test_build_writes_every_file_and_reports_progress(onnx_build):
    root, log = onnx_build
    names = {p.name for p in (root / "build").iterdir()}
    assert names == BUILD_FILES | {".semifreddo-build", "timing.json"}
    timing = json.loads((root / "build" / "timing.json").read_text())
    assert [t["step"] for t in timing] == [
        "load",
        "quantize",
        "plan",
        "elaborate",
        "emit",
        "outputs",
    ]
    assert [line[:5] for line in log.splitlines() if line.startswith("[")] == [
        f"[{k}/6]" for k in range(1, 7)
    ]
    rep = json.loads((root / "build" / "report.json").read_text())
    assert rep["weights_form"] == "float" and rep["cores"] == ["frozen", "a", "b"]
    assert rep["multipliers"] == rep["configurable_weights"] > 0 and rep["adders"] > 0
    assert len(rep["quantization"]["layers"]) == len(network_from_dict(TINY).convs())
    # The parameter image holds one write per address of the map's regions, in order.
    writes = (root / "build" / "param_writes.hex").read_text().splitlines()
    regions = json.loads((root / "build" / "address_map.json").read_text())
    addresses = [a for r in regions for a in range(r["base"], r["base"] + r["count"])]
    assert [int(w.split()[0], 16) for w in writes] == addresses
    assert addresses[-1] == rep["parameter_addresses"] - 1
    # The build's quantized files are valid input for a rebuild.
    assert load_npz(root / "build" / "frozen.npz")["version"] == 2


def test_identical_input_gives_identical_build(onnx_build, tmp_path):
    root, _ = onnx_build
    # Another job count and an empty cache: nothing is read back from the first build.
    r = build_tiny(
        root,
        tmp_path / "again",
        "--jobs",
        "1",
        "--quiet",
        env={"SEMIFREDDO_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
    first = sorted(p.name for p in (root / "build").iterdir())
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == first
    for name in set(first) - {"timing.json"}:  # the build's own timings differ run to run
        assert (tmp_path / "again" / name).read_bytes() == (root / "build" / name).read_bytes(), (
            name
        )


def test_no_swap_builds_one_parameter_set(onnx_build, tmp_path):
    """By default two parameter sets (updates land on frame boundaries); ``--no-swap``
    builds one: half the parameter memory, no swap ports, the same address map and image."""
    root, _ = onnx_build
    r = build_tiny(root, tmp_path / "one", "--no-swap", "--quiet")
    assert r.returncode == 0, r.stderr
    two, one = root / "build", tmp_path / "one"
    rep2, rep1 = (json.loads((d / "report.json").read_text()) for d in (two, one))
    assert (rep2["parameter_sets"], rep1["parameter_sets"]) == (2, 1)
    assert rep2["parameter_memory_bits"] == 2 * rep1["parameter_memory_bits"]
    for name in ("address_map.json", "param_writes.hex"):
        assert (two / name).read_bytes() == (one / name).read_bytes()
    assert "param_swap" in (two / "semifreddo.v").read_text()
    assert "param_swap" not in (one / "semifreddo.v").read_text()
    assert "--no-swap" in (one / "report.md").read_text()


def test_verify_passes_on_the_build(onnx_build):
    root, _ = onnx_build
    # Relative paths, as a user types them (the simulation runs in a directory of its own).
    r = run("sim.verify", "--build", "build", "--frames", "2", "--quiet", "--work", "sim", cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (
        r.stdout.startswith("PASS")
        and "shuffle on : 2 frame(s), every output beat matched (o_a 4, o_b 4, o_frozen 4 beats)"
        in r.stdout
    ), r.stdout
    # Without stalls the backbone takes one pixel per clock, frame after frame.
    assert (
        "timing without stalls: 192 input pixels in 192 cycles (1.000 pixel/clock)" in r.stdout
    ), r.stdout
    assert re.search(r"o_frozen: first beat \d+ cycles after the first pixel", r.stdout)
    # Two parameter sets (the default): the image is checked and a swap runs mid-stream.
    assert "parameter swap: param_writes.hex is the image of trainable.npz" in r.stdout


def test_rtl_sim_bench_times_the_build_and_runs_a_frame(onnx_build, tmp_path):
    """bench/rtl_sim.py on the build (its Verilator build is the one sim.verify made, reused):
    cycles per second from two capped runs, then the whole frame, bit-exact."""
    root, _ = onnx_build
    out = tmp_path / "rtl_sim.json"
    args = ["--build", root / "build", "--work", root / "sim", "--cycles", "500", "3000"]
    r = subprocess.run(
        [sys.executable, "bench/rtl_sim.py", *map(str, args), "--frame", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert [run["cycles"] for run in data["runs"]] == [500, 3000]
    assert data["cycles_per_second"] > 0 and data["frame"] == [12, 8]
    frame = data["whole_frame"]
    assert frame["bit_exact"] and frame["cycles"] >= 12 * 8
    assert set(frame["received"]) == {"o_frozen", "o_a", "o_b"}
    assert "whole frame:" in r.stdout and "cycles/s" in r.stdout


def test_verify_checks_the_parameter_image(onnx_build, tmp_path):
    root, _ = onnx_build
    bad = tmp_path / "bad"
    shutil.copytree(root / "build", bad)
    lines = (bad / "param_writes.hex").read_text().splitlines()
    a, v = lines[5].split()
    lines[5] = f"{a} {int(v, 16) ^ 1:08x}"
    (bad / "param_writes.hex").write_text("\n".join(lines) + "\n")
    r = run("sim.verify", "--build", bad, "--quiet", "--work", root / "sim")
    assert r.returncode != 0
    assert "param_writes.hex: not the image of trainable.npz by address_map.json (first " in (
        r.stdout + r.stderr
    ), r.stdout + r.stderr


def test_verify_fails_on_a_build_that_does_not_match_its_weights(onnx_build, tmp_path):
    root, _ = onnx_build
    bad = tmp_path / "bad"
    shutil.copytree(root / "build", bad)
    t = dict(load_npz(bad / "trainable.npz"))
    t["b.m2.0.b1_pw.bias"] = t["b.m2.0.b1_pw.bias"] + (1 << 20)  # the hardware has the old
    save_npz(bad / "trainable.npz", t)
    # The parameter image made to match the new file, so that only the simulation can tell.
    regions = json.loads((bad / "address_map.json").read_text())
    image = param_image(regions, t)
    (bad / "param_writes.hex").write_text(
        "".join(f"{a:08x} {v & 0xFFFFFFFF:08x}\n" for a, v in image)
    )
    stamp = root / "sim" / "semifreddo" / ".semifreddo-stamp"
    built = stamp.stat().st_mtime_ns  # the passing run's simulation build
    r = run("sim.verify", "--build", bad, "--frames", "1", "--quiet", "--work", root / "sim")
    assert r.returncode == 1, r.stdout + r.stderr
    assert stamp.stat().st_mtime_ns == built  # same Verilog: the simulation was reused
    assert re.match(r"FAIL .*o_b: output beat \d+", r.stdout), r.stdout


def test_verify_per_layer_checks_each_layer_and_names_a_wrong_one(onnx_build, tmp_path):
    """``--per-layer``: each chosen convolution cut out of the build and simulated alone at
    its own input size; a layer whose weights file disagrees with its hardware is named."""
    root, _ = onnx_build
    layers = ["b.m2.0.b0_dw", "b.m2.0.b0_pw", "b.m2.0.b1_dw", "b.m2.0.b1_pw"]
    args = ["--per-layer", "--layers", "b.m2.0.*", "--frames", "1", "--quiet", "--jobs", "2"]
    r = run("sim.verify", "--build", root / "build", *args, "--work", root / "layers")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("PASS") and [ln.split(":")[0].strip() for ln in lines[1:]] == layers
    assert all("output beats matched" in ln for ln in lines[1:]), r.stdout
    bad = tmp_path / "bad"
    shutil.copytree(root / "build", bad)
    t = dict(load_npz(bad / "trainable.npz"))
    t["b.m2.0.b1_pw.bias"] = t["b.m2.0.b1_pw.bias"] + (1 << 20)  # the hardware has the old
    save_npz(bad / "trainable.npz", t)
    r = run("sim.verify", "--build", bad, *args, "--work", root / "layers")
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.match(r"FAIL .*1 of 4 layer\(s\) failed: b\.m2\.0\.b1_pw: ", r.stdout), r.stdout


def test_verify_refuses_a_directory_that_is_not_a_build(tmp_path):
    r = run("sim.verify", "--build", tmp_path)
    assert (
        r.returncode == 2
        and r.stderr.startswith("error: ")
        and "not a build directory" in r.stderr
        and "Traceback" not in r.stderr
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--out", "x"], "the following arguments are required: --freeze"),
        (["--freeze", "f.npz", "--preset", "nope"], "argument --preset: invalid choice: 'nope'"),
        (["--freeze", "f.npz", "--preset", "small", "--config", "c.json"], "not allowed with"),
        (["--freeze", str(CORPUS / "good_frozen.npz"), "--top", "9x"], "not a Verilog identifier"),
        (["--freeze", str(CORPUS / "good_frozen.npz"), "--jobs", "0"], "--jobs must be at least 1"),
        (
            ["--freeze", str(CORPUS / "good_frozen.npz"), "--serial-levels-per-stage", "0"],
            "--serial-levels-per-stage must be at least 1",
        ),
        (
            ["--freeze", str(CORPUS / "good_frozen.npz"), "--frozen-rom", "-1"],
            "--frozen-rom must be 0 or more",
        ),
        (
            ["--freeze", str(CORPUS / "good_frozen.npz"), "--frozen-rom", "72"],
            "--frozen-rom needs --fold rate",
        ),
        (
            ["--freeze", str(CORPUS / "good_frozen.npz"), "--relays", "-1"],
            "--relays must be 0 or more",
        ),
        (
            ["--freeze", str(CORPUS / "good_frozen.npz"), "--config", "missing.json"],
            "--config missing.json: no such file",
        ),
        (
            [
                "--freeze",
                str(CORPUS / "good_frozen.npz"),
                "--out",
                str(CORPUS / "good_frozen.npz") + "/sub",
            ],
            "is not a directory",
        ),
        (["--freeze", str(CORPUS / "good_frozen.npz"), "--out", "o" * 240], "name is too long"),
    ],
)
def test_bad_arguments_give_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = build_main([*argv, "--quiet"])
    except SystemExit as e:  # argparse's own checks
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_calibration_frames_are_checked(tmp_path):
    from weights.files import load_frames

    net = network_from_dict(TINY)

    def calibration(path, net):
        return load_frames(path, net, "--calib")

    save_npz(tmp_path / "c.npz", {"frames": np.zeros((2, 8, 12, 3), np.float32)})
    with pytest.raises(Exception, match="dtype float32, expected uint8"):
        calibration(tmp_path / "c.npz", net)
    save_npz(tmp_path / "c.npz", {"frames": np.zeros((2, 12, 8, 3), np.uint8)})
    with pytest.raises(Exception, match=r"shape \(2, 12, 8, 3\), expected \(N, 8, 12, 3\)"):
        calibration(tmp_path / "c.npz", net)
    save_npz(tmp_path / "c.npz", {"frames": np.zeros((2, 8, 12, 3), np.uint8)})
    assert calibration(tmp_path / "c.npz", net).shape == (2, 8, 12, 3)


def test_inputs_that_are_not_regular_files_are_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # reading it would block forever
    good = CORPUS / "good_frozen.npz"
    for args, message in (
        (["--freeze", fifo], f"{fifo}: not a regular file"),
        (["--freeze", good, "--config", fifo], "not a regular file"),
        (["--freeze", tmp_path], "not a regular file"),
    ):
        r = run("generators.build", *args, "--out", tmp_path / "o", "--quiet")
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    (tmp_path / "deep.json").write_text("[" * 100000 + "]" * 100000)
    (tmp_path / "twice.json").write_text('{"preset": "tiny", "preset": "small"}')
    for name, message in (
        ("deep.json", "nested too deeply"),
        ("twice.json", "key 'preset' appears twice"),
    ):
        r = run(
            "generators.build",
            "--freeze",
            good,
            "--config",
            tmp_path / name,
            "--out",
            tmp_path / "o",
            "--quiet",
        )
        assert r.returncode == 2 and message in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.json", "fifo", "twice.json"]


def test_a_failed_write_leaves_no_directories_behind(tmp_path):
    from generators.build import output_dir

    def fail(d):
        (d / "half.v").write_text("module")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        output_dir(tmp_path / "a" / "b" / "out").replace(fail, "a build\n")
    assert list(tmp_path.iterdir()) == []


def test_verify_refuses_bad_arguments_before_simulating(onnx_build, tmp_path):
    root, _ = onnx_build
    build = root / "build"
    save_npz(tmp_path / "none.npz", {"frames": np.zeros((0, 8, 12, 3), np.uint8)})
    (tmp_path / "file").write_text("")
    (tmp_path / "mine" / "semifreddo").mkdir(parents=True)  # a user's own directory
    (tmp_path / "mine" / "semifreddo" / "keep.txt").write_text("precious")
    latin1 = tmp_path / "latin1"
    shutil.copytree(build, latin1)
    (latin1 / "semifreddo.v").write_bytes(b"\xffmodule")
    for args, message in (
        (["--seed", "-1"], "--seed >= 0"),
        (["--stall", "0.95"], "--stall in [0, 0.9]"),
        (["--frames", "100000000"], "--frames: at most 104166 for 12x8"),
        (["--input", tmp_path / "none.npz"], "with N >= 1"),
        (["--work", tmp_path / "file"], f"--work {tmp_path / 'file'}: "),
        (["--work", tmp_path / "mine"], "is not a simulation build"),
        (["--build", latin1], "semifreddo.v: unreadable"),
        (["--layers", "b.*"], "--layers goes with --per-layer"),
        (["--per-layer", "--layers", "z.*"], "--layers 'z.*': no convolution of"),
        (["--per-layer", "--jobs", "0"], "--jobs must be >= 1"),
        (["--per-layer", "--input", tmp_path / "none.npz"], "--per-layer draws its own"),
    ):
        r = run("sim.verify", "--build", build, *args, "--quiet")
        assert (
            r.returncode == 2
            and r.stderr.startswith("error: ")
            and message in r.stderr
            and r.stderr.count("\n") == 1
        ), (args, r.stderr)
    assert (tmp_path / "mine" / "semifreddo" / "keep.txt").read_text() == "precious"


def test_verify_takes_only_a_module_name_from_the_report(onnx_build, tmp_path):
    # A report naming a path would make the simulation replace that directory.
    root, _ = onnx_build
    bad = tmp_path / "bad"
    shutil.copytree(root / "build", bad)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    (tmp_path / "victim.v").write_text((bad / "semifreddo.v").read_text())
    report = json.loads((bad / "report.json").read_text())
    for top in (str(victim), "../victim", "wire", 7):
        (bad / "report.json").write_text(json.dumps({**report, "top": top}))
        r = run("sim.verify", "--build", bad, "--work", tmp_path)
        assert r.returncode == 2 and "'top' is not a module name" in r.stderr, r.stderr
    assert (victim / "keep.txt").read_text() == "precious"


@pytest.mark.slow
def test_verify_per_layer_on_the_paper_build(tmp_path):
    """The paper preset (VGA, too big to simulate whole here), built from seeded int8
    weights and checked layer by layer on a sample: a regular block's layers at 40x30x128
    and a downsampling block's configurable pointwise layer. Minutes: the build dominates
    (every layer: ``python -m sim.verify --build DIR --per-layer``, about 20 minutes on
    one core)."""
    from spec.network import preset
    from weights.files import save_frozen, save_trainable
    from weights.synthetic import random_params

    net = preset("paper")
    params = random_params(net, np.random.default_rng(2020))
    save_frozen(tmp_path / "f.npz", net, params)
    save_trainable(tmp_path / "t.npz", net, params)
    r = run(
        "generators.build",
        "--freeze",
        tmp_path / "f.npz",
        "--trainable",
        tmp_path / "t.npz",
        "--out",
        tmp_path / "paper",
        "--quiet",
        timeout=3600,
    )
    assert r.returncode == 0, r.stderr
    for layers in ("frozen.m4.1.*", "a.m4.0.b0_pw"):
        args = ["--per-layer", "--layers", layers, "--frames", "1", "--quiet"]
        r = run("sim.verify", "--build", tmp_path / "paper", *args, "--work", tmp_path / "sim")
        assert r.returncode == 0 and r.stdout.startswith("PASS"), r.stdout + r.stderr
        assert r.stdout.count("output beats matched") == (2 if "*" in layers else 1), r.stdout


@pytest.mark.parametrize(
    "layer, want",
    [
        ({"latency_cycles": 30}, 1),
        ({"latency_cycles": 30, "fold": 256}, 256),
        ({"latency_cycles": 44, "digits": 18}, 18),
        ({"latency_cycles": 44, "digits": 18, "fold": 16, "spaced": True}, 45),
    ],
)
def test_per_layer_hang_limit_counts_the_cycles_a_beat_takes(layer, want):
    from sim.verify import beat_cycles

    assert beat_cycles(layer) == want


@pytest.mark.slow
def test_frozen_rom_build_verifies_layer_by_layer(tmp_path):
    """``small`` built as the board builds it (``--fold rate --fps 8000 --frozen-rom 72``):
    the report names the ROM layers, and a stage-4 ROM layer and its trainable twin, each
    a beat every 256 cycles, pass ``--per-layer`` in Verilator (a fixed hang limit once
    stopped both after four beats). About two minutes."""
    examples = Path(__file__).parent.parent / "weights" / "examples"
    build = tmp_path / "rom"
    r = run(
        "generators.build",
        "--freeze",
        examples / "small_frozen.npz",
        "--trainable",
        examples / "small_trainable.npz",
        *("--fold", "rate", "--fps", "8000", "--frozen-rom", "72", "--jobs", "2"),
        *("--out", build, "--quiet"),
        timeout=1800,
    )
    assert r.returncode == 0, r.stderr
    layers = json.loads((build / "report.json").read_text())["layers"]
    roms = {name for name, x in layers.items() if x.get("rom")}
    assert len(roms) == 16 and "frozen.m4.0.b0_pw" in roms and "frozen.m1.1.dw" not in roms
    assert "frozen.m4.1.dw" not in roms  # a 2x2 frame: no memory window
    assert "| frozen.m4.0.b0_pw | pointwise | yes, ROM |" in (build / "report.md").read_text()
    for name in ("frozen.m4.0.b0_pw", "a.m4.0.b0_pw"):
        args = ["--per-layer", "--layers", name, "--frames", "2", "--quiet"]
        r = run("sim.verify", "--build", build, *args, "--work", tmp_path / "sim")
        assert r.returncode == 0 and r.stdout.startswith("PASS"), r.stdout + r.stderr
