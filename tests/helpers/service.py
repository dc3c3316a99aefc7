"""A running ``neuromirror serve`` and its runs, pages and metrics (tests/test_service.py and the service's tests)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

ENV = {**os.environ, "DANDI_NO_ET": "1", "DANDI_CACHE": "ignore", "PYTHONUNBUFFERED": "1"}


class Served:
    def __init__(self, proc: subprocess.Popen, root: Path, log: Path):
        self.proc = proc
        self.root = root
        self.log = log

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def state(self) -> dict:
        try:
            return json.loads((self.root / ".neuromirror" / "service.json").read_text())
        except (OSError, ValueError):
            return {}

    def url(self, path: str = "") -> str:
        st = wait_for(lambda: self.state().get("http"), 30, "the service's HTTP address", self)
        return st + path

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the service did not stop within %ss after SIGTERM:\n%s" % (timeout, self.stderr))


def neuromirror(root: Path, *args: str, **kw) -> subprocess.CompletedProcess:  # noqa: ANN003
    return subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(root), *args], env=ENV, capture_output=True, text=True, **kw
    )


def ok(root: Path, *args: str) -> str:
    """``neuromirror --root ROOT ARGS...`` in its own process, which must exit 0: its stdout."""
    out = neuromirror(root, *args)
    assert out.returncode == 0, f"neuromirror {' '.join(args)} -> {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout


@contextmanager
def serve(root: Path, config: Path, *args: str, env: Optional[dict[str, str]] = None) -> Iterator[Served]:
    """``neuromirror serve`` of ``root`` in its own process, with ``ENV`` (and ``env`` over it)."""
    log = root.parent / f"serve-{time.monotonic_ns()}.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "neuromirror",
                "--root",
                str(root),
                "serve",
                "--config",
                str(config),
                "--http",
                "127.0.0.1:0",
                *args,
            ],
            env={**ENV, **(env or {})},
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    served = Served(proc, root, log)
    try:
        # up: signal handlers installed, state written
        wait_for(
            lambda: served.state().get("pid") == proc.pid and not served.state().get("stopped"),
            60,
            "the service to start",
            served,
        )
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def serving_page(root: Path, config: Path, page: str) -> Iterator[Served]:
    """``serve`` until ``page`` answers 200; stopped cleanly (exit 0) after (the audit and backup pages' tests)."""
    with serve(root, config) as svc:
        wait_for(lambda: get(svc.url(page))[0] == 200, 60, f"the page {page}", svc)
        yield svc
        assert svc.stop() == 0


def wait_for(pred: Callable[[], object], timeout: float, what: str, served: Optional[Served] = None) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        if served is not None and served.proc.poll() is not None:
            raise AssertionError(f"the service exited ({served.proc.returncode}) waiting for {what}:\n{served.stderr}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f":\n{served.stderr}" if served else ""))


def run_part(root: Path, source: str, part: str) -> Optional[dict]:
    """The ``part`` (``keep``, ``drill``...) of the first of ``source``'s runs whose report has one, else None:
    what a test waits for (``wait_for(lambda: run_part(root, sid, "keep"), ...)``)."""
    for r in runs(root, source):
        report = json.loads(r["report"] or "{}")
        if part in report:
            return report[part]
    return None


def runs(root: Path, source: Optional[str] = None) -> list[dict]:
    path = root / ".neuromirror" / "index.sqlite"
    if not path.exists():
        return []
    con = sqlite3.connect(path, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        if "runs" not in {r[0] for r in con.execute("SELECT name FROM sqlite_master")}:
            return []
        sql, args = "SELECT * FROM runs ORDER BY id", []
        if source:
            sql, args = "SELECT * FROM runs WHERE source = ? ORDER BY id", [source]
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def ok_runs(root: Path, source: str, trigger: str = "service") -> list[dict]:
    return [r for r in runs(root, source) if r["outcome"] in ("ok", "unchanged") and r["trigger"] == trigger]


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def metric_samples(text: str) -> dict[tuple, float]:
    """/metrics parsed by prometheus_client's own parser: (name, *sorted label pairs) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, *sorted(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def assert_never_interleaved(rows: list[dict]) -> None:
    """Runs of one source: each starts after the previous one ended."""
    spans = sorted((r["started"], r["ended"] or "9999") for r in rows)
    for (s1, e1), (s2, _) in zip(spans, spans[1:]):
        assert s2 >= e1, f"runs overlap: one ran {s1}..{e1}, the next started {s2}"


def write_config(path: Path, api: str, specs: list[str], *, backoff: str = "{initial: 1s, max: 4s}") -> Path:
    lines = "\n".join(f'  - "{s}"' for s in specs)
    path.write_text(
        textwrap.dedent(f"""\
        jobs: 2
        defaults:
          schedule: {{interval: 1s}}
          options: {{dandi_api: "{api}"}}
          backoff: {backoff}
        sources:
        """)
        + lines
        + "\n"
    )
    return path


def missing_id(archive) -> str:  # noqa: ANN001
    known = set(archive.dandiset_ids())
    return next(f"{n:06d}" for n in range(999999, 0, -1) if f"{n:06d}" not in known)
