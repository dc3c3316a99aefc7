"""What a repin found: each key's old pin, its new one and the evidence; the keys it could not find or refused.

Outcomes per pinned key: ``serving`` (a recorded pin still serves: nothing to do), ``repinned`` (a new
pinned URL registered, the dead one retired; a dry run: ``would_repin``), ``differs`` (the same path now
holds other bytes: named, never taken, the old URL kept), ``not_found`` (nowhere the run looked holds the
bytes), ``unverifiable`` (something at the path, but the key names no checksum to match it by).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from neuromirror.results import Item, Result, Status


@dataclass(frozen=True)
class Pin:
    """One key's outcome: where its pin was, where it is now (or why not), and why."""

    key: str
    path: str
    source: str
    version: str
    old_url: str
    new_url: str = ""
    how: str = ""  # moved | content-addressed | asset-record
    evidence: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"key": self.key, "path": self.path, "source": self.source, "version": self.version}
        out.update(old_url=self.old_url, new_url=self.new_url, how=self.how, evidence=self.evidence)
        return out


@dataclass(repr=False)
class RepinReport(Result):
    """A repin's outcome (``Mirror.repin``, ``repin --json``): an ``ok`` item per key repinned, an
    ``impossible`` one per key whose path holds other bytes, an ``error`` one per key not found."""

    dry_run: bool = False
    keys: int = 0  # pinned keys looked at
    serving: int = 0
    unpinned: int = 0  # files with no versioned S3 URL: nothing to repin
    repinned: list[Pin] = field(default_factory=list)
    differs: list[Pin] = field(default_factory=list)
    not_found: list[Pin] = field(default_factory=list)
    unverifiable: list[Pin] = field(default_factory=list)
    retired: int = 0  # dead URLs unregistered
    requests: int = 0  # S3 requests sent (listings, HEADs)
    bytes_read: int = 0  # object bytes read (only where no size, ETag or checksum could tell)
    seconds: float = 0.0
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return not (self.differs or self.not_found or self.unverifiable) and self.error is None

    def items(self) -> list[Item]:
        verb = "would repin" if self.dry_run else "repinned"
        out = [
            Item(Status.OK, p.key, f"{verb} {p.path}: {p.old_url} -> {p.new_url} ({p.evidence})") for p in self.repinned
        ]
        out += [Item(Status.IMPOSSIBLE, p.key, f"{p.path}: {p.evidence}; old URL kept") for p in self.differs]
        out += [Item(Status.ERROR, p.key, f"{p.path}: {p.evidence}") for p in self.not_found + self.unverifiable]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "keys": self.keys,
            "serving": self.serving,
            "unpinned": self.unpinned,
            "repinned": [p.to_json() for p in self.repinned],
            "differs": [p.to_json() for p in self.differs],
            "not_found": [p.to_json() for p in self.not_found],
            "unverifiable": [p.to_json() for p in self.unverifiable],
            "retired": self.retired,
            "requests": self.requests,
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }

    def lines(self) -> list[str]:
        verb = "WOULD REPIN" if self.dry_run else "REPINNED"
        out = []
        for p in self.repinned:
            out += [f"{verb} {p.source} {p.path} ({p.key})", f"  old {p.old_url}", f"  new {p.new_url}"]
            out.append(f"  {p.how}: {p.evidence}")
        for word, pins in (
            ("DIFFERS", self.differs),
            ("NOT FOUND", self.not_found),
            ("UNVERIFIABLE", self.unverifiable),
        ):
            for p in pins:
                out.append(f"{word} {p.source} {p.path} ({p.key}): {p.evidence}; kept {p.old_url}")
        return out

    def summary(self) -> str:
        verb = "would be repinned" if self.dry_run else "repinned"
        return (
            f"{self.keys} pinned key(s): {self.serving} still served, {len(self.repinned)} {verb}, "
            f"{len(self.differs)} holding other bytes, {len(self.not_found)} not found"
            + (f", {len(self.unverifiable)} unverifiable" if self.unverifiable else "")
            + f"; {self.requests} S3 request(s), {self.bytes_read} object byte(s) read, {self.seconds:.1f} s"
        )
