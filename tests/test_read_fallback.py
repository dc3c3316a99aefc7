"""Every view route answers a file the same way, from what the records say now: keep and restore while it runs.

A dandiset with a blob and a Zarr is mirrored and ``neuromirror serve --http`` started (a real process);
readers list the pin and read the Zarr through ``/dav/`` and dandidav's ``/zarrs/`` (from the mirror's
manifest) while the archive serves.  Only then ``keep --to DIR`` copies the pin into a directory store, and
the archive loses every S3 version of the blob and of the Zarr's objects.  The same view, not restarted,
streams the kept bytes from the store on every route (``/dav/``, ``/dandisets/``, ``/zarrs/``: requests
following redirects, zarr-python through ``/zarrs/``).  Then ``restore`` writes the bytes back into the
archive's bucket (new S3 versions, registered on the ``git-annex`` branch): every route redirects to the
archive again, to the restored version's URL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import requests

from helpers.keep import lose_blobs, lose_zarr, make_dandiset
from helpers.read import view_server, zarr_files

ZARR = "sub-09/sample.zarr"
BLOB = "sub-01/a.nwb"
pytestmark = pytest.mark.usefixtures("s3_env")  # restore's endpoint and credentials


def test_every_route_follows_keep_loss_and_restore_while_the_view_runs(dandi_archive, s3, tmp_path: Path) -> None:  # noqa: ANN001
    values = np.arange(16, dtype="int32").reshape(4, 4) * 3
    chunks = zarr_files(values)
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {BLOB: 40_000}, zarr=chunks)
    z = dandi_archive.asset_at(d.id, ZARR, d.version).zarr
    import zarr

    with view_server(d.run.root) as base:
        manifests = f"{base}zarr-manifests/{z.zarr_id[:3]}/{z.zarr_id[3:6]}/{z.zarr_id}/"
        (state,) = requests.get(manifests, timeout=30).json()["files"]
        zarrs = f"{base}zarrs/{z.zarr_id[:3]}/{z.zarr_id[3:6]}/{z.zarr_id}/{state[: -len('.json')]}.zarr"
        dav = f"{base}dav/dandi/{d.id}/{d.version}"
        routes = {
            "dav": f"{dav}/{BLOB}",
            "dandisets": f"{base}dandisets/{d.id}/releases/{d.version}/{BLOB}",
            "dav-chunk": f"{dav}/{ZARR}/0.0",
            "zarrs-chunk": f"{zarrs}/0.0",
        }
        want = {"dav": d.files[BLOB], "dandisets": d.files[BLOB]}
        want.update({"dav-chunk": chunks["0.0"], "zarrs-chunk": chunks["0.0"]})
        # readers list the pin and read the Zarr on both routes while the archive serves: listings kept
        listing = requests.get(f"{dav}/sub-01/?format=json", timeout=30).json()
        assert [e["served_by"] for e in listing["entries"]] == ["archive"]
        for url in (f"{dav}/{ZARR}", zarrs):
            np.testing.assert_array_equal(zarr.open_array(url, mode="r")[:], values)
        for name in ("dav-chunk", "zarrs-chunk"):
            r = requests.get(routes[name], allow_redirects=False, timeout=30)
            assert r.status_code == 307 and "versionId=" in r.headers["Location"], (name, r.status_code, r.text)

        # kept while the view runs, then lost upstream: every route streams the store's copy
        d.run.ok("keep", d.spec, "--to", str(tmp_path / "store"))
        lose_blobs(d, [BLOB])
        lose_zarr(d, ZARR)
        for name, url in routes.items():
            r = requests.get(url, timeout=30)
            assert (r.status_code, r.content) == (200, want[name]), (name, r.status_code, r.text[:300])
        r = requests.get(routes["zarrs-chunk"], headers={"Range": "bytes=2-9"}, timeout=30)
        assert (r.status_code, r.content) == (206, chunks["0.0"][2:10])
        np.testing.assert_array_equal(zarr.open_array(zarrs, mode="r")[:], values)
        listing = requests.get(f"{dav}/sub-01/?format=json", timeout=30).json()
        assert [e["served_by"] for e in listing["entries"]] in (["archive"], ["store"])  # "store": a loss marked

        # restored into the archive's bucket: every route redirects to the archive again, to the new version
        code, out, err = d.run("restore", d.spec, "--to", f"s3://{z.bucket}", "--json")
        assert '"failed": []' in out, (code, out, err)
        client = s3.client()
        blob = dandi_archive.asset_at(d.id, BLOB, d.version).blob
        restored = {
            "dav": client.head_object(Bucket=blob.bucket, Key=blob.key)["VersionId"],
            "chunk": client.head_object(Bucket=z.bucket, Key=f"zarr/{z.zarr_id}/0.0")["VersionId"],
        }
        for name, url in routes.items():
            r = requests.get(url, allow_redirects=False, timeout=30)
            version = restored["chunk" if name.endswith("chunk") else "dav"]
            assert r.status_code == 307, (name, r.status_code, r.text)
            assert r.headers["Location"].endswith(f"?versionId={version}"), (name, r.headers["Location"])
            assert requests.get(url, timeout=30).content == want[name], name
        np.testing.assert_array_equal(zarr.open_array(zarrs, mode="r")[:], values)
