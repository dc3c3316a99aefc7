"""A packed store in a bucket kept up as a lab keeps it: rot inside a pack object found by ``verify --stores`` and
repaired into a new pack, and ``keep --prune`` rewriting a pack in a *versioned* bucket (the old pack's bytes stay
as a noncurrent version, the bucket's own protection, until its lifecycle rule expires them).

Why: a bucket is where most archives' backups will live, and it is where rot (a bad disk under a cheap tier, a
wrong write by another tool) and retention must work as they do on a directory; versioning is what an operator
turns on so that no tool, ours included, can destroy a backup by mistake.
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

from conftest import clone
from helpers.keep import T0, key_of, lose_blobs, lost_then_got, make_dandiset, sha256
from neuromirror.demo import deterministic_bytes


def _indexed(client, bucket: str, prefix: str) -> dict[str, tuple[str, int, int]]:  # noqa: ANN001
    """key -> (pack, offset, length), read from the store's own index objects."""
    out = {}
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/index/").get("Contents", [])
    for o in listed:
        doc = json.loads(client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
        for key, offset, length, _ in doc["keys"]:
            out[key] = (doc["pack"], offset, length)
    return out


def test_a_rotten_pack_object_is_found_and_its_key_repaired_into_a_new_pack(
    dandi_archive, s3, bucket, tmp_path: Path
) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 50_000, "b.nwb": 20_000})
    url = f"pack+s3://{bucket}/rot"
    assert d.run("keep", d.spec, "--to", url)[0] == 0
    client = s3.client()
    key = key_of(d.ds, "a.nwb", d.version)
    pack, offset, length = _indexed(client, bucket, "rot")[key]
    name = f"rot/packs/{pack}.pack"
    data = bytearray(client.get_object(Bucket=bucket, Key=name)["Body"].read())
    data[offset + length // 2] ^= 0xFF  # rot inside the pack, written back in place
    client.put_object(Bucket=bucket, Key=name, Body=bytes(data))

    code, out, err = d.run("verify", "--stores", "--store", url, "--fraction", "1", "--json")
    assert code == 1, out + err
    report = json.loads(out)
    assert [b["key"] for b in report["bad"]] == [key] and report["bad"][0]["repaired"], report
    assert report["checked"] == 2 and report["good"] == 1
    assert _indexed(client, bucket, "rot")[key][0] != pack  # the repaired key lies in a new pack
    assert d.run("verify", "--stores", "--store", url, "--fraction", "1")[0] == 0
    lose_blobs(d, ["a.nwb"])
    work = clone(d.ds, tmp_path / "clone")
    proc = subprocess.run(["datalad", "get", "a.nwb"], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sha256((work / "a.nwb").read_bytes()) == sha256(d.files["a.nwb"])


def test_prune_in_a_versioned_bucket_rewrites_the_pack_and_leaves_the_old_bytes_to_the_buckets_lifecycle(
    dandi_archive,  # noqa: ANN001
    s3,  # noqa: ANN001
    bucket: str,
    tmp_path: Path,
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
    assert set(_indexed(client, bucket, "kept")) == shared | {old_key}

    second = deterministic_bytes(f"{d.id}:c-second", 300_000)
    dandi_archive.put_asset(d.id, "c.nwb", second, when=when + timedelta(hours=1))
    d.run.ok("sync", d.source, "--dandi-api", dandi_archive.api_url)
    new_key = key_of(d.ds, "c.nwb", "HEAD")
    code, out, err = d.run("keep", d.source, "--to", url, "--prune", "--json")
    assert code == 0, out + err
    dropped = json.loads(out)["prune"]["store_dropped"]
    assert dropped["keys"] == 1 and dropped["rewritten"] == 1, dropped

    # the current packs hold the kept keys once each and not the dropped one
    assert set(_indexed(client, bucket, "kept")) == shared | {new_key}
    current = client.list_objects_v2(Bucket=bucket, Prefix="kept/packs/")["Contents"]
    packs = [client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in current]
    assert not any(first in p for p in packs) and sum(second in p for p in packs) == 1
    # versioning is the operator's: the rewritten pack's old bytes stay as a noncurrent version behind a
    # delete marker, for the bucket's lifecycle rule to expire
    versions = client.list_object_versions(Bucket=bucket, Prefix="kept/packs/")
    assert any(not v["IsLatest"] for v in versions.get("Versions", []))
    assert versions.get("DeleteMarkers"), versions

    assert d.run("verify", "--stores", "--store", url, "--fraction", "1")[0] == 0
    lost_then_got(d, tmp_path / "clone", {"a.nwb": d.files["a.nwb"], "c.nwb": second})  # the store must serve them
