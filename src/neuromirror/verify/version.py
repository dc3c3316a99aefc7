"""Do the dataset, the index and the archive agree about a version?

Checks, for one version (the commit the index names):

1. *refs*: the commit exists in the dataset; the version's tag points at it.
2. *tree = index*: the same paths; per file the same key (annexed) or the
   same sha256 (in git), the same size; the key's checksum is the one the
   index recorded from the archive; the index's file/byte counts add up.
3. *URLs registered*: every URL the index holds for a key is live in the key's
   URL log on the ``git-annex`` branch, and the key's location log says some
   repository (the web, or a special remote) has it — otherwise a clone's
   ``git annex get`` has nowhere to go.
4. with ``archive=True``: the source module (the same code ``sync`` uses)
   lists the version at the archive again — a published version must list
   exactly the dataset's paths and keys, and its URLs must be registered; the
   latest draft/snapshot is compared with the archive's current state (a
   difference then means the archive moved on since the last sync).
5. with ``content=True``: each (sampled) key is downloaded from *every*
   registered http(s) URL and hashed; size and checksum must match the key
   (SHA256E/MD5E carry the archive's checksum; VURL/URL keys only a size).
   A URL serving other bytes matters even when another URL is right: after a
   failed verification git-annex does not try the next URL.

``git annex fsck --from web --fast`` would only send HEAD requests, so
content is checked here by downloading, never by trusting headers.

Checks 1-3 read only the dataset and the index and are here; 4 is in
:mod:`~neuromirror.verify.archive`, 5 in
:mod:`~neuromirror.verify.content`, ``--kept`` in :mod:`~neuromirror.verify.kept`; what they find goes into a
:class:`~neuromirror.verify.report.VerifyReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, Sequence

from neuromirror.annex.contract import WEB_UUID
from neuromirror.annex.keys import hashdir_lower, key_file, parse_key
from neuromirror.annex.logs import log_state, web_urls
from neuromirror.annex.tree import has_commit, iter_version, pinned_repositories
from neuromirror.errors import UserError
from neuromirror.index.rows import Version
from neuromirror.records import GIT, MD5, MPETAG, SHA256, SUBDATASET, VersionFile
from neuromirror.spec import Spec
from neuromirror.store.base import Store
from neuromirror.util import gitutil
from neuromirror.verify.archive import check_archive
from neuromirror.verify.content import check_content
from neuromirror.verify.kept import check_copies, check_kept, key_size, store_uuid
from neuromirror.verify.lost_urls import mark_lost_urls, unmarked_read_only
from neuromirror.verify.report import VerifyReport
from neuromirror.verify.risk import recorded_directory_store, risk_of, store_uuids
from neuromirror.verify.store_copies import StoreCopies

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets
    from neuromirror.index.rows import Version
    from neuromirror.records import ProgressCallback


# -- the git-annex branch ---------------------------------------------------------
class AnnexBranch:
    """Reads key logs from a fixed ``git-annex`` branch commit."""

    def __init__(self, repo: Path, cat: gitutil.CatFile):
        self.cat = cat
        self.ref = gitutil.ref_sha(repo, "refs/heads/git-annex")

    def _get(self, key: str, suffix: str) -> Optional[bytes]:
        if not self.ref:
            return None
        return self.cat.get(f"{self.ref}:{hashdir_lower(key)}{key_file(key)}{suffix}")

    def urls(self, key: str) -> list[str]:
        return list(web_urls(self._get(key, ".log.web")))

    def web_marked_gone(self, key: str) -> bool:
        """The key's location log says the web does not have it (:mod:`.lost_urls` marked its URLs gone)."""
        return log_state(self._get(key, ".log")).get(WEB_UUID) is False

    def locations(self, key: str) -> list[str]:
        state = log_state(self._get(key, ".log"))
        return [u for u, live in state.items() if live]


# -- tree vs index ------------------------------------------------------------------
def _compare(report: VerifyReport, tree: dict[str, VersionFile], indexed: dict[str, VersionFile]) -> None:
    for path in sorted(set(tree) - set(indexed)):
        report.add("only-in-dataset", path, "in the dataset's tree, not in the index", tree[path].key)
    for path in sorted(set(indexed) - set(tree)):
        report.add("only-in-index", path, "in the index, not in the dataset's tree", indexed[path].key)
    for path in sorted(set(tree) & set(indexed)):
        t, i = tree[path], indexed[path]
        if i.checksum_kind == SUBDATASET or t.is_subdataset:
            _compare_subdataset(report, path, t, i)
        elif i.checksum_kind == GIT or i.key is None:
            _compare_in_git(report, path, t, i)
        else:
            _compare_annexed(report, path, t, i)


def _compare_subdataset(report: VerifyReport, path: str, t: VersionFile, i: VersionFile) -> None:
    """A path either side calls a subdataset: both must, and pin the same commit (no key to compare)."""
    if not (i.checksum_kind == SUBDATASET and t.is_subdataset):
        report.add("stored", path, "a subdataset in one of the dataset and the index, a file in the other")
    elif (i.checksum or "") != t.checksum:
        report.add(
            "subdataset",
            path,
            f"the dataset pins commit {(t.checksum or '')[:12]}, the index {(i.checksum or '-')[:12]}",
        )


def _compare_in_git(report: VerifyReport, path: str, t: VersionFile, i: VersionFile) -> None:
    """A file the index has in git: the dataset must too, with the sha256 and size the index recorded."""
    if not t.in_git:
        report.add("stored", path, f"the index has it in git, the dataset has annex key {t.key}", t.key)
        return
    if i.checksum and t.checksum != i.checksum.lower():
        report.add(
            "checksum",
            path,
            f"bytes in git have sha256 {(t.checksum or '')[:16]}…, the index says {i.checksum[:16]}…",
        )
    if i.size is not None and t.size != i.size:
        report.add("size", path, f"{t.size} bytes in git, the index says {i.size}")


def _compare_annexed(report: VerifyReport, path: str, t: VersionFile, i: VersionFile) -> None:
    """A file the index has annexed: the same key, its size and the archive's checksum the index recorded."""
    if t.in_git:
        report.add("stored", path, f"the index has annex key {i.key}, the dataset has the file in git", i.key)
        return
    if t.key != i.key:
        report.add("key", path, f"the dataset has {t.key}, the index {i.key}", t.key)
        return
    if i.size is not None and t.size is not None and t.size != i.size:
        report.add("size", path, f"key size {t.size}, the index says {i.size}", t.key)
    if i.checksum_kind in (SHA256, MD5, MPETAG) and i.checksum:
        try:
            ck = parse_key(t.key or "")["checksum"]
        except ValueError:
            ck = None
        if ck and ck.lower() != i.checksum.lower():
            report.add("checksum", path, f"key checksum {ck[:16]}…, the archive's (index) {i.checksum[:16]}…", t.key)


# -- the whole check -------------------------------------------------------------------
def verify_version(
    mirror: Datasets,
    source: str,
    row: Version,
    *,
    content: bool = False,
    sample: Optional[int] = None,
    seed: Optional[int] = None,
    jobs: int = 4,
    progress: Optional[ProgressCallback] = None,
    timeout: float = 60.0,
    archive: bool = False,
    options: Optional[dict] = None,
    content_cache: Optional[dict] = None,
    allow_ip: Optional[str] = None,
    store: Optional[Store] = None,
    kept: bool = False,
    strict: bool = False,
) -> VerifyReport:
    """Check one version (an index ``versions`` row); ``content_cache`` shares downloads between calls.

    ``content`` reads every store the mirror knows (:mod:`.store_copies`: those the key's location log
    names, then for a key nothing served every other one), ``store`` (a store named) first; ``kept``:
    every annexed file must be in ``store`` (default: the directory store the dataset's git-annex
    branch records, if readable here), and ``content`` then hashes that store's copies only;
    ``strict``: warnings (dead URLs) fail too.  ``progress``: told the content's bytes as they are hashed
    (``verify SPEC@VERSION``, ``files SPEC@VERSION``: :func:`~neuromirror.verify.content.check_content`).
    """
    src = mirror.index.source(source)
    if src is None:  # the row came from the index, so its source is there
        raise ValueError(f"{source} is not in the index")
    ds = mirror.root / src.dataset
    commit = row.commit
    report = VerifyReport(source, row.label, commit, row.tag, strict=strict)
    if not _check_refs(report, ds, commit, row):
        return report
    tree = {f.path: f for f in iter_version(ds, commit)}
    indexed = {f.path: f for f in mirror.index.version_files(row.id)}
    _check_counts(report, row, tree, indexed)
    _compare(report, tree, indexed)

    found, copies, store = _read_keys(report, mirror, ds, commit, tree, store, kept=kept, content=content)
    keys = found.keys
    if kept:
        keys = check_kept(report, store, keys, found.kept_in)
        check_copies(report, mirror, source, row)
    _check_index_urls(report, tree, indexed, found.urls_of)
    if archive:
        check_archive(report, mirror, source, row, tree, found.urls_of, options or {})
    if content:
        check_content(
            report,
            keys,
            found.urls_of,
            sample=sample,
            seed=seed,
            jobs=jobs,
            progress=progress,
            label=f"{source}@{row.label}",
            timeout=timeout,
            cache=content_cache,
            repo_of=found.repo_of,
            allow_ip=allow_ip,
            stores=copies,
            located=found.located,
            urls=not kept,
        )
        if (report.web_gone or report.web_serving) and not unmarked_read_only(report, mirror.root):
            with mirror.lock(source, wait=True):  # no sync writes the git-annex branches meanwhile
                mark_lost_urls(report, found.repo_of)
    return report


def _read_keys(
    report: VerifyReport,
    mirror: Datasets,
    ds: Path,
    commit: str,
    tree: dict[str, VersionFile],
    store: Optional[Store],
    *,
    kept: bool,
    content: bool,
) -> tuple[_Keys, StoreCopies, Optional[Store]]:
    """Check 3 over the dataset and its subdatasets: what their git-annex branches say of the version's keys,
    the stores ``--content`` reads and the store ``--kept`` checks (``store``, else the one recorded)."""
    repositories = _repositories(report, ds, commit)
    if store is None and kept:
        # the newest readable one a repository of the version records (the asset's, else a store's)
        store = next(filter(None, (recorded_directory_store(repo) for repo, _, _ in repositories)), None)
    uuid = store_uuid(store)
    copies = StoreCopies(mirror, store, only=kept)  # --content: every store the mirror knows, the named one first
    report.store = str(store) if store is not None else None
    found = _Keys()
    for repo, rcommit, prefix in repositories:
        files = tree.values() if repo == ds else iter_version(repo, rcommit, prefix=prefix)
        _read_repository(report, found, repo, prefix, files, copies, uuid, content)
    report.keys = len(found.keys)
    report.risk = risk_of(found.annexed, found.urls_of, found.kept_in)
    return found, copies, store


def _check_refs(report: VerifyReport, ds: Path, commit: str, row: Version) -> bool:
    """Check 1: the dataset has the version's commit and its tag points there; False when there is no
    dataset or no commit, as nothing else can be read then."""
    if not (ds / ".git").exists():
        report.add("commit", None, f"no dataset at {ds}")
        return False
    if not has_commit(ds, commit):
        report.add("commit", None, f"the index names commit {commit}, which {ds} does not have")
        return False
    if row.tag:
        tagged = gitutil.rev_parse(ds, f"refs/tags/{row.tag}")
        if tagged is None:
            report.add("tag", None, f"tag {row.tag} is missing from the dataset")
        elif tagged != commit:
            report.add("tag", None, f"tag {row.tag} points at {tagged[:12]}, the index says {commit[:12]}")
    return True


def _check_counts(
    report: VerifyReport, row: Version, tree: dict[str, VersionFile], indexed: dict[str, VersionFile]
) -> None:
    """The tree's totals into the report, and the version row's file and byte counts against its file list:
    a row whose counts drifted from its files shows a partly written or edited index."""
    report.files = len(tree)
    report.bytes = sum(f.size or 0 for f in tree.values())
    if row.file_count is not None and row.file_count != len(indexed):
        report.add("counts", None, f"the version row says {row.file_count} files, its file list has {len(indexed)}")
    idx_bytes = sum(f.size or 0 for f in indexed.values())
    if row.bytes is not None and row.bytes != idx_bytes:
        report.add("counts", None, f"the version row says {row.bytes} bytes, its files add up to {idx_bytes}")


@dataclass
class _Keys:
    """What the version's repositories' git-annex branches say of its keys, gathered repository by repository
    (the dataset first, then its subdatasets) for the checks after: kept, risk, URLs, archive, content."""

    keys: dict[str, str] = field(default_factory=dict)  # key -> a path holding it (subdatasets' under their path)
    repo_of: dict[str, Path] = field(default_factory=dict)  # key -> the repository whose git-annex branch knows it
    urls_of: dict[str, list[str]] = field(default_factory=dict)
    located: dict[str, list[str]] = field(default_factory=dict)  # key -> the UUIDs its location log says have it
    annexed: list[VersionFile] = field(default_factory=list)  # every annexed file, for the at-risk counts
    kept_in: set[str] = field(default_factory=set)  # keys a store holds, as the location logs say


def _read_repository(
    report: VerifyReport,
    found: _Keys,
    repo: Path,
    prefix: str,
    files: Iterable[VersionFile],
    copies: StoreCopies,
    named_uuid: Optional[str],
    content: bool,
) -> None:
    """Check 3 for the keys of one repository not seen in an earlier one: each key's URLs and locations read
    from its git-annex branch into ``found``; a repository without that branch adds none of its keys."""
    mine: dict[str, str] = {}
    for f in files:
        if f.key:
            found.annexed.append(f)
        if f.key and f.key not in found.keys and f.key not in mine:
            mine[f.key] = f.path
    if not mine:
        return
    with gitutil.CatFile(repo) as cat:
        branch = AnnexBranch(repo, cat)
        if branch.ref is None:
            report.add("no-location", prefix.rstrip("/") or None, f"{repo} has no git-annex branch: no key has a URL")
            return
        recorded = store_uuids(repo)
        copies.add(recorded)
        stores = {named_uuid} if named_uuid else set(recorded)
        for key, path in mine.items():
            _locate(report, found, branch, key, path, stores, content)
    found.keys.update(mine)
    found.repo_of.update({k: repo for k in mine})


def _locate(
    report: VerifyReport, found: _Keys, branch: AnnexBranch, key: str, path: str, stores: set[str], content: bool
) -> None:
    """One key's URLs and locations into ``found``; a key no repository has is lost (its URLs marked gone) or
    has nowhere to be fetched from; a key without URLs is only noted (a special remote may serve it)."""
    urls = branch.urls(key)
    found.urls_of[key] = urls
    report.urls += len(urls)
    where = branch.locations(key)
    found.located[key] = where
    if stores.intersection(where):
        found.kept_in.add(key)
    if not where and urls and branch.web_marked_gone(key):
        if not content:  # the content check tries the URLs again and says lost or not
            report.add(
                "lost",
                path,
                "its archive URLs were found gone (a content check marked them) and no store holds it",
                key,
                size=key_size(key),
            )
    elif not where:
        report.add(
            "no-location",
            path,
            "no repository (web or special remote) is recorded as having "
            "the content: git annex get has nowhere to fetch it from",
            key,
        )
    elif not urls:
        report.notes.append(f"{path}: no URL registered; content only via a special remote")


def _check_index_urls(
    report: VerifyReport,
    tree: dict[str, VersionFile],
    indexed: dict[str, VersionFile],
    urls_of: dict[str, list[str]],
) -> None:
    """Every URL the index holds for a file whose key the dataset agrees on must be registered on the
    git-annex branch, or a clone's ``git annex get`` never asks it."""
    for path, i in indexed.items():
        if i.key and path in tree and tree[path].key == i.key:
            registered = set(urls_of.get(i.key, ()))
            for u in i.urls:
                if u not in registered:
                    report.add(
                        "url-not-registered",
                        path,
                        f"{u} is in the index but not registered on the git-annex branch",
                        i.key,
                        u,
                    )


def _repositories(report: VerifyReport, ds: Path, commit: str) -> list[tuple[Path, str, str]]:
    """(repository, commit, path prefix) of the dataset and, recursively, of the subdatasets it pins."""

    def missing(sub: Path, sha: str, path: str) -> None:
        report.add("subdataset", path, f"the subdataset's repository {sub} lacks the pinned commit {(sha or '-')[:12]}")

    out = list(pinned_repositories(ds, commit, missing))
    report.subdatasets += len(out) - 1
    return out


def versions_to_verify(mirror: Datasets, specs: Sequence[Spec], all_versions: bool = False) -> list[Version]:
    """The versions ``verify SPEC...`` checks, in the order named: ``@VERSION`` or ``@COMMIT`` that state; none:
    the latest recorded state (``all_versions``: every recorded version). A pattern names every source it
    matches, but no version. Every SPEC is looked up before any version is checked."""
    from neuromirror.index.lookup import not_mirrored, sources_matching
    from neuromirror.pin.record import state_row

    todo: list[Version] = []
    for spec in specs:
        if spec.version and spec.is_glob:
            raise UserError(f"{spec}: a version needs a named source, not a pattern")
        for source in [spec.source] if not spec.is_glob else sources_matching(mirror.index, [spec]):
            if spec.version or not all_versions:
                todo.append(state_row(mirror, Spec(spec.archive, source.split(":", 1)[1], spec.version)))
            elif mirror.index.source(source) is None:
                raise not_mirrored(mirror.index, source)
            else:
                todo += mirror.index.versions(source)
    return [v.under(mirror.root) for v in todo]
