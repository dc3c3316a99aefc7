"""A Zarr's dataset on the mirror host holds its top level only (issue 40): the objects are in git.

A cold mirror of 10^6 Zarr objects spent most of its CPU making 10^6 symbolic links nobody reads
on the host (:mod:`neuromirror.dataset.sparse`).  A user sees it here as they would: the Zarr
datasets written directly and through the annex writer are sparse and clean, stay sparse when
they change, clone whole with the bytes the archive has; a dataset a user made whole stays
whole; ``NEUROMIRROR_ZARR_CHECKOUT=full`` makes them whole from the start; a wrong value is a
one-line error that writes nothing.
"""

from __future__ import annotations

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
    """What the work tree holds (below .git excluded) and git's flag per indexed file (H, S)."""
    files = sorted(str(p.relative_to(zds)) for p in zds.rglob("*") if ".git" not in p.relative_to(zds).parts)
    flags = {line[2:]: line[0] for line in git(zds, "ls-files", "-v").splitlines()}
    return files, flags


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
        # the top level, .datalad/ and the metadata files (0/.zarray, 0/.zattrs) are checked out
        shown = sorted(rel for rel in files if "/" not in rel or rel.rsplit("/", 1)[1].startswith(".z"))
        assert tree == sorted([".datalad", ".datalad/.gitattributes", ".datalad/config", ".gitattributes", "0", *shown])
        assert all(flags[rel] == ("H" if rel in shown else "S") for rel in files)
        assert git(zds, "status", "--porcelain") == "" and git(zds, "fsck", "--strict", "--no-dangling") == ""
        # what the mirror wrote is what git's own sparse checkout makes of the same patterns
        git(zds, "read-tree", "-mu", "HEAD")
        assert layout(zds) == (tree, flags) and git(zds, "status", "--porcelain") == ""
    assert git(ds, "status", "--porcelain") == ""

    # a user makes the large one whole on the host; both change upstream
    git(ds / "large.zarr", "sparse-checkout", "disable")
    later = T0 + timedelta(days=1)
    a.modify_zarr(small, put={"0/1/0": b"small added"}, delete=["0/0/1"], when=later)
    a.modify_zarr(large, put={"0/9/9": b"large added"}, delete=["0/0/0"], when=later)
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    tree, flags = layout(ds / "small.zarr")
    assert [rel for rel in tree if rel.startswith("0")] == ["0", "0/.zarray"]
    assert flags["0/1/0"] == "S" and "0/0/1" not in flags
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
