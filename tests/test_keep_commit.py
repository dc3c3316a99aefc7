"""``SPEC@COMMIT`` for ``pin``, ``lock``, ``keep``, ``verify`` and ``cite``: an older draft state kept by its commit.

A dandiset's Zarr is rewritten in place upstream (one chunk, same key, a new S3 version): the
draft moves on and no label names the state before any more.  A lab that read the old state
names it by its mirror commit, keeps it into its store with no lock written while it was
current, and later — after every S3 version of the Zarr and of the blobs is deleted from the
stand-in — gets the old bytes back through git-annex from the store.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git
from helpers.keep import _delete_all_versions
from helpers.read import H5, OTHER, ZARR, Mirrored, zarr_files
from neuromirror.dataset.states import UNPUBLISHED
from neuromirror.index.db import Index


def lose_everything(m: Mirrored) -> None:
    """Every S3 version of the dandiset's blobs and of its Zarr's objects, gone (the old chunk with them)."""
    client = m.archive.s3.client()
    for path in (H5, OTHER):
        blob = m.archive.asset_at(m.id, path).blob
        _delete_all_versions(client, blob.bucket, blob.key)
    z = m.archive.asset_at(m.id, ZARR).zarr
    _delete_all_versions(client, z.bucket, f"zarr/{z.zarr_id}/")


def test_an_older_draft_state_is_pinned_kept_and_read_back_by_its_commit(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    m = Mirrored(dandi_archive, tmp_path / "mirror", own_bytes=True)  # its blobs are deleted below
    old_chunk = zarr_files(m.old)["0.0"]
    short = m.first[:10]
    spec = f"{m.source}@{short}"

    pin = json.loads(m.run.ok("pin", spec, "--json"))
    assert (pin["commit"], pin["version"], pin["kind"], pin["recorded_as"]) == (m.first, short, "draft", "draft")
    assert pin["state"] == UNPUBLISHED and pin["tag"] is None and pin["doi"] is None
    assert json.loads(m.run.ok("pin", m.source + "@draft", "--json"))["commit"] == m.second  # the label moved on
    assert "commit" not in json.loads(m.run.ok("pin", m.source + "@draft", "--json")).get("state", "")

    text = m.run.ok("cite", spec)
    assert m.first in text and "unpublished state" in text and "not a published version" in text
    assert f"neuromirror get {spec}" in text
    cited = json.loads(m.run.ok("cite", spec, "--json"))
    assert (cited["commit"], cited["version"], cited["state"]) == (m.first, short, UNPUBLISHED)

    store = tmp_path / "store"
    code, out, err = m.run("keep", spec, "--to", str(store), "--json")
    assert code == 0, out + err
    (v,) = json.loads(out)["versions"]
    assert (v["version"], v["commit"], v["kind"], v["failed"], v["skipped"]) == (short, m.first, "draft", [], [])
    assert v["kept"] >= 3  # the two blobs and the Zarr's chunks (its small JSON may be in git)
    code, out, err = m.run("verify", spec, "--kept", "--store", str(store), "--json")
    assert code == 0, out + err
    checked = json.loads(out)
    assert checked["commit"] == m.first and checked["ok"]

    lock = tmp_path / "old.lock"
    m.run.ok("lock", spec, "-o", str(lock))
    text = lock.read_text()
    assert f'version = "{short}"' in text and f'commit = "{m.first}"' in text and str(store) in text
    code, out, err = m.run("keep", "--lock", str(lock), "--to", str(store), "--json")
    assert code == 0 and json.loads(out)["versions"][0]["commit"] == m.first, out + err  # the lock names it too

    lose_everything(m)
    # reproduce clones the dataset and the Zarr's (git-annex enables the store in each) and gets every key
    code, out, err = m.run("reproduce", str(lock), "--to", str(tmp_path / "work"), "--allow-ip", "all")
    assert code == 0, out + err
    work = tmp_path / "work" / "dandi" / m.id
    assert (work / ZARR / "0.0").read_bytes() == old_chunk  # the state before the rewrite, from the store
    assert (work / H5).read_bytes() == m.h5 and (work / OTHER).read_bytes() == m.other


def test_unknown_commits_are_one_line_errors(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from helpers.keep import make_dandiset

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 1_000})
    bad = f"{d.source}@deadbeef00"
    for args in (
        ("pin", bad),
        ("cite", bad),
        ("lock", bad),
        ("verify", bad),
        ("keep", bad, "--to", str(tmp_path / "s")),
    ):
        code, out, err = d.run(*args)
        assert code == 2, (args, out, err)
        assert "deadbeef00" in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "s").exists()  # nothing made by a refused keep
    # a commit of the dataset that no sync recorded as a state (the dataset's first): said so
    root = git(d.ds, "rev-list", "--max-parents=0", "HEAD").split()[0]
    code, out, err = d.run("pin", f"{d.source}@{root[:10]}")
    assert code == 2 and "no sync recorded" in err, err
    # a short commit two recorded states share
    index = Index(d.run.root / ".neuromirror" / "index.sqlite")
    for tail in ("0", "1"):
        index.record_version(
            d.source, label="draft", kind="draft", commit="abcdef1" + tail * 33, tag=None, remote_modified=None,
            date=None, entries=[],
        )  # fmt: skip
    index.close()
    code, out, err = d.run("keep", f"{d.source}@abcdef1", "--to", str(tmp_path / "s"))
    assert code == 2 and "ambiguous" in err and len(err.strip().splitlines()) == 1, err
    # a published version's commit is that version
    commit = json.loads(d.run.ok("pin", d.spec, "--json"))["commit"]
    by_commit = json.loads(d.run.ok("pin", f"{d.source}@{commit[:8]}", "--json"))
    assert by_commit["version"] == d.version and "state" not in by_commit


def test_verify_stores_re_reads_and_repairs_a_copy_kept_for_an_older_draft_state(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """A copy kept for an older draft state only (its commit named) is a copy like any other: ``verify --stores
    SPEC`` — no version named, as the service's rolling check asks — re-reads it, names it when its bytes
    are wrong, and repairs it (from the archive's pinned noncurrent version)."""
    from helpers.keep import _flip_a_byte

    m = Mirrored(dandi_archive, tmp_path / "mirror")
    old_chunk = zarr_files(m.old)["0.0"]
    store = tmp_path / "store"
    m.run.ok("keep", f"{m.source}@{m.first[:10]}", "--to", str(store))
    (copy,) = [p for p in store.glob("*/*/*/*") if p.is_file() and p.read_bytes() == old_chunk]
    _flip_a_byte(copy)  # the old state's chunk: in no published version, not in the latest draft

    code, out, err = m.run("verify", "--stores", m.source, "--json")
    assert code == 1, out + err  # named, after repairing
    report = json.loads(out)
    (bad,) = report["bad"]
    assert (bad["path"], bad["key"], bad["repaired"]) == (f"{ZARR}/0.0", copy.name, True), bad
    assert copy.read_bytes() == old_chunk
    code, out, err = m.run("verify", "--stores", m.source, "--json")
    assert code == 0 and json.loads(out)["checked"] == report["checked"], out + err
