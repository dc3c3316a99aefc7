"""A clone skips a packed store it cannot reach, as git-annex skips a directory remote that is not mounted.

Why: a clone enabled every packed store recorded; one it could not reach answered "holds no copy" for each key,
and git-annex retried each (``annex.retry=3``, as DataLad runs it): 31 s for 10 files the reachable store gave in
0.44 s.  Here one of two packed directory stores goes away before a clone, after it, during a get, and comes back;
a packed S3 store is unreadable (no credentials) or gone (bucket, prefix, endpoint); git-annex's own debug log
shows what was tried.  (``verify --stores`` naming a gone store of any kind: tests/test_store_kinds.py.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from conftest import git
from helpers.keep import Dandiset, lose_blobs, make_dandiset
from helpers.packs import annex_get, cloned, enabled_uuids, holds, run_in
from neuromirror.store.annexlog import recorded_stores

FILES = {f"sub-{i:02d}/f.nwb": 9_000 + 101 * i for i in range(4)}
SKIPPED = ": skipped, its copies read from elsewhere (asked again next time)"


def said(text: str, who: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"{who}: ")]


class World:
    """A dandiset kept into a near and a far packed directory store, then lost by the archive."""

    def __init__(self, archive, tmp: Path) -> None:  # noqa: ANN001
        self.tmp, self.d, self.near, self.far = tmp, make_dandiset(archive, tmp / "mirror", FILES), tmp / "n", tmp / "f"
        for store in (self.near, self.far):
            self.d.run.ok("keep", self.d.spec, "--to", f"pack+file://{store}", "--pack-size", "1M")
        lose_blobs(self.d, list(FILES))
        marks = {s: json.loads((s / ".neuromirror-store.json").read_text()) for s in (self.near, self.far)}
        self.uuid, self.far_name = {s: str(m["uuid"]) for s, m in marks.items()}, str(marks[self.far]["name"])
        self.why = (
            f"pack+file://{self.far}: not reachable here: no packed store at {self.far} (unmounted, moved or deleted?)"
        )

    @contextmanager
    def far_away(self) -> Iterator[None]:
        """The far store's directory moved elsewhere (a disk unmounted), and back."""
        shutil.move(str(self.far), str(self.tmp / "far-moved"))
        try:
            yield
        finally:
            shutil.move(str(self.tmp / "far-moved"), str(self.far))


@pytest.fixture(scope="module")
def world(dandi_archive, tmp_path_factory) -> World:  # noqa: ANN001
    return World(dandi_archive, tmp_path_factory.mktemp("pack-unreachable"))


def test_a_clone_does_not_enable_a_packed_store_it_cannot_reach(world: World, tmp_path: Path) -> None:
    with world.far_away():
        work = cloned(world.d, tmp_path / "clone")
        assert world.uuid[world.near] in enabled_uuids(work)
        assert world.uuid[world.far] not in enabled_uuids(work)  # autoenable refused it, as a directory remote's
        proc = run_in(work, "git", "annex", "enableremote", world.far_name)
        assert proc.returncode == 1 and said(proc.stderr, "git-annex") == [f"git-annex: {world.why}"], proc.stderr

        got = annex_get(work, ".")
        assert got.returncode == 0, got.stdout + got.stderr
        assert "Delaying" not in got.stdout + got.stderr  # nothing failed, so nothing was retried
        assert got.stderr.count("<-- PREPARE") == 1  # one packed store's remote program: the near one
        holds(work, world.d.files)
        git(work, "annex", "drop", "--force", ".")
        proc = run_in(work, "datalad", "get", ".")
        assert proc.returncode == 0 and world.far_name not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_a_packed_store_gone_after_enabling_is_skipped_without_retries_and_used_once_back(
    world: World, tmp_path: Path
) -> None:
    work, far = cloned(world.d, tmp_path / "clone"), world.far_name
    assert {world.uuid[world.near], world.uuid[world.far]} <= enabled_uuids(work)
    git(work, "config", f"remote.{far}.annex-cost", "100")  # the far store is tried first wherever it is used
    one, two = list(FILES)[:2]
    with world.far_away():
        got = annex_get(work, ".")
        assert got.returncode == 0 and "Delaying" not in got.stdout + got.stderr, got.stdout + got.stderr
        assert got.stderr.count("<-- PREPARE") == 1 and f"from {far}" not in got.stdout  # far's program never ran
        assert said(got.stderr, "neuromirror") == [f"neuromirror: {world.why}{SKIPPED}"], got.stderr  # once, one line
        holds(work, world.d.files)
        git(work, "annex", "drop", "--force", ".")
        proc = run_in(work, "datalad", "get", ".")
        assert proc.returncode == 0, proc.stdout + proc.stderr

        # asked for by name, the far store says in one line why it cannot serve, each key at once: its program
        # started once for both (a failed PREPARE would have git-annex start it again for each key)
        git(work, "annex", "drop", "--force", one, two)
        cmd = ["git", "annex", "get", "--debug", "--from", far, one, two]
        proc = run_in(work, *cmd)
        assert proc.returncode == 1 and proc.stderr.count("--> TRANSFER-FAILURE RETRIEVE") == 2
        assert world.why in proc.stdout + proc.stderr and proc.stderr.count("<-- PREPARE") == 1
        whereis = run_in(work, "git", "annex", "whereis", one)
        assert whereis.returncode == 0 and whereis.stderr == "" and far in whereis.stdout  # the record, quietly

    got = annex_get(work, ".")  # back: the far store (cost 100) serves again, no other store asked
    assert got.returncode == 0, got.stdout + got.stderr
    assert got.stdout.count(f"from {far}") == 2 and got.stderr.count("<-- PREPARE") == 1, got.stdout
    holds(work, world.d.files, [one, two])


def test_a_packed_store_gone_while_a_get_runs_says_so_not_that_it_holds_no_copy(world: World, tmp_path: Path) -> None:
    """The store unmounted under a running ``git annex get --batch`` (its remote program prepared): the next key
    fails with the store's one line, not "holds no copy" (which would read as the store having lost it)."""
    work, (one, two) = cloned(world.d, tmp_path / "clone"), list(FILES)[:2]
    cmd = ["git", "annex", "get", "--from", world.far_name, "--batch", "--json", "--json-error-messages"]
    with subprocess.Popen(cmd, cwd=work, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        stdin, stdout = proc.stdin, proc.stdout
        assert stdin is not None and stdout is not None

        def ask(path: str) -> dict:
            stdin.write(path + "\n")
            stdin.flush()
            return dict(json.loads(stdout.readline()))

        assert ask(one)["success"] is True
        with world.far_away():
            answer = ask(two)
            stdin.close()
    assert answer["success"] is False, answer
    message = " ".join(answer.get("error-messages", []))
    assert world.why.split(" (")[0] in message and "holds no copy" not in message, answer


def s3_store(d: Dandiset) -> str:
    """The packed S3 store's UUID, as the dataset's ``remote.log`` records it."""
    logged = recorded_stores(git(d.ds, "show", "git-annex:remote.log").encode())
    return next(u for u, f in logged.items() if f.get("url", "").startswith("pack+s3:"))


def test_a_packed_s3_store_is_not_enabled_where_the_reader_has_no_credentials_for_it(
    dandi_archive, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 7_001})
    d.run.ok("keep", d.spec, "--to", f"pack+s3://{bucket}/lab")
    d.run.ok("keep", d.spec, "--to", f"pack+file://{tmp_path / 'near'}")
    lose_blobs(d, ["sub-01/a.nwb"])
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # a reader outside the lab: an anonymous request
        monkeypatch.delenv(var)
    work = cloned(d, tmp_path / "clone")
    assert s3_store(d) not in enabled_uuids(work) and len(enabled_uuids(work)) == 2  # origin and the directory's
    proc = run_in(work, "git", "annex", "enableremote", s3_store(d))
    (line,) = said(proc.stderr, "git-annex")
    assert proc.returncode == 1 and line.startswith(f"git-annex: pack+s3://{bucket}/lab/: not reachable here: ")
    assert "Forbidden" in line, line
    proc = run_in(work, "datalad", "get", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    holds(work, d.files)


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
    dandi_archive, s3, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", FILES)
    d.run.ok("keep", d.spec, "--to", f"pack+s3://{bucket}/lab")
    work = cloned(d, tmp_path / "clone")
    assert s3_store(d) in enabled_uuids(work)  # reachable when the clone was made: enabled
    gone = GONE[how]
    if gone is None:
        monkeypatch.setenv("NEUROMIRROR_STORE_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused
    else:
        gone(s3, bucket)
    log = s3.log_requests()
    proc = run_in(work, "datalad", "get", ".")
    s3.log_requests(False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    holds(work, d.files)
    asked = [p for _, p in log if p.startswith(f"/{bucket}/")]
    # one read of the store's marker for the 4 files (none where the endpoint is gone), not one or more a key
    assert asked == ([] if gone is None else [f"/{bucket}/lab/.neuromirror-store.json"]), asked
    assert [p for _, p in log if p.startswith(f"/{dandi_archive.bucket}/")], "the archive's URLs served the files"

    git(work, "annex", "drop", "--force", ".")
    got = annex_get(work, ".")  # as datalad runs it (annex.retry=3), git-annex's stderr seen
    assert got.returncode == 0 and "Delaying" not in got.stdout + got.stderr, got.stdout + got.stderr
    assert got.stderr.count("<-- PREPARE") == 0  # the store's remote program never started
    (line,) = said(got.stderr, "neuromirror")  # the user is told once, in one line, which store is gone
    assert line.startswith(f"neuromirror: pack+s3://{bucket}/lab/: not reachable here: ") and line.endswith(SKIPPED)
    holds(work, d.files)
