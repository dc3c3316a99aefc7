"""``neuromirror reproduce data.lock --to DIR [PATH...]``: rebuild a locked state, or fail loudly."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

from neuromirror.commands.common import UserError, add_json, print_json
from neuromirror.commands.get import add_retrieval_options, store_preparer


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


def _select(paths: list[str], relpath: str) -> Optional[list[str]]:
    """The dataset-relative paths of ``paths`` inside ``relpath``; None if none concern it; [] = all."""
    if not paths:
        return []
    out: list[str] = []
    hit = False
    for p in paths:
        if p == relpath or relpath.startswith(p + "/"):
            return []
        if p.startswith(relpath + "/"):
            hit = True
            out.append(p[len(relpath) + 1 :])
    return out if hit else None


def compare_file_list(d, fl) -> list[str]:  # noqa: ANN001
    """Differences between the lock's record of a dataset and the file list found."""
    from neuromirror.pin.retrieve import fmt_bytes

    problems: list[str] = []
    if d.file_list is not None:
        from neuromirror.pin.filelist import digest_pairs

        if digest_pairs(d.file_list) != d.file_list_digest:
            problems.append("the lock's file-list does not match its own file-list-digest: the lock file was edited")
        want = dict(d.file_list)
        have = dict(fl.entries)
        for path in sorted(set(want) - set(have)):
            problems.append(f"missing file: {path} is in the lock, not in the dataset")
        for path in sorted(set(have) - set(want)):
            problems.append(f"extra file: {path} is in the dataset, not in the lock")
        for path in sorted(set(want) & set(have)):
            if want[path] != have[path]:
                problems.append(f"changed file: {path} is {have[path]} in the dataset, {want[path]} in the lock")
    if fl.digest != d.file_list_digest:
        problems.append(
            f"file list differs: the lock has {d.files} files, {fmt_bytes(d.bytes)}, digest "
            f"{d.file_list_digest[:23]}…; the dataset has {fl.files} files, {fmt_bytes(fl.bytes)}, "
            f"digest {fl.digest[:23]}…"
        )
    elif fl.files != d.files or fl.bytes != d.bytes:
        problems.append(
            f"file counts differ: the lock says {d.files} files, {d.bytes} bytes; the dataset has "
            f"{fl.files} files, {fl.bytes} bytes (the lock file was edited)"
        )
    return problems


def run(args: argparse.Namespace) -> int:
    from neuromirror.pin import lockfile
    from neuromirror.pin.clone import (
        checkout,
        clone,
        ensure_commit,
        install_subdatasets,
        remove_clone,
        tag_commit,
    )
    from neuromirror.pin.fetch import fetch
    from neuromirror.pin.filelist import file_list_digest, walk_files
    from neuromirror.pin.locations import resolve_url
    from neuromirror.pin.retrieve import RetrieveError, allow_ip_default, fmt_bytes

    try:
        lock = lockfile.read(args.lock)
    except lockfile.LockError as exc:
        raise UserError(str(exc)) from None
    base = Path(args.to).absolute()
    paths = [os.path.normpath(p).replace(os.sep, "/") for p in args.paths]
    for p in paths:
        if p.startswith("..") or os.path.isabs(p):
            raise UserError(f"{p!r}: PATHs are relative to --to DIR, e.g. {lock.datasets[0].path}/sub-01")
        if p != "." and _select_any(p, [d.path for d in lock.datasets]) is False:
            raise UserError(f"{p!r} is in none of the lock's datasets ({', '.join(d.path for d in lock.datasets)})")
    if "." in paths:
        paths = []
    results: list[dict] = []
    failed = False
    quiet = args.quiet or args.json
    for d in lock.datasets:
        created = None
        res: dict = {
            "source": d.source,
            "version": d.version,
            "commit": d.commit,
            "path": d.path,
            "dir": str(base / d.path),
            "problems": [],
        }
        results.append(res)
        problems: list[str] = res["problems"]
        try:
            url = resolve_url(args.from_url, d.path) if args.from_url else d.url
            res["from"] = url
            dest, reused = clone(url, base / d.path, allow_ip=allow_ip_default(args.allow_ip))
            created = None if reused else dest
            try:
                ensure_commit(dest, d.commit, url)
            except RetrieveError:
                problems.append(f"commit {d.commit} is not in {url}: the lock names a state this source does not have")
            if not problems:
                if d.tag:
                    tagged = tag_commit(dest, d.tag)
                    if tagged and tagged != d.commit:
                        problems.append(f"tag {d.tag} points at {tagged[:12]} in {url}, the lock says {d.commit[:12]}")
                checkout(dest, d.commit)
                install_subdatasets(dest, d.commit, allow_ip=allow_ip_default(args.allow_ip))
                fl = file_list_digest(walk_files(dest, d.commit), keep=d.file_list is not None)
                problems += compare_file_list(d, fl)
                res.update(files=fl.files, bytes=fl.bytes, file_list_digest=fl.digest)
            sel = _select(paths, d.path)
            if not problems and not args.no_content and sel is not None:
                report = fetch(
                    dest,
                    d.commit,
                    sel,
                    jobs=args.jobs,
                    progress=not quiet,
                    label=d.spec,
                    allow_ip=allow_ip_default(args.allow_ip),
                    prepare=store_preparer(args, d.all_stores),
                )
                res.update(fetched=report.fetched, fetched_bytes=report.fetched_bytes, present=report.present)
                for path, why in report.failed:
                    problems.append(f"content of {path} not fetched or not verified: {why}")
                res["content"] = report.line()
        except RetrieveError as exc:
            problems.append(str(exc))
        if problems:
            failed = True
            if created is not None and not args.keep_failed:
                # DIR must hold only states that match the lock: a clone left at another state could be mistaken
                remove_clone(created)
                res["removed"] = True
    if args.json:
        print_json({"lock": str(args.lock), "dir": str(base), "ok": not failed, "datasets": results})
    else:
        for r in results:
            head = f"{r['source']}@{r['version']} -> {r['dir']}"
            if r["problems"]:
                print(f"{head}: FAILED" + (" (clone removed; --keep-failed keeps it)" if r.get("removed") else ""))
                for prob in r["problems"][:50]:
                    print(f"  {prob}")
                if len(r["problems"]) > 50:
                    print(f"  ... and {len(r['problems']) - 50} more")
            else:
                what = f"commit {r['commit'][:12]} and file list ({r.get('files')} files, {fmt_bytes(r.get('bytes'))}) match"
                if r.get("content"):
                    what += f"; {r['content']}"
                print(f"{head}: {what}")
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


def _select_any(p: str, relpaths: list[str]) -> bool:
    return any(p == r or p.startswith(r + "/") or r.startswith(p + "/") for r in relpaths)
