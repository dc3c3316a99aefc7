"""The service's maintenance step: after a sync, the source's git repositories packed when worth it.

What :mod:`neuromirror.maintain` does by hand (``neuromirror maintain``), for the source just synced:
its dataset, its subdatasets, their copies in the entry's ``publish: {to: ...}`` target (and where
the dataset says it was published), then the root superdataset.  It runs in the sync's worker
thread once the sync (and its publish and keep steps) let go of the source's lock, so it never
packs a repository git is writing; the root's lock is taken without waiting (another worker
registering its dataset wins, and the next sync packs the root).  Measuring a packed repository
costs two directory reads, so a cycle with nothing to pack costs almost nothing.

When something was packed, skipped or failed, the outcome goes into the run's report
(``report["maintain"]``: ``packed``, ``skipped``, ``errors``); a failure is logged, never a failed sync.

:func:`readers_after_sync`, the other upkeep of what a sync recorded: the index-time readers registered with
:mod:`neuromirror.readers` whose option the entry sets (``references: nwb``: its new NWB keys' LINDI references).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from neuromirror.config.model import SourceConfig
from neuromirror.sources.base import Source

if TYPE_CHECKING:
    from neuromirror.api import Mirror

log = logging.getLogger("neuromirror.service")


def maintain_after_sync(mirror: Mirror, entry: SourceConfig, source: Source) -> None:
    from neuromirror.util.text import one_line

    to = [str(entry.publish["to"])] if entry.publish and entry.publish.get("to") else []
    try:
        report = mirror.maintain([source.id], to=to, with_root=True)
    except Exception as exc:  # a bug or an unreadable repository: logged, the service goes on
        log.warning("%s: maintenance failed: %s", source.id, one_line(exc))
        return
    for line in report.lines():
        if "already packed" not in line:
            log.info("%s: maintain: %s", source.id, line)
    if report.packed or report.errors or report.skipped:
        outcome = {
            "packed": [r["label"] for r in report.repositories if r["action"] == "packed"],
            "skipped": report.skipped,
            "errors": report.errors,
        }
        mirror.records.record_in_run(source.id, outcome, field="maintain")


def readers_after_sync(mirror: Mirror, entry: SourceConfig, source: str, versions: list[dict]) -> None:
    """The index-time readers the entry's options ask for (:mod:`neuromirror.readers`: ``references: nwb``, the
    new NWB keys' LINDI references), on the new versions; logged, never a failed sync (they wait for the next)."""
    from neuromirror.readers import index_time_readers
    from neuromirror.util.text import one_line

    for reader in index_time_readers().values() if versions else ():
        if not reader.asks(entry.options) or reader.after_sync is None:
            continue
        if reader.why_not():
            log.warning("%s: %s: %s", source, reader.name, reader.why_not())
            continue
        try:
            got, failed = reader.after_sync(mirror.root, mirror.index_path, [(source, v["commit"]) for v in versions])
        except Exception as exc:  # noqa: BLE001 - a reader's failure never fails the sync that ran
            log.warning("%s: %s not made: %s", source, reader.name, one_line(exc))
            continue
        log.info("%s: %s: %d made, %d failed", source, reader.name, len(got.get("made", [])), len(failed))
        for line in failed:
            log.warning("%s: %s: %s", source, reader.name, line)
