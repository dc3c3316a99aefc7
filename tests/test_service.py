"""The mirror service, run as users run it: ``python -m neuromirror serve`` against the DANDI stand-in.

Each test starts the service as a subprocess on 1-second intervals, lets it run a
few seconds, looks at the index, ``service.json``, the HTTP endpoints and the
datasets, and stops it with SIGTERM (every process is killed at the end whatever
happens).
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest

from conftest import git
from helpers.service import (
    ENV,
    Served,
    assert_never_interleaved,
    get,
    metric_samples,
    missing_id,
    neuromirror,
    ok_runs,
    runs,
    serve,
    wait_for,
    write_config,
)

ENV.pop("NEUROMIRROR_ROOT", None)


# -- helpers -------------------------------------------------------------------


LOG_LINE = re.compile(r"^(?:(\S+) )?(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def assert_log_lines_timed(log: str, start: datetime, end: datetime) -> None:
    """Every log line of the service starts with its ISO-8601 UTC time, within the service's life."""
    lines = [m for m in map(LOG_LINE.match, log.splitlines()) if m]
    assert any("sync started" in m.string for m in lines), log
    for m in lines:
        assert m.group(1) and m.group(1).endswith("Z"), m.string
        when = datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
        assert start - timedelta(seconds=1) <= when <= end + timedelta(seconds=1), m.string


def start_slow_sync(svc: Served, sid: str, archive, latency: float, change: Callable[[], None]) -> None:  # noqa: ANN001
    """Change the archive while holding the source (so no sync is under way), slow the archive down,
    let go, and wait until the service is inside a sync of the change."""
    from neuromirror.dataset.mirror import Datasets

    mirror = Datasets(svc.root)
    try:
        with mirror.lock(sid, wait=60):
            change()
            archive.latency = latency
            last = runs(svc.root, sid)[-1]["id"]
    finally:
        mirror.close()
    wait_for(
        lambda: any(r["id"] > last and r["outcome"] == "running" for r in runs(svc.root, sid)),
        30,
        "the service to be syncing the change",
        svc,
    )


@pytest.fixture
def archive(dandi_archive):  # noqa: ANN001, ANN201
    dandi_archive.latency = 0.0
    yield dandi_archive
    dandi_archive.latency = 0.0


def new_dandiset(archive, n: int = 2) -> str:  # noqa: ANN001
    ident = archive.create_dandiset(name="service test")
    for i in range(n):
        archive.put_asset(ident, f"sub-{i}/data.nwb", f"{ident} file {i}".encode() * 50)
    return ident


# -- the tests -----------------------------------------------------------------


def test_runs_sources_repeatedly_backs_off_a_failing_one_and_reports(archive, tmp_path: Path) -> None:
    a, b, bad = new_dandiset(archive), new_dandiset(archive), missing_id(archive)
    root = tmp_path / "mirror"
    cfg = write_config(tmp_path / "m.yaml", archive.api_url, [f"dandi:{a}", f"dandi:{b}", f"dandi:{bad}"])
    started = datetime.now(timezone.utc)
    with serve(root, cfg) as svc:
        # each good source runs several times; the failing one keeps failing, more and more slowly
        wait_for(
            lambda: all(len(ok_runs(root, f"dandi:{x}")) >= 4 for x in (a, b)) and len(runs(root, f"dandi:{bad}")) >= 3,
            60,
            "4 runs of each source, 3 failures",
            svc,
        )

        # only one service per root
        second = neuromirror(root, "serve", "--config", str(cfg), timeout=60)
        assert second.returncode == 2 and "another neuromirror serve is running" in second.stderr

        # the HTTP endpoints answer
        code, ctype, body = get(svc.url("status.json"))
        assert code == 200 and ctype.startswith("application/json")
        status = {r["source"]: r for r in json.loads(body)["sources"]}
        good = status[f"dandi:{a}"]
        assert good["status"] in ("ok", "running") and good["last_success"] and good["next_run"]
        assert good["versions"] >= 1 and good["files"] == 3 and good["bytes"] > 0  # 2 assets + dandiset.yaml
        failing = status[f"dandi:{bad}"]
        assert failing["consecutive_failures"] >= 3 and failing["last_success"] is None
        assert "No such Dandiset" in failing["last_error"] and failing["last_failure"]
        assert failing["status"] in ("backing off", "failing", "running")
        code, ctype, body = get(svc.url("metrics"))
        assert code == 200 and ctype.startswith("text/plain")
        assert "# TYPE neuromirror_runs_total counter" in body
        m = metric_samples(body)
        assert m["neuromirror_runs_total", ("outcome", "failed"), ("source", f"dandi:{bad}")] >= 3
        assert m["neuromirror_last_success_timestamp_seconds", ("source", f"dandi:{a}")] > 1.7e9
        assert m["neuromirror_files", ("source", f"dandi:{b}")] == 3
        assert m["neuromirror_versions", ("source", f"dandi:{b}")] >= 1 and m["neuromirror_up",] == 1
        # the sync-duration histogram: every finished run of a source counted, in the +Inf bucket at least
        good_runs = [r for r in runs(root, f"dandi:{a}") if r["ended"] and r["outcome"] != "abandoned"]
        count = m["neuromirror_sync_duration_seconds_count", ("source", f"dandi:{a}")]
        assert count >= 4 and count <= len(good_runs) + 2
        assert m["neuromirror_sync_duration_seconds_bucket", ("le", "+Inf"), ("source", f"dandi:{a}")] == count
        assert m["neuromirror_file_changes_total", ("change", "added"), ("source", f"dandi:{a}")] == 3
        code, ctype, body = get(svc.url())
        assert code == 200 and ctype.startswith("text/html") and f"dandi:{a}" in body and "No such Dandiset" in body
        assert get(svc.url("nope"))[0] == 404

        # `neuromirror status` reads the running service's next run times
        out = neuromirror(root, "status", "--json")
        assert out.returncode == 0, out.stderr
        rows = {r["source"]: r for r in json.loads(out.stdout)["sources"]}
        assert rows[f"dandi:{a}"]["next_run"] and json.loads(out.stdout)["service"]["pid"] == svc.proc.pid
        assert svc.stop() == 0
        assert_log_lines_timed(svc.stderr, started, datetime.now(timezone.utc))

    # the failing source was retried less and less often (1s, 2s, 4s, capped), the others carried on
    failed = runs(root, f"dandi:{bad}")
    assert all(r["outcome"] == "failed" and r["trigger"] == "service" for r in failed)
    starts = [datetime.fromisoformat(r["started"].replace("Z", "+00:00")).timestamp() for r in failed]
    gaps = [t2 - t1 for t1, t2 in zip(starts, starts[1:])]
    # the k-th retry waits at least min(1s * 2**(k-1), 4s) after the k-th failure (more when workers are busy)
    ends = [datetime.fromisoformat(r["ended"].replace("Z", "+00:00")).timestamp() for r in failed]
    waits = [s2 - e1 for e1, s2 in zip(ends, starts[1:])]
    assert all(w >= min(2**k, 4) - 0.6 for k, w in enumerate(waits)), waits
    assert len(gaps) >= 2
    last_failure = max(r["ended"] for r in failed)
    for x in (a, b):
        mine = runs(root, f"dandi:{x}")
        # a run still in flight when the service was stopped is recorded as interrupted, never half-done
        done = mine[:-1] if mine and mine[-1]["outcome"] == "interrupted" else mine
        assert all(r["ended"] and r["outcome"] in ("ok", "unchanged") for r in done), [
            (r["outcome"], r["error"]) for r in mine
        ]
        assert sum(r["outcome"] == "ok" for r in mine) == 1  # the first one; the archive did not change since
        assert_never_interleaved(mine)
        assert len(mine) > len(failed)
        assert any(r["started"] > failed[1]["ended"] for r in mine)
        ds = root / "dandi" / x
        assert git(ds, "status", "--porcelain") == ""
        assert "sub-0/data.nwb" in git(ds, "ls-tree", "-r", "--name-only", "HEAD")
    assert last_failure

    # after the service: status from the index alone
    out = neuromirror(root, "status")
    assert out.returncode == 0, out.stderr
    assert "service: not running" in out.stdout
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith(f"dandi:{bad}"))
    assert "failing (" in line
    out = neuromirror(root, "status", "--json")
    row = next(r for r in json.loads(out.stdout)["sources"] if r["source"] == f"dandi:{bad}")
    assert row["status"] == "failing" and bad in row["last_error"] and row["next_run"] is None
    out = neuromirror(root, "status", "--json", f"dandi:{a}")
    assert [r["source"] for r in json.loads(out.stdout)["sources"]] == [f"dandi:{a}"]


def test_hand_sync_waits_or_is_refused_never_interleaves(archive, tmp_path: Path) -> None:
    from neuromirror.dataset.mirror import Datasets

    a = new_dandiset(archive)
    sid = f"dandi:{a}"
    root = tmp_path / "mirror"
    cfg = write_config(tmp_path / "m.yaml", archive.api_url, [sid])
    with serve(root, cfg) as svc:
        wait_for(lambda: ok_runs(root, sid), 60, "a first service run", svc)

        # the source's lock held by someone else (here: this process): the service skips, records nothing
        mirror = Datasets(root)
        with mirror.lock(sid, wait=60):
            before = len(runs(root, sid))
            wait_for(
                lambda: svc.state().get("sources", {}).get(sid, {}).get("skipped", {}).get("busy", 0) >= 2,
                20,
                "the service to skip busy runs",
                svc,
            )
            assert len(runs(root, sid)) == before
        mirror.close()

        # the service in the middle of a (slow) sync: a hand sync --no-wait is refused ...
        start_slow_sync(svc, sid, archive, 3.0, lambda: archive.put_asset(a, "later.nwb", b"new content" * 100))
        refused = neuromirror(root, "sync", "--no-wait", "--dandi-api", archive.api_url, sid, timeout=60)
        assert refused.returncode == 1
        assert f"{sid} is being synced by another process (pid {svc.proc.pid})" in refused.stderr
        # ... and a plain one waits for it, then runs
        waiting = subprocess.Popen(
            [sys.executable, "-m", "neuromirror", "--root", str(root), "sync", "--dandi-api", archive.api_url, sid],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(2.0)
            assert waiting.poll() is None, waiting.communicate()
            archive.latency = 0.0
            out, err = waiting.communicate(timeout=60)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait()
        assert waiting.returncode == 0, err
        wait_for(lambda: len(ok_runs(root, sid)) >= 3, 30, "more service runs after the hand sync", svc)
        assert svc.stop() == 0

    rows = runs(root, sid)
    assert_never_interleaved(rows)
    assert [r["trigger"] for r in rows].count("cli") == 1
    assert all(r["outcome"] in ("ok", "unchanged") for r in rows), rows
    assert "later.nwb" in git(root / "dandi" / a, "ls-tree", "-r", "--name-only", "HEAD")


def test_sigterm_during_a_sync_leaves_the_dataset_clean_and_the_next_start_converges(archive, tmp_path: Path) -> None:
    a = new_dandiset(archive)
    sid = f"dandi:{a}"
    root = tmp_path / "mirror"
    ds = root / "dandi" / a
    cfg = write_config(tmp_path / "m.yaml", archive.api_url, [sid])

    def sigterm_mid_sync(svc: Served, grace: float, n: int) -> None:
        """Change the dandiset, slow the archive down, SIGTERM the service while it syncs the change."""
        wait_for(lambda: ok_runs(root, sid), 60, "a service run", svc)

        def change() -> None:
            for i in range(3):
                archive.put_asset(a, f"new-{n}-{i}.nwb", f"more {n} {i}".encode() * 100)

        head = git(ds, "rev-parse", "HEAD").strip()
        try:
            start_slow_sync(svc, sid, archive, 0.7, change)
            time.sleep(0.3)
            t0 = time.monotonic()
            code = svc.stop(timeout=30)
        finally:
            archive.latency = 0.0
        assert code == 0, svc.stderr
        assert time.monotonic() - t0 < grace + 8
        assert "service stopped (SIGTERM)" in svc.stderr
        last = runs(root, sid)[-1]
        assert last["trigger"] == "service" and last["outcome"] == "interrupted" and last["ended"], last
        # the dataset is at its last commit, nothing half-written, nothing left over
        assert git(ds, "status", "--porcelain", "--ignored") == ""
        assert not (ds / ".git" / "index.lock").exists()
        assert git(ds, "rev-parse", "HEAD").strip() == head
        assert_root_records(root, ds)
        state = json.loads((root / ".neuromirror" / "service.json").read_text())
        assert state["stopped"] and state["stopped_by"] == "SIGTERM"

    def converges(svc: Served, n: int, last_id: int) -> None:
        wait_for(
            lambda: any(r["outcome"] == "ok" and r["id"] > last_id for r in runs(root, sid)),
            60,
            "a converging run",
            svc,
        )
        tree = git(ds, "ls-tree", "-r", "--name-only", "HEAD")
        assert all(f"new-{n}-{i}.nwb" in tree for i in range(3))
        assert git(ds, "status", "--porcelain") == ""
        con = sqlite3.connect(root / ".neuromirror" / "index.sqlite")
        (commit,) = con.execute(
            'SELECT "commit" FROM versions WHERE source=? ORDER BY id DESC LIMIT 1', [sid]
        ).fetchone()
        con.close()
        assert commit == git(ds, "rev-parse", "HEAD").strip()

    # 1. the running sync stops at its next safe point (well within the grace period)
    with serve(root, cfg, "--grace", "10") as svc:
        sigterm_mid_sync(svc, 10, 1)
    assert "abandon" not in svc.stderr
    # 2. the next start converges; this time the grace period is too short: the sync is abandoned
    last_id = runs(root, sid)[-1]["id"]
    with serve(root, cfg, "--grace", "0.2") as svc:
        converges(svc, 1, last_id)
        sigterm_mid_sync(svc, 0.2, 2)
    assert "abandoned" in svc.stderr
    # 3. and the next start converges again
    last_id = runs(root, sid)[-1]["id"]
    with serve(root, cfg) as svc:
        converges(svc, 2, last_id)
        assert svc.stop() == 0


def assert_root_records(root: Path, ds: Path) -> None:
    """The root superdataset is clean and records the dataset's HEAD: no modified subdataset entry."""
    assert git(root, "status", "--porcelain") == ""
    recorded = git(root, "ls-tree", "HEAD", str(ds.relative_to(root))).split()[2]
    assert recorded == git(ds, "rev-parse", "HEAD").strip()


def test_sigterm_after_a_version_was_committed_leaves_the_root_committed(archive, tmp_path: Path) -> None:
    """A run interrupted after it committed a published version, while it lists the draft: the root
    superdataset records the new commit (it is whole) instead of showing a modified subdataset."""
    a = new_dandiset(archive)
    sid = f"dandi:{a}"
    root = tmp_path / "mirror"
    ds = root / "dandi" / a
    cfg = write_config(tmp_path / "m.yaml", archive.api_url, [sid])
    published: list[str] = []

    def change() -> None:
        archive.put_asset(a, "v1.nwb", b"published bytes" * 100)
        published.append(archive.publish(a))
        for i in range(3):  # then the draft moves on: the run goes on listing it after the version's commit
            archive.put_asset(a, f"later-{i}.nwb", f"draft {i}".encode() * 100)

    def version_recorded_mid_run() -> bool:
        con = sqlite3.connect(root / ".neuromirror" / "index.sqlite", timeout=30)
        try:
            row = con.execute("SELECT 1 FROM versions WHERE source = ? AND label = ?", [sid, published[0]]).fetchone()
        finally:
            con.close()
        return bool(row) and runs(root, sid)[-1]["outcome"] == "running"

    with serve(root, cfg, "--grace", "20") as svc:
        wait_for(lambda: ok_runs(root, sid), 60, "a first service run", svc)
        try:
            start_slow_sync(svc, sid, archive, 0.7, change)
            wait_for(version_recorded_mid_run, 60, "the published version committed while the run goes on", svc)
            assert svc.stop() == 0
        finally:
            archive.latency = 0.0
    last = runs(root, sid)[-1]
    assert last["outcome"] == "interrupted", last
    assert git(ds, "rev-parse", f"refs/tags/{published[0]}^{{commit}}").strip() == git(ds, "rev-parse", "HEAD").strip()
    assert git(ds, "status", "--porcelain") == ""
    assert_root_records(root, ds)
    assert "registered (run " in git(root, "log", "-1", "--format=%s")


def test_bad_configs_are_refused_before_anything_runs(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "defaults:\n  schedule: {interval: 1s}\nsources:\n  - spec: 'dandi:1234567'\n  - spec: 'dandi:000001'\n"
        "    schedule: {cron: '0 25 * * *'}\n"
    )
    out = neuromirror(root, "serve", "--config", str(bad), timeout=60)
    assert out.returncode == 2
    assert f"{bad}:4: sources[0].spec: 'dandi:1234567': a dandiset id has 6 digits" in out.stderr
    assert f"{bad}:6: sources[1].schedule.cron: invalid cron expression" in out.stderr
    assert not root.exists()
    out = neuromirror(root, "check-config", str(bad), timeout=60)
    assert out.returncode == 1 and f"{bad}:4: " in out.stderr and f"{bad}:6: " in out.stderr
    out = neuromirror(root, "serve", "--config", str(tmp_path / "missing.yaml"), timeout=60)
    assert out.returncode == 2 and f"{tmp_path / 'missing.yaml'}: no such file" in out.stderr
    good = tmp_path / "good.yaml"
    good.write_text("defaults: {schedule: 1h}\nsources: [dandi:000001]\n")
    out = neuromirror(root, "serve", "--config", str(good), "--http", "example.org", timeout=60)
    assert out.returncode == 2 and "expected HOST:PORT" in out.stderr


def test_sync_with_config(archive, tmp_path: Path) -> None:
    a = new_dandiset(archive, 1)
    root = tmp_path / "mirror"
    cfg = write_config(tmp_path / "m.yaml", archive.api_url, [f"dandi:{a}"])
    out = neuromirror(root, "sync", "--config", str(cfg), "--json", timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["source"] == f"dandi:{a}"
    assert [r["trigger"] for r in runs(root, f"dandi:{a}")] == ["cli"]


# -- pieces without a running service ------------------------------------------


def test_parse_http() -> None:
    from neuromirror.service import is_loopback, parse_http

    assert parse_http("127.0.0.1:8642") == ("127.0.0.1", 8642)
    assert parse_http(":8642") == ("127.0.0.1", 8642)
    assert parse_http("8642") == ("127.0.0.1", 8642)
    assert parse_http("[::1]:0") == ("::1", 0)
    assert parse_http("localhost:80") == ("localhost", 80)
    for bad in ("example.org", "1.2.3.4:http", "1.2.3.4:70000", "::1:80"):
        with pytest.raises(ValueError):
            parse_http(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")


def test_metrics_text_format() -> None:
    from neuromirror.service import render_html, render_metrics

    row = {
        "source": 'boss:a"b\\c',
        "runs": {"ok": 2, "failed": 1, "running": 1},
        "last_success": "2026-01-01T00:00:00Z",
        "last_failure": None,
        "consecutive_failures": 0,
        "running_since": None,
        "next_run": None,
        "versions": 3,
        "files": 10,
        "bytes": 2**40,
        "skipped": {"busy": 1},
        "status": "ok",
        "schedule": "every 1h",
        "last_error": "<b>x</b>",
    }
    text = render_metrics({"root": "/r", "service": None, "sources": [row]})
    m = metric_samples(text)
    src = ("source", 'boss:a"b\\c')
    assert m["neuromirror_runs_total", ("outcome", "ok"), src] == 2
    assert 'outcome="running"' not in text  # in-flight runs are not counted until they end
    assert m["neuromirror_last_success_timestamp_seconds", src] == 1767225600
    assert m["neuromirror_bytes", src] == 2**40
    assert "neuromirror_last_failure_timestamp_seconds{" not in text and m["neuromirror_up",] == 0
    families = [ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE")]
    assert len(families) == len(set(families))
    page = render_html({"root": "/r", "service": None, "sources": [row]})
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
