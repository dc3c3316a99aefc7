"""The mirror service: scheduled syncs of the sources in mirror definitions, status over HTTP.

``neuromirror serve --config mirrors/x.yaml`` runs an APScheduler
``BackgroundScheduler`` in the foreground: one job per ``sources:`` entry (its
cron or interval trigger), run by a thread pool of ``jobs`` workers, with
``coalesce=True`` (runs missed while the pool was busy or the machine asleep
become one), ``max_instances=1`` and no misfire limit.  A job expands its SPEC
(a glob asks the archive) and syncs each source through
:func:`neuromirror.sync.sync_source` with ``trigger="service"``, in a
:class:`~neuromirror.mirror.Mirror` of its own (its own SQLite connection).

Guarantees:

* A source is never synced twice at once: ``sync_source`` takes the source's
  flock (``ROOT/.neuromirror/locks/``) without waiting; a one-off
  ``neuromirror sync`` holding it makes the service skip that run (counted as
  ``busy``), and a one-off sync started while the service holds it waits (or,
  with ``--no-wait``, is refused).  One service per root (``_service`` lock).
* A failing source backs off: after k failures in a row its runs are skipped
  until ``min(initial * factor**(k-1), max)`` after the last failure (the job
  is moved to the first fire time after that).  Other sources carry on.  The
  failure count is rebuilt from the ``runs`` table on start.
* SIGTERM / SIGINT: no new runs start; running syncs stop at their next safe
  point (they raise :class:`Interrupted` from the progress callback: the sync
  records the run, puts the dataset back to its last commit) within
  ``grace`` seconds; whatever is still running then is abandoned (the datasets
  are crash-safe: the next sync recovers them) and recorded as ``interrupted``.
  Exit status 0.  A second signal stops waiting.
* State for ``neuromirror status`` (next run times, backoff, what is running)
  is written to ``ROOT/.neuromirror/service.json``; ``--http`` serves the same
  as ``/status.json``, an HTML page (``/``) and Prometheus ``/metrics``.
"""

from __future__ import annotations

import html
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from .config import MirrorConfig, SourceConfig, format_duration
from .dates import parse_iso as parse_time

log = logging.getLogger("neuromirror.service")

STATE_FILE = "service.json"
SERVICE_LOCK = "_service"
SUCCESS = ("ok", "unchanged")
DEFAULT_GRACE = 30.0


class Interrupted(BaseException):
    """Raised inside a sync (from its progress callback) when the service stops.

    A BaseException, like KeyboardInterrupt, so that sources wrapping their
    errors (``except Exception``) let it through unchanged.
    """


# --------------------------------------------------------------------------
# time helpers


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: Optional[datetime]) -> Optional[str]:
    if dt is None:
        return None
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(text: Optional[str]) -> Optional[float]:
    dt = parse_time(text)
    return dt.timestamp() if dt else None


def parse_http(text: str) -> tuple[str, int]:
    """``127.0.0.1:8642``, ``[::1]:8642``, ``localhost:8642``, ``:8642`` (loopback), ``8642``; port 0 = any free one."""
    t = text.strip()
    if t.startswith("["):
        host, _, port = t[1:].partition("]:")
    elif t.count(":") == 1:
        host, port = t.split(":")
    elif t.isdigit():
        host, port = "", t
    else:
        raise ValueError(f"--http {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8642")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--http {text!r}: the port must be a number from 0 to 65535")
    return host or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------
# per-source state kept by the service


@dataclass
class SourceRuntime:
    source: str
    entry: str  # the spec of the sources: entry it belongs to
    consecutive_failures: int = 0
    backoff_until: Optional[datetime] = None
    last_error: Optional[str] = None
    running_since: Optional[datetime] = None
    stage: Optional[str] = None
    done: Optional[int] = None
    total: Optional[int] = None
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (busy, backoff)
    publish_error: Optional[str] = None

    def to_json(self) -> dict:
        return {
            "entry": self.entry,
            "consecutive_failures": self.consecutive_failures,
            "backoff_until": iso(self.backoff_until),
            "last_error": self.last_error,
            "running_since": iso(self.running_since),
            "progress": ({"stage": self.stage, "done": self.done, "total": self.total} if self.stage else None),
            "skipped": dict(self.skipped),
            "publish_error": self.publish_error,
        }


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


# --------------------------------------------------------------------------
# the service


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
    ):
        self.config = config
        self.root = Path(root).absolute()
        self.index_path = index_path
        self.jobs = jobs or config.jobs
        self.http_spec = http
        self.grace = grace
        self.lock_wait = lock_wait
        self.entries: dict[str, SourceConfig] = {e.spec: e for e in config.enabled_sources}
        self.state: dict[str, SourceRuntime] = {}
        self.entry_sources: dict[str, list[str]] = {spec: ([] if e.is_glob else [spec]) for spec, e in self.entries.items()}
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
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._service_lock: Any = None
        self._publish_missing_logged = False
        self.runner: Any = None  # a Dask cluster (executor: {dask: ADDRESS}); None: this host

    # -- paths ----------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.root / ".neuromirror" / STATE_FILE

    def mirror(self) -> Any:
        from .mirror import Mirror

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

        from .cli import UserError
        from .mirror import LockBusy

        if not self.entries:
            raise UserError("no enabled sources in " + ", ".join(self.config.files or ["the configuration"]))
        from .executor import runner_for

        self.runner = runner_for(self.config.dask)
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
            self._recover_abandoned_runs(probe)
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
            sched.add_job(self._run_entry, trigger=entry.schedule.trigger(start=first), args=[spec], id=spec,
                          name=spec, next_run_time=first)
            log.info("%s: %s, first run %s", spec, entry.schedule.describe(), iso(first))
        self._scheduler = sched
        if self.http_spec:
            self._start_http()
        sched.start()
        self.write_state()
        print(f"neuromirror: serving {len(self.entries)} source entr{'y' if len(self.entries) == 1 else 'ies'} "
              f"from {', '.join(self.config.files)} into {self.root} with {self.jobs} worker(s)"
              + (f"; status on {self.http_url}" if self.http_url else ""), file=sys.stderr, flush=True)

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
            log.warning("abandoning running syncs of %s (their datasets are recovered by the next sync)",
                        ", ".join(self.abandoned))
            self._mark_abandoned(self.abandoned)
        self.write_state(final=True)
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._service_lock is not None:
            self._service_lock.__exit__(None, None, None)
            self._service_lock = None
        if self.runner is not None:
            self.runner.close()
        print(f"neuromirror: service stopped ({self.stopped_by or 'requested'})"
              + (f"; abandoned {', '.join(self.abandoned)}" if self.abandoned else ""), file=sys.stderr, flush=True)

    # -- start-up -----------------------------------------------------------
    def _recover_abandoned_runs(self, mirror: Any) -> None:
        """Runs left 'running' by a process that died: marked 'abandoned' if nobody holds their source."""
        from .index import utcnow
        from .mirror import LockBusy

        rows = list(mirror.index.db.query("SELECT id, source FROM runs WHERE outcome = 'running'"))
        for row in rows:
            try:
                with mirror.lock(row["source"], wait=0):
                    mirror.index.db.conn.execute(
                        "UPDATE runs SET outcome='abandoned', ended=?, error=? WHERE id=? AND outcome='running'",
                        [utcnow(), "the process running this sync ended before it finished", row["id"]],
                    )
            except LockBusy:
                continue

    def _first_run(self, mirror: Any, entry: SourceConfig) -> datetime:
        """Now if a scheduled run was missed while no service ran (coalesced into one), else the next fire time.

        Also restores the failure count (and so the backoff) of each source from the runs table.
        """
        now = now_utc()
        args = [entry.spec, entry.spec + "/*"]  # the spec itself, what it matches, a collection's experiments
        row = mirror.index.db.conn.execute(
            "SELECT MAX(started) FROM runs WHERE (source GLOB ? OR source GLOB ?) AND outcome IN ('ok', 'unchanged')",
            args,
        ).fetchone()
        last = parse_time(row[0]) if row else None
        first = now if last is None else max(now, entry.schedule.next_after(last))
        for sid, failures, last_failure, error in _failure_streaks(mirror.index, args):
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
        from .mirror import LockBusy
        from .sync import one_line, sync_source

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
            report = sync_source(mirror, StoppableSource(source, self.stopping), engine=entry.engine, progress=self._progress(rt),
                                 trigger="service", lock_wait=self.lock_wait, runner=self.runner)
        except LockBusy as exc:
            with self._lock:
                rt.skipped["busy"] = rt.skipped.get("busy", 0) + 1
            log.info("%s: skipped: %s", sid, exc)
        except Interrupted:
            self._mark_interrupted_run(mirror, sid)
            log.warning("%s: sync interrupted by the service stopping; the dataset is back at its last commit", sid)
        except Exception as exc:
            self._failed(entry, rt, one_line(exc))
        else:
            with self._lock:
                rt.consecutive_failures, rt.backoff_until, rt.last_error = 0, None, None
            log.info("%s: %s (+%d -%d ~%d)", sid, report.outcome, report.added, report.removed, report.changed)
            self._publish(mirror, entry, source, report)
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
        log.warning("%s: sync failed (%d in a row; next attempt not before %s, in %s): %s",
                    rt.source, k, iso(until), format_duration(delay), error)
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
        from .mirror import LockBusy
        from .sync import one_line

        error = (f"listing {entry.spec}: " if entry.is_glob else "") + one_line(exc)
        try:
            with mirror.lock(entry.spec, wait=self.lock_wait):  # never write a run next to a running one
                run_id = mirror.index.start_run(entry.spec, "service")
                mirror.index.end_run(run_id, {"source": entry.spec, "outcome": "failed", "error": error})
        except LockBusy:
            pass
        self._failed(entry, self._runtime(entry.spec, entry.spec), error)

    def _mark_interrupted_run(self, mirror: Any, sid: str) -> None:
        mirror.index.db.conn.execute(
            "UPDATE runs SET outcome='interrupted' WHERE id = (SELECT MAX(id) FROM runs WHERE source=? AND"
            " trigger='service') AND outcome IN ('failed', 'running')",
            [sid],
        )

    def _mark_abandoned(self, sids: Iterable[str]) -> None:
        from .index import utcnow

        mirror = self.mirror()
        try:
            for sid in sids:
                mirror.index.db.conn.execute(
                    "UPDATE runs SET outcome='interrupted', ended=?, error=? WHERE id = (SELECT MAX(id) FROM runs"
                    " WHERE source=? AND trigger='service') AND outcome='running'",
                    [utcnow(), "abandoned when the service stopped; the next sync recovers the dataset", sid],
                )
        except Exception as exc:
            log.warning("could not record abandoned runs: %s", exc)
        finally:
            mirror.close()

    def _publish(self, mirror: Any, entry: SourceConfig, source: Any, report: Any) -> None:
        """Push the dataset to the entry's ``publish: {to: ...}`` target (``neuromirror.publish``).

        After a sync that changed the dataset, and after any successful sync while the
        target has not received this dataset yet (a target added to the file later).
        Keys of ``publish:`` besides ``to``: ``name`` (the remote's name, default
        ``published``) and ``force``.
        """
        if not entry.publish:
            return
        from .sync import one_line

        rt = self._runtime(source.id, entry.spec)
        try:
            from . import publish as pub
        except ImportError:
            if not self._publish_missing_logged:
                log.warning("publish targets are configured but this neuromirror has no publish step; not publishing")
                self._publish_missing_logged = True
            return
        to = str(entry.publish["to"])
        name = str(entry.publish.get("name") or "published")
        try:
            if report.outcome != "ok":
                ds = mirror.root / source.relpath
                if pub.published_url(ds, name) == pub.target_url(to, source.id, source.relpath):
                    return
            result = pub.publish_source(mirror, source.id, to, name=name, force=bool(entry.publish.get("force")))
            rt.publish_error = None
            log.info("%s: published: %s", source.id, result.line())
        except Exception as exc:
            rt.publish_error = one_line(exc)
            log.warning("%s: publishing to %s failed: %s", source.id, to, rt.publish_error)

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
            for sid, d in sources.items():
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
            **({"cluster": _cluster(self.runner)} if self.runner is not None else {}),
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
        from .cli import UserError

        try:
            host, port = parse_http(self.http_spec or "")
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if not is_loopback(host):
            log.warning("--http %s is not a loopback address: the status pages have no authentication", host)
        try:
            cls = _HTTPServer6 if ":" in host else _HTTPServer
            httpd = cls((host, port), _Handler)
        except OSError as exc:
            raise UserError(f"--http {self.http_spec}: cannot listen: {exc.strerror or exc}") from None
        httpd.service = self
        self._httpd = httpd
        h, p = httpd.server_address[:2]
        self.http_url = f"http://{'[' + h + ']' if ':' in h else h}:{p}/"
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                         name="neuromirror-http").start()

    def report(self) -> dict:
        return status_report(self.root, self.index_path, state=self.state_json(), config=self.config)


def _cluster(runner: Any) -> Optional[dict]:
    from .executor import cluster_of

    return cluster_of(runner)


def _failure_streaks(index: Any, args: list[str]) -> list[tuple[str, int, str, str]]:
    """(source, failures since the last success, end of the last failure, its error) for failing sources."""
    return [
        (r[0], r[1], r[2], r[3])
        for r in index.db.conn.execute(
            """
            SELECT f.source, COUNT(*), MAX(f.ended),
                   (SELECT error FROM runs e WHERE e.source = f.source AND e.outcome = 'failed' ORDER BY id DESC LIMIT 1)
            FROM runs f
            WHERE (f.source GLOB ? OR f.source GLOB ?) AND f.outcome = 'failed'
              AND f.id > COALESCE((SELECT MAX(id) FROM runs s WHERE s.source = f.source
                                   AND s.outcome IN ('ok', 'unchanged')), 0)
            GROUP BY f.source
            """,
            args,
        )
    ]


class _QuietMaxInstances(logging.Filter):
    """A run due while the previous one still runs is coalesced; that is the design, not a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


_quiet_max_instances = _QuietMaxInstances()


# --------------------------------------------------------------------------
# status: shared by `neuromirror status`, /status.json, / and /metrics


def read_service_state(root: Path) -> Optional[dict]:
    """The running service's state file, or None if no service runs on this root."""
    path = Path(root) / ".neuromirror" / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("stopped"):
        return None
    pid = data.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return data


def _index_facts(index: Any) -> dict[str, dict]:
    """Per source: run counts by outcome, last run/success/failure, versions, files and bytes of the head."""
    facts: dict[str, dict] = {}
    conn = index.db.conn

    def f(sid: str) -> dict:
        return facts.setdefault(sid, {"runs": {}})

    for sid, outcome, n in conn.execute("SELECT source, outcome, COUNT(*) FROM runs GROUP BY source, outcome"):
        f(sid)["runs"][outcome] = n
    for sid, started, outcome, trigger in conn.execute(
        "SELECT r.source, r.started, r.outcome, r.trigger FROM runs r"
        " JOIN (SELECT source, MAX(id) id FROM runs GROUP BY source) m ON r.id = m.id"
    ):
        f(sid).update(last_run=started, last_outcome=outcome, last_trigger=trigger)
    for sid, ended in conn.execute(
        "SELECT source, MAX(ended) FROM runs WHERE outcome IN ('ok', 'unchanged') GROUP BY source"
    ):
        f(sid)["last_success"] = ended
    for sid, ended, error in conn.execute(
        "SELECT r.source, r.ended, r.error FROM runs r"
        " JOIN (SELECT source, MAX(id) id FROM runs WHERE outcome = 'failed' GROUP BY source) m ON r.id = m.id"
    ):
        f(sid).update(last_failure=ended, last_error=error)
    for sid, n in conn.execute(
        "SELECT f.source, COUNT(*) FROM runs f WHERE f.outcome = 'failed' AND f.id > COALESCE((SELECT MAX(id)"
        " FROM runs s WHERE s.source = f.source AND s.outcome IN ('ok', 'unchanged')), 0) GROUP BY f.source"
    ):
        f(sid)["consecutive_failures"] = n
    for sid, started in conn.execute("SELECT source, MIN(started) FROM runs WHERE outcome = 'running' GROUP BY source"):
        f(sid)["running_since"] = started
    for (sid,) in conn.execute("SELECT id FROM sources"):
        f(sid)
    for sid, n in conn.execute("SELECT source, COUNT(*) FROM versions GROUP BY source"):
        f(sid)["versions"] = n
    # the dataset's HEAD: the last draft/snapshot row, else the last published one
    for sid, label, files, nbytes, kind in conn.execute(
        "SELECT v.source, v.label, v.files, v.bytes, v.kind FROM versions v JOIN (SELECT source,"
        " COALESCE(MAX(CASE WHEN kind != 'published' THEN id END), MAX(id)) id FROM versions GROUP BY source) m"
        " ON v.id = m.id"
    ):
        f(sid).update(latest=label, files=files, bytes=nbytes)
    return facts


def status_report(root: Path, index_path: Optional[str] = None, *, state: Optional[dict] = None,
                  config: Optional[MirrorConfig] = None) -> dict:
    """One row per source (index, service state and configuration merged) plus the service's own facts."""
    import fnmatch

    from .mirror import Mirror

    root = Path(root).absolute()
    if state is None:
        state = read_service_state(root)
    mirror = Mirror(root, index_path)
    try:
        facts = _index_facts(mirror.index) if mirror.index_path.exists() else {}
    finally:
        mirror.close()
    sstate = (state or {}).get("sources", {})
    entries = (state or {}).get("entries", {})
    schedules: dict[str, str] = {spec: e.get("schedule") for spec, e in entries.items()}
    if config is not None:
        for e in config.sources:
            schedules.setdefault(e.spec, e.schedule.describe() if e.enabled else "disabled")
    # every source known anywhere: index, service, configuration (globs only once they matched something)
    ids = set(facts) | set(sstate) | {s for s in schedules if not any(c in s for c in "*?[")}
    globs = [s for s in schedules if any(c in s for c in "*?[")]
    for g in globs:
        if g in facts or g in sstate:
            ids.add(g)
    rows = []
    for sid in sorted(ids):
        fa = facts.get(sid, {"runs": {}})
        st = sstate.get(sid, {})
        entry = st.get("entry") or (sid if sid in schedules else next(
            (g for g in schedules if fnmatch.fnmatchcase(sid, g) or fnmatch.fnmatchcase(sid, g + "/*")), None))
        running_since = st.get("running_since") if state else fa.get("running_since")
        consecutive = st.get("consecutive_failures", fa.get("consecutive_failures", 0)) if state else fa.get("consecutive_failures", 0)
        backoff_until = st.get("backoff_until") if state else None
        if running_since:
            status = "running"
        elif backoff_until and (parse_time(backoff_until) or now_utc()) > now_utc():
            status = "backing off"
        elif consecutive:
            status = "failing"
        elif fa.get("last_success"):
            status = "ok"
        else:
            status = "never synced"
        rows.append({
            "source": sid,
            "status": status,
            "schedule": schedules.get(entry) if entry else None,
            "entry": entry,
            "last_run": fa.get("last_run"),
            "last_outcome": fa.get("last_outcome"),
            "last_success": fa.get("last_success"),
            "last_failure": fa.get("last_failure"),
            "last_error": fa.get("last_error"),
            "consecutive_failures": consecutive,
            "backoff_until": backoff_until,
            "next_run": st.get("next_run") if state else None,
            "running_since": running_since,
            "progress": st.get("progress") if state else None,
            "skipped": st.get("skipped", {}) if state else {},
            "versions": fa.get("versions", 0),
            "latest": fa.get("latest"),
            "files": fa.get("files"),
            "bytes": fa.get("bytes"),
            "runs": fa.get("runs", {}),
        })
    service = None
    if state:
        service = {k: state.get(k) for k in ("pid", "started", "updated", "http", "config", "jobs", "cluster")}
        service["entries"] = entries
    return {"root": str(root), "service": service, "sources": rows}


# -- renderers ---------------------------------------------------------------


def _label(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_metrics(report: dict) -> str:
    """Prometheus text exposition format 0.0.4."""
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[dict, Optional[float]]]) -> None:
        lines = []
        for labels, value in samples:
            if value is None:
                continue
            lab = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{lab}}} {_num(value)}" if lab else f"{name} {_num(value)}")
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(lines)

    rows = report["sources"]
    family("neuromirror_runs_total", "counter", "Finished sync runs recorded in the index, by outcome.",
           (({"source": r["source"], "outcome": o}, n) for r in rows for o, n in sorted(r["runs"].items())
            if o != "running"))
    family("neuromirror_last_success_timestamp_seconds", "gauge", "End of the last successful sync (Unix time).",
           (({"source": r["source"]}, epoch(r["last_success"])) for r in rows))
    family("neuromirror_last_failure_timestamp_seconds", "gauge", "End of the last failed sync (Unix time).",
           (({"source": r["source"]}, epoch(r["last_failure"])) for r in rows))
    family("neuromirror_consecutive_failures", "gauge", "Failed syncs since the last success.",
           (({"source": r["source"]}, r["consecutive_failures"] or 0) for r in rows))
    family("neuromirror_running", "gauge", "1 while a sync of the source runs.",
           (({"source": r["source"]}, 1 if r["running_since"] else 0) for r in rows))
    family("neuromirror_next_run_timestamp_seconds", "gauge", "When the service runs the source next (Unix time).",
           (({"source": r["source"]}, epoch(r["next_run"])) for r in rows))
    family("neuromirror_versions", "gauge", "Versions (recorded states) of the source in the index.",
           (({"source": r["source"]}, r["versions"]) for r in rows))
    family("neuromirror_files", "gauge", "Files in the source's latest recorded state.",
           (({"source": r["source"]}, r["files"]) for r in rows))
    family("neuromirror_bytes", "gauge", "Bytes in the source's latest recorded state.",
           (({"source": r["source"]}, r["bytes"]) for r in rows))
    family("neuromirror_skipped_total", "counter",
           "Scheduled syncs skipped by this service process (busy: another process held the source; "
           "backoff: the source is failing).",
           (({"source": r["source"], "reason": k}, n) for r in rows for k, n in sorted((r.get("skipped") or {}).items())))
    svc = report.get("service")
    if svc:
        family("neuromirror_coalesced_total", "counter",
               "Scheduled runs merged into a running or queued one (misfires coalesced), per sources: entry.",
               (({"entry": spec}, e.get("coalesced", 0)) for spec, e in sorted((svc.get("entries") or {}).items())))
        family("neuromirror_service_start_time_seconds", "gauge", "When the service started (Unix time).",
               [({}, epoch(svc.get("started")))])
    family("neuromirror_up", "gauge", "1 if the service answering is running.", [({}, 1 if svc else 0)])
    return "\n".join(out) + "\n"


def _num(v: float) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return str(int(v))
    return repr(float(v))


def human_bytes(n: Optional[int]) -> str:
    from .commands.common import human_bytes as hb

    return hb(n)


def short_time(text: Optional[str]) -> str:
    dt = parse_time(text)
    return dt.strftime("%Y-%m-%d %H:%M:%SZ") if dt else "-"


def render_html(report: dict) -> str:
    e = html.escape
    svc = report.get("service")
    head = (f"service pid {svc['pid']}, started {short_time(svc['started'])}, {svc['jobs']} worker(s), "
            f"config {', '.join(svc.get('config') or [])}" if svc else "no service running")
    cols = ["source", "status", "schedule", "last success", "last failure", "reason", "next run", "versions",
            "files", "bytes"]
    rows_html = []
    for r in report["sources"]:
        cells = [r["source"], r["status"] + (f" ({r['consecutive_failures']} failures)" if r["consecutive_failures"] else ""),
                 r["schedule"] or "-", short_time(r["last_success"]), short_time(r["last_failure"]),
                 r["last_error"] or "", short_time(r["next_run"]), str(r["versions"]),
                 "-" if r["files"] is None else str(r["files"]), human_bytes(r["bytes"])]
        cls = {"ok": "ok", "running": "run", "failing": "bad", "backing off": "bad"}.get(r["status"], "")
        rows_html.append(f'<tr class="{cls}">' + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<title>neuromirror status</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}}
tr.bad td{{background:#fde8e8}}tr.run td{{background:#e8f0fd}}td:nth-child(6){{max-width:30em}}</style>
</head><body>
<h1>neuromirror</h1>
<p>root {e(report['root'])}; {e(head)}. Also: <a href="status.json">status.json</a>, <a href="metrics">metrics</a>.</p>
<table><tr>{''.join(f'<th>{e(c)}</th>' for c in cols)}</tr>
{chr(10).join(rows_html)}
</table></body></html>
"""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    service: Service


class _HTTPServer6(_HTTPServer):
    import socket as _socket

    address_family = _socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "neuromirror"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("http: " + format, *args)

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        try:
            if path in ("/", "/index.html"):
                body, ctype = render_html(self.server.service.report()).encode(), "text/html; charset=utf-8"
            elif path in ("/status.json", "/status"):
                body, ctype = json.dumps(self.server.service.report(), indent=2).encode(), "application/json"
            elif path == "/metrics":
                body = render_metrics(self.server.service.report()).encode()
                ctype = "text/plain; version=0.0.4; charset=utf-8"
            elif path == "/healthz":
                body, ctype = b"ok\n", "text/plain; charset=utf-8"
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8", head)
                return
        except Exception as exc:  # never take the service down for a status page
            log.warning("http %s: %s", path, exc)
            self._send(500, f"error: {exc}\n".encode(), "text/plain; charset=utf-8", head)
            return
        self._send(200, body, ctype, head)

    def _send(self, code: int, body: bytes, ctype: str, head: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)
