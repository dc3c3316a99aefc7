"""The scheduler of the service: the :class:`Service` (APScheduler jobs per source, backoff, stop).

How the jobs run and what is guaranteed (never twice at once, backoff, SIGTERM)
is described in the package's docstring (``neuromirror.service``) and in
docs/service.md.  The state it keeps is in ``state``; its HTTP side in ``web``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from neuromirror.config import MirrorConfig, SourceConfig, format_duration
from neuromirror.service import recovery
from neuromirror.service.metrics import DURATION_BUCKETS, Durations, add_changes, registry_for
from neuromirror.service.publishing import publish_after_sync
from neuromirror.service.state import STATE_FILE, SourceRuntime, iso, now_utc, status_report
from neuromirror.util.dates import parse_iso as parse_time

log = logging.getLogger("neuromirror.service")

SERVICE_LOCK = "_service"
DEFAULT_GRACE = 30.0


class Interrupted(BaseException):
    """Raised inside a sync (from its progress callback) when the service stops.

    A BaseException, like KeyboardInterrupt, so that sources wrapping their
    errors (``except Exception``) let it through unchanged.
    """


class StoppableSource:
    """A source whose snapshots stop at a safe point once ``stopping`` is set.

    Safe points: before each snapshot and between its entries — all before the
    snapshot's commit is written, so an interrupted sync leaves the dataset at
    its last commit (``sync_source`` records the run and recovers the work tree).
    """

    def __init__(self, source: Any, stopping: threading.Event):
        self._source = source
        self._stopping = stopping

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def _check(self) -> None:
        if self._stopping.is_set():
            raise Interrupted("the service is stopping")

    def _entries(self, entries: Iterable[Any]) -> Iterator[Any]:
        for e in entries:
            self._check()
            yield e

    def snapshots(self, state: Any, progress: Any = None) -> Iterator[Any]:
        self._check()
        for snap in self._source.snapshots(state, progress):
            self._check()
            snap.entries = self._entries(snap.entries)
            yield snap


class Service:
    def __init__(
        self,
        config: MirrorConfig,
        root: Path,
        index_path: Optional[str] = None,
        *,
        jobs: Optional[int] = None,
        http: Optional[str] = None,
        grace: float = DEFAULT_GRACE,
        lock_wait: float = 0.0,
        browse_url: Optional[str] = None,
    ):
        self.config = config
        self.root = Path(root).absolute()
        self.index_path = index_path
        self.jobs = jobs or config.jobs
        self.http_spec = http
        self.grace = grace
        self.lock_wait = lock_wait
        self.browse_url_option = browse_url
        self.entries: dict[str, SourceConfig] = {e.spec: e for e in config.enabled_sources}
        self.state: dict[str, SourceRuntime] = {}
        self.entry_sources: dict[str, list[str]] = {
            spec: ([] if e.is_glob else [spec]) for spec, e in self.entries.items()
        }
        self.events: dict[str, dict[str, int]] = {spec: {"coalesced": 0, "missed": 0} for spec in self.entries}
        self.started = now_utc()
        self.stopping = threading.Event()
        self.stopped_by: Optional[str] = None
        self.abandoned: list[str] = []
        self.http_url: Optional[str] = None
        self._lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._running: dict[str, threading.Thread] = {}
        self._wake = threading.Event()
        self._force = False
        self._scheduler: Any = None
        self._httpd: Any = None
        #: /metrics: a private registry whose collector reads the index at each scrape
        self.metrics_registry = registry_for(self.metrics_data)
        self._service_lock: Any = None
        self.runner: Any = None  # a Dask cluster (executor: {dask: ADDRESS}); None: this host

    # -- paths ----------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.root / ".neuromirror" / STATE_FILE

    def mirror(self) -> Any:
        from neuromirror.dataset.mirror import Mirror

        return Mirror(self.root, self.index_path)

    # -- lifecycle --------------------------------------------------------
    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; return the exit status (0)."""
        self.install_signal_handlers()
        self.start()
        try:
            while not self.stopping.is_set():
                self._wake.wait(1.0)
                self._wake.clear()
                self.write_state()
        finally:
            self.stop()
        return 0

    def start(self) -> None:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        from neuromirror.dataset.mirror import LockBusy
        from neuromirror.errors import UserError

        if not self.entries:
            raise UserError("no enabled sources in " + ", ".join(self.config.files or ["the configuration"]))
        from neuromirror.engine.dask_executor import runner_for

        self.runner = runner_for(self.config.dask)  # unreachable: one line, before anything runs
        probe = self.mirror()
        lock = probe.lock(SERVICE_LOCK, wait=0)
        try:
            lock.__enter__()
        except LockBusy:
            holder = (probe.state_dir / "locks" / f"{SERVICE_LOCK}.lock").read_text(errors="replace").strip()
            probe.close()
            raise UserError(f"another neuromirror serve is running on {self.root} ({holder or 'unknown'})") from None
        self._service_lock = lock
        try:
            recovery.recover_abandoned_runs(probe)
            first_runs = {spec: self._first_run(probe, entry) for spec, entry in self.entries.items()}
        finally:
            probe.close()

        logging.getLogger("apscheduler").addFilter(_quiet_max_instances)
        logging.getLogger("apscheduler.scheduler").addFilter(_quiet_max_instances)
        sched = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=self.jobs)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=timezone.utc,
        )
        sched.add_listener(self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        for spec, entry in self.entries.items():
            first = first_runs[spec]
            sched.add_job(
                self._run_entry,
                trigger=entry.schedule.trigger(start=first),
                args=[spec],
                id=spec,
                name=spec,
                next_run_time=first,
            )
            log.info("%s: %s, first run %s", spec, entry.schedule.describe(), iso(first))
        self._scheduler = sched
        if self.http_spec:
            self._start_http()
        sched.start()
        self.write_state()
        print(
            f"neuromirror: serving {len(self.entries)} source entr{'y' if len(self.entries) == 1 else 'ies'} "
            f"from {', '.join(self.config.files)} into {self.root} with {self.jobs} worker(s)"
            + (f"; status on {self.http_url}" if self.http_url else ""),
            file=sys.stderr,
            flush=True,
        )

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if self.stopping.is_set():
                self._force = True
                log.warning("%s again: not waiting for running syncs", name)
            else:
                self.stopped_by = name
                log.warning("%s: stopping; running syncs stop at their next safe point", name)
                self.stopping.set()
            self._wake.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def request_stop(self) -> None:
        self.stopping.set()
        self._wake.set()

    def stop(self) -> None:
        """Stop scheduling, let running syncs wind down within ``grace``, record what is abandoned."""
        self.stopping.set()
        if self._scheduler is not None:
            try:
                self._scheduler.shutdown(wait=False)
            except Exception:  # not running
                pass
        deadline = time.monotonic() + self.grace
        while not self._force and time.monotonic() < deadline:
            with self._lock:
                if not self._running:
                    break
            time.sleep(0.05)
        with self._lock:
            self.abandoned = sorted(self._running)
        if self.abandoned:
            log.warning(
                "abandoning running syncs of %s (their datasets are recovered by the next sync)",
                ", ".join(self.abandoned),
            )
            mirror = self.mirror()
            try:
                recovery.mark_abandoned(mirror, self.abandoned)
                recovery.register_abandoned(mirror, self.abandoned)
            finally:
                mirror.close()
        self.write_state(final=True)
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._service_lock is not None:
            self._service_lock.__exit__(None, None, None)
            self._service_lock = None
        if self.runner is not None:
            self.runner.close()
        print(
            f"neuromirror: service stopped ({self.stopped_by or 'requested'})"
            + (f"; abandoned {', '.join(self.abandoned)}" if self.abandoned else ""),
            file=sys.stderr,
            flush=True,
        )

    # -- start-up -----------------------------------------------------------
    def _first_run(self, mirror: Any, entry: SourceConfig) -> datetime:
        """Now if a scheduled run was missed while no service ran (coalesced into one), else the next fire time.

        Also restores the failure count (and so the backoff) of each source from the runs table.
        """
        now = now_utc()
        args = [entry.spec, entry.spec + "/*"]  # the spec itself, what it matches, a collection's experiments
        last = parse_time(recovery.last_success_start(mirror.index, args))
        first = now if last is None else max(now, entry.schedule.next_after(last))
        for sid, failures, last_failure, error in recovery.failure_streaks(mirror.index, args):
            rt = self._runtime(sid, entry.spec)
            rt.consecutive_failures = failures
            rt.last_error = error
            ended = parse_time(last_failure) or now
            rt.backoff_until = ended + timedelta(seconds=entry.backoff.delay(failures))
            if sid == entry.spec and rt.backoff_until > first:
                first = rt.backoff_until
        return first

    # -- the job ------------------------------------------------------------
    def _runtime(self, sid: str, entry: str) -> SourceRuntime:
        with self._lock:
            rt = self.state.get(sid)
            if rt is None:
                rt = self.state[sid] = SourceRuntime(sid, entry)
            return rt

    def _run_entry(self, spec: str) -> None:
        if self.stopping.is_set():
            return
        entry = self.entries[spec]
        mirror = self.mirror()
        try:
            try:  # a glob or a BOSS collection asks the archive; some sources check their target here
                sources = list(entry.expand())
            except Exception as exc:
                self._record_expand_failure(mirror, entry, exc)
                return
            ids = [s.id for s in sources]
            with self._lock:
                self.entry_sources[spec] = ids
                rt = self.state.get(spec)
                if spec not in ids and rt is not None and rt.consecutive_failures:
                    rt.consecutive_failures, rt.backoff_until, rt.last_error = 0, None, None
            for source in sources:
                if self.stopping.is_set():
                    break
                self._sync_one(mirror, entry, source)
        except Exception as exc:  # a bug or an unexpected error: keep the service alive, say it
            log.exception("%s: unexpected error: %s", spec, exc)
        finally:
            mirror.close()
            self._wake.set()

    def _sync_one(self, mirror: Any, entry: SourceConfig, source: Any) -> None:
        from neuromirror.dataset.mirror import LockBusy
        from neuromirror.engine.sync import one_line, sync_source

        sid = source.id
        rt = self._runtime(sid, entry.spec)
        now = now_utc()
        tolerance = timedelta(seconds=(entry.schedule.jitter or 0) + 0.5)
        with self._lock:
            if rt.backoff_until is not None and now + tolerance < rt.backoff_until:
                rt.skipped["backoff"] = rt.skipped.get("backoff", 0) + 1
                return
            rt.running_since, rt.stage, rt.done, rt.total = now, "starting", None, None
            self._running[sid] = threading.current_thread()
        self._wake.set()
        log.info("%s: sync started", sid)
        try:
            report = sync_source(
                mirror,
                StoppableSource(source, self.stopping),
                engine=entry.engine,
                progress=self._progress(rt),
                trigger="service",
                lock_wait=self.lock_wait,
                runner=self.runner,
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
                rt.consecutive_failures, rt.backoff_until, rt.last_error = 0, None, None
            log.info("%s: %s (+%d -%d ~%d)", sid, report.outcome, report.added, report.removed, report.changed)
            publish_after_sync(mirror, entry, source, report, rt)
        finally:
            with self._lock:
                rt.running_since, rt.stage, rt.done, rt.total = None, None, None, None
                self._running.pop(sid, None)
            self._wake.set()

    def _progress(self, rt: SourceRuntime) -> Any:
        def progress(stage: str, done: int, total: Optional[int]) -> None:
            rt.stage, rt.done, rt.total = stage, done, total
            if self.stopping.is_set():
                raise Interrupted("the service is stopping")

        return progress

    def _failed(self, entry: SourceConfig, rt: SourceRuntime, error: str) -> None:
        with self._lock:
            rt.consecutive_failures += 1
            rt.last_error = error
            delay = entry.backoff.delay(rt.consecutive_failures)
            rt.backoff_until = now_utc() + timedelta(seconds=delay)
            k, until = rt.consecutive_failures, rt.backoff_until
        log.warning(
            "%s: sync failed (%d in a row; next attempt not before %s, in %s): %s",
            rt.source,
            k,
            iso(until),
            format_duration(delay),
            error,
        )
        if rt.source == entry.spec:  # a single source, or a glob that cannot be listed
            self._postpone(entry.spec, until)

    def _postpone(self, spec: str, until: datetime) -> None:
        """Move the job's next run to its first fire time at or after ``until``."""
        sched = self._scheduler
        if sched is None or self.stopping.is_set():
            return
        try:
            job = sched.get_job(spec)
            if job is None:
                return
            nxt = job.trigger.get_next_fire_time(None, until)
            if nxt is not None and (job.next_run_time is None or nxt > job.next_run_time):
                sched.modify_job(spec, next_run_time=nxt)
        except Exception as exc:  # the scheduler shut down meanwhile
            log.debug("could not postpone %s: %s", spec, exc)

    def _record_expand_failure(self, mirror: Any, entry: SourceConfig, exc: Exception) -> None:
        """An entry that cannot be expanded (a glob not listed...) is recorded as a failed run of its spec."""
        from neuromirror.dataset.mirror import LockBusy
        from neuromirror.engine.sync import one_line

        error = (f"listing {entry.spec}: " if entry.is_glob else "") + one_line(exc)
        try:
            with mirror.lock(entry.spec, wait=self.lock_wait):  # never write a run next to a running one
                run_id = mirror.index.start_run(entry.spec, "service")
                mirror.index.end_run(run_id, {"source": entry.spec, "outcome": "failed", "error": error})
        except LockBusy:
            pass
        self._failed(entry, self._runtime(entry.spec, entry.spec), error)

    def _on_event(self, event: Any) -> None:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES

        counts = self.events.setdefault(event.job_id, {"coalesced": 0, "missed": 0})
        with self._lock:
            if event.code == EVENT_JOB_MAX_INSTANCES:
                counts["coalesced"] += 1
            else:
                counts["missed"] += 1

    # -- state --------------------------------------------------------------
    def next_runs(self) -> dict[str, Optional[datetime]]:
        out: dict[str, Optional[datetime]] = {}
        sched = self._scheduler
        if sched is None or self.stopping.is_set():
            return {spec: None for spec in self.entries}
        for spec in self.entries:
            try:
                job = sched.get_job(spec)
            except Exception:
                job = None
            out[spec] = job.next_run_time if job is not None else None
        return out

    def state_json(self, *, final: bool = False) -> dict:
        nexts = self.next_runs()
        with self._lock:
            entries = {
                spec: {
                    "schedule": e.schedule.describe(),
                    "next_run": iso(nexts.get(spec)),
                    "sources": list(self.entry_sources.get(spec, [])),
                    "where": e.where,
                    "publish": (e.publish or {}).get("to"),
                    **self.events.get(spec, {}),
                }
                for spec, e in self.entries.items()
            }
            sources: dict[str, dict] = {}
            for spec, sids in self.entry_sources.items():
                for sid in sids:
                    sources.setdefault(sid, {"entry": spec})
            for sid, rt in self.state.items():
                sources[sid] = rt.to_json()
            for d in sources.values():
                nxt = nexts.get(d["entry"])
                until = parse_time(d.get("backoff_until"))
                if nxt is not None and until is not None and until > nxt:
                    nxt = until
                d["next_run"] = iso(nxt)
                d["schedule"] = entries[d["entry"]]["schedule"] if d["entry"] in entries else None
        return {
            "pid": os.getpid(),
            "root": str(self.root),
            "started": iso(self.started),
            "updated": iso(now_utc()),
            "stopped": iso(now_utc()) if final else None,
            "stopped_by": self.stopped_by if final else None,
            "http": self.http_url,
            "config": list(self.config.files),
            "jobs": self.jobs,
            "entries": entries,
            "sources": sources,
            **({"cluster": self.runner.status()} if self.runner is not None else {}),
        }

    def write_state(self, *, final: bool = False) -> None:
        try:
            data = json.dumps(self.state_json(final=final), indent=2)
            with self._state_lock:
                self.state_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.state_path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(data)
                os.replace(tmp, self.state_path)
        except Exception as exc:
            log.warning("could not write %s: %s", self.state_path, exc)

    # -- HTTP ---------------------------------------------------------------
    def _start_http(self) -> None:
        from neuromirror.errors import UserError
        from neuromirror.service.web import start_http

        try:
            self._httpd, self.http_url = start_http(self, self.http_spec or "")
        except ValueError as exc:
            raise UserError(str(exc)) from None

    def browse_url(self) -> Optional[str]:
        """Where the catalog (``neuromirror browse``) of this index is: ``--browse-url``, else a running one."""
        if self.browse_url_option:
            return self.browse_url_option
        from neuromirror.index.catalog import running_catalog

        found = running_catalog(self.root)
        return found["url"] if found else None

    def metrics_data(self) -> tuple[dict, Durations]:
        """What /metrics shows: the status report, with each source's file changes, and the run durations."""
        from neuromirror.service.history import sync_durations

        report = self.report()
        mirror = self.mirror()
        try:
            add_changes(report, mirror.index)
            durations = sync_durations(mirror.index, DURATION_BUCKETS)
        finally:
            mirror.close()
        return report, durations

    def report(self) -> dict:
        return status_report(self.root, self.index_path, state=self.state_json(), config=self.config)


class _QuietMaxInstances(logging.Filter):
    """A run due while the previous one still runs is coalesced; that is the design, not a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


_quiet_max_instances = _QuietMaxInstances()
