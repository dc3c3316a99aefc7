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
import re
import sys
from typing import TYPE_CHECKING, Optional

from neuromirror.commands.common import UserError, add_json, print_json, print_table, require_mirror

if TYPE_CHECKING:
    from neuromirror.index.catalog import SearchFilters

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


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


def _hex(value: Optional[str], length: int, what: str) -> Optional[str]:
    if value is None:
        return None
    v = value.strip().lower()
    if len(v) != length or not _HEX.match(v):
        raise UserError(f"--{what} wants {length} hex digits, got {value!r}")
    return v


def _date(value: Optional[str], what: str) -> Optional[str]:
    if value is None:
        return None
    if not _DATE.match(value):
        raise UserError(f"--{what} wants YYYY, YYYY-MM or YYYY-MM-DD, got {value!r}")
    return value


def filters(args: argparse.Namespace) -> SearchFilters:
    """The command line's filters, checked: a one-line error for a bad digest or date."""
    from neuromirror.index.catalog import SearchFilters

    return SearchFilters(
        sha256=_hex(args.sha256, 64, "sha256"),
        md5=_hex(args.md5, 32, "md5"),
        key=args.key,
        path=args.path,
        subject=args.subject,
        modality=args.modality,
        date_from=_date(args.date_from, "date-from"),
        date_to=_date(args.date_to, "date-to"),
        project=args.project,
        data_level=args.data_level,
        derived_from=args.derived_from,
        source=args.source,
        all_versions=args.all_versions,
        limit=args.limit,
    )


def run(args: argparse.Namespace) -> int:
    from neuromirror.dataset.version import iter_version
    from neuromirror.index.catalog import search
    from neuromirror.index.zarr_catalog import catalog_zarrs, ensure_schema

    if args.nwb_field:
        return _nwb_search(args)
    wanted = filters(args)
    mirror = require_mirror(args)
    try:
        if wanted.of_files:  # the Zarrs' files, catalogued once per new Zarr commit
            catalog_zarrs(mirror.index, mirror.root, iter_version)
        else:
            ensure_schema(mirror.index)
        mode, rows = search(mirror.index, wanted)
    finally:
        mirror.close()
    if args.json:
        print_json(rows)
    elif mode == "files":
        print_table(rows, ["source", "version", "path", "key"])
    else:
        _print_versions(rows)
    if not rows:
        if not args.json:
            print("neuromirror: no match", file=sys.stderr)
        return 1
    return 0


def nwb_fields(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``--nwb-field``'s (field, value) pairs, checked: a one-line error for an unknown field or a missing ``=``."""
    from neuromirror.read.references.fields import FIELDS

    pairs = []
    for given in args.nwb_field:
        name, eq, value = given.partition("=")
        if not eq or name.strip() not in FIELDS:
            raise UserError(f"--nwb-field wants FIELD=VALUE, FIELD one of {', '.join(FIELDS)}; got {given!r}")
        pairs.append((name.strip(), value))
    others = [f"--{k.replace('_', '-')}" for k in ("sha256", "md5", "key", "path", "subject", "modality", "project")]
    if any(getattr(args, o[2:].replace("-", "_")) for o in others):
        raise UserError("--nwb-field is not combined with file or asset filters yet (only --source, --all-versions)")
    return pairs


def _nwb_search(args: argparse.Namespace) -> int:
    """``--nwb-field``: the NWB files whose fields (from their references, in the index) match every pair."""
    from neuromirror.read.references.fields import search_all

    pairs = nwb_fields(args)
    mirror = require_mirror(args)
    try:
        rows = search_all(mirror.index.db.conn, pairs, source=args.source or "", all_versions=args.all_versions)
    finally:
        mirror.close()
    rows = rows[: args.limit] if args.limit is not None else rows
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["source", "version", "path", "key"])
    if not rows and not args.json:
        print("neuromirror: no match", file=sys.stderr)
    return 0 if rows else 1


def _print_versions(rows: list[dict]) -> None:
    """The versions a metadata search matched, a line each: what their metadata says of them."""
    table = []
    for r in rows:
        m = r["meta"]
        table.append(
            {
                "source": r["source"],
                "version": r["version"],
                "subject": m.get("subject_id"),
                "modality": m.get("modality"),
                "date": m.get("acquisition_date") or (m.get("creation_time") or "")[:10] or None,
                "level": m.get("data_level"),
                "derived_from": m.get("derived_from"),
                "files": r["files"],
            }
        )
    print_table(table, ["source", "version", "subject", "modality", "date", "level", "derived_from", "files"])
