"""Fetching content into a clone: ``git annex get`` (:mod:`neuromirror.pin.annexget`), into subdatasets too.

The end of this module puts the steps together: :func:`get_version` (``neuromirror get``: a
version cloned, checked out and fetched) and :func:`reproduce_dataset` (``neuromirror reproduce``:
a lock file's dataset rebuilt, its commit and file list checked against the lock, its content fetched).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from neuromirror.pin.annexget import GetReport, annex_get
from neuromirror.pin.clone import (
    check_paths,
    checkout,
    clone,
    ensure_commit,
    install_subdataset,
    install_subdatasets,
    remove_clone,
    resolve_version_in_clone,
    split_paths,
    tag_commit,
)
from neuromirror.pin.filelist import FileList, digest_pairs, file_list_digest, walk_files
from neuromirror.pin.locations import resolve_url
from neuromirror.pin.retrieve import ALLOW_IP_ENV, RetrieveError, allow_ip_default, fmt_bytes
from neuromirror.spec import Spec, dataset_relpath

if TYPE_CHECKING:
    from neuromirror.pin.lockfile import LockedDataset
    from neuromirror.records import ProgressCallback


def failure_lines(report: GetReport, limit: int = 20) -> list[str]:
    lines = [f"  {path}: {why}" for path, why in report.failed[:limit]]
    if len(report.failed) > limit:
        lines.append(f"  ... and {len(report.failed) - limit} more")
    if any("allowed-ip-addresses" in why for _, why in report.failed):
        lines.append(
            f"  hint: the archive is on a loopback/private address: to allow it in this clone, run"
            f" `neuromirror get SPEC --allow-ip all` (or set {ALLOW_IP_ENV})"
        )
    return lines


def fetch(
    repo: Path,
    commit: str,
    paths: Sequence[str],
    *,
    jobs: int = 4,
    progress: Optional[ProgressCallback] = None,
    label: str = "get",
    allow_ip: Optional[str] = None,
    prepare: Optional[Callable[[Path, str], object]] = None,
) -> GetReport:
    """:func:`annex_get` in ``repo`` and, recursively, in the subdatasets the paths reach (installed as needed).

    ``prepare(repo, commit)`` runs in each repository before its content is fetched (the lab's
    store made usable there: :mod:`neuromirror.pin.stores`).  ``progress`` is told each repository's files
    and bytes as they arrive, under ``label`` (a subdataset's: ``label`` and its path): ``("files LABEL",
    done, total)`` and ``("get LABEL", done, total)``, :class:`~neuromirror.util.progress.ByteCalls`.
    """
    t0 = time.monotonic()
    mine, subs = split_paths(repo, commit, paths)
    if prepare is not None and mine is not None:
        prepare(repo, commit)
    report = annex_get(repo, mine, jobs=jobs, progress=progress, label=label) if mine is not None else GetReport()
    for path, (sha, sub_paths) in subs.items():
        try:
            sub = install_subdataset(repo, path, sha, allow_ip=allow_ip)
        except RetrieveError as exc:
            report.failed.append((path, str(exc)))
            continue
        sub_paths = check_paths(sub, sha, sub_paths)
        inner = fetch(
            sub,
            sha,
            sub_paths,
            jobs=jobs,
            progress=progress,
            label=f"{label} {path}",
            allow_ip=allow_ip,
            prepare=prepare,
        )
        inner.subdatasets += 1
        report.merge(inner, path + "/")
    report.seconds = time.monotonic() - t0
    return report


# -- a version got back whole: neuromirror get and reproduce ----------------------------------------------
#: the ``prepare`` of :func:`fetch` for a dataset whose lock names these stores (``()``: none), made when
#: its content is about to be fetched; None: no store to fall back to
PrepareFor = Callable[[Sequence[str]], Optional[Callable[[Path, str], object]]]


def _no_store(recorded: Sequence[str]) -> None:
    return None


@dataclass
class Retrieval:
    """How ``get`` and ``reproduce`` get a version back: where from, and how content is fetched."""

    from_url: Optional[str] = None  # a published copy (its base, a RIA store, the dataset's URL); None: the mirror's
    allow_ip: Optional[str] = None  # annex.security.allowed-ip-addresses in the clone (None: $NEUROMIRROR_ALLOW_IP)
    jobs: int = 4
    progress: Optional[ProgressCallback] = None  # told the bytes and files: fetch's
    prepare_for: PrepareFor = _no_store


@dataclass
class GotVersion:
    """What :func:`get_version` did: the clone, where it came from, the version's record and the fetch."""

    dest: Path
    reused: bool  # a previous get's clone
    url: str  # cloned from
    rec: dict  # the version's record (pin_record's, or read from the clone): version, commit, tag, doi
    paths: list[str]  # what was fetched ([]: everything)
    report: GetReport

    @property
    def commit(self) -> str:
        return str(self.rec["commit"])


def _source_url(spec: Spec, rec: Optional[dict], relpath: Optional[str], from_url: Optional[str]) -> str:
    if from_url:
        return resolve_url(from_url, (relpath or "") if rec is not None else dataset_relpath(spec))
    assert rec is not None, "a version neither recorded nor given from_url"
    return str(rec["dataset"])


def get_version(
    spec: Spec, rec: Optional[dict], relpath: Optional[str], to: Path, paths: Sequence[str], how: Retrieval
) -> GotVersion:
    """Clone the dataset of ``spec`` into ``to`` (``how.from_url``, else the mirror's dataset of ``rec``), check
    out the version's commit (``rec``'s; None: read from the clone), refuse a moved tag and fetch ``paths``."""
    url = _source_url(spec, rec, relpath, how.from_url)
    dest, reused = clone(url, to, allow_ip=allow_ip_default(how.allow_ip))
    if rec is None:
        rec = resolve_version_in_clone(dest, spec.source, spec.version)
    commit = rec["commit"]
    ensure_commit(dest, commit, url)
    if rec.get("tag"):
        tagged = tag_commit(dest, rec["tag"])
        if tagged and tagged != commit:
            raise RetrieveError(
                f"tag {rec['tag']} at {url} points at {tagged[:12]}, but "
                f"{spec.source}@{rec['version']} is commit {commit[:12]}: refusing a moved tag"
            )
    checkout(dest, commit)
    checked = check_paths(dest, commit, paths)
    report = fetch(
        dest,
        commit,
        checked,
        jobs=how.jobs,
        progress=how.progress,
        label=f"{spec.source}@{rec['version']}",
        allow_ip=allow_ip_default(how.allow_ip),
        prepare=how.prepare_for(()),
    )
    return GotVersion(dest, reused, url, rec, checked, report)


def select_paths(paths: Sequence[str], relpath: str) -> Optional[list[str]]:
    """The dataset-relative paths of ``paths`` (relative to the rebuilt tree) inside the dataset at
    ``relpath``; None if none concern it; [] = all."""
    if not paths:
        return []
    out: list[str] = []
    hit = False
    for p in paths:
        if p == relpath or relpath.startswith(p + "/"):
            return []
        if p.startswith(relpath + "/"):
            hit = True
            out.append(p[len(relpath) + 1 :])
    return out if hit else None


def compare_file_list(d: LockedDataset, fl: FileList) -> list[str]:
    """Differences between the lock's record of a dataset and the file list found."""
    problems: list[str] = []
    if d.file_list is not None:
        if digest_pairs(d.file_list) != d.file_list_digest:
            problems.append("the lock's file-list does not match its own file-list-digest: the lock file was edited")
        want = dict(d.file_list)
        have = dict(fl.entries)
        for path in sorted(set(want) - set(have)):
            problems.append(f"missing file: {path} is in the lock, not in the dataset")
        for path in sorted(set(have) - set(want)):
            problems.append(f"extra file: {path} is in the dataset, not in the lock")
        for path in sorted(set(want) & set(have)):
            if want[path] != have[path]:
                problems.append(f"changed file: {path} is {have[path]} in the dataset, {want[path]} in the lock")
    if fl.digest != d.file_list_digest:
        problems.append(
            f"file list differs: the lock has {d.files} files, {fmt_bytes(d.bytes)}, digest "
            f"{d.file_list_digest[:23]}…; the dataset has {fl.files} files, {fmt_bytes(fl.bytes)}, "
            f"digest {fl.digest[:23]}…"
        )
    elif fl.files != d.files or fl.bytes != d.bytes:
        problems.append(
            f"file counts differ: the lock says {d.files} files, {d.bytes} bytes; the dataset has "
            f"{fl.files} files, {fl.bytes} bytes (the lock file was edited)"
        )
    return problems


def reproduce_dataset(
    d: LockedDataset,
    base: Path,
    paths: Sequence[str],
    how: Retrieval,
    *,
    content: bool = True,
    keep_failed: bool = False,
) -> dict:
    """Rebuild the locked dataset ``d`` in ``base``/its path: clone, check the commit, the tag and the file list
    against the lock, fetch the content of ``paths`` (relative to ``base``; [] = all; ``content``: any).
    What ``reproduce --json`` says of it; ``problems`` empty when it matches.  A clone this call made that
    failed is removed unless ``keep_failed`` (``removed``): a directory must hold only states that match."""
    res: dict = {
        "source": d.source,
        "version": d.version,
        "commit": d.commit,
        "path": d.path,
        "dir": str(base / d.path),
        "problems": [],
    }
    problems: list[str] = res["problems"]
    created = None
    try:
        url = resolve_url(how.from_url, d.path) if how.from_url else d.url
        res["from"] = url
        dest, reused = clone(url, base / d.path, allow_ip=allow_ip_default(how.allow_ip))
        created = None if reused else dest
        _check_locked_state(d, dest, url, how, res)
        selected = select_paths(paths, d.path)
        if not problems and content and selected is not None:
            _fetch_locked(d, dest, selected, how, res)
    except RetrieveError as exc:
        problems.append(str(exc))
    if problems and created is not None and not keep_failed:
        # a clone left at another state could be mistaken for the locked one
        remove_clone(created)
        res["removed"] = True
    return res


def _check_locked_state(d: LockedDataset, dest: Path, url: str, how: Retrieval, res: dict) -> None:
    problems: list[str] = res["problems"]
    try:
        ensure_commit(dest, d.commit, url)
    except RetrieveError:
        problems.append(f"commit {d.commit} is not in {url}: the lock names a state this source does not have")
        return
    if d.tag:
        tagged = tag_commit(dest, d.tag)
        if tagged and tagged != d.commit:
            problems.append(f"tag {d.tag} points at {tagged[:12]} in {url}, the lock says {d.commit[:12]}")
    checkout(dest, d.commit)
    install_subdatasets(dest, d.commit, allow_ip=allow_ip_default(how.allow_ip))
    fl = file_list_digest(walk_files(dest, d.commit), keep=d.file_list is not None)
    problems += compare_file_list(d, fl)
    res.update(files=fl.files, bytes=fl.bytes, file_list_digest=fl.digest)


def _fetch_locked(d: LockedDataset, dest: Path, paths: list[str], how: Retrieval, res: dict) -> None:
    report = fetch(
        dest,
        d.commit,
        paths,
        jobs=how.jobs,
        progress=how.progress,
        label=d.spec,
        allow_ip=allow_ip_default(how.allow_ip),
        prepare=how.prepare_for(d.all_stores),
    )
    res.update(fetched=report.fetched, fetched_bytes=report.fetched_bytes, present=report.present)
    for path, why in report.failed:
        res["problems"].append(f"content of {path} not fetched or not verified: {why}")
    res["content"] = report.line()
