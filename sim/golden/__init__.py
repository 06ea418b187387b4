"""Golden model: the integer arithmetic of docs/numerics.md in numpy, independent of the
hardware code (nothing here imports Amaranth or semifreddo_hw)."""
