"""What ``Mirror.publish`` and ``Mirror.reindex`` return: the publish and index modules' reports as
:class:`~neuromirror.results.Result` s, their JSON the commands' ``--json`` and their lines what the commands print.

``maintain`` needs none here: :class:`neuromirror.maintain.run.MaintainReport` is a result itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Union

from neuromirror.results import Item, Result, Status

if TYPE_CHECKING:
    from neuromirror.index.retention import Tidied
    from neuromirror.publish.github.publish import GitHubReport
    from neuromirror.publish.ria.publish import RiaReport
    from neuromirror.publish.sibling import SiblingsReport


def _error_item(error: str) -> Item:
    """``SOURCE: why`` (as the publish reports word their errors) as an error item naming the source."""
    what, _, why = error.partition(": ")
    return Item(Status.ERROR, what, why)


@dataclass
class Published(Result):
    """``publish``: each dataset pushed (``.report``: the siblings' or the RIA store's own report), what was held
    back, the errors.  Items: each dataset (``ok``), each held back (``notneeded``), each error."""

    report: Union[SiblingsReport, RiaReport, GitHubReport]

    @property
    def ria(self) -> bool:
        return hasattr(self.report, "store")

    @property
    def errors(self) -> list[str]:
        return self.report.errors

    def items(self) -> Iterable[Item]:
        for p in self.report.published:
            yield Item(Status.OK, p.source, p.url)
        for h in getattr(self.report, "held_back", []):
            yield Item(Status.NOTNEEDED, h.source, f"held back, {h.why}")
        yield from (_error_item(e) for e in self.report.errors)

    def to_json(self) -> dict[str, Any]:
        """``publish --json``: the RIA store's or GitHub's report, or the siblings pushed and the errors."""
        if hasattr(self.report, "as_dict"):
            ria: dict[str, Any] = self.report.as_dict()
            return ria
        published = [dict(r.__dict__) for r in self.report.published]
        return {"ok": not self.report.errors, "published": published, "errors": self.report.errors}

    def lines(self) -> list[str]:
        """A line per dataset pushed (``progress`` was called with each as it was done), then what was held back."""
        out = [p.line() for p in self.report.published]
        out += [h.line() for h in getattr(self.report, "held_back", [])]
        return out + [
            f"{h.source}: kept content held back, {h.why}" for h in getattr(self.report, "content_held_back", [])
        ]

    def warnings(self, *, for_json: bool = False) -> list[str]:
        """What goes to stderr: the root's datasets not published (clones of the root cannot get those), the
        RIA store's notes (not beside ``--json``, whose JSON holds them), then each failure."""
        out = []
        unpublished = getattr(self.report, "unpublished", [])
        if unpublished:
            out.append(
                f"note: the root names {len(unpublished)} dataset(s) not published here "
                f"(e.g. {unpublished[0]}); clones of the root cannot get those"
            )
        if not for_json:
            out += [f"note: {n}" for n in getattr(self.report, "notes", [])]
        return out + [f"publish failed: {e}" for e in self.report.errors]


@dataclass
class Reindexed(Result):
    """``reindex``: per source rebuilt from its dataset, the versions it has now (``.counts``)."""

    counts: dict[str, int] = field(default_factory=dict)
    index_path: Path = Path()
    #: where a damaged index was moved before the rebuild (None: it was whole, or there was none)
    set_aside: Optional[Path] = None

    def items(self) -> Iterable[Item]:
        return [Item(Status.OK, source, f"{n} versions") for source, n in self.counts.items()]

    def to_json(self) -> dict[str, int]:
        return dict(self.counts)

    def lines(self) -> list[str]:
        out = [f"the damaged index was moved aside to {self.set_aside}"] if self.set_aside else []
        out += [f"{source}: {n} versions" for source, n in self.counts.items()]
        return out + [f"reindexed {len(self.counts)} sources into {self.index_path}"]


@dataclass
class Pruned(Result):
    """``reindex --prune``: the runs past the retention policy removed, the file compacted, its WAL checkpointed."""

    done: Tidied
    index_path: Path

    def items(self) -> Iterable[Item]:
        return [Item(Status.OK if self.done.runs_removed else Status.NOTNEEDED, str(self.index_path), self.lines()[0])]

    def to_json(self) -> dict[str, Any]:
        return self.done.to_json()

    def lines(self) -> list[str]:
        d = self.done
        vacuumed = " (vacuumed)" if d.vacuumed else ""
        wal = "checkpointed" if d.checkpointed else "busy, left"
        return [
            f"removed {d.runs_removed} runs; {d.pages_freed} pages given back{vacuumed}; WAL {wal} ({self.index_path})"
        ]
