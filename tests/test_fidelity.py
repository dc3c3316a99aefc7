"""A pinned state retrieves its exact bytes, whatever the archive rewrites in place (issue: URL rule).

The DANDI stand-in behaves like the real archive: a Zarr object is rewritten in
place (same key, new S3 version) and the API's Zarr download route redirects to
the *current* object.  A user clones the mirror, checks out the older commit and
gets the old bytes; ``verify --content`` downloads from every registered URL of
every version and hashes.  Mirrors made by the previous layout (the API route
registered too) are repaired by a sync or ``neuromirror repair``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from conftest import CLI, git
from neuromirror.sources import urlrule

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=timezone.utc)
ZARR = "sub-01/sub-01_sample.ome.zarr"
OLD, NEW = b"old bytes of chunk 0/0/0", b"NEW bytes of chunk 0/0/0"  # same size: only the check tells them apart


def zarr_files() -> dict[str, bytes]:
    return {
        ".zgroup": b'{"zarr_format": 2}',
        "0/.zarray": b'{"chunks": [1, 1, 1], "zarr_format": 2}',
        "0/0/0/0": OLD,
        "0/0/0/1": b"chunk 0/0/0/1",
        "0/0/1/0": b"chunk 0/0/1/0",
    }


def user_env(api_url: str) -> dict:
    """A user's environment: loopback allowed for git-annex (stand-ins), the API known."""
    env = dict(os.environ)
    env.update(
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "annex.security.allowed-ip-addresses",
            "GIT_CONFIG_VALUE_0": "all",
            "NEUROMIRROR_DANDI_API": api_url,
        }
    )
    return env


def run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)


def registered_urls(ds: Path, path: str) -> list[str]:
    """The URLs registered for the key at ``path`` in HEAD (by key: a Zarr's chunks are not checked out)."""
    key = git(ds, "cat-file", "-p", f"HEAD:{path}").rsplit("/", 1)[-1]
    info = json.loads(git(ds, "annex", "whereis", "--json", "--key", key))
    return [u for r in info["whereis"] + info.get("untrusted", []) for u in r.get("urls", [])]


@contextlib.contextmanager
def previous_layout() -> Iterator[None]:
    """Write Zarr objects as earlier versions did: every candidate URL, the API's route included."""
    real = urlrule.admissible
    urlrule.admissible = lambda urls: (tuple(urls), False)  # type: ignore[assignment]
    try:
        yield
    finally:
        urlrule.admissible = real  # type: ignore[assignment]


def unmark(*datasets: Path) -> None:
    """Make datasets look made by an earlier version: no URL-rule mark in their git config."""
    for d in datasets:
        subprocess.run(
            ["git", "config", "--local", "--unset", "neuromirror.engine.urlrule"], cwd=d, capture_output=True
        )
        assert (
            subprocess.run(["git", "config", "--local", "--get", "neuromirror.engine.urlrule"], cwd=d).returncode == 1
        )


def rewritten_zarr_mirror(cli: CLI, archive, name: str) -> tuple[str, Path, str]:  # noqa: ANN001
    """A dandiset with a Zarr, mirrored; one object rewritten in place; mirrored again.

    Returns (identifier, the dandiset's dataset, its commit before the rewrite).
    """
    ident = archive.create_dandiset(name=name, created=T0)
    archive.put_asset(ident, "sub-01/sub-01_ecephys.nwb", b"nwb" * 300, when=T0)
    aid = archive.add_zarr_asset(ident, ZARR, zarr_files(), when=T0)
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, out + err
    ds = cli.root / "dandi" / ident
    before = git(ds, "rev-parse", "HEAD").strip()
    archive.modify_zarr(archive.asset(aid).zarr.zarr_id, put={"0/0/0/0": NEW}, when=T0 + timedelta(days=1))
    return ident, ds, before


def old_and_new_bytes_in_a_clone(root: Path, ident: str, before: str, dest: Path, api_url: str) -> None:
    """Clone the mirror; HEAD gets the new bytes, the older commit the old ones (``datalad get -r``)."""
    env = user_env(api_url)
    p = run(["datalad", "clone", str(root), str(dest)], dest.parent, env)
    assert p.returncode == 0, p.stderr
    p = run(["datalad", "get", "-n", "-r", f"dandi/{ident}"], dest, env)
    assert p.returncode == 0, p.stdout + p.stderr
    wds = dest / "dandi" / ident
    p = run(["datalad", "get", "-r", ZARR], wds, env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (wds / ZARR / "0/0/0/0").read_bytes() == NEW
    git(wds, "checkout", "-q", before)
    git(wds, "submodule", "update", "--", ZARR)
    p = run(["datalad", "get", "-r", ZARR], wds, env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (wds / ZARR / "0/0/0/0").read_bytes() == OLD
    assert (wds / ZARR / "0/0/1/0").read_bytes() == b"chunk 0/0/1/0"


def test_zarr_object_rewritten_in_place_old_commit_gets_old_bytes(cli, dandi_archive, tmp_path: Path) -> None:
    ident, ds, before = rewritten_zarr_mirror(cli, dandi_archive, "rewrite in place")
    zds = ds / ZARR
    # only pinned URLs: no URL of a Zarr object is the API's download route (it follows the current object)
    for path in ("0/0/0/0", ".zgroup"):
        urls = registered_urls(zds, path)
        assert urls and all("versionId=" in u for u in urls), urls
        assert all(urlrule.stability(u) is urlrule.Stability.PINNED for u in urls)
        assert not any("/zarr/" in u and "download=true" in u for u in urls), urls
    old_key = git(zds, "annex", "lookupkey", "0/0/0/0").strip()

    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, out + err
    assert "1 changed" in git(zds, "log", "-1", "--format=%s")
    new_key = git(zds, "annex", "lookupkey", "0/0/0/0").strip()
    assert new_key != old_key and new_key.split("--")[0] == old_key.split("--")[0]  # same size, new MD5

    old_and_new_bytes_in_a_clone(cli.root, ident, before, tmp_path / "user", dandi_archive.api_url)
    # every registered URL of every version serves exactly its key's bytes
    code, out, err = cli("verify", f"dandi:{ident}", "--all-versions", "--content", "--allow-ip", "all")
    assert code == 0, out + err
    assert "2 version(s) verified: 2 OK" in out, out


def test_mirror_of_the_previous_layout_is_repaired(cli, dandi_archive, tmp_path: Path) -> None:
    """The previous layout registered the API's Zarr route too; `repair` (and a sync) take it back."""
    with previous_layout():
        ident, ds, before = rewritten_zarr_mirror(cli, dandi_archive, "previous layout")
    zds = ds / ZARR
    unmark(ds, zds)
    lines = [u for u in registered_urls(zds, "0/0/0/0") if "download=true" in u]
    n_objects = len(git(zds, "annex", "find", "--branch", "HEAD", "--include=*").split())
    assert any("download=true" in u for u in registered_urls(zds, "0/0/0/0"))
    # the bug as users met it: a registered URL of the mirrored (now older) state serves other bytes;
    # whether git-annex tries it first depends on the URLs' order, so ask verify, which tries them all
    code, out, err = cli("verify", f"dandi:{ident}", "--content", "--allow-ip", "all")
    assert code == 1 and "MISMATCH content" in out and "download=true serves different bytes" in out, out + err
    code, out, err = cli("repair", f"dandi:{ident}", "--json")
    assert code == 0, out + err
    (rep,) = json.loads(out)
    assert lines and rep["urls_removed"] == n_objects and rep["datasets"] == 2, rep
    assert not any("download=true" in u for u in registered_urls(zds, "0/0/0/0"))
    assert git(zds, "config", "neuromirror.engine.urlrule").strip() == "1"
    # a second repair finds nothing; a forced one scans again and finds nothing either
    assert json.loads(cli("repair", f"dandi:{ident}", "--json", "--force")[1])[0]["urls_removed"] == 0

    code, out, err = cli("verify", f"dandi:{ident}", "--content", "--allow-ip", "all")
    assert code == 0, out + err
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, out + err
    old_and_new_bytes_in_a_clone(cli.root, ident, before, tmp_path / "user", dandi_archive.api_url)


def test_a_sync_repairs_a_mirror_of_the_previous_layout(cli, dandi_archive) -> None:
    ident = dandi_archive.create_dandiset(name="healed by sync", created=T0)
    dandi_archive.add_zarr_asset(ident, ZARR, zarr_files(), when=T0)
    with previous_layout():
        assert cli("sync", f"dandi:{ident}")[0] == 0
    ds = cli.root / "dandi" / ident
    zds = ds / ZARR
    unmark(ds, zds)
    (api,) = [u for u in registered_urls(zds, "0/0/0/0") if "download=true" in u]
    code, out, err = cli("sync", f"dandi:{ident}", "--json")
    assert code == 0, out + err
    (report,) = json.loads(out) if isinstance(json.loads(out), list) else [json.loads(out)]
    assert any("repaired 2 dataset(s): removed 5 URL(s)" in w for w in report["warnings"]), report
    assert api not in registered_urls(zds, "0/0/0/0")
    # and the run record says so too
    db = sqlite3.connect(cli.root / ".neuromirror" / "index.sqlite")
    (rec,) = db.execute(
        "SELECT report FROM runs WHERE source=? ORDER BY id DESC LIMIT 1", [f"dandi:{ident}"]
    ).fetchone()
    assert "repaired 2 dataset(s)" in rec


def test_api_spelled_with_another_host_name_still_pins_s3(tmp_path: Path, capsys, dandi_archive) -> None:  # noqa: ANN001
    """contentUrl carries the archive's own API URL (127.0.0.1); the user reaches it as localhost."""
    ident = dandi_archive.create_dandiset(name="other host name", created=T0)
    dandi_archive.put_asset(ident, "sub-01/sub-01_ecephys.nwb", b"a blob" * 100, when=T0)
    other = dandi_archive.api_url.replace("127.0.0.1", "localhost") + "/"
    assert other != dandi_archive.api_url + "/"
    cli = CLI(tmp_path / "mirror", capsys, other)
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, out + err
    urls = registered_urls(cli.root / "dandi" / ident, "sub-01/sub-01_ecephys.nwb")
    s3_host = dandi_archive.s3.endpoint_url.split("//", 1)[1]
    pinned = [u for u in urls if "versionId=" in u]
    assert len(pinned) == 1 and f"//{s3_host}/" in pinned[0] and "/blobs/" in pinned[0], urls
    blob = dandi_archive.asset_at(ident, "sub-01/sub-01_ecephys.nwb").blob
    assert blob.version_id and pinned[0].endswith("?versionId=" + blob.version_id), (pinned, blob)
    assert not any("/api/" in u and "versionId" in u for u in urls), urls
    assert any(u.startswith(other.rstrip("/") + "/assets/") and u.endswith("/download/") for u in urls), urls
    db = sqlite3.connect(cli.root / ".neuromirror" / "index.sqlite")
    (stored,) = db.execute(
        "SELECT urls FROM entries WHERE source=? AND path=?", [f"dandi:{ident}", "sub-01/sub-01_ecephys.nwb"]
    ).fetchone()
    assert sorted(json.loads(stored)) == sorted(urls)


def test_faults_on_the_very_first_request_are_retried(tmp_path: Path, capsys, s3) -> None:  # noqa: ANN001
    from neuromirror.standins.dandi.server import DandiStandIn

    # a stand-in of its own: the dandi client caches each URL's server info per process
    with DandiStandIn(s3, bucket="nm-first-request") as archive:
        ident = archive.create_dandiset(name="first request", created=T0)
        archive.put_asset(ident, "sub-01/sub-01_ecephys.nwb", b"first" * 50, when=T0)
        archive.fault_info = True
        archive.reset_request_log()
        archive.faults.fail_next(1, "truncated")
        archive.faults.fail_next(1, "500")
        cli = CLI(tmp_path / "mirror", capsys, archive.api_url)
        code, out, err = cli("sync", f"dandi:{ident}")
        assert code == 0, out + err
        # the first request (the API's /info/, named and paced by the mirror) met both faults and was asked again
        assert [p for _, p in archive.request_log[:3]] == ["/api/info/"] * 3, archive.request_log[:3]
        assert (cli.root / "dandi" / ident / "sub-01/sub-01_ecephys.nwb").is_symlink()


def test_a_url_that_is_no_dandi_api_is_reported_as_such(cli, dandi_archive) -> None:
    ident = dandi_archive.create_dandiset(name="wrong path", created=T0)
    wrong = dandi_archive.api_url.rsplit("/api", 1)[0] + "/nope"
    code, out, err = cli("sync", f"dandi:{ident}", "--dandi-api", wrong)
    assert code == 1
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert f"{wrong} is not a DANDI API" in err and "No such Dandiset" not in out + err, (out, err)
    assert len(lines) == 1, err
    assert not (cli.root / "dandi" / ident).exists()


def test_verdicts_of_the_url_kinds() -> None:
    u = "abcdef12-3456-7890-abcd-ef1234567890"
    pinned, immutable, mutable = urlrule.Stability.PINNED, urlrule.Stability.IMMUTABLE, urlrule.Stability.MUTABLE
    cases: dict[str, urlrule.Stability] = {
        f"https://dandiarchive.s3.amazonaws.com/blobs/abc/def/{u}?versionId=v1": pinned,
        f"https://dandiarchive.s3.amazonaws.com/blobs/abc/def/{u}": immutable,
        f"https://api.dandiarchive.org/api/assets/{u}/download/": immutable,
        f"https://api.dandiarchive.org/api/dandisets/000027/versions/draft/assets/{u}/download/": immutable,
        f"neuromirror+dandi:https://api.dandiarchive.org/api/assets/{u}/download/": immutable,
        f"https://api.dandiarchive.org/api/zarr/{u}/files/?prefix=0/0&download=true": mutable,
        f"neuromirror+dandi:https://api.dandiarchive.org/api/zarr/{u}/files/?prefix=0&download=true": mutable,
        f"https://dandiarchive.s3.amazonaws.com/zarr/{u}/0/0?versionId=v2": pinned,
        f"https://dandiarchive.s3.amazonaws.com/zarr/{u}/0/0": mutable,
        "https://aind-open-data.s3.us-west-2.amazonaws.com/ecephys_1/a.bin?versionId=null": mutable,
        "https://aind-open-data.s3.us-west-2.amazonaws.com/ecephys_1/a.bin": mutable,
        "neuromirror+boss://api.bossdb.io/c/e/ch/0/0:512/0:512/0:16/?chunk=16,512,512&dtype=uint8": mutable,
    }
    assert {url: urlrule.stability(url) for url in cases} == cases
    kept, unpinned = urlrule.admissible(
        [f"https://h/zarr/{u}/0?versionId=1", f"https://h/api/zarr/{u}/files/?prefix=0"]
    )
    assert kept == (f"https://h/zarr/{u}/0?versionId=1",) and not unpinned
    kept, unpinned = urlrule.admissible(["https://b.s3.amazonaws.com/k"])
    assert kept == ("https://b.s3.amazonaws.com/k",) and unpinned


def test_s3_urls_are_recognised_by_what_they_are() -> None:
    from neuromirror.sources import s3urls
    from neuromirror.sources.dandi.zarr_listing import is_archive_key

    u = "abcdef12-3456-7890-abcd-ef1234567890"
    key = is_archive_key
    loc = s3urls.locate
    assert loc(f"https://dandiarchive.s3.amazonaws.com/blobs/abc/def/{u}") == s3urls.S3Location(
        None, "dandiarchive", f"blobs/abc/def/{u}"
    )
    assert loc("https://s3.us-west-2.amazonaws.com/aind-open-data/x/y.bin").bucket == "aind-open-data"
    assert loc("https://b.s3-us-west-2.amazonaws.com/k").bucket == "b"
    assert loc("https://b.s3.dualstack.us-east-1.amazonaws.com/k").bucket == "b"
    # a configured endpoint: path-style
    assert loc("http://127.0.0.1:9000/bucket/any/key", ["http://127.0.0.1:9000/"]) == s3urls.S3Location(
        "http://127.0.0.1:9000", "bucket", "any/key"
    )
    # the archive's own layout on an unlisted host, path-style or virtual-hosted
    assert loc(f"http://minio.lab:9000/dandi/blobs/abc/def/{u}", archive_key=key) == s3urls.S3Location(
        "http://minio.lab:9000", "dandi", f"blobs/abc/def/{u}"
    )
    assert loc(f"http://dandi.minio.lab/zarr/{u}/", archive_key=key) == s3urls.S3Location(
        "http://minio.lab", "dandi", f"zarr/{u}/"
    )
    # the archive's download route is not S3, whatever its host; nor is an unknown URL
    assert loc(f"http://localhost:8000/api/assets/{u}/download/", archive_key=key) is None
    assert loc("https://example.org/data/file.nwb", archive_key=key) is None
