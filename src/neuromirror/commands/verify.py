"""``neuromirror verify SPEC[@VERSION] [--content] [--sample N]``: dataset, index and archive agree?"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from neuromirror.api.getting import Bars
from neuromirror.commands.common import UserError, add_dask, add_json, open_api, print_json, spec_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check that a version's dataset tree, the index and the archive's URLs agree (--content: download)",
        description="Compare the dataset's tree at the version's commit with the index (paths, keys, sizes, "
        "checksums), check every key's URLs are registered on the git-annex branch and, with --content, "
        "download (a sample of) the content from every registered URL (and the store's copy) and hash it "
        "against the key: wrong bytes and lost files (no source left) fail, a dead URL beside a good source "
        "is a warning. Also counts what is at risk: files kept in a store, only behind a pinned URL, only "
        "behind mutable URLs. Exit 0 only when everything agrees (warnings too, with --strict).",
    )
    p.add_argument(
        "specs",
        nargs="*",
        metavar="SPEC",
        help="dandi:000027@0.230629.1955, dandi:000027 (the latest version) or a pattern like 'dandi:*'",
    )
    p.add_argument("--all-versions", action="store_true", help="check every recorded version, not just the latest")
    p.add_argument(
        "--archive",
        action="store_true",
        help="list the version at the archive again (as sync does) and compare paths, keys and URLs",
    )
    p.add_argument("--content", action="store_true", help="download content from the registered URLs and hash it")
    p.add_argument(
        "--kept",
        action="store_true",
        help="every annexed file must be in the store (recorded on the git-annex branch and its file there); "
        "with --content the store's copies are hashed instead of the archive's URLs",
    )
    p.add_argument(
        "--store",
        metavar="STORE",
        help="the store (a directory) for --kept and as a source for --content (default: env NEUROMIRROR_STORE, "
        "else the store the dataset records)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="warnings fail too: a file that verifies from another URL or the store while some URL is dead",
    )
    p.add_argument(
        "--stores",
        action="store_true",
        help="re-read the copies the lab's stores hold of the versions named (no SPEC: every source kept) and "
        "check them against their keys; a bad or missing copy is removed from the record, re-kept from another "
        "copy or the archive, and named (exit 1); each good check's time is recorded per key and store",
    )
    p.add_argument(
        "--allow-unreachable",
        action="store_true",
        help="with --stores: a store the datasets record that is not reachable here (named, its copies counted as "
        "unverified) does not fail the run (exit 0 if every copy re-read is good)",
    )
    slice_ = p.add_mutually_exclusive_group()
    slice_.add_argument(
        "--fraction",
        type=float,
        metavar="F",
        help="with --stores: only this share, oldest-checked copies first (a packed store's: whole packs)",
    )
    slice_.add_argument(
        "--older-than", type=float, metavar="DAYS", help="with --stores: only copies not checked for DAYS days"
    )
    p.add_argument("--sample", type=int, metavar="N", help="with --content: check N random keys per version")
    p.add_argument("--seed", type=int, help="random seed for --sample (repeatable samples)")
    p.add_argument("-J", "--jobs", type=int, default=4, help="parallel downloads (default 4)")
    add_dask(
        p,
        "with --stores: the copies read back by this Dask scheduler's workers, the repairs made here",
    )
    p.add_argument(
        "--allow-ip",
        metavar="ADDRS",
        default=None,
        help="for --content through git-annex (special-remote URLs): annex.security.allowed-ip-addresses "
        "in the scratch clone (env NEUROMIRROR_ALLOW_IP)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before a stalled download fails (default 60)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar; print only problems and verdicts")
    add_json(p)
    from neuromirror.api.checking import source_options

    source_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    specs = [spec_arg(s) for s in args.specs]
    if args.stores:
        return _stores(args, specs)
    _check_options(args, specs)
    with open_api(args) as m, Bars() as bars:
        verified = m.verify_versions(
            specs,
            all_versions=args.all_versions,
            each=None if args.json else (lambda report: _print_report(report, args.quiet)),
            content=args.content,
            sample=args.sample,
            seed=args.seed,
            jobs=args.jobs,
            progress=None if args.quiet or args.json else bars,
            timeout=args.timeout,
            archive=args.archive,
            options={k: v for k, v in vars(args).items() if k not in ("func", "specs")},
            allow_ip=args.allow_ip,
            store=args.store,
            kept=args.kept,
            strict=args.strict,
        )
    if args.json:
        print_json(verified.to_json())
    for line in [] if args.json else verified.count_lines():
        print(line)
    return 0 if verified.ok else 1


def _stores(args: argparse.Namespace, specs: list) -> int:
    """``verify --stores``: the stored copies re-read, bad ones repaired and named (the API checks the slice)."""
    with open_api(args) as m, Bars() as bars:  # the copies and bytes as they are re-read, on stderr
        check = m.verify_stores(
            specs,
            fraction=args.fraction,
            older_than_days=args.older_than,
            store=args.store,
            jobs=args.jobs,
            progress=None if args.quiet or args.json else bars,
            allow_unreachable=args.allow_unreachable,
            dask=args.dask,
        )
    if args.json:
        print_json(check.to_json())
    else:
        print("\n".join(check.lines()))
    for f in check.findings:
        print(f"neuromirror: verify --stores: {f.problem} copy of {f.key} ({f.path}) in {f.store}", file=sys.stderr)
    for u in [] if check.allow_unreachable else check.unreached.values():
        print(f"neuromirror: verify --stores: store {u.name} at {u.url} not reachable: {u.why}", file=sys.stderr)
    return 0 if check.ok else 1


def _check_options(args: argparse.Namespace, specs: list) -> None:
    """The options' mistakes, said before anything is opened."""
    if args.fraction is not None or args.older_than is not None or args.allow_unreachable:
        raise UserError("--fraction, --older-than and --allow-unreachable apply to --stores")
    if not specs:
        raise UserError("name what to verify: SPEC[@VERSION]... (or --stores)")
    if args.sample is not None and args.sample < 1:
        raise UserError("--sample must be at least 1")
    if args.sample is not None and not args.content:
        raise UserError("--sample applies to --content")


def _print_report(report: Any, quiet: bool) -> None:
    lines = report.lines()
    if quiet:
        lines = [ln for ln in lines if "MISMATCH" in ln or "WARNING" in ln or ln == lines[-1]]
    print("\n".join(lines))
    sys.stdout.flush()
