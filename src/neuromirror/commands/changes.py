"""``neuromirror changes --since DATE [SPEC...] [--json]``: assets added, removed, changed since a date.

The operator's report (DANDI's NIH reporting asks for it, dandi-archive #877), read from the index
alone: per source, the state the mirror recorded last at or before DATE (its newest draft, snapshot or
published version then, by the archive's date of that state: a mirror made after a publish knows the
draft of then by its published version) against the newest state recorded now; a source with no state
recorded at or before DATE has every asset added.  A Zarr (a subdataset) counts as one asset, changed when
its commit did.  Each source's comparison is ``diff``'s (:func:`neuromirror.pin.changes.diff_versions`; the report is ``neuromirror.api``'s ``Mirror.changes``).
"""

from __future__ import annotations

import argparse

from neuromirror.commands.common import add_json, open_api, print_json, spec_arg


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


def run(args: argparse.Namespace) -> int:
    from neuromirror import api

    since = api.moment(args.since)
    specs = [spec_arg(s, allow_version=False) for s in args.specs]  # a bad SPEC said before the mirror is looked for
    with open_api(args) as m:
        found = m.changes(since, specs)
    if args.json:
        print_json(found.to_json())
    else:
        print("\n".join(found.lines()))
    return 0
