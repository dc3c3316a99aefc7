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
    IndexDamaged,
    NeuromirrorError,
    NoSuchPath,
    NoSuchVersion,
    NotMirrored,
    ReadOnly,
    Unavailable,
    UserError,
)
from neuromirror.results import Failed, Item, Result, Status

if TYPE_CHECKING:
    # what the verbs return
    from neuromirror.account.backup_model import Backup
    from neuromirror.api.checking import Audited, ConfigCheck, Repaired
    from neuromirror.api.finding import Found, Listing, Urls
    from neuromirror.api.getting import Tiff
    from neuromirror.api.inputs import ROOT_ENV, moment, spec_of, specs_of
    from neuromirror.api.keeping import Forgot
    from neuromirror.api.mirror import Mirror, open
    from neuromirror.api.status import BackupReport, CopiesReport, StatusReport
    from neuromirror.api.upkeep_results import Pruned, Published, Reindexed
    from neuromirror.dataset.versions import Versions
    from neuromirror.engine.synced import SyncResult
    from neuromirror.index.rows import Version
    from neuromirror.keep.prune import PruneRun
    from neuromirror.keep.stores import StoresRun
    from neuromirror.maintain.run import MaintainReport
    from neuromirror.pin.changes import Changes, VersionDiff
    from neuromirror.pin.citation import CitationInfo
    from neuromirror.pin.handout import Got, Reproduced
    from neuromirror.pin.lockfile import Lock
    from neuromirror.pin.record import Pin
    from neuromirror.readers import formats
    from neuromirror.records import VersionFile, VersionKind
    from neuromirror.restore.report import DrillRun, RestoreReport
    from neuromirror.spec import Spec
    from neuromirror.util.sizes import human_bytes
    from neuromirror.verify.report import Verified, VerifyReport
    from neuromirror.verify.stores_report import StoresCheck

#: name -> the module it is loaded from when first named
_LAZY = {
    "ROOT_ENV": "neuromirror.api.inputs",
    "moment": "neuromirror.api.inputs",
    "spec_of": "neuromirror.api.inputs",
    "specs_of": "neuromirror.api.inputs",
    "Mirror": "neuromirror.api.mirror",
    "open": "neuromirror.api.mirror",
    "Version": "neuromirror.index.rows",
    "VersionFile": "neuromirror.records",
    "VersionKind": "neuromirror.records",
    "Spec": "neuromirror.spec",
    "human_bytes": "neuromirror.util.sizes",
    "formats": "neuromirror.readers",  # get's formats: name -> FormatWriter, as their packages registered them
    # what the verbs return (each a neuromirror.results.Result), for a script's annotations
    "Got": "neuromirror.pin.handout",
    "Reproduced": "neuromirror.pin.handout",
    "Tiff": "neuromirror.api.getting",
    "Urls": "neuromirror.api.finding",
    "Listing": "neuromirror.api.finding",
    "Found": "neuromirror.api.finding",
    "SyncResult": "neuromirror.engine.synced",
    "StatusReport": "neuromirror.api.status",
    "CopiesReport": "neuromirror.api.status",
    "BackupReport": "neuromirror.api.status",
    "Published": "neuromirror.api.upkeep_results",
    "Reindexed": "neuromirror.api.upkeep_results",
    "Pruned": "neuromirror.api.upkeep_results",
    "StoresRun": "neuromirror.keep.stores",
    "PruneRun": "neuromirror.keep.prune",
    "VerifyReport": "neuromirror.verify.report",
    "Verified": "neuromirror.verify.report",
    "StoresCheck": "neuromirror.verify.stores_report",
    "RestoreReport": "neuromirror.restore.report",
    "DrillRun": "neuromirror.restore.report",
    "VersionDiff": "neuromirror.pin.changes",
    "CitationInfo": "neuromirror.pin.citation",
    "Lock": "neuromirror.pin.lockfile",
    "Forgot": "neuromirror.api.keeping",
    "Changes": "neuromirror.pin.changes",
    "Pin": "neuromirror.pin.record",
    "Versions": "neuromirror.dataset.versions",
    "Audited": "neuromirror.api.checking",
    "Repaired": "neuromirror.api.checking",
    "ConfigCheck": "neuromirror.api.checking",
    "Backup": "neuromirror.account.backup_model",
    "MaintainReport": "neuromirror.maintain.run",
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
    "Audited",
    "Backup",
    "BackupReport",
    "BadInput",
    "Changes",
    "CitationInfo",
    "ConfigCheck",
    "CopiesReport",
    "DrillRun",
    "Failed",
    "Forgot",
    "Found",
    "Got",
    "IndexDamaged",
    "Item",
    "Listing",
    "Lock",
    "MaintainReport",
    "Mirror",
    "NeuromirrorError",
    "NoSuchPath",
    "NoSuchVersion",
    "NotMirrored",
    "Pin",
    "PruneRun",
    "Pruned",
    "Published",
    "ROOT_ENV",
    "ReadOnly",
    "Reindexed",
    "Repaired",
    "Reproduced",
    "RestoreReport",
    "Result",
    "Spec",
    "Status",
    "StatusReport",
    "StoresCheck",
    "StoresRun",
    "SyncResult",
    "Tiff",
    "formats",
    "Unavailable",
    "Urls",
    "UserError",
    "Verified",
    "VerifyReport",
    "Version",
    "VersionDiff",
    "VersionFile",
    "VersionKind",
    "Versions",
    "human_bytes",
    "moment",
    "open",
    "spec_of",
    "specs_of",
]
