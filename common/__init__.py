"""Helpers every package may use, with no knowledge of networks or hardware: files written
atomically, output directories that are only ever replaced when this tool made them, the
command-line conventions, and work spread over forked processes."""
