"""Multipart Zarrs (dandi-archive PRs #2869/#2887): chunks checked, kept, verified and restored by their multipart ETag.

Why: the archive's new Zarrs are ``upload_type: multipart``: each chunk goes up in a multipart upload, and the
Zarr's checksum tree is built from the chunks' multipart ETags (``<md5 of the parts' MD5s>-<parts>``), which
are no MD5 of the bytes.  A chunk keyed by a VURL key (no checksum of its own) was skipped by ``keep``, checked
by size only, and ``restore`` called the intact objects other bytes.  Here such a chunk has an XMPETAG key (its
ETag and the part size that made it), which keep, verify and restore check as they check an MD5E key, and
git-annex checks through the external backend ``git-annex-backend-XMPETAG``.  A dandiset holds a multipart and
a singlepart Zarr side by side, each with a chunk whose bytes get flipped.  The parts are toy-sized (4 KiB,
moto's minimum lowered to it) so that a chunk of a few KiB is "over the part size" as a 5 GB chunk is at the
archive.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import clone, git
from helpers.keep import T0, _flip_a_byte, lose_zarr, store_keys
from helpers.retrieve import Runner
from neuromirror.demo import deterministic_bytes

PART = 4 * 1024  # a power of two: a part size neuromirror tells from a size and a count of parts
MULTI, SINGLE = "sub-01/multi.zarr", "sub-02/single.zarr"
CHUNKS = {"0/0": 12_000, "0/1": 11_000, "1/0": 3_000}


@pytest.fixture
def backend_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``git-annex-backend-XMPETAG`` on PATH, as ``pip install neuromirror`` puts it (a copy of the console script
    where the environment predates it)."""
    import shutil

    if shutil.which("git-annex-backend-XMPETAG"):
        return
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "git-annex-backend-XMPETAG"
    script.write_text(f"#!{sys.executable}\nfrom neuromirror.remotes.mpetag import main\nmain()\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", PART)


def _zarr(archive, ident: str, path: str) -> object:  # noqa: ANN001
    return archive.asset_at(ident, path, "draft").zarr


def _etags(archive, z) -> dict[str, str]:  # noqa: ANN001
    c = archive.s3.client()
    return {rel: c.head_object(Bucket=z.bucket, Key=f"zarr/{z.zarr_id}/{rel}")["ETag"].strip('"') for rel in CHUNKS}


def _rewrite(archive, z, zds: Path, rel: str) -> None:  # noqa: ANN001
    """The chunk's plain S3 URL registered (as a mirror of an unversioned bucket would have it), then the object
    rewritten at the archive with a byte flipped: the plain URL serves other bytes, the pinned one the old."""
    key = f"zarr/{z.zarr_id}/{rel}"
    annex_key = Path(git(zds, "cat-file", "-p", f"HEAD:{rel}")).name
    git(zds, "annex", "registerurl", annex_key, f"{archive.s3.endpoint_url}/{z.bucket}/{key}")
    c = archive.s3.client()
    data = bytearray(c.get_object(Bucket=z.bucket, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0xFF
    c.put_object(Bucket=z.bucket, Key=key, Body=bytes(data))


def test_multipart_and_singlepart_zarrs_kept_verified_restored(
    dandi_archive, s3_env, small_parts, backend_on_path, tmp_path: Path
) -> None:  # noqa: ANN001
    archive = dandi_archive
    when = T0 + timedelta(days=len(archive.dandiset_ids()))
    ident = archive.create_dandiset(name="multipart zarrs", created=when)
    for i, (path, upload) in enumerate([(MULTI, "multipart"), (SINGLE, "singlepart")]):
        files = {rel: deterministic_bytes(f"{ident}:{path}:{rel}", n) for rel, n in CHUNKS.items()}
        archive.add_zarr_asset(ident, path, files, when=when + timedelta(minutes=i), upload_type=upload, part_size=PART)
    multi, single = _zarr(archive, ident, MULTI), _zarr(archive, ident, SINGLE)
    # the archive's Zarr record says how its chunks went up; the multipart ones carry multipart ETags
    import requests

    rec = requests.get(f"{archive.api_url}/zarr/{multi.zarr_id}/", timeout=30).json()
    assert rec["upload_type"] == "multipart"
    assert requests.get(f"{archive.api_url}/zarr/{single.zarr_id}/", timeout=30).json()["upload_type"] == "singlepart"
    original = {MULTI: _etags(archive, multi), SINGLE: _etags(archive, single)}
    assert original[MULTI]["0/0"].endswith("-3") and "-" not in original[SINGLE]["0/0"]

    run = Runner(tmp_path / "mirror")
    run.ok("sync", f"dandi:{ident}", "--dandi-api", archive.api_url)
    ds = run.root / "dandi" / ident
    keys = {
        p: {rel: Path(git(ds / p, "cat-file", "-p", f"HEAD:{rel}")).name for rel in CHUNKS} for p in (MULTI, SINGLE)
    }
    # a multipart chunk's key: its ETag and the part size that made it; a singlepart one's: its MD5
    assert keys[MULTI]["0/0"] == f"XMPETAG-s12000--{original[MULTI]['0/0']}-p{PART}"
    assert keys[MULTI]["1/0"] == f"XMPETAG-s3000--{original[MULTI]['1/0']}-p3000"  # one part: the chunk itself
    assert keys[SINGLE]["0/0"] == f"MD5E-s12000--{original[SINGLE]['0/0']}"

    # keep: every chunk of both Zarrs kept, none skipped
    store = tmp_path / "store"
    code, out, err = run("keep", f"dandi:{ident}", "--to", str(store), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert not report.get("skipped"), report
    assert {k for p in keys.values() for k in p.values()} <= store_keys(store)

    # a packed store keeps them too, and reads every copy back as good
    pack = f"pack+{(tmp_path / 'pack').as_uri()}"
    run.ok("keep", f"dandi:{ident}", "--to", pack)
    run.ok("verify", "--stores", f"dandi:{ident}", "--store", pack)

    # restore while the archive still holds every object: each is the same (a multipart ETag judged by its key)
    intact = json.loads(run.ok("restore", f"dandi:{ident}", "--to", f"s3://{multi.bucket}", "--json"))
    assert intact["written"]["objects"] == 0 and intact["differs"] == [] and intact["failed"] == [], intact
    # restore after the archive lost both Zarrs: each object's ETag is the archive's original again
    lose_zarr_path = [(MULTI, multi), (SINGLE, single)]
    for path, _z in lose_zarr_path:
        lose_zarr(_As(archive, ident), path)
    code, out, err = run("restore", f"dandi:{ident}", "--to", f"s3://{multi.bucket}", "--json")
    assert code == 0, out + err
    restored = json.loads(out)
    assert restored["failed"] == [] and restored["differs"] == [], restored
    assert {MULTI: _etags(archive, multi), SINGLE: _etags(archive, single)} == original
    # a second restore finds every object the same (by its ETag: nothing read, nothing written)
    again = json.loads(run.ok("restore", f"dandi:{ident}", "--to", f"s3://{multi.bucket}", "--json"))
    assert again["written"]["objects"] == 0 and again["differs"] == [], again

    # a clone gets a multipart chunk and git-annex checks it with the external backend: a flipped byte fails fsck
    work = clone(ds, tmp_path / "clone")
    got = subprocess.run(["datalad", "get", f"{MULTI}/0/0"], cwd=work, capture_output=True, text=True)
    assert got.returncode == 0, got.stdout + got.stderr
    assert (work / MULTI / "0/0").read_bytes() == deterministic_bytes(f"{ident}:{MULTI}:0/0", 12_000)
    fsck = subprocess.run(["git", "annex", "fsck", "0/0"], cwd=work / MULTI, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    _flip_a_byte((work / MULTI / "0/0").resolve())
    fsck = subprocess.run(["git", "annex", "fsck", "0/0"], cwd=work / MULTI, capture_output=True, text=True)
    assert fsck.returncode != 0 and "0/0" in fsck.stdout + fsck.stderr, fsck.stdout + fsck.stderr

    # verify --stores: a store's flipped copy of a chunk of each Zarr is found
    for p in (MULTI, SINGLE):
        _flip_a_byte(next(f for f in store.glob("*/*/*/*") if f.name == keys[p]["0/0"]))
    code, out, err = run("verify", "--stores", f"dandi:{ident}", "--json")
    assert code != 0, out + err
    assert keys[MULTI]["0/0"] in out and keys[SINGLE]["0/0"] in out, out

    # verify --content: a chunk rewritten at the archive serves other bytes from its plain URL
    for p, z in ((MULTI, multi), (SINGLE, single)):
        _rewrite(archive, z, ds / p, "0/1")
    # (a warning, not a failure: the bytes still verify from the store, as for any URL gone bad)
    out = run.ok("verify", f"dandi:{ident}", "--content", "--allow-ip", "all")
    for p, how in ((MULTI, "s3-multipart-etag"), (SINGLE, "md5")):
        bad = f"dead-url {p}/0/1: 1 dead URL(s) ({archive.s3.endpoint_url}"
        assert bad in out and f"/0/1 serves different bytes: {how} " in out, out
    assert out.count("serves different bytes") == 2, out


class _As:
    """The few fields :func:`helpers.keep.lose_zarr` reads of a mirrored dandiset."""

    def __init__(self, archive, ident: str) -> None:  # noqa: ANN001
        self.archive, self.id, self.version = archive, ident, "draft"


def test_git_annex_adds_and_checks_xmpetag_keys(backend_on_path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """A user's own ``git annex add --backend XMPETAG``: the backend makes the key S3 would give the upload (here in
    4 KiB parts), and fsck finds a flipped byte."""
    import hashlib

    monkeypatch.setenv("NEUROMIRROR_MPETAG_PART_SIZE", str(PART))
    repo = tmp_path / "repo"
    repo.mkdir()
    data = deterministic_bytes("xmpetag add", 10_000)
    (repo / "chunk").write_bytes(data)
    for args in (["init", "-q"], ["annex", "init", "-q"], ["annex", "add", "--backend", "XMPETAG", "chunk"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    md5s = b"".join(hashlib.md5(data[o : o + PART]).digest() for o in range(0, len(data), PART))
    key = Path(os.readlink(repo / "chunk")).name
    assert key == f"XMPETAG-s10000--{hashlib.md5(md5s).hexdigest()}-3-p{PART}"
    fsck = subprocess.run(["git", "annex", "fsck", "chunk"], cwd=repo, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    _flip_a_byte((repo / "chunk").resolve())
    fsck = subprocess.run(["git", "annex", "fsck", "chunk"], cwd=repo, capture_output=True, text=True)
    assert fsck.returncode != 0, fsck.stdout + fsck.stderr


def test_part_size_read_from_a_size_and_a_count_of_parts() -> None:
    """The part size an XMPETAG key records, from what a listing gives (size, ETag's count of parts), by the rules
    docs/dandi.md lists: DANDI's own first, then the usual clients' sizes, then powers of two."""
    from neuromirror.annex.keys import guess_part_size

    mib = 1 << 20
    assert guess_part_size(100 * mib, 2) == 64 * mib  # DANDI's PartGenerator: 64 MiB parts
    assert guess_part_size(9 * mib, 2) == 5 * mib  # 5 MiB parts, as the upload
    assert guess_part_size(12 * mib, 3) == 5 * mib
    assert guess_part_size(12_000, 3) == PART  # toy sizes: a power of two
    assert guess_part_size(3_000, 1) == 3_000  # one part: the object itself
    assert guess_part_size(10, 20) is None  # no part size makes more parts than bytes
