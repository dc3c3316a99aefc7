"""``neuromirror reproduce data.lock --to DIR [PATH...]``: rebuild a locked state, or fail loudly."""

from __future__ import annotations

import argparse
import sys

from neuromirror import api
from neuromirror.commands.common import add_json, root_of
from neuromirror.commands.get import add_retrieval_options, print_notes, retrieval


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="rebuild the datasets of a lock file and check commit, file list and content",
        description="Clone every dataset of LOCK into DIR/<path>, check out the locked commit, check the file list "
        "against the lock's digest and fetch content (PATHs relative to DIR, default all) with "
        "git-annex verifying every byte. Exit 1 on any difference.",
    )
    p.add_argument("lock", help="lock file written by 'neuromirror lock'")
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="paths under DIR to fetch, e.g. dandi/000027/sub-01 (default: all content of every dataset)",
    )
    p.add_argument("--to", required=True, metavar="DIR", help="directory to rebuild into")
    p.add_argument("--no-content", action="store_true", help="check commits and file lists only; fetch no content")
    p.add_argument(
        "--keep-failed",
        action="store_true",
        help="keep the clone of a dataset that failed its checks (default: remove clones this run made)",
    )
    add_retrieval_options(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with api.Mirror(root_of(args), args.index) as m:  # a lock names where each dataset is: no mirror is needed
        done = m.reproduce(
            args.lock,
            args.paths,
            to=args.to,
            content=not args.no_content,
            keep_failed=args.keep_failed,
            **retrieval(args),
        )
    print_notes(args, done.notes)
    if args.json:
        done.write_json(sys.stdout)
    else:
        print("\n".join(done.lines()))
    if not done.ok:
        print(done.failure_line(), file=sys.stderr)
        return 1
    return 0
