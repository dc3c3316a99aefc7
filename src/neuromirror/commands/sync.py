"""``neuromirror sync SPEC...``: mirror sources into the root."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from neuromirror.commands.common import UserError, add_json, print_json, root_of, spec_arg
from neuromirror.sources.base import Source


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sync",
        help="mirror sources (dandi:ID, aind:NAME, boss:COLL/EXP; globs allowed)",
        description="Mirror each source into its DataLad dataset under the root: the archive's listing compared "
        "with the last recorded state, new and changed files added as annexed URLs (nothing downloaded), a "
        "commit per new state and a tag per published version, and the index updated. Reruns with nothing changed "
        "upstream change nothing.",
    )
    p.add_argument("specs", nargs="*", metavar="SPEC", help="e.g. dandi:000027, 'dandi:*'")
    p.add_argument(
        "--config",
        "-c",
        action="append",
        metavar="FILE",
        help="a mirror definition file (repeat for more): sync its sources with their options (which win "
        "over the command line's); with SPECs, only those, with the options of the entry naming them",
    )
    p.add_argument(
        "--engine",
        default=os.environ.get("NEUROMIRROR_ENGINE", "fast-import"),
        choices=["fast-import", "batch"],
        help="annex writer engine (default fast-import)",
    )
    p.add_argument(
        "-J",
        "--jobs",
        type=int,
        default=int(os.environ.get("NEUROMIRROR_JOBS", "4")),
        help="sources synced at once (default 4)",
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        default=os.environ.get("NEUROMIRROR_DASK") or None,
        help="run each source as a task on this Dask scheduler (env NEUROMIRROR_DASK, e.g. "
        "tcp://10.0.0.5:8786); needs neuromirror[dask] and the root on a shared file system "
        "(docs/scale-out.md)",
    )
    p.add_argument(
        "--store",
        metavar="STORE",
        default=None,
        help="keep content the sync reads anyway in this store (a directory or s3://BUCKET[/PREFIX]; env "
        "NEUROMIRROR_STORE): BOSS chunks, so that every BOSS version outlives upstream edits",
    )
    p.add_argument(
        "--max-rate",
        metavar="N/s",
        type=_rate,
        default=None,
        help="at most N requests a second to each archive endpoint, whatever -J or --dask (over network: "
        "max_rate of --config; docs/network.md)",
    )
    p.add_argument(
        "--max-in-flight",
        metavar="N",
        type=_positive,
        default=None,
        help="at most N requests at once to each archive endpoint (over network: max_in_flight)",
    )
    p.add_argument(
        "--references",
        action="store_const",
        const="nwb",
        default=None,
        help="make a LINDI reference of each new .nwb/.h5 key the sync records, its fields into the index "
        "(references: nwb in --config; needs neuromirror[references]; docs/reading.md)",
    )
    p.add_argument("--no-wait", action="store_true", help="fail at once if another process is syncing a source")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    add_json(p)
    from neuromirror.sources import add_options

    add_options(p)
    p.add_argument(
        "-i",
        "--dandi-instance",
        metavar="NAME",
        help="a DANDI instance by name, as the dandi CLI's -i: dandi, dandi-sandbox, linc... (its API "
        "wins over --dandi-api; a dandiset URL or DOI of a known instance implies its API)",
    )
    p.set_defaults(func=run)


def options_of(args: argparse.Namespace) -> dict[str, Any]:
    return {
        k: v for k, v in vars(args).items() if k not in ("func", "specs", "dask", "store", "max_rate", "max_in_flight")
    }


def _rate(text: str) -> float:
    from neuromirror.network.ceiling import parse_rate

    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of requests, 1 or more, not {text!r}")
    return int(text)


def _network(args: argparse.Namespace, config: Any) -> None:
    """The contact and the ceilings of this sync: --config's ``contact:`` and ``network:``, the command
    line's --max-rate and --max-in-flight over the latter's every-endpoint limit."""
    from neuromirror.network import pacing
    from neuromirror.network.ceiling import Ceilings, Limit

    settings = (config.network if config is not None else None) or Ceilings()
    if config is not None:
        config.apply_network()
    given = Limit(args.max_rate, args.max_in_flight)
    pacing.set_ceilings(Ceilings(given.over(settings.default), settings.endpoints))  # none given: none held


def run(args: argparse.Namespace) -> int:
    from neuromirror.engine.dask_executor import runner_for
    from neuromirror.engine.executor import SyncBatch, sync_batch
    from neuromirror.network import report as netreport

    net_start = netreport.snapshot()  # finding the sources asks the archives too: the report counts it
    root, targets = _targets(args)
    sources, engines = _sources(targets, args.engine)
    referenced = _referenced(args, targets, sources)  # before anything is written: lindi missing is said at once
    runner = runner_for(args.dask)  # before anything is written: an unreachable scheduler leaves the root untouched
    store = _store_of(args, sources)  # before anything is written: a bad store name leaves the root untouched
    if store is not None and runner is not None:
        raise UserError(
            "--store (or NEUROMIRROR_STORE) with --dask: not supported yet (sync BOSS sources on this host)"
        )
    batch = SyncBatch(
        root,
        args.index,
        sources,
        engines,
        args.engine,
        args.jobs,
        progress=not (args.quiet or args.json),
        lock_wait=0 if args.no_wait else True,
        reraise=args.verbose >= 2,
        runner=runner,
        store=store,
        network_since=net_start,
    )
    reports = sync_batch(batch)
    _make_references(batch, reports, referenced)
    if args.json:
        print_json(reports if len(reports) > 1 else reports[0])
    else:
        _print_reports(reports)
    return _exit_code(reports)


#: ``sync``'s exit when every source synced but some refused items (a Zarr whose checksum disagrees, a hostile
#: path): the rest is mirrored, and cron still sees that something upstream needs a look (``neuromirror audit``)
EXIT_REFUSED = 3


def _exit_code(reports: list[dict]) -> int:
    """1: a source failed (one line each on stderr); 3: all synced, some items refused; else 0."""
    failed = [r for r in reports if r["outcome"] == "failed"]
    for r in failed:
        print(f"neuromirror: {r['source']}: {r['error']}", file=sys.stderr)
    if failed:
        return 1
    refused = sum(len(r.get("refused", [])) for r in reports)
    if refused:
        print(f"neuromirror: {refused} item(s) refused (listed above; neuromirror audit lists them)", file=sys.stderr)
        return EXIT_REFUSED
    return 0


def _targets(args: argparse.Namespace) -> tuple[Any, list[tuple[Any, dict[str, Any]]]]:
    """The root and what to sync: each SPEC with the command line's options, or --config's entries."""
    if args.jobs < 1:  # 0 synced nothing and said nothing
        raise UserError("-J must be at least 1")
    specs = list(dict.fromkeys(spec_arg(s, allow_version=False) for s in args.specs))
    options = options_of(args)
    root = root_of(args)
    targets = [(spec, options) for spec in specs]
    config = None
    if getattr(args, "config", None):  # --config: see neuromirror.config.load.sync_targets
        from neuromirror.config.load import load_configs, sync_targets

        config = load_configs(args.config)
        root = config.resolve_root(args.root)
        targets = sync_targets(config, specs, options)
    elif not specs:
        raise UserError("nothing to sync: give SPECs or --config FILE")
    _network(args, config)  # before any source asks its archive
    return root, targets


def _sources(targets: list[tuple[Any, dict[str, Any]]], default_engine: str) -> tuple[list[Source], dict[str, str]]:
    """The sources the targets name (a glob asks the archive), each once, and each one's writer engine."""
    from neuromirror.sources import expand

    sources: list[Any] = []
    engines: dict[str, str] = {}
    for spec, opts in targets:
        found = list(expand(spec, dandi_options(spec, opts)))
        if not found and spec.is_glob:
            print(f"neuromirror: {spec} matched nothing", file=sys.stderr)
        for s in found:
            if s.id not in engines:  # 'dandi:000002' and 'dandi:*' name it twice: synced once
                engines[s.id] = opts.get("engine") or default_engine
                sources.append(s)
    if not sources:
        raise UserError("nothing to sync")
    return sources, engines


def _referenced(args: argparse.Namespace, targets: list[tuple[Any, dict[str, Any]]], sources: list[Any]) -> set[str]:
    """The sources whose new HDF5 keys get LINDI references (``--references``, ``references: nwb``); asked for
    on the command line without lindi importable here: one line, exit 2, before anything is synced."""
    import fnmatch

    wanting = [spec for spec, opts in targets if opts.get("references") == "nwb"]
    chosen = {s.id for s in sources if any(fnmatch.fnmatchcase(s.id, spec.source) for spec in wanting)}
    if chosen and args.references:
        from neuromirror.read.references.lindi_env import lindi

        lindi()
    return chosen


def _make_references(batch: Any, reports: list[dict], chosen: set[str]) -> None:
    """Each chosen source's new versions' references (:mod:`neuromirror.read.references.batch`), in its report
    as ``references``; a failure is a warning of the source, never a failed sync."""
    from neuromirror.read.references.batch import make_references
    from neuromirror.read.references.lindi_env import why_not

    for r in reports:
        if r["source"] not in chosen or r["outcome"] == "failed" or not r.get("versions"):
            continue
        if why_not():
            r.setdefault("warnings", []).append(f"references: {why_not()}")
            continue
        got = make_references(batch.root, batch.index_path, [(r["source"], v["commit"]) for v in r["versions"]])
        r["references"] = got.to_json()
        r.setdefault("warnings", []).extend(f"references: {p}: {e}" for p, e in got.failed)


def _print_reports(reports: list[dict]) -> None:
    """Each source synced: its summary line, what it refused or left pending, its warnings; then the totals."""
    for r in reports:
        if r["outcome"] == "failed":
            continue  # said once, on stderr, below
        print(summary_line(r))
        if r.get("references", {}).get("made"):
            print(f"  references: {len(r['references']['made'])} made (LINDI, one per new NWB/HDF5 key)")
        for ref in r.get("refused", []):
            print(f"  refused {ref['path']!r}: {ref['reason']}")
        for p in r.get("pending", []):
            print(f"  pending {p['path']}: {p['reason']}")
        for w in r.get("warnings", []):
            if not any(w.startswith(p["path"] + ":") for p in r.get("pending", [])):
                print(f"  warning: {w}")
    if len(reports) > 1:
        ok = sum(r["outcome"] == "ok" for r in reports)
        same = sum(r["outcome"] == "unchanged" for r in reports)
        failed = sum(r["outcome"] == "failed" for r in reports)
        print(f"{len(reports)} sources: {ok} updated, {same} unchanged, {failed} failed")


def dandi_options(spec: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The API a DANDI source is read from: --dandi-instance, else --dandi-api, else the instance its URL/DOI named."""
    from neuromirror.identifiers import IdentifierError, instance_api

    if spec.archive != "dandi":
        return options
    try:
        if options.get("dandi_instance"):
            return {**options, "dandi_api": instance_api(options["dandi_instance"])}
    except IdentifierError as exc:
        raise UserError(str(exc)) from None
    if not options.get("dandi_api") and spec.api:
        return {**options, "dandi_api": spec.api}
    return options


def _store_of(args: argparse.Namespace, sources: list[Any]) -> Any:
    """The store BOSS sources keep their chunks in: ``--store``, else ``NEUROMIRROR_STORE``; None: no store."""
    from neuromirror.store.location import STORE_ENV, open_store

    name = (getattr(args, "store", None) or os.environ.get(STORE_ENV) or "").strip()
    if not name or not any(s.archive == "boss" for s in sources):
        return None
    return open_store(name)


def summary_line(r: dict) -> str:
    """The stdout line of a source synced (failures are said on stderr only)."""
    if r["outcome"] == "unchanged":
        return f"{r['source']}: unchanged"
    labels = ", ".join(v["label"] for v in r["versions"])
    return (
        f"{r['source']}: {len(r['versions'])} new version(s) ({labels}): "
        f"{r['added']} added, {r['removed']} removed, {r['changed']} changed"
    )
