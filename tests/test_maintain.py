"""``maintain``: a mirror synced again and again stays packed, and loses nothing — used as an operator would.

Why: every sync adds loose git objects (fast-import and git-annex's plumbing never run ``gc --auto``)
and every publish pushes a few more into the store, where a dumb-HTTP clone fetches each with a
request of its own.  These tests sync real dandisets from the stand-in again and again, publish into
a RIA store served by ``python -m http.server``, then run ``neuromirror maintain`` and check, with
git's and git-annex's own tools, that everything is packed and nothing lost: ``git fsck`` clean,
every ref (branch, tags, git-annex) where it was, ``git annex whereis`` unchanged.  Also: a source
being synced is skipped while another is maintained, a SIGKILL mid-repack leaves every repository
whole and a rerun finishes the job, and a clone of the maintained store makes few requests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from datetime import timedelta
from hashlib import sha1
from pathlib import Path

from conftest import git
from helpers.keep import T0, Dandiset, make_dandiset
from helpers.publish_ria import Served, sh
from helpers.retrieve import Runner

#: loose objects a sync of one changed file adds (15-25): eight syncs pass maintain's threshold of 100
SYNCS = 8


def change_and_sync(d: Dandiset, k: int) -> None:
    """One new file in the draft, then a sync: what an hourly cycle of a growing dandiset does."""
    when = T0 + timedelta(days=300 + k)
    d.archive.put_asset(d.id, f"sub-new/file{k:03d}.nwb", f"new data {k}".encode() * 50, when=when)  # type: ignore[attr-defined]
    d.run.ok("sync", d.source, "--dandi-api", d.archive.api_url)  # type: ignore[attr-defined]


def loose(repo: Path) -> int:
    counts = dict(line.split(": ") for line in git(repo, "count-objects", "-v").splitlines())
    return int(counts["count"])


def refs(repo: Path) -> dict[str, str]:
    out = git(repo, "for-each-ref", "--format=%(objectname) %(refname)")
    return {name: sha for sha, name in (line.split(" ", 1) for line in out.splitlines())}


def whereis(repo: Path) -> list[dict]:
    """Every key's locations (and URLs), as ``git annex whereis --all`` reports them."""
    out = subprocess.run(
        ["git", "annex", "whereis", "--all", "--json"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return sorted(
        (
            {"key": r["key"], "whereis": sorted((w["uuid"], tuple(w.get("urls", []))) for w in r["whereis"])}
            for r in rows
        ),
        key=lambda r: r["key"],
    )


def fsck_clean(repo: Path) -> None:
    """``git fsck --full`` finds nothing missing or broken (dangling objects are fine: nothing needs them)."""
    proc = subprocess.run(["git", "fsck", "--full", "--no-progress"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bad = [ln for ln in proc.stdout.splitlines() + proc.stderr.splitlines() if not ln.startswith("dangling ")]
    assert not bad, bad


def state(repo: Path) -> tuple[dict[str, str], list[dict]]:
    return refs(repo), whereis(repo)


def maintain_json(run: Runner, *args: str) -> dict:
    return run.json("maintain", *args)  # type: ignore[return-value]


def by_label(report: dict) -> dict[str, dict]:
    return {r["label"]: r for r in report["repositories"]}


# -- the story: many syncs, then maintain ----------------------------------------------------
def test_syncs_leave_loose_objects_and_maintain_packs_them_losing_nothing(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 3000}, zarr={".zgroup": b"{}", "0": b"z"})
    for k in range(SYNCS):
        change_and_sync(d, k)
    assert loose(d.ds) > 100, "the premise: syncs leave loose objects behind"
    before = state(d.ds)
    assert any(r.startswith("refs/tags/") for r in before[0]) and "refs/heads/git-annex" in before[0]
    zarr = d.ds / "sub-09" / "sample.zarr"
    zarr_before = state(zarr)

    dry = maintain_json(d.run, "--dry-run")
    assert dry["dry_run"] and by_label(dry)[f"dandi/{d.id}"]["action"] == "would pack"
    assert loose(d.ds) > 100, "--dry-run changes nothing"

    report = maintain_json(d.run)
    assert report["ok"] and not report["skipped"]
    mine = by_label(report)[f"dandi/{d.id}"]
    assert mine["action"] == "packed" and "loose objects > 100" in mine["why"]
    assert mine["after"]["loose"] == 0 and mine["after"]["packs"] <= 10
    assert by_label(report)[f"dandi/{d.id}/sub-09/sample.zarr"]["kind"] == "subdataset"
    assert "(root superdataset)" in by_label(report), "maintain without SPEC includes the root"
    assert loose(d.ds) == 0
    fsck_clean(d.ds)
    fsck_clean(zarr)
    assert state(d.ds) == before and state(zarr) == zarr_before

    again = maintain_json(d.run, d.source)
    assert {r["action"] for r in again["repositories"]} == {"nothing"}, "packed once, nothing more to do"
    assert "(root superdataset)" not in by_label(again), "a SPEC names its sources only"
    # the mirror goes on: the next sync and a clone work from the packed dataset
    change_and_sync(d, SYNCS)
    fsck_clean(d.ds)
    out = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(d.ds), str(out)], check=True)
    assert (out / f"sub-new/file{SYNCS:03d}.nwb").is_symlink()


# -- locks: a source being synced is skipped, the others are maintained meanwhile ------------
def test_a_source_being_synced_is_skipped_while_another_is_maintained(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror.config.options import known_options
    from neuromirror.dataset.mirror import Datasets
    from neuromirror.engine.sync import sync_source
    from neuromirror.sources import expand
    from neuromirror.spec import parse_spec

    root = tmp_path / "mirror"
    a = make_dandiset(dandi_archive, root, {"a.nwb": 2000})
    b = make_dandiset(dandi_archive, root, {"b.nwb": 2000})
    for k in range(SYNCS):
        change_and_sync(a, k)
        change_and_sync(b, k)
    b_before = state(b.ds)
    # B's next sync holds B's lock and waits, mid-sync, until the test lets it go on
    dandi_archive.put_asset(b.id, "sub-new/late.nwb", b"late" * 100, when=T0 + timedelta(days=400))
    holding, release = threading.Event(), threading.Event()
    options = {**known_options()[0], "dandi_api": dandi_archive.api_url}
    source = next(expand(parse_spec(b.source, allow_version=False), options))
    mirror = Datasets(root)
    errors: list[BaseException] = []

    def sync_b() -> None:
        def on_locked() -> None:
            holding.set()
            assert release.wait(60), "the test never let the sync go on"

        try:
            sync_source(mirror, source, on_locked=on_locked)
        except BaseException as exc:  # noqa: BLE001  (reported by the main thread)
            errors.append(exc)

    t = threading.Thread(target=sync_b)
    t.start()
    try:
        assert holding.wait(60), "B's sync never took its lock"
        report = maintain_json(a.run)
        assert by_label(report)[f"dandi/{a.id}"]["action"] == "packed"
        assert [s["source"] for s in report["skipped"]] == [b.source]
        assert "busy" in report["skipped"][0]["why"]
        assert f"dandi/{b.id}" not in by_label(report)
        assert loose(b.ds) > 100 and state(b.ds) == b_before, "a busy source is not touched"
        text = a.run.ok("maintain", b.source)
        assert f"{b.source}: skipped, busy" in text
    finally:
        release.set()
        t.join(120)
        mirror.close()
    assert not errors, errors
    assert "sub-new/late.nwb" in git(b.ds, "ls-files")
    fsck_clean(a.ds)
    report = maintain_json(b.run, b.source)
    assert by_label(report)[f"dandi/{b.id}"]["action"] == "packed" and not report["skipped"]
    fsck_clean(b.ds)


# -- SIGKILL mid-repack ------------------------------------------------------------------------
def add_loose_blobs(repo: Path, n: int, size: int = 256 * 1024) -> None:
    """``n`` loose blobs written as git writes them, stored uncompressed (quick to write, slow to pack:
    git compresses them into the pack, long enough to be killed mid-way); unreferenced, as a
    killed writer's would be: a repack must keep them anyway."""
    objects = repo / ".git" / "objects"
    for _ in range(n):
        data = os.urandom(size)
        raw = b"blob %d\0" % len(data) + data
        h = sha1(raw).hexdigest()
        d = objects / h[:2]
        d.mkdir(exist_ok=True)
        (d / h[2:]).write_bytes(zlib.compress(raw, 0))


def packing_started(repo: Path) -> bool:
    """git pack-objects is writing its temporary pack: the repack is under way."""
    pack = repo / ".git" / "objects" / "pack"
    return pack.is_dir() and any(p.name.startswith(("tmp_pack_", ".tmp-")) for p in pack.iterdir())


def test_maintain_killed_mid_repack_leaves_everything_whole_and_a_rerun_finishes(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 2000})
    for k in range(SYNCS):
        change_and_sync(d, k)
    add_loose_blobs(d.ds, 40)
    before = state(d.ds)
    proc = subprocess.Popen(
        [sys.executable, "-m", "neuromirror", "--root", str(d.run.root), "maintain", d.source],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its git children in its process group: killed with it
    )
    deadline = time.monotonic() + 120
    while not packing_started(d.ds):
        assert proc.poll() is None, "maintain ended before the test could kill it mid-repack"
        assert time.monotonic() < deadline, "the repack never started"
        time.sleep(0.005)  # polling for the state above, not waiting a fixed time
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    fsck_clean(d.ds)
    assert state(d.ds) == before
    report = maintain_json(d.run, d.source)
    mine = by_label(report)[f"dandi/{d.id}"]
    assert mine["action"] == "packed" and mine["after"]["loose"] == 0
    fsck_clean(d.ds)
    assert state(d.ds) == before
    assert int(git(d.ds, "count-objects", "-v").split("in-pack: ")[1].split()[0]) > 40, "unreferenced kept too"


# -- reflogs: a year of hourly syncs logs every move of master and git-annex ------------------
def reflog_lines(repo: Path) -> dict[str, list[str]]:
    logs = repo / ".git" / "logs"

    def entries(f: Path) -> list[str]:  # git writes an empty message with or without its tab
        return [ln.rstrip("\t") for ln in f.read_text().splitlines()]

    return {str(f.relative_to(logs)): entries(f) for f in sorted(logs.rglob("*")) if f.is_file()}


def age_reflogs(repo: Path, old: int, days: int) -> None:
    """The first ``old`` entries of every reflog made ``days`` older, as a mirror synced for months has them
    (the time is the fifth field from the end of the entry's first half: ``... <email> SECONDS TZ``)."""
    for f in (repo / ".git" / "logs").rglob("*"):
        if not f.is_file():
            continue
        lines = f.read_text().splitlines(keepends=True)
        for i in range(min(old, len(lines))):
            head, tab, msg = lines[i].partition("\t")
            *rest, seconds, tz = head.rstrip("\n").split(" ")
            lines[i] = " ".join([*rest, str(int(seconds) - days * 86400), tz]) + tab + msg
            if not tab:
                lines[i] += "\n"
        f.write_text("".join(lines))


def test_old_reflog_entries_of_machine_commits_are_dropped_and_nothing_else(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 2000})
    assert reflog_lines(d.ds) == {}, "a dataset made today keeps no reflogs (issue 52)"
    git(d.ds, "config", "core.logAllRefUpdates", "true")  # as one made before did
    for k in range(4):
        change_and_sync(d, k)
    young = maintain_json(d.run, d.source)
    assert by_label(young)[f"dandi/{d.id}"]["reflog_dropped"] is None, "young reflogs: not even looked at"
    logs = reflog_lines(d.ds)
    assert {"HEAD", "refs/heads/master", "refs/heads/git-annex"} <= set(logs), logs.keys()
    age_reflogs(d.ds, 3, days=60)
    before = state(d.ds)

    dry = maintain_json(d.run, d.source, "--dry-run")
    assert by_label(dry)[f"dandi/{d.id}"]["action"] == "would trim reflogs"
    assert {k: len(v) for k, v in reflog_lines(d.ds).items()} == {k: len(v) for k, v in logs.items()}

    report = maintain_json(d.run, d.source)
    mine = by_label(report)[f"dandi/{d.id}"]
    assert mine["action"] == "reflogs trimmed" and mine["reflog_dropped"] == 3 * len(logs)
    after = reflog_lines(d.ds)
    for name, lines in logs.items():
        assert after[name] == lines[3:], f"{name}: only the three old entries dropped, the young ones kept"
    fsck_clean(d.ds)
    assert state(d.ds) == before, "every ref where it was, every key's locations unchanged"
    again = maintain_json(d.run, d.source)
    assert by_label(again)[f"dandi/{d.id}"]["action"] == "nothing"
    change_and_sync(d, 9)  # the mirror goes on
    fsck_clean(d.ds)
    assert len(reflog_lines(d.ds)["refs/heads/master"]) == len(after["refs/heads/master"]) + 1


# -- a RIA store published after every sync, cloned over dumb HTTP ----------------------------
def requests_during(served: Served, action) -> int:  # noqa: ANN001, F811
    served.log.seek(0, os.SEEK_END)
    start = served.log.tell()
    action()
    deadline = time.monotonic() + 10
    while True:  # http.server logs each request once it is answered: wait until the log is still
        size = os.fstat(served.log.fileno()).st_size
        time.sleep(0.2)
        if os.fstat(served.log.fileno()).st_size == size or time.monotonic() > deadline:
            break
    served.log.seek(start)
    return sum(1 for line in served.log.read().decode(errors="replace").splitlines() if '"GET ' in line)


def test_store_published_after_every_sync_clones_in_few_requests_once_maintained(
    dandi_archive,  # noqa: ANN001
    served: Served,  # noqa: F811
    tmp_path: Path,
) -> None:
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 2000})
    to = f"ria+file://{served.store}"
    for k in range(SYNCS):
        change_and_sync(d, k)
        d.run.ok("publish", d.source, "--to", to, "--public-url", served.url)
    clone = f"ria+{served.url}#~dandi/{d.id}"
    n_before = requests_during(served, lambda: sh(tmp_path, "datalad", "clone", clone, str(tmp_path / "c1")))
    assert n_before > 100, f"the premise: a clone of the unpacked store made {n_before} requests"

    # killed after the store's repack, before its info/packs was rewritten: dumb HTTP would miss the pack
    env = {**os.environ, "NEUROMIRROR_CRASH_AT": "maintain:repacked#2"}
    proc = subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(d.run.root), "maintain", d.source, "--to", to],
        env=env,
        capture_output=True,
    )
    assert proc.returncode == -signal.SIGKILL
    report = maintain_json(d.run, d.source, "--to", to)
    store_rows = [r for r in report["repositories"] if r["kind"] == "ria"]
    assert store_rows and store_rows[0]["action"] == "served info rewritten", store_rows
    assert all(r["after"] is None or r["after"]["loose"] == 0 for r in store_rows)
    dsid = git(d.ds, "config", "-f", ".datalad/config", "datalad.dataset.id").strip()
    fsck_clean(served.store / dsid[:3] / dsid[3:])

    n_after = requests_during(served, lambda: sh(tmp_path, "datalad", "clone", clone, str(tmp_path / "c2")))
    assert n_after < 100, f"a clone of the maintained store made {n_after} requests"
    assert refs(tmp_path / "c2")["refs/remotes/origin/git-annex"] == refs(d.ds)["refs/heads/git-annex"]
    assert git(tmp_path / "c2", "rev-parse", "HEAD") == git(d.ds, "rev-parse", "HEAD")

    # one more sync published: a handful of loose objects in the store, far below the dataset's 100
    change_and_sync(d, SYNCS)
    d.run.ok("publish", d.source, "--to", to, "--public-url", served.url)
    report = maintain_json(d.run, d.source, "--to", to)
    mine, store_rows = by_label(report)[f"dandi/{d.id}"], [r for r in report["repositories"] if r["kind"] == "ria"]
    assert mine["action"] == "nothing", "the mirror's own dataset waits for 100 loose objects"
    assert store_rows[0]["action"] == "packed" and 0 < store_rows[0]["before"]["loose"] < 100, store_rows
    assert store_rows[0]["after"]["loose"] == 0 and store_rows[0]["after"]["packs"] == 1, "served: one pack"
    fsck_clean(served.store / dsid[:3] / dsid[3:])
    n_last = requests_during(served, lambda: sh(tmp_path, "datalad", "clone", clone, str(tmp_path / "c3")))
    assert n_last < 100, f"a clone after one more publish made {n_last} requests"
    assert git(tmp_path / "c3", "rev-parse", "HEAD") == git(d.ds, "rev-parse", "HEAD")


# -- the service maintains on its own ----------------------------------------------------------
def test_the_service_keeps_the_dataset_and_its_store_packed(
    dandi_archive,  # noqa: ANN001
    served: Served,  # noqa: F811
    tmp_path: Path,
) -> None:
    from helpers.service import runs, serve, wait_for

    ident = dandi_archive.create_dandiset(name="service soak")
    dandi_archive.put_asset(ident, "sub-01/a.nwb", b"a" * 2000)
    root, to = tmp_path / "mirror", f"ria+file://{served.store}"
    cfg = tmp_path / "m.yaml"
    cfg.write_text(
        "defaults:\n"
        "  schedule: {interval: 1s}\n"
        f'  options: {{dandi_api: "{dandi_archive.api_url}"}}\n'
        f'  publish: {{to: "{to}"}}\n'
        f'sources:\n  - spec: "dandi:{ident}"\n'
    )
    ds = root / "dandi" / ident

    def store_copy() -> Path:
        return (served.store / "alias" / "dandi" / ident).resolve()

    def packed_runs() -> list[dict]:
        reports = [json.loads(r["report"] or "{}") for r in runs(root, f"dandi:{ident}")]
        return [r["maintain"] for r in reports if r.get("maintain")]

    with serve(root, cfg) as svc:
        for k in range(SYNCS + 4):  # each cycle: a change, synced and published by the service
            dandi_archive.put_asset(ident, f"sub-new/f{k:03d}.nwb", f"cycle {k}".encode() * 40)
            wait_for(
                lambda k=k: (
                    (ds / f"sub-new/f{k:03d}.nwb").is_symlink()
                    and store_copy().is_dir()
                    and refs(store_copy()).get("refs/heads/master") == refs(ds).get("refs/heads/master")
                ),
                120,
                f"cycle {k} synced and published",
                svc,
            )
        wait_for(packed_runs, 60, "a run whose maintenance packed something", svc)
    packed = [label for m in packed_runs() for label in m["packed"]]
    assert f"dandi/{ident}" in packed and any(label.startswith(to) for label in packed), packed
    # at any time at most one threshold and one cycle's objects loose; everything whole
    assert loose(ds) < 150 and loose(store_copy()) < 150
    fsck_clean(ds)
    fsck_clean(store_copy())
