"""The whole archive's quiet hour: a ``dandi:*`` cycle asks the archive only about what its listing says changed.

Each test runs the service's cycles in-process (``Service.run_cycle``: what the scheduled
job runs) against a DANDI stand-in of its own, and counts what reached the archive in the
stand-in's request log and what ran in the index's ``runs``.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
import requests

from conftest import git

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=timezone.utc)
#: dandisets in the quiet hour's archive (each cold sync makes a dataset: seconds on a loaded machine)
N = 20


@pytest.fixture
def archive(s3) -> Iterator[DandiStandIn]:  # noqa: F821, ANN001
    from neuromirror.standins.dandi.server import DandiStandIn

    with DandiStandIn(s3, bucket=f"nm-quiet-{uuid.uuid4().hex[:8]}") as a:
        yield a


def service(tmp_path: Path, api: str, **options: object) -> object:
    from neuromirror.config.load import load_config
    from neuromirror.service.scheduler import Service
    from neuromirror.util.toolpath import ensure_tools_on_path

    ensure_tools_on_path()  # as `neuromirror serve` does

    opts = {"dandi_api": api, **options}
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "mirror.yaml"
    cfg.write_text(
        f"root: {tmp_path / 'mirror'}\n"
        "sources:\n"
        "  - spec: 'dandi:*'\n"
        "    schedule: 1h\n"
        f"    options: {json.dumps(opts)}\n"
    )
    config = load_config(cfg)
    return Service(config, config.resolve_root(None))


def runs(root: Path) -> list[str]:
    with sqlite3.connect(root / ".neuromirror" / "index.sqlite") as db:
        return [r[0] for r in db.execute("SELECT source FROM runs ORDER BY id")]


def dandiset_requests(archive) -> list[str]:  # noqa: ANN001
    """Requests that asked about one dandiset (not the archive's list)."""
    return [
        p for _, p in archive.request_log if p.startswith("/api/dandisets/") and not p.startswith("/api/dandisets/?")
    ]


def test_a_quiet_hour_of_twenty_dandisets_asks_about_the_changed_ones_only(archive, tmp_path: Path) -> None:
    ids = []
    for i in range(N):
        ident = archive.create_dandiset(name=f"quiet {i}", created=T0)
        archive.put_asset(ident, f"sub-{i:02d}/data.nwb", f"data {i}".encode() * 20, when=T0 + timedelta(minutes=i))
        ids.append(ident)
    archive.publish(ids[7], when=T0 + timedelta(hours=2))  # the newest version of ids[7] is now a published one
    svc = service(tmp_path, archive.api_url, recheck_cycles=0)
    root = svc.root

    # the first cycle: everything is new
    svc.run_cycle("dandi:*")
    assert sorted(runs(root)) == sorted(f"dandi:{i}" for i in ids)
    assert svc.entry_cycles["dandi:*"]["why"] == {"new": N}

    # nothing changed: one listing, not one request about any dandiset, no run
    archive.reset_request_log()
    svc.run_cycle("dandi:*")
    assert len(runs(root)) == N
    assert dandiset_requests(archive) == []
    listing = [p for _, p in archive.request_log if p.startswith("/api/dandisets/?")]
    assert len(listing) == 1 and "ordering=-modified" in listing[0] and "page_size=1000" in listing[0]
    assert len(archive.request_log) <= 3, archive.request_log
    assert svc.entry_cycles["dandi:*"] | {"started": None} == {
        "started": None,
        "listed": N,
        "synced": 0,
        "unchanged": N,
        "full_pass": False,
        "why": {},
    }

    # one draft changed, and the draft of the published one: the archive's `modified` order moves
    # the first to the top but not the second (its newest version is the published one) -- both are synced
    archive.put_asset(ids[3], "sub-03/new.nwb", b"new bytes" * 10, when=T0 + timedelta(days=1))
    archive.set_metadata(ids[7], {"description": "edited after publication"}, when=T0 + timedelta(days=1))
    archive.reset_request_log()
    svc.run_cycle("dandi:*")
    top = [d["identifier"] for d in requests.get(f"{archive.api_url}/dandisets/?ordering=-modified").json()["results"]]
    assert top[0] == ids[3] and top.index(ids[7]) > 0
    assert runs(root)[N:] == sorted([f"dandi:{ids[3]}", f"dandi:{ids[7]}"])
    asked = {p.split("/")[3] for p in dandiset_requests(archive)}
    assert asked == {ids[3], ids[7]}
    assert (root / "dandi" / ids[3] / "sub-03" / "new.nwb").is_symlink()
    assert "edited after publication" in (root / "dandi" / ids[7] / "dandiset.yaml").read_text()

    # a publication is a change too; a dandiset that appears is new
    archive.publish(ids[3], when=T0 + timedelta(days=2))
    fresh = archive.create_dandiset(name="fresh", created=T0 + timedelta(days=2))
    archive.put_asset(fresh, "x.nwb", b"fresh" * 10, when=T0 + timedelta(days=2))
    svc.run_cycle("dandi:*")
    assert runs(root)[N + 2 :] == sorted([f"dandi:{ids[3]}", f"dandi:{fresh}"])
    assert svc.entry_cycles["dandi:*"]["why"] == {"changed": 1, "new": 1}


def test_rolling_recheck_asks_every_unchanged_dandiset_within_its_cycles(archive, tmp_path: Path) -> None:
    ids = [archive.create_dandiset(name=f"r{i}", created=T0) for i in range(6)]
    for i, ident in enumerate(ids):
        archive.put_asset(ident, "a.nwb", f"r{i}".encode() * 10, when=T0)
    svc = service(tmp_path, archive.api_url, recheck_cycles=3)
    svc.run_cycle("dandi:*")
    rechecked: list[str] = []
    for _ in range(3):
        before = len(runs(svc.root))
        svc.run_cycle("dandi:*")
        new = runs(svc.root)[before:]
        assert len(new) == 2 and svc.entry_cycles["dandi:*"]["why"] == {"recheck": 2}
        rechecked += new
    assert sorted(rechecked) == sorted(f"dandi:{i}" for i in ids)  # each once, oldest check first


def test_full_pass_and_quiet_off_ask_every_dandiset(archive, tmp_path: Path) -> None:
    ids = [archive.create_dandiset(name=f"f{i}", created=T0) for i in range(3)]
    for i, ident in enumerate(ids):
        archive.put_asset(ident, "a.nwb", f"f{i}".encode() * 10, when=T0)
    svc = service(tmp_path, archive.api_url, recheck_cycles=0, full_pass="1ms")
    svc.run_cycle("dandi:*")
    svc.run_cycle("dandi:*")
    assert len(runs(svc.root)) == 6 and svc.entry_cycles["dandi:*"]["why"] == {"full pass": 3}
    off = service(tmp_path / "off", archive.api_url, quiet=False)
    off.run_cycle("dandi:*")
    off.run_cycle("dandi:*")
    assert len(runs(off.root)) == 6


def test_a_dandiset_with_zarrs_is_asked_each_cycle_and_sees_an_in_place_change(archive, tmp_path: Path) -> None:
    plain = archive.create_dandiset(name="plain", created=T0)
    archive.put_asset(plain, "a.nwb", b"plain" * 10, when=T0)
    holder = archive.create_dandiset(name="zarrs", created=T0)
    zid = archive.add_zarr_asset(holder, "img.zarr", {".zgroup": b'{"zarr_format": 2}', "0/0": b"x" * 8}, when=T0)
    svc = service(tmp_path, archive.api_url, recheck_cycles=0)
    svc.run_cycle("dandi:*")
    zarr_id = archive.asset(zid).zarr.zarr_id
    archive.modify_zarr(zarr_id, put={"0/1": b"y" * 8}, when=T0 + timedelta(hours=1))  # the draft's modified stays
    svc.run_cycle("dandi:*")
    assert runs(svc.root)[2:] == [f"dandi:{holder}"]
    zds = svc.root / "dandi" / holder / "img.zarr"
    assert git(zds, "ls-tree", "--name-only", "HEAD", "0/").split() == ["0/0", "0/1"]


def test_the_default_rolling_recheck_follows_the_time_since_the_last_cycle() -> None:
    """By default a cycle re-checks unchanged sources in proportion to the time since the last one over
    ``full_pass``: an hourly cycle of 2,000 dandisets asks 3 (a few requests), and the rotation goes
    once round in about ``full_pass``; ``recheck_cycles`` still overrides it."""
    from neuromirror.service.quiet import Policy, recheck_share

    now = T0
    hourly = now - timedelta(hours=1)
    assert recheck_share(2000, Policy(), hourly, now) == 3  # ceil(2000 / 720)
    assert recheck_share(2000, Policy(), now - timedelta(days=1), now) == 67
    assert recheck_share(2000, Policy(), now - timedelta(days=60), now) == 2000  # a service down for long
    assert recheck_share(2000, Policy(), None, now) == 3  # no earlier cycle: a month of hourly cycles
    assert recheck_share(5, Policy(), now - timedelta(seconds=1), now) == 1  # at least one each cycle
    assert recheck_share(0, Policy(), hourly, now) == 0
    assert recheck_share(2000, Policy(recheck_cycles=100), hourly, now) == 20
    assert recheck_share(2000, Policy(recheck_cycles=0), hourly, now) == 0
    assert recheck_share(2000, Policy(full_pass=7 * 86400.0), hourly, now) == 12
    # hourly cycles over a 30-day full pass: every one of 2,000 sources within the month
    assert 2000 / recheck_share(2000, Policy(), hourly, now) <= 30 * 24
    assert Policy.from_options({}).recheck_cycles is None
    assert Policy.from_options({"recheck_cycles": 24}).recheck_cycles == 24


def test_a_quiet_cycle_by_default_rechecks_a_few_oldest_first(archive, tmp_path: Path) -> None:
    ids = [archive.create_dandiset(name=f"d{i}", created=T0) for i in range(4)]
    for i, ident in enumerate(ids):
        archive.put_asset(ident, "a.nwb", f"d{i}".encode() * 10, when=T0)
    svc = service(tmp_path, archive.api_url)  # no recheck_cycles: the default policy
    svc.run_cycle("dandi:*")
    seen: list[str] = []
    for _ in range(4):
        before = len(runs(svc.root))
        archive.reset_request_log()
        svc.run_cycle("dandi:*")
        new = runs(svc.root)[before:]
        # cycles seconds apart: one re-check each (ceil of a tiny share), a handful of requests
        assert len(new) == 1 and svc.entry_cycles["dandi:*"]["why"] == {"recheck": 1}, new
        assert len(archive.request_log) <= 6, archive.request_log
        seen += new
    assert sorted(seen) == sorted(f"dandi:{i}" for i in ids)  # oldest check first: each once
