"""What ``keep`` did, per version and for the run: counts, why files were skipped or failed, the budget.

Per version: ``files``/``bytes`` (the annexed files the filters select), ``kept`` (copied into the
store by this run), ``already`` (the store had them), ``skipped`` and ``failed`` (each file with
why), ``excluded`` (left out by ``--include``/``--exclude``), ``in_git`` (their bytes are in git)
and ``recorded`` (keys newly recorded as present in the store on a git-annex branch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from neuromirror.keep.gap import GapRun
from neuromirror.keep.prune import PruneRun
from neuromirror.records import FileNote
from neuromirror.util.sizes import human_bytes


@dataclass
class VersionReport:
    source: str
    version: str
    kind: str
    commit: str
    dataset: str
    files: int = 0
    bytes: int = 0
    kept: int = 0
    kept_bytes: int = 0
    already: int = 0
    already_bytes: int = 0
    excluded: int = 0
    in_git: int = 0
    recorded: int = 0
    covered: int = 0  # keep --covered-by: files another backup holds at the pinned size (and ETag): not kept
    covered_bytes: int = 0
    skipped: list[FileNote] = field(default_factory=list)
    failed: list[FileNote] = field(default_factory=list)
    from_mark: bool = False  # taken whole from its mark (keep/marks.py): nothing read per file
    branches: Optional[dict[str, str]] = field(default=None, repr=False)  # whole: the branch heads to mark

    @property
    def label(self) -> str:
        return f"{self.source}@{self.version}"

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "version": self.version,
            "kind": self.kind,
            "commit": self.commit,
            "dataset": self.dataset,
            "files": self.files,
            "bytes": self.bytes,
            "kept": self.kept,
            "kept_bytes": self.kept_bytes,
            "already": self.already,
            "already_bytes": self.already_bytes,
            "skipped": [n.to_json() for n in self.skipped],
            "failed": [n.to_json() for n in self.failed],
            "excluded": self.excluded,
            "in_git": self.in_git,
            "recorded": self.recorded,
            "from_mark": self.from_mark,
            "covered": {"files": self.covered, "bytes": self.covered_bytes},
            "ok": not self.failed,
        }

    def lines(self, limit: int = 10) -> list[str]:
        head = (
            f"{self.label} (commit {self.commit[:12]}): {self.files} file(s), {human_bytes(self.bytes)}: "
            f"{self.kept} kept ({human_bytes(self.kept_bytes)}), {self.already} already in the store"
        )
        if self.excluded:
            head += f", {self.excluded} excluded (by the include/exclude patterns)"
        if self.covered:
            head += f", {self.covered} held by the other backup ({human_bytes(self.covered_bytes)}, not kept)"
        if self.skipped:
            head += f", {len(self.skipped)} skipped"
        if self.failed:
            head += f", {len(self.failed)} FAILED"
        out = [head]
        by_why: dict[str, list[FileNote]] = {}
        for n in self.skipped:
            by_why.setdefault(n.why, []).append(n)
        for why, notes in by_why.items():
            size = sum(n.size or 0 for n in notes)
            out.append(f"  skipped {len(notes)} file(s), {human_bytes(size)}: {why}")
        for n in self.failed[:limit]:
            out.append(f"  FAILED {n.path} ({human_bytes(n.size)}): {n.why}")
        if len(self.failed) > limit:
            out.append(f"  ... and {len(self.failed) - limit} more failed")
        return out


@dataclass
class KeepRun:
    store: str
    kind: str
    uuid: str
    name: str
    versions: list[VersionReport] = field(default_factory=list)
    transferred: int = 0  # keys copied into the store by this run
    transferred_bytes: int = 0
    stale_removed: int = 0  # temp files of killed runs removed
    reread: int = 0  # keys found in the store with no check recorded (a killed keep's), read back
    reread_wrong: int = 0  # of those, the ones whose bytes were wrong or gone: copied again
    budget: Optional[int] = None
    store_bytes_before: Optional[int] = None
    budget_stopped: bool = False
    not_fitting: int = 0  # files (distinct keys) the budget left out
    not_fitting_bytes: int = 0
    error: Optional[str] = None  # the store could not be used at all (down, unreadable): retried next run
    full: bool = False  # the error is a disk that filled as the keep went: what got in before stays
    marked: int = 0  # versions taken whole from their marks (keep/marks.py)
    pruned: Optional[PruneRun] = None  # keep --prune: the store's retention
    references: int = 0  # LINDI references put into the store beside their keys (store/lindi.py)
    gap: Optional[GapRun] = None  # keep --covered-by: the plan and what each pass kept (keep/gap.py)

    @property
    def failed(self) -> int:
        return sum(len(v.failed) for v in self.versions)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.budget_stopped and self.error is None

    def to_json(self) -> dict:
        budget = None
        if self.budget is not None:
            budget = {
                "limit": self.budget,
                "store_bytes_before": self.store_bytes_before,
                "kept_bytes": self.transferred_bytes,
                "stopped": self.budget_stopped,
                "not_fitting": {"files": self.not_fitting, "bytes": self.not_fitting_bytes},
            }
        return {
            "store": {"url": self.store, "kind": self.kind, "uuid": self.uuid, "name": self.name},
            "versions": [v.to_json() for v in self.versions],
            "transferred": {"files": self.transferred, "bytes": self.transferred_bytes},
            "reread": {"files": self.reread, "wrong": self.reread_wrong},
            "budget": budget,
            "marked": {"versions": self.marked},
            "references": self.references,
            "error": self.error,
            "prune": self.pruned.to_json() if self.pruned is not None else None,
            "gap": self.gap.to_json() if self.gap is not None else None,
            "ok": self.ok,
        }

    def summary(self) -> str:
        if self.error is not None and self.error.startswith("not starting"):  # its disk too small: said before
            return f"store {self.store} NOT STARTED: {self.error}"
        if self.error is not None and self.full:
            return f"store {self.store} FULL: {self.error} (what was kept there before stays)"
        if self.error is not None:
            return f"store {self.store} DOWN: {self.error} (nothing kept there; the next keep tries again)"
        return (
            f"kept {self.transferred} file(s), {human_bytes(self.transferred_bytes)} into {self.store} "
            f"({len(self.versions)} version(s))"
        )

    def budget_line(self, option: Optional[str] = None) -> Optional[str]:
        """Why the run stopped short, when the budget stopped it: the budget named as such (the command line
        names it as its ``option``, ``--budget``)."""
        if not self.budget_stopped or self.budget is None:
            return None
        said = f"{option} {self.budget}" if option else f"the budget of {self.budget}"
        return (
            f"keep stopped by {said} bytes ({human_bytes(self.budget)}): the store held "
            f"{human_bytes(self.store_bytes_before)}, this run kept {human_bytes(self.transferred_bytes)}; "
            f"{self.not_fitting} file(s), {human_bytes(self.not_fitting_bytes)} did not fit"
        )
