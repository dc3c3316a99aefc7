"""neuromirror's Python API: what the commands do, for a notebook or a script (as ``datalad.api``).

>>> from neuromirror import api
>>> m = api.open("/data/mirror")                  # an existing mirror: its root (the index inside it)
>>> [v.label for v in m.versions("dandi:000027")]
['0.230629.1955', 'draft']
>>> v = m.version("dandi:000027@0.230629.1955")
>>> v.commit, v.kind
('953ff90ebf7a...', 'published')
>>> for f in v.files():                           # streamed from the dataset's tree
...     print(f.path, f.size, f.urls[:1])

Every command stands on it: each is one call here plus its printing, so what a script gets is what the
command line shows (``--json`` is the result's ``to_json()``).  Errors a user can mend are :class:`UserError` with the
one-line message the command prints.  This module is a contract: docs/python-api.md shows it and
a test runs every example there.

May import ``account`` and anything below; must not import ``service``, ``commands`` or ``cli`` (they stand on it:
the service's keep, checks and drills are calls of :class:`Mirror`, its view app is ``Mirror.view()``).
Its modules: :mod:`.inputs` (what the calls take), :mod:`.base`, the verbs' rooms (:mod:`.reading`,
:mod:`.keeping`, :mod:`.syncing`, ...) and :mod:`.mirror` (every verb on one :class:`Mirror`).  The errors and
the result base load with this package; the rest when first named (``api.Mirror``): a command's start-up, which
imports this package to parse its arguments, does not pay for the mirror's modules until it runs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from neuromirror.errors import (
    BadInput,
    NeuromirrorError,
    NoSuchPath,
    NoSuchVersion,
    NotMirrored,
    Unavailable,
    UserError,
)
from neuromirror.results import Failed, Item, Result, Status

if TYPE_CHECKING:
    from neuromirror.api.inputs import ROOT_ENV, moment, spec_of, specs_of
    from neuromirror.api.mirror import Mirror, open
    from neuromirror.dataset.versions import Version
    from neuromirror.records import VersionFile, VersionKind
    from neuromirror.spec import Spec
    from neuromirror.util.sizes import human_bytes

#: name -> the module it is loaded from when first named
_LAZY = {
    "ROOT_ENV": "neuromirror.api.inputs",
    "moment": "neuromirror.api.inputs",
    "spec_of": "neuromirror.api.inputs",
    "specs_of": "neuromirror.api.inputs",
    "Mirror": "neuromirror.api.mirror",
    "open": "neuromirror.api.mirror",
    "Version": "neuromirror.dataset.versions",
    "VersionFile": "neuromirror.records",
    "VersionKind": "neuromirror.records",
    "Spec": "neuromirror.spec",
    "human_bytes": "neuromirror.util.sizes",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'neuromirror.api' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "BadInput",
    "Failed",
    "Item",
    "Mirror",
    "NeuromirrorError",
    "NoSuchPath",
    "NoSuchVersion",
    "NotMirrored",
    "ROOT_ENV",
    "Result",
    "Spec",
    "Status",
    "Unavailable",
    "UserError",
    "Version",
    "VersionFile",
    "VersionKind",
    "human_bytes",
    "moment",
    "open",
    "spec_of",
    "specs_of",
]
