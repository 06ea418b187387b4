"""Golden model: the integer arithmetic of ``docs/numerics.md`` in numpy, independent of the
hardware code: it builds on :mod:`spec` only and never imports Amaranth or ``semifreddo_hw``
(an import contract checks it, ``docs/architecture.md``)."""
