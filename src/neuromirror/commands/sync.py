"""``neuromirror sync SPEC...``: mirror sources into the root."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from neuromirror.commands.common import UserError, add_ceiling, add_json, print_json, root_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sync",
        help="mirror sources (dandi:ID, aind:NAME, boss:COLL/EXP; globs allowed)",
        description="Mirror each source into its DataLad dataset under the root: the archive's listing compared "
        "with the last recorded state, new and changed files added as annexed URLs (nothing downloaded), a "
        "commit per new state and a tag per published version, and the index updated. Reruns with nothing changed "
        "upstream change nothing.",
    )
    p.add_argument("specs", nargs="*", metavar="SPEC", help="e.g. dandi:000027, 'dandi:*'")
    p.add_argument(
        "--config",
        "-c",
        action="append",
        metavar="FILE",
        help="a mirror definition file (repeat for more): sync its sources with their options (which win "
        "over the command line's); with SPECs, only those, with the options of the entry naming them",
    )
    p.add_argument(
        "--engine",
        default=os.environ.get("NEUROMIRROR_ENGINE", "fast-import"),
        choices=["fast-import", "batch"],
        help="annex writer engine (default fast-import)",
    )
    p.add_argument(
        "-J",
        "--jobs",
        type=int,
        default=int(os.environ.get("NEUROMIRROR_JOBS", "4")),
        help="sources synced at once (default 4)",
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        default=os.environ.get("NEUROMIRROR_DASK") or None,
        help="run each source as a task on this Dask scheduler (env NEUROMIRROR_DASK, e.g. "
        "tcp://10.0.0.5:8786); needs neuromirror[dask] and the root on a shared file system "
        "(docs/scale-out.md)",
    )
    p.add_argument(
        "--store",
        metavar="STORE",
        default=None,
        help="keep content the sync reads anyway in this store (a directory or s3://BUCKET[/PREFIX]; env "
        "NEUROMIRROR_STORE): BOSS chunks, so that every BOSS version outlives upstream edits",
    )
    add_ceiling(p, "-J or --dask")
    p.add_argument(
        "--references",
        action="store_const",
        const="nwb",
        default=None,
        help="make a LINDI reference of each new .nwb/.h5 key the sync records, its fields into the index "
        "(references: nwb in --config; needs neuromirror[references]; docs/reading.md)",
    )
    p.add_argument("--no-wait", action="store_true", help="fail at once if another process is syncing a source")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    add_json(p)
    from neuromirror.api.syncing import add_source_options

    add_source_options(p)
    p.add_argument(
        "-i",
        "--dandi-instance",
        metavar="NAME",
        help="a DANDI instance by name, as the dandi CLI's -i: dandi, dandi-sandbox, linc... (its API "
        "wins over --dandi-api; a dandiset URL or DOI of a known instance implies its API)",
    )
    p.add_argument(
        "--inventory",
        metavar="URL",
        help="the archive bucket's S3 Inventory (s3://BUCKET/<dest-prefix>/<source-bucket>/<config-id>, a date's "
        "manifest.json, or a local copy; docs/inventory.md): DANDI's blobs pinned and Zarrs listed from it, no HEAD "
        "and no ListObjectVersions for what it lists",
    )
    p.add_argument(
        "--inventory-date",
        metavar="D",
        help="the inventory's date to read (YYYY-MM-DD, or its folder YYYY-MM-DDTHH-MMZ; default: the newest)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from neuromirror import api
    from neuromirror.api.syncing import ProgressBars, definitions, source_option_names

    _check(args)
    root, config = definitions(args.config, args.root) if args.config else (root_of(args), None)
    names = source_option_names()
    with api.open(root, args.index, create=True) as mirror:
        result = mirror.sync(
            args.specs,
            config=config,
            engine=args.engine,
            jobs=args.jobs,
            dask=args.dask,
            store=args.store,
            max_rate=args.max_rate,
            max_in_flight=args.max_in_flight,
            references=args.references,
            wait=not args.no_wait,
            dandi_instance=args.dandi_instance,
            options={k: v for k, v in vars(args).items() if k in names},
            progress=None if args.quiet or args.json else ProgressBars(),
            reraise=args.verbose >= 2,
            inventory=args.inventory,
            inventory_date=args.inventory_date,
        )
    if args.json:
        print_json(result.to_json())
    for line in [] if args.json else result.lines():
        print(line)
    for line in result.problems():
        print(f"neuromirror: {line}", file=sys.stderr)
    return result.exit_code


def _check(args: argparse.Namespace) -> None:
    """What the command line says in its own words before anything is asked or written."""
    if not args.specs and not args.config:
        raise UserError("nothing to sync: give SPECs or --config FILE")


def __getattr__(name: str) -> Any:
    """``dandi_options`` (which DANDI API a spec is read from) lives in the API; still importable from here."""
    if name == "dandi_options":
        from neuromirror.api.syncing import dandi_options

        return dandi_options
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
