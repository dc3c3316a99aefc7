"""``publish --to github:ORG``: each source's dataset a repository of ORG, each of its Zarr subdatasets one of the
Zarr organisation, as DANDI's ``dandisets``/``dandizarrs`` organisations are filled.

Order within a source, under its sync lock: the Zarr repositories first (made, pushed, visibility set: a dataset
made public never names a private Zarr), then the dataset's, pushed with the overlay commit whose ``.gitmodules``
names them (:func:`~neuromirror.publish.github.repos.overlay`), then a release per version tag.  ``metadata_only``
(``--github-metadata``) pushes nothing and makes nothing: it re-asserts description, homepage and visibility of
every repository GitHub has.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from neuromirror.errors import NeuromirrorError
from neuromirror.index.trailers import parse_trailers
from neuromirror.publish.github import target
from neuromirror.publish.github.client import GitHub
from neuromirror.publish.github.repos import (
    Outcome,
    State,
    assert_repo,
    fingerprint,
    overlay,
    read_refs,
    reassert,
    tag_refs,
)
from neuromirror.publish.sibling import PublishError, subdataset_paths
from neuromirror.util import gitutil

#: sources published at once: each one's API calls and pushes wait on GitHub (a round trip, its server's pack
#: handling), not on this machine, so a few in flight hide that wait; few, so GitHub's secondary rate limit on
#: concurrent requests is not met (docs.github.com: "Avoid concurrent requests")
JOBS = 4


@dataclass
class GitHubResult:
    """One source published to GitHub: its repository's outcome and its Zarr repositories'."""

    source: str
    relpath: str
    url: str
    repo: Outcome
    zarrs: list[Outcome] = field(default_factory=list)
    private_why: Optional[str] = None

    def line(self) -> str:
        o = self.repo
        what = []
        if o.created:
            what.append("created")
        if o.pushed:
            what.append("pushed " + ", ".join(o.pushed))
        if o.edited:
            what.append("changed " + ", ".join(o.edited))
        if o.releases:
            what.append(f"{o.releases} release(s) made")
        zarrs = f", {len(self.zarrs)} Zarr repo(s)" if self.zarrs else ""
        made = sum(z.created for z in self.zarrs)
        zarrs += f" ({made} created)" if made else ""
        private = f" [private: {self.private_why}]" if self.private_why else ""
        return f"{self.source} -> {o.full_name}{private}{zarrs}: " + ("; ".join(what) or "up to date")

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "relpath": self.relpath,
            "url": self.url,
            "private": self.repo.private,
            "private_why": self.private_why,
            "repo": self.repo.__dict__,
            "zarrs": [z.__dict__ for z in self.zarrs],
        }


@dataclass
class GitHubReport:
    """What ``publish --to github:ORG`` did: each source, the errors, the API calls it made and the seconds it
    waited out GitHub's rate limits."""

    org: str
    zarr_org: str
    published: list[GitHubResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    api_calls: int = 0
    waited: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": not self.errors,
            "to": f"github:{self.org}",
            "zarr_org": self.zarr_org,
            "published": [p.as_dict() for p in self.published],
            "errors": self.errors,
            "notes": self.notes,
            "api_calls": self.api_calls,
            "rate_limit_waited_s": round(self.waited, 3),
        }


@dataclass
class GitHubTarget:
    """Where and how: the organisations, the API, the token, the options of the run."""

    org: str
    zarr_org: str
    api: str
    token: str
    force: bool = False
    name: str = "published"
    metadata_only: bool = False


def publish_to_github(  # noqa: ANN001
    mirror, sources: list[str], to: GitHubTarget, *, each: Optional[Callable[[GitHubResult], None]] = None
) -> GitHubReport:
    """Every source's dataset (a failure named, the next one tried) into GitHub."""
    report = GitHubReport(to.org, to.zarr_org)
    gh = GitHub(to.token, to.api)

    def one(source: str) -> tuple[str, Optional[GitHubResult], Optional[NeuromirrorError]]:
        try:
            return source, _one(mirror, gh, source, to), None
        except NeuromirrorError as exc:
            return source, None, exc

    try:
        # each source under its own lock, in its own dataset and state files: they do not meet; the report and
        # ``each`` still follow the order of ``sources``
        with ThreadPoolExecutor(max_workers=max(1, min(JOBS, len(sources)))) as pool:
            for source, res, exc in pool.map(one, sources):
                if exc is not None:
                    report.errors.append(f"{source}: {exc}")
                elif res is None:
                    report.notes.append(f"{source}: not on GitHub yet (publishing to github:{to.org} makes it)")
                else:
                    report.published.append(res)
                    if each is not None:
                        each(res)
    finally:
        report.api_calls, report.waited = gh.calls, gh.waited
        gh.close()
    return report


def _one(mirror, gh: GitHub, source: str, to: GitHubTarget) -> Optional[GitHubResult]:  # noqa: ANN001
    src = mirror.index.source(source)
    ds = mirror.root / src.dataset
    if not (ds / ".git").exists():
        raise PublishError(f"no dataset at {ds}")
    why = target.hidden(mirror.index, source)
    page = target.homepage(source)
    state_dir = mirror.state_dir
    with mirror.lock(source, wait=True):
        refs = read_refs(ds)
        tag_names = tag_refs(refs)
        tags = tuple(t[len("refs/tags/") :] for t in tag_names)
        want = target.Want(
            to.org,
            target.repo_name(source),
            target.describe(mirror.index, ds, source, len(tags)),
            page,
            why is not None,
        )
        # the whole source unchanged since its last publish (refs, metadata, Zarr organisation): no call, no
        # subdataset listed (a Zarr's commits change its parent's gitlinks, so its refs are in the parent's)
        key = fingerprint(ds, json.dumps([want.as_dict(), to.zarr_org, page], sort_keys=True), refs)
        done = State(state_dir, gh.api, want).data
        if not to.metadata_only and done.get("source_key") == key and "url" in done:
            zarrs = [Outcome(**z, skipped=True) for z in done.get("zarrs", [])]
            same = Outcome(done["full_name"], done["url"], done["ssh_url"], want.private, skipped=True)
            return GitHubResult(source, src.dataset, same.url, same, zarrs, why)
        zwants = [(p, _zarr_want(ds, p, source, page, why, to)) for p in subdataset_paths(ds, tag_names)]
        if to.metadata_only:
            found = reassert(gh, state_dir, want)
            zarrs = [z for z in (reassert(gh, state_dir, w) for _, w in zwants) if z is not None]
            return None if found is None else GitHubResult(source, src.dataset, found.url, found, zarrs, why)
        o, zarrs = _push_all(gh, state_dir, ds, source, want, zwants, (tags, refs), to)
        seen = [{k: getattr(z, k) for k in ("full_name", "url", "ssh_url", "private")} for z in zarrs]
        State(state_dir, gh.api, want).save(source_key=key, zarrs=seen)
    return GitHubResult(source, src.dataset, o.url, o, zarrs, why)


def _push_all(  # noqa: PLR0913
    gh: GitHub,
    state_dir: Path,
    ds: Path,
    source: str,
    want: target.Want,
    zwants: list[tuple[str, target.Want]],
    tagged: tuple[tuple[str, ...], str],
    to: GitHubTarget,
) -> tuple[Outcome, list[Outcome]]:
    """The Zarr repositories asserted first, then the dataset's with the ``.gitmodules`` commit naming them
    (``tagged``: the dataset's tags and its :func:`~neuromirror.publish.github.repos.read_refs` lines)."""
    tags, refs = tagged
    env = target.push_env(to.token)
    zarrs, urls = [], {}
    for path, zw in zwants:
        z = assert_repo(gh, state_dir, ds / path, zw, env=env, force=to.force, remote=to.name)
        zarrs.append(z)
        urls[path] = z.ssh_url if z.private else z.url
    body = f"{source} version {{tag}}, as mirrored by neuromirror ({want.homepage or source})"
    tip = overlay(ds, urls) if urls else None
    o = assert_repo(
        gh,
        state_dir,
        ds,
        want,
        tip=tip,
        tags=tags,
        release_body=body,
        env=env,
        force=to.force,
        remote=to.name,
        refs=refs,
    )
    return o, zarrs


def _zarr_want(ds: Path, path: str, source: str, page: str, why: Optional[str], to: GitHubTarget) -> target.Want:
    """The repository of the Zarr subdataset at ``path``: named by the archive's Zarr id (its commits' ``zarr:``
    trailer), else by the dataset's repository and the path."""
    sds = ds / path
    if not (sds / ".git").exists():
        raise PublishError(f"subdataset {path} is not in the mirror ({sds}); cannot publish it")
    body = gitutil.run(sds, "log", "-1", "--format=%B", "HEAD", check=False).stdout.decode(errors="replace")
    name = parse_trailers(body).get("zarr") or f"{target.repo_name(source)}-{path}"
    return target.Want(to.zarr_org, target.repo_name("x:" + name), f"{path} of {source}", page, why is not None)
