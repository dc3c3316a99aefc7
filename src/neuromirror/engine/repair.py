"""Datasets made by earlier versions: take back mutable URLs registered beside pinned ones.

Earlier versions registered each DANDI Zarr object under the API's download
route too, which redirects to the *current* object: after an in-place rewrite,
``get`` of an older commit downloaded the new bytes, failed verification and
never asked the pinned URL (see :mod:`neuromirror.sources.urlrule`).  Removing such URLs from the
git-annex branch (``git annex unregisterurl``) makes those commits retrievable
again, in the mirror and, once they fetch its git-annex branch, in its clones.

A sync repairs a dataset (and the datasets nested in it: Zarr subdatasets) the
first time it meets it without the mark ``neuromirror.engine.urlrule`` in its git
config, so that an upgraded mirror heals itself; ``neuromirror repair SPEC``
does it on demand.  Datasets made by this version are marked when first met:
their branch has nothing to take back, and the pass costs one branch scan.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from neuromirror.annex.keys import key_from_file
from neuromirror.annex.logs import log_state, web_log_blobs
from neuromirror.annex.unregister import unregister_urls
from neuromirror.sources.urlrule import to_drop
from neuromirror.util import gitutil

log = logging.getLogger("neuromirror.engine.repair")

#: git config (local, not cloned) saying which URL rule the dataset's branch obeys
MARK = "neuromirror.engine.urlrule"  # a key in datasets' git config: kept where the rule moved to sources/
RULE_VERSION = "1"
WEB_LOG = ".log.web"


@dataclass
class RepairReport:
    """What a repair did, per dataset (path relative to the repaired tree's top)."""

    datasets: int = 0
    keys: int = 0
    urls_removed: int = 0
    examples: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "datasets": self.datasets,
            "keys": self.keys,
            "urls_removed": self.urls_removed,
            "examples": self.examples,
            "errors": self.errors,
        }


def url_rule_applied(ds: Path) -> bool:
    """Whether ``ds`` carries the mark that its URLs were repaired under this URL rule.

    Read by every sync: the file, when it plainly carries the mark, spares a git process.
    """
    if gitutil.config_file_value(ds / ".git" / "config", "neuromirror", "urlrule") == RULE_VERSION:
        return True
    return gitutil.out(ds, "config", "--local", "--get", MARK, check=False) == RULE_VERSION


def mark_url_rule_applied(ds: Path) -> None:
    """Write the mark :func:`url_rule_applied` reads (``neuromirror.engine.urlrule`` in its git config)."""
    gitutil.run(ds, "config", "--local", MARK, RULE_VERSION)


def repair_tree(top: Path, *, force: bool = False) -> RepairReport:
    """Repair ``top`` and every dataset nested in it (unmarked ones only, unless ``force``)."""
    report = RepairReport()
    for ds in datasets_under(top):
        if force or not url_rule_applied(ds):
            repair_dataset(ds, report)
    return report


def datasets_under(top: Path) -> Iterator[Path]:
    """``top`` and the git repositories in its work tree (Zarr subdatasets), without entering ``.git``."""
    yield top
    for dirpath, dirnames, _files in os.walk(top):
        if Path(dirpath) != top and ".git" in dirnames:
            yield Path(dirpath)
        dirnames[:] = [d for d in dirnames if d not in (".git", ".datalad")]


def mutable_registrations(ds: Path) -> Iterator[tuple[str, str, bool]]:
    """(key, URL, logged as a special remote's) of every URL the rule would not register.

    Read from the git-annex branch.  A leading ``:`` in the log marks a URL a
    special remote claimed when it was registered (as ``registerurl`` writes it);
    the fast-import writer logs every URL plainly, under the web remote's form.
    """
    logs = web_log_blobs(ds)
    with gitutil.CatFile(ds) as cat:
        for path, data in zip(logs, cat.get_many(logs.values())):
            state = log_state(data)
            live = [u for u, present in state.items() if present]
            claimed = {u[1:] for u in live if u.startswith(":")}
            urls = [u[1:] if u.startswith(":") else u for u in live]
            for url in to_drop(urls):
                yield key_from_file(path.rsplit("/", 1)[-1][: -len(WEB_LOG)]), url, url in claimed


def repair_dataset(ds: Path, report: RepairReport) -> None:
    """Unregister the mutable URLs of ``ds`` that sit beside stable ones, then mark it."""
    pairs = list(mutable_registrations(ds))
    report.datasets += 1
    try:
        unregister_urls(ds, pairs)
    except gitutil.GitError as exc:
        report.errors.append(str(exc))  # "git annex unregisterurl failed in DS: ..."
        return
    if pairs:
        report.keys += len({k for k, _, _ in pairs})
        report.urls_removed += len(pairs)
        report.examples += [u for _, u, _ in pairs[: max(0, 3 - len(report.examples))]]
        log.info("%s: unregistered %d mutable URL(s) beside pinned ones", ds, len(pairs))
    left = [u for _, u, _ in mutable_registrations(ds)]
    if left:
        report.errors.append(f"{ds}: {len(left)} mutable URL(s) still registered, e.g. {left[0]}")
        return
    mark_url_rule_applied(ds)
