"""After a restore the dead URLs it replaced are gone: ``verify --content --strict`` goes clean.

Why: a restore into the archive's own bucket writes each lost object again as a new S3 version and
registers that version's URL; the URL pinned to the version the archive lost can never serve again.
Left registered, it is a dead URL for good (``verify --content --strict`` fails forever, ``get``
tries it first).  The loss is real — every S3 version of the blobs and of the Zarr's objects deleted
from the moto stand-in — and so is the restore; a blob only hidden behind a delete marker keeps its
pinned URL, which still serves.
"""

from __future__ import annotations

from pathlib import Path

from helpers.keep import key_of, lose_blobs, lose_zarr
from helpers.restore import ZARR, bucket_of, delete_marker, index_urls, make, restore_json, whereis_urls


def pinned_urls(repo: Path, key: str) -> list[str]:
    return [u for u in whereis_urls(repo, key) if "versionId=" in u]


def test_restore_retires_the_dead_urls_it_replaced_and_strict_verify_goes_clean(
    dandi_archive,  # noqa: ANN001
    s3,  # noqa: ANN001
    s3_env,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    d, chunks, _ = make(dandi_archive, tmp_path)
    lost, hidden = ["sub-01/a.nwb", "sub-02/b.nwb"], "sub-03/c.nwb"
    zarr_ds = d.ds / ZARR  # the Zarr's own dataset, whose git-annex branch knows its objects' keys
    files = [(d.ds, p, key_of(d.ds, p, d.version)) for p in [*lost, hidden]]
    files += [(zarr_ds, name, key_of(zarr_ds, name, "HEAD")) for name in chunks]
    before = {key: pinned_urls(repo, key) for repo, _, key in files}
    assert all(len(urls) == 1 for urls in before.values()), before
    lose_blobs(d, lost)  # every S3 version gone
    lose_zarr(d, ZARR)
    delete_marker(d, hidden)  # only hidden: its pinned version still serves

    # kept, so nothing is lost, but the dead URLs fail --strict
    code, out, err = d.run("verify", d.spec, "--content", "--strict")
    assert code == 1 and "FAILED (strict: warnings fail)" in out and "MISMATCH" not in out, out + err

    code, report, err = restore_json(d, "--to", f"s3://{bucket_of(d)}")
    assert code == 0 and report["ok"], err
    assert report["retired_urls"] == len(lost) + len(chunks)  # the blobs' and the Zarr objects' lost versions

    code, out, err = d.run("verify", d.spec, "--content", "--strict")
    assert code == 0 and f"{d.spec}: OK" in out and "WARNING" not in out, out + err
    for repo, path, key in files:
        after = pinned_urls(repo, key)
        if path == hidden:  # its pinned version still serves: it stays registered beside the restored one
            assert before[key][0] in after and len(after) == 2, after
            continue
        # the lost version's URL is gone from the git-annex branch (and the index); the restored one is there
        assert len(after) == 1 and after != before[key], (path, after)
        if repo == d.ds:
            assert before[key][0] not in index_urls(d, key) and after[0] in index_urls(d, key)

    # a rerun retires nothing more, writes nothing
    code, again, err = restore_json(d, "--to", f"s3://{bucket_of(d)}")
    assert code == 0 and again["retired_urls"] == 0 and again["written"]["objects"] == 0, err
