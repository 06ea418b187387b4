"""Build flow: weight files in; Verilog, memory images and reports out."""
