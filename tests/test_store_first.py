"""A clone's ``get`` of a lost kept file costs what the store costs, whether or not the mirror saw the loss.

Why: a directory store used to cost 300 against the web's 200, so git-annex asked the archive first and
``datalad get`` retried each dead URL (``annex.retry=3``): 70.7 s for 24 files the archive lost, where
``git annex get --from STORE`` took 0.2 s; hours for an old Zarr state of 10^4 chunks.  Now a directory
store's ``remote.log`` line says ``cost=150``: every clone reads what the store holds from the store.

Loss as loss: every S3 version of the blobs and of the Zarr's chunks really deleted from the moto
stand-in, and the mirror never told (no ``verify --content``, so no ``web: 0`` mark on the branch).  The
measure is the archive's own request logs (the S3 stand-in's and the API's), not a clock: a plain
``datalad clone`` + ``datalad get`` (``get -r`` for the Zarr's subdataset) sends the archive no request
for a kept file — as many as ``git annex get --from STORE`` of the same files in the same test, and at
most one per dead URL, never a retry — while ``git annex get --from web`` shows the logs do see them.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qsl, urlsplit

from conftest import clone, git
from helpers.keep import Dandiset, key_of, lose_blobs, lose_zarr, make_dandiset, remote_name_of
from neuromirror.annex.keys import hashdir_lower
from neuromirror.demo import deterministic_bytes

WEB = "00000000-0000-0000-0000-000000000001"
ZARR = "sub-09/sample.zarr"
#: the loopback stand-ins allowed in every repository a command makes (Zarr subdatasets too), as a
#: user's global git config would: the archive stays reachable, so a request to it would be seen
ALLOW_LOOPBACK = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "annex.security.allowed-ip-addresses",
    "GIT_CONFIG_VALUE_0": "all",
}


def run(cwd: Path, *argv: str) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env={**os.environ, **ALLOW_LOOPBACK})
    assert proc.returncode == 0, f"{argv}: {proc.stdout}{proc.stderr}"


def archive_requests(d: Dandiset, markers: set[str], action: Callable[[], None]) -> Counter[tuple[str, str]]:
    """Each request to the archive (S3 and API) naming one of ``markers`` while ``action`` runs, counted."""
    s3_log = d.archive.s3.log_requests()
    d.archive.reset_request_log()
    try:
        action()
    finally:
        d.archive.s3.log_requests(False)
    seen = [r for r in [*s3_log, *d.archive.request_log] if any(m in r[1] for m in markers)]
    return Counter((method, _url_of(target)) for method, target in seen)


def _url_of(target: str) -> str:
    """One URL however often it is asked: its path and ``versionId``, without a redirect's fresh signature."""
    parts = urlsplit(target)
    version = [v for k, v in parse_qsl(parts.query) if k == "versionId"]
    return parts.path + (f"?versionId={version[0]}" if version else "")


def blob_markers(d: Dandiset, paths: list[str]) -> set[str]:
    """What the archive's URLs of ``paths`` carry: each blob's S3 key and each asset's id (its download route)."""
    out: set[str] = set()
    for path in paths:
        asset = d.archive.asset_at(d.id, path, d.version)
        out |= {asset.blob.key, asset.asset_id}
    return out


def unmarked(d: Dandiset, repo: Path, keys: list[str]) -> None:
    """The mirror has not seen the loss: no key's location log says the web lost it."""
    for key in keys:
        log = git(repo, "show", f"git-annex:{hashdir_lower(key)}{key}.log")
        assert f"0 {WEB}" not in log and WEB in log, log


def test_a_clone_reads_lost_kept_files_from_the_store_without_asking_the_archive(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    sizes = {f"sub-{i:02d}/data.nwb": 4_000 + 17 * i for i in range(6)}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    store = tmp_path / "store"
    code, out, err = d.run("keep", d.spec, "--to", str(store))
    assert code == 0, out + err
    assert "cost=150" in git(d.ds, "show", "git-annex:remote.log")
    paths = sorted(d.files)
    keys = [key_of(d.ds, p, d.version) for p in paths]
    lose_blobs(d, paths)  # garbage collection: every S3 version gone, no delete marker to undo
    unmarked(d, d.ds, keys)
    markers = blob_markers(d, paths)

    work = clone(d.ds, tmp_path / "clone")
    git(work, "checkout", "-q", d.version)
    by_datalad = archive_requests(d, markers, lambda: run(work, "datalad", "get", *paths))
    for path in paths:
        assert (work / path).read_bytes() == d.files[path], path
    name = remote_name_of(store)
    other = clone(d.ds, tmp_path / "clone-from")
    git(other, "checkout", "-q", d.version)
    by_annex = archive_requests(d, markers, lambda: run(other, "git", "annex", "get", "--from", name, *paths))
    assert max(by_datalad.values(), default=0) <= 1, by_datalad  # never a retry of a dead URL
    assert by_datalad == by_annex == Counter(), (by_datalad, by_annex)  # none at all: the store is asked first

    # the logs do see the archive being asked: the web, named, is tried (and has nothing)
    third = clone(d.ds, tmp_path / "clone-web")
    git(third, "checkout", "-q", d.version)

    def from_web() -> None:
        proc = subprocess.run(["git", "annex", "get", "--from", "web", paths[0]], cwd=third, capture_output=True)
        assert proc.returncode != 0

    asked = archive_requests(d, blob_markers(d, paths[:1]), from_web)
    assert asked and max(asked.values()) <= 1, asked


def test_datalad_get_r_of_an_expired_zarr_state_reads_every_chunk_from_the_store(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    chunks = {
        ".zgroup": b'{"zarr_format": 2}',
        "0/.zarray": b'{"chunks": [64], "zarr_format": 2}',
        **{f"0/{i}": deterministic_bytes(f"{tmp_path}z{i}", 600 + 31 * i) for i in range(10)},
    }
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 5_000}, zarr=chunks)
    store = tmp_path / "store"
    code, out, err = d.run("keep", d.spec, "--to", str(store))
    assert code == 0, out + err
    zds = d.ds / ZARR
    tree = git(zds, "ls-tree", "-r", "HEAD").splitlines()  # the mirror's Zarr dataset is not checked out
    annexed = sorted(ln.split("\t", 1)[1] for ln in tree if ln.startswith("120000 "))  # symbolic links: annexed
    assert len(annexed) >= 10 and set(annexed) <= set(chunks), annexed
    assert "cost=150" in git(zds, "show", "git-annex:remote.log")
    lose_blobs(d, ["sub-01/a.nwb"])
    lose_zarr(d, ZARR)  # every chunk's every S3 version deleted upstream: the state expired
    unmarked(d, zds, [key_of(zds, n, "HEAD") for n in annexed])
    zarr_id = d.archive.asset_at(d.id, ZARR, d.version).zarr.zarr_id
    markers = {f"zarr/{zarr_id}/", *blob_markers(d, ["sub-01/a.nwb"])}

    work = clone(d.ds, tmp_path / "clone")
    git(work, "checkout", "-q", d.version)
    by_datalad = archive_requests(d, markers, lambda: run(work, "datalad", "get", "-r", "."))
    assert (work / "sub-01/a.nwb").read_bytes() == d.files["sub-01/a.nwb"]
    for name, data in chunks.items():
        assert (work / ZARR / name).read_bytes() == data, name

    name = remote_name_of(store)
    other = clone(d.ds, tmp_path / "clone-from")
    git(other, "checkout", "-q", d.version)
    run(other, "datalad", "get", "-n", ZARR)  # the subdataset installed, no content

    def from_store() -> None:
        run(other, "git", "annex", "get", "--from", name, "sub-01/a.nwb")
        run(other / ZARR, "git", "annex", "get", "--from", name, *annexed)

    by_annex = archive_requests(d, markers, from_store)
    for n in annexed:
        assert (other / ZARR / n).read_bytes() == chunks[n], n
    assert max(by_datalad.values(), default=0) <= 1, by_datalad  # never a retry of a dead URL
    assert by_datalad == by_annex == Counter(), (by_datalad, by_annex)


def test_maintain_brings_a_store_recorded_the_old_way_to_be_read_first(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    """A mirror kept into before directory stores were read first says ``cost=300`` on its branch; the next
    ``maintain`` records ``cost=150`` (a rerun writes nothing), and a clone then reads a lost file from the
    store without asking the archive."""
    from neuromirror.store.record import _commit_top_files

    sizes = {"sub-01/a.nwb": 3_000, "sub-02/b.nwb": 2_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    store = tmp_path / "store"
    code, out, err = d.run("keep", d.spec, "--to", str(store))
    assert code == 0, out + err
    old = git(d.ds, "show", "git-annex:remote.log").replace("cost=150", "cost=300")
    _commit_top_files(d.ds, git(d.ds, "rev-parse", "git-annex").strip(), {"remote.log": old.encode()})
    assert "cost=300" in git(d.ds, "show", "git-annex:remote.log")  # as a mirror of before issue 53 has it

    code, out, err = d.run("maintain", d.source, "--dry-run", "--json")
    assert code == 0, err
    assert len(json.loads(out)["store_costs"]) == 1, out  # the dandiset's dataset: it has no Zarr
    assert "cost=300" in git(d.ds, "show", "git-annex:remote.log")  # a dry run writes nothing
    code, out, err = d.run("maintain", d.source)
    assert code == 0, err
    assert "directory store read first (cost=150)" in out
    line = git(d.ds, "show", "git-annex:remote.log")
    assert "cost=150" in line and "cost=300" not in line and f"directory={store}" in line
    before = git(d.ds, "rev-parse", "git-annex")
    code, out, err = d.run("maintain", d.source, "--json")
    assert code == 0 and json.loads(out)["store_costs"] == [], out + err
    assert git(d.ds, "rev-parse", "git-annex") == before  # a rerun writes nothing

    paths = sorted(d.files)
    lose_blobs(d, paths)
    work = clone(d.ds, tmp_path / "clone")
    git(work, "checkout", "-q", d.version)
    asked = archive_requests(d, blob_markers(d, paths), lambda: run(work, "datalad", "get", *paths))
    assert asked == Counter(), asked
    for path in paths:
        assert (work / path).read_bytes() == d.files[path], path
