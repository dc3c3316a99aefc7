"""What is at risk: per version, the files and bytes kept in a store, behind a pinned URL, or only behind mutable ones.

Three kinds, from what the dataset records — no network:

* **kept**: the key's location log on the ``git-annex`` branch names a store (a special remote
  of a store's type in ``remote.log``: ``directory``, ``S3``, ``rsync``; with ``--store`` only that
  store);
* **pinned**: not kept, but at least one registered URL is stable by the URL rule
  (:func:`neuromirror.sources.urlrule.stability`: an S3 ``versionId`` or a name the archive never
  reuses) — safe while the archive keeps the bytes;
* **noncurrent**: not kept, and every pinned URL names an S3 version the archive has since overwritten
  or deleted (:mod:`.noncurrent`): the bucket's lifecycle expires it — at risk, not safely pinned;
* **unpinned**: not kept and only mutable URLs (BOSS cutouts, unversioned buckets) or none: the
  next upstream edit or delete loses them.

Files git itself holds are in the dataset and counted in none of them. Also here: which stores a
dataset records (``remote.log``), and opening the one a clone would use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional

from neuromirror.annex.logs import branch_logs, web_urls
from neuromirror.dataset.files import annex_key
from neuromirror.dataset.versions import default_versions
from neuromirror.index.rows import Version
from neuromirror.records import VersionFile
from neuromirror.sources.urlrule import is_stable
from neuromirror.store.directory import DirectoryStore
from neuromirror.store.record import store_uuids
from neuromirror.store.registry import directory_stores
from neuromirror.verify.noncurrent import CurrentObjects, current_objects, kept_keys

if TYPE_CHECKING:
    from neuromirror.index.db import Index


def recorded_directory_store(repo: Path) -> Optional[DirectoryStore]:
    """The directory store a clone of ``repo`` would enable, if it is readable here (the newest one)."""
    found = directory_stores(store_uuids(repo))
    return found[-1][1] if found else None


# -- the counts --------------------------------------------------------------------------
@dataclass
class Risk:
    kept_files: int = 0
    kept_bytes: int = 0
    pinned_files: int = 0
    pinned_bytes: int = 0
    noncurrent_files: int = 0
    noncurrent_bytes: int = 0
    unpinned_files: int = 0
    unpinned_bytes: int = 0
    unpinned_examples: list[str] = field(default_factory=list)

    def add(self, kind: str, size: Optional[int], path: str) -> None:
        setattr(self, f"{kind}_files", getattr(self, f"{kind}_files") + 1)
        setattr(self, f"{kind}_bytes", getattr(self, f"{kind}_bytes") + (size or 0))
        if kind == "unpinned" and len(self.unpinned_examples) < 3:
            self.unpinned_examples.append(path)

    def to_json(self) -> dict:
        return {
            "kept": {"files": self.kept_files, "bytes": self.kept_bytes},
            "pinned": {"files": self.pinned_files, "bytes": self.pinned_bytes},
            "noncurrent": {"files": self.noncurrent_files, "bytes": self.noncurrent_bytes},
            "unpinned": {"files": self.unpinned_files, "bytes": self.unpinned_bytes},
        }

    def line(self, fmt: Any) -> str:
        return (
            f"kept {self.kept_files} files ({fmt(self.kept_bytes)}), "
            f"only behind a pinned URL {self.pinned_files} ({fmt(self.pinned_bytes)}), "
            f"pinned only by a noncurrent S3 version {self.noncurrent_files} ({fmt(self.noncurrent_bytes)}), "
            f"only behind mutable URLs {self.unpinned_files} ({fmt(self.unpinned_bytes)})"
        )


def key_urls(repo: Path, keys: Iterable[str]) -> dict[str, tuple[str, ...]]:
    return {k: web_urls(d) for k, d in branch_logs(repo, keys, ".log.web").items()}


def risk_of(
    files: Iterable[VersionFile],
    urls: Mapping[str, Iterable[str]],
    kept: set[str],
    current: Optional[CurrentObjects] = None,
) -> Risk:
    """The counts for ``files`` given each key's URLs and the keys a store holds (``current``: the objects
    the source's newest state names, to tell a pin on a noncurrent version)."""
    out = Risk()
    for f in files:
        if f.key in kept:
            out.add("kept", f.size, f.path)
        elif any(is_stable(u) for u in urls.get(annex_key(f), ())):
            noncurrent = current is not None and current.only_noncurrent(urls.get(annex_key(f), ()))
            out.add("noncurrent" if noncurrent else "pinned", f.size, f.path)
        else:
            out.add("unpinned", f.size, f.path)
    return out


def version_risk(
    index: Index, ds: Path, version_id: int, uuids: Optional[set[str]] = None, current: Optional[CurrentObjects] = None
) -> tuple[Risk, list[str]]:
    """A version's counts from the index's file rows (Zarr subdatasets' trees included); problems listing it."""
    from neuromirror.dataset.files import version_files

    listed = version_files(index, ds, version_id)
    by_repo: dict[Path, list[VersionFile]] = {}
    for f in listed.annexed:
        by_repo.setdefault(f.repo or ds, []).append(f)
    risk = Risk()
    for repo, files in by_repo.items():
        keys = {f.key for f in files if f.key}
        urls = key_urls(repo, keys)
        part = risk_of(files, urls, kept_keys(repo, keys, uuids), current)
        for name in ("kept", "pinned", "noncurrent", "unpinned"):
            for unit in ("files", "bytes"):
                attr = f"{name}_{unit}"
                setattr(risk, attr, getattr(risk, attr) + getattr(part, attr))
        risk.unpinned_examples += part.unpinned_examples[: 3 - len(risk.unpinned_examples)]
    return risk, [f"{p}: {why}" for p, why in listed.problems]


def status_versions(index: Index, source: str) -> list[Version]:
    """The versions ``status`` counts: every published version (its current record) and the latest draft,
    as a spec without a version names them (:func:`neuromirror.dataset.versions.default_versions`)."""
    return default_versions(index, source)


def source_risk(index: Index, ds: Path, source: str) -> list[dict]:
    """Per version ``status`` counts (:func:`status_versions`): its label, kind, the three counts, problems."""
    out = []
    current = current_objects(index, ds, source)
    for v in status_versions(index, source):
        risk, problems = version_risk(index, ds, v.id, current=current)
        out.append({"version": v.label, "kind": v.kind, **risk.to_json(), "problems": problems})
    return out
