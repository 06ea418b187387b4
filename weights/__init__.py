"""Weights: what comes from training, checked and made into the integers the hardware runs.

* :mod:`.io`: safe reading of untrusted ``.npz`` and JSON files;
* :mod:`.files`: the weight-file formats (``docs/weights-format.md``), frames files;
* :mod:`.floatnet`: the float network (conv + batch norm, blend logits) and its forward pass;
* :mod:`.quantize`: float to int8 parameters, with the error against the float network;
* :mod:`.onnx_import` (with :mod:`.onnx_graph`, :mod:`.onnx_topology`): float backbones
  from ONNX, and the ``python -m weights.onnx_import`` command;
* :mod:`.synthetic`: weights with trained statistics, for tests, benchmarks and examples.
"""
