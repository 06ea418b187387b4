"""Simulation: the golden model (:mod:`sim.golden`, numpy integers, independent of the
hardware) and the harness that runs the emitted Verilog against it: cocotb + Verilator
(:mod:`.rtl`, :mod:`.tb`), Amaranth's simulator (:mod:`.pysim`), whole-backbone streams
(:mod:`.backbone`) and the post-build check ``python -m sim.verify`` (:mod:`.verify`)."""
