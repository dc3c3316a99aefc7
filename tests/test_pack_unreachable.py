"""A clone skips a packed store it cannot reach, as git-annex skips a directory remote that is not mounted.

Why: a clone enabled every packed store its dataset records; one it could not reach (a tape file system
mounted elsewhere, a moved disk, a bucket the reader has no credentials for) answered "holds no copy" for
each key, and git-annex retried each (``datalad get`` passes ``annex.retry=3``: 1 s, then 2 s): 31 s for 10
files the reachable store gave in 0.44 s.  Here a dandiset is kept into two packed directory stores, every
S3 version of its blobs is deleted, and a plain clone gets them with one of the stores gone: moved away
before the clone (never enabled: ``git annex enableremote`` says why in one line), or after it (skipped by
git-annex, its remote program never started), and back again (used again).  git-annex's own debug log of
the get (``annex.retry=3``, as DataLad runs it) shows what was tried: no retry delay, one remote program
prepared.  A packed S3 store a reader has no credentials for is not enabled either; one that goes away after
a clone enabled it (its bucket deleted, its prefix emptied, its endpoint gone) is asked once a command (one
read of its marker, counted on the S3 stand-in), not once a key with 3 s of retries each, and the archive's
URLs serve the files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from conftest import clone, git
from helpers.keep import lose_blobs, make_dandiset, sha256

FILES = {f"sub-{i:02d}/f.nwb": 9_000 + 101 * i for i in range(4)}


class World:
    def __init__(self, archive, tmp: Path) -> None:  # noqa: ANN001
        self.tmp = tmp
        self.d = make_dandiset(archive, tmp / "mirror", FILES)
        self.near, self.far = tmp / "near", tmp / "far"
        for store in (self.near, self.far):
            self.d.run.ok("keep", self.d.spec, "--to", f"pack+file://{store}", "--pack-size", "1M")
        lose_blobs(self.d, list(FILES))
        self.marks = {s: json.loads((s / ".neuromirror-store.json").read_text()) for s in (self.near, self.far)}

    def name(self, store: Path) -> str:
        return str(self.marks[store]["name"])

    def uuid(self, store: Path) -> str:
        return str(self.marks[store]["uuid"])

    def clone(self, where: Path) -> Path:
        work = clone(self.d.ds, where)
        git(work, "checkout", "-q", self.d.version)
        return work

    def far_away(self) -> Path:
        """The far store's directory moved elsewhere (a disk unmounted); returns where it went."""
        moved = self.tmp / "far-moved"
        shutil.move(str(self.far), str(moved))
        return moved


@pytest.fixture(scope="module")
def world(dandi_archive, tmp_path_factory) -> World:  # noqa: ANN001
    return World(dandi_archive, tmp_path_factory.mktemp("pack-unreachable"))


@pytest.fixture
def far_gone(world: World) -> Iterator[None]:
    moved = world.far_away()
    try:
        yield
    finally:
        shutil.move(str(moved), str(world.far))


def enabled_uuids(work: Path) -> set[str]:
    out = subprocess.run(
        ["git", "config", "--get-regexp", r"^remote\..*\.annex-uuid$"], cwd=work, capture_output=True, text=True
    ).stdout
    return {line.split()[1] for line in out.splitlines()}


def annex_get(work: Path, *args: str) -> subprocess.CompletedProcess:
    """``git annex get`` as ``datalad get`` runs it (``annex.retry=3``), with git-annex's debug log on stderr."""
    return subprocess.run(
        ["git", "-c", "annex.retry=3", "annex", "get", "--debug", *args], cwd=work, capture_output=True, text=True
    )


def test_a_clone_does_not_enable_a_packed_store_it_cannot_reach(world: World, far_gone: None, tmp_path: Path) -> None:
    work = world.clone(tmp_path / "clone")
    assert world.uuid(world.near) in enabled_uuids(work)
    assert world.uuid(world.far) not in enabled_uuids(work)  # autoenable refused it, as a directory remote's

    proc = subprocess.run(
        ["git", "annex", "enableremote", world.name(world.far)], cwd=work, capture_output=True, text=True
    )
    assert proc.returncode == 1
    said = [line for line in proc.stderr.splitlines() if line.startswith("git-annex:")]
    assert said == [
        f"git-annex: pack+file://{world.far}: not reachable here: no packed store at {world.far} "
        "(unmounted, moved or deleted?)"
    ], proc.stderr

    got = annex_get(work, ".")
    assert got.returncode == 0, got.stdout + got.stderr
    assert "Delaying" not in got.stdout + got.stderr  # nothing failed, so nothing was retried
    assert got.stderr.count("<-- PREPARE") == 1  # one packed store's remote program: the near one
    for path in FILES:
        assert sha256((work / path).read_bytes()) == sha256(world.d.files[path]), path

    git(work, "annex", "drop", "--force", ".")
    proc = subprocess.run(["datalad", "get", "."], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert world.name(world.far) not in proc.stdout + proc.stderr


def test_a_packed_store_gone_after_enabling_is_skipped_without_retries_and_used_once_back(
    world: World, tmp_path: Path
) -> None:
    work = world.clone(tmp_path / "clone")
    far = world.name(world.far)
    assert {world.uuid(world.near), world.uuid(world.far)} <= enabled_uuids(work)
    git(work, "config", f"remote.{far}.annex-cost", "100")  # the far store is tried first wherever it is used

    moved = world.far_away()
    try:
        got = annex_get(work, ".")
        assert got.returncode == 0, got.stdout + got.stderr
        assert "Delaying" not in got.stdout + got.stderr
        assert got.stderr.count("<-- PREPARE") == 1  # the far store's program never started
        assert f"from {far}" not in got.stdout
        said = [x for x in got.stderr.splitlines() if x.startswith("neuromirror: ")]
        assert said == [
            f"neuromirror: pack+file://{world.far}: not reachable here: no packed store at {world.far} (unmounted, "
            "moved or deleted?): skipped, its copies read from elsewhere (asked again next time)"
        ], got.stderr  # told once, in one line
        for path in FILES:
            assert sha256((work / path).read_bytes()) == sha256(world.d.files[path]), path

        git(work, "annex", "drop", "--force", ".")
        proc = subprocess.run(["datalad", "get", "."], cwd=work, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr

        # asked for by name, the far store says in one line why it cannot serve, each key at once: its program
        # started once for both (a failed PREPARE would have git-annex start it again for each key)
        one, two = list(FILES)[:2]
        git(work, "annex", "drop", "--force", one, two)
        proc = subprocess.run(
            ["git", "annex", "get", "--debug", "--from", far, one, two], cwd=work, capture_output=True, text=True
        )
        assert proc.returncode == 1
        why = f"pack+file://{world.far}: not reachable here: no packed store at {world.far} (unmounted, moved or"
        assert proc.stderr.count("--> TRANSFER-FAILURE RETRIEVE") == 2 and why in proc.stdout + proc.stderr
        assert proc.stderr.count("<-- PREPARE") == 1
        whereis = subprocess.run(["git", "annex", "whereis", one], cwd=work, capture_output=True, text=True)
        assert whereis.returncode == 0 and whereis.stderr == "" and far in whereis.stdout  # the record, quietly
    finally:
        shutil.move(str(moved), str(world.far))

    got = annex_get(work, ".")  # back: the far store (cost 100) serves again, no other store asked
    assert got.returncode == 0, got.stdout + got.stderr
    assert got.stdout.count(f"from {far}") == 2 and got.stderr.count("<-- PREPARE") == 1, got.stdout
    for path in (one, two):
        assert sha256((work / path).read_bytes()) == sha256(world.d.files[path])


def test_a_packed_store_gone_while_a_get_runs_says_so_not_that_it_holds_no_copy(world: World, tmp_path: Path) -> None:
    """The store unmounted under a running ``git annex get --batch`` (its remote program prepared): the next key
    fails with the store's one line, not "holds no copy" (which would read as the store having lost it)."""
    work = world.clone(tmp_path / "clone")
    far = world.name(world.far)
    one, two = list(FILES)[:2]
    cmd = ["git", "annex", "get", "--from", far, "--batch", "--json", "--json-error-messages"]
    with subprocess.Popen(cmd, cwd=work, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdin is not None and proc.stdout is not None

        def ask(path: str) -> dict:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(path + "\n")
            proc.stdin.flush()
            return dict(json.loads(proc.stdout.readline()))

        assert ask(one)["success"] is True
        moved = world.far_away()
        try:
            answer = ask(two)
        finally:
            proc.stdin.close()
            shutil.move(str(moved), str(world.far))
    assert answer["success"] is False, answer
    said = " ".join(answer.get("error-messages", []))
    assert f"pack+file://{world.far}: not reachable here: no packed store at {world.far}" in said, answer
    assert "holds no copy" not in said


def test_a_packed_s3_store_is_not_enabled_where_the_reader_has_no_credentials_for_it(
    dandi_archive,  # noqa: ANN001
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 7_001})
    d.run.ok("keep", d.spec, "--to", f"pack+s3://{bucket}/lab")
    d.run.ok("keep", d.spec, "--to", f"pack+file://{tmp_path / 'near'}")
    lose_blobs(d, ["sub-01/a.nwb"])
    s3_uuid = next(u for u, f in _stores(d.ds).items() if f.get("url", "").startswith("pack+s3:"))

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # a reader outside the lab: an anonymous request
        monkeypatch.delenv(var)
    work = clone(d.ds, tmp_path / "clone")
    assert s3_uuid not in enabled_uuids(work) and len(enabled_uuids(work)) == 2  # origin and the directory's
    proc = subprocess.run(["git", "annex", "enableremote", s3_uuid], cwd=work, capture_output=True, text=True)
    said = [line for line in proc.stderr.splitlines() if line.startswith("git-annex:")]
    assert proc.returncode == 1 and len(said) == 1, proc.stderr
    assert said[0].startswith(f"git-annex: pack+s3://{bucket}/lab/: not reachable here: ") and "Forbidden" in said[0]
    git(work, "checkout", "-q", d.version)
    proc = subprocess.run(["datalad", "get", "."], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sha256((work / "sub-01/a.nwb").read_bytes()) == sha256(d.files["sub-01/a.nwb"])


def _stores(ds: Path) -> dict[str, dict[str, str]]:
    from neuromirror.store.annexlog import recorded_stores

    return recorded_stores(git(ds, "show", "git-annex:remote.log").encode())


GONE = {
    "bucket deleted": lambda s3, bucket: s3.delete_bucket(bucket),
    "prefix emptied": lambda s3, bucket: [
        s3.client().delete_object(Bucket=bucket, Key=o["Key"])
        for o in s3.client().list_objects_v2(Bucket=bucket, Prefix="lab/")["Contents"]
    ],
    "endpoint gone": None,  # the clone's environment names an endpoint nothing listens on
}


@pytest.mark.parametrize("how", list(GONE))
def test_a_packed_s3_store_gone_after_enabling_is_asked_once_a_command_and_the_archive_serves(
    dandi_archive,  # noqa: ANN001
    s3,  # noqa: ANN001
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    d = make_dandiset(dandi_archive, tmp_path / "mirror", FILES)
    d.run.ok("keep", d.spec, "--to", f"pack+s3://{bucket}/lab")
    uuid = next(u for u, f in _stores(d.ds).items() if f.get("url", "").startswith("pack+s3:"))
    work = clone(d.ds, tmp_path / "clone")
    git(work, "checkout", "-q", d.version)
    assert uuid in enabled_uuids(work)  # reachable when the clone was made: enabled

    gone = GONE[how]
    if gone is None:
        monkeypatch.setenv("NEUROMIRROR_STORE_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused
    else:
        gone(s3, bucket)
    log = s3.log_requests()
    proc = subprocess.run(["datalad", "get", "."], cwd=work, capture_output=True, text=True)
    s3.log_requests(False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path in FILES:
        assert sha256((work / path).read_bytes()) == sha256(d.files[path]), path
    asked = [p for _, p in log if p.startswith(f"/{bucket}/")]
    # one read of the store's marker for the 4 files (none where the endpoint is gone), not one or more a key
    assert asked == ([] if gone is None else [f"/{bucket}/lab/.neuromirror-store.json"]), asked
    assert [p for _, p in log if p.startswith(f"/{dandi_archive.bucket}/")], "the archive's URLs served the files"

    git(work, "annex", "drop", "--force", ".")
    got = annex_get(work, ".")  # as datalad runs it (annex.retry=3), git-annex's stderr seen
    assert got.returncode == 0, got.stdout + got.stderr
    assert "Delaying" not in got.stdout + got.stderr  # nothing failed, so nothing was retried
    assert got.stderr.count("<-- PREPARE") == 0  # the store's remote program never started
    said = [x for x in got.stderr.splitlines() if x.startswith("neuromirror: ")]
    assert len(said) == 1, got.stderr  # the user is told once, in one line, which store is gone
    assert said[0].startswith(f"neuromirror: pack+s3://{bucket}/lab/: not reachable here: ") and said[0].endswith(
        ": skipped, its copies read from elsewhere (asked again next time)"
    ), said
    for path in FILES:
        assert sha256((work / path).read_bytes()) == sha256(d.files[path]), path
