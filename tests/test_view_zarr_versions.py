"""The archive's designed Zarr backend on the view: ``/zarr/{zarr_id}/{version}/{path}`` (issue 78).

A stand-in dandiset holds a Zarr whose chunk ``0.0`` upstream rewrote in place between two syncs: two
states the mirror recorded.  ``neuromirror serve --http 127.0.0.1:0 --no-schedule`` runs as a real
process; zarr-python reads each state at ``/zarr/{zarr_id}/{version}/`` through fsspec's HTTP filesystem
(which follows the redirects), by the archive's checksum and by the mirror's commit; requests checks the
302 to the pinned ``versionId`` URL, the per-version manifest and the 404s.  Then a second dandiset like
it is mirrored while the same view runs, a reader opens both its states, ``keep --to DIR`` copies both
states and the archive loses every S3 version of the rewritten chunk: the reader, not reopened, reads
each state's pinned values from the store (the redirect now names the view's ``/zarrs/`` path of it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import requests

from helpers.keep import _delete_all_versions
from helpers.read import Mirrored, manifest_shape, view_server


@dataclass
class Served:
    m: Mirrored
    url: str  # the view's base URL, ending in "/"

    def get(self, path: str, **kw) -> requests.Response:  # noqa: ANN003
        return requests.get(self.url + path.lstrip("/"), allow_redirects=False, timeout=60, **kw)

    def versions(self, m: Mirrored) -> list[dict]:
        r = self.get(f"zarr/{m.zarr_id}/")
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/json", r.text
        return r.json()["versions"]


@pytest.fixture(scope="module")
def served(dandi_archive, tmp_path_factory) -> Iterator[Served]:  # noqa: ANN001
    root = tmp_path_factory.mktemp("zarrview") / "mirror"
    m = Mirrored(dandi_archive, root)
    with view_server(root) as url:
        yield Served(m, url)


def read(url: str) -> np.ndarray:
    import zarr

    return zarr.open_array(url, mode="r")[:]


def test_zarr_python_reads_each_recorded_state_by_checksum_and_by_commit(served: Served) -> None:
    m = served.m
    assert 'href="/zarr/"' in served.get("").text, "the landing page links the route"
    zarrs = served.get("zarr/").json()["zarrs"]
    assert {"zarrId": m.zarr_id, "url": f"{served.url}zarr/{m.zarr_id}/"} in zarrs
    versions = served.versions(m)
    assert len(versions) == 2, "one version per Zarr state the mirror recorded"
    old, new = versions  # oldest first
    for v, values in ((old, m.old), (new, m.new)):
        assert re.fullmatch(r"[0-9a-f]{32}-\d+--\d+", v["version"]) and re.fullmatch(r"[0-9a-f]{40}", v["commit"])
        assert v["url"] == f"{served.url}zarr/{m.zarr_id}/{v['version']}/"
        np.testing.assert_array_equal(read(v["url"]), values)
        np.testing.assert_array_equal(read(f"{served.url}zarr/{m.zarr_id}/{v['commit']}/"), values)
        np.testing.assert_array_equal(read(f"{served.url}zarr/{m.zarr_id}/{v['version']}.zarr"), values)
    # the design's redirect: a chunk answers 302 to the versionId URL that state recorded (HEAD too)
    for v in versions:
        r = served.get(f"zarr/{m.zarr_id}/{v['version']}/0.0")
        assert r.status_code == 302 and "versionId=" in r.headers["Location"], (r.status_code, r.text)
        head = requests.head(f"{served.url}zarr/{m.zarr_id}/{v['version']}/0.0", timeout=60)
        assert (head.status_code, head.headers["Location"]) == (302, r.headers["Location"])
    firsts = {served.get(f"zarr/{m.zarr_id}/{v['version']}/0.0").headers["Location"] for v in versions}
    assert len(firsts) == 2, "the rewritten chunk: another S3 version in each state"


def test_each_version_has_the_manifest_of_every_chunk_beside_it(served: Served) -> None:
    m = served.m
    shard = f"{m.zarr_id[:3]}/{m.zarr_id[3:6]}/{m.zarr_id}"
    for v in served.versions(m):
        doc = served.get(f"zarr/{m.zarr_id}/{v['version']}/").json()
        on_disk = dict(manifest_shape(served.get(f"zarr-manifests/{shard}/{v['version']}.json").text))
        assert (doc["zarrId"], doc["version"], doc["commit"]) == (m.zarr_id, v["version"], v["commit"])
        assert doc["zarrManifest"] == f"{served.url}zarr-manifests/{shard}/{v['version']}.json"
        assert sorted(doc["entries"]) == sorted(on_disk) and {".zarray", "0.0", "1.1"} <= set(on_disk)
        assert doc["statistics"]["entries"] == len(on_disk)
        for path, row in doc["entries"].items():
            version_id, modified, size, etag = on_disk[path]
            assert row == {"versionId": version_id, "lastModified": modified, "size": size, "ETag": etag,
                           "url": row["url"]}  # fmt: skip
            assert row["url"].endswith(f"/{path}?versionId={version_id}")
            assert served.get(f"zarr/{m.zarr_id}/{v['version']}/{path}").headers["Location"] == row["url"]
            data = requests.get(row["url"], timeout=60).content
            assert len(data) == size
        assert served.get(f"zarr/{m.zarr_id}/{v['version']}").json()["entries"] == doc["entries"]


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("zarr//0.0", "no such Zarr"),
        ("zarr/00000000-0000-0000-0000-000000000000/x/0.0", "no Zarr of this id"),
        ("zarr/{zid}/0123456789abcdef0123456789abcdef-5--160/0.0", "no state of this Zarr"),
        ("zarr/{zid}/{no_commit}/", "no state of this Zarr"),
        ("zarr/{zid}/{version}/9.9", "not in this Zarr state"),
    ],
)
def test_an_unknown_id_version_or_path_is_a_404_in_one_line(served: Served, path: str, says: str) -> None:
    m = served.m
    version = served.versions(m)[0]["version"]
    url = path.format(zid=m.zarr_id, version=version, no_commit="0" * 40)
    for r in (served.get(url), requests.head(served.url + url, timeout=60)):
        assert r.status_code == 404, (url, r.status_code)
    r = served.get(url)
    assert says in r.text and r.text.count("\n") == 1 and r.text.endswith("\n"), r.text
    put = requests.put(f"{served.url}zarr/{m.zarr_id}/{version}/0.0", data=b"x", timeout=60)
    assert put.status_code == 405 and put.headers["Allow"] == "GET, HEAD"


def test_a_reader_keeps_reading_the_pinned_values_after_the_archive_lost_the_chunk(
    served: Served,
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    """The archive URL dies after the reader started: the store's copy, through the same URLs."""
    import zarr

    m = Mirrored(dandi_archive, served.m.root)  # mirrored while the view runs: it sees the new Zarr
    old, new = served.versions(m)
    readers = {v["version"]: zarr.open_array(v["url"], mode="r") for v in (old, new)}
    np.testing.assert_array_equal(readers[old["version"]][:], m.old)
    np.testing.assert_array_equal(readers[new["version"]][:], m.new)
    before = {v["version"]: served.get(f"zarr/{m.zarr_id}/{v['version']}/0.0").headers["Location"] for v in (old, new)}
    assert all("versionId=" in u for u in before.values())

    store = tmp_path / "store"
    m.run.ok("keep", f"{m.source}@{m.first}", "--to", str(store))
    m.run.ok("keep", f"{m.source}@draft", "--to", str(store))
    z = dandi_archive.asset_at(m.id, "sub-09/sample.zarr", "draft").zarr
    _delete_all_versions(dandi_archive.s3.client(), z.bucket, f"zarr/{m.zarr_id}/0.0")
    for url in before.values():
        assert requests.get(url, timeout=60).status_code == 404, "every S3 version of the chunk is gone"

    # the readers opened before the loss read each state's own pinned chunk, from the store
    np.testing.assert_array_equal(readers[old["version"]][:], m.old)
    np.testing.assert_array_equal(readers[new["version"]][:], m.new)
    shard = f"{m.zarr_id[:3]}/{m.zarr_id[3:6]}/{m.zarr_id}"
    for v in (old, new):
        r = served.get(f"zarr/{m.zarr_id}/{v['version']}/0.0")
        assert r.status_code == 302 and r.headers["Location"] == (
            f"{served.url}zarrs/{shard}/{v['version']}.zarr/0.0"
        ), r.headers.get("Location")
        assert "versionId" not in r.headers["Location"] and str(store) not in json.dumps(dict(r.headers))
        kept = requests.get(r.headers["Location"], timeout=60)
        assert kept.status_code == 200 and len(kept.content) == 16  # a 2 x 2 int32 chunk, uncompressed
        # an unchanged chunk still redirects to the archive
        assert "versionId=" in served.get(f"zarr/{m.zarr_id}/{v['version']}/1.1").headers["Location"]
    np.testing.assert_array_equal(read(old["url"]), m.old)
    np.testing.assert_array_equal(read(f"{served.url}zarr/{m.zarr_id}/{new['commit']}/"), m.new)


def test_a_lost_chunk_no_store_holds_is_gone_never_a_fill_value(served: Served, dandi_archive) -> None:  # noqa: ANN001
    """Nothing kept: the redirect stops (410 naming the key), and zarr-python fails loudly instead of reading the
    fill value a 404 would give it; the chunks the archive still serves redirect as before."""
    import zarr

    m = Mirrored(dandi_archive, served.m.root)
    _, new = served.versions(m)
    reader = zarr.open_array(new["url"], mode="r")
    np.testing.assert_array_equal(reader[:], m.new)
    z = dandi_archive.asset_at(m.id, "sub-09/sample.zarr", "draft").zarr
    _delete_all_versions(dandi_archive.s3.client(), z.bucket, f"zarr/{m.zarr_id}/0.0")
    r = served.get(f"zarr/{m.zarr_id}/{new['version']}/0.0")
    key = served.get(f"zarr/{m.zarr_id}/{new['version']}/").json()["entries"]["0.0"]
    assert r.status_code == 410 and r.text.startswith("0.0: key MD5E-s16--") and r.text.count("\n") == 1, r.text
    assert key["ETag"] in r.text
    with pytest.raises(Exception) as failed:  # noqa: PT011 (fsspec's HTTP error: any but "no such chunk")
        reader[0:2, 0:2]
    assert not isinstance(failed.value, FileNotFoundError)
    np.testing.assert_array_equal(reader[2:4, 2:4], m.new[2:4, 2:4])
    assert "versionId=" in served.get(f"zarr/{m.zarr_id}/{new['version']}/1.1").headers["Location"]
