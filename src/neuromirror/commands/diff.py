"""``neuromirror diff SPEC@V1 SPEC@V2 [--json]``: files added, removed and changed between two versions."""

from __future__ import annotations

import argparse

from neuromirror.commands.common import (
    UserError,
    add_json,
    find_version,
    human_bytes,
    print_json,
    require_mirror,
    spec_arg,
)
from neuromirror.index.rows import VersionRow
from neuromirror.pin.changes import diff_versions


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff",
        help="added, removed and changed files between two versions",
        description="Compare the file lists of two recorded versions (from the index): paths added, removed and "
        "changed (other content), with sizes. The second SPEC may be just @VERSION for the same source.",
    )
    p.add_argument("old", help="e.g. dandi:000027@0.230629.1955")
    p.add_argument("new", help="e.g. dandi:000027@draft, or @draft")
    add_json(p)
    p.set_defaults(func=run)


def _change(f: dict) -> str:
    if f.get("subdataset"):
        return f"subdataset {(f['old_commit'] or '-')[:12]} -> {(f['new_commit'] or '-')[:12]}"
    return f"{human_bytes(f['old_size'])} -> {human_bytes(f['new_size'])}"


def run(args: argparse.Namespace) -> int:
    a = spec_arg(args.old)
    new = args.new
    if ":" not in new:
        new = f"{a.source}@{new.lstrip('@')}"
    b = spec_arg(new)
    if a.is_glob or b.is_glob:
        raise UserError("diff compares two versions of named sources, not patterns")
    mirror = require_mirror(args)
    try:
        row_a = find_version(mirror.index, a)
        row_b = find_version(mirror.index, b)
        d = diff_versions(mirror.index, row_a, row_b)
    finally:
        mirror.close()
    if args.json:
        print_json({"from": _end(a.source, row_a), "to": _end(b.source, row_b), **d})
        return 0
    title = a.source if a.source == b.source else f"{a.source} -> {b.source}"
    _print_diff(title, row_a, row_b, d)
    return 0


def _end(source: str, row: VersionRow) -> dict:
    """One end of the diff in ``--json``: the version, its commit and its counts."""
    return {
        "source": source,
        "version": row.label,
        "commit": row.commit,
        "files": row.files,
        "bytes": row.bytes,
    }


def _print_diff(title: str, row_a: VersionRow, row_b: VersionRow, d: dict) -> None:
    s = d["summary"]
    print(
        f"{title} {row_a.label} ({row_a.commit[:12]}) -> {row_b.label} ({row_b.commit[:12]}): "
        f"{s['added']} added, {s['removed']} removed, {s['changed']} changed"
    )
    rows = (
        [("A", f["path"], human_bytes(f["size"])) for f in d["added"]]
        + [("D", f["path"], human_bytes(f["size"])) for f in d["removed"]]
        + [("M", f["path"], _change(f)) for f in d["changed"]]
    )
    rows.sort(key=lambda r: r[1])
    width = max((len(r[1]) for r in rows), default=0)
    for flag, path, size in rows:
        print(f"{flag}  {path.ljust(width)}  {size}")
    if s["same_content_new_urls"]:
        print(f"({s['same_content_new_urls']} file(s) kept their content but got new URLs)")
