"""A packed store in a bucket kept up as a lab keeps it: ``keep --prune`` rewriting a pack in a *versioned* bucket (the old pack's bytes stay
as a noncurrent version, the bucket's own protection, until its lifecycle rule expires them).

Why: a bucket is where most archives' backups will live, and it is where rot (a bad disk under a cheap tier, a
wrong write by another tool) and retention must work as they do on a directory; versioning is what an operator
turns on so that no tool, ours included, can destroy a backup by mistake.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from helpers.keep import T0, key_of, lost_then_got, make_dandiset
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
