"""``neuromirror versions SPEC``: the recorded versions of a source."""

from __future__ import annotations

import argparse
import json

from neuromirror.commands.common import (
    add_json,
    human_bytes,
    not_mirrored,
    open_api,
    print_json,
    print_table,
    spec_arg,
)
from neuromirror.index.nested import nested_totals
from neuromirror.index.rows import read_as


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "versions",
        help="list the recorded versions of a source",
        description="One row per recorded version. A label synced in more than one state (a draft that changed "
        "upstream) has a row per state: READ_AS names how each is read (the label for its latest state, the "
        "short commit for an earlier one: SPEC@COMMIT, /dav/.../COMMIT/).",
    )
    p.add_argument("spec", help="e.g. dandi:000027")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = spec_arg(args.spec, allow_version=False)
    with open_api(args) as m:
        if spec.is_glob:  # one source's versions (a pattern is no source's name)
            raise not_mirrored(m.index, spec.source)
        versions = [v.row for v in m.versions(spec)]
        inside = nested_totals(m.index, [v.id for v in versions])
    names = read_as(versions)
    rows = [
        {
            "version": v.label,
            "read_as": names[v.id],
            "commit": v.commit,
            "tag": v.tag,
            "synced_at": v.synced_at,
            "files": v.files,
            "bytes": v.bytes,
            "kind": v.kind,
            "doi": v.doi,
            "meta": json.loads(v.meta) if v.meta else {},
            # files and bytes above are the dataset's own tree (a subdataset counts once);
            # this is what its subdatasets (Zarr assets, AIND Zarr stores) hold
            **({"inside_subdatasets": inside[v.id].to_json()} if v.id in inside else {}),
        }
        for v in versions
    ]
    if args.json:
        print_json(rows)
        return 0
    columns = ["version", "read_as", "kind", "commit", "tag", "synced_at", "files", "bytes"]
    table = [{**r, "commit": r["commit"][:12], "bytes": human_bytes(r["bytes"])} for r in rows]
    if inside:
        columns.append("in_subdatasets")
        for r in table:
            n = r.pop("inside_subdatasets", None)
            r["in_subdatasets"] = _inside(n) if n else "-"
    print_table(table, columns)
    return 0


def _inside(n: dict) -> str:
    """``2: 14 files, 1.4 KiB``; subdatasets whose size the index has not recorded are said apart."""
    if n["unknown"] == n["subdatasets"]:
        return f"{n['subdatasets']}: size not recorded"
    text = f"{n['subdatasets']}: {n['files']} files, {human_bytes(n['bytes'])}"
    return text + (f" (+{n['unknown']} not recorded)" if n["unknown"] else "")
