"""Packed stores on S3 (``pack+s3://``), and cold tiers: a bucket's objects follow bytes, not keys; a pack
in DEEP_ARCHIVE is thawed once, on demand, and a restore finishes after the thaw.

Why: Deep Archive costs ~$1/TB/month but ~40 KB and a price per object, and hours before a read.  These
tests keep a small dandiset into a packed store on the moto stand-in (which, as S3 does, refuses a GET of a
DEEP_ARCHIVE object until RestoreObject), count the bucket's objects, restore a version from a DEEP_ARCHIVE
store (exit 75 naming the thawing packs, one RestoreObject per pack, none asked again by the rerun, which then
finishes), and count the requests a clone's get of packed chunks costs.  What every store kind owes (keep,
reads after the archive's loss, verify, restore) is tests/test_store_kinds.py's.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import clone, git
from helpers.keep import key_of, lose_blobs, lose_zarr, make_dandiset
from helpers.service import metric_samples
from neuromirror.demo import deterministic_bytes
from neuromirror.service import render_metrics


def objects(s3, bucket: str) -> dict[str, dict]:  # noqa: ANN001
    listing = s3.client().list_objects_v2(Bucket=bucket)
    return {o["Key"]: o for o in listing.get("Contents", [])}


def test_a_packed_bucket_holds_objects_by_bytes_not_keys(dandi_archive, s3, bucket, tmp_path: Path) -> None:  # noqa: ANN001
    """12 keys: one pack, one index file and the store's config; never an object per key.  (Reads after the
    archive's loss, secrets kept out: tests/test_store_kinds.py, over every kind.)"""
    sizes = {f"sub-{i:02d}/f.nwb": 5_000 + 300 * i for i in range(12)}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    code, out, err = d.run("keep", d.spec, "--to", f"pack+s3://{bucket}/lab/packed", "--json", "-J", "3")
    assert code == 0 and json.loads(out)["versions"][0]["kept"] == 12, out + err
    held = objects(s3, bucket)
    assert sorted(k.rsplit("/", 1)[0] for k in held) == ["lab/packed", "lab/packed/index", "lab/packed/packs"]
    remote_log = git(d.ds, "show", "git-annex:remote.log")
    assert "externaltype=neuromirror-pack" in remote_log and "endpoint=http" in remote_log


def test_deep_archive_packs_thaw_once_and_a_restore_then_completes(dandi_archive, s3, bucket, tmp_path: Path) -> None:  # noqa: ANN001
    sizes = {"a.nwb": 40_000, "b.nwb": 30_000, "c.nwb": 20_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    url = f"pack+s3://{bucket}/cold"
    code, out, err = d.run("keep", d.spec, "--to", url, "--pack-size", "64K", "--storage-class", "deep_archive")
    assert code == 0, out + err
    held = objects(s3, bucket)
    packs = [k for k in held if k.startswith("cold/packs/")]
    assert len(packs) == 2  # 90 kB in 64 KiB packs
    client = s3.client()
    for k in packs:
        assert client.head_object(Bucket=bucket, Key=k)["StorageClass"] == "DEEP_ARCHIVE"
    for k in held:
        if k.startswith("cold/index/"):  # readers need the index files: never cold
            assert client.head_object(Bucket=bucket, Key=k).get("StorageClass", "STANDARD") == "STANDARD"
    lose_blobs(d, list(sizes))

    # the dry run says what a restore would thaw, and asks for nothing
    target = tmp_path / "restored"
    code, out, err = d.run("restore", d.spec, "--to", str(target), "--dry-run", "--json")
    assert code == 0, out + err
    dry = json.loads(out)
    assert dry["thaw"] == {"packs": 2, "bytes": sum(held[k]["Size"] for k in packs)}
    for k in packs:
        assert "Restore" not in client.head_object(Bucket=bucket, Key=k)

    log = s3.log_requests()
    code, out, err = d.run("restore", d.spec, "--to", str(target))
    assert code == 75, out + err
    assert sorted(p.split("?")[0] for m, p in log if m == "POST" and "restore" in p) == sorted(
        f"/{bucket}/{k}" for k in packs
    )
    (said,) = [line for line in err.splitlines() if "thawing" in line]  # one line says it all
    assert "2 pack(s) of" in said and "thawing from cold storage since" in said and "2 asked for by this run" in said
    restores = [client.head_object(Bucket=bucket, Key=k).get("Restore", "") for k in packs]
    assert all(r for r in restores), restores
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
        key = key_of(d.ds, path, d.version)
        assert key
        got = [p for p in target.rglob("*") if p.is_file() and p.read_bytes() == data]
        assert got, path


def test_a_store_keeps_its_storage_class_and_pack_size(dandi_archive, s3, bucket, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 4_000})
    assert d.run("keep", d.spec, "--to", f"s3://{bucket}/ia", "--storage-class", "STANDARD_IA")[0] == 0
    (key,) = [
        k for k in objects(s3, bucket) if k.startswith("ia/") and "neuromirror" not in k and "annex-uuid" not in k
    ]
    assert s3.client().head_object(Bucket=bucket, Key=key)["StorageClass"] == "STANDARD_IA"
    for url, extra, error in (
        (
            f"s3://{bucket}/ia",
            ["--storage-class", "GLACIER"],
            f"--storage-class GLACIER: s3://{bucket}/ia/ was made with storage class STANDARD_IA",
        ),
        (f"pack+s3://{bucket}/p", ["--pack-size", "2K"], None),
    ):
        code, out, err = d.run("keep", d.spec, "--to", url, *extra)
        if error is None:
            assert code == 0, out + err
            code, out, err = d.run("keep", d.spec, "--to", url, "--pack-size", "4K")
            error = "a store's pack size is fixed"
        assert code == 2 and error in err and len(err.strip().splitlines()) == 1, (code, err)


def test_a_clone_reads_packed_chunks_a_span_at_a_time_and_scattered_keys_alone(
    dandi_archive, s3, bucket, tmp_path: Path
) -> None:  # noqa: ANN001
    """From ``pack+s3://``, chunks got in the order they were packed cost a few spans of their pack, not a
    request each; a few scattered keys cost one request each, as before, and no byte more."""
    chunks = {f"0/{i // 20}.{i % 20}": deterministic_bytes(f"chunk {i}", 1_500 + 7 * i) for i in range(150)}
    chunks[".zarray"] = b'{"zarr_format": 2}'
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 2_000}, zarr=chunks)
    assert d.run("keep", d.spec, "--to", f"pack+s3://{bucket}/spans", "--pack-size", "128K")[0] == 0
    lose_zarr(d, "sub-09/sample.zarr")
    packs = f"/{bucket}/spans/packs/"

    def get(clone_to: str, *paths: str) -> tuple[Path, list[str], int]:
        work = clone(d.ds, tmp_path / clone_to)
        git(work, "checkout", "-q", d.version)
        subprocess.run(["datalad", "get", "-n", "sub-09/sample.zarr"], cwd=work, check=True, capture_output=True)
        zarr = work / "sub-09" / "sample.zarr"
        git(zarr, "config", "annex.security.allowed-ip-addresses", "all")
        log = s3.log_requests()
        proc = subprocess.run(["datalad", "get", *paths], cwd=zarr, capture_output=True, text=True)
        sent = s3.bytes_sent
        s3.log_requests(False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return zarr, [p for m, p in log if m == "GET" and p.startswith(packs)], sent

    zarr, reads, _ = get("whole", ".")
    for name, data in chunks.items():
        assert (zarr / name).read_bytes() == data, name
    assert len(reads) <= len(chunks) // 10, reads  # ~230 kB in 2 packs: a handful of spans

    few = ["0/0.3", "0/3.9", "0/7.1"]
    zarr, reads, sent = get("few", *few)
    for name in few:
        assert (zarr / name).read_bytes() == chunks[name]
    assert len(reads) == len(few), reads
    assert sent < sum(len(chunks[n]) for n in few) + 20_000, sent  # the keys' bytes (and index files), no span
