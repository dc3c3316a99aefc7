"""``neuromirror diff SPEC@V1 SPEC@V2 [--json]``: files added, removed and changed between two versions."""

from __future__ import annotations

import argparse
from typing import Any, Iterator, Optional

from neuromirror.commands.common import (
    UserError,
    add_json,
    find_version,
    human_bytes,
    print_json,
    require_mirror,
    spec_arg,
)
from neuromirror.records import SUBDATASET


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


def _merge(a: Iterator[Any], b: Iterator[Any]) -> Iterator[tuple[Optional[Any], Optional[Any]]]:
    """Walk two path-sorted file lists together (constant memory)."""

    def k(f: Any) -> bytes:
        return f.path.encode("utf-8", "surrogateescape")

    x, y = next(a, None), next(b, None)
    while x is not None or y is not None:
        if y is None or (x is not None and k(x) < k(y)):
            yield x, None
            x = next(a, None)
        elif x is None or k(y) < k(x):
            yield None, y
            y = next(b, None)
        else:
            yield x, y
            x, y = next(a, None), next(b, None)


def _content_id(f: Any) -> str:
    return f.key if f.key else f"{f.checksum_kind}:{f.checksum}"


def diff_versions(index: Any, row_a: dict, row_b: dict) -> dict:
    added: list[dict] = []
    removed: list[dict] = []
    changed: list[dict] = []
    relinked = 0
    # the index streams each list ORDER BY path (SQLite's BINARY collation: UTF-8 byte order, as _merge compares)
    files_a = iter(index.version_files(row_a["id"]))
    files_b = iter(index.version_files(row_b["id"]))
    for old, new in _merge(files_a, files_b):
        if old is None and new is not None:
            added.append({"path": new.path, "size": new.size, "key": new.key})
        elif new is None and old is not None:
            removed.append({"path": old.path, "size": old.size, "key": old.key})
        elif old is None or new is None:  # _merge never yields two Nones
            continue
        elif _content_id(old) != _content_id(new):
            rec = {"path": new.path, "old_size": old.size, "new_size": new.size, "old_key": old.key, "new_key": new.key}
            if SUBDATASET in (old.checksum_kind, new.checksum_kind):
                rec.update(subdataset=True, old_commit=old.checksum, new_commit=new.checksum)
            changed.append(rec)
        elif tuple(old.urls) != tuple(new.urls):
            relinked += 1
    return {
        "added": added,
        "removed": removed,
        "changed": changed,
        "summary": {
            "added": len(added),
            "removed": len(removed),
            "changed": len(changed),
            "same_content_new_urls": relinked,
            "bytes_added": sum(f["size"] or 0 for f in added),
            "bytes_removed": sum(f["size"] or 0 for f in removed),
            "bytes_delta": (row_b.get("bytes") or 0) - (row_a.get("bytes") or 0),
        },
    }


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
    head = {
        "from": {
            "source": a.source,
            "version": row_a["label"],
            "commit": row_a["commit"],
            "files": row_a["files"],
            "bytes": row_a["bytes"],
        },
        "to": {
            "source": b.source,
            "version": row_b["label"],
            "commit": row_b["commit"],
            "files": row_b["files"],
            "bytes": row_b["bytes"],
        },
    }
    if args.json:
        print_json({**head, **d})
        return 0
    s = d["summary"]
    title = a.source if a.source == b.source else f"{a.source} -> {b.source}"
    print(
        f"{title} {row_a['label']} ({row_a['commit'][:12]}) -> {row_b['label']} ({row_b['commit'][:12]}): "
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
    return 0
