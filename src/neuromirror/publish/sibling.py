"""Publishing datasets to a sibling anyone can clone from.

A mirror's dataset holds no content — only git-annex keys and the archive's
URLs — so publishing it is a git push of three things:

* its branch (every synced version, drafts included),
* its tags (one per published/snapshot version),
* its ``git-annex`` branch (the URLs and "the web has it" location logs).

A ``datalad clone`` of the pushed repository then gets content straight from
the archive with ``datalad get``; the mirror machine is not needed.

Targets: ``--to BASE`` puts dataset ``dandi/000027`` at ``BASE/dandi/000027``
(a directory of bare repositories, or any server that accepts nested paths:
ssh, GIN with a matching layout); ``--to`` with ``{archive}``, ``{name}``,
``{slug}`` (``dandi-000027``) or ``{relpath}`` placeholders maps each dataset to
its own URL, e.g. ``git@github.com:lab/{slug}.git`` for hosts with flat
namespaces.  Local targets are created as bare repositories; remote ones must
exist (create them on GIN/GitHub first).

Subdatasets (DANDI Zarr assets: nested datasets named in ``.gitmodules`` by
the relative URL ``./<path>``) are pushed first, each to ``<dataset URL>/<path>``,
so that a clone of the published dataset installs them from there — which
needs the BASE layout (a template is refused for a dataset with subdatasets).

The root superdataset is pushed only with ``--with-root`` (to BASE itself): its
``.gitmodules`` names each dataset by a relative path (``./dandi/000027``), so a
clone of BASE finds the datasets at BASE/<relpath> — only with the BASE layout,
and only for the datasets published there.

Each published dataset records the target as a git remote (default name
``published``, ``annex-ignore`` set, nothing fetched from it) so that ``lock``
and ``cite`` can name it; nothing is ever fetched or merged from it into the
mirror.  A publish into a RIA store (:mod:`.ria.publish`) records its clone URL
(``ria+https://HOST/PATH#~dandi/000027``) under the git config key
``neuromirror.published-url`` instead, which :func:`neuromirror.pin.published.published_url` reads first;
a later publish to a ``published`` remote removes it, so the last publish wins.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from neuromirror.annex.tree import gitlinks
from neuromirror.errors import NeuromirrorError
from neuromirror.pin.locations import is_local, join_url, local_path
from neuromirror.pin.published import RIA_URL_KEY
from neuromirror.pin.retrieve import RetrieveError
from neuromirror.util import disk, gitutil


class PublishError(NeuromirrorError, RuntimeError):
    """Publishing failed; the message says which dataset, where and why."""


@dataclass
class PublishResult:
    source: str
    relpath: str
    url: str
    branch: str
    commit: str
    tags: int
    created: bool = False
    updated: list[str] = field(default_factory=list)  # refs that changed on the target
    subdatasets: int = 0

    def line(self) -> str:
        what = ", ".join(self.updated) if self.updated else "already up to date"
        made = " (created)" if self.created else ""
        subs = f", {self.subdatasets} subdataset(s)" if self.subdatasets else ""
        return (
            f"{self.source} -> {self.url}{made}: {self.branch} at {self.commit[:12]}, {self.tags} tag(s){subs}; "
            f"pushed: {what}"
        )


def target_url(to: str, source: str, relpath: str) -> str:
    """Where dataset ``relpath`` goes for ``--to``: a template, or BASE/relpath."""
    if "{" in to:
        archive, name = source.split(":", 1)
        try:
            return to.format(archive=archive, name=name, relpath=relpath, slug=relpath.replace("/", "-"))
        except (KeyError, IndexError, ValueError) as exc:
            raise PublishError(
                f"target {to!r}: bad placeholder ({exc}); use {{archive}} {{name}} {{slug}} {{relpath}}"
            ) from None
    return join_url(to, relpath)


def current_branch(ds: Path) -> str:
    """The branch ``ds``'s HEAD names, read from ``.git/HEAD`` where it says so plainly (no git child per
    dataset), else asked of git; a detached HEAD is an error."""
    try:
        head = (ds / ".git" / "HEAD").read_text().strip()
    except OSError:
        head = ""
    if head.startswith("ref: refs/heads/"):
        return head[len("ref: refs/heads/") :]
    name = gitutil.out(ds, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    if not name:
        raise PublishError(f"{ds}: HEAD is not on a branch")
    return name


def ensure_bare(url: str, branch: str) -> bool:
    """Create a bare repository for a local target; True if it was created."""
    path = local_path(url)
    if (path / "HEAD").exists() and (path / "objects").exists():
        return False
    if (path / ".git").exists():
        return False  # a non-bare repository: pushing a checked-out branch will be refused by git, loudly
    if path.exists() and any(path.iterdir()) and not _only_datasets(path):
        raise PublishError(f"{path} exists and is not a git repository")
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["git", "init", "-q", "--bare", f"--initial-branch={branch}", str(path)],
        capture_output=True,
        env=gitutil.git_env(),
    )
    if proc.returncode != 0:
        raise PublishError(f"cannot create a bare repository at {path}: {proc.stderr.decode(errors='replace').strip()}")
    return True


def _only_datasets(path: Path) -> bool:
    """A BASE directory that so far holds only published datasets (root published later)."""
    return all(p.is_dir() for p in path.iterdir())


def set_remote(ds: Path, name: str, url: str) -> None:
    """Record ``url`` as the remote ``name`` the mirror published to (never fetched from).

    Each key is written only where ``.git/config`` does not say so already (read as text, no git child): a
    ``git config`` costs a process, and a publish of 200 datasets wrote five per dataset, mostly unchanged."""
    config = _config_text(ds)
    section = f'remote"{name.lower()}"'

    def values(sect: str, key: str) -> Optional[list[str]]:
        return None if config is None else gitutil.config_values(config, sect, key)

    for key, value in (("url", url), ("annex-ignore", "true"), ("skipFetchAll", "true")):
        if values(section, key) != [value]:
            gitutil.run(ds, "config", "--replace-all", f"remote.{name}.{key}", value)
    gone = [(section, "fetch", f"remote.{name}.fetch")]  # never fetched, merged or used for content by the mirror
    if name == "published":  # this publish is now the latest: lock and cite name it, not an older RIA store
        gone.append(("neuromirror", "published-url", RIA_URL_KEY))
    for sect, key, full in gone:
        if values(sect, key) != []:
            gitutil.run(ds, "config", "--unset-all", full, check=False)


def _config_text(ds: Path) -> Optional[str]:
    """``ds``'s ``.git/config`` as text; None where it cannot be read plainly (no ``.git`` directory, an
    ``[include]``): git is asked for every key then."""
    try:
        text = (ds / ".git" / "config").read_text()
    except OSError:
        return None
    return None if "[include" in text.lower() else text


def _ls_remote(url: str, env: Optional[dict] = None) -> dict[str, str]:
    proc = subprocess.run(
        ["git", "ls-remote", url],
        capture_output=True,
        env=gitutil.git_env({"GIT_SSH_COMMAND": "ssh -o BatchMode=yes", **(env or {})}),
    )
    if proc.returncode != 0:
        raise PublishError(f"cannot read {url} after the push: {proc.stderr.decode(errors='replace').strip()}")
    refs: dict[str, str] = {}
    for line in proc.stdout.decode().splitlines():
        sha, ref = line.split("\t", 1)
        refs[ref] = sha
    return refs


def push_dataset(  # noqa: PLR0913
    ds: Path,
    url: str,
    *,
    force: bool = False,
    create: bool = True,
    tip: Optional[str] = None,
    env: Optional[dict] = None,
    read_back: bool = True,
    local_refs: Optional[dict[str, str]] = None,
) -> tuple[str, str, int, bool, list[str]]:
    """Push branch, tags and git-annex branch of ``ds`` to ``url``; check the target has them.

    ``tip``: a commit of the publisher's own on top of the branch (GitHub's ``.gitmodules``), pushed as the branch,
    replacing the one it pushed before; ``env``: the push's credentials (an ``http.extraHeader``, never a URL);
    ``read_back=False``: the check takes the target's own report of each ref (git's report-status, which a smart
    HTTP server sends once its refs are updated) instead of asking again (``ls-remote``: over HTTPS one more
    connection, authentication and ref advertisement per repository); ``local_refs``: ``ds``'s branches and
    tags (ref -> commit) when the caller has read them.
    Returns (branch, commit, tag count, created, updated refs).
    """
    branch = current_branch(ds)
    commit = tip or gitutil.head_from_files(ds) or ""
    created = ensure_bare(url, branch) if create and is_local(url) else False
    plus = "+" if force else ""
    head = f"+{commit}:refs/heads/{branch}" if tip else f"{plus}refs/heads/{branch}:refs/heads/{branch}"
    refspecs = [head, f"{plus}refs/tags/*:refs/tags/*"]
    has_annex = gitutil.branch_sha(ds, "refs/heads/git-annex") is not None
    if has_annex:
        refspecs.append(f"{plus}refs/heads/git-annex:refs/heads/git-annex")
    pushed = gitutil.push(ds, url, refspecs, env={"GIT_SSH_COMMAND": "ssh -o BatchMode=yes", **(env or {})})
    if pushed.rejected:
        raise PublishError(
            f"{url} refused {', '.join(pushed.rejected)}: the target has commits the mirror lacks "
            "(someone else pushed there?); check it, or overwrite with --force"
        )
    if pushed.error is not None:
        raise PublishError(f"git push to {url} failed: {pushed.error}")
    reported = None if read_back else pushed.held
    tags = _check_target(ds, url, (branch, commit, has_annex), env, reported, local_refs)
    if created and is_local(url):
        # make the target's HEAD name the published branch, so clones check it out
        subprocess.run(
            ["git", "-C", str(local_path(url)), "symbolic-ref", "HEAD", f"refs/heads/{branch}"],
            capture_output=True,
            env=gitutil.git_env(),
        )
    return branch, commit, len(tags), created, pushed.updated


def _check_target(
    ds: Path,
    url: str,
    pushed: tuple[str, str, bool],
    env: Optional[dict] = None,
    reported: Optional[dict[str, str]] = None,
    local: Optional[dict[str, str]] = None,
) -> dict[str, str]:
    """The target must now hold exactly what the mirror has (``pushed``: the branch, its commit, whether a
    git-annex branch went too): the branch, every tag, the git-annex branch (a push git called good is read
    back, or ``reported``: the push's report, ref -> the local ref or commit it sent). The tags, by ref."""
    branch, commit, has_annex = pushed
    local = _local_refs(ds) if local is None else local
    if reported is None:
        remote = _ls_remote(url, env)
    else:
        remote = {ref: local.get(src, src) for ref, src in reported.items()}
    tags = {r: s for r, s in local.items() if r.startswith("refs/tags/")}
    want = {f"refs/heads/{branch}": commit, **tags}
    if has_annex:
        want["refs/heads/git-annex"] = local.get("refs/heads/git-annex", "")
    wrong = [r for r, s in want.items() if remote.get(r) != s]
    if wrong:
        raise PublishError(f"{url} does not hold {', '.join(wrong)} after the push")
    return tags


def _local_refs(ds: Path) -> dict[str, str]:
    out = gitutil.out(ds, "for-each-ref", "--format=%(objectname) %(refname)", "refs/tags", "refs/heads")
    refs: dict[str, str] = {}
    for line in out.splitlines():
        sha, ref = line.split(" ", 1)
        refs[ref] = sha
    return refs


def subdataset_paths(ds: Path, tags: Optional[list[str]] = None) -> list[str]:
    """Paths of the subdatasets (e.g. DANDI Zarr assets) pinned by the branch or any tag of ``ds`` (``tags``: its
    tags' full names, when the caller has read them)."""
    if tags is None:
        tags = gitutil.out(ds, "for-each-ref", "--format=%(refname)", "refs/tags").split()
    refs = ["HEAD", *tags]
    paths: set[str] = set()
    for ref in refs:
        paths.update(path for path, _ in gitlinks(ds, ref))
    return sorted(paths)


def publish_source(  # noqa: ANN001
    mirror, source: str, to: str, *, name: str = "published", force: bool = False, min_free: object = None
) -> PublishResult:
    src = mirror.index.source(source)
    relpath = src.dataset
    ds = mirror.root / relpath
    if not (ds / ".git").exists():
        raise PublishError(f"{source}: no dataset at {ds}")
    url = target_url(to, source, relpath)
    if is_local(url):  # a target on this host: its disk must hold the push
        disk.check_free(local_path(url), f"publishing {source} to {url}", option=min_free)
    # hold the source's sync lock: a sync moving the branch and git-annex mid-push would publish a mix
    with mirror.lock(source, wait=True):
        subs = subdataset_paths(ds)
        if subs and "{" in to:
            raise PublishError(
                f"{source} has {len(subs)} subdataset(s) (e.g. {subs[0]}), which its .gitmodules names "
                "by relative URL (./<path>): publish it to a BASE, a target with no placeholders"
            )
        try:
            # subdatasets first: the moment the parent is visible, what it pins can be installed
            nsub = 0
            for sub in subs:
                sds = ds / sub
                if not (sds / ".git").exists():
                    raise PublishError(f"{source}: subdataset {sub} is not in the mirror ({sds}); cannot publish it")
                push_dataset(sds, join_url(url, sub), force=force)
                nsub += 1
            branch, commit, ntags, created, updated = push_dataset(ds, url, force=force)
        except RetrieveError as exc:
            raise PublishError(str(exc)) from None
        set_remote(ds, name, url)
    res = PublishResult(source, relpath, url, branch, commit, ntags, created, updated)
    res.subdatasets = nsub
    return res


def publish_root(mirror, to: str, *, name: str = "published", force: bool = False) -> PublishResult:  # noqa: ANN001
    if "{" in to:
        raise PublishError(
            "the root superdataset is published to a BASE only, a target with no placeholders: it finds its "
            "datasets at BASE/<path>"
        )
    url = str(local_path(to)) if is_local(to) and not to.startswith("file://") else to
    with mirror.root_lock():
        branch, commit, ntags, created, updated = push_dataset(mirror.root, url, force=force)
        set_remote(mirror.root, name, url)
    return PublishResult("(root superdataset)", ".", url, branch, commit, ntags, created, updated)


@dataclass
class SiblingsReport:
    """What ``publish --to BASE`` (no RIA store) did: each dataset pushed, the errors, and (``with_root``) the
    datasets the root names that were not published here (clones of the root cannot get those)."""

    published: list[PublishResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unpublished: list[str] = field(default_factory=list)


def publish_siblings(  # noqa: ANN001
    mirror,
    sources: list[str],
    to: str,
    *,
    name: str = "published",
    force: bool = False,
    with_root: bool = False,
    each: Optional[Callable[[PublishResult], None]] = None,
    min_free: object = None,
) -> SiblingsReport:
    """Every source's dataset pushed to its sibling (a failure named and the next one tried), then, with
    ``with_root`` and no failure, the root superdataset; ``each`` is called with each result as it is done;
    ``min_free``: what a target on this host must keep free (:func:`neuromirror.util.disk.check_free`)."""
    report = SiblingsReport()

    def done(res: PublishResult) -> None:
        report.published.append(res)
        if each is not None:
            each(res)

    for source in sources:
        try:
            done(publish_source(mirror, source, to, name=name, force=force, min_free=min_free))
        except PublishError as exc:
            report.errors.append(f"{source}: {exc}")
    if with_root and not report.errors:
        try:
            done(publish_root(mirror, to, name=name, force=force))
            report.unpublished = sorted(set(mirror.subdatasets()) - {r.relpath for r in report.published})
        except PublishError as exc:
            report.errors.append(f"root: {exc}")
    return report
