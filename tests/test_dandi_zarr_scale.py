"""A dandiset of many Zarr assets, at small size on the code paths of the large one (issue 13).

One commit of the dandiset per sync however many Zarrs changed; an unchanged
Zarr is neither listed nor asked about nor touched; a Zarr whose listing is cut
short or whose checksum disagrees is refused while the rest of the dandiset is
mirrored; a clone gets the right bytes from each Zarr subdataset at the
dandiset's tag; and the per-Zarr work is a self-contained, picklable job that a
process pool can run.
"""

from __future__ import annotations

import hashlib
import pickle
import random
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import PurePosixPath

import pytest

from conftest import CLI, git
from helpers.dandi_full import T0, annexed_checksum, archive_checksum, clone_all, get, user_env, zarr_files
from neuromirror.engine.zarr.job import ZarrJob, ZarrRecord, mirror_zarr
from neuromirror.sources.dandi import zarr_listing
from neuromirror.sources.dandi.unsigned_s3 import UnsignedS3

ZARRS = 5


@pytest.fixture(scope="module")
def archive(s3):  # noqa: ANN001, ANN201
    from neuromirror.standins.dandi.server import DandiStandIn

    with DandiStandIn(s3, bucket="nm-zarr-scale") as a:
        yield a


@pytest.fixture
def mcli(tmp_path, capsys, archive, monkeypatch) -> CLI:  # noqa: ANN001
    monkeypatch.delenv("DANDI_API_KEY", raising=False)
    return CLI(tmp_path / "mirror", capsys, archive.api_url)


class Listings(list):
    """Zarr ids listed, in order; ``cut``: Zarrs whose listing comes back one object short."""

    cut: set


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> Listings:
    calls = Listings()
    calls.cut = set()
    real = zarr_listing.list_zarr

    def counting(source, zarr_id, *rest):  # noqa: ANN001, ANN002, ANN202
        calls.append(zarr_id)
        objs, how = real(source, zarr_id, *rest)
        return (objs[:-1] if zarr_id in calls.cut else objs), how

    monkeypatch.setattr(zarr_listing, "list_zarr", counting)
    return calls


def sync_commits(ds) -> list[str]:  # noqa: ANN001
    """The dandiset's commits made by syncs (one per version synced)."""
    return git(ds, "log", "--format=%H", "--grep=^Neuromirror-Source: ").split()


def test_checksum_matches_zarr_checksum_package() -> None:
    from zarr_checksum.tree import ZarrChecksumTree

    rnd = random.Random(13)
    for _ in range(100):
        names: set[str] = set()
        for _ in range(rnd.randint(0, 30)):
            names.add(
                "/".join(
                    rnd.choice(["a", "b", "0", "10", "9", "é", "x y", ".zarray", 'q"', "b\\s", "t\t", "~"])
                    + str(rnd.randint(0, 2))
                    for _ in range(rnd.randint(1, 4))
                )
            )
        names = {n for n in names if not any(m.startswith(n + "/") for m in names)}
        leaves = [(n, rnd.randint(0, 99), hashlib.md5(n.encode()).hexdigest()) for n in sorted(names)]
        tree = ZarrChecksumTree()
        for rel, size, md5 in leaves:
            tree.add_leaf(path=PurePosixPath(rel), size=size, digest=md5)
        assert zarr_listing.checksum_of(leaves) == tree.process().digest


def test_unsigned_listing_urls_are_boto3s() -> None:
    """The URLs of anonymous ListObjectVersions pages, built without boto3, are the ones boto3 builds
    with the configuration the Zarr listing used (virtual-hosted on AWS, path-style at an endpoint)."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    pages = [
        {"Bucket": "dandiarchive", "Prefix": "zarr/0d5b9be5/", "EncodingType": "url"},
        {"Bucket": "dandiarchive", "Prefix": "zarr/a b~c+é/", "EncodingType": "url", "KeyMarker": "zarr/x/0/1 2"},
        {"Bucket": "my.bucket", "Prefix": "p/", "KeyMarker": "p/k=1&2", "VersionIdMarker": "v+1/=", "MaxKeys": 10},
        {"Bucket": "Upper_Bucket", "Prefix": ""},
    ]
    for region in ("us-east-1", "us-east-2"):
        for endpoint in (None, "http://127.0.0.1:9000", "https://s3.example.org/"):
            ours = UnsignedS3(endpoint, region)
            boto = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint,
                region_name=region,
                config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path" if endpoint else "virtual"}),
            )
            for params in pages:
                expected = boto.generate_presigned_url("list_object_versions", Params=params, ExpiresIn=3600)
                assert ours.generate_presigned_url("list_object_versions", Params=params) == expected


def test_many_zarrs_one_commit_unchanged_untouched_refusals_and_clone(mcli, archive, listings, tmp_path) -> None:  # noqa: ANN001
    ident = archive.create_dandiset(name="many zarrs", created=T0)
    archive.put_asset(ident, "sub-00/sub-00_ecephys.nwb", b"nwb" * 300, when=T0)
    files = {i: zarr_files(f"z{i}", chunks=1) for i in range(ZARRS)}
    aids = [archive.add_zarr_asset(ident, f"sub-{i:02d}/sample.ome.zarr", files[i], when=T0) for i in range(ZARRS)]
    zids = [archive.asset(a).zarr.zarr_id for a in aids]
    version = archive.publish(ident, when=T0 + timedelta(hours=1))

    code, out, err = mcli("sync", f"dandi:{ident}")
    assert code == 0, err
    assert "refused" not in out and "pending" not in out, out
    ds = mcli.root / "dandi" / ident
    # the published version and the draft: one commit each, not one per Zarr; each Zarr listed once
    assert len(sync_commits(ds)) == 2
    assert sorted(listings) == sorted(zids)
    for i, aid in enumerate(aids):
        zds = ds / f"sub-{i:02d}/sample.ome.zarr"
        # a DataLad dataset (made without datalad create): id committed in .datalad/config and, the work
        # tree holding its top-level files only, in .git/config (DataLad reads both); git-annex initialised
        dsid = git(zds, "config", "--blob", "HEAD:.datalad/config", "datalad.dataset.id").strip()
        assert dsid and git(zds, "config", "datalad.dataset.id").strip() == dsid
        assert git(zds, "config", "annex.uuid").strip()
        assert annexed_checksum(zds) == archive_checksum(archive, aid)
        assert len(git(zds, "log", "--format=%H", "--grep=^Neuromirror-Zarr: ").split()) == 1
    assert git(ds, "status", "--porcelain") == ""
    assert git(mcli.root, "status", "--porcelain", "--ignore-submodules=none") == ""
    heads = {i: git(ds / f"sub-{i:02d}/sample.ome.zarr", "rev-parse", "HEAD").strip() for i in range(ZARRS)}

    # 1 Zarr changed in place, 1 whose checksum the archive gets wrong, 1 whose listing is cut short,
    # and a blob added: the changed Zarr and the blob are mirrored, the two others refused
    later = T0 + timedelta(days=1)
    archive.modify_zarr(zids[0], put={"0/0/7/7": b"rewritten", "0/9/0/0": b"added"}, delete=["0/0/0/0"], when=later)
    archive.modify_zarr(zids[1], put={"0/9/9/9": b"new in 1"}, when=later)
    archive.corrupt_zarr_checksum(aids[1])
    archive.modify_zarr(zids[2], put={"0/9/9/9": b"new in 2"}, when=later)
    listings.cut.add(zids[2])
    archive.put_asset(ident, "sub-00/sub-00_new.nwb", b"new" * 100, when=later)
    del listings[:]
    archive.reset_request_log()
    code, out, err = mcli("sync", f"dandi:{ident}")
    assert code == 3, err  # the rest synced, two Zarrs refused
    assert "refused 'sub-01/sample.ome.zarr': refused: Zarr checksum mismatch" in out, out
    assert "refused 'sub-02/sample.ome.zarr': refused: Zarr checksum mismatch" in out, out
    assert "kept the last verified state" in out
    assert len(sync_commits(ds)) == 3  # one more: the draft's
    # unchanged Zarrs: not listed, no metadata asked for, their datasets untouched
    assert sorted(listings) == sorted([zids[0], zids[1], zids[1], zids[2], zids[2]])
    asked = " ".join(path for _, path in archive.request_log)
    for i in (3, 4):
        assert aids[i] not in asked and zids[i] not in asked
        zds = ds / f"sub-{i:02d}/sample.ome.zarr"
        assert git(zds, "rev-parse", "HEAD").strip() == heads[i]
        assert len(git(zds, "log", "--format=%H").split()) == 2  # creation + the one mirror commit
    # the changed one: its new state, in the dandiset's HEAD; the refused ones at their last state
    z0 = ds / "sub-00/sample.ome.zarr"
    assert git(ds, "rev-parse", "HEAD:sub-00/sample.ome.zarr").strip() == git(z0, "rev-parse", "HEAD").strip()
    assert annexed_checksum(z0) == archive_checksum(archive, aids[0])
    for i in (1, 2):
        assert git(ds, "rev-parse", f"HEAD:sub-{i:02d}/sample.ome.zarr").strip() == heads[i]
    assert "sub-00/sub-00_new.nwb" in git(ds, "ls-tree", "-r", "--name-only", "HEAD")
    assert git(ds, "status", "--porcelain") == ""

    # nothing changed since, but the cut-short listing is whole again: only the refused Zarrs are
    # listed (tried again), the one now whole is mirrored
    listings.cut.clear()
    del listings[:]
    before = sync_commits(ds)
    code, out, _ = mcli("sync", f"dandi:{ident}")
    assert code == 3  # sub-01's checksum is still wrong: still refused
    assert zids[0] not in listings and zids[3] not in listings and zids[4] not in listings
    assert zids[2] in listings  # its listing is whole now: mirrored
    assert len(sync_commits(ds)) == len(before) + 1

    # a new published version of this draft: its tag pins each Zarr at the commit the draft's sync
    # made (found in the index's cache, not listed again), and the Zarr's dataset gets the tag
    del listings[:]
    v2 = archive.publish(ident, when=later + timedelta(hours=2))
    code, out, err = mcli("sync", f"dandi:{ident}")
    assert code == 3 and "2 item(s) refused" in err, err  # the wrong Zarr, refused in the draft and in v2
    assert not {zids[0], zids[2], zids[3], zids[4]} & set(listings), listings
    for i in (0, 2, 3):
        p = f"sub-{i:02d}/sample.ome.zarr"
        head = git(ds / p, "rev-parse", "HEAD").strip()
        assert git(ds, "rev-parse", f"{v2}:{p}").strip() == head
        assert git(ds / p, "rev-parse", f"{v2}^{{commit}}").strip() == head

    # a user clones the mirror and gets chunks of several Zarrs at the published tag
    env = user_env(archive)
    work = clone_all(mcli.root, tmp_path / "work", env, f"dandi/{ident}")
    wds = work / "dandi" / ident
    git(wds, "checkout", "-q", version)
    paths = [f"sub-{i:02d}/sample.ome.zarr" for i in range(ZARRS)]
    git(wds, "submodule", "update", "--", *paths)
    p = get(wds, env, *(f"{p}/0/0/0/0" for p in paths))
    assert p.returncode == 0, p.stdout + p.stderr
    for i, p in enumerate(paths):
        assert (wds / p / "0/0/0/0").read_bytes() == files[i]["0/0/0/0"]  # as published (0's was deleted since)


def test_zarr_job_is_picklable_and_runs_in_a_process_pool(archive, tmp_path) -> None:  # noqa: ANN001
    """The unit another executor (Dask, a process pool) runs: small picklable input and output."""
    ident = archive.create_dandiset(name="job", created=T0)
    files = zarr_files("job", chunks=1)
    aid = archive.add_zarr_asset(ident, "job.zarr", files, when=T0)
    z = archive.asset(aid).zarr
    job = ZarrJob(
        dandiset=ident,
        api_url=archive.api_url,
        path="job.zarr",
        zarr_id=z.zarr_id,
        asset_id=aid,
        dataset=str(tmp_path / "job.zarr"),
        checksum=z.reported_checksum,
        s3_base=archive.s3_url(aid),
        embargoed=False,
        modified=None,
        description="a test Zarr",
    )
    assert pickle.loads(pickle.dumps(job)) == job
    with ProcessPoolExecutor(1) as pool:
        rec = pool.submit(mirror_zarr, job).result()
    assert isinstance(rec, ZarrRecord) and rec.refused is None and rec.objects == len(files)
    assert pickle.loads(pickle.dumps(rec)) == rec
    assert git(tmp_path / "job.zarr", "rev-parse", "HEAD").strip() == rec.commit
    assert annexed_checksum(tmp_path / "job.zarr") == z.reported_checksum
    assert set(rec.timings) == {"listing", "checksum", "create", "commit"}
