"""One dataset into one GitHub repository: made if missing (never twice), pushed, its metadata and releases
asserted, and what was asserted remembered so that a rerun with nothing new asks GitHub nothing.

Why a state file per repository (``ROOT/.neuromirror/github/HOST/OWNER/REPO.json``, outside every dataset): a
rerun over 200 dandisets must not cost 200 GETs, so what the last run made GitHub hold (the refs pushed, the
metadata, the releases) is written after each step, and a repository whose refs, wanted metadata and tags equal
it is skipped with no call.  Each step is written only once GitHub has it: a run cut off after the create and
before the push has ``pushed: null``, so the next run pushes into the repository it made (a repository GitHub
has that the state forgot is found by its GET first; a create that GitHub answers "already exists" is read too).
Nothing secret is in the state (names, URLs, metadata, ref digests).

A dataset with Zarr subdatasets is pushed with a commit of the publisher's own on top of its branch
(:func:`overlay`): its ``.gitmodules`` names each subdataset's repository in the Zarr organisation (the mirror's
names them ``./<path>``, which on GitHub resolves to nothing), HTTPS for a public repository, SSH for a private
one.  The mirror's branch, its commits and tags are unchanged (pins and locks still name them); the overlay is
made with the branch tip's dates, so an unchanged branch gives the same overlay and pushes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

from neuromirror.annex import gitmodules
from neuromirror.publish.github.client import GitHub, Repo
from neuromirror.publish.github.target import Want
from neuromirror.publish.sibling import PublishError, current_branch, push_dataset, set_remote
from neuromirror.util import gitutil

OVERLAY_TRAILER = "neuromirror-github"


@dataclass
class Outcome:
    """What asserting one repository did."""

    full_name: str
    url: str
    ssh_url: str
    private: bool
    created: bool = False
    pushed: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)
    releases: int = 0  # made by this run
    skipped: bool = False  # nothing new: no call made


class State:
    """The state file of one repository (JSON, replaced atomically after each step)."""

    def __init__(self, state_dir: Path, api: str, want: Want) -> None:
        host = urlsplit(api).netloc.replace(":", "_") or "github"
        self.path = state_dir / "github" / host / want.owner / f"{want.name}.json"
        try:
            self.data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def save(self, **changes: Any) -> None:
        self.data.update(changes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


def read_refs(ds: Path) -> str:
    """The branches and tags of ``ds`` as ``SHA REF`` lines: what a push sends, read once per dataset and run
    (the source's key, the repository's, the tags' names)."""
    return gitutil.out(ds, "for-each-ref", "--format=%(objectname) %(refname)", "refs/heads", "refs/tags")


def ref_map(refs: str) -> dict[str, str]:
    """:func:`read_refs`' lines as full ref name -> commit."""
    return {ref: sha for sha, _, ref in (line.partition(" ") for line in refs.splitlines())}


def tag_refs(refs: str) -> list[str]:
    """The full names of the tags in :func:`read_refs`' lines."""
    return [r for r in ref_map(refs) if r.startswith("refs/tags/")]


def fingerprint(ds: Path, tip: Optional[str], refs: Optional[str] = None) -> str:
    """A digest of what a push would send: the branch (or the overlay on it), every tag, git-annex (``refs``:
    :func:`read_refs`' lines, when the caller has them)."""
    refs = read_refs(ds) if refs is None else refs
    return hashlib.sha256(f"{refs}\n{tip or ''}".encode()).hexdigest()


def assert_repo(  # noqa: PLR0913
    gh: GitHub,
    state_dir: Path,
    ds: Path,
    want: Want,
    *,
    tip: Optional[str] = None,
    tags: tuple[str, ...] = (),
    release_body: str = "",
    env: dict[str, str],
    force: bool = False,
    remote: str = "published",
    refs: Optional[str] = None,
) -> Outcome:
    """Make GitHub's repository ``want`` hold ``ds`` (``tip``: the overlay pushed as its branch) and a release
    per tag in ``tags``; skipped without a call when the state says it does already (``refs``:
    :func:`read_refs`' lines of ``ds``, when the caller has read them)."""
    st = State(state_dir, gh.api, want)
    fp = fingerprint(ds, tip, refs)
    d = st.data
    if d.get("pushed") == fp and d.get("meta") == want.as_dict() and set(tags) <= set(d.get("releases", [])):
        return Outcome(d["full_name"], d["url"], d["ssh_url"], want.private, skipped=True)
    repo, out = _made(gh, st, want)
    if out.created:
        st.save(pushed=None, releases=[])  # a repository made again (deleted on GitHub): everything goes in anew
    if d.get("pushed") != fp:
        if tip and not force:
            _refuse_foreign_branch(ds, repo.clone_url, (tip, d.get("tip")), env)
        # checked by GitHub's own report of each ref (report-status), not by a second HTTPS connection
        local = None if refs is None else ref_map(refs)
        pushed = push_dataset(ds, repo.clone_url, tip=tip, env=env, force=force, read_back=False, local_refs=local)
        out.pushed = pushed[4] or ["(already there)"]
        set_remote(ds, remote, repo.clone_url)
        st.save(pushed=fp, tip=tip)
    missing = set(tags) - set(d.get("releases", []))
    if missing:
        have = set() if out.created else gh.release_tags(want.owner, want.name)  # a new repository has none
        for tag in sorted(missing - have):
            gh.release(want.owner, want.name, tag, title=tag, body=release_body.format(tag=tag))
            out.releases += 1
        st.save(releases=sorted(set(tags) | set(d.get("releases", []))))
    return out


def _refuse_foreign_branch(ds: Path, url: str, ours: tuple[Optional[str], ...], env: dict[str, str]) -> None:
    """The branch is pushed forced (the ``.gitmodules`` commit on top is replaced as the mirror moves): refuse when
    GitHub's branch is none of ``ours`` (the commit to push, the one pushed last), no commit of the mirror's and no
    commit on one (someone else pushed there)."""
    branch = current_branch(ds)
    proc = gitutil.run(ds, "ls-remote", url, f"refs/heads/{branch}", check=False, env=env)
    there = proc.stdout.decode().split("\t", 1)[0].strip()
    if not there or there in ours:
        return
    for candidate in (there, f"{there}^"):
        ok = gitutil.run(ds, "merge-base", "--is-ancestor", candidate, "HEAD", check=False).returncode == 0
        if ok:
            return
    raise PublishError(
        f"{url} has {branch} at {there[:12]}, which the mirror lacks (someone else pushed there?); check it, or "
        "overwrite with force"
    )


def _made(gh: GitHub, st: State, want: Want) -> tuple[Repo, Outcome]:
    """The repository got (or made, once) and its metadata asserted; the state says so."""
    repo = gh.repo(want.owner, want.name)
    created = repo is None
    if repo is None:
        repo = gh.create(
            want.owner, want.name, description=want.description, homepage=want.homepage, private=want.private
        )
    out = Outcome(repo.owner + "/" + repo.name, repo.clone_url, repo.ssh_url, repo.private, created=created)
    changes = want.changes(repo.description, repo.homepage, repo.private)
    if changes:
        repo = gh.edit(want.owner, want.name, changes)
        out.edited, out.private = sorted(changes), repo.private
    st.save(full_name=out.full_name, url=repo.clone_url, ssh_url=repo.ssh_url, meta=want.as_dict())
    return repo, out


def reassert(gh: GitHub, state_dir: Path, want: Want) -> Optional[Outcome]:
    """``--github-metadata``: description, homepage and visibility asserted (changed only where they differ);
    None: GitHub has no such repository (publish makes it)."""
    repo = gh.repo(want.owner, want.name)
    st = State(state_dir, gh.api, want)
    if repo is None:  # deleted on GitHub by hand: forget what was pushed there, so the next publish makes it again
        st.path.unlink(missing_ok=True)
        return None
    return _made(gh, st, want)[1]


def overlay(ds: Path, urls: dict[str, str]) -> Optional[str]:
    """A commit on ``ds``'s HEAD whose ``.gitmodules`` names each subdataset path in ``urls`` by that URL (None:
    nothing to change); made with HEAD's dates and identity, so the same HEAD and URLs give the same commit."""
    mods = gitmodules.read(ds, "HEAD")
    changed = False
    for section in mods.values():
        url = urls.get(section.get("path", ""))
        if url and section.get("url") != url:
            section["url"], changed = url, True
    if not changed:
        return None
    current_branch(ds)  # a detached HEAD is refused before anything is written
    blob = gitutil.run(ds, "hash-object", "-w", "--stdin", input=gitmodules.render(mods)).stdout.decode().strip()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        gitutil.run(ds, "read-tree", "HEAD", env=env)
        gitutil.run(ds, "update-index", "--add", "--cacheinfo", f"100644,{blob},{gitmodules.FILE}", env=env)
        tree = gitutil.run(ds, "write-tree", env=env).stdout.decode().strip()
    fmt = "%an%x00%ae%x00%ad%x00%cn%x00%ce%x00%cd"
    an, ae, ad, cn, ce, cd = gitutil.out(ds, "log", "-1", "--date=raw", f"--format={fmt}", "HEAD").split("\0")
    who = {
        "GIT_AUTHOR_NAME": an,
        "GIT_AUTHOR_EMAIL": ae,
        "GIT_AUTHOR_DATE": ad,
        "GIT_COMMITTER_NAME": cn,
        "GIT_COMMITTER_EMAIL": ce,
        "GIT_COMMITTER_DATE": cd,
    }
    message = (
        "Name the Zarr subdatasets by their GitHub repositories\n\n"
        f"{OVERLAY_TRAILER}: .gitmodules for publishing to GitHub (the mirror's own names them ./<path>)\n"
    )
    return gitutil.run(ds, "commit-tree", tree, "-p", "HEAD", input=message.encode(), env=who).stdout.decode().strip()
