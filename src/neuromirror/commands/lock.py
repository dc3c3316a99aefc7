"""``neuromirror lock SPEC@VERSION... -o data.lock``: name exact data states in a small file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neuromirror.commands.common import UserError, open_api


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lock",
        help="write a lock file pinning versions (commit, tag, DOI, file list digest)",
        description="Write a TOML lock file naming, per dataset, where to clone it from, the version, commit, tag, "
        "DOI and a digest of the version's file list; 'neuromirror reproduce' rebuilds it anywhere.",
    )
    p.add_argument("specs", nargs="+", metavar="SPEC", help="e.g. dandi:000027@0.230629.1955 (default: latest version)")
    p.add_argument("-o", "--output", default="-", metavar="FILE", help="lock file to write (default: stdout)")
    p.add_argument(
        "--url",
        metavar="BASE",
        help="clone URL base others will use (where 'publish --to BASE' put the datasets, or a RIA store's "
        "ria+https://HOST/PATH: the dataset's alias is added); default: where the dataset was last published "
        "('published' remote or RIA store), else the mirror's local path",
    )
    p.add_argument("--remote", default="published", help="remote whose URL to record (default: published)")
    p.add_argument("--files", action="store_true", help="also list every file (path and key) in the lock")
    p.add_argument(
        "--store",
        metavar="STORE",
        help="record this store's read location in the lock (env NEUROMIRROR_STORE); default: the store "
        "'neuromirror keep' recorded in the dataset, if it holds content of the version",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _check_output(args.output)
    with open_api(args) as m:
        lock = m.lock(args.specs, url=args.url, remote=args.remote, files=args.files, store=args.store or None)
    lock.write(args.output)
    for n in lock.notes:
        print(f"neuromirror: note: {n}", file=sys.stderr)
    if args.output != "-":
        print("\n".join([*lock.lines(), f"wrote {args.output}: {len(lock.datasets)} dataset(s)"]))
    return 0


def _check_output(output: str) -> None:
    """``-o FILE`` into a folder that is there, said before the lock is built (else the errno of its temp file)."""
    if output == "-":
        return
    path = Path(output).absolute()
    if path.is_dir():
        raise UserError(f"-o {output}: is a directory (give the lock file's name)")
    if not path.parent.is_dir():
        what = "is not a directory" if path.parent.exists() else "does not exist"
        raise UserError(f"-o {output}: the folder {path.parent} {what} (lock makes no folders)")
