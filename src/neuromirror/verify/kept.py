"""``verify --kept``: is every file of a version in the lab's store, with the copies a keep counted?

:func:`check_kept` checks the one store (named, or the directory store the dataset records): each
key recorded on the git-annex branch as there *and* its file there; :func:`check_copies` checks,
for a source kept with copies counted (``keep --copies``, ``copies:``), every file's number of
verified copies outside the archive (:mod:`neuromirror.keep.copies`).  Called by
:func:`neuromirror.verify.version.verify_version`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from neuromirror.annex.keys import parse_key
from neuromirror.index.rows import Version
from neuromirror.store.base import Store, not_there
from neuromirror.verify.report import VerifyReport

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets


def store_uuid(store: Optional[Store]) -> Optional[str]:
    """The store's UUID, without making a directory store where there is none."""
    if store is None:
        return None
    if not_there(store):
        return None
    return store.identity.uuid


def check_kept(report: VerifyReport, store: Optional[Store], keys: dict[str, str], kept_in: set[str]) -> dict[str, str]:
    """``verify --kept``: every key recorded in the store and its file there; the keys that are (for --content)."""
    report.kept_checked = True
    if store is None or store_uuid(store) is None:
        where = f"{store} is not a neuromirror store" if store is not None else "no store named or recorded"
        report.add("store", None, f"{where}: name one (a directory or s3://BUCKET) or set NEUROMIRROR_STORE")
        return {}
    held: dict[str, str] = {}
    for key, path in sorted(keys.items(), key=lambda kv: kv[1]):
        recorded, there = key in kept_in, store.has(key)
        if recorded and there:
            held[key] = path
            continue
        why = (
            "neither recorded on the git-annex branch nor in the store"
            if not (recorded or there)
            else (
                "in the store, but the git-annex branch does not record it"
                if there
                else "recorded, but the store has no file for it"
            )
        )
        report.add("not-kept", path, f"not kept in {store}: {why}", key, size=key_size(key))
    return held


def key_size(key: str) -> Optional[int]:
    """The size a key names, None when it names none (or is no key)."""
    try:
        return parse_key(key)["size"]
    except ValueError:
        return None


def check_copies(report: VerifyReport, mirror: Datasets, source: str, row: Version) -> None:
    """``verify --kept`` of a source keep counted copies for (``--copies``, ``copies:``): every file must
    have the wanted number of verified copies outside the archive (:mod:`neuromirror.keep.copies`)."""
    from neuromirror.index.store_checks import wanted
    from neuromirror.keep.copies import version_copies

    want = wanted(mirror.index, source, 0)
    if not want:
        return  # never kept with copies counted: the one store's check above is the whole check
    if not row.relpath:
        return
    from neuromirror.store.reach import survey

    lost = survey(mirror.index)  # a store not reachable here: its copies are not counted, and it is named
    counted = version_copies(mirror, row.under(mirror.root), want)
    report.notes += [x.line() for x in lost.values()] + [counted.line()]
    named = {m.path for m in report.mismatches if m.kind == "not-kept"}  # said once, as not kept
    for a in counted.at_risk:
        if a.path in named:
            continue
        report.add(
            "copies",
            a.path,
            f"{a.verified} of {want} verified cop{'y' if want == 1 else 'ies'} outside the archive"
            + (f" ({a.recorded} recorded)" if a.recorded != a.verified else ""),
            a.key,
            size=a.size,
        )
    if counted.at_risk_count > len(counted.at_risk):
        report.add(
            "copies", None, f"... and {counted.at_risk_count - len(counted.at_risk)} more file(s) short of copies"
        )
