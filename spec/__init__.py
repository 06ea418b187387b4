"""The specification every other package builds on: what a SemifreddoNet backbone is.

* :mod:`spec.network`: the network description (topology, presets, JSON form);
* :mod:`spec.names`: how layers, blends and Verilog modules are named;
* :mod:`spec.formats`: the number formats of weights, feature maps and run-time parameters;
* :mod:`spec.params`: the integer parameters of a network and their checks;
* :mod:`spec.stream`: the pixel-stream format (raster order, line and frame markers);
* :mod:`spec.dataflow`: the backbone's dataflow over any number type.

Only the standard library and numpy: the golden model, the weight files and the hardware all
import it, and it imports none of them (``docs/architecture.md``).
"""
