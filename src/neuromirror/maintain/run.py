"""Maintain sources (and the root): each group under its own lock, taken without waiting.

A source being synced or published holds its sync lock (:meth:`neuromirror.dataset.mirror.Datasets.lock`),
so maintenance never repacks a repository git is writing: a busy source is skipped, with the reason
in the report, and the next run (the service's next cycle) does it.  A failure in one repository is
one line in ``errors`` and the others go on; nothing here changes what any ref names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from neuromirror.dataset import skeleton
from neuromirror.dataset.mirror import ROOT_LOCK
from neuromirror.errors import LockBusy
from neuromirror.maintain.git import LOOSE_LIMIT, PACK_LIMIT, SERVED_LOOSE_LIMIT, Outcome, maintain_repo
from neuromirror.maintain.targets import Group, root_group, source_group
from neuromirror.results import Item, Result, Status
from neuromirror.store.record import directory_costs_current
from neuromirror.util import gitutil


@dataclass
class MaintainReport(Result):
    """What ``maintain`` did (``Mirror.maintain``): a row per repository, the sources skipped, the errors.
    Its items: each repository (``notneeded`` when already packed), each skipped source, each error."""

    dry_run: bool = False
    repositories: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: datasets whose directory stores' remote.log lines were brought to today's cost (read before the web)
    store_costs: list[str] = field(default_factory=list)
    #: dataset label -> what was removed or converted to today's skeleton (:mod:`neuromirror.dataset.skeleton`)
    tidied: dict[str, list[str]] = field(default_factory=dict)

    @property
    def packed(self) -> int:
        return sum(1 for r in self.repositories if r["action"] == "packed")

    def items(self) -> Iterable[Item]:
        for r in self.repositories:
            status = Status.NOTNEEDED if r["action"] == "nothing" else Status.OK
            yield Item(status, r["label"], r["action"] + (f" ({r['why']})" if r["why"] else ""))
        for s in self.skipped:
            yield Item(Status.NOTNEEDED, s["source"], f"skipped, {s['why']}")
        for e in self.errors:
            yield Item(Status.ERROR, e.partition(": ")[0], e.partition(": ")[2])

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": not self.errors,
            "dry_run": self.dry_run,
            "thresholds": {"loose": LOOSE_LIMIT, "served_loose": SERVED_LOOSE_LIMIT, "packs": PACK_LIMIT},
            "packed": self.packed,
            "repositories": self.repositories,
            "skipped": self.skipped,
            "errors": self.errors,
            "notes": self.notes,
            "store_costs": self.store_costs,
            "tidied": self.tidied,
        }

    def to_json(self) -> dict[str, Any]:
        """``maintain --json``: :meth:`as_dict`."""
        return self.as_dict()

    def lines(self) -> list[str]:
        """What ``maintain`` prints: what was done to each repository, then the skipped, tidied, notes, errors."""
        out = [_repo_line(r) for r in self.repositories if r["action"] != "nothing"]
        clean = sum(1 for r in self.repositories if r["action"] == "nothing")
        if clean:
            out.append(f"{clean} repositor{'y' if clean == 1 else 'ies'} already packed")
        out += [f"{s['source']}: skipped, {s['why']}" for s in self.skipped]
        verb = "would record" if self.dry_run else "recorded"
        out += [f"{label}: {verb} its directory store read first (cost=150)" for label in self.store_costs]
        out += [_tidied_line(label, done, self.dry_run) for label, done in self.tidied.items()]
        out += [f"note: {n}" for n in self.notes]
        out += [f"error: {e}" for e in self.errors]
        return out


def _repo_line(r: dict[str, Any]) -> str:
    """``LABEL: packed (why): 120 loose, 3 pack(s) -> 0 loose, 1 pack(s); N reflog entries dropped``."""
    b, a = r["before"], r["after"]
    after = f" -> {a['loose']} loose, {a['packs']} pack(s)" if a else ""
    why = f" ({r['why']})" if r["why"] else ""
    logs = f"; {r['reflog_dropped']} reflog entries dropped" if r.get("reflog_dropped") else ""
    return f"{r['label']}: {r['action']}{why}: {b['loose']} loose, {b['packs']} pack(s){after}{logs}"


def _tidied_line(label: str, done: list[str], dry_run: bool) -> str:
    """What a dataset lost to today's skeleton, its removed hooks counted rather than named."""
    hooks = sum(1 for d in done if d.startswith("removed hooks/"))
    said = [d for d in done if not d.startswith("removed hooks/")] + ([f"removed {hooks} hook(s)"] if hooks else [])
    return f"{label}: {'would tidy' if dry_run else 'tidied'}: {', '.join(said)}"


def _row(group: Group, repo: Any, outcome: Outcome) -> dict[str, Any]:
    return {
        "source": group.source,
        "kind": repo.kind,
        "label": repo.label,
        "path": str(repo.git_dir),
        **outcome.as_dict(),
    }


def _store_costs(repo: Any, report: MaintainReport, dry_run: bool) -> None:
    """A dataset written here (not a published copy) records its directory stores at today's cost."""
    if repo.kind not in ("dataset", "subdataset"):
        return
    try:
        if directory_costs_current(repo.git_dir.parent, dry_run=dry_run):
            report.store_costs.append(repo.label)
    except (gitutil.GitError, OSError) as exc:
        report.errors.append(f"{repo.label}: store cost: {exc}")


def _tidy(repo: Any, report: MaintainReport, dry_run: bool) -> None:
    """A dataset written here loses what a mirror's dataset no longer carries (hooks, an old sparse checkout)."""
    if repo.kind not in ("dataset", "subdataset", "root"):
        return
    try:
        done = skeleton.tidy(repo.git_dir.parent, dry_run=dry_run)
    except (gitutil.GitError, OSError) as exc:
        report.errors.append(f"{repo.label}: tidy: {exc}")
        return
    if done:
        report.tidied[repo.label] = done


def maintain_group(
    mirror: Any, find: Any, report: MaintainReport, *, dry_run: bool = False, force: bool = False, name: str = ""
) -> None:
    """``find()`` -> :class:`Group`, called with the group's lock held; each repository maintained."""
    lock = name or ROOT_LOCK
    try:
        with mirror.lock(lock, wait=0):
            group: Group = find()
            report.notes += [f"{group.source or 'root'}: {n}" for n in group.notes]
            for repo in group.repos:
                try:
                    outcome = maintain_repo(repo.git_dir, dry_run=dry_run, force=force)
                except (gitutil.GitError, OSError) as exc:
                    report.errors.append(f"{repo.label}: {exc}")
                    continue
                report.repositories.append(_row(group, repo, outcome))
                _store_costs(repo, report, dry_run)
                _tidy(repo, report, dry_run)
    except LockBusy as exc:
        report.skipped.append({"source": name or "(root superdataset)", "why": f"busy ({exc}); not touched"})


def maintain(
    mirror: Any,
    sources: Iterable[str],
    *,
    to: Iterable[str] = (),
    with_root: bool = False,
    dry_run: bool = False,
    force: bool = False,
    report: Optional[MaintainReport] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> MaintainReport:
    """Maintain ``sources`` (their datasets, subdatasets and copies where ``to`` or the datasets say they
    were published) and, with ``with_root``, the root superdataset; ``progress`` told each source once done."""
    report = report if report is not None else MaintainReport(dry_run=dry_run)
    targets = list(to)
    for sid in sources:
        maintain_group(
            mirror,
            lambda sid=sid: source_group(mirror, sid, targets),
            report,
            dry_run=dry_run,
            force=force,
            name=sid,
        )
        if progress is not None:
            progress(sid)
    if with_root:
        maintain_group(mirror, lambda: root_group(mirror, targets), report, dry_run=dry_run, force=force)
        if progress is not None:
            progress("(root superdataset)")
    return report
