"""The archives a network away: a sync stays pinned and converges under throttling and faults.

The stand-in archives sit behind :class:`~neuromirror.standins.network.ShapingProxy` (a round trip
of 20 ms, keep-alive to the client, faults on a plan): the DANDI API, and S3 as the archive's
metadata names it (the ``contentUrl`` and the Zarr URLs point at the proxy).  Every check reads the
mirror as a user would: git, git-annex's URL logs, the index, the sync's ``--json`` report.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest

from conftest import git
from helpers.annex import web_urls
from helpers.keep import T0
from helpers.retrieve import Runner
from neuromirror.demo import deterministic_bytes
from neuromirror.network import pacing
from neuromirror.standins.network import ShapingProxy
from neuromirror.standins.network_faults import Fault, NetFaults

RTT = 0.02
#: how late a request sent before a Retry-After answer reached the client may still reach the proxy
IN_FLIGHT_LATE = 1.0
#: the Retry-After the threads must honour: room for IN_FLIGHT_LATE and a second that shows them waiting
RETRY_AFTER = 2.0
BUCKET = "net-dandiarchive"


class World:
    """A DANDI stand-in and its S3 behind two proxies: what a mirror a network away sees."""

    def __init__(self, s3, api_proxy: ShapingProxy, s3_proxy: ShapingProxy, archive) -> None:  # noqa: ANN001
        self.s3 = s3
        self.api_proxy = api_proxy
        self.s3_proxy = s3_proxy
        self.archive = archive

    @property
    def api_url(self) -> str:
        return self.api_proxy.url + "/api"

    def faults(self, *rules: Fault) -> None:
        """The plan of both proxies from now on (none: a clean network)."""
        self.api_proxy.faults = NetFaults(list(rules)) if rules else None
        self.s3_proxy.faults = NetFaults(list(rules)) if rules else None

    def dandiset(self, n: int, tag: str) -> tuple[str, dict[str, bytes]]:
        when = T0 + timedelta(days=800 + len(self.archive.dandiset_ids()))
        ident = self.archive.create_dandiset(name=f"network {tag}", created=when)
        files = {f"sub-{i:02d}/f{i}.nwb": deterministic_bytes(f"{ident}:{tag}:{i}", 3000 + i) for i in range(n)}
        files["README.md"] = f"# {tag}\n".encode()
        for i, (path, data) in enumerate(files.items()):
            self.archive.put_asset(ident, path, data, when=when + timedelta(minutes=i + 1))
        return ident, files

    def zarr_in_a_worker(self, blobs: int, path: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
        """A dandiset of ``blobs`` blobs and a Zarr at ``path``, mirrored in a worker process: (id, zarr id)."""
        from neuromirror.sources.dandi import zarr_assets

        ident, _ = self.dandiset(blobs, f"{path} in a worker")
        chunks = {f"0/{i}": deterministic_bytes(f"{ident}:{path}:{i}", 100 + i) for i in range(30)}
        chunks[".zgroup"] = b'{"zarr_format": 2}'
        self.archive.add_zarr_asset(ident, path, chunks, when=T0 + timedelta(days=5000))
        monkeypatch.setenv("NEUROMIRROR_WORKER_PROCESSES", "1")
        monkeypatch.setattr(zarr_assets, "PROCESS_MIN", 1)  # every Zarr in a worker process
        return ident, self.archive.asset_at(ident, path).zarr.zarr_id

    def synced_through_one_retry_after(self, ident: str, key: str, seconds: float, root: Path) -> list:
        """A sync whose HEAD of ``key`` is first answered SlowDown with Retry-After ``seconds``: the S3 proxy's log."""
        self.faults(Fault("slowdown", match=f"^HEAD /{BUCKET}/{key}$", first=1, retry_after=seconds))
        self.s3_proxy.reset_stats()
        code, _, err = sync(Runner(root), self, ident)
        assert code == 0, err
        return list(self.s3_proxy.log)

    def blob_key(self, ident: str, path: str) -> str:
        return self.archive.asset_at(ident, path, "draft").blob.key


@pytest.fixture(scope="module")
def world(s3) -> Iterator[World]:  # noqa: ANN001
    from neuromirror.standins.dandi.server import DandiStandIn

    with ShapingProxy(s3.endpoint_url, rtt=RTT) as s3_proxy:
        seen = s3.through(s3_proxy.url)
        with DandiStandIn(seen, bucket=BUCKET, embargo_bucket=BUCKET + "-embargo") as archive:
            with ShapingProxy(f"http://{archive.host}:{archive.port}", rtt=RTT) as api_proxy:
                yield World(s3, api_proxy, s3_proxy, archive)


@pytest.fixture(autouse=True)
def clean_network(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(pacing, "BACKOFF", 0.02)  # retries' pauses short: the proxy's faults are planned
    pacing.forget()
    world.faults()
    yield
    world.faults()


def sync(run: Runner, world: World, ident: str) -> tuple[int, dict, str]:
    code, out, err = run("sync", f"dandi:{ident}", "--dandi-api", world.api_url, "--json")
    return code, json.loads(out), err


def index_rows(root: Path) -> list[tuple]:
    db = sqlite3.connect(root / ".neuromirror" / "index.sqlite")
    try:
        return db.execute(
            "SELECT v.label, v.kind, e.path, e.key, e.size, e.checksum_kind, e.checksum, e.urls FROM version_files vf"
            " JOIN versions v ON v.id = vf.version_id JOIN entries e ON e.id = vf.entry_id ORDER BY v.id, e.path"
        ).fetchall()
    finally:
        db.close()


def tree(ds: Path) -> list[str]:
    return [ln for ln in git(ds, "ls-tree", "-r", "HEAD").splitlines() if not ln.endswith("\t.datalad/config")]


def test_slowdown_until_the_sixth_try_still_pins_every_url(world: World, tmp_path: Path) -> None:
    ident, files = world.dandiset(6, "sixth try")
    chosen = [world.blob_key(ident, p) for p in ("sub-01/f1.nwb", "sub-03/f3.nwb")]
    world.faults(Fault("slowdown", match="^HEAD /" + BUCKET + "/(" + "|".join(chosen) + ")$", first=5))

    run = Runner(tmp_path / "mirror")
    code, rep, err = sync(run, world, ident)
    assert code == 0, err
    ds = run.root / "dandi" / ident
    urls = web_urls(ds)
    assert set(urls) == {p for p in files if p != "README.md"}
    for path, got in urls.items():
        assert any("?versionId=" in u for u in got), (path, got)
        assert not any(u.split("?")[0].endswith(world.blob_key(ident, path)) and "?" not in u for u in got)
    s3_row = next(r for r in rep["network"] if r["endpoint"] == world.s3_proxy.url)
    assert s3_row["throttled"] >= 10 and s3_row["retries"] >= 10 and s3_row["gave_up"] == 0
    assert s3_row["in_flight_limit_min"] < s3_row["in_flight_ceiling"]  # the SlowDowns lowered the pace
    assert len(world.s3_proxy.faults.injected) == 10  # type: ignore[union-attr]


def test_a_pin_never_answered_fails_naming_it_keeps_the_last_state_and_the_next_sync_pins_it(
    world: World, tmp_path: Path
) -> None:
    ident, files = world.dandiset(4, "never answered")
    run = Runner(tmp_path / "mirror")
    assert sync(run, world, ident)[0] == 0
    ds = run.root / "dandi" / ident
    before = tree(ds)

    # the archive changes one file and adds one; their HEADs are answered SlowDown, whatever the retries
    t = T0 + timedelta(days=2000)
    world.archive.put_asset(ident, "sub-01/f1.nwb", b"new bytes of f1" * 100, when=t)
    world.archive.put_asset(ident, "sub-09/new.nwb", b"a new file" * 100, when=t + timedelta(minutes=1))
    stuck = [world.blob_key(ident, "sub-01/f1.nwb"), world.blob_key(ident, "sub-09/new.nwb")]
    world.faults(Fault("slowdown", match="^HEAD /" + BUCKET + "/(" + "|".join(stuck) + ")$", first=10_000))

    code, rep, err = sync(run, world, ident)
    assert code == 1
    assert rep["outcome"] == "failed"
    assert sorted(u["path"] for u in rep["unreachable"]) == ["sub-01/f1.nwb", "sub-09/new.nwb"]
    assert "could not be read from the archive" in err and "sub-01/f1.nwb" in err + rep["error"]
    assert len(err.strip().splitlines()) == 1
    # held at the last state: the old f1, no new file, nothing pinned by a mutable URL
    after = tree(ds)
    assert [ln for ln in after if "f1.nwb" in ln] == [ln for ln in before if "f1.nwb" in ln]
    assert not any("new.nwb" in ln for ln in after)
    assert git(ds, "status", "--porcelain") == ""
    for got in web_urls(ds).values():
        assert all("?versionId=" in u or "/download/" in u for u in got)
    row = json.loads(run("status", f"dandi:{ident}", "--json")[1])["sources"][0]
    assert row["status"] == "failing" and "sub-01/f1.nwb" in row["last_error"]
    assert sorted(u["path"] for u in row["unreachable"]) == ["sub-01/f1.nwb", "sub-09/new.nwb"]
    code, out, _ = run("status", f"dandi:{ident}")
    assert f"dandi:{ident}: held back sub-09/new.nwb: not pinned: the archive's S3 gave no answer" in out
    assert f"dandi:{ident}: {world.s3_proxy.url}: 20 throttled answer(s)" in out  # 2 HEADs x 10 attempts

    # the archive answers again: the next sync (the archive unchanged since) takes them up
    world.faults()
    code, rep, err = sync(run, world, ident)
    assert code == 0, err
    assert rep["unreachable"] == []
    urls = web_urls(ds)
    assert any("?versionId=" in u for u in urls["sub-09/new.nwb"])
    assert (ds / "sub-01/f1.nwb").is_symlink()
    # and then a resync finds nothing to do
    code, rep, err = sync(run, world, ident)
    assert code == 0 and rep["outcome"] == "unchanged", err


def test_the_same_archive_clean_and_throttled_gives_the_same_mirror(world: World, tmp_path: Path) -> None:
    ident, _ = world.dandiset(30, "clean and throttled")
    clean = Runner(tmp_path / "clean")
    assert sync(clean, world, ident)[0] == 0

    # one HEAD surely throttled: the draws below hash the blobs' random ids, and all 37 requests drew none at
    # once in ~1.4e-4 of runs (0.8^31 HEADs x 0.72^6 API GETs), which would leave "throttled > 0" to chance
    first = world.blob_key(ident, "sub-00/f0.nwb")
    world.faults(
        Fault("slowdown", match=f"^HEAD /{BUCKET}/{first}$", first=1, retry_after=0.05),
        Fault("slowdown", match="^HEAD ", rate=0.2, retry_after=0.05),
        Fault("429", match="^GET /api/", rate=0.2, retry_after=0.05),
        Fault("503", match="^GET /api/", rate=0.1),
    )
    pacing.forget()
    throttled = Runner(tmp_path / "throttled")
    code, rep, err = sync(throttled, world, ident)
    assert code == 0, err
    assert sum(r["throttled"] for r in rep["network"]) > 0
    a, b = clean.root / "dandi" / ident, throttled.root / "dandi" / ident
    assert tree(a) == tree(b)
    assert web_urls(a) == web_urls(b)
    assert index_rows(clean.root) == index_rows(throttled.root)


def test_retry_after_is_honoured_by_every_thread(world: World, tmp_path: Path) -> None:
    ident, _ = world.dandiset(40, "retry after")
    key = world.blob_key(ident, "sub-05/f5.nwb")
    log = world.synced_through_one_retry_after(ident, key, RETRY_AFTER, tmp_path / "mirror")
    throttled = [r for r in log if r.kind == "slowdown"]
    assert len(throttled) == 1
    t = throttled[0].t
    # the answer reaches the client one round trip after the request reached the proxy; from then on
    # no request to that endpoint may leave before the seconds it named.  Requests that passed the gate
    # before the answer came may still arrive: on a busy 2-core CI machine three such reached the proxy
    # 97 ms after the throttle, their threads waiting on the CPU (the allowance was 50 ms beyond the
    # round trips, then 0.3 s; a loaded machine stretches a thread's turn 10x: now 1 s, in a wait of 2 s).
    # A client that ignored Retry-After would send on through the rest of the wait.
    later = [r.t for r in log if r.t > t + 2 * RTT + IN_FLIGHT_LATE]
    assert later, "the throttled HEAD was asked again"
    assert min(later) >= t + RETRY_AFTER - 0.05


def test_an_api_listing_cut_mid_body_is_read_again_with_the_same_result(world: World, tmp_path: Path) -> None:
    ident, _ = world.dandiset(5, "reset mid-body")
    clean = Runner(tmp_path / "clean")
    assert sync(clean, world, ident)[0] == 0

    world.faults(Fault("reset", match=f"^GET /api/dandisets/{ident}/versions/draft/assets/", first=1))
    cut = Runner(tmp_path / "cut")
    code, rep, err = sync(cut, world, ident)
    assert code == 0, err
    assert world.api_proxy.faults.injected  # type: ignore[union-attr]
    assert tree(clean.root / "dandi" / ident) == tree(cut.root / "dandi" / ident)
    assert index_rows(clean.root) == index_rows(cut.root)


def test_a_stalled_api_is_a_one_line_timeout_and_nothing_half_written(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ident, _ = world.dandiset(3, "stall")
    run = Runner(tmp_path / "mirror")
    assert sync(run, world, ident)[0] == 0
    ds = run.root / "dandi" / ident
    before = tree(ds), index_rows(run.root)

    world.archive.put_asset(ident, "sub-07/late.nwb", b"late" * 100, when=T0 + timedelta(days=3000))
    monkeypatch.setenv("NEUROMIRROR_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("NEUROMIRROR_HTTP_RETRIES", "2")
    world.faults(
        Fault("stall", match=f"^GET /api/dandisets/{ident}/versions/draft/assets/", rate=1.0, stall_seconds=60)
    )
    code, out, err = run("sync", f"dandi:{ident}", "--dandi-api", world.api_url)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "timed out" in err.lower(), err
    assert (tree(ds), index_rows(run.root)) == before
    assert git(ds, "status", "--porcelain") == ""


def test_zarr_listings_throttled_and_cut_give_the_same_zarr_datasets(world: World, tmp_path: Path) -> None:
    ident, _ = world.dandiset(2, "zarr listings")
    when = T0 + timedelta(days=4000)
    for z in range(3):
        chunks = {f"0/{i}": deterministic_bytes(f"{ident}:z{z}:{i}", 200 + i) for i in range(12)}
        chunks[".zgroup"] = b'{"zarr_format": 2}'
        world.archive.add_zarr_asset(ident, f"sub-0{z}/x{z}.zarr", chunks, when=when + timedelta(minutes=z))
    clean = Runner(tmp_path / "clean")
    assert sync(clean, world, ident)[0] == 0

    listing = f"^GET /{BUCKET}\\?"  # the bucket's listings (ListObjectVersions pages)
    # each page: cut on its first try, SlowDown on its next two (first match wins), listed on its fourth.  Not a
    # rate: seven SlowDowns in a row at 0.3 end a page's eight tries (p ~ 2e-4 a page), which a CI run met once
    world.faults(Fault("reset", match=listing, first=1), Fault("slowdown", match=listing, first=3))
    pacing.forget()
    throttled = Runner(tmp_path / "throttled")
    code, rep, err = sync(throttled, world, ident)
    assert code == 0, err
    kinds = {k for _, _, _, k in world.s3_proxy.faults.injected}  # type: ignore[union-attr]
    assert kinds >= {"reset", "slowdown"}
    a, b = clean.root / "dandi" / ident, throttled.root / "dandi" / ident

    def files(ds: Path) -> list[str]:  # a Zarr's gitlink names its dataset's commit, whose datalad id is its own
        return [ln.split(" ", 1)[0] + " " + ln.split("\t", 1)[1] if " commit " in ln else ln for ln in tree(ds)]

    assert [ln for ln in files(a) if not ln.endswith("\t.gitmodules")] == [
        ln for ln in files(b) if not ln.endswith("\t.gitmodules")
    ]
    for z in range(3):  # each Zarr's own dataset: the same objects, the same pinned URLs
        path = f"sub-0{z}/x{z}.zarr"
        assert tree(a / path) == tree(b / path)
        assert web_urls(a / path) == web_urls(b / path)
        assert all("?versionId=" in u for urls in web_urls(b / path).values() for u in urls if BUCKET in u)
    assert tree_rows(clean.root) == tree_rows(throttled.root)


def tree_rows(root: Path) -> list[tuple]:
    """The index's rows, a subdataset's commit left out (its dataset's datalad id is its own)."""
    return [r if r[5] != "subdataset" else r[:3] for r in index_rows(root)]


def test_an_aind_asset_listed_through_slowdowns_and_a_reset_is_the_same_mirror(world: World, tmp_path: Path) -> None:
    bucket = "net-aind-open-data"
    world.s3.create_bucket(bucket, versioned=True, public=True)
    asset = "ecephys_700001_2024-01-02_03-04-05"
    world.s3.put(bucket, f"{asset}/data_description.json", json.dumps({"name": asset, "subject_id": "700001"}).encode())
    for i in range(25):
        world.s3.put(bucket, f"{asset}/ecephys/part{i:02d}.bin", deterministic_bytes(f"aind:{i}", 100 + i))

    def aind_sync(run: Runner) -> tuple[int, str]:
        code, out, err = run(
            "sync", f"aind:{asset}", "--bucket", bucket, "--s3-endpoint", world.s3_proxy.url, "--json", "-J1"
        )
        return code, err

    clean = Runner(tmp_path / "clean")
    assert aind_sync(clean)[0] == 0
    listing = f"^GET /{bucket}\\?"
    # each page: cut on its first try, SlowDown on its next two (first match wins), listed on its fourth.  Not a
    # rate: seven SlowDowns in a row at 0.3 end a page's eight tries (p ~ 2e-4 a page), which a CI run met once
    world.faults(Fault("reset", match=listing, first=1), Fault("slowdown", match=listing, first=3))
    pacing.forget()
    throttled = Runner(tmp_path / "throttled")
    code, err = aind_sync(throttled)
    assert code == 0, err
    assert world.s3_proxy.faults.injected  # type: ignore[union-attr]
    a, b = clean.root / "aind" / asset, throttled.root / "aind" / asset
    assert tree(a) == tree(b)
    assert web_urls(a) == web_urls(b)
    assert index_rows(clean.root) == index_rows(throttled.root)


def test_a_worker_processs_throttled_listing_is_counted_in_the_syncs_report(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ident, zarr_id = world.zarr_in_a_worker(1, "w.zarr", monkeypatch)
    world.faults(Fault("slowdown", match=f"^GET /{BUCKET}\\?.*zarr%2F{zarr_id}", first=2))
    run = Runner(tmp_path / "mirror")
    code, rep, err = sync(run, world, ident)
    assert code == 0, err
    assert len(world.s3_proxy.faults.injected) == 2  # type: ignore[union-attr]
    row = next(r for r in rep["network"] if r["endpoint"] == world.s3_proxy.url)
    assert row["throttled"] == 2 and row["retries"] >= 2  # counted in the worker, reported by the sync


def test_a_retry_after_met_by_the_sync_holds_its_worker_processes_back(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ident, zarr_id = world.zarr_in_a_worker(3, "r.zarr", monkeypatch)
    key = world.blob_key(ident, "sub-01/f1.nwb")
    # the sync's own HEAD of a blob is told to wait 3 s: the worker's listing, made meanwhile, must wait too
    log = world.synced_through_one_retry_after(ident, key, 3.0, tmp_path / "mirror")
    t = next(r.t for r in log if r.kind == "slowdown")
    listings = [r.t for r in log if r.method == "GET" and f"zarr%2F{zarr_id}" in r.target]
    assert listings and min(listings) >= t + 3.0 - 0.05  # the worker met the sync's Retry-After


def test_a_zarr_listing_never_answered_keeps_its_last_state_and_the_next_sync_lists_it(
    world: World, tmp_path: Path
) -> None:
    ident, _ = world.dandiset(2, "zarr never listed")
    t = T0 + timedelta(days=7000)
    old = {f"0/{i}": deterministic_bytes(f"{ident}:old:{i}", 90 + i) for i in range(6)}
    old[".zgroup"] = b'{"zarr_format": 2}'
    world.archive.add_zarr_asset(ident, "held.zarr", old, when=t)
    run = Runner(tmp_path / "mirror")
    assert sync(run, world, ident)[0] == 0
    ds = run.root / "dandi" / ident
    before = [ln for ln in tree(ds) if ln.endswith("\theld.zarr")]

    new = {**old, "0/0": b"rewritten upstream"}
    world.archive.add_zarr_asset(ident, "held.zarr", new, when=t + timedelta(hours=1))
    zarr_id = world.archive.asset_at(ident, "held.zarr").zarr.zarr_id
    world.faults(Fault("slowdown", match=f"^GET /{BUCKET}\\?.*zarr%2F{zarr_id}", first=10_000))
    code, rep, err = sync(run, world, ident)
    assert code == 1 and [u["path"] for u in rep["unreachable"]] == ["held.zarr"], err
    assert "held.zarr" in err and "not listed" in rep["unreachable"][0]["reason"]
    assert [ln for ln in tree(ds) if ln.endswith("\theld.zarr")] == before  # its last state, not dropped
    assert git(ds, "status", "--porcelain") == ""

    world.faults()
    code, rep, err = sync(run, world, ident)  # the archive unchanged since: the held Zarr is listed again
    assert code == 0 and rep["unreachable"] == [], err
    after = [ln for ln in tree(ds) if ln.endswith("\theld.zarr")]
    assert after and after != before
    assert (ds / "held.zarr" / "0" / "0").is_symlink() or git(ds / "held.zarr", "ls-tree", "HEAD", "0/0")
