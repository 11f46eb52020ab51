"""Resolve docstring cross-references the way a reader means them, or leave them to fail loudly.

physnn's docstrings name objects by where they are defined
(``physnn.devices.quantum.circuit.QuantumCircuit``) or by their short name in
context (``ConfigurationError``), while the reference documents each object once,
where users import it (``physnn.devices.quantum.QuantumCircuit``,
``physnn.errors.ConfigurationError``). An unresolved Python reference is retried

1. as a unique suffix of a documented name (Sphinx's own fuzzy search), then
2. by identity: the object the dotted name imports to, documented under another name.

Anything still unresolved (or ambiguous) stays a nitpicky warning, which
``make docs`` turns into an error. Private base classes are replaced by their
public bases in "Bases:" lines, since private objects have no page.
"""

from __future__ import annotations

import importlib
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref


def import_object(dotted: str) -> Any:
    """The object a dotted name refers to (module, then attributes), or None."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _documented_alias(env: Any, target: str) -> str | None:
    obj = import_object(target)
    if obj is None:
        return None
    last = target.rsplit(".", 1)[-1]
    objects = env.get_domain("py").objects
    aliases = [name for name in objects if name.rsplit(".", 1)[-1] == last and name != target
               and import_object(name) is obj]
    return aliases[0] if len(aliases) == 1 else None


def resolve(app: Any, env: Any, node: pending_xref, contnode: nodes.Element) -> nodes.Element | None:
    """``missing-reference`` handler for the Python domain (see the module docstring)."""
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    target = node["reftarget"]
    retry = node.deepcopy()
    retry["refspecific"] = True
    found = domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], target, retry, contnode)
    if found is None and "." in target:
        alias = _documented_alias(env, target)
        if alias is not None:
            found = domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], alias, retry, contnode)
    return found


def public_bases(app: Any, name: str, obj: Any, options: Any, bases: list) -> None:
    """``autodoc-process-bases``: a private base is shown as its own public bases."""
    expanded: list = []
    for base in bases:
        expanded += public_mro(base)
    bases[:] = list(dict.fromkeys(expanded))


def public_mro(base: Any) -> list[Any]:
    """``[base]`` if it is public (or not a class, e.g. ``Generic[T]``), else the public classes it derives from."""
    if not isinstance(base, type) or not base.__name__.startswith("_"):
        return [base]
    return [b for parent in base.__bases__ for b in public_mro(parent)]


def setup(app: Any) -> dict[str, Any]:
    """Sphinx entry point."""
    app.connect("missing-reference", resolve)
    app.connect("autodoc-process-bases", public_bases)
    return {"parallel_read_safe": True, "version": "1"}
