"""``restore``: kept content written back into the archive's own bucket, in its own key layout.

Why: an archive without a backup (DANDI's bucket, whose noncurrent versions expire) loses bytes for
good; the lab's kept copies are a backup only if they can be given back.  These tests mirror a small
dandiset with blobs and a Zarr from the stand-ins, keep it in a directory store, *really* delete every
S3 version of some blobs and of the Zarr's objects, then ``restore`` into the archive's versioned moto
bucket: the stand-in's download routes and zarr-python read the right bytes again, the restored
object's versionId is recorded as another URL of its key, a rerun writes nothing, a restore killed by
SIGKILL mid-way converges on its rerun, and an object holding other bytes is left alone unless
``--force`` (whose old bytes bucket versioning keeps).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from helpers.keep import Dandiset, key_of, lose_blobs, lose_zarr
from helpers.restore import BLOBS, ZARR, bucket_of, bucket_versions, index_urls, make, restore_json, whereis_urls
from neuromirror.store.webmark import web_states


def downloaded(d: Dandiset, path: str) -> bytes:
    """The asset's bytes as the archive's own download route serves them (302 to its bucket)."""
    aid = d.archive.asset_at(d.id, path, d.version).asset_id
    r = requests.get(f"{d.archive.api_url}/dandisets/{d.id}/versions/{d.version}/assets/{aid}/download/", timeout=30)
    return r.content if r.status_code == 200 else f"HTTP {r.status_code}".encode()


def zarr_object(d: Dandiset, name: str) -> bytes:
    z = d.archive.asset_at(d.id, ZARR, d.version).zarr
    url = f"{d.archive.api_url}/zarr/{z.zarr_id}/files/?prefix={name}&download=true"
    r = requests.get(url, timeout=30)
    return r.content if r.status_code == 200 else f"HTTP {r.status_code}".encode()


def test_restore_into_the_archive_after_loss_killed_rerun_and_no_op(dandi_archive, s3, s3_env, tmp_path: Path) -> None:  # noqa: ANN001
    d, chunks, values = make(dandi_archive, tmp_path)
    lost = ["sub-01/a.nwb", "sub-02/b.nwb"]
    lose_blobs(d, lost)
    lose_zarr(d, ZARR)
    for path in lost:
        assert downloaded(d, path).startswith(b"HTTP 4")
    target = f"s3://{bucket_of(d)}"
    n_objects = len(BLOBS) + len(chunks) + 1  # README.md too: a blob at the archive, kept in git by the mirror
    # a reader sees the loss: `urls --check` marks the lost keys `web: 0` (clones and readers go to a store)
    code, out, err = d.run("urls", d.spec, *lost, "--check", "--json")
    key = key_of(d.ds, lost[0], d.version)
    assert web_states(d.ds, [key]) == {key: False}, (out, err)

    # a dry run says what would be written, writes nothing
    before = bucket_versions(s3, bucket_of(d))
    code, dry, err = restore_json(d, "--to", target, "--dry-run")
    assert code == 0, err
    assert (dry["would_write"]["objects"], dry["same"], dry["written"]["objects"]) == (2 + len(chunks), 2, 0)
    assert downloaded(d, lost[0]).startswith(b"HTTP 4")
    assert bucket_versions(s3, bucket_of(d)) == before
    # ... naming each object it would write: archive key, file, size, where the bytes come from
    writes = {w["archive_key"]: w for w in dry["writes"]}
    assert len(writes) == len(dry["writes"]) == dry["would_write"]["objects"]
    assert sum(w["size"] for w in writes.values()) == dry["would_write"]["bytes"]
    for path in lost:
        w = writes[d.archive.asset_at(d.id, path, d.version).blob.key]
        assert (w["path"], w["size"], w["from"], w["git"]) == (path, len(d.files[path]), "store", None)
        assert w["store"] == (tmp_path / "store").as_uri() or w["store"].endswith(str(tmp_path / "store")), w
        assert w["to"] == f"{target}/{w['archive_key']}" and w["key"] == key_of(d.ds, path, d.version)
    assert {w["path"] for w in writes.values()} == set(lost) | {f"{ZARR}/{name}" for name in chunks}

    # killed by SIGKILL after its third object was written (-J 1: one at a time)
    env = dict(os.environ, NEUROMIRROR_CRASH_AT="restore-put#3")
    cmd = [sys.executable, "-m", "neuromirror", "--root", str(d.run.root), "restore", d.spec, "--to", target]
    crashed = subprocess.run([*cmd, "-J", "1"], env=env, capture_output=True, text=True)
    assert crashed.returncode == -9, crashed.stderr

    # the rerun writes what the killed run did not, leaves what it wrote
    code, report, err = restore_json(d, "--to", target)
    assert code == 0, err
    assert "writes" not in report  # a real run's --json: the counts, as before
    assert report["objects"] == n_objects and report["failed"] == [] and report["differs"] == []
    # the keys the killed run and its rerun wrote are exactly those the dry run named
    assert {key for key, _ in bucket_versions(s3, bucket_of(d)) - before} == set(writes)
    assert report["written"]["objects"] == 2 + len(chunks) - 3
    assert report["same"] == 2 + 3
    assert report["bad_copies"] == [] and report["skipped"] == []

    # the archive's own API serves the right bytes again: blobs by the download route, the Zarr's objects too
    for path in lost:
        assert downloaded(d, path) == d.files[path], path
    for name, data in chunks.items():
        assert zarr_object(d, name) == data, name
    # zarr-python reads the array from the archive's bucket, where the Zarr's S3 URL points
    import zarr

    z = d.archive.asset_at(d.id, ZARR, d.version).zarr
    arr = zarr.open_array(f"{s3.endpoint_url}/{z.bucket}/zarr/{z.zarr_id}", mode="r", zarr_format=2)
    assert (arr[:] == values).all()

    # the restored object's new versionId: another URL of the same key on the git-annex branch, the key
    # marked on the web again
    assert web_states(d.ds, [key]) == {key: True}
    current = s3.client().head_object(Bucket=bucket_of(d), Key=d.archive.asset_at(d.id, lost[0], d.version).blob.key)
    urls = whereis_urls(d.ds, key)
    assert any(u.endswith(f"?versionId={current['VersionId']}") for u in urls), urls
    # the lost version's pinned URL is retired (tests/test_restore_urls.py); the API route stays beside it
    assert len([u for u in urls if "versionId=" in u]) == 1 and len(urls) >= 2
    assert report["recorded_urls"] >= 2
    restored_url = next(u for u in urls if u.endswith(f"?versionId={current['VersionId']}"))

    # the read path and the index know it too: `urls` names the restored version (its old URL serves
    # nothing now), which serves the key's bytes; the index's file state lists it; so after `reindex`
    assert served_url(d, lost[0]) == restored_url
    assert requests.get(restored_url, timeout=30).content == d.files[lost[0]]
    assert restored_url in index_urls(d, key)
    d.run.ok("reindex")
    assert served_url(d, lost[0]) == restored_url and restored_url in index_urls(d, key)

    # a third run writes nothing
    code, again, err = restore_json(d, "--to", target)
    assert code == 0, err
    assert (again["written"]["objects"], again["same"], again["recorded_urls"]) == (0, n_objects, 0)


def served_url(d: Dandiset, path: str) -> str:
    """The one URL ``neuromirror urls SPEC@VERSION --json`` gives for ``path``."""
    code, out, err = d.run("urls", d.spec, path, "--json")
    assert code == 0, err
    (row,) = json.loads(out)
    return row["url"]


def test_other_bytes_are_left_alone_unless_forced(dandi_archive, s3, s3_env, tmp_path: Path) -> None:  # noqa: ANN001
    d, _, _ = make(dandi_archive, tmp_path)
    path = "sub-02/b.nwb"
    blob = d.archive.asset_at(d.id, path, d.version).blob
    client = s3.client()
    client.put_object(Bucket=blob.bucket, Key=blob.key, Body=b"someone else's bytes")
    target = f"s3://{blob.bucket}"

    code, report, err = restore_json(d, "--to", target)
    assert code == 1
    (note,) = report["differs"]
    assert note["archive_key"] == blob.key and note["path"] == path
    assert "left alone" in note["why"] and "--force" in err
    assert downloaded(d, path) == b"someone else's bytes"
    assert report["written"]["objects"] == 0  # everything else already right

    code, forced, err = restore_json(d, "--to", target, "--force")
    assert code == 0, err
    assert forced["overwritten"] == 1 and forced["differs"] == []
    assert downloaded(d, path) == d.files[path]
    old = [v for v in client.list_object_versions(Bucket=blob.bucket, Prefix=blob.key)["Versions"] if not v["IsLatest"]]
    kept_old = {
        client.get_object(Bucket=blob.bucket, Key=blob.key, VersionId=v["VersionId"])["Body"].read() for v in old
    }
    assert b"someone else's bytes" in kept_old  # bucket versioning kept what was overwritten


def test_restore_into_a_directory_same_keys_hostile_ones_refused(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror.restore.objects import ArchiveObject
    from neuromirror.restore.targets import DirTarget, Refused

    d, chunks, _ = make(dandi_archive, tmp_path)
    out = tmp_path / "restored"
    code, dry, err = restore_json(d, "--to", str(out), "--dry-run")
    assert code == 0 and not out.exists(), err
    code, report, err = restore_json(d, "--to", str(out))
    assert code == 0, err
    # the dry run named exactly the files the real run wrote, where it wrote them; README.md from git
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {w["archive_key"] for w in dry["writes"]} == written and len(dry["writes"]) == len(written)
    assert {w["to"] for w in dry["writes"]} == {str(out / k) for k in written}
    (readme,) = [w for w in dry["writes"] if w["path"] == "README.md"]
    assert readme["from"] == "git" and readme["store"] is None and readme["git"].endswith(":README.md")
    assert {w["from"] for w in dry["writes"] if w["path"] != "README.md"} == {"store"}
    assert report["written"]["objects"] == len(BLOBS) + len(chunks) + 1  # README.md, from the dataset's git
    for path, data in d.files.items():
        assert (out / d.archive.asset_at(d.id, path, d.version).blob.key).read_bytes() == data
    z = d.archive.asset_at(d.id, ZARR, d.version).zarr
    for name, data in chunks.items():
        assert (out / "zarr" / z.zarr_id / name).read_bytes() == data
    assert not (out / ".neuromirror-restore-tmp").exists()
    code, again, _ = restore_json(d, "--to", str(out))
    assert code == 0 and again["written"]["objects"] == 0
    code, only, _ = restore_json(d, "--to", str(tmp_path / "again"), "--from", str(tmp_path / "store"))
    assert code == 0 and only["written"]["objects"] == len(BLOBS) + len(chunks) + 1
    code, _, err = d.run("restore", d.spec, "--to", str(tmp_path / "again"), "--from", str(tmp_path / "nowhere"))
    assert code == 2 and "no store" in err

    target = DirTarget(out)
    for hostile in ("../escape", "/etc/passwd", "zarr/x/../../../escape", "a/\x00b"):
        with pytest.raises(Refused):
            target.look(ArchiveObject(hostile, "SHA256E-s1--00", 1, "p", "dandi:000001", "x"))
    (out / "link").symlink_to(tmp_path)
    with pytest.raises(Refused):
        target.look(ArchiveObject("link/escape", "SHA256E-s1--00", 1, "p", "dandi:000001", "x"))
    assert not (tmp_path / "escape").exists()


def test_restore_without_target_or_spec_is_a_one_line_error(cli, s3_env, tmp_path: Path) -> None:  # noqa: ANN001
    code, _, err = cli("restore", "dandi:000001")
    assert code == 2 and "--to" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("restore", "--to", "https://example.org/x", "dandi:000001")
    assert code == 2 and "s3://BUCKET" in err
    code, _, err = cli("restore", "--to", "s3://no-such-bucket-here", "dandi:000001")
    assert code == 2 and "no such bucket" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "a-file").write_text("x")
    code, _, err = cli("restore", "--to", str(tmp_path / "a-file"), "dandi:000001")
    assert code == 2 and "not a directory" in err
    code, _, err = cli("restore", "--sample", "3", "--to", str(tmp_path), "dandi:000001")
    assert code == 2 and "--drill" in err


def test_each_archive_keys_its_objects_from_what_the_mirror_recorded(monkeypatch) -> None:  # noqa: ANN001
    """DANDI blobs and Zarr objects and AIND assets by their recorded S3 URLs; BOSS chunks by their path."""
    from neuromirror.annex.tree import annexed_file
    from neuromirror.restore.objects import ArchiveObject, Unplaced, dedupe, place

    monkeypatch.delenv("NEUROMIRROR_S3_ENDPOINT", raising=False)
    k = "SHA256E-s3--" + "0" * 64

    def one(source: str, path: str, *urls: str) -> ArchiveObject | Unplaced:
        return place(annexed_file(path, k, urls, Path("/ds")), source, f"{source}@v")

    blob = "blobs/2ab/c1d/2abc1d00-1111-2222-3333-444455556666"
    got = one(
        "dandi:000001",
        "a.nwb",
        "https://api.example/assets/x/download/",
        f"http://127.0.0.1:9/dandi/{blob}?versionId=v1",
    )
    assert isinstance(got, ArchiveObject) and (got.bucket, got.archive_key) == ("dandi", blob)
    assert got.url == f"http://127.0.0.1:9/dandi/{blob}"
    got = one("dandi:000001", "s.zarr/0/0", "https://dandiarchive.s3.amazonaws.com/zarr/zid-1/0/0?versionId=v2")
    assert isinstance(got, ArchiveObject) and (got.bucket, got.archive_key) == ("dandiarchive", "zarr/zid-1/0/0")
    got = one("aind:asset_1", "x/y z.json", "https://aind-open-data.s3.us-west-2.amazonaws.com/asset_1/x/y%20z.json")
    assert isinstance(got, ArchiveObject) and (got.bucket, got.archive_key) == ("aind-open-data", "asset_1/x/y z.json")
    got = one("aind:asset_1", "x/c", "http://127.0.0.1:9/aind-bucket/asset_1/x/c?versionId=v3")
    assert isinstance(got, ArchiveObject) and (got.bucket, got.archive_key) == ("aind-bucket", "asset_1/x/c")
    got = one("boss:coll/exp", "ch0/0/0.0.0", "neuromirror+boss://api.example/cutout/coll/exp/ch0/0/0:64/0:64/0:1")
    assert isinstance(got, ArchiveObject) and got.archive_key == "ch0/0/0.0.0" and got.bucket == ""
    got = one("dandi:000002", "e.nwb", "neuromirror+dandi://api.example/assets/x/download/")
    assert isinstance(got, Unplaced) and "special remote" in got.why
    got = one("dandi:000001", "b.nwb", "https://api.example/assets/x/download/")
    assert isinstance(got, Unplaced) and "no S3 URL" in got.why
    # the listing prefixes an S3 target reads once for neighbours (a Zarr, a blob directory, an asset)
    from neuromirror.restore.targets import container_of

    assert container_of("zarr/zid-1/0/0") == "zarr/zid-1/"
    assert container_of(f"lab/{blob}") == "lab/blobs/2ab/"
    assert container_of("asset_1/x/c") == "asset_1/" and container_of("top") == ""
    # two versions naming one archive key with different content: the later named wins, the other is reported
    a = ArchiveObject("zarr/z/0", "K1", 1, "s.zarr/0", "dandi:1", "dandi:1@v1")
    b = ArchiveObject("zarr/z/0", "K2", 1, "s.zarr/0", "dandi:1", "dandi:1@v2")
    assert dedupe([a, b]) == ([b], [a])


def test_aind_asset_restored_under_its_keys_after_every_version_was_deleted(s3, s3_env, tmp_path: Path) -> None:  # noqa: ANN001
    from helpers.keep_aind import ASSET, KEPT, SIZES, Asset

    a = Asset(s3, tmp_path / "mirror", versioned=True)
    a.run.ok("keep", a.spec, "--to", str(tmp_path / "store"))
    client = s3.client()
    for path in SIZES:
        for v in client.list_object_versions(Bucket=a.bucket, Prefix=f"{ASSET}/{path}").get("Versions", []):
            client.delete_object(Bucket=a.bucket, Key=v["Key"], VersionId=v["VersionId"])
    code, out, err = a.run("restore", a.spec, "--to", f"s3://{a.bucket}", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["written"]["objects"] == len(SIZES) and report["failed"] == []
    for path, data in a.files.items():
        assert client.get_object(Bucket=a.bucket, Key=f"{ASSET}/{path}")["Body"].read() == data, path
    # the same keys as relative paths in a directory
    code, out, err = a.run("restore", a.spec, "--to", str(tmp_path / "out"), "--json")
    assert code == 0, err
    assert (tmp_path / "out" / ASSET / KEPT).read_bytes() == a.files[KEPT]


def test_locator_answers_as_locate_for_every_url_shape(monkeypatch) -> None:  # noqa: ANN001
    """restore places 10^6 files with a Locator (a host worked out once): it must name the same bucket and
    key as s3urls.locate for every shape of URL an archive records, AWS, endpoints, unlisted hosts, odd ones."""
    import itertools

    from neuromirror.restore.objects import key_rule
    from neuromirror.sources import s3urls

    monkeypatch.setenv("NEUROMIRROR_S3_ENDPOINT", "http://MinIO.lab:9000")
    hosts = [
        "http://127.0.0.1:4545",
        "https://dandiarchive.s3.amazonaws.com",
        "https://s3.amazonaws.com",
        "https://s3.us-west-2.amazonaws.com",
        "https://dandiarchive.s3-us-west-2.amazonaws.com",
        "http://minio.lab:9000",
        "HTTP://MinIO.lab:9000",
        "https://api.dandiarchive.org",
        "https://bucket.example.org",
        "ftp://x.y",
        "http://user@host.x:1",
        "http://localhost:99",
    ]
    uuid = "0123abcd-4567-89ab-cdef-0123456789ab"
    paths = [
        f"/dandiarchive/blobs/abc/def/{uuid}?versionId=x%2By",
        f"/blobs/abc/def/{uuid}",
        f"/dandiarchive/zarr/{uuid}/0/0.1",
        f"/zarr/{uuid}/.zarray",
        "/api/assets/1234/download/",
        "/ecephys_1/a%20b/c.bin?versionId=1",
        "/",
        "/bucket",
        "/bucket/key#frag",
        "/b/k?x=/y",
    ]
    odd = ["http://h?x/y", "nourl", "", "http:///x", "http://h#/x/y"]
    located = 0
    for source in ("dandi:000001", "aind:asset"):
        rule, endpoints = key_rule(source), s3urls.endpoints_in_use()
        find = s3urls.Locator(endpoints, rule)
        for url in [h + p for h, p in itertools.product(hosts, paths)] + odd:
            want = s3urls.locate(url, endpoints, archive_key=rule)
            assert find(url) == want, url
            located += want is not None
    assert located > 100  # most shapes name an object: the comparison is not of Nones


class Terminal(io.StringIO):
    """stderr as a terminal shows it: bars redrawn in place (``\\r``), as a user at a shell sees them."""

    def isatty(self) -> bool:
        return True


def test_restore_and_verify_stores_draw_bars_of_bytes_on_a_terminal(
    dandi_archive,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    """A restore of many objects showed nothing until its last line; now it draws, as ``get`` and ``keep`` do,
    a bar of bytes (B/s) with its objects, and ``verify --stores`` one with its copies."""
    from neuromirror.cli import main
    from neuromirror.util import progress

    d, chunks, _ = make(dandi_archive, tmp_path)
    monkeypatch.setattr(progress, "TTY_EVERY", 0.0)  # drawn from the first byte (a terminal's bar waits 0.5 s)

    def on_a_terminal(*args: str) -> tuple[int, str]:
        err = Terminal()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(["--root", str(d.run.root), *args])
        return code, err.getvalue()

    objects = len(BLOBS) + len(chunks) + 1
    code, err = on_a_terminal("restore", d.spec, "--to", str(tmp_path / "restored"))
    assert code == 0, err
    drawn = [part for part in err.split("\r") if part.startswith("restore ")]
    assert drawn and any(f"{objects}/{objects} objects" in p and "100%" in p for p in drawn), err
    assert all(re.search(r"(\?|[0-9.]+[kMG]?)B/s", p) for p in drawn) and "it/s" not in err, drawn
    code, err = on_a_terminal("verify", "--stores")
    assert code == 0, err
    drawn = [part for part in err.split("\r") if part.startswith("verify stores")]
    assert drawn and any(" copies" in p and "100%" in p for p in drawn) and "it/s" not in err, err
    assert all(re.search(r"(\?|[0-9.]+[kMG]?)B/s", p) for p in drawn), drawn
