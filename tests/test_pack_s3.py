"""Packed stores in a bucket (``pack+s3://``).  A pack in a cold class (DEEP_ARCHIVE, GLACIER) is thawed once, on
demand, by a reader (``neuromirror://``, a clone's ``git annex get``) and by a restore, each saying so in one line
and finishing once thawed (moto, as S3, refuses a GET of a cold object until RestoreObject); warm classes are read
in place.  A reader costs a GET a read and reads the store's index once; a clone's get of packed chunks reads spans
of a pack, not a request a key; ``keep --prune`` rewrites a pack in a *versioned* bucket, leaving the old pack's
bytes as a noncurrent version for the bucket's lifecycle rule.

Why: a bucket's requests are the lab's bill, Deep Archive's hours before a read are paid again by each thaw asked
again, and versioning is how an operator makes sure no tool destroys a backup.
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest

from conftest import git
from helpers.keep import T0, Dandiset, key_of, lab_bucket, lose_blobs, lose_zarr, lost_then_got, make_dandiset, sha256
from helpers.packs import cloned, held, holds, indexed, restores, run_in
from helpers.service import metric_samples
from neuromirror.demo import deterministic_bytes
from neuromirror.service import render_metrics

#: storage class -> whether S3 refuses a GET until the object is thawed
CLASSES = {"DEEP_ARCHIVE": True, "GLACIER": True, "GLACIER_IR": False, "STANDARD_IA": False}
GOT = "sub-get/b.nwb"  # read by a clone's get, from a DEEP_ARCHIVE store of its own
#: each file of the dandiset -> the store it is kept into (its prefix in the bucket) and the store's class
STORES = {f"sub-{k.lower()}/f.nwb": (k.lower(), k) for k in CLASSES} | {GOT: ("cold-get", "DEEP_ARCHIVE")}


@pytest.fixture(scope="module")
def cold(dandi_archive, s3, tmp_path_factory) -> Iterator[tuple[Dandiset, str]]:  # noqa: ANN001
    """A dandiset whose files were each kept into a packed store of one storage class, then lost by the archive."""
    with lab_bucket(s3) as bucket:
        d = make_dandiset(dandi_archive, tmp_path_factory.mktemp("cold") / "mirror", dict.fromkeys(STORES, 12_345))
        for path, (prefix, klass) in STORES.items():
            d.run.ok(
                "keep", d.spec, "--to", f"pack+s3://{bucket}/{prefix}", "--include", path, "--storage-class", klass
            )
        lose_blobs(d, list(STORES))
        yield d, bucket


@pytest.mark.parametrize("klass", list(CLASSES))
def test_a_reader_asks_a_cold_packs_thaw_once_and_reads_each_class_as_s3_serves_it(
    cold: tuple[Dandiset, str], s3, klass: str
) -> None:  # noqa: ANN001
    """GLACIER_IR and STANDARD_IA serve a GET at once (no thaw asked, the pack read in place); DEEP_ARCHIVE and
    GLACIER refuse it: the reader asks for the thaw once and says so, and the next reader reads, asking nothing."""
    import fsspec

    (d, bucket), client, path = cold, s3.client(), f"sub-{klass.lower()}/f.nwb"
    (pack,) = client.list_objects_v2(Bucket=bucket, Prefix=f"{klass.lower()}/packs/")["Contents"]
    assert client.head_object(Bucket=bucket, Key=pack["Key"])["StorageClass"] == klass
    pin = f"dandi/{d.id}@{d.version}/{path}"

    def read() -> bytes:
        fs = fsspec.filesystem("neuromirror", root=str(d.run.root), skip_instance_cache=True)  # a new reader
        return bytes(fs.cat_file(pin))

    log = s3.log_requests()
    try:
        if CLASSES[klass]:
            with pytest.raises(OSError) as caught:
                read()
            first = restores(log)
        got = read()
    finally:
        s3.log_requests(False)
    if CLASSES[klass]:
        message = " ".join(str(caught.value).split())
        assert "is thawing from cold storage (its thaw is asked for)" in message, message
        assert len(first) == 1 and first[0].startswith(f"/{bucket}/{klass.lower()}/packs/"), log
    assert len(restores(log)) == CLASSES[klass], log  # the second reader found the thaw done: asked nothing again
    assert sha256(got) == sha256(d.files[path])


def test_a_clones_get_of_a_cold_pack_says_thawing_then_gets_it(cold: tuple[Dandiset, str], s3, tmp_path: Path) -> None:  # noqa: ANN001
    (d, bucket), work = cold, cloned(cold[0], tmp_path / "clone")
    log = s3.log_requests()
    try:
        first = run_in(work, "git", "annex", "get", GOT)
        asked = restores(log)
        second = run_in(work, "git", "annex", "get", GOT)
    finally:
        s3.log_requests(False)
    said = first.stdout + first.stderr
    assert first.returncode != 0 and "is thawing from cold storage (its thaw is asked for)" in said, said
    assert len(asked) == 1 and asked[0].startswith(f"/{bucket}/cold-get/packs/"), log
    assert second.returncode == 0, second.stdout + second.stderr
    assert restores(log) == asked
    holds(work, d.files, [GOT])


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


def test_a_reader_costs_a_get_a_read_and_reads_the_stores_index_once(dandi_archive, s3, bucket, tmp_path) -> None:  # noqa: ANN001
    """A fresh reader's two reads of a lost blob: one ranged GET each, and the store's index read once (its listing
    and its one index file), not once a key.  (Any store's reads after the loss: tests/test_store_kinds.py.)"""
    import fsspec

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 3_000, "sub-01/b.nwb": 2_000})
    d.run.ok("keep", d.spec, "--to", f"pack+s3://{bucket}/packed")
    lose_blobs(d, list(d.files))
    fresh = fsspec.filesystem("neuromirror", skip_instance_cache=True, root=str(d.run.root))  # a new reader
    pin = f"dandi/{d.id}@{d.version}"
    log = s3.log_requests()
    try:
        assert fresh.cat_file(f"{pin}/sub-01/a.nwb") == d.files["sub-01/a.nwb"]
        assert fresh.cat_file(f"{pin}/sub-01/a.nwb", start=5, end=2_005) == d.files["sub-01/a.nwb"][5:2_005]
    finally:
        s3.log_requests(False)
    got = [(m, p) for m, p in log if p.startswith((f"/{bucket}/", f"/{bucket}?"))]
    index = [p for _, p in got if "/packed/index/" in p or "prefix=packed%2Findex%2F" in p]
    assert [m for m, _ in got] == ["GET"] * 4 and len(index) == 2, got


def test_a_clone_reads_packed_chunks_a_span_at_a_time_and_scattered_keys_alone(
    dandi_archive, s3, bucket, tmp_path: Path
) -> None:  # noqa: ANN001
    """Chunks got in the order they were packed cost a few spans of their pack, not a request each (the packed
    special remote reads ahead); a few scattered keys cost one request each, as before, and no byte more."""
    chunks = {f"0/{i // 20}.{i % 20}": deterministic_bytes(f"chunk {i}", 1_500 + 7 * i) for i in range(150)}
    chunks[".zarray"] = b'{"zarr_format": 2}'
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 2_000}, zarr=chunks)
    assert d.run("keep", d.spec, "--to", f"pack+s3://{bucket}/spans", "--pack-size", "128K")[0] == 0
    lose_zarr(d, "sub-09/sample.zarr")
    packs = f"/{bucket}/spans/packs/"

    def get(clone_to: str, *paths: str) -> tuple[Path, list[str], int]:
        work = cloned(d, tmp_path / clone_to)
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


def test_prune_in_a_versioned_bucket_rewrites_the_pack_and_leaves_the_old_bytes_to_the_buckets_lifecycle(
    dandi_archive, s3, bucket: str, tmp_path: Path
) -> None:  # noqa: ANN001
    client = s3.client()
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 60_000, "b.nwb": 20_000})
    when = T0 + timedelta(days=400)
    first = deterministic_bytes(f"{d.id}:c-first", 300_000)
    dandi_archive.put_asset(d.id, "c.nwb", first, when=when)  # draft only
    d.run.ok("sync", d.source, "--dandi-api", dandi_archive.api_url)
    url = f"pack+s3://{bucket}/kept"
    assert d.run("keep", d.source, "--to", url, "--pack-size", "1M")[0] == 0
    old_key = key_of(d.ds, "c.nwb", "HEAD")
    shared = {key_of(d.ds, p, d.version) for p in ("a.nwb", "b.nwb")}
    assert set(indexed(held(url, s3))) == shared | {old_key}

    second = deterministic_bytes(f"{d.id}:c-second", 300_000)
    dandi_archive.put_asset(d.id, "c.nwb", second, when=when + timedelta(hours=1))
    d.run.ok("sync", d.source, "--dandi-api", dandi_archive.api_url)
    code, out, err = d.run("keep", d.source, "--to", url, "--prune", "--json")
    assert code == 0, out + err
    dropped = json.loads(out)["prune"]["store_dropped"]
    assert dropped["keys"] == 1 and dropped["rewritten"] == 1, dropped

    # the current packs hold the kept keys once each and not the dropped one
    now = held(url, s3)
    assert set(indexed(now)) == shared | {key_of(d.ds, "c.nwb", "HEAD")}
    packs = [body for name, body in now.items() if name.startswith("packs/")]
    assert not any(first in p for p in packs) and sum(second in p for p in packs) == 1
    # versioning is the operator's: the rewritten pack's old bytes stay as a noncurrent version behind a
    # delete marker, for the bucket's lifecycle rule to expire
    versions = client.list_object_versions(Bucket=bucket, Prefix="kept/packs/")
    assert any(not v["IsLatest"] for v in versions.get("Versions", []))
    assert versions.get("DeleteMarkers"), versions

    assert d.run("verify", "--stores", "--store", url, "--fraction", "1")[0] == 0
    lost_then_got(d, tmp_path / "clone", {"a.nwb": d.files["a.nwb"], "c.nwb": second})  # the store must serve them
