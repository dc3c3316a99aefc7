"""BOSS content kept at sync time (issue 23): with a store, every BOSS version outlives upstream edits.

The BOSS keeps no history: after an annotation edit, an old version's chunk cannot be fetched from
it any more (``docs/boss.md``).  ``neuromirror sync --store DIR`` keeps every chunk the sync reads
(and so hashes anyway) in the store and records it in the dataset's git-annex branch, so a clone's
``git annex get`` of the old version falls back to the store.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conftest import git
from helpers.boss import CHUNK_ARG, SPEC, C, E, Runner, chunk_bytes, clone, cutouts, get, key_of
from neuromirror.standins.boss.server import BossStandIn

pytestmark = pytest.mark.usefixtures("hermetic")  # every test: an empty HOME, the stand-in's token

CHANGED = "annotation.ome.zarr/0/0/0/0"


def _store_uuid(ds: Path, store: Path) -> str:
    """The store's uuid, as the dataset's git-annex branch describes it."""
    return next(line.split()[0] for line in git(ds, "show", "git-annex:uuid.log").splitlines() if str(store) in line)


def _edit(boss: BossStandIn):  # noqa: F811
    old = boss.volume(C, E, "annotation").copy()
    edited = old.copy()
    edited[2:6, 3:20, 4:30] = 424242424242
    boss.set_volume(C, E, "annotation", edited)
    return old, edited


def test_old_version_comes_from_the_store_after_an_upstream_edit(boss: BossStandIn, tmp_path: Path) -> None:  # noqa: F811
    store = tmp_path / "keep"
    cli = Runner(tmp_path / "mirror", boss.url)
    cli.ok("sync", SPEC, "--chunk", CHUNK_ARG, "--store", str(store))
    ds = cli.ds()
    old_key = key_of(ds, CHANGED)
    kept = {p.name for p in store.rglob("SHA256E-*") if p.is_file()}
    assert old_key in kept
    # every annexed chunk of the version is in the store, and the branch says so
    annexed = git(ds, "annex", "find", "--include=*", "--format=${key}\\n").split()
    assert annexed and set(annexed) <= kept
    store_uuid = _store_uuid(ds, store)
    assert store_uuid in git(ds, "annex", "whereis", "--key", old_key)

    old, edited = _edit(boss)
    boss.clear_request_log()
    out = cli.ok("sync", SPEC, "--chunk", CHUNK_ARG, "--store", str(store))
    assert "1 new version(s)" in out
    assert set(cutouts(boss)) == {"annotation"}  # images are not read again
    tags = git(ds, "tag", "-l").split()
    assert len(tags) == 2
    new_key = key_of(ds, CHANGED)
    assert new_key != old_key and new_key in {p.name for p in store.rglob("SHA256E-*")}

    work = clone(ds, tmp_path / "clone")
    env = {"NEUROMIRROR_BOSS_URL": boss.url}
    # the new version: the new bytes (from the BOSS, the cheaper remote)
    proc = get(work, CHANGED, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / CHANGED).read_bytes() == chunk_bytes(edited, 0, 0, 0)
    # the old version: the BOSS serves other bytes now, the store has the old cutout
    git(work, "checkout", "-q", tags[0])
    assert store_uuid in git(work, "annex", "whereis", CHANGED)  # the clone knows the store by itself
    proc = get(work, CHANGED, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / CHANGED).read_bytes() == chunk_bytes(old, 0, 0, 0)
    assert (work / CHANGED).read_bytes() != chunk_bytes(edited, 0, 0, 0)
    # the index is untouched by the store: no row names it
    with sqlite3.connect(cli.index) as db:
        assert db.execute("SELECT count(*) FROM versions WHERE source=?", [SPEC]).fetchone()[0] == 2


def test_store_from_the_environment(
    boss: BossStandIn,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = tmp_path / "env-keep"
    monkeypatch.setenv("NEUROMIRROR_STORE", str(store))
    cli = Runner(tmp_path / "mirror", boss.url)
    cli.ok("sync", SPEC, "--chunk", CHUNK_ARG)
    assert key_of(cli.ds(), CHANGED) in {p.name for p in store.rglob("SHA256E-*")}


def test_without_a_store_the_old_chunk_is_lost(boss: BossStandIn, tmp_path: Path) -> None:  # noqa: F811
    cli = Runner(tmp_path / "mirror", boss.url)
    cli.ok("sync", SPEC, "--chunk", CHUNK_ARG)
    ds = cli.ds()
    assert "directory=" not in git(ds, "show", "git-annex:remote.log")
    _edit(boss)
    cli.ok("sync", SPEC, "--chunk", CHUNK_ARG)
    tags = git(ds, "tag", "-l").split()
    work = clone(ds, tmp_path / "clone")
    git(work, "checkout", "-q", tags[0])
    proc = get(work, CHANGED, env={"NEUROMIRROR_BOSS_URL": boss.url})
    assert proc.returncode != 0
    assert "upstream data changed since this version was mirrored" in proc.stdout + proc.stderr
    assert not (work / CHANGED).exists()  # never wrong bytes


def test_reread_keeps_chunks_an_earlier_sync_knew(boss: BossStandIn, tmp_path: Path) -> None:  # noqa: F811
    """A store named after the first sync: known image chunks are not read (nor kept) unless ``--reread``."""
    store = tmp_path / "keep"
    cli = Runner(tmp_path / "mirror", boss.url)
    cli.ok("sync", SPEC, "--chunk", CHUNK_ARG)
    ds = cli.ds()
    head = git(ds, "rev-parse", "HEAD").strip()
    image = "image8.ome.zarr/0/0/0/0"
    cli.ok("sync", SPEC, "--chunk", CHUNK_ARG, "--store", str(store))  # unchanged: annotations only
    kept = {p.name for p in store.rglob("SHA256E-*")}
    assert key_of(ds, CHANGED) in kept and key_of(ds, image) not in kept
    store_uuid = _store_uuid(ds, store)
    assert store_uuid in git(ds, "annex", "whereis", "--key", key_of(ds, CHANGED))  # recorded without a commit
    out = cli.ok("sync", SPEC, "--chunk", CHUNK_ARG, "--store", str(store), "--reread")
    assert "unchanged" in out and git(ds, "rev-parse", "HEAD").strip() == head
    annexed = git(ds, "annex", "find", "--include=*", "--format=${key}\\n").split()
    assert set(annexed) <= {p.name for p in store.rglob("SHA256E-*")}
    assert store_uuid in git(ds, "annex", "whereis", "--key", key_of(ds, image))
