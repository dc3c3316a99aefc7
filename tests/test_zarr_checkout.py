"""A Zarr's dataset on the mirror host holds its top-level files only (issues 40, 52): the objects are in git.

A cold mirror of 10^6 Zarr objects spent most of its CPU making 10^6 symbolic links nobody reads
on the host, and then rewrote an index entry per object at every change
(:mod:`neuromirror.dataset.sparse`).  A user sees it here as they would: the Zarr datasets written
directly and through the annex writer are in git's cone mode with a sparse index (one entry per
top-level directory) and clean, stay so when they change, clone whole with the bytes the archive
has; a dataset a user made whole stays whole; ``NEUROMIRROR_ZARR_CHECKOUT=full`` makes them whole
from the start; a wrong value is a one-line error that writes nothing.
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import CLI, git
from helpers.dandi_full import T0, get, run, user_env
from neuromirror.engine.zarr import dataset as zarr_dataset

SMALL = {".zattrs": b"{}", "0/.zarray": b'{"zarr_format": 2}', "0/0/0": b"small chunk 0", "0/0/1": b"small chunk 1"}
#: above the (lowered) direct-write limit: made by fast_init, committed through git fast-import + read-tree
LARGE = {
    ".zgroup": b'{"zarr_format": 2}',
    "0/.zattrs": b"{}",
    **{f"0/{i // 4}/{i % 4}": f"large chunk {i}\n".encode() for i in range(12)},
}


def layout(zds: Path) -> tuple[list[str], dict[str, str]]:
    """What the work tree holds (below .git excluded) and git's flag per file of HEAD (H, S)."""
    files = sorted(str(p.relative_to(zds)) for p in zds.rglob("*") if ".git" not in p.relative_to(zds).parts)
    flags = {line[2:]: line[0] for line in git(zds, "ls-files", "-v").splitlines()}
    return files, flags


def index_entries(zds: Path) -> list[str]:
    """The index as it is on disk: with a sparse index, a directory left out is one entry ("0/")."""
    return git(zds, "ls-files", "--sparse").splitlines()


def test_zarr_datasets_are_sparse_on_the_host_and_whole_in_a_clone(
    cli: CLI, dandi_archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    monkeypatch.setattr(zarr_dataset, "DIRECT_MAX", 5)
    monkeypatch.setattr(zarr_dataset, "SPARSE_DIRECT_MAX", 5)
    a = dandi_archive
    ident = a.create_dandiset(name="sparse zarrs", created=T0)
    small = a.asset(a.add_zarr_asset(ident, "small.zarr", SMALL, when=T0)).zarr.zarr_id
    large_aid = a.add_zarr_asset(ident, "large.zarr", LARGE, when=T0)
    large = a.asset(large_aid).zarr.zarr_id
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    ds = cli.root / "dandi" / ident
    for name, files in (("small.zarr", SMALL), ("large.zarr", LARGE)):
        zds = ds / name
        tree, flags = layout(zds)
        # the top-level files are checked out, nothing below; the index has no entry per object
        shown = sorted(rel for rel in files if "/" not in rel)
        assert tree == sorted([".gitattributes", *shown])
        assert all(flags[rel] == ("H" if rel in shown else "S") for rel in files)
        assert index_entries(zds) == sorted([".datalad/", ".gitattributes", "0/", *shown])
        assert git(zds, "status", "--porcelain") == "" and git(zds, "fsck", "--strict", "--no-dangling") == ""
        # DataLad still knows the dataset: its id is in .git/config (its local scope), as committed
        assert (
            git(zds, "config", "datalad.dataset.id").strip()
            == git(zds, "config", "--blob", "HEAD:.datalad/config", "datalad.dataset.id").strip()
        )
        # what the mirror wrote is what git's own sparse checkout makes of the same patterns
        git(zds, "read-tree", "-mu", "HEAD")
        assert layout(zds) == (tree, flags) and index_entries(zds) == sorted(
            [".datalad/", ".gitattributes", "0/", *shown]
        )
        assert git(zds, "status", "--porcelain") == ""
    assert git(ds, "status", "--porcelain") == ""

    # a user makes the large one whole on the host; both change upstream
    git(ds / "large.zarr", "sparse-checkout", "disable")
    later = T0 + timedelta(days=1)
    a.modify_zarr(small, put={"0/1/0": b"small added"}, delete=["0/0/1"], when=later)
    a.modify_zarr(large, put={"0/9/9": b"large added"}, delete=["0/0/0"], when=later)
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    tree, flags = layout(ds / "small.zarr")
    assert [rel for rel in tree if rel.startswith("0")] == []
    assert flags["0/1/0"] == "S" and "0/0/1" not in flags
    assert all(e.endswith("/") or "/" not in e for e in index_entries(ds / "small.zarr")), "the index stays sparse"
    assert (ds / "large.zarr" / "0/9/9").is_symlink() and not (ds / "large.zarr" / "0/0/0").exists()
    for zds in (ds / "small.zarr", ds / "large.zarr"):
        assert git(zds, "status", "--porcelain") == ""

    # a clone is whole, with the archive's bytes
    env = user_env(a)
    work = tmp_path / "work"
    p = run(["datalad", "clone", str(ds), str(work)], env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    p = get(work, env, "-r", "small.zarr", "large.zarr")
    assert p.returncode == 0, p.stdout + p.stderr
    assert (work / "small.zarr" / "0/1/0").read_bytes() == b"small added"
    assert (work / "large.zarr" / "0/9/9").read_bytes() == b"large added"
    assert (work / "large.zarr" / "0/2/3").read_bytes() == LARGE["0/2/3"]


def test_full_checkout_on_request_and_a_wrong_value_refused(
    cli: CLI, dandi_archive, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    a = dandi_archive
    ident = a.create_dandiset(name="whole zarrs", created=T0)
    a.add_zarr_asset(ident, "w.zarr", SMALL, when=T0)
    monkeypatch.setenv("NEUROMIRROR_ZARR_CHECKOUT", "everything")
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code != 0
    assert "NEUROMIRROR_ZARR_CHECKOUT='everything': expected 'sparse' or 'full'" in err + out
    zds = cli.root / "dandi" / ident / "w.zarr"
    assert not zds.exists()
    monkeypatch.setenv("NEUROMIRROR_ZARR_CHECKOUT", "full")
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    tree, flags = layout(zds)
    assert {"0/0/0", "0/0/1", "0/.zarray", ".zattrs"} <= set(tree) and set(flags.values()) == {"H"}
    assert subprocess.run(["git", "config", "core.sparseCheckout"], cwd=zds).returncode == 1  # not set
    assert git(cli.root / "dandi" / ident, "status", "--porcelain") == ""


def disk_state(zds: Path) -> dict[str, tuple[int, int, int]]:
    """Every file below a dataset (its .git included): path -> (inode, mtime ns, size)."""
    out = {}
    for p in zds.rglob("*"):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            out[str(p.relative_to(zds))] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def test_a_two_object_change_rewrites_nothing_that_grows_with_the_zarr(cli: CLI, dandi_archive) -> None:  # noqa: ANN001
    """Issue 52: on the host a Zarr of 5,000 objects is its top level and git's objects; a change of two of
    them writes new small files (a pack, refs, logs) and rewrites none whose size is per object."""
    n = 5_000
    a = dandi_archive
    ident = a.create_dandiset(name="a zarr of 5,000", created=T0)
    files = {".zgroup": b'{"zarr_format": 2}', **{f"0/{i // 100}/{i % 100}": f"c{i}".encode() for i in range(n - 1)}}
    zarr_id = a.asset(a.add_zarr_asset(ident, "big.zarr", files, when=T0)).zarr.zarr_id
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    zds = cli.root / "dandi" / ident / "big.zarr"
    assert git(zds, "ls-files", "--sparse").split() == [".datalad/", ".gitattributes", ".zgroup", "0/"]
    before = disk_state(zds)
    a.modify_zarr(zarr_id, put={"0/0/0": b"changed", "0/99/99": b"added"}, when=T0 + timedelta(days=1))
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    assert git(zds, "show", "HEAD:0/99/99").strip().startswith("../../")  # the change is committed (a link)
    after = disk_state(zds)
    written = {rel: st[2] for rel, st in after.items() if before.get(rel) != st}
    assert written, "the change wrote something"
    # a file that grows with the Zarr holds >= a few bytes per object: 5,000 objects make it >= 40 kB.
    # git's objects are new files, never rewritten: the change's commit, its trees and the git-annex
    # branch's (whose root tree lists up to 4,096 hash directories, git-annex's layout, at any size)
    objects = [rel for rel in written if rel.startswith(".git/objects/")]
    assert len(objects) <= 24, objects
    grown = {rel: size for rel, size in written.items() if size >= 8 * n and rel not in objects}
    assert not grown, f"rewritten files whose size grows with the Zarr: {grown}"
    assert git(zds, "status", "--porcelain") == ""


OLD_PATTERNS = "/*\n!/*/\n/.datalad/\n.zarray\n.zattrs\n.zgroup\n.zmetadata\nzarr.json\n"
ANNEX_HOOK = "#!/bin/sh\n# automatically configured by git-annex\ngit annex pre-commit .\n"


def test_maintain_brings_a_dataset_made_the_old_way_to_todays_skeleton(cli: CLI, dandi_archive) -> None:  # noqa: ANN001
    """A Zarr dataset made before issue 52 (non-cone patterns, an index entry per object, metadata and
    .datalad/ checked out, git-annex's hooks, git's description) is tidied by ``maintain``: nothing of
    a person's (their own hook) is removed, nothing committed changes, git status stays clean."""
    a = dandi_archive
    ident = a.create_dandiset(name="old zarr", created=T0)
    a.add_zarr_asset(ident, "old.zarr", LARGE, when=T0)
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    ds = cli.root / "dandi" / ident
    zds = ds / "old.zarr"
    dsid = git(zds, "config", "datalad.dataset.id").strip()
    # made the old way: what neuromirror before issue 52 left there
    git(zds, "config", "--unset", "datalad.dataset.id")
    subprocess.run(
        ["git", "-C", str(zds), "sparse-checkout", "set", "--no-cone", "--no-sparse-index", "--stdin"],
        input=OLD_PATTERNS,
        text=True,
        check=True,
        capture_output=True,
    )
    hooks = zds / ".git" / "hooks"
    hooks.mkdir()
    (hooks / "pre-commit").write_text(ANNEX_HOOK)
    (hooks / "post-update.sample").write_text("#!/bin/sh\nexec git update-server-info\n")
    (hooks / "post-commit").write_text("#!/bin/sh\necho a person's own hook\n")
    (zds / ".git" / "description").write_text(
        "Unnamed repository; edit this file 'description' to name the repository.\n"
    )
    assert (zds / "0" / ".zattrs").is_symlink() and (zds / ".datalad" / "config").exists()
    assert len(index_entries(zds)) == len(LARGE) + 3
    head = git(zds, "rev-parse", "HEAD")

    code, out, err = cli("maintain", f"dandi:{ident}", "--json")
    assert code == 0, err
    tidied = json.loads(out)["tidied"][f"dandi/{ident}/old.zarr"]
    assert "sparse index (cone mode, top-level files checked out)" in tidied
    assert {"removed hooks/pre-commit", "removed hooks/post-update.sample", "removed description"} <= set(tidied)
    assert sorted(p.name for p in hooks.iterdir()) == ["post-commit"], "a person's own hook stays"
    assert index_entries(zds) == [".datalad/", ".gitattributes", ".zgroup", "0/"]
    assert layout(zds)[0] == [".gitattributes", ".zgroup"]
    assert git(zds, "config", "datalad.dataset.id").strip() == dsid and git(zds, "rev-parse", "HEAD") == head
    assert git(zds, "status", "--porcelain") == "" and git(ds, "status", "--porcelain") == ""
    code, out, err = cli("maintain", f"dandi:{ident}", "--json")
    assert code == 0 and f"dandi/{ident}/old.zarr" not in json.loads(out)["tidied"], "once is enough"
