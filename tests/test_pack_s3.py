"""Packed stores in a bucket (``pack+s3://``): a clone's get of packed chunks reads spans of a pack, not a request a
key; ``keep --prune`` rewrites a pack in a *versioned* bucket, leaving the old pack's bytes as a noncurrent version
for the bucket's lifecycle rule.

Why: a bucket is where most archives' backups will live: its requests are the lab's bill, and versioning is what an
operator turns on so that no tool, ours included, can destroy a backup by mistake.  (Packing into a bucket: tests/
test_pack_store.py; cold classes: tests/test_pack_cold.py; what every kind owes: tests/test_store_kinds.py.)
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

from conftest import clone, git
from helpers.keep import T0, key_of, lose_zarr, lost_then_got, make_dandiset
from helpers.packs import held, indexed
from neuromirror.demo import deterministic_bytes


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


def test_prune_in_a_versioned_bucket_rewrites_the_pack_and_leaves_the_old_bytes_to_the_buckets_lifecycle(
    dandi_archive,
    s3,
    bucket: str,
    tmp_path: Path,  # noqa: ANN001
) -> None:
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
