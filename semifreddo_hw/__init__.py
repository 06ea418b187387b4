"""Amaranth components of the SemifreddoNets generator.

Modules that build sub-components in their constructors (``conv``, ``blocks``, ``matvec``,
``requant``) start with ``# amaranth: UnusedElaboratable=no``: a sub-component is used
exactly when its parent is, and the parent, created by the caller, still warns if unused.
"""
