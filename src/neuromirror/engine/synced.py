"""What a sync of several sources gives back (``neuromirror sync``, ``api.Mirror.sync``): a typed record per source
and the batch's :class:`~neuromirror.results.Result`.

:func:`neuromirror.engine.executor.sync_batch` hands back each source's report as the JSON the run records
(``SyncReport.to_json()``, or the four fields of a source that failed before it could report); here each becomes
a :class:`SourceSync`, read field by field, and :meth:`SyncResult.to_json` gives that JSON back unchanged: it is
``sync --json``, byte for byte, which scripts and the bench parse.  A report with a field this module does not
know is refused at once (a new field must be added here, or the command's JSON would silently lose it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterable, Optional

from neuromirror.records import Pending, Refusal, sync_item, sync_summary
from neuromirror.results import Item, Result

#: ``sync``'s exit when every source synced but some refused items (a Zarr whose checksum disagrees, a hostile
#: path): the rest is mirrored, and cron still sees that something upstream needs a look (``neuromirror audit``)
EXIT_REFUSED = 3


class Outcome(str, Enum):
    """How one source's sync ended, as its report and the index's run say it (a ``str``: JSON prints it)."""

    OK = "ok"  # new versions recorded
    UNCHANGED = "unchanged"  # nothing new upstream
    FAILED = "failed"  # see ``error``; the versions committed before the failure are still recorded

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class SyncedVersion:
    """A version a sync recorded: its label, kind, commit and tag, and how its files differ from the state before."""

    label: str
    kind: str
    commit: str
    tag: Optional[str]
    added: int
    removed: int
    changed: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: the fields of a full report, in ``SyncReport.to_json()``'s order (``tasks``, then ``references``: when there)
_FIELDS = (
    "source",
    "dataset",
    "outcome",
    "versions",
    "added",
    "removed",
    "changed",
    "refused",
    "pending",
    "warnings",
    "unreachable",
    "network",
    "error",
    "timings",
)
_OPTIONAL = ("tasks", "references")
#: what a source that failed before it could report says (its lock held elsewhere, an error the run raised)
_BRIEF = ("source", "dataset", "outcome", "error")


def _notes(rows: Iterable[dict[str, Any]], kind: Callable[[str, str], Any]) -> tuple[Any, ...]:
    return tuple(kind(r["path"], r["reason"]) for r in rows)


@dataclass(frozen=True)
class SourceSync:
    """One source's sync: what it recorded, refused, left pending or could not read, and how it ended.

    ``reported`` is False for a source that failed before its sync could report (another process held its lock,
    or the run raised): then only ``error`` says anything, and the JSON is those four fields."""

    source: str
    dataset: str
    outcome: Outcome
    error: Optional[str] = None
    versions: tuple[SyncedVersion, ...] = ()
    added: int = 0
    removed: int = 0
    changed: int = 0
    refused: tuple[Refusal, ...] = ()
    pending: tuple[Pending, ...] = ()
    warnings: tuple[str, ...] = ()
    #: items held at their last state: the archive never answered for them
    unreachable: tuple[Refusal, ...] = ()
    #: per archive endpoint: requests, throttled answers, retries, in-flight limits (network.report.since)
    network: tuple[dict[str, Any], ...] = ()
    #: seconds per phase of the sync (listing+diff, pinning, registration+commit, index, total...)
    timings: dict[str, Any] = field(default_factory=dict)
    #: on a Dask cluster: each task run for this source {task, worker, seconds, outcome}
    tasks: tuple[dict[str, Any], ...] = ()
    #: LINDI references made of the new versions' HDF5 keys (``references: nwb``): made, existing, not_hdf5, failed
    references: Optional[dict[str, Any]] = None
    reported: bool = True

    @classmethod
    def from_report(cls, r: dict[str, Any]) -> SourceSync:
        """The record of one report of :func:`~neuromirror.engine.executor.sync_batch`."""
        unknown = set(r) - set(_FIELDS) - set(_OPTIONAL)
        if unknown:
            raise ValueError(f"a sync report with fields {sorted(unknown)} that SourceSync does not know")
        if set(r) == set(_BRIEF):
            return cls(r["source"], r["dataset"], Outcome(r["outcome"]), r["error"], reported=False)
        return cls(
            source=r["source"],
            dataset=r["dataset"],
            outcome=Outcome(r["outcome"]),
            error=r["error"],
            versions=tuple(SyncedVersion(**v) for v in r["versions"]),
            added=r["added"],
            removed=r["removed"],
            changed=r["changed"],
            refused=_notes(r["refused"], Refusal),
            pending=_notes(r["pending"], Pending),
            warnings=tuple(r["warnings"]),
            unreachable=_notes(r["unreachable"], Refusal),
            network=tuple(r["network"]),
            timings=r["timings"],
            tasks=tuple(r.get("tasks", ())),
            references=r.get("references"),
        )

    def to_json(self) -> dict[str, Any]:
        """The report as ``sync --json`` prints it (and as the index's run records it, less ``references``)."""
        if not self.reported:
            return {"source": self.source, "dataset": self.dataset, "outcome": self.outcome.value, "error": self.error}
        done = {
            "source": self.source,
            "dataset": self.dataset,
            "outcome": self.outcome.value,
            "versions": [v.to_json() for v in self.versions],
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "refused": [{"path": r.path, "reason": r.reason} for r in self.refused],
            "pending": [{"path": p.path, "reason": p.reason} for p in self.pending],
            "warnings": list(self.warnings),
            "unreachable": [{"path": r.path, "reason": r.reason} for r in self.unreachable],
            "network": list(self.network),
            "error": self.error,
            "timings": self.timings,
        }
        if self.tasks:
            done["tasks"] = list(self.tasks)
        if self.references is not None:
            done["references"] = self.references
        return done

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED

    def item(self) -> Item:
        """ok: new versions; notneeded: nothing new; impossible: synced, but items refused; error: failed."""
        return sync_item(self.source, self.outcome.value, self.error, self.refused, self.summary())

    def summary(self) -> str:
        """``2 new version(s) (0.230629.1955, draft): 3 added, 0 removed, 1 changed``, or ``unchanged``."""
        labels = [v.label for v in self.versions]
        return sync_summary(self.outcome.value, labels, self.added, self.removed, self.changed)

    def lines(self) -> list[str]:
        """What the command prints of a source synced (a failure is said on stderr only)."""
        if self.failed:
            return []
        out = [f"{self.source}: {self.summary()}"]
        made = (self.references or {}).get("made")
        if made:
            out.append(f"  references: {len(made)} made (LINDI, one per new NWB/HDF5 key)")
        out += [f"  refused {r.path!r}: {r.reason}" for r in self.refused]
        out += [f"  pending {p.path}: {p.reason}" for p in self.pending]
        pending_paths = [p.path + ":" for p in self.pending]
        out += [f"  warning: {w}" for w in self.warnings if not any(w.startswith(p) for p in pending_paths)]
        return out


@dataclass(frozen=True)
class SyncResult(Result):
    """Every source a sync named, in the order named: one :class:`SourceSync` (and one item) each.

    ``notes``: what the sync says beside its sources (a pattern that matched nothing)."""

    sources: tuple[SourceSync, ...]
    notes: tuple[str, ...] = ()

    @classmethod
    def from_reports(cls, reports: Iterable[dict[str, Any]], notes: Iterable[str] = ()) -> SyncResult:
        return cls(tuple(SourceSync.from_report(r) for r in reports), tuple(notes))

    def items(self) -> list[Item]:
        return [s.item() for s in self.sources]

    def to_json(self) -> Any:
        """``sync --json``: one source's report, or a list of them when the sync named several."""
        reports = [s.to_json() for s in self.sources]
        return reports[0] if len(reports) == 1 else reports

    def lines(self) -> list[str]:
        """What ``sync`` prints on stdout: each source synced, what it refused or left pending; then the totals."""
        out = [line for s in self.sources for line in s.lines()]
        if len(self.sources) > 1:
            count = {o: sum(s.outcome is o for s in self.sources) for o in Outcome}
            out.append(
                f"{len(self.sources)} sources: {count[Outcome.OK]} updated, {count[Outcome.UNCHANGED]} unchanged, "
                f"{count[Outcome.FAILED]} failed"
            )
        return out

    @property
    def refused(self) -> int:
        """Items refused, over every source."""
        return sum(len(s.refused) for s in self.sources)

    def problems(self) -> list[str]:
        """What ``sync`` says on stderr: its notes, each failed source, else the count of items refused."""
        failed = [f"{s.source}: {s.error}" for s in self.sources if s.failed]
        if failed or not self.refused:
            return [*self.notes, *failed]
        return [*self.notes, f"{self.refused} item(s) refused (listed above; neuromirror audit lists them)"]

    @property
    def exit_code(self) -> int:
        """1: a source failed; :data:`EXIT_REFUSED` (3): every source synced, some items refused; else 0."""
        if any(s.failed for s in self.sources):
            return 1
        return EXIT_REFUSED if self.refused else 0

    def with_references(self, made: dict[str, tuple[Optional[dict[str, Any]], list[str]]]) -> SyncResult:
        """This result with each source in ``made`` given its references' JSON (None: none made) and warnings."""

        def given(s: SourceSync) -> SourceSync:
            if s.source not in made:
                return s
            references, warnings = made[s.source]
            return dataclasses.replace(
                s,
                references=s.references if references is None else references,
                warnings=s.warnings + tuple(warnings),
            )

        return dataclasses.replace(self, sources=tuple(given(s) for s in self.sources))
