"""The RIA-store tests' helpers (tests/test_publish_ria*.py, tests/test_maintain.py): commands run as a stranger, the store's layout."""

from __future__ import annotations

import os
import subprocess
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from helpers.retrieve import Runner, git

KEY = "nmriakey" + uuid.uuid4().hex  # the DANDI API key: recognisable, so the store can be searched for it


T0 = datetime(2025, 9, 1, 8, 0, tzinfo=timezone.utc)


def _sync(run: Runner, archive, ident: str, key: bool = False) -> None:  # noqa: ANN001
    if key:
        os.environ["DANDI_API_KEY"] = KEY
    try:
        run.ok("sync", f"dandi:{ident}", "--dandi-api", archive.api_url)
    finally:
        os.environ.pop("DANDI_API_KEY", None)


def _delete_all_versions(archive, bucket: str, key: str) -> None:  # noqa: ANN001
    client = archive.s3.client()
    listing = client.list_object_versions(Bucket=bucket, Prefix=key)
    for v in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
        client.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
    assert not client.list_object_versions(Bucket=bucket, Prefix=key).get("Versions")


@dataclass
class Served:
    url: str
    store: Path
    log: BinaryIO


def tool_env() -> dict[str, str]:
    """A stranger's environment: no secrets; git-annex may reach the loopback stand-ins."""
    env = {k: v for k, v in os.environ.items() if k not in ("DANDI_API_KEY", "INTERN_TOKEN")}
    env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "annex.security.allowed-ip-addresses"})
    env["GIT_CONFIG_VALUE_0"] = "all"
    return env


def sh(cwd: Path, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=tool_env())
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def ds_dir(store: Path, dsid: str) -> Path:
    return store / dsid[:3] / dsid[3:]


def dsid_of(repo: Path) -> str:
    return git(repo, "config", "--blob", "HEAD:.datalad/config", "datalad.dataset.id")  # as committed


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def snapshot(store: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirs, names in os.walk(store):
        for n in dirs + names:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, store)] = os.lstat(p).st_mtime_ns
    return out


def store_refs(store: Path) -> dict[str, dict[str, str]]:
    from neuromirror.publish.ria.layout import read_refs

    found = store.glob("*/*/ria-layout-version")
    return {str(p.parent.relative_to(store)): read_refs(p.parent) for p in found if p.parts[-3] != "alias"}


def aliases(store: Path) -> dict[str, str]:
    return {str(p.relative_to(store / "alias")): os.readlink(p) for p in (store / "alias").rglob("*") if p.is_symlink()}


def assert_no_alias_to_incomplete(store: Path) -> None:
    from neuromirror.publish.ria.layout import head_ref, read_refs

    for alias in aliases(store):
        d = (store / "alias" / alias).resolve()
        refs = read_refs(d)
        assert head_ref(d) in refs and "refs/heads/git-annex" in refs, alias
