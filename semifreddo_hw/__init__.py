"""Amaranth components of the SemifreddoNets generator, built on the specification
(:mod:`spec`) alone: arithmetic (shift-add graphs and their planners, matrix-vector products,
requantizer), streams (windows, FIFOs, register slices), layers, blocks, blends and the
backbone, plus Verilog emission (``docs/architecture.md`` has the module map).

Modules whose components build sub-components in their constructors start with
``# amaranth: UnusedElaboratable=no``: a sub-component is used exactly when its parent is,
and the parent, created by the caller, still warns if unused.
"""
