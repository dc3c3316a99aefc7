"""Readers and a cold pack: ``neuromirror://`` and a clone's ``git annex get`` of a file whose only copy left
lies in a DEEP_ARCHIVE pack ask for the pack's thaw once, say so in one line, and read it once it is thawed.

Why: a read that meets a cold pack cannot finish now (S3 refuses the GET until RestoreObject, hours in
Deep Archive); what a reader owes its user is the thaw asked for once (every reread asking again would pay
again), an error that says what is happening and what to do, and the bytes once S3 has thawed it.  moto
refuses a GET of a DEEP_ARCHIVE object until RestoreObject, as S3 does, and thaws at once.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import clone, git
from helpers.keep import lose_blobs, make_dandiset, sha256


def restores(log: list[tuple[str, str]]) -> list[str]:
    return [p.split("?")[0] for m, p in log if m == "POST" and "restore" in p]


def test_a_reader_asks_a_cold_packs_thaw_once_and_reads_it_once_thawed(
    dandi_archive, s3, bucket, tmp_path: Path
) -> None:  # noqa: ANN001
    import fsspec

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 30_000})
    url = f"pack+s3://{bucket}/cold"
    d.run.ok("keep", d.spec, "--to", url, "--storage-class", "DEEP_ARCHIVE")
    lose_blobs(d, ["sub-01/a.nwb"])
    pin = f"dandi/{d.id}@{d.version}/sub-01/a.nwb"

    log = s3.log_requests()
    try:
        fs = fsspec.filesystem("neuromirror", root=str(d.run.root), skip_instance_cache=True)
        with pytest.raises(OSError) as caught:
            fs.cat_file(pin)
        first = restores(log)
        again = fsspec.filesystem("neuromirror", root=str(d.run.root), skip_instance_cache=True).cat_file(pin)
    finally:
        s3.log_requests(False)
    message = " ".join(str(caught.value).split())
    assert "is thawing from cold storage (its thaw is asked for)" in message, message
    assert len(first) == 1 and first[0].startswith(f"/{bucket}/cold/packs/"), log
    assert restores(log) == first  # the second reader found the thaw done: it asked nothing again
    assert sha256(again) == sha256(d.files["sub-01/a.nwb"])


def test_a_clones_get_of_a_cold_pack_says_thawing_then_gets_it(dandi_archive, s3, bucket, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/b.nwb": 25_000})
    url = f"pack+s3://{bucket}/cold-get"
    d.run.ok("keep", d.spec, "--to", url, "--storage-class", "DEEP_ARCHIVE")
    lose_blobs(d, ["sub-01/b.nwb"])
    work = clone(d.ds, tmp_path / "clone")
    git(work, "checkout", "-q", d.version)
    log = s3.log_requests()
    try:
        first = subprocess.run(["git", "annex", "get", "sub-01/b.nwb"], cwd=work, capture_output=True, text=True)
        asked = restores(log)
        second = subprocess.run(["git", "annex", "get", "sub-01/b.nwb"], cwd=work, capture_output=True, text=True)
    finally:
        s3.log_requests(False)
    said = first.stdout + first.stderr
    assert first.returncode != 0 and "is thawing from cold storage (its thaw is asked for)" in said, said
    assert len(asked) == 1, log
    assert second.returncode == 0, second.stdout + second.stderr
    assert restores(log) == asked
    assert sha256((work / "sub-01/b.nwb").read_bytes()) == sha256(d.files["sub-01/b.nwb"])


@pytest.mark.parametrize(("klass", "cold"), [("STANDARD_IA", False), ("GLACIER_IR", False), ("GLACIER", True)])
def test_each_storage_class_is_read_as_s3_serves_it(
    dandi_archive, s3, bucket, tmp_path: Path, klass: str, cold: bool
) -> None:  # noqa: ANN001
    """GLACIER_IR and STANDARD_IA serve a GET at once (no thaw asked, the pack read in place); GLACIER, like
    DEEP_ARCHIVE, refuses it until RestoreObject: the reader asks once, says so, then reads."""
    import fsspec

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/c.nwb": 12_345})
    url = f"pack+s3://{bucket}/{klass.lower()}"
    d.run.ok("keep", d.spec, "--to", url, "--storage-class", klass)
    (pack,) = [k for k in s3.client().list_objects_v2(Bucket=bucket, Prefix=f"{klass.lower()}/packs/")["Contents"]]
    assert s3.client().head_object(Bucket=bucket, Key=pack["Key"])["StorageClass"] == klass
    lose_blobs(d, ["sub-01/c.nwb"])
    pin = f"dandi/{d.id}@{d.version}/sub-01/c.nwb"

    log = s3.log_requests()
    try:
        fs = fsspec.filesystem("neuromirror", root=str(d.run.root), skip_instance_cache=True)
        if cold:
            with pytest.raises(OSError, match="thawing from cold storage"):
                fs.cat_file(pin)
            fs = fsspec.filesystem("neuromirror", root=str(d.run.root), skip_instance_cache=True)
        got = fs.cat_file(pin)
    finally:
        s3.log_requests(False)
    assert len(restores(log)) == (1 if cold else 0), log
    assert sha256(got) == sha256(d.files["sub-01/c.nwb"])
