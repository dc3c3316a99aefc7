"""What a restore (or a drill) did: objects per outcome, bytes, rate, bad copies found, what failed and why.

Outcomes per object: ``written`` (absent, now written), ``same`` (already held the right bytes: left
alone), ``differs`` (held other bytes: left alone, exit 1 — unless ``--force`` wrote over it:
``overwritten``), ``failed`` (no good copy in any store, a refused key, a write error), ``skipped``
(a file with no archive key the mirror knows).  A dry run writes nothing and counts ``would_write``;
with ``--json`` it names each object it would write (:func:`write_entry`), streamed (:class:`StreamedJson`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional, TextIO

from neuromirror.records import FileNote
from neuromirror.restore.copies import BadCopy
from neuromirror.restore.objects import ArchiveObject
from neuromirror.results import Item, Result, Status
from neuromirror.util.sizes import human_bytes


@dataclass(repr=False)
class RestoreReport(Result):
    """What a restore or a drill did (``Mirror.restore``, ``restore --json``): an ``impossible`` item per object
    holding other bytes left alone, an ``error`` item per object not restored (and the run's error), a
    ``notneeded`` one per file skipped, and one ``ok`` item for the target when nothing failed."""

    target: str
    dry_run: bool = False
    force: bool = False
    drill: bool = False
    versions: list[dict[str, Any]] = field(default_factory=list)
    tasks: Optional[list[dict[str, Any]]] = None  # restore --dask: each task the cluster ran
    objects: int = 0
    bytes: int = 0  # the selected objects' bytes
    written: int = 0
    written_bytes: int = 0
    would_write: int = 0
    would_write_bytes: int = 0
    same: int = 0
    overwritten: int = 0
    differs: list[FileNote] = field(default_factory=list)
    failed: list[FileNote] = field(default_factory=list)
    skipped: list[FileNote] = field(default_factory=list)
    displaced: list[FileNote] = field(default_factory=list)  # an archive key two named versions disagree on
    bad_copies: list[BadCopy] = field(default_factory=list)
    recorded_urls: int = 0
    retired_urls: int = 0  # dead URLs of versions the restored objects replaced, unregistered
    thaw_packs: int = 0  # a dry run: packs in a cold storage class the restore would thaw first
    thaw_bytes: int = 0
    seconds: float = 0.0
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return not self.failed and not self.differs and self.error is None

    def items(self) -> list[Item]:
        out = [Item(Status.IMPOSSIBLE, n.archive_key or n.path, n.why) for n in self.differs]
        out += [Item(Status.ERROR, n.archive_key or n.path, n.why) for n in self.failed]
        out += [Item(Status.ERROR, self.target, self.error)] if self.error is not None else []
        out += [Item(Status.NOTNEEDED, n.path, n.why) for n in self.skipped]
        return out + ([Item(Status.OK, self.target, self.summary())] if self.ok else [])

    def __repr__(self) -> str:
        return f"<RestoreReport {self.target} {self.objects} object(s) {'ok' if self.ok else 'FAILED'}>"

    @property
    def rate(self) -> float:
        """Bytes written (or read and checked, in a dry run) per second."""
        return self.written_bytes / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            **({} if self.tasks is None else {"tasks": self.tasks}),
            "target": self.target,
            "dry_run": self.dry_run,
            "force": self.force,
            "drill": self.drill,
            "versions": self.versions,
            "objects": self.objects,
            "bytes": self.bytes,
            "written": {"objects": self.written, "bytes": self.written_bytes},
            "would_write": {"objects": self.would_write, "bytes": self.would_write_bytes},
            "same": self.same,
            "overwritten": self.overwritten,
            "differs": [n.to_json() for n in self.differs],
            "failed": [n.to_json() for n in self.failed],
            "skipped": [n.to_json() for n in self.skipped],
            "displaced": [n.to_json() for n in self.displaced],
            "bad_copies": [b.to_json() for b in self.bad_copies],
            "mismatches": len(self.bad_copies),
            "recorded_urls": self.recorded_urls,
            "retired_urls": self.retired_urls,
            "thaw": {"packs": self.thaw_packs, "bytes": self.thaw_bytes},
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "error": self.error,
            "ok": self.ok,
        }

    def lines(self) -> list[str]:
        out = []
        for n in self.differs:
            out.append(f"DIFFERS {n.archive_key} ({n.path}): {n.why}")
        out += [f"FAILED  {n.archive_key or n.path}: {n.why}" for n in self.failed]
        out += [f"SKIPPED {n.path}: {n.why}" for n in self.skipped]
        out += [f"BAD COPY {b.key} in {b.store}: {b.why} (restored from another store)" for b in self.bad_copies]
        return out

    def summary(self) -> str:
        head = "drill" if self.drill else ("restore (dry run)" if self.dry_run else "restore")
        if self.dry_run:
            did = f"{self.would_write} to write ({human_bytes(self.would_write_bytes)})"
        else:
            did = f"{self.written} written ({human_bytes(self.written_bytes)}, {human_bytes(int(self.rate))}/s)"
        parts = [
            f"{head} into {self.target}: {self.objects} objects ({human_bytes(self.bytes)})",
            did,
            f"{self.same} already right",
        ]
        if self.overwritten:
            parts.append(f"{self.overwritten} overwritten")
        if self.differs:
            parts.append(f"{len(self.differs)} holding other bytes left alone")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.bad_copies:
            parts.append(f"{len(self.bad_copies)} bad store copies found")
        if self.thaw_packs:
            parts.append(f"{self.thaw_packs} cold pack(s) to thaw first ({human_bytes(self.thaw_bytes)})")
        return ", ".join(parts)


@dataclass(repr=False)
class DrillRun(Result):
    """A drill (``Mirror.drill``, ``restore --drill``): its restore report and verdict (``result``: ``ok``,
    ``mismatch``: a bad store copy found, ``failed``: an object not restored; ``reason``: why not ok).  Its
    items are the report's, a bad copy an ``error`` too; ``to_json()`` is ``restore --drill --json``."""

    report: RestoreReport
    result: str
    reason: Optional[str] = None

    def items(self) -> list[Item]:
        bad = [Item(Status.ERROR, f"{b.key} in {b.store}", b.why) for b in self.report.bad_copies]
        return self.report.items() + bad

    def to_json(self) -> dict[str, Any]:
        return {**self.report.to_json(), "result": self.result, "reason": self.reason}

    def summary(self) -> dict[str, Any]:
        """The drill as a sync run's report holds it (the service's ``drill:``): the report's counts, less its
        per-version and per-file lists, with ``result`` and ``reason``."""
        brief = {k: v for k, v in self.report.to_json().items() if k not in ("versions", "skipped", "displaced")}
        return {**brief, "result": self.result, "reason": self.reason}

    def lines(self) -> list[str]:
        """What ``restore --drill`` prints: why it is not ok first, then the objects and the summary."""
        out = [f"drill {self.result}: {self.reason}"] if self.reason else []
        if self.report.error is None:
            out += self.report.lines() + [self.report.summary() + f"; result: {self.result}"]
        return out

    def __repr__(self) -> str:
        return f"<DrillRun {self.report.target} {self.report.objects} object(s) {self.result}>"


def write_entry(o: ArchiveObject, target: str, store: str, overwrite: bool) -> dict[str, Any]:
    """One object a dry run would write: its archive key, where it would go (under ``target``'s URL:
    ``s3://BUCKET/[PREFIX]`` or a directory), the file it is in the version, and where its bytes would
    come from (``store``: the URL of the store it would be read from; a file kept in git: its blob)."""
    return {
        "archive_key": o.archive_key,
        "to": f"{target.rstrip('/')}/{o.archive_key}",
        "path": o.path,
        "size": o.size,
        "key": o.key,
        "version": o.label,
        "from": "git" if o.git else "store",
        "store": None if o.git else store,
        "git": o.git or None,
        "overwrite": overwrite,
    }


class StreamedJson:
    """A dry run's ``--json``: one JSON document written as the run goes, never held whole.

    ``{"writes": [`` then each object it would write (:func:`write_entry`) on a line of its own as it is
    decided, then the report's own fields (:meth:`RestoreReport.to_json`) closing the document: a reader
    of the whole document (``json.load``) gets the same fields as before plus ``writes``; a reader of
    lines gets one object per line between the first and the closing ``],``.  Called with each entry."""

    def __init__(self, out: TextIO):
        self._out = out
        self.n = 0

    def __call__(self, entry: dict[str, Any]) -> None:
        self._out.write(('{\n  "writes": [' if self.n == 0 else ",") + "\n    " + json.dumps(entry, default=str))
        self.n += 1

    def close(self, fields: dict[str, Any]) -> None:
        """The document's end: ``fields`` after the list (a dict of at least one field)."""
        rest = json.dumps(fields, indent=2, default=str)
        self._out.write(('{\n  "writes": [' if self.n == 0 else "\n  ") + "]," + rest[1:] + "\n")
        self._out.flush()
