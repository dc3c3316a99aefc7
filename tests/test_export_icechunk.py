"""``neuromirror export SPEC@V/PATH.zarr --icechunk DIR``: a pinned Zarr state as an Icechunk repository.

A stand-in dandiset holds a Zarr that xarray wrote (Zarr v2, consolidated, compressed); upstream rewrites one
chunk in place (same key, a new S3 version) between two syncs, so the mirror records two states.  Each state is
exported and read back with the real icechunk, xarray and zarr-python: the pinned values, also after the archive
rewrote the chunk again.  The references go through the view (``serve --http`` on port 80 of a loopback address:
Icechunk drops any other port from a reference), or with ``--from STORE`` to the bytes in a store that keeps
them, read with every archive version of the Zarr's objects deleted.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shlex
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from helpers.keep import T0
from helpers.read import view_server
from helpers.retrieve import Runner

icechunk = pytest.importorskip("icechunk")
xr = pytest.importorskip("xarray")

ZARR = "sub-01/sub-01_image.zarr"


def xarray_files(values: np.ndarray, zarr_format: int = 2) -> dict[str, bytes]:
    """The objects xarray writes for a dataset of ``values`` (4 x 4, chunks of 2 x 2): Zarr v2 consolidated, or v3."""
    import zarr

    ds = xr.Dataset({"data": (("y", "x"), values)}, coords={"y": np.arange(4), "x": np.arange(4) * 10})
    store = zarr.storage.MemoryStore()
    ds.to_zarr(store, zarr_format=zarr_format, consolidated=zarr_format == 2, encoding={"data": {"chunks": (2, 2)}})
    return {k: v.to_bytes() for k, v in store._store_dict.items()}


@dataclass
class Mirrored:
    archive: Any
    root: Path
    id: str
    zarr_id: str
    old: np.ndarray
    new: np.ndarray
    first: str
    second: str
    created: Any = None  # when the dandiset was made: upstream's rewrites come after it

    @property
    def source(self) -> str:
        return f"dandi:{self.id}"

    def run(self, *args: str) -> tuple[int, str, str]:
        return Runner(self.root)(*args)

    def rewrite(self, values: np.ndarray, hours: int) -> None:
        """Upstream rewrites the chunk ``data/0.0`` in place: same key, a new S3 version (no sync follows)."""
        changed = {k: v for k, v in xarray_files(values).items() if k == "data/0.0"}
        # after the dandiset's own time (a resync reads changes newer than what it recorded, by -modified)
        self.archive.modify_zarr(self.zarr_id, put=changed, when=self.created + timedelta(hours=hours))


@pytest.fixture(scope="module")
def mirrored(dandi_archive, tmp_path_factory) -> Mirrored:  # noqa: ANN001
    archive = dandi_archive
    root = tmp_path_factory.mktemp("icechunk") / "mirror"
    run = Runner(root)
    when = T0 + timedelta(days=600 + len(archive.dandiset_ids()))
    sid = archive.create_dandiset(name="icechunk export", created=when)
    old = np.arange(16, dtype="int32").reshape(4, 4)
    aid = archive.add_zarr_asset(sid, ZARR, xarray_files(old), when=when + timedelta(minutes=1))
    zarr_id = archive.asset(aid).zarr.zarr_id
    run.ok("sync", f"dandi:{sid}", "--dandi-api", archive.api_url)
    first = json.loads(run.ok("pin", f"dandi:{sid}@draft", "--json"))["commit"]
    m = Mirrored(archive, root, sid, zarr_id, old, old.copy(), first, "", when)
    m.new[0:2, 0:2] = -1
    m.rewrite(m.new, 1)
    run.ok("sync", f"dandi:{sid}", "--dandi-api", archive.api_url)
    m.second = json.loads(run.ok("pin", f"dandi:{sid}@draft", "--json"))["commit"]
    assert m.first != m.second
    return m


def free_loopback_80() -> str:
    """A loopback address whose port 80 is free here (Icechunk keeps no port in a reference); skip where this
    process may not listen on port 80."""
    for _ in range(20):
        host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        with socket.socket() as s:
            try:
                s.bind((host, 80))
            except PermissionError:
                pytest.skip("listening on port 80 needs privileges this test run does not have")
            except OSError:
                continue
            return host
    raise AssertionError("no loopback address with a free port 80")


@contextmanager
def view_on_port_80(root: Path) -> Iterator[str]:
    """``neuromirror serve --http HOST:80 --no-schedule`` in its own process: its base URL (no port) once it listens."""
    host = free_loopback_80()
    with view_server(root, address=f"{host}:80") as url:
        assert url == f"http://{host}:80/"
        yield f"http://{host}"


def opened(repo: Path | str, prefixes: list[str], credentials: Any = None) -> Any:
    """The repository as a user opens it: the containers the export named authorized (S3's with credentials);
    one in S3 on the stand-in, where the store's environment names it."""
    import os

    given = {p: (credentials if p.startswith("s3://") else None) for p in prefixes}
    where = str(repo)
    if where.startswith("s3://"):
        bucket, prefix = where[len("s3://") :].split("/", 1)
        storage = icechunk.s3_storage(
            bucket=bucket,
            prefix=prefix,
            endpoint_url=os.environ["NEUROMIRROR_STORE_ENDPOINT"],
            allow_http=True,
            force_path_style=True,
            region="us-east-1",
            from_env=True,
        )
    else:
        storage = icechunk.local_filesystem_storage(where)
    return icechunk.Repository.open(storage, authorize_virtual_chunk_access=given)


def values(repo: Any, tag: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``data`` read by xarray and by zarr-python from the snapshot ``tag`` names (else ``main``)."""
    import zarr

    session = repo.readonly_session(tag=tag) if tag else repo.readonly_session(branch="main")
    ds = xr.open_zarr(session.store, consolidated=False)
    assert list(ds["data"].dims) == ["y", "x"] and list(ds["x"].values) == [0, 10, 20, 30]
    return ds["data"].values, zarr.open_group(session.store, mode="r")["data"][:]


def export(m: Mirrored, *args: str) -> dict:
    code, out, err = m.run("export", *args, "--json")
    assert code == 0, out + err
    return json.loads(out)


def test_a_pinned_state_read_through_the_view_keeps_its_values_after_upstream_rewrites_the_chunk(
    mirrored: Mirrored, tmp_path: Path
) -> None:
    m = mirrored
    with view_on_port_80(m.root) as view:
        got = export(m, f"{m.source}@{m.first}/{ZARR}", "--icechunk", str(tmp_path / "first"), "--view-url", view)
        assert got["references"] == "view" and got["containers"] == [f"{view}/dav/dandi/{m.id}/"]
        (snap,) = got["snapshots"]
        assert snap["status"] == "ok" and snap["tag"] == m.first and snap["chunks"] == 4 + 1 + 1  # data, x, y
        repo = opened(tmp_path / "first", got["containers"])
        locations = repo.readonly_session(tag=m.first).all_virtual_chunk_locations()
        assert all(loc.startswith(f"{view}/dav/dandi/{m.id}/{m.first}/{ZARR}/") for loc in locations)
        by_xarray, by_zarr = values(repo, m.first)
        assert (by_xarray == m.old).all() and (by_zarr == m.old).all()  # the archive serves other bytes at 0.0 now

        got = export(m, f"{m.source}@draft/{ZARR}", "--icechunk", str(tmp_path / "draft"), "--view-url", view)
        assert got["snapshots"][0]["tag"] == m.second
        repo = opened(tmp_path / "draft", got["containers"])
        assert (values(repo)[0] == m.new).all()
        m.rewrite(m.new * 7, 2)  # upstream again: the pinned state's chunk is an older S3 version now
        assert (values(repo)[0] == m.new).all() and (values(repo)[1] == m.new).all()
        assert (values(opened(tmp_path / "first", got["containers"]), m.first)[0] == m.old).all()

        code, out, _ = m.run(
            "export", f"{m.source}@draft/{ZARR}", "--icechunk", str(tmp_path / "draft"), "--view-url", view
        )
        assert code == 0 and out.startswith(f"notneeded: {m.source}@{m.second[:12]}/{ZARR}")


def test_a_zarr_v3_state_keeps_its_own_metadata(mirrored: Mirrored, tmp_path: Path) -> None:
    """A state in Zarr v3 (``zarr.json``, chunks at ``c/0/0``): its documents copied as they are."""
    m = mirrored
    when = T0 + timedelta(days=700 + len(m.archive.dandiset_ids()))
    sid = m.archive.create_dandiset(name="icechunk export v3", created=when)
    files = xarray_files(m.old * 3, zarr_format=3)
    assert "data/c/0/0" in files and "data/zarr.json" in files
    m.archive.add_zarr_asset(sid, ZARR, files, when=when + timedelta(minutes=1))
    Runner(m.root).ok("sync", f"dandi:{sid}", "--dandi-api", m.archive.api_url)
    with view_on_port_80(m.root) as view:
        got = export(m, f"dandi:{sid}@draft/{ZARR}", "--icechunk", str(tmp_path / "v3"), "--view-url", view)
        assert got["snapshots"][0]["chunks"] == 6
        repo = opened(tmp_path / "v3", got["containers"])
        by_xarray, by_zarr = values(repo)
        assert (by_xarray == m.old * 3).all() and (by_zarr == m.old * 3).all()
        import zarr

        store = repo.readonly_session(branch="main").store
        assert zarr.open_group(store, mode="r")["data"].metadata.dimension_names == ("y", "x")


def test_all_states_make_a_snapshot_each_tagged_by_the_mirrors_commit(mirrored: Mirrored, tmp_path: Path) -> None:
    m = mirrored
    with view_on_port_80(m.root) as view:
        got = export(
            m, f"{m.source}@draft/{ZARR}", "--icechunk", str(tmp_path / "all"), "--all-states", "--view-url", view
        )
        assert [s["tag"] for s in got["snapshots"]] == [m.first, m.second]
        repo = opened(tmp_path / "all", got["containers"])
        assert repo.list_tags() == {m.first, m.second}
        history = [s.message for s in repo.ancestry(branch="main")]
        assert history[0].endswith(f"at {m.second}") and history[1].endswith(f"at {m.first}") and len(history) == 3
        assert (values(repo, m.first)[0] == m.old).all() and (values(repo, m.second)[0] == m.new).all()
        info = next(iter(repo.ancestry(tag=m.first)))
        assert info.metadata["commit"] == m.first and info.metadata["path"] == ZARR


def test_all_states_from_a_store_that_lacks_an_older_state_names_the_keep_that_fills_it(
    mirrored: Mirrored, tmp_path: Path
) -> None:
    """Only the newest draft state is kept: ``--all-states --from STORE`` stops at the earlier state and names
    it by its commit, as ``versions`` reads it. Before, it said ``keep dandi:ID@draft``, which keeps the newest
    state again (nothing to do) and left the user where they were. The command it names, run as printed,
    makes the export go through."""
    m = mirrored
    store = str(tmp_path / "store")
    code, out, err = m.run("keep", f"{m.source}@draft", "--to", store)
    assert code == 0, out + err
    target = tmp_path / "repo"
    args = (f"{m.source}@draft/{ZARR}", "--icechunk", str(target), "--all-states", "--from", store)
    code, out, err = m.run("export", *args)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{m.source}@{m.first[:12]}: 1 chunk(s) of the state are not in {store}" in err, err
    named = re.search(r"`neuromirror (keep [^`]+)`", err)
    assert named is not None and named.group(1) == f"keep {m.source}@{m.first[:12]} --to {store}", err
    assert not target.exists()  # nothing written
    code, out, err = m.run(*shlex.split(named.group(1)))
    assert code == 0, out + err
    got = export(m, *args)
    assert [s["tag"] for s in got["snapshots"]] == [m.first, m.second]
    repo = opened(target, got["containers"])
    assert (values(repo, m.first)[0] == m.old).all() and (values(repo, m.second)[0] == m.new).all()


@pytest.mark.parametrize("kind", ["directory", "pack+file", "pack+s3"])
def test_from_a_store_reads_the_kept_bytes_when_the_archive_lost_every_version(
    mirrored: Mirrored, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    m = mirrored
    credentials = None
    if kind == "directory":
        store, prefix = str(tmp_path / "store"), f"file://{tmp_path}/store/"
    elif kind == "pack+file":
        store, prefix = f"pack+file://{tmp_path}/packed", f"file://{tmp_path}/packed/"
    else:
        bucket = request.getfixturevalue("bucket")  # the store's endpoint and credentials in the environment
        store, prefix = f"pack+s3://{bucket}/kept", f"s3://{bucket}/kept/"
        credentials = icechunk.containers_credentials(
            {"s3://": icechunk.s3_static_credentials(access_key_id="AKIAKEEPTEST", secret_access_key="x")}
        )["s3://"]
    spec = f"{m.source}@{m.second}"
    code, out, err = m.run("keep", spec, "--to", store, "--json")
    assert code == 0, out + err
    target = str(tmp_path / "repo") if credentials is None else f"s3://{bucket}/exported.icechunk"  # S3 a repo too
    got = export(m, f"{spec}/{ZARR}", "--icechunk", target, "--from", store)
    assert got["references"] != "view" and got["containers"] == [prefix]
    repo = opened(target, got["containers"], credentials)
    locations = repo.readonly_session(branch="main").all_virtual_chunk_locations()
    if kind.startswith("pack"):
        assert all("/packs/" in loc and loc.endswith(".pack") for loc in locations)
    s3 = m.archive.s3.client()
    bucket_name = m.archive.bucket
    listed = s3.list_object_versions(Bucket=bucket_name, Prefix=f"zarr/{m.zarr_id}/")
    for v in listed.get("Versions", []) + listed.get("DeleteMarkers", []):
        s3.delete_object(Bucket=bucket_name, Key=v["Key"], VersionId=v["VersionId"])
    by_xarray, by_zarr = values(repo)
    assert (by_xarray == m.new).all() and (by_zarr == m.new).all()


def test_through_the_view_a_chunk_is_one_archive_read_and_the_stores_copy_once_the_archive_lost_it(
    mirrored: Mirrored, tmp_path: Path
) -> None:
    """Icechunk's read of a chunk is conditional (``If-Match``: the chunk's ETag): the view answers it with the
    archive's answer, fetched once, instead of asking the archive and redirecting (two round trips each); once
    the archive lost the pinned version, with the kept copy."""
    import requests

    m = mirrored
    when = T0 + timedelta(days=800 + len(m.archive.dandiset_ids()))
    sid = m.archive.create_dandiset(name="icechunk export, lost", created=when)
    aid = m.archive.add_zarr_asset(sid, ZARR, xarray_files(m.old * 5), when=when + timedelta(minutes=1))
    run = Runner(m.root)
    run.ok("sync", f"dandi:{sid}", "--dandi-api", m.archive.api_url)
    spec = f"dandi:{sid}@{json.loads(run.ok('pin', f'dandi:{sid}@draft', '--json'))['commit']}"
    run.ok("keep", spec, "--to", str(tmp_path / "store"))
    with view_on_port_80(m.root) as view:
        got = export(m, f"{spec}/{ZARR}", "--icechunk", str(tmp_path / "repo"), "--view-url", view)
        repo = opened(tmp_path / "repo", got["containers"])
        url = next(u for u in repo.readonly_session(branch="main").all_virtual_chunk_locations() if "/data/0.0" in u)
        plain = requests.get(url, allow_redirects=False, timeout=30)
        assert plain.status_code == 307 and "versionId=" in plain.headers["Location"]
        chunk = requests.get(plain.headers["Location"], timeout=30).content
        guard = {"If-Match": f'"{hashlib.md5(chunk).hexdigest()}"', "Range": f"bytes=0-{len(chunk) - 1}"}
        read = requests.get(url, headers=guard, allow_redirects=False, timeout=30)
        assert read.status_code == 206 and read.content == chunk  # the archive's answer, through the view
        other = requests.get(url, headers={**guard, "If-Match": '"0123"'}, allow_redirects=False, timeout=30)
        assert other.status_code == 412 and chunk not in other.content  # never other bytes for the chunk
        s3, bucket = m.archive.s3.client(), m.archive.bucket
        listed = s3.list_object_versions(Bucket=bucket, Prefix=f"zarr/{m.archive.asset(aid).zarr.zarr_id}/")
        for v in listed.get("Versions", []) + listed.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
        by_xarray, by_zarr = values(repo)
        assert (by_xarray == m.old * 5).all() and (by_zarr == m.old * 5).all()  # the kept copies, by the view


def test_bad_input_is_one_line_and_writes_nothing(mirrored: Mirrored, tmp_path: Path) -> None:
    m = mirrored
    target = tmp_path / "none"
    for args, said in [
        (["--view-url", "http://127.0.0.1:8080"], "Icechunk keeps no port in a chunk's URL"),
        ([], "--view-url: none given, and no store"),
        (["--from", str(tmp_path / "no-store")], "no-store: not a neuromirror store"),
        (["--from", str(tmp_path), "--view-url", "http://h"], "through the view or from a store, not both"),
    ]:
        code, out, err = m.run("export", f"{m.source}@draft/{ZARR}", "--icechunk", str(target), *args)
        assert code == 2 and said in err and len(err.strip().splitlines()) == 1, err
    code, _, err = m.run("export", f"{m.source}@draft/sub-01", "--icechunk", str(target), "--view-url", "http://h")
    assert code == 2 and "no Zarr metadata" in err, err
    code, _, err = m.run("export", f"{m.source}/{ZARR}", "--icechunk", str(target), "--view-url", "http://h")
    assert code == 2 and "SPEC@VERSION/PATH.zarr" in err, err
    assert not target.exists()


def test_icechunk_keeps_no_query_and_no_port_in_a_virtual_chunks_url() -> None:
    """Why the references name the view or a store, not the archive's pinned URL: Icechunk (1.1.21) stores
    ``http://127.0.0.1:PORT/b/k?versionId=V`` as ``http://127.0.0.1/b/k`` (docs/reading.md says so)."""
    import zarr

    repo = icechunk.Repository.create(icechunk.in_memory_storage())
    session = repo.writable_session("main")
    zarr.create_array(session.store, name="a", shape=(1,), chunks=(1,), dtype="uint8", fill_value=0)
    pinned = "http://127.0.0.1:9000/bucket/zarr/a/0?versionId=3HL4kqtJlcpXroDTDmJ"
    session.store.set_virtual_ref("a/c/0", pinned, offset=0, length=1, validate_container=False)
    assert session.all_virtual_chunk_locations() == ["http://127.0.0.1/bucket/zarr/a/0"]


def test_the_exports_reader_resolves_a_metadata_file_alone_not_its_chunk_directory(mirrored: Mirrored) -> None:
    """Finding ``data/.zarray`` through the view's listing resolves every chunk beside it (3 logs each: 84 s at
    10^5 chunks); the export's reader resolves that file alone, to the same URL."""
    from neuromirror.read.icechunk.metadata import MetadataReader
    from neuromirror.read.listings import Listings

    m = mirrored
    path = f"dandi/{m.id}@{m.first}/{ZARR}/data/.zarray"
    with MetadataReader(m.root, None) as reader:
        pin, inner = reader.fs._split(path)
        alone = reader.fs._listings.find(pin, inner)
        view = Listings()  # as the view lists: the directory whole
        whole = view.find(pin, inner)
        view.close()
        assert isinstance(alone, tuple) and isinstance(whole, tuple)
        assert alone[0] == whole[0] and alone[0].url  # the archive's pinned URL, or a store's once lost
        chunks = reader.fs._listings.find(pin, inner.rpartition("/")[0])
        assert chunks is not None and not isinstance(chunks, tuple) and chunks._files is None  # none resolved
        assert json.loads(reader.cat_file(path))["zarr_format"] == 2
