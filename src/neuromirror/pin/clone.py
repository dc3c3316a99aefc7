"""Cloning a dataset at a pin: clone (or reuse a clone), fetch the commit, check it out, install its subdatasets.

Loopback or private archives (the stand-ins) need
``annex.security.allowed-ip-addresses``: :func:`clone` sets it, when asked,
in the clone it creates and nowhere else (and :func:`install_subdataset` in
each subdataset it installs).  User paths are checked against the version
here, and routed to the subdataset that holds them, before anything is
fetched (:mod:`neuromirror.pin.fetch`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Sequence

from neuromirror.annex.tree import gitlinks, has_commit
from neuromirror.pin.locations import same_url
from neuromirror.pin.retrieve import ALLOW_IP_KEY, RetrieveError, gist
from neuromirror.util import gitutil


def clone(url: str, dest: Path, *, allow_ip: Optional[str] = None) -> tuple[Path, bool]:
    """``datalad clone url dest``; reuse ``dest`` if it already is a clone. Return (path, reused)."""
    dest = Path(dest).absolute()
    reused = False
    if (dest / ".git").exists():
        reused = True
        origin = gitutil.out(dest, "config", "--get", "remote.origin.url", check=False)
        if origin and same_url(origin, url):
            gitutil.run(dest, "fetch", "-q", "--tags", "origin", check=False)
            gitutil.run(dest, "fetch", "-q", "origin", "git-annex", check=False)
        elif origin:
            raise RetrieveError(f"{dest} is a clone of {origin}, not of {url}: clone into another directory")
    elif dest.exists() and any(dest.iterdir()):
        raise RetrieveError(f"{dest} exists and is not empty: clone into a new or empty directory")
    else:
        # a plain clone: annex.supportunlocked=false at the clone's init made it 7x slower at 10^5
        # files (34.8 s vs 5.2 s, bench/RUNS.md), and the first get no faster
        _datalad_clone(url, dest)
    if allow_ip:
        # this clone only: never the user's or the system's git config
        gitutil.run(dest, "config", "--local", ALLOW_IP_KEY, allow_ip)
    return dest, reused


def remove_clone(path: Path) -> None:
    """Delete a clone this run created (git-annex keeps its objects read-only)."""
    import shutil
    import stat

    def writable(func, p, _exc):  # noqa: ANN001
        parent = os.path.dirname(p)
        for q in (parent, p):
            try:
                os.chmod(q, os.stat(q).st_mode | stat.S_IWUSR | stat.S_IXUSR | stat.S_IRUSR)
            except OSError:
                pass
        func(p)

    shutil.rmtree(path, onerror=writable)


def _datalad_clone(url: str, dest: Path) -> None:
    from datalad.api import clone as dl_clone

    from neuromirror.util.quiet import quiet_env

    dest.parent.mkdir(parents=True, exist_ok=True)
    with quiet_env():
        try:
            results = dl_clone(
                source=url,
                path=str(dest),
                result_renderer="disabled",
                on_failure="ignore",
                result_xfm=None,
                return_type="list",
            )
        except Exception as exc:  # IncompleteResultsError and friends
            raise RetrieveError(f"datalad clone {url} failed: {gist(str(exc))}") from None
    bad = [r for r in results if r.get("status") not in ("ok", "notneeded")]
    if bad or not (dest / ".git").exists():
        msg = bad[0].get("message") if bad else "no dataset was created"
        if isinstance(msg, (list, tuple)):
            try:
                msg = msg[0] % tuple(msg[1:])
            except Exception:
                msg = " ".join(map(str, msg))
        raise RetrieveError(f"datalad clone {url} failed: {gist(str(msg))}")


def ensure_commit(repo: Path, commit: str, url: str) -> None:
    """Make ``commit`` available in ``repo``: fetch it by id from origin if the branches lack it."""
    if has_commit(repo, commit):
        return
    gitutil.run(repo, "fetch", "-q", "origin", commit, check=False)
    if not has_commit(repo, commit):
        raise RetrieveError(
            f"commit {commit} is not in {url}: that state was never published there, or the history was rewritten"
        )


def checkout(repo: Path, commit: str) -> None:
    """Detach HEAD at ``commit`` (refusing to overwrite local changes)."""
    head = gitutil.rev_parse(repo, "HEAD")
    if head == commit:
        return
    if not gitutil.is_clean(repo):
        raise RetrieveError(f"{repo} has local changes: refusing to check out {commit[:12]} over them")
    proc = gitutil.run(repo, "checkout", "-q", "--detach", commit, check=False)
    if proc.returncode != 0:
        raise RetrieveError(
            f"git checkout {commit[:12]} failed in {repo}: {gist(proc.stderr.decode(errors='replace'))}"
        )


def tag_commit(repo: Path, tag: str) -> Optional[str]:
    return gitutil.rev_parse(repo, f"refs/tags/{tag}")


def resolve_version_in_clone(repo: Path, source: str, version: Optional[str]) -> dict:
    """Find a version in a clone (no index at hand): by tag, else by the commit trailers.

    Returns a pin-like record {source, version, commit, tag, doi, kind}.
    """
    from neuromirror.index.trailers import parse_trailers

    def record(commit: str) -> dict:
        body = gitutil.out(repo, "log", "-1", "--format=%B", commit)
        tr = parse_trailers(body)
        if tr.get("source") and tr["source"] != source:
            raise RetrieveError(f"the dataset at {repo} holds {tr['source']}, not {source}")
        label = tr.get("label") or version or ""
        tag = label if label and tag_commit(repo, label) == commit else None
        return {
            "source": source,
            "version": label,
            "commit": commit,
            "tag": tag,
            "doi": tr.get("doi"),
            "kind": tr.get("kind"),
        }

    refs = ["HEAD", "--tags"]
    if version is None:
        found = gitutil.out(repo, "log", "-1", "--format=%H", "--grep=^Neuromirror-Label: ", "HEAD", check=False)
        if not found:
            raise RetrieveError(f"no neuromirror version in {repo}")
        return record(found)
    by_tag = tag_commit(repo, version)
    if by_tag:
        return record(by_tag)
    pattern = "^Neuromirror-Label: " + re.escape(version) + "$"
    found = gitutil.out(repo, "log", "-1", "--format=%H", "-E", f"--grep={pattern}", *refs, check=False)
    if not found:
        raise RetrieveError(f"{source} has no version {version!r} in {repo}")
    return record(found)


def check_paths(repo: Path, commit: str, paths: Sequence[str]) -> list[str]:
    """Normalise user paths (relative to the dataset) and refuse those the version lacks.

    Paths inside a subdataset are accepted here (checked when it is installed).
    """
    out: list[str] = []
    links = [g for g, _ in gitlinks(repo, commit)]
    for p in paths:
        norm = os.path.normpath(p).replace(os.sep, "/")
        if norm in (".", ""):
            return []
        if norm.startswith("../") or norm == ".." or os.path.isabs(norm):
            raise RetrieveError(f"{p!r} is not a path inside the dataset")
        inside = any(norm.startswith(g + "/") for g in links)
        found = inside or gitutil.out(repo, "ls-tree", "--name-only", commit, "--", norm.rstrip("/"), check=False)
        if not found:
            raise RetrieveError(f"{p!r} is not in this version (commit {commit[:12]})")
        out.append(norm)
    return out


def split_paths(
    repo: Path, commit: str, paths: Sequence[str]
) -> tuple[Optional[list[str]], dict[str, tuple[str, list[str]]]]:
    """Route user paths: (paths for ``repo`` itself or None, {subdataset: (commit, its own paths)}).

    ``[]`` means everything; a subdataset is included when a path is in it or above it.
    """
    links = gitlinks(repo, commit)
    if not paths:
        return [], {g: (sha, []) for g, sha in links}
    mine: list[str] = []
    subs: dict[str, tuple[str, list[str]]] = {}
    for p in paths:
        owner = next(((g, sha) for g, sha in links if p == g or p.startswith(g + "/")), None)
        if owner is None:
            mine.append(p)
            subs.update({g: (sha, []) for g, sha in links if g.startswith(p.rstrip("/") + "/")})
            continue
        g, sha = owner
        rest = p[len(g) + 1 :]  # "" when the path is the subdataset itself
        if g not in subs:
            subs[g] = (sha, [rest] if rest else [])
        elif subs[g][1]:  # so far only parts of it
            subs[g] = (sha, subs[g][1] + [rest] if rest else [])
    return (mine or None), subs


def install_subdataset(parent: Path, path: str, commit: str, *, allow_ip: Optional[str] = None) -> Path:
    """Install subdataset ``path`` of a clone (``datalad get -n``) and check out ``commit`` in it."""
    sub = parent / path
    if not (sub / ".git").exists():
        from datalad.api import get as dl_get

        from neuromirror.util.quiet import quiet_env

        with quiet_env():
            try:
                results = dl_get(
                    path=str(sub),
                    dataset=str(parent),
                    get_data=False,
                    result_renderer="disabled",
                    on_failure="ignore",
                    result_xfm=None,
                    return_type="list",
                )
            except Exception as exc:
                raise RetrieveError(f"subdataset {path} could not be installed: {gist(str(exc))}") from None
        bad = [r for r in results if r.get("status") not in ("ok", "notneeded")]
        if bad or not (sub / ".git").exists():
            msg = bad[0].get("message") if bad else "nothing was installed"
            if isinstance(msg, (list, tuple)):
                msg = " ".join(map(str, msg))
            raise RetrieveError(
                f"subdataset {path} could not be installed (its URL in .gitmodules resolves against "
                f"{gitutil.out(parent, 'config', '--get', 'remote.origin.url', check=False)}): "
                f"{gist(str(msg))}"
            )
    if allow_ip:
        gitutil.run(sub, "config", "--local", ALLOW_IP_KEY, allow_ip)
    ensure_commit(sub, commit, gitutil.out(sub, "config", "--get", "remote.origin.url", check=False) or str(sub))
    checkout(sub, commit)
    return sub


def install_subdatasets(repo: Path, commit: str, *, allow_ip: Optional[str] = None) -> int:
    """Install every subdataset (recursively) at its recorded commit; return how many."""
    n = 0
    for path, sha in gitlinks(repo, commit):
        sub = install_subdataset(repo, path, sha, allow_ip=allow_ip)
        n += 1 + install_subdatasets(sub, sha, allow_ip=allow_ip)
    return n
