"""The whole chain a lab's reader meets, with the mirror gone: a dandiset with a Zarr kept into a packed store in a
bucket, published into a RIA store, every S3 version of the Zarr and the blob deleted, the mirror moved away; a
stranger's plain ``datalad clone`` from the RIA store and ``datalad get -r`` install the Zarr's dataset and get
every chunk and the blob from the packs.

Why: the issue's test of loss, as a reader meets it: nothing of the mirror's machine is left to help, only what
the lab published and the store its keep filled.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers.keep import lose_blobs, lose_zarr, make_dandiset

CHUNKS = {
    ".zgroup": b'{"zarr_format": 2}',
    "0/.zarray": b'{"chunks": [64], "zarr_format": 2}',
    "0/0": bytes(range(256)) * 3,
    "0/1": bytes(range(255, -1, -1)) * 4,
}


def test_a_stranger_gets_a_kept_zarr_from_the_packs_with_get_r_after_the_mirror_moved_away(
    dandi_archive,  # noqa: ANN001
    bucket: str,
    tmp_path: Path,
) -> None:
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 6_000}, zarr=CHUNKS)
    d.run.ok("keep", d.spec, "--to", f"pack+s3://{bucket}/packed")
    ria = tmp_path / "ria"
    d.run.ok("publish", d.source, "--to", f"ria+file://{ria}")
    lose_zarr(d, "sub-09/sample.zarr")
    lose_blobs(d, ["sub-01/a.nwb"])
    (tmp_path / "mirror").rename(tmp_path / "gone")  # the mirror's machine is no help any more

    work = tmp_path / "stranger"
    run = {"capture_output": True, "text": True}
    proc = subprocess.run(["datalad", "clone", f"ria+file://{ria}#~dandi/{d.id}", str(work)], **run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    subprocess.run(["git", "-C", str(work), "checkout", "-q", d.version], check=True)
    proc = subprocess.run(["datalad", "get", "-r", "."], cwd=work, **run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / "sub-01/a.nwb").read_bytes() == d.files["sub-01/a.nwb"]
    for name, data in CHUNKS.items():
        assert (work / "sub-09/sample.zarr" / name).read_bytes() == data, name
