"""``neuromirror search``: which mirrored datasets hold a file or an asset, from the index alone.

Two kinds of questions, one command:

* files — ``--sha256``, ``--md5``, ``--key``, ``--path GLOB``: every file state
  recorded in the index that matches, across all sources (DANDI blobs carry their
  sha256, files in git the sha256 of their bytes, AIND objects an MD5 from a
  single-part ETag or a sha256 when hashed).  By default each file state is shown
  with the newest version that holds it; ``--all-versions`` lists every version.
* assets/versions — ``--subject``, ``--modality``, ``--date-from/--date-to``,
  ``--project``, ``--data-level``, ``--derived-from``: the fields a source recorded
  in ``versions.meta`` (AIND's data_description.json), for each source's latest
  version (or all versions).  Combined with file filters they narrow the files.

* NWB files — ``--nwb-field FIELD=VALUE`` (``location=CA1``, ``species='Mus musculus'``, ``subject_id=...``):
  the session's, subject's and electrodes' fields read from each file's LINDI reference when it was made
  (``sync --references``; table ``nwb_fields``), so a search across every mirrored NWB file opens none.

``--source GLOB`` (``aind:ecephys_*``, ``dandi:*`` or just ``aind``) narrows all three.
Exit status 0 when something matched, 1 when nothing did (like grep).
"""

from __future__ import annotations

import argparse
import sys

from neuromirror import api
from neuromirror.commands.common import add_json, open_api, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="find mirrored files (by sha256, md5, key, path) or assets (by subject, modality, date) in the index",
        description="Search the index. File filters: --sha256 --md5 --key --path. Asset filters (AIND metadata): "
        "--subject --modality --date-from --date-to --project --data-level --derived-from. "
        "Exit 1 when nothing matches.",
    )
    f = p.add_argument_group("file filters")
    f.add_argument("--sha256", metavar="HEX", help="content sha256 (DANDI blobs, hashed AIND objects, files in git)")
    f.add_argument("--md5", metavar="HEX", help="content md5 (AIND objects with a single-part ETag)")
    f.add_argument("--key", help="exact git-annex key")
    f.add_argument("--path", metavar="GLOB", help="path in the dataset, glob ('*' also matches '/'), e.g. '*.nwb'")
    a = p.add_argument_group("asset filters (version metadata, e.g. AIND data_description.json)")
    a.add_argument("--subject", help="subject id")
    a.add_argument("--modality", help="modality abbreviation, e.g. ecephys, SPIM (case-insensitive)")
    a.add_argument(
        "--date-from", metavar="DATE", help="acquisition (else creation) date >= DATE (YYYY, YYYY-MM or YYYY-MM-DD)"
    )
    a.add_argument("--date-to", metavar="DATE", help="acquisition (else creation) date <= DATE (inclusive, same forms)")
    a.add_argument("--project", metavar="GLOB", help="project name (glob, case-insensitive)")
    a.add_argument("--data-level", help="raw or derived")
    a.add_argument("--derived-from", metavar="ASSET", help="derived assets of ASSET (direct parent or raw asset)")
    n = p.add_argument_group("NWB fields (read from the files' LINDI references: sync --references)")
    n.add_argument(
        "--nwb-field",
        metavar="FIELD=VALUE",
        action="append",
        help="NWB files whose FIELD has VALUE (case-insensitive; repeat: all must hold): session_description, "
        "identifier, session_id, subject_id, species, sex, age, location (an electrode's)",
    )
    p.add_argument("--source", metavar="GLOB", help="source id glob: aind:ecephys_*, dandi:000027, or an archive name")
    p.add_argument("--all-versions", action="store_true", help="every version that matches, not only the newest")
    p.add_argument("--limit", type=int, default=None, help="at most N results")
    add_json(p)
    p.set_defaults(func=run)


#: the search's keyword arguments whose names the API's errors begin with, as the flags a user typed
_FLAGS = ("sha256", "md5", "date_from", "date_to")


def run(args: argparse.Namespace) -> int:
    asked = {k: getattr(args, k) for k in ("sha256", "md5", "key", "path", "subject", "modality", "project")}
    more = {k: getattr(args, k) for k in ("date_from", "date_to", "data_level", "derived_from", "source", "limit")}
    with open_api(args) as m:
        try:
            found = m.search(**asked, **more, nwb_fields=args.nwb_field or (), all_versions=args.all_versions)
        except api.BadInput as exc:
            raise _as_flags(exc) from None
    if args.json:
        found.write_json(sys.stdout)
    else:
        print_table(*found.table())
    if not found.rows:
        if not args.json:
            print("neuromirror: no match", file=sys.stderr)
        return 1
    return 0


def _as_flags(exc: api.BadInput) -> api.BadInput:
    """The API's error, naming the option as typed (``sha256 wants`` -> ``--sha256 wants``)."""
    word, _, rest = str(exc).partition(" ")
    return api.BadInput(f"--{word.replace('_', '-')} {rest}") if word in _FLAGS else exc
