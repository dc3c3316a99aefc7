"""An in-process runner and a small mirrored dandiset (tests/test_retrieve.py and most of the CLI's tests)."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from neuromirror.demo import deterministic_bytes


class Runner:
    """``neuromirror --root ROOT ...`` in-process; returns (exit code, stdout, stderr)."""

    def __init__(self, root: Path):
        self.root = root

    def __call__(self, *args: str, root: Path | None = None) -> tuple[int, str, str]:
        from neuromirror.cli import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--root", str(root or self.root), *args])
        return code, out.getvalue(), err.getvalue()

    def ok(self, *args: str, root: Path | None = None) -> str:
        code, out, err = self(*args, root=root)
        assert code == 0, f"neuromirror {' '.join(args)} -> {code}\n{out}\n{err}"
        return out

    def json(self, *args: str, root: Path | None = None) -> object:
        return json.loads(self.ok(*args, "--json", root=root))


@dataclass
class Sample:
    """A mirrored dandiset: two published versions and a draft, with the archive's bytes of each."""

    archive: object
    root: Path
    id: str
    v1: str
    v2: str
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)  # version label -> path -> bytes
    run: Runner = None  # type: ignore[assignment]

    @property
    def source(self) -> str:
        return f"dandi:{self.id}"

    def sync(self) -> None:
        self.run.ok("sync", self.source, "--dandi-api", self.archive.api_url)  # type: ignore[attr-defined]


def _bytes(seed: str, n: int) -> bytes:
    return deterministic_bytes(seed, n)


ZARR = "sub-02/sub-02_sample.ome.zarr"


def build_sample(archive, root: Path, name: str = "Retrieval sample", zarr: bool = False) -> Sample:  # noqa: ANN001
    """Create, publish twice, change the draft, and sync into ``root``.

    With ``zarr``, v1 also holds a Zarr asset (mirrored as a subdataset), unchanged later.
    """
    t0 = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc) + timedelta(days=len(archive.dandiset_ids()))
    contributors = [
        {
            "name": "Doe, Jane",
            "roleName": ["dcite:Author", "dcite:ContactPerson"],
            "includeInCitation": True,
            "schemaKey": "Person",
            "identifier": "0000-0002-1825-0097",
        },
        {"name": "Roe, Richard", "roleName": ["dcite:Author"], "includeInCitation": True, "schemaKey": "Person"},
        {
            "name": "Not Cited, Someone",
            "roleName": ["dcite:DataCurator"],
            "includeInCitation": False,
            "schemaKey": "Person",
        },
        {
            "name": "Lab of Neural Data & Co",
            "roleName": ["dcite:Sponsor"],
            "includeInCitation": True,
            "schemaKey": "Organization",
        },
    ]
    ds_id = archive.create_dandiset(
        name=name, metadata={"contributor": contributors, "license": ["spdx:CC-BY-4.0"]}, created=t0
    )
    v1_files = {
        "sub-01/sub-01_ecephys.nwb": _bytes(ds_id + "a", 300_000),
        "sub-02/sub-02_ecephys.nwb": _bytes(ds_id + "b", 70_001),
        "sub-02/sub-02 notes (raw).bin": _bytes(ds_id + "c", 1234),
        "README.md": b"# Sample\nfor retrieval tests\n",
    }
    for i, (path, data) in enumerate(v1_files.items()):
        archive.put_asset(ds_id, path, data, when=t0 + timedelta(minutes=i + 1))
    if zarr:
        chunks = {
            ".zgroup": b'{"zarr_format": 2}',
            "0/.zarray": b'{"chunks": [64], "zarr_format": 2}',
            "0/0": _bytes(ds_id + "z0", 500),
            "0/1": _bytes(ds_id + "z1", 300),
        }
        archive.add_zarr_asset(ds_id, ZARR, chunks, when=t0 + timedelta(minutes=30))
        v1_files.update({f"{ZARR}/{k}": v for k, v in chunks.items()})
    v1 = archive.publish(ds_id, when=t0 + timedelta(hours=1))
    v2_files = dict(v1_files)
    v2_files["sub-01/sub-01_ecephys.nwb"] = _bytes(ds_id + "a2", 310_000)
    del v2_files["sub-02/sub-02_ecephys.nwb"]
    v2_files["sub-03/sub-03_ecephys.nwb"] = _bytes(ds_id + "d", 50_000)
    archive.put_asset(
        ds_id, "sub-01/sub-01_ecephys.nwb", v2_files["sub-01/sub-01_ecephys.nwb"], when=t0 + timedelta(hours=2)
    )
    archive.delete_asset(ds_id, "sub-02/sub-02_ecephys.nwb", when=t0 + timedelta(hours=2, minutes=1))
    archive.put_asset(
        ds_id,
        "sub-03/sub-03_ecephys.nwb",
        v2_files["sub-03/sub-03_ecephys.nwb"],
        when=t0 + timedelta(hours=2, minutes=2),
    )
    v2 = archive.publish(ds_id, when=t0 + timedelta(hours=3))
    draft_files = dict(v2_files)
    draft_files["sub-04/sub-04_ecephys.nwb"] = _bytes(ds_id + "e", 20_000)
    archive.put_asset(
        ds_id, "sub-04/sub-04_ecephys.nwb", draft_files["sub-04/sub-04_ecephys.nwb"], when=t0 + timedelta(hours=4)
    )
    s = Sample(archive, root, ds_id, v1, v2, {v1: v1_files, v2: v2_files, "draft": draft_files}, Runner(root))
    s.sync()
    return s


def data_files(d: Path) -> dict[str, bytes]:
    """Every data file under a dataset directory (plumbing excluded), read through the annex symlinks."""
    out: dict[str, bytes] = {}
    for p in sorted(d.rglob("*")):
        parts = p.relative_to(d).parts
        if {".git", ".datalad"} & set(parts) or parts[-1] in (".gitattributes", ".gitmodules") or p.is_dir():
            continue
        rel = "/".join(parts)
        out[rel] = p.read_bytes() if p.exists() else b"<missing content>"
    return out


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def without_metadata(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if k != "dandiset.yaml"}
