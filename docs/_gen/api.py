"""The API reference of a package, generated from its ``__all__`` and its public submodules.

``.. physnn-api:: physnn.data`` expands into autodoc directives: the package's
exported names, one directive each (so lazily imported names, such as the
quantum and optics classes, are found), then each public submodule with what it
defines that the package does not re-export (classes, functions, and data with a
``#:`` comment). A name added to ``__all__`` or a new submodule appears without
editing the docs. An object re-exported from elsewhere in physnn (an error class
in ``physnn.devices.adapters``) is linked to, not described twice.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType
from typing import Any

from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.pycode import ModuleAnalyzer


def exported(module: ModuleType) -> list[str]:
    """The module's public names: its ``__all__``, else what it defines (see :func:`defined`)."""
    names = getattr(module, "__all__", None)
    if names is None:
        return defined(module)
    return [n for n in names if not inspect.ismodule(getattr(module, n))]


def defined(module: ModuleType) -> list[str]:
    """Public classes and functions defined in ``module``, and its data documented by a ``#:`` comment."""
    commented = {name for (scope, name) in ModuleAnalyzer.for_module(module.__name__).find_attr_docs() if not scope}
    return [n for n, obj in vars(module).items() if not n.startswith("_") and
            (getattr(obj, "__module__", None) == module.__name__ and (inspect.isclass(obj) or inspect.isfunction(obj))
             or n in commented)]


def submodules(package: ModuleType) -> list[ModuleType]:
    """The public plain modules of a package (subpackages have pages of their own)."""
    if not hasattr(package, "__path__"):
        return []
    found = sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name)
    return [importlib.import_module(f"{package.__name__}.{m.name}") for m in found
            if not m.ispkg and not m.name.startswith("_")]


def describe(module: ModuleType, name: str) -> list[str]:
    """The autodoc directive for ``module.name``, or a link where physnn describes it elsewhere."""
    obj = getattr(module, name)
    home = getattr(obj, "__module__", None) or module.__name__
    if home != module.__name__ and not home.startswith(module.__name__ + "."):
        role = "class" if inspect.isclass(obj) else "func"
        return [f"``{name}``: :{role}:`{home}.{obj.__qualname__}`, re-exported here.", ""]
    if inspect.isclass(obj):
        return [f".. autoclass:: {module.__name__}.{name}", "   :members:", ""]
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return [f".. autofunction:: {module.__name__}.{name}", ""]
    return [f".. autodata:: {module.__name__}.{name}", ""]


def api_lines(name: str, heading: str = "-") -> list[str]:
    """reStructuredText documenting package ``name``, with one section per public submodule."""
    package = importlib.import_module(name)
    names = exported(package)
    lines = [f".. automodule:: {name}", ""]
    for n in names:
        lines += describe(package, n)
    shared = {id(getattr(package, n)) for n in names}
    for sub in submodules(package):
        title = f"``{sub.__name__}``"
        lines += [title, heading * len(title), "", f".. automodule:: {sub.__name__}", ""]
        for n in exported(sub):
            if id(getattr(sub, n)) not in shared:
                lines += describe(sub, n)
    return lines


class ApiDirective(Directive):
    """``.. physnn-api:: package``: the package's reference (see :func:`api_lines`)."""

    required_arguments = 1
    option_spec = {"heading": str}

    def run(self) -> list:
        try:
            lines = api_lines(self.arguments[0], self.options.get("heading", "-"))
        except (ImportError, AttributeError) as exc:  # a half-written package: fail the build, say where
            raise self.error(f"physnn-api: cannot document {self.arguments[0]}: {exc!r}") from exc
        source = self.state_machine.get_source(self.lineno)
        self.state_machine.insert_input(StringList(lines, source), source)
        return []


def setup(app: Any) -> dict[str, Any]:
    """Sphinx entry point."""
    app.add_directive("physnn-api", ApiDirective)
    return {"parallel_read_safe": True, "version": "1"}
