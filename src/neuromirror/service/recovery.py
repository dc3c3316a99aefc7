"""What the service leaves in, and restores from, the index and the root across stops and restarts.

* At start: runs left ``running`` by a process that died become ``abandoned``;
  each source's failure streak (and so its backoff) and last success are read
  back from the ``runs`` table, so a restart neither resets a failing source nor
  forgets a missed run.
* At stop: a sync stopped at a safe point is recorded ``interrupted``; one still
  running after the grace period is abandoned — recorded ``interrupted`` too, and
  its dataset's last (whole) commit recorded in the root superdataset, which is
  never left with a modified subdataset entry.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from neuromirror.api import Mirror

log = logging.getLogger("neuromirror.service")


def recover_abandoned_runs(mirror: Mirror) -> None:
    """Runs left 'running' by a process that died: marked 'abandoned' if nobody holds their source."""
    from neuromirror.errors import LockBusy

    records = mirror.records
    for run_id, source in records.running_runs():
        try:
            with mirror.writer_lock(source, wait=0):
                records.abandon_run(run_id, "the process running this sync ended before it finished")
        except LockBusy:
            continue


def mark_interrupted(mirror: Mirror, sid: str) -> None:
    """The service's last run of ``sid``, stopped at a safe point: 'interrupted', not 'failed'."""
    mirror.records.interrupt_service_run(sid)


def mark_abandoned(mirror: Mirror, sids: Iterable[str]) -> None:
    """Runs still going when the grace period ended: 'interrupted', with why."""
    try:
        records = mirror.records
        for sid in sids:
            records.abandon_service_run(sid, "abandoned when the service stopped; the next sync recovers the dataset")
    except Exception as exc:
        log.warning("could not record abandoned runs: %s", exc)


def register_abandoned(mirror: Mirror, sids: Iterable[str]) -> None:
    """The root records each abandoned dataset's last (whole) commit: no modified subdataset left behind.

    A sync abandoned after it committed a version but before it updated the root
    would otherwise leave the root modified until the next sync.  (A commit the
    abandoned thread completes in the moment before the process exits is
    registered by the next sync.)
    """
    try:
        for sid in sids:
            relpath = mirror.dataset_of(sid)
            if relpath and (mirror.root / relpath / ".git").exists():
                mirror.register_quietly(relpath, f"[neuromirror] {sid}: registered (sync abandoned)", wait=2)
    except Exception as exc:
        log.warning("could not register abandoned datasets in the root: %s", exc)
