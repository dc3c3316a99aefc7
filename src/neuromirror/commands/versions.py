"""``neuromirror versions SPEC``: the recorded versions of a source."""

from __future__ import annotations

import argparse
import json

from neuromirror.commands.common import (
    add_json,
    human_bytes,
    not_mirrored,
    print_json,
    print_table,
    require_mirror,
    spec_arg,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("versions", help="list the recorded versions of a source")
    p.add_argument("spec", help="e.g. dandi:000027")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = spec_arg(args.spec, allow_version=False)
    mirror = require_mirror(args)
    index = mirror.index
    if index.source(spec.source) is None:
        raise not_mirrored(index, spec.source)
    rows = [
        {
            "version": v["label"],
            "commit": v["commit"],
            "tag": v["tag"],
            "synced_at": v["synced_at"],
            "files": v["files"],
            "bytes": v["bytes"],
            "kind": v["kind"],
            "doi": v["doi"],
            "meta": json.loads(v["meta"]) if v.get("meta") else {},
        }
        for v in index.versions(spec.source)
    ]
    if args.json:
        print_json(rows)
    else:
        print_table(
            [{**r, "commit": r["commit"][:12], "bytes": human_bytes(r["bytes"])} for r in rows],
            ["version", "kind", "commit", "tag", "synced_at", "files", "bytes"],
        )
    return 0
