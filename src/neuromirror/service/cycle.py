"""A cycle of a ``sources:`` entry, as its scheduled job runs it: expand the entry, plan the quiet hour, sync
each source (unless it backs off or another process holds it), then the steps after a sync -- keep, publish,
drill, count what is at risk, maintain, make references -- each failing on its own, never the sync.

:class:`Cycles` is the part of :class:`~neuromirror.service.scheduler.Service` that runs them (the scheduler
keeps the jobs, the state and the stop); the keep, its rolling store check and the backup numbers are
:class:`neuromirror.api.Mirror` calls (:mod:`.keeping`).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from neuromirror.config.model import MirrorConfig, SourceConfig
from neuromirror.records import SyncReport
from neuromirror.service import backoff, quiet, recovery
from neuromirror.service.keeping import drill_after_sync, keep_after_sync
from neuromirror.service.maintaining import maintain_after_sync, readers_after_sync
from neuromirror.service.publishing import publish_after_sync
from neuromirror.service.risk import risk_after_sync
from neuromirror.service.state import SourceRuntime, now_utc
from neuromirror.service.stopping import Interrupted, StoppableSource, progress_until_stopped
from neuromirror.sources.base import Source
from neuromirror.util.dates import format_duration, iso_z

if TYPE_CHECKING:
    from neuromirror.api import Mirror

log = logging.getLogger("neuromirror.service")


def after_sync(mirror: Mirror, entry: SourceConfig, source: Source, report: SyncReport, rt: SourceRuntime) -> None:
    """The steps after a sync that ran to its end, in order; each records its own outcome in the run."""
    # keep before publish: what the lab publishes names every copy this cycle's keep made (issue 57)
    recorded = keep_after_sync(mirror, entry, source, report, rt)
    publish_after_sync(mirror, entry, source, report, rt, recorded=recorded)
    drill_after_sync(mirror, entry, source, report)
    risk_after_sync(mirror, source.id, report.outcome, entry.keep.expire_after if entry.keep else None)
    maintain_after_sync(mirror, entry, source)
    readers_after_sync(mirror, entry, source.id, report.versions)


class Cycles:
    """An entry's cycle and a source's sync, run in the scheduler's worker threads."""

    config: MirrorConfig
    entries: dict[str, SourceConfig]
    entry_sources: dict[str, list[str]]
    entry_cycles: dict[str, dict]
    state: dict[str, SourceRuntime]
    stopping: threading.Event
    lock_wait: float
    runner: Any
    _lock: threading.RLock
    _running: dict[str, threading.Thread]
    _wake: threading.Event
    _scheduler: Any

    def mirror(self) -> Mirror:
        raise NotImplementedError

    def _runtime(self, sid: str, entry: str) -> SourceRuntime:
        with self._lock:
            rt = self.state.get(sid)
            if rt is None:
                rt = self.state[sid] = SourceRuntime(sid, entry, dask=self.config.dask)
            return rt

    def _run_entry(self, spec: str) -> None:
        if self.stopping.is_set():
            return
        entry = self.entries[spec]
        mirror = self.mirror()
        try:
            started = now_utc()
            try:  # a glob or a BOSS collection asks the archive; some sources check their target here
                items = list(entry.listed())
            except Exception as exc:
                self._record_expand_failure(mirror, entry, exc)
                return
            ids = [i.source.id for i in items]
            with self._lock:
                self.entry_sources[spec] = ids
                rt = self.state.get(spec)
                if spec not in ids and rt is not None and rt.consecutive_failures:
                    backoff.reset(rt)
            # the quiet hour: only what the listing says changed, plus a rolling re-check (quiet.py)
            cycle = quiet.plan(mirror, spec, items, quiet.Policy.from_options(entry.sync_options()), started)
            if entry.is_glob:
                log.info("%s", cycle.describe())
            complete = True
            for item in cycle.sync:
                if self.stopping.is_set():
                    complete = False
                    break
                report = self._sync_one(mirror, entry, item.source)
                if report is not None:
                    quiet.synced(mirror, item, report, cycle)
            if entry.is_glob:
                quiet.finish(mirror, cycle, complete=complete)
                with self._lock:
                    self.entry_cycles[spec] = cycle.summary()
        except Exception as exc:  # a bug or an unexpected error: keep the service alive, say it
            log.exception("%s: unexpected error: %s", spec, exc)
        finally:
            self._tidy_index(mirror)
            mirror.close()
            self._wake.set()

    def _tidy_index(self, mirror: Mirror) -> None:
        """Run history past the retention policies removed, the index compacted: at most hourly."""

        try:
            done = mirror.records.tidy_if_due(self.config.retention_of())
        except Exception as exc:  # the index is busy or damaged: the syncs go on, the next cycle retries
            log.warning("index not tidied: %s", exc)
            return
        if done is not None and (done.runs_removed or done.pages_freed):
            log.info("index tidied: %s", done.to_json())

    def run_cycle(self, spec: str) -> None:
        """One cycle of the entry ``spec`` now, in this thread (what its scheduled job does)."""
        self._run_entry(spec)

    def _sync_one(self, mirror: Mirror, entry: SourceConfig, source: Source) -> Optional[SyncReport]:
        """Sync ``source`` (unless held off or busy); its report when it ran to its end, else None."""
        from neuromirror.errors import LockBusy
        from neuromirror.util.text import one_line

        sid = source.id
        rt = self._runtime(sid, entry.spec)
        now = now_utc()
        with self._lock:
            if backoff.holds_off(rt, entry, now):
                rt.skipped["backoff"] = rt.skipped.get("backoff", 0) + 1
                return None
            self._running[sid] = threading.current_thread()

        def locked() -> None:
            # running from the moment the lock is held: a source found busy never shows as running
            with self._lock:
                rt.running_since, rt.stage, rt.done, rt.total = now_utc(), "starting", None, None
            self._wake.set()
            log.info("%s: sync started", sid)

        try:
            report = mirror.sync_source(
                StoppableSource(source, self.stopping),
                engine=entry.engine,
                progress=progress_until_stopped(rt, self.stopping),
                trigger="service",
                wait=self.lock_wait,
                runner=self.runner,
                on_locked=locked,
                min_free=entry.options.get("min_free"),
            )
        except LockBusy as exc:
            with self._lock:
                rt.skipped["busy"] = rt.skipped.get("busy", 0) + 1
            log.info("%s: skipped: %s", sid, exc)
        except Interrupted:
            recovery.mark_interrupted(mirror, sid)
            log.warning("%s: sync interrupted by the service stopping; the dataset is back at its last commit", sid)
        except Exception as exc:
            self._failed(entry, rt, one_line(exc))
        else:
            with self._lock:
                backoff.reset(rt)
            log.info("%s: %s (+%d -%d ~%d)", sid, report.outcome, report.added, report.removed, report.changed)
            after_sync(mirror, entry, source, report, rt)
            return report
        finally:
            with self._lock:
                rt.running_since, rt.stage, rt.done, rt.total = None, None, None, None
                self._running.pop(sid, None)
            self._wake.set()
        return None

    def _failed(self, entry: SourceConfig, rt: SourceRuntime, error: str) -> None:
        with self._lock:
            until, delay = backoff.record_failure(rt, entry, error)
            k = rt.consecutive_failures
        log.warning(
            "%s: sync failed (%d in a row; next attempt not before %s, in %s): %s",
            rt.source,
            k,
            iso_z(until),
            format_duration(delay),
            error,
        )
        if rt.source == entry.spec:  # a single source, or a glob that cannot be listed
            self._postpone(entry.spec, until)

    def _postpone(self, spec: str, until: datetime) -> None:
        """Move the job's next run to its first fire time at or after ``until`` (unless stopping)."""
        if self._scheduler is not None and not self.stopping.is_set():
            backoff.postpone(self._scheduler, spec, until)

    def _record_expand_failure(self, mirror: Mirror, entry: SourceConfig, exc: Exception) -> None:
        """An entry that cannot be expanded (a glob not listed...) is recorded as a failed run of its spec."""
        from neuromirror.errors import LockBusy
        from neuromirror.util.text import one_line

        error = (f"listing {entry.spec}: " if entry.is_glob else "") + one_line(exc)
        try:
            with mirror.writer_lock(entry.spec, wait=self.lock_wait):  # never write a run next to a running one
                mirror.records.record_failed_run(entry.spec, error)
        except LockBusy:
            pass
        self._failed(entry, self._runtime(entry.spec, entry.spec), error)
