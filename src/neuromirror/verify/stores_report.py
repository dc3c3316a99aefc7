"""What ``verify --stores`` found (:mod:`.stores`): each bad, missing or unreadable copy, each store's counts,
and each store that was not reachable here — named by URL and name, its recorded copies counted as unverified,
and the run failed for it unless ``--allow-unreachable``: a store nobody can read is no proof of anything."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

from neuromirror.results import Item, Result, Status
from neuromirror.util.dates import iso_z


@dataclass
class Finding:
    store: str  # the store's URL
    uuid: str
    source: str
    path: str
    key: str
    problem: str  # bad (wrong bytes) | missing | unreadable
    detail: str
    repaired: bool = False
    repaired_from: str = ""
    repair_error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "uuid": self.uuid,
            "source": self.source,
            "path": self.path,
            "key": self.key,
            "problem": self.problem,
            "detail": self.detail,
            "repaired": self.repaired,
            "repaired_from": self.repaired_from or None,
            "repair_error": self.repair_error or None,
        }

    def line(self) -> str:
        what = {"bad": "BAD COPY", "missing": "MISSING COPY", "unreadable": "UNREADABLE COPY"}[self.problem]
        head = f"{what} in {self.store}: {self.source} {self.path} ({self.key}): {self.detail}"
        if self.repaired:
            return f"{head}; removed from the record and re-kept from {self.repaired_from}"
        if self.problem == "unreadable":
            return f"{head}; left as recorded"
        return f"{head}; removed from the record; NOT re-kept: {self.repair_error or 'no copy to take it from'}"


@dataclass
class Unreached:
    """A store the branches record that is not reachable here: its recorded copies were not checked."""

    uuid: str
    url: str
    name: str
    why: str
    since: float
    copies: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "url": self.url or None,
            "name": self.name,
            "why": self.why,
            "since": iso_z(self.since),
            "copies": self.copies,
        }

    def line(self) -> str:
        return (
            f"store {self.name} at {self.url or '(no place recorded)'}: NOT REACHABLE since {iso_z(self.since)} "
            f"({self.why}): its {self.copies} recorded cop(ies) were not checked"
        )


@dataclass
class StoresCheck(Result):
    """``verify --stores`` (``Datasets.verify_stores``): an ``error`` item per bad, missing or unreadable copy
    (re-kept or not) and per store not reachable (``notneeded`` with ``allow_unreachable``), one ``ok`` item
    per store re-read when none is."""

    checked: int = 0
    good: int = 0
    findings: list[Finding] = field(default_factory=list)
    per_store: dict[str, dict[str, Any]] = field(default_factory=dict)  # uuid -> {url, copies, checked, bad, missing}
    unreached: dict[str, Unreached] = field(default_factory=dict)  # stores a branch records not reachable here
    allow_unreachable: bool = False
    started: float = field(default_factory=time.time)
    tasks: Optional[list[dict[str, Any]]] = None  # --dask: each task the cluster ran ({task, worker, seconds})

    @property
    def unverified(self) -> int:
        """Copies recorded in stores not reachable here: not checked, not counted good."""
        return sum(u.copies for u in self.unreached.values())

    @property
    def ok(self) -> bool:
        return not self.findings and (self.allow_unreachable or not self.unreached)

    def __repr__(self) -> str:
        return (
            f"<StoresCheck {self.checked} cop(ies) re-read, {len(self.findings)} bad or missing, "
            f"{len(self.unreached)} store(s) not reachable>"
        )

    def items(self) -> list[Item]:
        bad = [Item(Status.ERROR, f"{f.key} in {f.store}", f.line()) for f in self.findings]
        lost = Status.NOTNEEDED if self.allow_unreachable else Status.ERROR  # allowed: not a failure
        bad += [Item(lost, u.url or u.uuid, u.line()) for u in self.unreached.values()]
        return bad or [Item(Status.OK, s["url"], f"{s['checked']} cop(ies) re-read") for s in self.per_store.values()]

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "good": self.good,
            "unverified": self.unverified,
            "bad": [f.to_json() for f in self.findings if f.problem == "bad"],
            "missing": [f.to_json() for f in self.findings if f.problem == "missing"],
            "unreadable": [f.to_json() for f in self.findings if f.problem == "unreadable"],
            "repaired": sum(f.repaired for f in self.findings),
            "stores": self.per_store,
            "unreached": [u.to_json() for u in self.unreached.values()],
            "at": iso_z(self.started),
            "ok": self.ok,
            **({} if self.tasks is None else {"tasks": self.tasks}),
        }

    def lines(self) -> list[str]:
        out = [f.line() for f in self.findings]
        for s in self.per_store.values():
            out.append(
                f"{s['url']}: {s['checked']} of {s['copies']} recorded cop(ies) re-read, {s['bad']} bad, "
                f"{s['missing']} missing"
            )
        out += [u.line() for u in self.unreached.values()]
        repaired = sum(f.repaired for f in self.findings)
        out.append(
            f"verified {self.checked} stored cop(ies): {self.good} good, {len(self.findings)} bad or missing"
            + (f" ({repaired} re-kept)" if self.findings else "")
            + (
                f", {self.unverified} unverified in {len(self.unreached)} store(s) not reachable"
                + (" (allowed)" if self.allow_unreachable else "")
                if self.unreached
                else ""
            )
        )
        return out
