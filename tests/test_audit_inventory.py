"""``audit --inventory``: a mirror's pinned S3 versions looked for in the archive bucket's S3 Inventory (issue 75).

A dandiset of three files on the DANDI stand-in is synced; the stand-in's bucket's inventory (written from
moto's own ListObjectVersions) finds all three pins.  Then upstream one pinned version is deleted for good
(lost upstream), one blob's object gets a delete marker (only its noncurrent version serves it, until 30
days after the marker), and an inventory whose row for the third has another size is read from a local copy.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from helpers.inventory import deliver_inventories
from neuromirror.standins.s3_inventory import bucket_inventory, directory_put, version_rows, write_inventory
from neuromirror.util.dates import iso_z

T0 = datetime(2026, 1, 5, tzinfo=timezone.utc)


def test_audit_finds_lost_noncurrent_and_mismatched_pins(
    cli: Any, dandi_archive: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, s3 = dandi_archive, dandi_archive.s3
    tag = uuid.uuid4().hex
    ident = a.create_dandiset(name="inventory audit", created=T0)
    for name in ("lost", "marked", "resized"):
        a.put_asset(ident, f"{name}.nwb", f"{name} {tag}".encode() * 50, when=T0)
    assert cli("sync", f"dandi:{ident}")[0] == 0
    key = {n: a.blob_key(a.asset_at(ident, f"{n}.nwb").blob.blob_id) for n in ("lost", "marked", "resized")}

    dest, url = deliver_inventories(s3, a.bucket, monkeypatch, datetime.now(timezone.utc) - timedelta(days=1))

    got = cli.json("audit", f"dandi:{ident}", "--inventory", url)
    assert got["inventory"]["pins"] == 3 and got["inventory"]["source_bucket"] == a.bucket
    assert got["findings"] == [] and got["sources"][f"dandi:{ident}"]["inventory-absent"] == 0

    # upstream: one pinned version deleted for good, one blob behind a delete marker
    c = s3.client()
    lost_vid = c.head_object(Bucket=a.bucket, Key=key["lost"])["VersionId"]
    c.delete_object(Bucket=a.bucket, Key=key["lost"], VersionId=lost_vid)
    c.delete_object(Bucket=a.bucket, Key=key["marked"])
    marker = next(m for m in c.list_object_versions(Bucket=a.bucket, Prefix=key["marked"])["DeleteMarkers"])
    bucket_inventory(c, a.bucket, dest, when=datetime.now(timezone.utc))

    got = cli.json("audit", f"dandi:{ident}", "--inventory", url)
    found = {(f["kind"], f["path"]): f for f in got["findings"]}
    assert set(found) == {("inventory-absent", "lost.nwb"), ("noncurrent-only", "marked.nwb")}, got["findings"]
    assert lost_vid in found[("inventory-absent", "lost.nwb")]["detail"]
    gone = found[("noncurrent-only", "marked.nwb")]
    assert gone["expires_is"] == "exact" and gone["expires"] == iso_z(marker["LastModified"] + timedelta(days=30))
    # the day before names the older date: every pin still there
    day = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d")
    older = cli.json("audit", f"dandi:{ident}", "--inventory", url, "--inventory-date", day)
    assert older["findings"] == [] and older["inventory"]["date"].startswith(day)

    # an inventory (a local copy) whose row for the third pin has another size
    resized_vid = c.head_object(Bucket=a.bucket, Key=key["resized"])["VersionId"]
    rows = [
        [*r[:5], str(int(r[5]) + 1), *r[6:]] if r[1] == key["resized"] and r[2] == resized_vid else r
        for r in version_rows(c, a.bucket)
    ]
    local = write_inventory(rows, directory_put(tmp_path / "copy"), source_bucket=a.bucket, dest=dest)
    code, out, _ = cli("audit", f"dandi:{ident}", "--inventory", str(tmp_path / "copy" / local.prefix))
    assert code == 0 and "inventory-mismatch  resized.nwb" in out, out
    assert "where the mirror recorded" in out and "pinned version(s) looked for in the S3 Inventory" in out

    # what cannot be read is one line, exit 2
    code, _, err = cli("audit", "--inventory", str(tmp_path / "nowhere"))
    assert code == 2 and "no such directory" in err and len(err.strip().splitlines()) == 1, err
    code, _, err = cli("audit", "--inventory-date", day)
    assert code == 2 and "--inventory-date without inventory" in err, err
