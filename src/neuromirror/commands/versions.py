"""``neuromirror versions SPEC``: the recorded versions of a source."""

from __future__ import annotations

import argparse

from neuromirror.commands.common import add_json, human_bytes, open_api, print_json, print_table, spec_arg


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
        rows = m.versions(spec, patterns=False).to_json()  # one source's versions (a pattern is no source's name)
    if args.json:
        print_json(rows)
        return 0
    columns = ["version", "read_as", "kind", "commit", "tag", "synced_at", "files", "bytes"]
    table = [{**r, "commit": r["commit"][:12], "bytes": human_bytes(r["bytes"])} for r in rows]
    if any("inside_subdatasets" in r for r in rows):
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
