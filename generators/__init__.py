"""The build: weight files in; Verilog, parameter images and reports out.

``python -m generators.build`` (:mod:`.build`) runs the steps of :mod:`.steps` on a design:
a whole backbone (:mod:`.backbone_build`, frozen files of version 2) or a set of frozen
pointwise layers (:mod:`.layer_build`, version 1).
"""
