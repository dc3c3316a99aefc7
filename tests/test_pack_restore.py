"""Restore and its drills read packed stores: after the archive lost every byte, ``restore --drill`` rehearses the
restore from a ``pack+s3://`` store into a scratch bucket, ``restore`` writes the archive's own keys back from the
packs (a rerun writes nothing), and a drill over a rotten pack names the bad copy.

Why: a backup is only as good as its restore; the packed store is the one an archive can afford, so it must be
the one its restore and its rehearsals read.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from helpers.keep import key_of, lose_blobs, make_dandiset, sha256


def test_a_drill_and_a_restore_read_a_packed_bucket_after_the_archive_lost_everything(
    dandi_archive,  # noqa: ANN001
    s3,  # noqa: ANN001
    bucket: str,
    tmp_path: Path,
) -> None:
    sizes = {"sub-01/a.nwb": 30_000, "sub-01/b.nwb": 12_345, "sub-02/c.nwb": 7_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    d.run.ok("keep", d.spec, "--to", f"pack+s3://{bucket}/packed", "--pack-size", "1M")
    lose_blobs(d, list(sizes))
    client = s3.client()

    scratch = f"drill-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=scratch)
    s3.buckets.append(scratch)
    code, out, err = d.run("restore", "--drill", d.spec, "--to", f"s3://{scratch}/drills", "--json")
    assert code == 0, out + err
    drill = json.loads(out)
    assert drill["result"] == "ok" and drill["written"]["objects"] == len(sizes) and drill["mismatches"] == 0
    assert not client.list_objects_v2(Bucket=scratch).get("Contents")  # the drill's objects are gone

    blobs = {p: dandi_archive.asset_at(d.id, p, d.version).blob for p in sizes}
    (archive,) = {b.bucket for b in blobs.values()}
    code, out, err = d.run("restore", d.spec, "--to", f"s3://{archive}", "--json")
    assert code == 0, out + err
    assert json.loads(out)["failed"] == []
    for path, blob in blobs.items():  # the archive's own keys hold the bytes again
        assert sha256(client.get_object(Bucket=archive, Key=blob.key)["Body"].read()) == sha256(d.files[path])
    code, out, err = d.run("restore", d.spec, "--to", f"s3://{archive}", "--json")
    assert code == 0 and json.loads(out)["written"]["objects"] == 0, out + err  # a rerun writes nothing


def test_a_drill_over_a_rotten_pack_names_the_bad_copy(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 20_000, "b.nwb": 10_000})
    store = tmp_path / "packed"
    url = f"pack+file://{store}"
    d.run.ok("keep", d.spec, "--to", url)
    (pack,) = (store / "packs").glob("*.pack")
    pack.chmod(0o644)
    data = bytearray(pack.read_bytes())
    data[5] ^= 0xFF  # inside the key laid first in the pack
    pack.write_bytes(bytes(data))

    code, out, err = d.run("restore", "--drill", d.spec, "--to", str(tmp_path / "scratch"), "--json")
    assert code == 1, out + err
    report = json.loads(out)
    # the one copy is rotten: the drill names it, and its object is not restored (no store holds a good copy)
    assert report["result"] == "failed" and report["mismatches"] == 1 and report["written"]["objects"] == 1, report
    (bad,) = report["bad_copies"]
    (lost,) = report["failed"]
    assert bad["key"] == lost["key"] == key_of(d.ds, lost["path"], d.version), report
    assert bad["store"] == url and "sha256" in bad["why"] and "no store holds a good copy" in lost["why"], bad
