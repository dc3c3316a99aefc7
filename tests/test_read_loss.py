"""A pin read in place after the archive lost its bytes: the store's copy, or an error — never a fill value.

On DANDI every old Zarr state ends so: the S3 versions a pin records expire.  A dandiset's Zarr is
published, then every chunk is rewritten upstream (new S3 versions); the lab keeps two of the
published chunks in a directory store.  Readers open the published pin — zarr-python through
``neuromirror://`` (a mirror of its own), through ``neuromirror://`` of a served mirror (its
``base_url``) and through the view by fsspec's plain HTTP — and only then the old versions are
deleted from moto (every S3 version of the pin's chunks).  The kept chunks read the old values
from the store; the others raise, on every path.  The loss one reader saw is remembered for the
others (the index) and for clones (the ``git-annex`` branch): ``urls`` and a plain ``datalad get``
go straight to the store.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Iterator, Optional

import numpy as np
import pytest

from conftest import clone, git
from helpers.keep import T0, Dandiset, lose_blobs
from helpers.read import ZARR, view_server, zarr_files
from helpers.retrieve import Runner
from helpers.service import ENV

KEPT = ("0.0", "0.1")
H5_KEPT, H5_LOST = "sub-01/kept.nwb", "sub-02/lost.nwb"
UNKEPT = ("1.0", "1.1")
WEB = "00000000-0000-0000-0000-000000000001"


def h5_of(offset: int) -> bytes:
    """An HDF5 file (as NWB files are) of 400,000 float64 values from ``offset``, in chunks of 5,000."""
    import io

    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("data", data=np.arange(400_000, dtype="float64") + offset, chunks=(5_000,))
    return buf.getvalue()


class Lost:
    def __init__(self, archive, tmp: Path) -> None:  # noqa: ANN001
        self.archive, self.tmp = archive, tmp
        self.expired = False
        when = T0 + timedelta(days=1200 + len(archive.dandiset_ids()))
        ident = archive.create_dandiset(name="read after loss", created=when)
        self.old = np.arange(16, dtype="int32").reshape(4, 4)
        archive.put_asset(ident, "README.md", b"# read after loss\n", when=when)
        self.h5_base = 10 * len(archive.dandiset_ids())  # distinct bytes: one blob each, in every dandiset
        for i, path in enumerate((H5_KEPT, H5_LOST)):
            archive.put_asset(ident, path, h5_of(self.h5_base + i), when=when)
        aid = archive.add_zarr_asset(ident, ZARR, zarr_files(self.old), when=when + timedelta(minutes=1))
        self.zarr_id = archive.asset(aid).zarr.zarr_id
        version = archive.publish(ident, when=when + timedelta(hours=1))
        run = Runner(tmp / "mirror")
        run.ok("sync", f"dandi:{ident}", "--dandi-api", archive.api_url)
        self.d = Dandiset(archive, ident, version, {}, run)
        # upstream rewrites every chunk in place: the published pin's versions become noncurrent
        chunks = {k: v for k, v in zarr_files(-self.old).items() if "." in k and not k.startswith(".")}
        assert sorted(chunks) == sorted(KEPT + UNKEPT)
        archive.modify_zarr(self.zarr_id, put=chunks, when=when + timedelta(hours=2))
        run.ok("sync", f"dandi:{ident}", "--dandi-api", archive.api_url)
        self.store = tmp / "store"
        kept = [f"{ZARR}/{k}" for k in KEPT] + [H5_KEPT]
        run.ok("keep", self.d.spec, "--to", str(self.store), *[a for p in kept for a in ("--include", p)])

    @property
    def root(self) -> Path:
        return self.d.run.root

    def path(self) -> str:
        return f"dandi/{self.d.id}@{self.d.version}/{ZARR}"

    def expire_old_versions(self) -> None:
        """What DANDI's lifecycle rule does to noncurrent versions: every S3 version the pin records, deleted."""
        if self.expired:
            return
        self.expired = True
        z = self.archive.asset_at(self.d.id, ZARR, self.d.version).zarr
        client = self.archive.s3.client()
        listing = client.list_object_versions(Bucket=z.bucket, Prefix=f"zarr/{z.zarr_id}/")
        old = [v for v in listing["Versions"] if not v["IsLatest"]]
        assert sorted(v["Key"].rpartition("/")[2] for v in old) == sorted(KEPT + UNKEPT)
        for v in old:
            client.delete_object(Bucket=z.bucket, Key=v["Key"], VersionId=v["VersionId"])

    def urls(self) -> dict[str, dict]:
        rows = json.loads(self.d.run.ok("urls", self.d.spec, ZARR, "--json"))
        return {r["path"].rpartition("/")[2]: r for r in rows}


def lost_table(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE name = 'lost_urls'").fetchone() is not None


@pytest.fixture(scope="module")
def lost(dandi_archive, tmp_path_factory) -> Iterator[Lost]:  # noqa: ANN001
    yield Lost(dandi_archive, tmp_path_factory.mktemp("loss"))


def test_zarr_at_a_lost_pin_reads_the_store_or_raises_on_every_path(lost: Lost) -> None:
    import fsspec
    import zarr

    from neuromirror.read.fsspec_fs import NotStreamable

    with view_server(lost.root) as base:
        local = zarr.open_array(f"neuromirror://{lost.path()}", mode="r", storage_options={"root": str(lost.root)})
        served = zarr.open_array(f"neuromirror://{lost.path()}", mode="r", storage_options={"base_url": base})
        plain = zarr.open_array(f"{base}dav/dandi/{lost.d.id}/{lost.d.version}/{ZARR}", mode="r")
        for reader in (local, served, plain):  # every reader started, and read, while the archive served
            np.testing.assert_array_equal(reader[:], lost.old)
        assert {r["served_by"] for r in lost.urls().values()} == {"archive"}

        lost.expire_old_versions()

        # neuromirror:// on the mirror: chunk 0.0 from the store, chunk 1.1 an error naming its key
        np.testing.assert_array_equal(local[0:2, 0:2], lost.old[0:2, 0:2])
        with pytest.raises(NotStreamable, match=r"1\.1: key .*no longer serves it \(HTTP 404\)"):
            local[2:4, 2:4]
        # neuromirror:// on the served mirror: its read through the redirect failed, told the view,
        # which asked the archive again: chunk 0.1 from the store, chunk 1.0 gone (410)
        np.testing.assert_array_equal(served[0:2, 2:4], lost.old[0:2, 2:4])
        with pytest.raises(NotStreamable, match=r"1\.0: key .*no longer serves it"):
            served[2:4, 0:2]
        # plain HTTP through the view, which remembers what both readers found: never a fill value
        np.testing.assert_array_equal(plain[0:2, :], lost.old[0:2, :])
        for rows in (slice(2, 4), slice(None)):
            with pytest.raises(Exception) as err:
                plain[rows, :]
            assert "410" in str(err.value) or "Gone" in str(err.value), err.value
        r = fsspec.filesystem("http")
        with pytest.raises(Exception, match="410"):
            r.cat_file(f"{base}dav/dandi/{lost.d.id}/{lost.d.version}/{ZARR}/1.1")

    # the loss is in the index (for every reader) and on the git-annex branch (for every clone)
    from neuromirror.read.loss import flush_all

    flush_all()  # the marks the readers of this process started (zarr's filesystem is an instance of its own)
    fs = fsspec.filesystem("neuromirror", root=str(lost.root))
    infos = {k: fs.info(f"{lost.path()}/{k}") for k in ("0.0", "1.1")}
    assert infos["0.0"]["served_by"] == "store" and infos["0.0"]["url"].startswith("file://")
    assert (infos["1.1"]["served_by"], infos["1.1"]["url"]) == ("none", None)
    from neuromirror.dataset.mirror import Datasets

    with sqlite3.connect(Datasets(lost.root).index_path) as db:
        rows = db.execute("SELECT key, status FROM lost_urls").fetchall()
    rows_by_key = dict(rows)
    urls = lost.urls()
    assert {urls[k]["key"] for k in ("0.0", "1.1")} <= set(rows_by_key), rows
    assert {urls[k]["served_by"] for k in KEPT} == {"store"} and {urls[k]["served_by"] for k in UNKEPT} == {"none"}
    zarr_ds = lost.d.ds / ZARR
    for k in ("0.0", "1.1"):
        log = git(zarr_ds, "show", f"git-annex:{_log_path(zarr_ds, urls[k]['key'])}")
        assert any(line.endswith(f"s 0 {WEB}") for line in log.splitlines()), log  # the web lost it


def test_h5py_slices_after_the_archive_lost_the_file(lost: Lost) -> None:
    """h5py opened both files while the archive served them; then every S3 version of both went.

    After the zarr readers above on purpose: their failed reads once left cyclic garbage, and a collection in
    another thread (the S3 stand-in's, fsspec's) freeing an h5py object while h5py held its lock across a
    read hung that read until aiohttp's 5-minute timeout (:func:`neuromirror.read.loss.dropped`; the test
    below checks that no read leaves such garbage).
    """
    import fsspec
    import h5py

    opts = {"root": str(lost.root)}
    base = f"neuromirror://dandi/{lost.d.id}@{lost.d.version}"
    with fsspec.open(f"{base}/{H5_KEPT}", "rb", **opts) as kf, fsspec.open(f"{base}/{H5_LOST}", "rb", **opts) as lf:
        with h5py.File(kf, "r") as kept, h5py.File(lf, "r") as gone:
            base = lost.h5_base
            want = np.arange(300_000, 300_010, dtype="float64") + base
            np.testing.assert_array_equal(kept["data"][:10], np.arange(10, dtype="float64") + base)
            np.testing.assert_array_equal(gone["data"][:10], np.arange(10, dtype="float64") + base + 1)
            lose_blobs(lost.d, [H5_KEPT, H5_LOST])
            np.testing.assert_array_equal(kept["data"][300_000:300_010], want)  # the store's copy
            with pytest.raises(OSError) as err:
                gone["data"][300_000:300_010]
            assert not isinstance(err.value, FileNotFoundError)


def test_a_failed_read_leaves_no_garbage_holding_the_readers_frames(lost: Lost) -> None:
    """A read the archive fails leaves no reference cycle behind: its exception is freed where it is dropped.

    Cyclic garbage is freed by whichever thread collects next; if it holds a reader's frames (an h5py
    object among their locals) and that thread is the one serving a read h5py waits on under its lock,
    both wait.  So the first failure of an archive URL (forgotten here by the index, a filesystem of its
    own) must leave nothing for the collector: no exception kept alive by a cycle through its frames."""
    import gc

    import fsspec

    from neuromirror.dataset.mirror import Datasets
    from neuromirror.read.loss import NotStreamable

    lost.expire_old_versions()
    me = sys._getframe()

    def the_readers(frame: Optional[FrameType]) -> bool:
        """A frame of this thread's read: ``me`` called it (h5py's frames, in the hang)."""
        while frame is not None and frame is not me:
            frame = frame.f_back
        return frame is me

    with view_server(lost.root) as base:
        for where, opts in (("local", {"root": str(lost.root)}), ("served", {"base_url": base})):
            with sqlite3.connect(Datasets(lost.root).index_path) as db:  # the URL's first failure again
                db.execute("DELETE FROM lost_urls") if lost_table(db) else None
            fs = fsspec.filesystem("neuromirror", skip_instance_cache=True, **opts)
            fs.info(f"{lost.path()}/1.0")
            gc.collect()
            gc.disable()
            try:
                with pytest.raises(NotStreamable, match="no longer serves it"):
                    fs.cat_file(f"{lost.path()}/1.0")
                gc.set_debug(gc.DEBUG_SAVEALL)
                gc.collect()
                held = [o.f_code.co_name for o in gc.garbage if isinstance(o, FrameType) and the_readers(o)]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()
            assert not held, (where, held)


def test_the_view_alone_never_redirects_a_zarr_client_to_a_lost_chunk(dandi_archive, tmp_path) -> None:  # noqa: ANN001
    """No other reader tells the view, and ``NEUROMIRROR_VIEW_RECHECK`` is left at its default (a minute):
    the chunks it saw alive a moment ago are asked again before each redirect, so a plain HTTP Zarr client
    reads the store's chunks or gets 410, never a 404 (its fill value)."""
    import zarr

    assert "NEUROMIRROR_VIEW_RECHECK" not in ENV
    fresh = Lost(dandi_archive, tmp_path)
    with view_server(fresh.root) as base:
        plain = zarr.open_array(f"{base}dav/dandi/{fresh.d.id}/{fresh.d.version}/{ZARR}", mode="r")
        np.testing.assert_array_equal(plain[:], fresh.old)
        fresh.expire_old_versions()
        np.testing.assert_array_equal(plain[0:2, :], fresh.old[0:2, :])  # the kept chunks, from the store
        with pytest.raises(Exception) as err:
            plain[2:4, :]
        assert "410" in str(err.value) or "Gone" in str(err.value), err.value


def _log_path(repo: Path, key: str) -> str:
    from neuromirror.annex.keys import log_path

    return log_path(key, ".log")


def test_a_clone_gets_a_lost_chunk_from_the_store_without_asking_the_archive(lost: Lost) -> None:
    """After a reader saw the loss (the test above), ``datalad get`` of the pin's chunks goes straight to the store."""
    from neuromirror.read.loss import flush_all

    flush_all()
    work = clone(lost.d.ds, lost.tmp / "clone")
    git(work, "checkout", "-q", lost.d.version)
    subprocess.run(["datalad", "get", "-n", ZARR], cwd=work, capture_output=True, check=True)
    sub = work / ZARR
    git(sub, "config", "annex.security.allowed-ip-addresses", "all")
    s3_log = lost.archive.s3.log_requests()
    try:
        got = subprocess.run(["datalad", "get", "0.0"], cwd=sub, capture_output=True, text=True, check=False)
    finally:
        lost.archive.s3.log_requests(False)
    assert got.returncode == 0, got.stdout + got.stderr
    assert (sub / "0.0").read_bytes() == zarr_files(lost.old)["0.0"]
    assert not [r for r in s3_log if r[1].endswith("/0.0") or "/0.0?" in r[1]], s3_log


def test_a_reader_left_open_in_a_session_leaves_the_sessions_next_commands_their_index(lost: Lost) -> None:
    """A ``neuromirror://`` reader left open in a Python session, then commands in the same session while another
    process (the view, a shell) opens and closes the index: every command still opens it.

    The reader holds a connection of its own to the index (the URLs it found lost).  A command read the index's
    header with a descriptor of its own, and closing it dropped every lock the process held on the file, the
    reader's too; the other process's last close then took the file as unused and deleted its ``-wal`` and
    ``-shm`` under the reader, and the session's next command failed: "neuromirror: error: disk I/O error"."""
    import fsspec

    fs = fsspec.filesystem("neuromirror", skip_instance_cache=True, root=str(lost.root))
    assert fs.info(f"{lost.path()}/0.0")["size"] > 0  # the reader's connection, left open
    shell = [sys.executable, "-m", "neuromirror", "--root", str(lost.root), "urls", lost.d.spec]
    for _ in range(3):
        lost.d.run.ok("verify", "--stores", "--store", str(lost.store))  # a command of the session, writing it
        proc = subprocess.run(shell, capture_output=True, text=True)  # another process's, opened and closed
        assert proc.returncode == 0, proc.stderr
        assert (lost.root / ".neuromirror" / "index.sqlite-wal").exists()  # not taken as unused: the reader's
    assert lost.d.run.ok("urls", lost.d.spec)
    assert fs.info(f"{lost.path()}/0.1")["size"] > 0
