"""``keep --prune``: retention in a store — what no kept version needs any more is given up.

A keep records every version it gives a store (``kept_versions`` in the index, whole or not).  A
keep with ``--prune`` (the service's ``keep: {prune: true}``) decides, for the sources it names, that
the versions it selects now are the ones the store keeps: a version of those sources the store was
given before and this run does not select is *dropped* (an older draft state superseded by a newer
one, a version left out of a lock file).  A key is dead when a dropped version has it and no version
the store still keeps (this run's, and every other version given to it, of any source) has it; only
dead keys go, so a key is never lost while a kept version still needs it, and a key no record names
(kept before the index recorded versions per store) stays.

Order, each step safe to be killed after: the dead keys' records on the dropped versions' git-annex
branches first (the store no longer listed there: a clone never asks it for a key that may be gone),
then the store itself (a packed store rewrites packs mostly made of dead keys, restic's prune, and
takes the rest out of its index files; a store of one file or object per key removes each), then the
index (check rows of the dead keys, the dropped versions' records and marks).  A rerun finds the
same dropped versions until that last step and converges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from neuromirror.dataset.files import annex_key, annex_repo, version_files
from neuromirror.index import store_checks
from neuromirror.index.rows import Version, read_as
from neuromirror.readers import kept_beside
from neuromirror.results import Item, Result, Status
from neuromirror.store.base import Dropped, Store
from neuromirror.store.record import record_absent

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets


@dataclass
class PruneRun(Result):
    """One store's retention: the versions it no longer keeps and what it gave up for them (an item per
    version dropped; a prune that ran always is ok: a failed one is its keep run's error)."""

    store: str
    dropped: list[str] = field(default_factory=list)  # "SOURCE@LABEL" of each version dropped
    dead: int = 0  # keys no kept version needs
    unrecorded: int = 0  # location records removed from the datasets' git-annex branches
    gone: Dropped = field(default_factory=Dropped)

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "dropped_versions": self.dropped,
            "dead_keys": self.dead,
            "unrecorded": self.unrecorded,
            "store_dropped": self.gone.to_json(),
        }

    def items(self) -> list[Item]:
        return [Item(Status.OK, f"{v} from {self.store}", "dropped") for v in self.dropped]

    def lines(self) -> list[str]:
        return [self.line()]

    def __repr__(self) -> str:
        return f"<PruneRun {self.store}: {len(self.dropped)} version(s) dropped, {self.dead} dead key(s)>"

    def line(self) -> str:
        if not self.dropped:
            return f"prune {self.store}: no version dropped"
        return (
            f"prune {self.store}: {len(self.dropped)} version(s) dropped, {self.dead} key(s) no kept version needs; "
            f"the store gave up {self.gone.keys} key(s), {self.gone.bytes} bytes ({self.gone.rewritten} pack(s) "
            "rewritten)"
        )


def prune(mirror: Datasets, store: Store, targets: Sequence[Version]) -> PruneRun:
    """Drop from ``store`` the versions of ``targets``' sources it was given and ``targets`` leave out,
    and the keys only they needed."""
    uuid = store.identity.uuid
    run = PruneRun(str(store))
    given, dropped = _given(mirror, uuid, targets)
    if not dropped:
        return run
    names = {src: read_as(mirror.index.versions(src)) for src in {v.source for v in dropped}}
    run.dropped = [f"{v.source}@{names[v.source].get(v.id, v.label)}" for v in dropped]  # an older draft by commit
    dead = _dead_keys(mirror, dropped, [*targets, *given])
    dead_keys = {k for keys in dead.values() for k in keys}
    run.dead = len(dead_keys)
    for repo, keys in dead.items():
        if keys:
            with mirror.lock(_source_of(dropped, repo, mirror)):
                run.unrecorded += record_absent(repo, uuid, sorted(keys))
    run.gone = store.drop(dead_keys)
    for hook in kept_beside():  # what the readers kept beside them (LINDI references) goes with them
        beside = {hook.name(k) for k in dead_keys if hook.wants(k)}
        if beside:
            store.drop(beside)
    store_checks.forget(mirror.index, uuid, dead_keys, marks=False)
    store_checks.drop_kept(mirror.index, uuid, [v.id for v in dropped])
    return run


def _given(mirror: Datasets, uuid: str, targets: Sequence[Version]) -> tuple[list[Version], list[Version]]:
    """The versions the store was given, and those of them ``targets``' sources no longer select."""
    sources = {t.source for t in targets}
    chosen = {t.id for t in targets}
    # a source removed since has no dataset: its versions are not here
    given = [v.under(mirror.root) for v in store_checks.kept_in(mirror.index, uuid) if v.relpath]
    return given, [v for v in given if v.source in sources and v.id not in chosen]


def _dead_keys(mirror: Datasets, dropped: Sequence[Version], others: Sequence[Version]) -> dict[Path, set[str]]:
    """Per repository, the keys of the ``dropped`` versions that no other version the store keeps has."""
    dead = _keys_by_repo(mirror, dropped)  # the dropped versions' keys, per repository
    kept = {v.id: v for v in others if v.id not in {d.id for d in dropped}}
    holding: dict[str, list[set[str]]] = {}  # a dead key -> the repositories' sets naming it (most: one)
    for keys in dead.values():
        for k in keys:
            holding.setdefault(k, []).append(keys)
    for version in kept.values():  # what a kept version has stays: memory follows the dropped versions
        for f in version_files(mirror.index, mirror.dataset_path(version.relpath), version.id).annexed:
            for keys in holding.get(annex_key(f), ()):
                keys.discard(annex_key(f))
    return dead


def _keys_by_repo(mirror: Datasets, versions: Iterable[Version]) -> dict[Path, set[str]]:
    out: dict[Path, set[str]] = {}
    for v in versions:
        for f in version_files(mirror.index, mirror.dataset_path(v.relpath), v.id).annexed:
            out.setdefault(annex_repo(f), set()).add(annex_key(f))
    return out


def _source_of(versions: Sequence[Version], repo: Path, mirror: Datasets) -> str:
    """The source whose lock guards ``repo``'s branch: the one whose dataset holds it (a Zarr's too)."""
    for v in versions:
        ds = mirror.dataset_path(v.relpath)
        if repo == ds or ds in repo.parents:
            return v.source
    return versions[0].source
