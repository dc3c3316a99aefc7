"""``neuromirror reproduce data.lock --to DIR [PATH...]``: rebuild a locked state, or fail loudly."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from neuromirror.commands.common import UserError, add_json, print_json
from neuromirror.commands.get import add_retrieval_options, retrieval

if TYPE_CHECKING:
    from neuromirror.pin.lockfile import Lock


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
    from neuromirror.pin.fetch import reproduce_dataset

    lock = _read_lock(args.lock)
    base = Path(args.to).absolute()
    paths = _lock_paths(args.paths, lock)
    how = retrieval(args)
    results = [
        reproduce_dataset(d, base, paths, how, content=not args.no_content, keep_failed=args.keep_failed)
        for d in lock.datasets
    ]
    failed = any(r["problems"] for r in results)
    if args.json:
        print_json({"lock": str(args.lock), "dir": str(base), "ok": not failed, "datasets": results})
    else:
        for r in results:
            _print_result(r)
    if failed:
        bad = sum(1 for r in results if r["problems"])
        print(
            f"neuromirror: REPRODUCTION FAILED: {bad} of {len(results)} dataset(s) differ from {args.lock}",
            file=sys.stderr,
        )
        return 1
    if not args.json:
        print(f"reproduced {len(results)} dataset(s) of {args.lock} in {base}")
    return 0


def _read_lock(path: str) -> Lock:
    from neuromirror.pin import lockfile

    try:
        return lockfile.read(path)
    except lockfile.LockError as exc:
        raise UserError(str(exc)) from None


def _lock_paths(given: list[str], lock: Lock) -> list[str]:
    """The PATHs, normalised and each in one of the lock's datasets ([]: all)."""
    paths = [os.path.normpath(p).replace(os.sep, "/") for p in given]
    for p in paths:
        if p.startswith("..") or os.path.isabs(p):
            raise UserError(f"{p!r}: PATHs are relative to --to DIR, e.g. {lock.datasets[0].path}/sub-01")
        if p != "." and _select_any(p, [d.path for d in lock.datasets]) is False:
            raise UserError(f"{p!r} is in none of the lock's datasets ({', '.join(d.path for d in lock.datasets)})")
    return [] if "." in paths else paths


def _print_result(r: dict) -> None:
    from neuromirror.pin.retrieve import fmt_bytes

    head = f"{r['source']}@{r['version']} -> {r['dir']}"
    if r["problems"]:
        print(f"{head}: FAILED" + (" (clone removed; --keep-failed keeps it)" if r.get("removed") else ""))
        for prob in r["problems"][:50]:
            print(f"  {prob}")
        if len(r["problems"]) > 50:
            print(f"  ... and {len(r['problems']) - 50} more")
        return
    what = f"commit {r['commit'][:12]} and file list ({r.get('files')} files, {fmt_bytes(r.get('bytes'))}) match"
    if r.get("content"):
        what += f"; {r['content']}"
    print(f"{head}: {what}")


def _select_any(p: str, relpaths: list[str]) -> bool:
    return any(p == r or p.startswith(r + "/") or r.startswith(p + "/") for r in relpaths)
