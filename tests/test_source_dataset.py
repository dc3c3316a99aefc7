"""A source's dataset, written directly (``dataset/fast_init.py``), is what DataLad and git-annex expect.

The mirror no longer runs ``datalad create -c text2git`` for each dandiset; these tests check,
with DataLad's and git-annex's own commands, that what it writes instead behaves the same: the
root lists it as a subdataset, both are clean, git-annex knows the description, binary files
are annexed under SHA256E keys and text files are in git, and a clone of the root installs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from conftest import git

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def sync(root: Path, api: str, *specs: str) -> None:
    p = run(
        [sys.executable, "-m", "neuromirror", "--root", str(root), "sync", *specs, "--dandi-api", api, "-q"],
        cwd=root.parent,
        env=dict(os.environ, DANDI_NO_ET="1"),
    )
    assert p.returncode == 0, p.stderr


def test_a_new_source_dataset_is_a_datalad_subdataset_with_text2git_and_sha256e(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    a = dandi_archive.create_dandiset(name="made directly", created=T0)
    dandi_archive.put_asset(a, "sub-1/rec.nwb", b"\x00\x01binary" * 64, when=T0)
    b = dandi_archive.create_dandiset(name="made directly too", created=T0)
    dandi_archive.put_asset(b, "x.nwb", b"\x00\x02" * 50, when=T0)
    root = tmp_path / "mirror"
    sync(root, dandi_archive.api_url, f"dandi:{a}", f"dandi:{b}")
    ds = root / "dandi" / a

    subs = run(["datalad", "-f", "{path}", "subdatasets"], cwd=root)
    assert subs.returncode == 0, subs.stderr
    assert sorted(Path(p).relative_to(root).as_posix() for p in subs.stdout.split()) == [f"dandi/{a}", f"dandi/{b}"]
    for where in (root, ds):
        status = run(["datalad", "status"], cwd=where)
        assert status.returncode == 0 and "nothing to save" in status.stdout, status.stdout + status.stderr
        assert git(where, "status", "--porcelain") == ""
    # the root's sections, as datalad create -d writes them
    assert git(root, "config", "-f", ".gitmodules", f"submodule.dandi/{a}.url") == f"./dandi/{a}\n"
    ds_id = git(ds, "config", "-f", ".datalad/config", "datalad.dataset.id").strip()
    assert git(root, "config", "-f", ".gitmodules", f"submodule.dandi/{a}.datalad-id").strip() == ds_id
    assert git(root, "config", f"submodule.dandi/{a}.active") == "true\n"
    assert not (root / ".neuromirror" / "new").exists() or not any((root / ".neuromirror" / "new").iterdir())

    info = git(ds, "annex", "info", "--fast")
    here = [ln for ln in info.splitlines() if "[here]" in ln]
    assert len(here) == 1 and f"DANDI:{a} mirrored from {dandi_archive.api_url}" in here[0], info
    assert git(ds, "config", "annex.supportunlocked") == "false\n"
    attrs = (ds / ".gitattributes").read_text().splitlines()
    assert "* annex.backend=SHA256E" in attrs
    assert "* annex.largefiles=((mimeencoding=binary)and(largerthan=0))" in attrs
    key = git(ds, "annex", "lookupkey", "sub-1/rec.nwb").strip()
    assert key.startswith("SHA256E-s") and key.endswith(".nwb")
    assert (ds / "sub-1" / "rec.nwb").is_symlink()
    assert not (ds / "dandiset.yaml").is_symlink()
    assert "dandiset.yaml" in git(ds, "ls-files", "dandiset.yaml")  # in git, not annexed
    # a text file added by hand goes to git and a binary one to the annex, by text2git's rule
    (ds / "NOTES.txt").write_text("a note\n")
    (ds / "blob.bin").write_bytes(b"\x00\xff" * 100)
    assert run(["datalad", "save", "-m", "by hand"], cwd=ds).returncode == 0
    assert not (ds / "NOTES.txt").is_symlink() and (ds / "blob.bin").is_symlink()
    assert git(ds, "annex", "lookupkey", "blob.bin").startswith("SHA256E-s200--")

    # a clone of the root installs it, and its content comes from the archive
    dest = tmp_path / "clone"
    env = dict(
        os.environ,
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="annex.security.allowed-ip-addresses",
        GIT_CONFIG_VALUE_0="all",
    )
    p = run(["datalad", "clone", str(root), str(dest)], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    p = run(["datalad", "get", "-r", f"dandi/{b}"], cwd=dest, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (dest / "dandi" / b / "x.nwb").read_bytes() == b"\x00\x02" * 50
    assert git(dest / "dandi" / b, "annex", "lookupkey", "x.nwb").startswith("SHA256E-s100--")


def test_a_creation_killed_before_its_registration_is_registered_by_the_rerun(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    ident = dandi_archive.create_dandiset(name="killed while made", created=T0)
    dandi_archive.put_asset(ident, "a.nwb", b"\x00\x03" * 30, when=T0)
    root = tmp_path / "mirror"
    cmd = [sys.executable, "-m", "neuromirror", "--root", str(root), "sync", f"dandi:{ident}"]
    cmd += ["--dandi-api", dandi_archive.api_url, "-q"]
    crashed = run(cmd, cwd=tmp_path, env=dict(os.environ, DANDI_NO_ET="1", NEUROMIRROR_CRASH_AT="dataset-created"))
    assert crashed.returncode == -9, crashed.stderr
    assert f"dandi/{ident}" not in (root / ".gitmodules").read_text() if (root / ".gitmodules").exists() else True
    sync(root, dandi_archive.api_url, f"dandi:{ident}")
    subs = run(["datalad", "-f", "{path}", "subdatasets"], cwd=root)
    assert [Path(p).relative_to(root).as_posix() for p in subs.stdout.split()] == [f"dandi/{ident}"]
    assert git(root, "status", "--porcelain") == ""
    assert (root / "dandi" / ident / "a.nwb").is_symlink()
