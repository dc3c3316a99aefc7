"""The stand-in archives the scenarios mirror, filled fast through their Python APIs.

S3 (moto) and the DANDI API stand-in run in this process, on loopback.  Filling them is
not what is measured, so objects are put straight into moto's backend
(``S3Backend.put_object``) instead of through boto3 and moto's HTTP server: for the
scale scenarios the stand-in's ``s3.put`` is rebound while they fill (:func:`direct_puts`),
so that filling 10^6 objects takes a minute, not an hour.  Nothing the sync asks is
answered differently.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Iterator, Protocol
from unittest import mock

from neuromirror.bench.moto_patch import (
    Counters,
    Slab,
    invalidate_listing_cache,
    moto_bucket_backend,
    patch_moto,
    render_ahead,
    slab_values,
)

if TYPE_CHECKING:
    from neuromirror.standins.dandi.server import DandiStandIn
    from neuromirror.standins.s3 import S3StandIn


class StandIns(Protocol):
    """What the fill helpers and a measured sync use of the archives: :class:`Archives` here, or the same
    stand-ins a network away (:class:`~neuromirror.bench.network.NetworkArchives`)."""

    counters: Counters
    s3: S3StandIn
    dandi: DandiStandIn


class Archives:
    """S3 + DANDI stand-ins in this process, filled fast through their Python APIs."""

    AIND_BUCKET = "aind-open-data-bench"

    def __init__(self) -> None:
        from neuromirror.standins.dandi.server import DandiStandIn
        from neuromirror.standins.s3 import S3StandIn

        self.counters = Counters()
        patch_moto(self.counters)
        slab_values(Slab())
        self.s3 = S3StandIn().start()
        self.dandi = DandiStandIn(self.s3, bucket="dandiarchive-bench").start()
        self.s3.create_bucket(self.AIND_BUCKET, versioned=True, public=True)

    def close(self) -> None:
        self.dandi.stop()
        self.s3.stop(cleanup=False)

    def dandiset(self, n: int, when: datetime) -> tuple[str, list[str]]:
        """A dandiset of ``n`` assets whose blobs exist in S3 (tiny objects); its S3 URLs."""
        ident = self.dandi.create_dandiset(name=f"bench {n}", created=when)
        # uploaded one after the other (1 ms apart), as an archive's assets are: the -modified head of a
        # resync ends at the watermark (sources.dandi.changes), where one shared time would be read whole
        ids = self.dandi.add_synthetic_assets(ident, n, when=when, step=timedelta(milliseconds=1))
        be = moto_bucket_backend(self.dandi.bucket)
        urls = []
        for aid in ids:
            put_empty_blob(be, self.dandi, aid)
            urls.append(self.dandi.s3_url(aid))
        return ident, urls

    def change_three(self, ident: str, when: datetime) -> None:
        """1 asset added, 1 removed, 1 changed (new content at an existing path)."""
        change_three(self.dandi, ident, when)

    def aind_asset(self, n: int) -> str:
        """An AIND asset of ``n`` objects (2 sidecars + tiny distinct binaries, 1000 per folder)."""
        name = f"ecephys_{n}_2024-01-01_00-00-00"
        be = moto_bucket_backend(self.AIND_BUCKET)
        sidecar = {
            "data_description.json": json.dumps(
                {
                    "name": name,
                    "subject_id": str(n),
                    "modality": ["ecephys"],
                    "creation_time": "2024-01-01T00:00:00",
                    "data_level": "raw",
                }
            ),
            "subject.json": json.dumps({"subject_id": str(n), "sex": "Female"}),
        }
        for rel, text in sidecar.items():
            be.put_object(self.AIND_BUCKET, f"{name}/{rel}", text.encode(), disable_notification=True)
        for i in range(max(0, n - len(sidecar))):
            be.put_object(
                self.AIND_BUCKET,
                f"{name}/ecephys/block{i // 1000:04d}/chunk-{i:07d}.dat",
                i.to_bytes(8, "big"),
                disable_notification=True,
            )
        invalidate_listing_cache()
        return name

    def drop_objects(self, bucket: str) -> None:
        """Forget every object of ``bucket`` (moto holds each in memory: ~4 KB apiece)."""
        moto_bucket_backend(bucket).buckets[bucket].keys.clear()
        invalidate_listing_cache()

    def head_urls_sample(self, urls: list[str], k: int) -> list[str]:
        if len(urls) <= k:
            return list(urls)
        step = len(urls) / k
        return [urls[int(i * step)] for i in range(k)]


@contextmanager
def direct_puts(archives: StandIns) -> Iterator[None]:
    """Uploads of the stand-ins go straight into moto's backend (see the module)."""
    s3 = archives.s3
    original = s3.put

    def put(bucket: str, key: str, data: bytes, **kwargs: Any) -> str:
        if kwargs:
            return original(bucket, key, data, **kwargs)
        k = moto_bucket_backend(bucket).put_object(bucket, key, data, disable_notification=True)
        return str(k.version_id or "null")

    def put_parts(bucket: str, key: str, data: bytes, parts: list) -> str:
        return put(bucket, key, data)  # one part's ETag: the bench never compares it

    try:
        with mock.patch.object(s3, "put", put), mock.patch.object(s3, "put_parts", put_parts):
            yield
    finally:
        invalidate_listing_cache()


def change_three(dandi: DandiStandIn, ident: str, when: datetime) -> None:
    """1 asset of dandiset ``ident`` added, 1 removed, 1 changed (new content at an existing path)."""
    paths = sorted(dandi.dandiset(ident).draft.assets)
    dandi.put_asset(ident, "sub-new/sub-new_obj.nwb", b"added by the bench\n", when=when)
    dandi.delete_asset(ident, paths[0], when=when + timedelta(seconds=1))
    dandi.put_asset(ident, paths[len(paths) // 2], b"changed by the bench\n", when=when + timedelta(seconds=2))


def put_empty_blob(backend: Any, dandi: DandiStandIn, asset_id: str) -> None:
    """The S3 object of a synthetic asset's blob, put straight into moto's ``backend`` (empty: only HEADed)."""
    blob = dandi.asset(asset_id).blob
    if blob is None:
        raise ValueError(f"asset {asset_id} is a Zarr, not a blob")
    blob.version_id = backend.put_object(blob.bucket, blob.key, b"", disable_notification=True).version_id
    blob.uploaded = True


def zarr_files(m: int, tag: str = "") -> dict[str, bytes]:
    """An OME-Zarr-like store of ``m`` objects: metadata at the top, chunks 1,000 per folder."""
    files = {".zgroup": b'{"zarr_format": 2}', ".zattrs": json.dumps({"tag": tag}).encode()}
    for i in range(max(0, m - len(files))):
        files[f"0/{i // 1000}/{i % 1000}"] = f"{tag}{i}".encode()
    return files


def zarr_path(i: int) -> str:
    """The path of the ``i``-th generated Zarr asset (100 per subject directory)."""
    return f"sub-{i // 100:03d}/sub-{i:05d}_sample.ome.zarr"


def zarr_dandiset(
    archives: StandIns, n: int, objects: int, blobs: int, when: datetime, name: str
) -> tuple[str, list[str]]:
    """A stand-in dandiset of ``n`` Zarrs x ``objects`` + ``blobs`` empty blobs: its id and Zarr ids."""
    d = archives.dandi
    ident = d.create_dandiset(name=name, created=when)
    be = moto_bucket_backend(d.bucket)
    for aid in d.add_synthetic_assets(ident, blobs, when=when, step=timedelta(milliseconds=1)):
        put_empty_blob(be, d, aid)
    zarr_ids = []
    with direct_puts(archives):
        for i in range(n):
            at = when + timedelta(milliseconds=blobs + i)  # one after the other, after the blobs (see dandiset())
            aid = d.add_zarr_asset(ident, zarr_path(i), zarr_files(objects, tag=str(i)), when=at)
            zarr = d.asset(aid).zarr
            assert zarr is not None  # a Zarr asset has its Zarr
            zarr_ids.append(zarr.zarr_id)
    render_ahead(d.bucket)
    return ident, zarr_ids


def change_two_zarrs_and_a_blob(archives: StandIns, ident: str, zarr_ids: list[str], when: datetime) -> None:
    """The change the Zarr scenarios time: 2 Zarrs changed (1 object added, 1 rewritten, 1 deleted each)
    and 1 blob asset added."""
    d = archives.dandi
    with direct_puts(archives):
        for zid in zarr_ids[:2]:
            keys = d.zarr(zid).sorted_keys()
            d.modify_zarr(zid, put={"0/new/added": b"added", keys[-1]: b"rewritten"}, delete=[keys[-2]], when=when)
        d.put_asset(ident, "sub-new/sub-new_added.nwb", b"a blob added by the bench\n", when=when)
    render_ahead(d.bucket)
