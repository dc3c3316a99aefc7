"""A sync that failed, or held items back: what is recorded, and what is cleaned up after it.

Why its own room: a failure must leave the mirror as a later sync can take up (the dataset's
leftovers recovered, half-written packs dropped, the versions committed before it registered in
the root) and say what happened (the run's row), while a mistyped id never mirrored here leaves
nothing behind.  :func:`neuromirror.engine.sync.sync_source` calls it with the lock still held.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from neuromirror.records import SyncReport
from neuromirror.util.text import one_line

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets
    from neuromirror.sources.base import Source


def after_failure(
    mirror: Datasets, source: Source, report: SyncReport, exc: BaseException, run_id: int, *, here: bool, trigger: str
) -> None:
    """Record a failed (or interrupted) run and leave the mirror whole: the dataset recovered when the
    sync ran ``here`` (a task recovers on its worker, which may still be writing), the versions committed
    before the failure registered in the root, the run's row ended; a CLI sync of an id the archive lacks
    and that was never mirrored here removes its source row."""
    sid, relpath, index = source.id, source.relpath, mirror.index
    # Ctrl-C (or a stopping service) is not the archive's or the mirror's failure
    report.outcome = "failed" if isinstance(exc, Exception) else "interrupted"
    report.error = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else one_line(exc)
    ds = mirror.dataset_path(relpath)
    try:
        if (ds / ".git").exists():
            if here:
                drop_temp_packs(ds)  # first: a full disk needs that space to recover
                mirror.recover(ds)
            # versions committed before the failure are whole: the root records them, never left modified
            mirror.register_quietly(relpath, f"[neuromirror] {sid}: registered (run {report.outcome})")
    finally:
        index.end_run(run_id, report.to_json())
        if trigger == "cli" and isinstance(exc, Exception) and _never_mirrored(mirror, sid, ds, exc):
            # a mistyped or withdrawn id never mirrored here: leave no source, run or dataset behind
            # (the service keeps it: a configured source that does not exist is a failing one
            # its operator must see)
            index.remove_source(sid)


def _never_mirrored(mirror: Datasets, sid: str, ds: Path, exc: Exception) -> bool:
    """Whether the failure is the archive lacking a source that has no dataset and no version here."""
    return archive_lacks(exc) and not (ds / ".git").exists() and not mirror.index.versions(sid)


def held_back(report: SyncReport) -> None:
    """A sync that held items at their last state (the archive never answered for them) failed,
    whatever it committed: it says which, and the next sync takes them up (:class:`Snapshot`)."""
    if not report.unreachable:
        return
    first = report.unreachable[0]
    more = f" and {len(report.unreachable) - 1} more" if len(report.unreachable) > 1 else ""
    report.outcome = "failed"
    report.error = f"{first.path!r}{more} could not be read from the archive: {first.reason}"


def drop_temp_packs(ds: Path) -> int:
    """Remove the half-written packs a failed writer left (``tmp_pack_*``: fast-import on a full
    disk, or killed).  Only under the source's lock, where no other writer of ``ds`` runs: git
    itself would keep them for two weeks, and a disk that just filled needs the space now."""
    pack_dir = ds / ".git" / "objects" / "pack"
    n = 0
    for tmp in pack_dir.glob("tmp_*") if pack_dir.is_dir() else []:
        try:
            tmp.unlink()
            n += 1
        except OSError:
            pass
    return n


#: what sources say when the archive has no such thing (their messages; dandi's NotFoundError is found by type)
_LACKS = re.compile(r"No such Dandiset|: no asset '|not found \(404")


def archive_lacks(exc: BaseException) -> bool:
    """Whether a failure is the archive saying the source does not exist (HTTP 404, dandi's NotFoundError...)."""
    seen: set[int] = set()
    e: Optional[BaseException] = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if type(e).__name__ == "NotFoundError" or getattr(getattr(e, "response", None), "status_code", None) == 404:
            return True
        e = e.__cause__ or e.__context__
    return bool(_LACKS.search(str(exc)))
