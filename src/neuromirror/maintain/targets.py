"""Which git repositories belong to a source, and so are maintained under its sync lock.

A source's dataset, each subdataset its work tree's ``.gitmodules`` names (DANDI Zarr assets, AIND
Zarr stores: datasets of their own, written by the same sync under the same lock), and their copies
where they were published on this host: the datasets of a RIA store (``ria+file://``; each by its
DataLad id) and bare siblings (a BASE directory or a template that names a local path).  Where a
dataset was published is what the caller names (``--to``, the service's ``publish: {to: ...}``) and
what the dataset itself recorded (its ``published`` remote, its ``neuromirror.published-url``);
a place on another host (``ria+ssh://``, ``ssh://``, a forge) is noted, not maintained: git there
is its owner's.  The root superdataset is a group of its own, under the root's lock.

Found under the lock, from files and one ``git config`` read per dataset: a sync adding a Zarr
waits for nothing here, and a dandiset of 20,000 Zarr datasets is listed in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from neuromirror.dataset.light_dataset import dataset_id
from neuromirror.dataset.mirror import ROOT_LOCK
from neuromirror.errors import UserError
from neuromirror.pin.locations import is_local, join_url, local_path
from neuromirror.publish.ria.layout import RiaError, RiaStore
from neuromirror.publish.ria.root import ROOT_ALIAS
from neuromirror.publish.sibling import PublishError, target_url
from neuromirror.util import gitutil


@dataclass
class Repo:
    """One repository to maintain: its git directory, what it is, and how the report names it."""

    git_dir: Path
    kind: str  # "dataset", "subdataset", "root", "ria" (a RIA store's copy), "sibling" (a bare sibling)
    label: str


@dataclass
class Group:
    """The repositories one lock guards: a source's (``lock`` = its id) or the root's."""

    lock: str
    source: Optional[str]
    repos: list[Repo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _seen: set[Path] = field(default_factory=set, repr=False)

    def add(self, repo: Repo) -> None:
        """Once per repository (a sibling may be named by ``--to`` and by the dataset's record alike)."""
        where = repo.git_dir.resolve()
        if where not in self._seen:
            self._seen.add(where)
            self.repos.append(repo)


def subdatasets(ds: Path) -> list[str]:
    """Paths of the subdatasets the work tree's ``.gitmodules`` names (quoted or not), in its order."""
    if not (ds / ".gitmodules").is_file():
        return []
    out = gitutil.out(ds, "config", "-f", ".gitmodules", "--get-regexp", r"submodule\..*\.path", check=False)
    return [line.split(" ", 1)[1] for line in out.splitlines() if " " in line]


def recorded_places(ds: Path) -> list[str]:
    """Where ``ds`` says it was published: its ``published`` remote, its RIA store (``ria+file://`` only)."""
    config = ds / ".git" / "config"
    places = []
    remote = gitutil.config_file_value(config, 'remote"published"', "url")
    if remote:
        places.append(remote)
    ria = gitutil.config_file_value(config, "neuromirror", "published-url")
    if ria and ria.startswith("ria+file://"):
        places.append(ria.split("#", 1)[0])
    return places


def _bare_at(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and not (path / ".git").exists()


def _in_ria(group: Group, place: str, repos: Iterable[tuple[Path, str]]) -> None:
    try:
        store = RiaStore.from_url(place)
    except (UserError, RiaError) as exc:
        group.notes.append(f"{place}: not a RIA store ({exc})")
        return
    if store.ssh is not None:
        group.notes.append(f"{place}: a store on another host, not maintained from here")
        return
    for repo, _ in repos:
        dsid = dataset_id(repo)
        d = store.dataset_dir(dsid) if dsid else None
        if d is not None and (d / "HEAD").is_file():
            group.add(Repo(d, "ria", f"{store.url}#{dsid}"))


def _in_siblings(group: Group, place: str, source: str, relpath: str, subs: list[str]) -> None:
    try:
        url = target_url(place, source, relpath)
    except PublishError as exc:
        group.notes.append(str(exc))
        return
    if not is_local(url):
        group.notes.append(f"{url}: not on this host, not maintained from here")
        return
    for where in [url] + [join_url(url, s) for s in subs]:
        path = local_path(where)
        if _bare_at(path):
            group.add(Repo(path, "sibling", str(path)))


def source_group(mirror: Any, source: str, to: Iterable[str] = ()) -> Group:
    """The repositories of ``source``: read them with its lock held (a sync may be adding subdatasets)."""
    group = Group(source, source)
    relpath = mirror.index.source(source).dataset
    ds = mirror.root / relpath
    gd = gitutil.git_dir(ds)
    if gd is None or not gd.is_dir():
        group.notes.append(f"no dataset at {ds}")
        return group
    group.add(Repo(gd, "dataset", relpath))
    subs = [s for s in subdatasets(ds) if (ds / s / ".git").exists()]
    mine: list[tuple[Path, str]] = [(ds, relpath)]
    for sub in subs:
        sgd = gitutil.git_dir(ds / sub)
        if sgd is not None and sgd.is_dir():
            group.add(Repo(sgd, "subdataset", f"{relpath}/{sub}"))
            mine.append((ds / sub, f"{relpath}/{sub}"))
    for place in dict.fromkeys([*to, *recorded_places(ds)]):
        if place.startswith("ria+"):
            _in_ria(group, place, mine)
        else:
            _in_siblings(group, place, source, relpath, subs)
    return group


def root_group(mirror: Any, to: Iterable[str] = ()) -> Group:
    """The root superdataset, and its published copies (a RIA store's ``root`` alias, a BASE's own repository)."""
    group = Group(ROOT_LOCK, None)
    gd = gitutil.git_dir(mirror.root)
    if gd is None or not gd.is_dir():
        return group
    group.add(Repo(gd, "root", "(root superdataset)"))
    for place in dict.fromkeys([*to, *recorded_places(mirror.root)]):
        if place.startswith("ria+"):
            try:
                store = RiaStore.from_url(place)
            except (UserError, RiaError):
                continue
            dsid = store.alias_target(ROOT_ALIAS) if store.ssh is None else None
            if dsid and (store.dataset_dir(dsid) / "HEAD").is_file():
                group.add(Repo(store.dataset_dir(dsid), "ria", f"{store.url}#~{ROOT_ALIAS}"))
        elif is_local(place) and "{" not in place and _bare_at(local_path(place)):
            group.add(Repo(local_path(place), "sibling", str(local_path(place))))
    return group
