"""Sphinx configuration of physnn's documentation site (``make docs``; README: docs/index.md).

The guides are the Markdown files in docs/ (read by myst-parser); the API
reference comes from the docstrings (autodoc, Google-style sections through
napoleon); the device reference is generated from the device catalog at every
build by docs/_gen/devices.py, so it cannot drift from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_gen"))

project = "physnn"
author = "the physnn authors"
copyright = "physnn authors, MIT licence"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "api",  # docs/_gen/api.py: `.. physnn-api:: package`, a package's reference from __all__ and submodules
    "devices",  # docs/_gen/devices.py: the device reference, one page per family
    "xref",  # docs/_gen/xref.py: docstring references by short or defining-module name
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_gen", "README.md"]
root_doc = "index"

# -- links: every relative link and heading anchor between the guides is resolved (a broken one is a warning,
#    and `make docs` turns warnings into errors); code outside docs/ is linked on GitHub-free terms: as text
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]

# -- the API reference
# physnn/devices/adapters/soundcard.py writes an absolute value as |sample|, which reST reads as a substitution
rst_prolog = r".. |sample| replace:: \|sample\|"

autodoc_default_options = {"show-inheritance": True}  # members: listed by `physnn-api` (docs/_gen/api.py)
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# -- nitpicky mode (`-n`) checks every cross-reference (docs/_gen/xref.py resolves short and defining-module
#    names); what is not checked:
# a targeted suppression for a file other engineers are editing (to be fixed there):
# physnn/devices/adapters/visa.py refers to the instance attribute `owner`, which has no docstring of its own
nitpick_ignore = [("py:attr", "owner")]
nitpick_ignore_regex = [
    # private objects (a leading underscore) have no page; they show up in signatures' annotations
    (r"py:.*", r"(.*\.)?_[A-Za-z]\w*(\..*)?"),
    # other projects: their inventories (intersphinx) cannot be fetched offline, in CI
    (r"py:.*", r"(torch|numpy|np|scipy|pennylane|qml|pedalboard|ray|pyvisa|soundfile|matplotlib|tqdm|sounddevice)"
               r"(\..*)?"),
    # the standard library (builtins and typing names are resolved by Sphinx itself)
    (r"py:.*", r"(collections|os|pathlib|argparse|concurrent|threading|contextlib|types|enum|io|numbers)(\..*)?"),
    # annotations written as bare names: nn.Module, pathlib's Path
    (r"py:class", r"Module|Path"),
]

# -- output
html_theme = "furo"
html_title = "physnn"
html_static_path: list[str] = []


def _plain_data_docstrings(app) -> None:
    """Napoleon reads a data or attribute docstring's first line as ``type: description``; physnn's ``#:``
    comments are sentences ("Built-in losses: name -> ..."), so napoleon formats every other kind of object."""
    from sphinx.ext.napoleon import _process_docstring

    listeners = app.events.listeners["autodoc-process-docstring"]
    listeners[:] = [entry for entry in listeners if entry.handler is not _process_docstring]

    def process(app, what, name, obj, options, lines) -> None:
        if what not in ("data", "attribute"):
            _process_docstring(app, what, name, obj, options, lines)

    app.connect("autodoc-process-docstring", process)


#: docstrings whose shape notation "(B, *name)" reST reads as unclosed emphasis (physnn/layer.py, being edited)
_LITERAL_ASTERISKS = {"physnn.PhysicalLayer.forward"}


def _escape_asterisks(app, what, name, obj, options, lines) -> None:
    if name in _LITERAL_ASTERISKS:
        lines[:] = [line.replace("*", r"\*") for line in lines]


def setup(app) -> None:
    """Local configuration hooks."""
    app.connect("builder-inited", _plain_data_docstrings)
    app.connect("autodoc-process-docstring", _escape_asterisks, priority=400)
