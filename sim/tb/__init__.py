"""cocotb test benches, run inside the simulator by :mod:`sim.rtl` (no Amaranth here)."""
