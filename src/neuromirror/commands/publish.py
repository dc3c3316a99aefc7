"""``neuromirror publish SPEC... --to URL``: push datasets so anyone can clone and get them."""

from __future__ import annotations

import argparse
import sys

from neuromirror.commands.common import UserError, add_json, print_json, require_mirror, sources_matching, spec_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "publish",
        help="push datasets (branch, tags, git-annex branch) to a sibling others can clone from",
        description="Push each dataset's branch, version tags and git-annex branch (the archive's URLs) to a git "
        "remote, so that 'datalad clone URL' + 'datalad get' work without the mirror. --to BASE puts "
        "dataset dandi/000027 at BASE/dandi/000027 (local bare repositories are created); a --to with "
        "{archive}, {name}, {slug} or {relpath} maps each dataset to its own URL, e.g. "
        "'git@github.com:lab/{slug}.git'. --to ria+file:///PATH (or ria+ssh://[USER@]HOST[:PORT]/PATH, over "
        "the ssh program git uses: GIT_SSH_COMMAND) puts each dataset (and its Zarr subdatasets) "
        "into a DataLad RIA store by id, with an alias per source (#~dandi/000027), ready to be served over "
        "plain HTTP; embargoed dandisets are held back, and the kept content of sources only a credential reads "
        "(the BOSS) stays out of the store, unless --include-embargoed.",
    )
    p.add_argument("specs", nargs="+", metavar="SPEC", help="sources to publish: dandi:000027, 'dandi:*', ...")
    p.add_argument("--to", required=True, metavar="URL", help="BASE directory/URL, or a URL template")
    p.add_argument(
        "--name",
        default="published",
        help="name of the git remote recorded in each mirror dataset (default: published)",
    )
    p.add_argument(
        "--with-root",
        action="store_true",
        help="also push the root superdataset to BASE (its subdatasets resolve to BASE/<path>)",
    )
    p.add_argument("--force", action="store_true", help="overwrite refs on the target that the mirror lacks")
    p.add_argument(
        "--include-embargoed",
        action="store_true",
        help="with --to ria+file://... or ria+ssh://...: also publish embargoed dandisets and the kept content of "
        "sources only a credential reads (the BOSS); held back by default",
    )
    p.add_argument(
        "--public-url",
        metavar="URL",
        help="with --to ria+...: where clones reach the store (https://HOST/PATH), recorded for kept content",
    )
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from neuromirror.publish.sibling import publish_siblings

    specs = [spec_arg(s) for s in args.specs]
    for s in specs:
        if s.version:
            raise UserError(f"{s}: publish pushes whole datasets (every version is a tag); drop @{s.version}")
    if args.to.startswith("ria+"):
        return _run_ria(args, specs)
    mirror = require_mirror(args)
    try:
        report = publish_siblings(
            mirror,
            sources_matching(mirror.index, specs),
            args.to,
            name=args.name,
            force=args.force,
            with_root=args.with_root,
            each=None if args.json else lambda res: print(res.line()),
        )
    finally:
        mirror.close()
    if report.unpublished:
        print(
            f"neuromirror: note: the root names {len(report.unpublished)} dataset(s) not published here "
            f"(e.g. {report.unpublished[0]}); clones of the root cannot get those",
            file=sys.stderr,
        )
    if args.json:
        published = [dict(r.__dict__) for r in report.published]
        print_json({"ok": not report.errors, "published": published, "errors": report.errors})
    for e in report.errors:
        print(f"neuromirror: publish failed: {e}", file=sys.stderr)
    return 1 if report.errors else 0


def _run_ria(args: argparse.Namespace, specs: list) -> int:
    """``--to ria+file:///PATH`` or ``ria+ssh://HOST/PATH``: the RIA store (publish/ria/publish.py); its report."""
    from neuromirror.publish.ria.layout import RiaStore
    from neuromirror.publish.ria.publish import publish_to_ria

    RiaStore.from_url(args.to)  # a URL we cannot publish to is a one-line error before anything is opened
    mirror = require_mirror(args)
    try:
        sources = sources_matching(mirror.index, specs)
        report = publish_to_ria(
            mirror,
            sources,
            args.to,
            with_root=args.with_root,
            include_embargoed=args.include_embargoed,
            force=args.force,
            public_url=args.public_url,
        )
    finally:
        mirror.close()
    if args.json:
        print_json(report.as_dict())
    else:
        for res in report.published:
            print(res.line())
        for held in report.held_back:
            print(held.line())
        for held in report.content_held_back:
            print(f"{held.source}: kept content held back, {held.why}")
        for note in report.notes:
            print(f"neuromirror: note: {note}", file=sys.stderr)
    for e in report.errors:
        print(f"neuromirror: publish failed: {e}", file=sys.stderr)
    return 1 if report.errors else 0
