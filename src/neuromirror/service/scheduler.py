"""The scheduler of the service: the :class:`Service` (APScheduler jobs per source, backoff, stop).

How the jobs run and what is guaranteed (never twice at once, backoff, SIGTERM)
is described in the package's docstring (``neuromirror.service``) and in
docs/service.md.  The state it keeps is in ``state``, and what it writes of it in
``snapshot``; when a source may run (backoff, the first run after a start) in
``backoff``; how a running sync is stopped in ``stopping``; its HTTP side in ``web``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from neuromirror.config.model import MirrorConfig, SourceConfig
from neuromirror.read.landing import routes_line
from neuromirror.service import backoff, recovery, snapshot
from neuromirror.service.cycle import Cycles
from neuromirror.service.metrics import (
    DURATION_BUCKETS,
    Durations,
    add_audit,
    add_changes,
    add_coverage,
    add_keeps,
    registry_for,
)
from neuromirror.service.risk import add_risks
from neuromirror.service.state import STATE_FILE, SourceRuntime, now_utc, status_report
from neuromirror.util.dates import iso_z

if TYPE_CHECKING:
    from neuromirror.api import Mirror

log = logging.getLogger("neuromirror.service")

SERVICE_LOCK = "_service"
DEFAULT_GRACE = 30.0


class Service(Cycles):
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
        include_embargoed: bool = False,
    ):
        self.config = config
        #: the view of the pins on --http (/dav/, /dandisets/) serves embargoed dandisets too
        self.include_embargoed = include_embargoed
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
        #: per glob entry: what its last cycle listed and synced (quiet.Plan.summary)
        self.entry_cycles: dict[str, dict] = {}
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

    def mirror(self) -> Mirror:
        """The API on the mirror, one per caller (a worker thread, a page): its own connection to the index."""
        from neuromirror.api import Mirror

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

        from neuromirror.errors import LockBusy, UserError

        if not self.entries:
            raise UserError("no enabled sources in " + ", ".join(self.config.files or ["the configuration"]))
        from neuromirror.engine.dask_executor import runner_for

        self.runner = runner_for(self.config.dask)  # unreachable: one line, before anything runs
        self.config.apply_network()  # contact: in every request's User-Agent; network: the ceilings
        probe = self.mirror()
        lock = probe.writer_lock(SERVICE_LOCK, wait=0)
        try:
            lock.__enter__()
        except LockBusy:
            holder = probe.lock_holder(SERVICE_LOCK)  # the other service's lock file (removed when it stops)
            probe.close()
            raise UserError(f"another neuromirror serve is running on {self.root} ({holder or 'unknown'})") from None
        self._service_lock = lock
        try:
            recovery.recover_abandoned_runs(probe)
            first_runs = {spec: backoff.first_run(probe, entry, self._runtime) for spec, entry in self.entries.items()}
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
            log.info("%s: %s, first run %s", spec, entry.schedule.describe(), iso_z(first))
        self._scheduler = sched
        if self.http_spec:
            self._start_http()
        sched.start()
        self.write_state()
        print(
            f"neuromirror: serving {len(self.entries)} source entr{'y' if len(self.entries) == 1 else 'ies'} "
            f"from {', '.join(self.config.files)} into {self.root} with {self.jobs} worker(s)"
            + (f"; {routes_line(self.http_url, scheduled=True)}" if self.http_url else ""),
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
        sched = self._scheduler
        if sched is None or self.stopping.is_set():
            return {spec: None for spec in self.entries}
        return snapshot.next_runs(sched, self.entries)

    def state_json(self, *, final: bool = False) -> dict:
        """The snapshot written to ``service.json`` (:mod:`~neuromirror.service.snapshot`)."""
        nexts = self.next_runs()
        with self._lock:
            entries = snapshot.entries_json(self.entries, nexts, self.entry_sources, self.events)
            for spec, cycle in self.entry_cycles.items():
                entries[spec]["last_cycle"] = cycle
            sources = snapshot.sources_json(self.entry_sources, self.state, nexts, entries)
        return {
            "pid": os.getpid(),
            "root": str(self.root),
            "started": iso_z(self.started),
            "updated": iso_z(now_utc()),
            "stopped": iso_z(now_utc()) if final else None,
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
        from neuromirror.service.web import start_http

        # an address that cannot be parsed or listened on: HttpAddressError, a UserError about ``http``
        self._httpd, self.http_url = start_http(self, self.http_spec or "")

    def browse_url(self) -> Optional[str]:
        """Where the catalog (``neuromirror browse``) of this index is: ``--browse-url``, else a running one."""
        if self.browse_url_option:
            return self.browse_url_option
        from neuromirror.api.serving import catalog_url

        return catalog_url(self.root)

    def metrics_data(self) -> tuple[dict, Durations]:
        """What /metrics shows: the status report, with each source's file changes, and the run durations."""

        report = self.report()
        mirror = self.mirror()
        try:
            records = mirror.records
            add_changes(report, records)
            add_keeps(report, records)
            add_risks(report, records)
            add_audit(report, mirror, self.config)
            add_coverage(report, mirror, self.config)
            durations = records.sync_durations(DURATION_BUCKETS)
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
