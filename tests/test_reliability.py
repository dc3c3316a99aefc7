"""Nothing lost: crashes at any point, faulty archives, hostile input, secrets."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import git

T0 = datetime(2025, 2, 1, 8, 0, tzinfo=timezone.utc)


def run_sync(root: Path, api: str, ident: str, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, DANDI_NO_ET="1", **env)
    return subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(root), "sync", f"dandi:{ident}", "--dandi-api", api, "-q"],
        capture_output=True,
        text=True,
        env=full,
        timeout=300,
    )


def state_of(root: Path, ident: str) -> dict:
    """Everything a run leaves that must not depend on interruptions (the dataset id aside)."""
    ds = root / "dandi" / ident

    def tree(rev: str) -> list[str]:
        return [ln for ln in git(ds, "ls-tree", "-r", rev).splitlines() if not ln.endswith("\t.datalad/config")]

    chain = git(ds, "log", "--first-parent", "--format=%s%x00%aI", "HEAD").splitlines()
    tags = {t: tree(t) for t in git(ds, "tag", "-l").split()}
    db = sqlite3.connect(root / ".neuromirror" / "index.sqlite")
    versions = db.execute(
        "SELECT label, kind, tag, remote_modified, date, files, bytes, doi, citation FROM versions ORDER BY id"
    ).fetchall()
    files = db.execute(
        "SELECT v.label, e.path, e.key, e.size, e.checksum_kind, e.checksum, e.urls FROM version_files vf"
        " JOIN versions v ON v.id = vf.version_id JOIN entries e ON e.id = vf.entry_id ORDER BY v.id, e.path"
    ).fetchall()
    return {
        "head": tree("HEAD"),
        "chain": [c for c in chain if "[neuromirror]" in c and "SHA256E" not in c],
        "tags": tags,
        "versions": versions,
        "files": files,
    }


def check_consistent(root: Path, ident: str) -> None:
    ds = root / "dandi" / ident
    assert git(ds, "status", "--porcelain") == ""
    subprocess.run(["git", "fsck", "--no-progress"], cwd=ds, check=True, capture_output=True)
    subprocess.run(["git", "annex", "fsck", "--fast", "--quiet"], cwd=ds, check=True, capture_output=True)
    db = sqlite3.connect(root / ".neuromirror" / "index.sqlite")
    for (commit,) in db.execute('SELECT "commit" FROM versions'):
        assert subprocess.run(["git", "cat-file", "-e", commit], cwd=ds).returncode == 0, commit
    assert db.execute("SELECT count(*) FROM runs WHERE outcome='running' AND ended IS NULL").fetchone()[0] >= 0


@pytest.fixture(autouse=True)
def plan_as_found(dandi_archive):  # noqa: ANN001, ANN201
    """The session's fault plan left as each test found it: tests here set its Retry-After (0), stall (0.2 s)
    and seed, which plan.reset() keeps, and which the session's later tests (other files of a CI group)
    would otherwise meet."""
    plan = dandi_archive.faults
    kept = plan.retry_after, plan.timeout_seconds, plan.seed, plan.only_paths
    yield
    plan.reset()
    plan.retry_after, plan.timeout_seconds, plan.seed = kept[:3]
    plan.set_only_paths(kept[3])


@pytest.fixture(scope="module")
def crash_dandiset(dandi_archive):  # noqa: ANN001, ANN201
    ident = dandi_archive.create_dandiset(name="crash consistency", created=T0)
    for i in range(4):
        dandi_archive.put_asset(ident, f"sub-{i}/rec.nwb", f"rec {i}".encode() * 40, when=T0)
    dandi_archive.put_asset(ident, "README.md", b"first readme\n", when=T0)
    dandi_archive.publish(ident, when=T0 + timedelta(hours=1))
    dandi_archive.put_asset(ident, "sub-9/rec.nwb", b"later" * 30, when=T0 + timedelta(days=1))
    dandi_archive.delete_asset(ident, "sub-0/rec.nwb", when=T0 + timedelta(days=1))
    dandi_archive.publish(ident, when=T0 + timedelta(days=1, hours=1))
    dandi_archive.put_asset(ident, "README.md", b"draft readme\n", when=T0 + timedelta(days=2))
    return ident


@pytest.fixture(scope="module")
def reference(crash_dandiset, dandi_archive, tmp_path_factory):  # noqa: ANN001, ANN201
    root = tmp_path_factory.mktemp("reference") / "mirror"
    proc = run_sync(root, dandi_archive.api_url, crash_dandiset)
    assert proc.returncode == 0, proc.stderr
    return state_of(root, crash_dandiset)


CRASH_POINTS = [
    # the root's creation (a new mirror): mid-``datalad create`` (its git and git-annex commands), then its move
    "datalad-create-git#1",
    "datalad-create-git#3",
    "datalad-create-git#6",
    "datalad-create-git#9",
    "datalad-create-git#12",
    "root-created",
    "root-moved#1",
    "root-moved#2",
    "root-moved#3",
    "dataset-created",
    "dandi-asset#1",
    "dandi-asset#4",
    "dandi-asset#9",
    "fast-import-stream#1",
    "fast-import-stream#3",
    "fast-import-stream#8",
    "before-checkout#1",
    "before-checkout#2",
    "before-checkout#3",
    "before-commit#1",
    "before-commit#3",
    "after-commit#1",
    "after-commit#2",
    "after-commit#3",
    "after-tag#1",
    "after-tag#2",
    "index-write#1",
    "index-write#2",
    "index-write#3",
    "after-index#1",
    "after-index#2",
    "after-index#3",
    "before-register#1",
    "before-branch-update#1",
    "before-branch-update#2",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_sigkill_anywhere_then_rerun_converges(point, crash_dandiset, dandi_archive, reference, tmp_path) -> None:  # noqa: ANN001
    root = tmp_path / "mirror"
    crashed = run_sync(root, dandi_archive.api_url, crash_dandiset, NEUROMIRROR_CRASH_AT=point)
    assert crashed.returncode == -9, f"{point} was not reached: {crashed.returncode} {crashed.stderr}"
    rerun = run_sync(root, dandi_archive.api_url, crash_dandiset)
    assert rerun.returncode == 0, rerun.stderr
    check_consistent(root, crash_dandiset)
    assert state_of(root, crash_dandiset) == reference
    # and a third run is a no-op
    again = run_sync(root, dandi_archive.api_url, crash_dandiset)
    assert again.returncode == 0 and "unchanged" in again.stdout


@pytest.mark.parametrize("left", ["a stale index.lock, no commit", "a .git git takes for no repository"])
def test_a_root_half_made_by_an_earlier_kill_is_made_again(  # noqa: ANN001
    left, crash_dandiset, dandi_archive, reference, tmp_path
) -> None:
    """What a kill mid-``datalad create`` of the root left where the root was made in place (issue 76):
    every rerun failed ("index.lock: File exists", "fatal: not a git repository")."""
    root = tmp_path / "mirror"
    root.mkdir()
    if left.startswith("a stale"):
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        (root / ".datalad").mkdir()
        (root / ".datalad" / "config").write_text('[datalad "dataset"]\n\tid = 0ab1\n')
        (root / ".git" / "index.lock").write_bytes(b"")  # git's lock, its holder killed
    else:
        (root / ".git" / "objects").mkdir(parents=True)  # `git init` killed before HEAD and config
    rerun = run_sync(root, dandi_archive.api_url, crash_dandiset)
    assert rerun.returncode == 0, rerun.stderr
    check_consistent(root, crash_dandiset)
    assert state_of(root, crash_dandiset) == reference
    assert git(root, "status", "--porcelain") == "" and not (root / ".git" / "index.lock").exists()


def test_a_git_repository_as_the_root_keeps_its_history(dandi_archive, tmp_path) -> None:  # noqa: ANN001
    """A root that is a repository with commits of its own is no half-made root: made a dataset in place."""
    ident = dandi_archive.create_dandiset(name="root of my own", created=T0)
    dandi_archive.put_asset(ident, "a.nwb", b"a" * 20, when=T0)
    root = tmp_path / "work"
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "notes.txt").write_text("mine\n")
    subprocess.run(["git", "-C", str(root), "add", "notes.txt"], check=True)
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qm", "mine"], check=True
    )
    proc = run_sync(root, dandi_archive.api_url, ident)
    assert proc.returncode == 0, proc.stderr
    assert "mine" in git(root, "log", "--format=%s").split("\n") and (root / "notes.txt").read_text() == "mine\n"
    assert (root / "dandi" / ident / "a.nwb").is_symlink()


#: the faults the stand-in answers first (in this order, whatever the request), then 20 % of requests faulted
#: (every kind), and the environment of the sync: each converges to the uninterrupted run's result
FAULT_TABLE = {
    "20 % faulted": ((), {}),
    "500, 503, 429, a reset, a cut body, then 20 %": (("500", "503", "429", "reset", "truncated"), {}),
    "the same where the API key's check is the first request": (
        ("500", "503", "429", "reset", "truncated"),
        {"DANDI_API_KEY": "a-key-the-stand-in-takes"},
    ),
    "an answer that is not JSON (the key's check), then 20 %": (("garbled",), {"DANDI_API_KEY": "a-key"}),
    "answers not JSON and cut short, then 20 %": (("garbled", "truncated", "garbled", "500"), {}),
}


@pytest.mark.parametrize("first, env", FAULT_TABLE.values(), ids=list(FAULT_TABLE))
def test_faults_give_identical_results_and_are_counted(  # noqa: ANN001
    first, env, crash_dandiset, dandi_archive, reference, tmp_path
) -> None:
    plan = dandi_archive.faults
    # the draws are a function of (seed, request path), and the path holds the dandiset's id, which the session's
    # other tests decide: a seed whose draws fault none of this sync proves nothing, so the next one is tried
    for seed in (2, 3, 5, 7, 11):
        mirror = tmp_path / f"mirror-{seed}"
        plan.retry_after, plan.timeout_seconds, plan.seed = 0, 0.3, seed
        for kind in first:
            plan.fail_next(1, kind)
        plan.set_rate(0.2)
        try:
            proc = run_sync(mirror, dandi_archive.api_url, crash_dandiset, NEUROMIRROR_HTTP_BACKOFF="0.02", **env)
            injected = [kind for _, _, kind in plan.injected]
        finally:
            plan.reset()
            plan.seed = 0
        assert proc.returncode == 0, proc.stderr
        assert injected[: len(first)] == list(first)
        check_consistent(mirror, crash_dandiset)
        assert state_of(mirror, crash_dandiset) == reference
        if len(injected) > len(first):
            break
    assert len(injected) > len(first), "no seed's draws faulted this sync"
    # the run's account counts every fault met on the API: each was asked again
    db = sqlite3.connect(mirror / ".neuromirror" / "index.sqlite")
    (report,) = db.execute("SELECT report FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    api = [r for r in json.loads(report)["network"] if dandi_archive.api_url.startswith(r["endpoint"])]
    assert api and api[0]["retries"] >= len(first) and api[0]["gave_up"] == 0, api


#: a paged listing's first page, which the client decodes after its request (``paginate``: ``json_resp=False``)
FIRST_PAGES = {
    "the versions listing": r"/dandisets/\d+/versions/?(\?(?!.*page=)|$)",
    "an assets listing": r"/versions/[^/]+/assets/\?(?!.*page=)",
}


@pytest.mark.parametrize("kind", ["garbled", "truncated"])
@pytest.mark.parametrize("where", FIRST_PAGES.values(), ids=list(FIRST_PAGES))
def test_a_listings_first_page_not_json_is_asked_again(  # noqa: ANN001
    where, kind, crash_dandiset, dandi_archive, reference, tmp_path
) -> None:
    """A listing's first page whose body is not the JSON it says (cut short, or whole but not JSON) is asked
    again, as every other answer is: the 20 % draws of the fault table met it on one dandiset's versions
    listing, where the client decoded the page after its retries and the sync failed."""
    plan = dandi_archive.faults
    plan.retry_after = 0
    plan.fail_next(2, kind, path=where)
    try:
        proc = run_sync(tmp_path / "mirror", dandi_archive.api_url, crash_dandiset, NEUROMIRROR_HTTP_BACKOFF="0.02")
        injected = [(path, k) for _, path, k in plan.injected]
    finally:
        plan.reset()
    assert proc.returncode == 0, proc.stderr
    assert len(injected) == 2 and all(k == kind for _, k in injected), injected
    assert state_of(tmp_path / "mirror", crash_dandiset) == reference


def test_a_versions_listing_that_skips_a_page_is_listed_again(  # noqa: ANN001
    crash_dandiset, dandi_archive, reference, tmp_path
) -> None:
    """The versions listing whose only page was skipped (the next, empty, page served) reads as "nothing
    published": it is listed again, as an asset listing is, not mirrored as a dandiset without versions.
    The fault table's 20 % draws met this on ~2 % of dandiset ids (0.2 x one kind in nine), which the
    session's other tests decide."""
    plan = dandi_archive.faults
    plan.fail_next(2, "skip-page", path=FIRST_PAGES["the versions listing"])
    try:
        proc = run_sync(tmp_path / "mirror", dandi_archive.api_url, crash_dandiset, NEUROMIRROR_HTTP_BACKOFF="0.02")
        injected = [k for _, _, k in plan.injected]
    finally:
        plan.reset()
    assert proc.returncode == 0, proc.stderr
    assert injected == ["skip-page"] * 2
    assert state_of(tmp_path / "mirror", crash_dandiset) == reference


def test_faults_at_100_percent_fail_cleanly(dandi_archive, tmp_path) -> None:  # noqa: ANN001
    ident = dandi_archive.create_dandiset(name="total outage", created=T0)
    dandi_archive.put_asset(ident, "a.nwb", b"a" * 20, when=T0)
    root = tmp_path / "mirror"
    assert run_sync(root, dandi_archive.api_url, ident).returncode == 0
    before = state_of(root, ident)
    dandi_archive.put_asset(ident, "b.nwb", b"b" * 20, when=T0 + timedelta(days=1))
    plan = dandi_archive.faults
    plan.retry_after, plan.timeout_seconds = 0, 0.2
    plan.set_rate(1.0, kinds=("503",))
    try:
        proc = run_sync(root, dandi_archive.api_url, ident, NEUROMIRROR_HTTP_RETRIES="2")
    finally:
        plan.reset()
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "DANDI API at" in lines[0] and dandi_archive.api_url in lines[0] and "503" in lines[0], lines[0]
    check_consistent(root, ident)
    assert state_of(root, ident) == before  # the previous version intact, nothing half-written


def test_secrets_never_written(dandi_archive, s3, tmp_path) -> None:  # noqa: ANN001
    """A recognisable API key in the environment appears nowhere the mirror writes."""
    key = "NMSECRET-7f3a9c2e-do-not-leak"
    ident = dandi_archive.create_dandiset(name="secrets", created=T0)
    dandi_archive.put_asset(ident, "a.nwb", b"a" * 20, when=T0)
    root = tmp_path / "mirror"
    env = {"DANDI_API_KEY": key}
    proc = run_sync(root, dandi_archive.api_url, ident, **env)  # the stand-in has no auth: a key is simply sent
    log = proc.stdout + proc.stderr
    spec = f"dandi:{ident}@draft"
    lockfile = tmp_path / "data.lock"
    every_command = [
        ["versions", f"dandi:{ident}"],
        ["pin", spec],
        ["reindex"],
        ["search", "--path", "*.nwb"],
        ["get", spec, "--to", str(tmp_path / "got"), "--allow-ip", "all"],
        ["lock", spec, "-o", str(lockfile)],
        ["reproduce", str(lockfile), "--to", str(tmp_path / "again"), "--allow-ip", "all"],
        ["cite", spec, "--format", "bibtex"],
        ["verify", spec, "--content", "--allow-ip", "all"],
        ["diff", spec, spec],
        ["status", "--json"],
        ["publish", f"dandi:{ident}", "--to", str(tmp_path / "public")],
    ]
    for cmd in every_command:
        p = subprocess.run(
            [sys.executable, "-m", "neuromirror", "--root", str(root), "-vv", *cmd],
            capture_output=True,
            text=True,
            env=dict(os.environ, DANDI_API_KEY=key),
        )
        assert p.returncode == 0, (cmd, p.stderr[-2000:])
        log += p.stdout + p.stderr
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "neuromirror",
            "--root",
            str(root),
            "sync",
            f"dandi:{ident}",
            "--dandi-api",
            "http://127.0.0.1:9/api",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, DANDI_API_KEY=key, DANDI_NO_ET="1"),
    )
    log += bad.stdout + bad.stderr
    assert key not in log
    ds = root / "dandi" / ident
    objects = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch"], cwd=ds, capture_output=True).stdout
    assert key.encode() not in objects
    for path in [*tmp_path.rglob("*")]:  # the mirror, the index, clones, the lock file, the published copy
        if path.is_file() and not path.is_symlink():
            assert key.encode() not in path.read_bytes(), path


def test_hostile_and_broken_items_refused_rest_mirrored(cli, dandi_archive, tmp_path) -> None:  # noqa: ANN001
    """Each bad item is refused with a reason in the report and the run record; the rest is mirrored."""
    ident = dandi_archive.create_dandiset(name="hostile", created=T0)
    put = dandi_archive.put_asset
    bad_paths = {
        "a\x00b.nwb": "control character",
        "esc\x1b[31m.nwb": "control character",
        "x" * 300 + ".nwb": "longer than 255 bytes",
        "sub/../../escape.nwb": "escapes",
        ".git/hooks/pre-commit": ".git",
        "sub/.datalad/../x": "escapes",
    }
    for p in bad_paths:
        put(ident, p, b"evil", when=T0)
    put(ident, "Sub/Data.nwb", b"first" * 5, when=T0)
    put(ident, "sub/data.nwb", b"second" * 5, when=T0)  # differs only by case
    put(ident, "thing", b"a file", when=T0)
    put(ident, "thing/inside.nwb", b"and a directory", when=T0)  # a file and a directory of one name
    wrong_type = put(ident, "wrong-type.nwb", b"w" * 9, when=T0)
    dandi_archive.override_metadata(wrong_type, b'"metadata should be an object"')
    bad_digest = put(ident, "bad-digest.nwb", b"d" * 9, when=T0)
    dandi_archive.override_metadata(
        bad_digest,
        json.dumps({"digest": {"dandi:sha2-256": "not-a-sha256"}, "contentSize": 9, "path": "bad-digest.nwb"}).encode(),
    )
    bad_size = put(ident, "bad-size.nwb", b"s" * 9, when=T0)
    dandi_archive.override_metadata(
        bad_size,
        json.dumps({"digest": {"dandi:sha2-256": "ab" * 32}, "contentSize": 12345, "path": "bad-size.nwb"}).encode(),
    )
    lying = put(ident, "lying.txt", b"the real text\n", when=T0)  # text: downloaded and checked
    dandi_archive.override_metadata(
        lying, json.dumps({"digest": {"dandi:sha2-256": "cd" * 32}, "contentSize": 14, "path": "lying.txt"}).encode()
    )
    huge = put(ident, "huge-metadata.nwb", b"h" * 9, when=T0)
    dandi_archive.override_metadata(
        huge,
        json.dumps(
            {
                "digest": {"dandi:sha2-256": dandi_archive.asset(huge).blob.sha256},
                "contentSize": 9,
                "description": "x" * 3_000_000,
                "path": "huge-metadata.nwb",
            }
        ).encode(),
    )
    put(ident, "good/ok.nwb", b"good" * 10, when=T0)

    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 3, err  # the rest synced, the bad items refused
    ds = cli.root / "dandi" / ident
    paths = set(git(ds, "ls-tree", "-r", "--name-only", "HEAD").splitlines())
    for p, why in bad_paths.items():
        assert p not in paths
        assert why in out, (why, out)
    assert len({"Sub/Data.nwb", "sub/data.nwb"} & paths) == 1 and "differs only by case" in out
    assert len({"thing", "thing/inside.nwb"} & paths) == 1 and "a file and a directory of the same name" in out
    for p, why in [
        ("wrong-type.nwb", "not an object"),
        ("bad-digest.nwb", "malformed sha256"),
        ("bad-size.nwb", "disagrees with the metadata's contentSize"),
        ("lying.txt", "does not match the archive's size and sha256"),
    ]:
        assert p not in paths and f"refused {p!r}: refused: " in out and why in out, (p, out)
    assert {"good/ok.nwb", "huge-metadata.nwb"} <= paths
    hook = ds / ".git" / "hooks" / "pre-commit"  # a mirror's dataset has no hooks (issue 52): none may appear
    assert not (cli.root / "dandi" / "escape.nwb").exists() and not hook.exists()
    db = sqlite3.connect(cli.root / ".neuromirror" / "index.sqlite")
    run = db.execute("SELECT outcome, refused, report FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    assert run[0] == "ok" and run[1] == len(json.loads(run[2])["refused"]) >= 12


def test_bad_cli_input_one_line_errors(cli) -> None:  # noqa: ANN001
    for args, why in [
        (["sync", "dandi:12x"], "6 digits"),
        (["sync", "nope:1"], "unknown archive"),
        (["pin", "dandi:000001@"], "empty version"),
        (["versions", "dandi:000001"], "no mirror at"),
        (["sync", "aind:a/b"], "without '/'"),
    ]:
        code, out, err = cli(*args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and why in err, (args, err)


def test_a_listing_page_cut_short_is_listed_again(dandi_archive, tmp_path) -> None:  # noqa: ANN001
    """A page of the asset listing whose body stops short of its Content-Length (which the dandi
    client does not retry) makes the sync list again, not fail."""
    from neuromirror.standins.faults import FaultPlan

    ident = dandi_archive.create_dandiset(name="cut short", created=T0)
    dandi_archive.put_asset(ident, "a.nwb", b"a" * 20, when=T0)
    root = tmp_path / "mirror"
    assert run_sync(root, dandi_archive.api_url, ident).returncode == 0
    dandi_archive.put_asset(ident, "b.nwb", b"b" * 20, when=T0 + timedelta(hours=1))
    dandi_archive.reset_request_log()
    assert run_sync(root, dandi_archive.api_url, ident).returncode == 0
    (listing,) = {p for m, p in dandi_archive.request_log if m == "GET" and "/versions/draft/assets/?" in p}
    # a seed whose draws cut the listing's first answer short and not the second
    only = r"/versions/draft/assets/\?"
    seed = next(
        s
        for s in range(1000)
        if (lambda plan: [plan._draw("GET", listing, False) for _ in range(2)])(
            FaultPlan(rate=0.5, kinds=("truncated",), seed=s, only_paths=only)
        )
        == ["truncated", None]
    )
    dandi_archive.put_asset(ident, "c.nwb", b"c" * 20, when=T0 + timedelta(hours=2))
    plan = dandi_archive.faults
    plan.seed = seed
    plan.set_only_paths(only)
    plan.set_rate(0.5, kinds=("truncated",))
    try:
        proc = run_sync(root, dandi_archive.api_url, ident)
        injected = list(plan.injected)
    finally:
        plan.reset()
        plan.set_only_paths(None)
        plan.seed = 0
    assert proc.returncode == 0, proc.stderr
    assert injected == [("GET", listing, "truncated")]
    assert {"a.nwb", "b.nwb", "c.nwb"} <= set(git(root / "dandi" / ident, "ls-files").split())
    check_consistent(root, ident)
