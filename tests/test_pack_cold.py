"""Packed stores in S3's storage classes: a pack in a cold class (DEEP_ARCHIVE, GLACIER) is thawed once, on demand,
by a reader (``neuromirror://``, a clone's ``git annex get``) and by a restore, each saying so in one line and
finishing once S3 has thawed it; the warm classes are read in place; a store keeps its class and pack size.

Why: Deep Archive costs ~$1/TB/month but ~40 KB and a price per object, and hours before a read: S3 refuses the
GET until RestoreObject.  What a reader owes its user is the thaw asked for once (every reread asking again would
pay again), an error that says what is happening and what to do, and the bytes once thawed.  moto refuses a GET
of a DEEP_ARCHIVE or GLACIER object until RestoreObject, as S3 does, and thaws at once.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from conftest import clone, git
from helpers.keep import Dandiset, key_of, lab_bucket, lose_blobs, make_dandiset, sha256
from helpers.packs import restores
from helpers.service import metric_samples
from neuromirror.service import render_metrics

#: storage class -> whether S3 refuses a GET until the object is thawed
CLASSES = {"DEEP_ARCHIVE": True, "GLACIER": True, "GLACIER_IR": False, "STANDARD_IA": False}
GOT = "sub-get/b.nwb"  # read by a clone's get, from a DEEP_ARCHIVE store of its own


class Cold:
    """A dandiset whose files were each kept into a packed store of one storage class, then lost by the archive."""

    def __init__(self, archive, s3, tmp: Path, bucket: str) -> None:  # noqa: ANN001
        self.s3, self.bucket = s3, bucket
        self.d: Dandiset = make_dandiset(
            archive, tmp / "mirror", {f"sub-{k.lower()}/f.nwb": 12_345 for k in CLASSES} | {GOT: 25_000}
        )
        for klass in CLASSES:
            self.keep(f"sub-{klass.lower()}/f.nwb", klass.lower(), klass)
        self.keep(GOT, "cold-get", "DEEP_ARCHIVE")
        lose_blobs(self.d, list(self.d.files))

    def keep(self, path: str, prefix: str, klass: str) -> None:
        self.d.run.ok(
            "keep",
            self.d.spec,
            "--to",
            f"pack+s3://{self.bucket}/{prefix}",
            "--include",
            path,
            "--storage-class",
            klass,
        )


@pytest.fixture(scope="module")
def cold(dandi_archive, s3, tmp_path_factory) -> Iterator[Cold]:  # noqa: ANN001
    with lab_bucket(s3) as bucket:
        yield Cold(dandi_archive, s3, tmp_path_factory.mktemp("pack-cold"), bucket)


@pytest.mark.parametrize("klass", list(CLASSES))
def test_a_reader_asks_a_cold_packs_thaw_once_and_reads_each_class_as_s3_serves_it(cold: Cold, klass: str) -> None:
    """GLACIER_IR and STANDARD_IA serve a GET at once (no thaw asked, the pack read in place); DEEP_ARCHIVE and
    GLACIER refuse it: the reader asks for the thaw once and says so, and the next reader reads, asking nothing."""
    import fsspec

    client, path = cold.s3.client(), f"sub-{klass.lower()}/f.nwb"
    (pack,) = client.list_objects_v2(Bucket=cold.bucket, Prefix=f"{klass.lower()}/packs/")["Contents"]
    assert client.head_object(Bucket=cold.bucket, Key=pack["Key"])["StorageClass"] == klass
    pin = f"dandi/{cold.d.id}@{cold.d.version}/{path}"

    def read() -> bytes:
        return bytes(
            fsspec.filesystem("neuromirror", root=str(cold.d.run.root), skip_instance_cache=True).cat_file(pin)
        )

    log = cold.s3.log_requests()
    try:
        if CLASSES[klass]:
            with pytest.raises(OSError) as caught:
                read()
            first = restores(log)
        got = read()
    finally:
        cold.s3.log_requests(False)
    if CLASSES[klass]:
        message = " ".join(str(caught.value).split())
        assert "is thawing from cold storage (its thaw is asked for)" in message, message
        assert len(first) == 1 and first[0].startswith(f"/{cold.bucket}/{klass.lower()}/packs/"), log
    assert len(restores(log)) == CLASSES[klass], log  # the second reader found the thaw done: asked nothing again
    assert sha256(got) == sha256(cold.d.files[path])


def test_a_clones_get_of_a_cold_pack_says_thawing_then_gets_it(cold: Cold, tmp_path: Path) -> None:
    work = clone(cold.d.ds, tmp_path / "clone")
    git(work, "checkout", "-q", cold.d.version)
    log = cold.s3.log_requests()
    try:
        first = subprocess.run(["git", "annex", "get", GOT], cwd=work, capture_output=True, text=True)
        asked = restores(log)
        second = subprocess.run(["git", "annex", "get", GOT], cwd=work, capture_output=True, text=True)
    finally:
        cold.s3.log_requests(False)
    said = first.stdout + first.stderr
    assert first.returncode != 0 and "is thawing from cold storage (its thaw is asked for)" in said, said
    assert len(asked) == 1 and asked[0].startswith(f"/{cold.bucket}/cold-get/packs/"), log
    assert second.returncode == 0, second.stdout + second.stderr
    assert restores(log) == asked
    assert sha256((work / GOT).read_bytes()) == sha256(cold.d.files[GOT])


def test_deep_archive_packs_thaw_once_and_a_restore_then_completes(dandi_archive, s3, bucket, tmp_path: Path) -> None:  # noqa: ANN001
    sizes = {"a.nwb": 40_000, "b.nwb": 30_000, "c.nwb": 20_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    url = f"pack+s3://{bucket}/cold"
    code, out, err = d.run("keep", d.spec, "--to", url, "--pack-size", "64K", "--storage-class", "deep_archive")
    assert code == 0, out + err
    client = s3.client()
    held = {o["Key"]: o for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    packs = [k for k in held if k.startswith("cold/packs/")]
    assert len(packs) == 2  # 90 kB in 64 KiB packs
    for k in packs:
        assert client.head_object(Bucket=bucket, Key=k)["StorageClass"] == "DEEP_ARCHIVE"
    for k in (k for k in held if k.startswith("cold/index/")):  # readers need the index files: never cold
        assert client.head_object(Bucket=bucket, Key=k).get("StorageClass", "STANDARD") == "STANDARD"
    lose_blobs(d, list(sizes))

    # the dry run says what a restore would thaw, and asks for nothing
    target = tmp_path / "restored"
    code, out, err = d.run("restore", d.spec, "--to", str(target), "--dry-run", "--json")
    assert code == 0 and json.loads(out)["thaw"] == {"packs": 2, "bytes": sum(held[k]["Size"] for k in packs)}, out
    assert not any("Restore" in client.head_object(Bucket=bucket, Key=k) for k in packs)

    log = s3.log_requests()
    code, out, err = d.run("restore", d.spec, "--to", str(target))
    assert code == 75, out + err
    assert sorted(restores(log)) == sorted(f"/{bucket}/{k}" for k in packs)
    (said,) = [line for line in err.splitlines() if "thawing" in line]  # one line says it all
    assert "2 pack(s) of" in said and "thawing from cold storage since" in said and "2 asked for by this run" in said
    assert all(client.head_object(Bucket=bucket, Key=k).get("Restore", "") for k in packs)
    # the thaws are outstanding where an operator looks: status, status --json, /metrics' gauge
    status = json.loads(d.run("status", "--json")[1])
    assert sorted(t["pack"] for t in status["thaws"]) == sorted(k.rsplit("/", 1)[1][: -len(".pack")] for k in packs)
    assert "2 cold pack(s) thawing" in d.run("status")[1]
    gauge = metric_samples(render_metrics(status))  # what the service's /metrics renders of the same report
    thawing = {
        dict(k[1:])["store"].rstrip("/"): v for k, v in gauge.items() if k[0] == "neuromirror_pack_thaws_outstanding"
    }
    assert thawing == {url: 2}, thawing

    # once thawed, the rerun asks for nothing again and writes every file
    log = s3.log_requests()
    code, out, err = d.run("restore", d.spec, "--to", str(target))
    s3.log_requests(False)
    assert code == 0, out + err
    assert not [p for m, p in log if "restore" in p], log
    assert json.loads(d.run("status", "--json")[1])["thaws"] == []  # found thawed: no longer outstanding
    for path, data in d.files.items():
        assert key_of(d.ds, path, d.version)
        assert [p for p in target.rglob("*") if p.is_file() and p.read_bytes() == data], path


def test_a_store_keeps_its_storage_class_and_pack_size(dandi_archive, s3, bucket, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 4_000})
    assert d.run("keep", d.spec, "--to", f"s3://{bucket}/ia", "--storage-class", "STANDARD_IA")[0] == 0
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix="ia/")["Contents"]
    (key,) = [o["Key"] for o in listed if "neuromirror" not in o["Key"] and "annex-uuid" not in o["Key"]]
    assert s3.client().head_object(Bucket=bucket, Key=key)["StorageClass"] == "STANDARD_IA"
    code, out, err = d.run("keep", d.spec, "--to", f"s3://{bucket}/ia", "--storage-class", "GLACIER")
    said = f"--storage-class GLACIER: s3://{bucket}/ia/ was made with storage class STANDARD_IA"
    assert code == 2 and said in err and len(err.strip().splitlines()) == 1, (code, err)
    assert d.run("keep", d.spec, "--to", f"pack+s3://{bucket}/p", "--pack-size", "2K")[0] == 0
    code, out, err = d.run("keep", d.spec, "--to", f"pack+s3://{bucket}/p", "--pack-size", "4K")
    assert code == 2 and "a store's pack size is fixed" in err and len(err.strip().splitlines()) == 1, (code, err)
