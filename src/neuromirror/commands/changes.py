"""``neuromirror changes --since DATE [SPEC...] [--json]``: assets added, removed, changed since a date.

The operator's report (DANDI's NIH reporting asks for it, dandi-archive #877), read from the index
alone: per source, the state the mirror recorded last at or before DATE (its newest draft, snapshot or
published version then, by the archive's date of that state: a mirror made after a publish knows the
draft of then by its published version) against the newest state recorded now; a source with no state
recorded at or before DATE has every asset added.  A Zarr (a subdataset) counts as one asset, changed when
its commit did.  Each source's comparison is ``diff``'s (:func:`neuromirror.commands.diff.diff_versions`).
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any, Optional

from neuromirror.commands.common import UserError, add_json, human_bytes, print_json, require_mirror, spec_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "changes",
        help="assets added, removed and changed per source since a date (from the index)",
        description="For each mirrored source (or those SPECs name), the assets added, removed and changed "
        "between the state recorded at or before DATE and the newest state recorded, from the index alone.",
    )
    p.add_argument("--since", required=True, metavar="DATE", help="YYYY-MM-DD or an ISO 8601 time (UTC if no zone)")
    p.add_argument("specs", nargs="*", metavar="SPEC", help="e.g. dandi:000027 or 'dandi:*' (default: every source)")
    add_json(p)
    p.set_defaults(func=run)


def parse_since(text: str) -> datetime:
    from neuromirror.util.dates import parse_iso

    when = parse_iso(text.strip())
    if when is None:
        try:
            when = datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            raise UserError(f"--since {text}: not a date (give YYYY-MM-DD or an ISO 8601 time)") from None
    return when


def _when(row: dict) -> Optional[datetime]:
    """When the archive was in the state a version row records (its date; else its modified time; else synced)."""
    from neuromirror.util.dates import parse_iso

    for field in ("date", "remote_modified", "synced_at"):
        got = parse_iso(row.get(field))
        if got is not None:
            return got
    return None


def _states(index: Any, source: str) -> list[dict]:
    """The rows that are the source's successive states, oldest first: drafts/snapshots and published
    versions alike (a published version is the archive's state at its date, and on a mirror made after
    a publish the only record of what the draft held then), by the archive's date of each."""
    rows = index.versions(source)
    return sorted(rows, key=lambda r: (_when(r) or datetime.max.replace(tzinfo=timezone.utc), r["id"]))


def _head(rows: list[dict]) -> dict:
    """The state recorded now: the last draft/snapshot row, else the last published one (as ``status``)."""
    drafts = [r for r in rows if r["kind"] != "published"]
    return max(drafts or rows, key=lambda r: r["id"])


def _end(row: Optional[dict]) -> Optional[dict]:
    if row is None:
        return None
    when = _when(row)
    return {"version": row["label"], "commit": row["commit"], "date": when.isoformat() if when else None}


def source_changes(index: Any, source: str, since: datetime) -> Optional[dict]:
    """The source's changes since ``since``; None when it has no recorded state."""
    from neuromirror.commands.diff import diff_versions

    states = _states(index, source)
    if not states:
        return None
    before = [r for r in states if (_when(r) or since) <= since]
    old, new = (before[-1] if before else None), _head(states)
    if (_when(new) or since) <= since:  # nothing recorded after DATE (a publish of then is no change since)
        old = new
    if old is not None and old["id"] == new["id"]:
        d: dict[str, Any] = {"added": [], "removed": [], "changed": []}
    elif old is None:
        d = diff_versions(index, {"id": -1, "bytes": 0}, new)
    else:
        d = diff_versions(index, old, new)
    return {
        "source": source,
        "from": _end(old),
        "to": _end(new),
        "added": d["added"],
        "removed": d["removed"],
        "changed": d["changed"],
        "summary": {k: len(d[k]) for k in ("added", "removed", "changed")},
    }


def run(args: argparse.Namespace) -> int:
    from neuromirror.index.lookup import sources_matching

    since = parse_since(args.since)
    specs = [spec_arg(s, allow_version=False) for s in args.specs]
    mirror = require_mirror(args)
    try:
        sources = sources_matching(mirror.index, specs) if specs else [s["id"] for s in mirror.index.sources()]
        found = [c for c in (source_changes(mirror.index, s, since) for s in sources) if c is not None]
    finally:
        mirror.close()
    total = {k: sum(c["summary"][k] for c in found) for k in ("added", "removed", "changed")}
    if args.json:
        print_json({"since": since.isoformat(), "sources": found, "summary": {"sources": len(found), **total}})
        return 0
    for c in found:
        s = c["summary"]
        if not any(s.values()):
            continue
        frm = c["from"]["version"] + " " + (c["from"]["date"] or "") if c["from"] else "(not recorded then)"
        print(
            f"{c['source']}: {frm} -> {c['to']['version']} {c['to']['date'] or ''}: "
            f"{s['added']} added, {s['removed']} removed, {s['changed']} changed"
        )
        for f in c["added"]:
            print(f"  A  {f['path']}  {human_bytes(f['size'])}")
        for f in c["removed"]:
            print(f"  D  {f['path']}  {human_bytes(f['size'])}")
        for f in c["changed"]:
            print(f"  M  {f['path']}")
    print(
        f"since {since.isoformat()}: {len(found)} source(s), {total['added']} added, {total['removed']} removed, "
        f"{total['changed']} changed"
    )
    return 0
