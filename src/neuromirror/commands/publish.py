"""``neuromirror publish SPEC... --to URL``: push datasets so anyone can clone and get them."""

from __future__ import annotations

import argparse
import sys

from neuromirror.commands.common import add_json, print_json, root_of


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
        "(the BOSS) stays out of the store, unless --include-embargoed. --to github:ORG makes each dataset a "
        "repository of the GitHub organisation ORG through GitHub's API (token: GITHUB_TOKEN or git config "
        "hub.oauthtoken), each Zarr subdataset one of --zarr-org, with homepage, description and a release per "
        "version tag; embargoed dandisets' repositories are private.",
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
    p.add_argument(
        "--zarr-org",
        metavar="ORG",
        help="with --to github:ORG: the organisation of the Zarr subdatasets' repositories (default: ORG)",
    )
    p.add_argument(
        "--github-api",
        metavar="URL",
        help="with --to github:ORG: GitHub's API (default https://api.github.com; GitHub Enterprise: "
        "https://HOST/api/v3)",
    )
    p.add_argument(
        "--github-metadata",
        action="store_true",
        help="with --to github:ORG: push nothing, re-assert description, homepage and visibility of every "
        "repository (changed only where they differ)",
    )
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from neuromirror import api

    with api.Mirror(root_of(args), args.index) as m:  # the API says when there is no mirror, after the specs' check
        result = m.publish(
            args.specs,
            args.to,
            name=args.name,
            force=args.force,
            with_root=args.with_root,
            include_embargoed=args.include_embargoed,
            public_url=args.public_url,
            zarr_org=args.zarr_org,
            github_api=args.github_api,
            github_metadata=args.github_metadata,
            progress=None if args.json else print,
        )
    for line in result.warnings(for_json=args.json):
        print(f"neuromirror: {line}", file=sys.stderr)
    if args.json:
        print_json(result.to_json())
    return 1 if result.errors else 0
