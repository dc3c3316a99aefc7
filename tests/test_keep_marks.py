"""A keep rerun takes an unchanged version from its mark, and only while nothing says a copy was lost.

Used as a lab would: a dandiset mirrored from the stand-in, kept into two directory stores (read
back through git-annex), then kept again; the copies' records changed with git-annex itself or by
``verify --stores`` finding a flipped byte, and kept again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import git
from helpers.keep import key_of, lose_blobs, make_dandiset, whereis

OTHER = "5f2c4b7e-0000-4000-8000-00000000cafe"  # a repository that is no store of the lab's


def _keep(d, *stores: Path, copies: int = 2) -> tuple[int, dict, str]:  # noqa: ANN001
    args = [a for s in stores for a in ("--to", str(s))]
    code, out, err = d.run("keep", d.spec, *args, "--copies", str(copies), "--json")
    return code, json.loads(out), err


def _marked(report: dict) -> list[int]:
    """Versions taken from their marks, per store (one store: its report is the whole report)."""
    return [s["marked"]["versions"] for s in report.get("stores", [report])]


def test_a_no_op_rerun_takes_the_version_from_its_marks_and_a_harmless_branch_change_keeps_them(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 9_000, "sub-02/b.nwb": 3_000})
    one, two = tmp_path / "store-one", tmp_path / "store-two"
    code, first, err = _keep(d, one, two)
    assert code == 0, err
    assert _marked(first) == [0, 0] and first["counts_marked"] == 0
    assert [s["transferred"]["files"] for s in first["stores"]] == [2, 2]

    code, again, err = _keep(d, one, two)
    assert code == 0, err
    assert _marked(again) == [1, 1] and again["counts_marked"] == 1
    for s in again["stores"]:
        (v,) = s["versions"]
        assert v["from_mark"] and (v["files"], v["already"], v["kept"], v["recorded"]) == (2, 2, 0, 0)
        assert v["bytes"] == v["already_bytes"] == 12_000 and s["transferred"]["files"] == 0
    (counted,) = again["counts"]
    assert counted["from_mark"] and counted["ok"] and counted["enough"] == {"files": 2, "bytes": 12_000}
    assert counted["stores"] == {s["store"]["uuid"]: 2 for s in first["stores"]}
    text = d.run.ok("keep", d.spec, "--to", str(one), "--to", str(two), "--copies", "2")
    assert "2 file(s)" in text and "0 kept" in text and "2 already in the store" in text

    # the branch moves, but no store lost anything (a repository that is no store got a copy): still marked
    key = key_of(d.ds, "sub-01/a.nwb", d.version)
    before = git(d.ds, "rev-parse", "git-annex").strip()
    git(d.ds, "annex", "setpresentkey", key, OTHER, "1")  # the mirror's datasets: into git-annex's journal
    code, moved, err = _keep(d, one, two)
    assert code == 0, err
    assert git(d.ds, "rev-parse", "git-annex").strip() != before  # committed by the keep, then read
    assert OTHER in git(
        d.ds, "show", f"git-annex:{git(d.ds, 'annex', 'examinekey', '--format=${hashdirlower}${key}.log', key)}"
    )
    assert _marked(moved) == [1, 1] and moved["counts_marked"] == 1
    assert json.loads(d.run.ok("status", "--copies", d.spec, "--json"))["versions"][0]["enough"]["files"] == 2


def test_a_keep_into_a_new_store_leaves_the_older_stores_marks_holding(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    """A lab adds a store: its keep writes its own lines into remote.log and uuid.log of every dataset, which
    lowers nothing another store's mark says; the count over every store is read again by that keep."""
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 4_000, "sub-02/b.nwb": 2_000})
    one, two = tmp_path / "store-one", tmp_path / "store-two"
    code, first, err = _keep(d, one, copies=1)
    assert code == 0 and first["transferred"]["files"] == 2, err
    code, new, err = _keep(d, two, copies=1)  # a new store: remote.log changed
    assert code == 0 and new["transferred"]["files"] == 2, err
    code, again, err = _keep(d, one, copies=1)
    assert code == 0, err
    assert _marked(again) == [1] and again["transferred"]["files"] == 0
    assert new["counts_marked"] == 0 and again["counts_marked"] == 1  # counted by the keep that added a store
    assert sorted(again["counts"][0]["stores"].values()) == [2, 2]


def test_a_copy_whose_record_git_annex_dropped_is_recorded_again_by_the_rerun(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 8_000, "sub-01/b.nwb": 5_000})
    one, two = tmp_path / "store-one", tmp_path / "store-two"
    code, first, err = _keep(d, one, two)
    assert code == 0, err
    uuid_one = first["stores"][0]["store"]["uuid"]
    assert _marked(_keep(d, one, two)[1]) == [1, 1]

    # git-annex itself says store one no longer has a's bytes
    key = key_of(d.ds, "sub-01/a.nwb", d.version)
    git(d.ds, "annex", "setpresentkey", key, uuid_one, "0")
    assert len([w for w in whereis(d.ds, key) if w.startswith("neuromirror store at")]) == 1
    code, rerun, err = _keep(d, one, two)
    assert code == 0, err
    assert _marked(rerun) == [0, 1]  # store one's mark does not hold; store two lost nothing
    (v,) = rerun["stores"][0]["versions"]
    assert not v["from_mark"] and v["recorded"] == 1 and v["already"] == 2
    # counted after store one's record came back: the branch lost nothing since the count mark, which holds
    assert rerun["counts"][0]["enough"]["files"] == 2 and rerun["counts"][0]["ok"]
    assert len([w for w in whereis(d.ds, key) if w.startswith("neuromirror store at")]) == 2

    code, settled, err = _keep(d, one, two)
    assert code == 0, err
    assert _marked(settled) == [1, 1] and settled["counts_marked"] == 1

    # reindex makes the source's version rows again: its marks go with them, the next keep makes them again
    d.run.ok("reindex")
    code, full, err = _keep(d, one, two)
    assert code == 0, err
    assert _marked(full) == [0, 0] and full["counts_marked"] == 0 and full["counts"][0]["ok"]
    assert [s["transferred"]["files"] for s in full["stores"]] == [0, 0]
    assert _marked(_keep(d, one, two)[1]) == [1, 1]


def test_a_flipped_byte_found_by_verify_is_not_taken_from_the_mark(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror.annex.keys import hashdir_lower

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 7_000, "sub-02/b.nwb": 2_000})
    store = tmp_path / "store"
    code, first, err = _keep(d, store, copies=1)
    assert code == 0, err
    assert _marked(_keep(d, store, copies=1)[1]) == [1]

    # the archive's bytes are gone and the store's copy of a gets a flipped byte: nothing can repair it
    lose_blobs(d, ["sub-01/a.nwb"])
    key = key_of(d.ds, "sub-01/a.nwb", d.version)
    path = store / hashdir_lower(key) / key / key
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    code, out, err = d.run("verify", "--stores", d.spec, "--json")
    assert code == 1
    (bad,) = json.loads(out)["bad"]
    assert bad["key"] == key and not bad["repaired"]

    code, rerun, err = _keep(d, store, copies=1)
    assert code == 1  # the version is read in full: a's copy is gone and its archive bytes too
    assert _marked(rerun) == [0] and rerun["counts_marked"] == 0
    (v,) = rerun["versions"]
    assert not v["from_mark"] and [f["path"] for f in v["failed"]] == ["sub-01/a.nwb"]
    (counted,) = rerun["counts"]
    assert counted["none"]["files"] == 1 and [a["key"] for a in counted["at_risk"]] == [key]


def test_the_changes_between_two_branch_commits_are_read_a_group_of_directories_at_a_time(
    tmp_path: Path, monkeypatch
) -> None:  # noqa: ANN001
    """What a mark asks of a moved branch (a store lost a key, a store gained one, a top-level file changed),
    read two top-level directories at a time here (64 in a keep of 10^6 keys): the answer is the whole
    branch's, and an unreadable commit holds no mark."""
    from helpers.annex import _annex_repo
    from neuromirror.annex.keys import log_path
    from neuromirror.annex.logs import BRANCH
    from neuromirror.keep import marks
    from neuromirror.store import record
    from neuromirror.store.directory import DirectoryStore

    monkeypatch.setattr(marks, "_DIRS_A_DIFF", 2)
    repo = tmp_path / "ds"
    keys = _annex_repo(repo, 9)
    a, b = DirectoryStore(tmp_path / "a"), DirectoryStore(tmp_path / "b")
    record.record_present(repo, a, keys)
    record.record_present(repo, b, keys[1:])
    head = lambda: git(repo, "rev-parse", BRANCH).strip()  # noqa: E731
    c0 = head()
    assert len({log_path(k)[:3] for k in keys}) > 2 * marks._DIRS_A_DIFF  # several groups read

    record.record_absent(repo, a.identity.uuid, keys[-1:])  # a lost the last key
    record.record_present(repo, b, keys[:1])  # b gained the first
    c1 = head()
    changes = marks.Changes.between(repo, c0, c1)
    assert changes.ok and not changes.top
    assert changes.lost == {a.identity.uuid} and changes.moved == {a.identity.uuid, b.identity.uuid}

    c = DirectoryStore(tmp_path / "c")
    record.ensure_remote(repo, c)  # remote.log and uuid.log changed: by c's lines only
    c2 = head()
    added = marks.Changes.between(repo, c1, c2)
    assert added.ok and not added.top and added.retold == {c.identity.uuid} and not added.moved
    git(repo, "annex", "describe", a.identity.uuid, "store a, renamed")  # uuid.log: a's own line
    c3 = head()
    renamed = marks.Changes.between(repo, c2, c3)
    assert renamed.ok and not renamed.top and renamed.retold == {a.identity.uuid}
    git(repo, "annex", "untrust", a.identity.uuid)  # trust.log: read as a change for every store
    assert marks.Changes.between(repo, c3, head()).top
    assert not marks.Changes.between(repo, "1" * 40, c1).ok


def test_a_version_past_the_flush_is_recorded_as_it_goes_and_marked_whole(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch,  # noqa: ANN001
) -> None:
    """A version of 10^6 Zarr chunks is recorded a batch of keys at a time (the run held every key's name
    until the end); the run's key sets and a packed store's map go to fingerprints past a size.  All three
    made small here: every key is recorded where git-annex looks, the version gets its mark, and a rerun
    takes it from there and copies nothing."""
    from neuromirror.keep import inflight, keyset, versions
    from neuromirror.store.packs import places

    for module, name in ((versions, "FLUSH"), (keyset, "COMPACT_MIN"), (places, "COMPACT_MIN")):
        monkeypatch.setattr(module, name, 2)
    monkeypatch.setattr(inflight, "BATCH", 2)
    monkeypatch.setattr(versions, "BATCH", 2)
    monkeypatch.setattr(versions, "WINDOW", 1)  # with -J 1: a copy settled before the next batch is read
    sizes = {f"sub-0{i}/f{i}.nwb": 1_000 + 37 * i for i in range(7)}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    commits = int(git(d.ds, "rev-list", "--count", "git-annex").strip())
    stores = (
        (f"pack+file://{tmp_path / 'packed'}", ["--pack-size", "1M"], "neuromirror packed store at"),
        (str(tmp_path / "plain"), [], "neuromirror store at"),
    )
    for url, more, described in stores:
        code, out, err = d.run("keep", d.spec, "--to", url, *more, "-J", "1", "--json")
        assert code == 0, err
        (v,) = json.loads(out)["versions"]
        assert (v["files"], v["kept"], v["recorded"], v["failed"]) == (7, 7, 7, [])
        for path in sizes:
            kept = whereis(d.ds, key_of(d.ds, path, d.version))
            assert any(w.startswith(described) for w in kept), kept
        code, out, err = d.run("keep", d.spec, "--to", url, "--json")
        assert code == 0, err
        rerun = json.loads(out)
        assert rerun["marked"]["versions"] == 1 and rerun["transferred"]["files"] == 0
    # a commit on the branch per flush (2 keys each), not one per version
    assert int(git(d.ds, "rev-list", "--count", "git-annex").strip()) - commits >= 2 * 3
    status = json.loads(d.run.ok("status", "--copies", d.spec, "--json"))
    assert status["versions"][0]["enough"]["files"] == 7  # both stores hold every file, counted batch by batch
