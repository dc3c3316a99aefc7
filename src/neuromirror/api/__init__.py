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

The commands stand on it: ``neuromirror versions``, ``pin``, ``diff``, ``cite``, ``lock``, ``changes``,
``forget``, ``keep``, ``verify``, ``restore`` and ``status --backup`` are one call here plus their printing, so what a script gets is what the command line shows (``--json``'s
fields are the records' ``to_json()``).  Errors a user can mend are :class:`UserError` with the
one-line message the command prints.  This module is a contract: docs/python-api.md shows it and
a test runs every example there.

May import ``account`` and anything below; must not import ``service``, ``commands`` or ``cli`` (they stand on it:
the service's keep, checks and drills are calls of :class:`Mirror`, its view app is ``Mirror.view()``).
Its modules: :mod:`.inputs` (what the calls take), :mod:`.base`, :mod:`.reading`, :mod:`.keeping` and
:mod:`.mirror` (the verbs, on one :class:`Mirror`).
"""

from __future__ import annotations

from neuromirror.api.inputs import ROOT_ENV, moment, spec_of, specs_of
from neuromirror.api.mirror import Mirror, open
from neuromirror.dataset.versions import Version
from neuromirror.errors import (
    BadInput,
    NeuromirrorError,
    NoSuchPath,
    NoSuchVersion,
    NotMirrored,
    Unavailable,
    UserError,
)
from neuromirror.records import VersionFile, VersionKind

__all__ = [
    "BadInput",
    "Mirror",
    "NeuromirrorError",
    "NoSuchPath",
    "NoSuchVersion",
    "NotMirrored",
    "ROOT_ENV",
    "Unavailable",
    "UserError",
    "Version",
    "VersionFile",
    "VersionKind",
    "moment",
    "open",
    "spec_of",
    "specs_of",
]
