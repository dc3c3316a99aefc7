"""Mirroring on a Dask cluster: a real ``dask scheduler`` and two ``dask worker`` processes on loopback.

The workers import this worktree's code (PYTHONPATH) and share the mirror root with
the submitting process, as hosts share it over NFS.  Every run is compared with a
single-host run of the same archive state: same commits (hence trees), tags and
index rows.
"""

from __future__ import annotations

import json
import operator
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Iterator, Optional

import pytest

from conftest import CLI, git
from helpers.dandi_full import T0, index_dump, zarr_files

pytest.importorskip("distributed")

from helpers.dask import ENV, Cluster, two_workers, wait_for  # noqa: E402
from neuromirror.network.ports import free_port  # noqa: E402


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with two_workers(tmp_path_factory.mktemp("dask")) as c:
        yield c


@pytest.fixture(scope="module")
def archive(s3) -> Iterator[DandiStandIn]:  # noqa: F821, ANN001
    """Six dandisets, two of them with several Zarr assets; some published."""
    from neuromirror.standins.dandi.server import DandiStandIn

    with DandiStandIn(s3, bucket=f"nm-dask-{uuid.uuid4().hex[:8]}") as a:
        for i in range(6):
            ident = a.create_dandiset(name=f"dask {i}", created=T0)
            a.put_asset(ident, f"sub-{i}/sub-{i}_ecephys.nwb", f"data {i}".encode() * 40, when=T0)
            if i in (1, 4):
                for z in range(3):
                    a.add_zarr_asset(ident, f"sub-{i}/img{z}.zarr", zarr_files(f"{i}-{z}", chunks=1), when=T0)
            if i % 2 == 0:
                a.publish(ident, when=T0 + timedelta(hours=1))
                a.put_asset(ident, f"sub-{i}/later.nwb", b"later" * 30, when=T0 + timedelta(hours=2))
        yield a


@pytest.fixture(scope="module")
def single_host(archive, tmp_path_factory: pytest.TempPathFactory, capsys_module=None) -> Path:  # noqa: ANN001
    """The reference: the same archive state mirrored on one host, without Dask."""
    root = tmp_path_factory.mktemp("single") / "mirror"
    p = neuromirror(root, "sync", "dandi:*", "--dandi-api", archive.api_url)
    assert p.returncode == 0, p.stderr
    return root


#: a sync on the cluster that has not ended by then is stuck: fail the test, not the whole CI run
SYNC_TIMEOUT = 600


def neuromirror(root: Path, *args: str, env: Optional[dict] = None, **kw) -> subprocess.CompletedProcess:  # noqa: ANN003
    kw.setdefault("timeout", SYNC_TIMEOUT)
    return subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(root), *args],
        env=env or ENV,
        capture_output=True,
        text=True,
        **kw,
    )


#: commits that set a new dataset up, dated when they are made (the mirror's others: by the archive)
DATED_NOW = ("use SHA256E keys", "use MD5E keys", "new Zarr dataset")


def tree(ds: Path, rev: str) -> list[str]:
    """A commit's tree without what is random per dataset (its DataLad id, and so the commits
    of subdatasets and .gitmodules' ids)."""
    lines = []
    for ln in git(ds, "ls-tree", "-r", rev).splitlines():
        meta, path = ln.split("\t", 1)
        if path in (".datalad/config", ".gitmodules"):
            continue
        mode, kind, sha = meta.split()
        lines.append(f"{mode} {kind} {'(subdataset)' if mode == '160000' else sha}\t{path}")
    return lines


def dataset_state(root: Path) -> dict[str, dict]:
    """Per dataset and Zarr subdataset under dandi/: trees, commit subjects and dates, tags."""
    found = {}
    for gitdir in sorted(root.glob("dandi/*/.git")) + sorted(root.glob("dandi/*/**/*.zarr/.git")):
        ds = gitdir.parent
        found[str(ds.relative_to(root))] = {
            "head": tree(ds, "HEAD"),
            # the mirror's own commits (dated by the archive), not DataLad's creation (dated now)
            "chain": [
                c
                for c in git(ds, "log", "--first-parent", "--format=%s %aI %cI", "HEAD").splitlines()
                if "[neuromirror]" in c and not any(w in c for w in DATED_NOW)
            ],
            "tags": {t: tree(ds, t) for t in git(ds, "tag", "-l").split()},
        }
    return found


def index_state(root: Path) -> tuple[list, list]:
    """The index's versions and files, commit ids aside (they depend on the random dataset ids;
    the subdatasets' content is compared by :func:`dataset_state`)."""
    db = sqlite3.connect(root / ".neuromirror" / "index.sqlite")
    versions = db.execute(
        "SELECT source, label, kind, tag, remote_modified, date, files, bytes, doi, citation, meta"
        " FROM versions ORDER BY source, id"
    ).fetchall()
    files = db.execute(
        "SELECT v.source, v.label, e.path, e.key, e.size, e.checksum_kind,"
        " CASE e.checksum_kind WHEN 'subdataset' THEN '(commit)' ELSE e.checksum END, e.urls, e.remote_id"
        " FROM version_files vf JOIN versions v ON v.id = vf.version_id JOIN entries e ON e.id = vf.entry_id"
        " ORDER BY v.source, v.id, e.path"
    ).fetchall()
    db.close()
    return versions, files


def assert_same_as(root: Path, reference: Path) -> None:
    assert dataset_state(root) == dataset_state(reference)
    assert index_state(root) == index_state(reference)
    db = sqlite3.connect(root / ".neuromirror" / "index.sqlite")
    for source, commit in db.execute('SELECT source, "commit" FROM versions'):  # the index names real commits
        assert git(root / "dandi" / source.split(":", 1)[1], "cat-file", "-t", commit).strip() == "commit"
    db.close()
    for ds in (root / "dandi").iterdir():
        assert git(ds, "status", "--porcelain") == "", ds


def workers_of(reports: list[dict]) -> set[str]:
    return {t["worker"] for r in reports for t in r.get("tasks", [])}


# -- the tests ----------------------------------------------------------------------
def test_all_dandisets_on_two_workers_equal_a_single_host_run(
    cluster, archive, single_host, tmp_path: Path, capsys
) -> None:  # noqa: ANN001
    cli = CLI(tmp_path / "mirror", capsys, archive.api_url)
    code, out, err = cli("sync", "dandi:*", "--dask", cluster.address, "--json")
    assert code == 0, err
    reports = json.loads(out)
    assert len(reports) == 6 and all(r["outcome"] == "ok" for r in reports), reports
    assert workers_of(reports) == set(cluster.workers()), "both workers ran tasks"
    assert all(t["seconds"] > 0 for r in reports for t in r["tasks"])
    # inside a dandiset, one task per Zarr asset: the two Zarr dandisets' 6 Zarrs each ran as their own task
    zarr_tasks = [t for r in reports for t in r["tasks"] if t["task"].startswith("zarr ")]
    assert len(zarr_tasks) == 6 and {t["worker"] for t in zarr_tasks} <= set(cluster.workers()), zarr_tasks
    assert_same_as(cli.root, single_host)
    assert not list((cli.root / ".neuromirror" / "spool").glob("*")), "spool files are removed once recorded"
    # nothing changed: one task per source says so, the index is untouched
    before = index_dump(cli.root)
    code, out, err = cli("sync", "dandi:*", "--dask", cluster.address)
    assert code == 0, err
    assert out.strip().splitlines()[-1] == "6 sources: 0 updated, 6 unchanged, 0 failed"
    assert index_dump(cli.root) == before


def test_a_worker_killed_mid_task_reruns_elsewhere_with_the_same_result(
    cluster, archive, single_host, tmp_path: Path
) -> None:  # noqa: ANN001
    # w2 dies by SIGKILL in its first task, in the middle of a commit (a Zarr subdataset's or a dandiset's).
    # It is the only worker until it has died, so the kill does not hang on how the scheduler spreads the
    # tasks (on a busy machine w1 could take them all); w1 then joins and runs what w2 was running.
    cluster.stop_worker("w1")
    cluster.stop_worker("w2")
    cluster.start_worker("w2", NEUROMIRROR_CRASH_AT="fast-import-stream")
    root = tmp_path / "mirror"
    cmd = [sys.executable, "-m", "neuromirror", "--root", str(root), "sync", "dandi:*", "--dask", cluster.address]
    sync = subprocess.Popen(
        [*cmd, "--dandi-api", archive.api_url, "--json"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        w2 = cluster.procs["w2"]
        wait_for(lambda: w2.poll() is not None, SYNC_TIMEOUT, "w2 to be killed in its first commit")
        assert w2.returncode == -signal.SIGKILL, "w2 was killed in the middle of a task"
        assert sync.poll() is None, "the sync waits for a worker to rerun w2's task"
        cluster.start_worker("w1")
        out, err = sync.communicate(timeout=SYNC_TIMEOUT)
        assert sync.returncode == 0, err
        reports = json.loads(out)
        assert all(r["outcome"] == "ok" for r in reports), reports
        assert_same_as(root, single_host)
    finally:
        if sync.poll() is None:
            sync.kill()
            sync.communicate()
        cluster.stop_worker("w2")  # dead already, unless the test failed before the kill
        cluster.start_worker("w2")
        if "w1" not in cluster.procs:
            cluster.start_worker("w1")


def test_submitter_killed_mid_run_then_the_next_run_converges(cluster, archive, single_host, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror.dataset.mirror import Datasets

    root = tmp_path / "mirror"
    archive.latency = 0.05  # slow enough to be stopped half-way
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "neuromirror",
                "--root",
                str(root),
                "sync",
                "dandi:*",
                "--dask",
                cluster.address,
                "--dandi-api",
                archive.api_url,
            ],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # mid-run: some dandiset has its dataset, not all are recorded
        wait_for(lambda: len(list(root.glob("dandi/*/.datalad"))) >= 2, 120, "datasets to appear")
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        assert proc.returncode == -signal.SIGTERM
    finally:
        archive.latency = 0.0
    p = neuromirror(root, "sync", "dandi:*", "--dask", cluster.address, "--dandi-api", archive.api_url)
    assert p.returncode == 0, p.stderr
    assert_same_as(root, single_host)
    # no lock left behind: every source's lock is free at once
    mirror = Datasets(root)
    try:
        for sid in [s.id for s in mirror.index.sources()]:
            with mirror.lock(sid, wait=0):
                pass
    finally:
        mirror.close()


def test_serve_runs_on_the_workers_and_never_twice_at_once(cluster, archive, tmp_path: Path) -> None:  # noqa: ANN001
    from helpers.service import assert_never_interleaved, ok_runs, runs, serve
    from helpers.service import wait_for as wait_served

    ident = archive.create_dandiset(name="served", created=T0)
    archive.put_asset(ident, "a.nwb", b"served" * 50, when=T0)
    sid = f"dandi:{ident}"
    root = tmp_path / "mirror"
    cfg = tmp_path / "m.yaml"
    cfg.write_text(
        f"executor: {{dask: '{cluster.address}'}}\n"
        f"defaults:\n  schedule: {{interval: 2s}}\n  options: {{dandi_api: '{archive.api_url}'}}\n"
        f"sources:\n  - spec: '{sid}'\n"
    )
    with serve(root, cfg) as svc:
        wait_served(lambda: ok_runs(root, sid), 60, "a first service run", svc)
        cluster_state = svc.state()["cluster"]
        assert {w["name"] for w in cluster_state["workers"]} == {"w1", "w2"}
        with urllib_get(svc.url("/status.json")) as status:
            assert status["service"]["cluster"]["address"] == cluster.address
        # one-off syncs on the same root while the service syncs: each waits or is refused, never interleaves
        archive.latency = 0.05
        try:
            for _ in range(3):
                archive.put_asset(ident, f"b{time.monotonic_ns()}.nwb", b"more" * 50, when=T0 + timedelta(hours=1))
                neuromirror(root, "sync", sid, "--dask", cluster.address, "--dandi-api", archive.api_url, timeout=120)
        finally:
            archive.latency = 0.0
        wait_served(lambda: len(ok_runs(root, sid)) >= 3, 60, "more service runs", svc)
        assert svc.stop() == 0
    rows = runs(root, sid)
    assert_never_interleaved(rows)
    workers = {t["worker"] for r in rows if r["report"] for t in json.loads(r["report"]).get("tasks", [])}
    assert workers and workers <= set(cluster.workers()), "the service's syncs ran on the workers"
    assert {r["trigger"] for r in rows} == {"service", "cli"}


def test_status_shows_the_cluster(cluster, tmp_path: Path) -> None:  # noqa: ANN001
    p = neuromirror(tmp_path / "mirror", "status", "--json", env={**ENV, "NEUROMIRROR_DASK": cluster.address})
    assert p.returncode == 0, p.stderr
    c = json.loads(p.stdout)["cluster"]
    assert c["address"] == cluster.address and {w["name"] for w in c["workers"]} == {"w1", "w2"}
    p = neuromirror(tmp_path / "mirror", "status", env={**ENV, "NEUROMIRROR_DASK": cluster.address})
    assert f"cluster: dask {cluster.address}: 2 worker(s)" in p.stdout


def test_unreachable_scheduler_one_line_nothing_written(archive, tmp_path: Path) -> None:  # noqa: ANN001
    address = f"tcp://127.0.0.1:{free_port()}"
    root = tmp_path / "mirror"
    p = neuromirror(
        root,
        "sync",
        "dandi:*",
        "--dandi-api",
        archive.api_url,
        env={**ENV, "NEUROMIRROR_DASK": address, "NEUROMIRROR_DASK_TIMEOUT": "2"},
    )
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and "Dask scheduler" in lines[0], p.stderr
    assert not root.exists()


class urllib_get:  # noqa: N801 - a tiny context manager reading JSON
    def __init__(self, url: str):
        self.url = url

    def __enter__(self) -> dict:
        import urllib.request

        with urllib.request.urlopen(self.url, timeout=30) as r:
            return json.loads(r.read())

    def __exit__(self, *exc: object) -> None:
        return None


#: garbage holding a threading.local, freed by the collection an allocation inside sys._current_frames() starts
GC_IN_CURRENT_FRAMES = """
import gc, sys, threading
if sys.argv[1] == "guarded":
    from neuromirror.engine.dask_executor import guard_profiler
    guard_profiler()
stop = threading.Event()
def busy():
    while not stop.is_set():
        len("x")
for _ in range(4):
    threading.Thread(target=busy, daemon=True).start()
class Retrying:  # as tenacity's: a threading.local, here in a cycle
    def __init__(self):
        self.local = threading.local()
        self.local.x = 1
        self.me = self
for _ in range(200):
    gc.collect()
    gc.disable()
    garbage = [Retrying() for _ in range(20)]
    gc.collect(0)  # now in generation 1
    del garbage
    gc.set_threshold(1, 1)  # the second frame object allocated collects generation 1
    gc.enable()
    sys._current_frames()  # what a Dask worker's profiler calls every 10 ms
    gc.set_threshold(700, 10, 10)
stop.set()
print("survived")
"""


def test_a_workers_profiler_survives_a_collection_that_frees_a_thread_local(tmp_path: Path) -> None:
    """The freeze that stopped a worker mid-sync (CPython gh-106883): with the guard a task installs,
    the profiler's call cannot deadlock; without it, an affected interpreter does."""
    from neuromirror.engine.dask_executor import _gc_deadlock_in_current_frames

    script = tmp_path / "frames.py"
    script.write_text(GC_IN_CURRENT_FRAMES)
    p = subprocess.run([sys.executable, str(script), "guarded"], env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == "survived", p.stderr
    if _gc_deadlock_in_current_frames():  # the scenario is the real one: unguarded, it hangs
        with pytest.raises(subprocess.TimeoutExpired):
            subprocess.run([sys.executable, str(script), "bare"], env=ENV, capture_output=True, timeout=15)


def test_a_task_the_cluster_cancels_is_said_so(cluster) -> None:  # noqa: ANN001
    """distributed's ``result()`` of a cancelled Future raises UnboundLocalError (its CancelledError is
    no Exception); the runner reads the status first and names the task instead."""
    from distributed import Client, Event, Future

    from neuromirror.engine.dask_executor import TaskCancelled, _outcome

    with Client(cluster.address, set_as_default=False) as mine, Client(cluster.address, set_as_default=False) as other:
        gate = Event(f"gate-{uuid.uuid4().hex}", client=mine)
        future = mine.submit(gate.wait, key=f"neuromirror-test-{uuid.uuid4().hex}", pure=False)
        wait_for(lambda: future.key in {k for ks in mine.processing().values() for k in ks}, 60, "the task to run")
        other.cancel(
            [Future(future.key, client=other)], force=True
        )  # another client (an operator, a restarted scheduler) cancels it
        wait_for(lambda: future.status == "cancelled", 60, "the cancellation to arrive")
        settled = threading.Event()
        future.add_done_callback(lambda _f: settled.set())
        with pytest.raises(TaskCancelled, match=future.key):
            _outcome(future, settled, 1.0)
        gate.set()


#: a result big enough that gathering it overlaps the pollers' timeouts
PAYLOAD = 20_000_000


def test_sources_waiting_on_one_client_do_not_break_each_others_results(cluster) -> None:  # noqa: ANN001
    """Several sources' tasks are polled from one client; a poll that times out mid-gather cancelled the
    gather the client shares between its waiters (a CI run's 'cannot access local variable result').
    Results big enough that their gathers outlast the polls; every waiter gets its own bytes."""
    from distributed import Client

    with Client(cluster.address, set_as_default=False) as client:
        for round_ in range(4):
            futures = [client.submit(operator.mul, bytes([i]), PAYLOAD, pure=False) for i in range(3)]  # builtins
            got = _wait_as_the_sources_do(futures)
            assert all(got.get(i) == bytes([i]) * PAYLOAD for i in range(3)), (
                round_,
                {i: repr(v)[:80] for i, v in got.items()},
            )
            client.cancel(futures)


def _wait_as_the_sources_do(futures: list) -> dict:
    """Each Future's result through ``_outcome``, polling every 10 ms, each in its own thread as the sources'
    are. Two threads polling with ``result(timeout=)`` this way lost both results in 20 of 20 tries."""
    from neuromirror.engine.dask_executor import _outcome

    got: dict[int, object] = {}

    def poll(i: int) -> None:
        settled = threading.Event()
        futures[i].add_done_callback(lambda _f: settled.set())
        try:
            while True:
                done, value = _outcome(futures[i], settled, 0.01)
                if done:
                    got[i] = value
                    return
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            got[i] = exc

    threads = [threading.Thread(target=poll, args=(i,), daemon=True) for i in range(len(futures))]
    [t.start() for t in threads]
    [t.join(timeout=300) for t in threads]
    return got


def test_executor_in_a_mirror_definition(tmp_path: Path) -> None:
    from neuromirror.config.load import load_config
    from neuromirror.config.reader import ConfigError

    good = tmp_path / "good.yaml"
    good.write_text(
        "executor: {dask: 'tcp://10.0.0.5:8786'}\ndefaults: {schedule: {interval: 1d}}\nsources:\n  - 'dandi:000027'\n"
    )
    assert load_config(good).dask == "tcp://10.0.0.5:8786"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "executor: {dask: 8786, ray: x}\ndefaults: {schedule: {interval: 1d}}\nsources:\n  - 'dandi:000027'\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    text = str(err.value)
    assert "executor.dask" in text and "expected a scheduler address" in text and "ray" in text, text


def test_aind_stores_run_as_tasks_of_their_own(cluster, s3, tmp_path: Path) -> None:  # noqa: ANN001
    """An AIND asset with two Zarr stores on the cluster: one task per store, the same datasets as one host."""
    from helpers.aind import ASSET, STORES, store_objects

    bucket = f"nm-dask-aind-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(bucket, versioned=True, public=True)
    s3.put(bucket, f"{ASSET}/data_description.json", b'{"subject_id": "111111", "modality": "SPIM"}')
    for store in STORES:
        for rel, data in store_objects(store).items():
            s3.put(bucket, f"{ASSET}/{rel}", data)
    args = ("sync", f"aind:{ASSET}", "--bucket", bucket, "--s3-endpoint", s3.endpoint_url, "--json")
    p = neuromirror(tmp_path / "cluster", *args, "--dask", cluster.address)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    tasks = [t["task"] for t in report["tasks"]]
    assert sorted(t for t in tasks if t.startswith("zarr ")) == [f"zarr {s}" for s in STORES], tasks
    ref = neuromirror(tmp_path / "single", *args)
    assert ref.returncode == 0, ref.stderr
    here, there = tmp_path / "cluster" / "aind" / ASSET, tmp_path / "single" / "aind" / ASSET
    assert tree(here, "HEAD") == tree(there, "HEAD")
    for store in STORES:
        assert tree(here / store, "HEAD") == tree(there / store, "HEAD")
        assert git(here / store, "status", "--porcelain") == ""
    assert git(here, "status", "--porcelain") == ""
