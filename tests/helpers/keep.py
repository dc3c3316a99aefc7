"""The keep tests' helpers (tests/test_keep*.py and the tests that keep): a dandiset mirrored into a root, blobs lost, keys and stores read."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from conftest import clone, git
from helpers.retrieve import Runner
from helpers.service import ENV
from neuromirror.demo import deterministic_bytes


def _flip_a_byte(path: Path) -> None:
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


T0 = datetime(2025, 6, 1, 8, 0, tzinfo=timezone.utc)


STORE_NAME = "neuromirror-store"


def remote_name_of(store: Path) -> str:
    """The git-annex remote name a store's datasets record: its own, derived from its UUID."""
    ident = json.loads((store / ".neuromirror-store.json").read_text())
    return ident["name"]


@dataclass
class Dandiset:
    archive: object
    id: str
    version: str
    files: dict[str, bytes]  # the published version's annexed files
    run: Runner

    @property
    def source(self) -> str:
        return f"dandi:{self.id}"

    @property
    def spec(self) -> str:
        return f"{self.source}@{self.version}"

    @property
    def ds(self) -> Path:
        return self.run.root / "dandi" / self.id


def make_dandiset(archive, root: Path, sizes: dict[str, int], *, zarr: dict[str, bytes] | None = None) -> Dandiset:  # noqa: ANN001
    """A dandiset with one published version of ``sizes`` (path -> bytes) and a README, synced into ``root``."""
    when = T0 + timedelta(days=len(archive.dandiset_ids()))
    ident = archive.create_dandiset(name="keep sample", created=when)
    files = {path: deterministic_bytes(f"{ident}:{path}", n) for path, n in sizes.items()}
    for i, (path, data) in enumerate(files.items()):
        archive.put_asset(ident, path, data, when=when + timedelta(minutes=i + 1))
    archive.put_asset(ident, "README.md", b"# keep sample\n", when=when + timedelta(minutes=30))
    if zarr:
        archive.add_zarr_asset(ident, "sub-09/sample.zarr", zarr, when=when + timedelta(minutes=40))
    version = archive.publish(ident, when=when + timedelta(hours=1))
    run = Runner(root)
    run.ok("sync", f"dandi:{ident}", "--dandi-api", archive.api_url)
    return Dandiset(archive, ident, version, files, run)


def lose_blobs(d: Dandiset, paths: list[str], version: str | None = None) -> None:
    """What garbage collection does: every S3 version of the blobs gone (no delete marker to undo); the paths
    as ``version`` has them (default: the published version's)."""
    client = d.archive.s3.client()
    for path in paths:
        blob = d.archive.asset_at(d.id, path, version or d.version).blob
        _delete_all_versions(client, blob.bucket, blob.key)


def lost_then_got(d: Dandiset, where: Path, wanted: dict[str, bytes]) -> Path:
    """The draft's blobs of ``wanted`` lost, then a plain clone's ``datalad get`` of those paths: every byte from
    the stores the clone found by itself.  The clone."""
    lose_blobs(d, list(wanted), "draft")
    work = clone(d.ds, where)
    proc = subprocess.run(["datalad", "get", *wanted], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path, data in wanted.items():
        assert sha256((work / path).read_bytes()) == sha256(data), path
    return work


def lose_zarr(d: Dandiset, path: str) -> None:
    z = d.archive.asset_at(d.id, path, d.version).zarr
    _delete_all_versions(d.archive.s3.client(), z.bucket, f"zarr/{z.zarr_id}/")


def _delete_all_versions(client, bucket: str, prefix: str) -> None:  # noqa: ANN001
    listing = client.list_object_versions(Bucket=bucket, Prefix=prefix)
    gone = listing.get("Versions", []) + listing.get("DeleteMarkers", [])
    assert gone, f"nothing under {prefix}"
    for v in gone:
        client.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
    assert not client.list_object_versions(Bucket=bucket, Prefix=prefix).get("Versions")


def keep_json(d: Dandiset, store: Path, *args: str) -> tuple[int, dict, str]:
    code, out, err = d.run("keep", *args, "--to", str(store), "--json")
    return code, json.loads(out), err


def store_keys(store: Path) -> set[str]:
    return {p.name for p in store.glob("*/*/*/*") if p.is_file()}


def key_of(repo: Path, path: str, rev: str) -> str:
    return Path(git(repo, "cat-file", "-p", f"{rev}:{path}")).name


def whereis(repo: Path, key: str) -> set[str]:
    out = subprocess.run(
        ["git", "annex", "whereis", "--json", "--key", key], cwd=repo, capture_output=True, text=True
    ).stdout
    return {w["description"] for w in json.loads(out)["whereis"]} if out.strip() else set()


def kept_in(repo: Path, key: str) -> bool:
    return any(d.startswith("neuromirror store at") or STORE_NAME in d for d in whereis(repo, key))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keep_config(path: Path, api: str, sid: str, head: str, source_lines: str = "", *, interval: str = "1h") -> Path:
    """A mirror definition keeping ``sid``'s published versions (hourly): ``head`` names the stores (and copies)."""
    path.write_text(
        head + "defaults:\n"
        f"  schedule: {{interval: {interval}}}\n"
        f'  options: {{dandi_api: "{api}"}}\n'
        "sources:\n"
        f'  - spec: "{sid}"\n'
        "    keep: published\n" + source_lines
    )
    return path


ACCESS_KEY = "AKIAKEEPSTORETEST0001"


SECRET_KEY = "keep-store-secret-Zq81xW"  # moto accepts any: these strings must appear nowhere on disk


def clone_gets_every_byte(d: Dandiset, where: Path) -> Path:
    """A plain ``datalad clone`` of the mirror's dataset at the version and ``datalad get .``: every file's bytes
    are the archive's, from whatever store the clone found by itself.  The clone."""
    work = clone(d.ds, where)
    git(work, "checkout", "-q", d.version)
    proc = subprocess.run(["datalad", "get", "."], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path, data in d.files.items():
        assert (work / path).read_bytes() == data, path
    return work


@contextmanager
def lab_bucket(s3) -> Iterator[str]:  # noqa: ANN001
    """A bucket of the lab's for a module's tests, the store's endpoint and credentials set (the view's too)."""
    name = f"lab-packs-{uuid.uuid4().hex[:10]}"
    s3.client().create_bucket(Bucket=name)
    s3.buckets.append(name)  # deleted with the stand-in
    settings = {"NEUROMIRROR_STORE_ENDPOINT": s3.endpoint_url, "AWS_ACCESS_KEY_ID": ACCESS_KEY}
    settings["AWS_SECRET_ACCESS_KEY"] = SECRET_KEY
    with pytest.MonkeyPatch.context() as env:
        for var, value in settings.items():
            env.setenv(var, value)
            env.setitem(ENV, var, value)
        for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "NEUROMIRROR_STORE_REGION", "NEUROMIRROR_STORE_PUBLIC_URL"):
            env.delenv(var, raising=False)
            env.delitem(ENV, var, raising=False)
        yield name
