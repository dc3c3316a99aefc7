"""A script that mirrors, pins, keeps and verifies with ``neuromirror.api`` alone gives what the command line's
``--json`` gives for the same calls (issue 58's target).

One dandiset on the stand-in DANDI archive, mirrored twice from scratch into two roots: into the first by a
script (its own Python process, importing nothing of neuromirror but ``neuromirror.api``: ``api.open(root,
create=True).sync(...)``, ``pin``, ``keep`` into a directory store, ``verify(..., kept=True, store=...)``), into
the second by ``neuromirror sync/pin/keep/verify --json``.  Each step's JSON is compared as the command
prints it, after setting aside only what must differ between two roots (named in :data:`DIFFERENT`).
"""

from __future__ import annotations

import ast
import difflib
import json
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from helpers.keep import T0
from neuromirror.demo import deterministic_bytes

#: the script a user writes: each call's result, as the command would print it, one JSON document per step
SCRIPT = """
import json
import sys

from neuromirror import api

root, store, source, version, dandi_api = sys.argv[1:]
spec = f"{source}@{version}"
with api.open(root, create=True) as m:  # a new root: its first sync makes it
    steps = {
        "sync": m.sync(source, dandi_api=dandi_api).check(),
        "pin": m.pin(spec),
        "keep": m.keep(spec, to=store).check(),
        "verify": m.verify(spec, kept=True, store=store).check(),
    }
for step, result in steps.items():
    print(json.dumps({step: result.to_json()}, default=str))
"""


def dandiset(archive) -> tuple[str, str]:  # noqa: ANN001
    """A dandiset with a published version (two NWB files, a README) on the stand-in: (source, version)."""
    when = T0 + timedelta(days=1200 + len(archive.dandiset_ids()))
    ident = archive.create_dandiset(name="api script sample", created=when)
    files = {"sub-01/a.nwb": 2_400, "sub-02/b.nwb": 1_300}
    for i, (path, n) in enumerate(files.items()):
        archive.put_asset(ident, path, deterministic_bytes(f"{ident}:{path}", n), when=when + timedelta(minutes=i + 1))
    archive.put_asset(ident, "README.md", b"# api script sample\n", when=when + timedelta(minutes=30))
    return f"dandi:{ident}", archive.publish(ident, when=when + timedelta(hours=1))


def by_script(root: Path, store: Path, source: str, version: str, dandi_api: str, tmp: Path) -> dict[str, Any]:
    script = tmp / "mirror_pin_keep_verify.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(root), str(store), source, version, dandi_api],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    steps: dict[str, Any] = {}
    for line in done.stdout.splitlines():
        steps.update(json.loads(line))
    return steps


def by_cli(root: Path, store: Path, source: str, version: str, dandi_api: str) -> dict[str, Any]:
    """The same calls as commands, each its own process as the script is (in this test process, the dandi
    client's check of the archive, made once per process, would be made already: one request fewer)."""
    spec = f"{source}@{version}"

    def run(*args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "neuromirror", "--root", str(root), *args],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)

    return {
        "sync": run("sync", source, "--dandi-api", dandi_api, "--json"),
        "pin": run("pin", spec, "--json"),
        "keep": run("keep", spec, "--to", str(store), "--json"),
        "verify": run("verify", spec, "--kept", "--store", str(store), "--json"),
    }


#: what must differ between two roots mirrored from the same dandiset, and so is set aside (nothing else is):
DIFFERENT = {
    "ROOT": "the root's path (each root its own directory)",
    "STORE": "the store's path, and its UUID and name (each store made by its first keep, its identity random)",
    "COMMIT-n": "commits, by first appearance: a dataset's first commit holds its own DataLad id and the time it"
    " was made, so every later commit differs too (their trees are checked to be the same, but that id)",
}
#: fields that time a run or stamp a clock, at any depth: sync's timings, each archive endpoint's wait and rate,
#: keep's lag per version, a store record's last check; and each endpoint's in-flight limits, which the pace grows
#: as answers come back in time (a loaded CI gave 33 on one side and 37 on the other for the same requests)
TIMED = (
    "timings",
    "waited_s",
    "requests_per_s",
    "lags",
    "oldest_check",
    "seen",
    "in_flight_limit",
    "in_flight_limit_min",
    "in_flight_ceiling",
)
COMMIT = re.compile(r"\b[0-9a-f]{40}\b")


def untimed(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: untimed(v) for k, v in doc.items() if k not in TIMED}
    if isinstance(doc, list):
        return [untimed(v) for v in doc]
    return doc


def comparable(steps: dict[str, Any], root: Path, store: Path) -> tuple[str, list[str]]:
    """``steps`` as the command prints each (indent 2, key order kept), with :data:`DIFFERENT` set aside and
    :data:`TIMED` dropped; and the commits, in the order they first appear."""
    identity = json.loads((store / ".neuromirror-store.json").read_text())
    text = json.dumps({step: untimed(doc) for step, doc in steps.items()}, indent=2, default=str)
    for mine, placeholder in ((str(root), "ROOT"), (str(store), "STORE"), (identity["uuid"], "STORE-UUID")):
        text = text.replace(mine, placeholder)
    text = text.replace(identity["name"], "STORE-NAME")
    commits = list(dict.fromkeys(COMMIT.findall(text)))
    for i, commit in enumerate(commits):
        text = text.replace(commit, f"COMMIT-{i + 1}")
    return text, commits


def tree(dataset: Path, commit: str) -> list[str]:
    """What ``commit`` holds (each path, mode and object), but the dataset's own DataLad id."""
    listed = subprocess.run(["git", "-C", str(dataset), "ls-tree", "-r", commit], capture_output=True, text=True)
    return [line for line in listed.stdout.splitlines() if not line.endswith("\t.datalad/config")]


def test_the_script_stands_on_the_api_alone() -> None:
    imported = [
        alias.name if isinstance(node, ast.Import) else f"{node.module}.{alias.name}"
        for node in ast.walk(ast.parse(SCRIPT))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    ]
    assert [name for name in imported if name.startswith("neuromirror")] == ["neuromirror.api"], imported


def test_a_script_on_the_api_alone_gives_the_commands_json(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    source, version = dandiset(dandi_archive)
    dandi_api = dandi_archive.api_url
    api_root, cli_root = tmp_path / "by-script" / "mirror", tmp_path / "by-cli" / "mirror"
    api_store, cli_store = tmp_path / "by-script" / "store", tmp_path / "by-cli" / "store"
    scripted, api_commits = comparable(
        by_script(api_root, api_store, source, version, dandi_api, tmp_path), api_root, api_store
    )
    printed, cli_commits = comparable(by_cli(cli_root, cli_store, source, version, dandi_api), cli_root, cli_store)
    diff = "\n".join(difflib.unified_diff(scripted.splitlines(), printed.splitlines(), "script", "cli", lineterm=""))
    assert scripted == printed, diff
    steps = json.loads(scripted)
    assert steps["keep"]["versions"] and steps["verify"]["ok"] and steps["pin"]["commit"] == "COMMIT-1"
    # the same commits but for each dataset's own id: every version's tree the same in both roots
    dataset = Path(source.replace(":", "/"))
    assert len(api_commits) == len(cli_commits) >= 2
    for mine, theirs in zip(api_commits, cli_commits):
        assert tree(api_root / dataset, mine) == tree(cli_root / dataset, theirs) != []
