"""``neuromirror urls SPEC@VERSION [PATH...]``: each file of a pin with the URL that serves exactly its bytes."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from neuromirror.commands.common import UserError, add_json, require_mirror, spec_arg

if TYPE_CHECKING:
    from neuromirror.read.pinned import Pin
    from neuromirror.read.urls import PinnedFile


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "urls",
        help="list a pinned version's files with the URL that serves exactly their bytes",
        description="For each file of the version (or under the PATHs; a Zarr asset's path lists its objects): "
        "the archive's pinned URL (S3 versionId, or a name the archive never reuses), else the URL of the lab's "
        "store where it is kept, else why no URL serves it. Never a URL that can serve other bytes tomorrow. "
        "Text: PATH<TAB>URL per line ('-' and the reason where there is none); a count on stderr.",
    )
    p.add_argument(
        "spec",
        nargs="?",
        metavar="SPEC@VERSION",
        help="dandi:000027@0.230629.1955, ...@draft, ...@COMMIT (default version: the latest)",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories of the version (default: all)")
    p.add_argument("--lock", metavar="FILE", help="the versions a lock file names (SPEC, if given, picks one source)")
    p.add_argument(
        "--check",
        action="store_true",
        help="ask each URL once (HEAD): a dead archive URL falls back to the lab's store; exit 1 naming every "
        "file no URL serves any more",
    )
    p.add_argument(
        "--neuroglancer",
        metavar="VIEW_URL",
        help="instead of files: each OME-Zarr image (a *.zarr directory) of the version with a Neuroglancer link "
        "showing it at this pin, read through the view served at VIEW_URL (serve --http): PATH<TAB>LINK "
        "(the public Neuroglancer; --json adds the layer source and the view's own Neuroglancer, which a view "
        "with the neuroglancer package serves)",
    )
    p.add_argument(
        "--references",
        action="store_true",
        help="instead of files: each NWB/HDF5 file of the version with a LINDI reference (sync --references): "
        "PATH<TAB>REFERENCE, the reference kept under the root, or with --view its URL at the view and the "
        "Neurosift link to paste (PATH<TAB>URL<TAB>NEUROSIFT)",
    )
    p.add_argument(
        "--view",
        metavar="VIEW_URL",
        default=None,
        help="with --references: the base URL of the view serving this mirror (serve --http)",
    )
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    mirror, pins = _pins(args)
    if args.neuroglancer:
        return _write_images(args, pins, sys.stdout)
    if args.references or args.view:
        return _write_references(args, mirror, pins, sys.stdout)
    counts, lost = _write_files(args, mirror, pins, sys.stdout)
    if not counts and args.paths:
        raise UserError(f"no file of {pins[0].source}@{pins[0].version} under {', '.join(args.paths)}")
    total = sum(counts.values())
    parts = [f"{counts[k]} {label}" for k, label in _LABELS if counts.get(k)]
    print(f"{total} file(s): " + (", ".join(parts) or "none"), file=sys.stderr)
    for line in lost:
        print(f"not streamable: {line}", file=sys.stderr)
    return 1 if lost else 0


def _pins(args: argparse.Namespace) -> tuple[Any, list[Pin]]:
    """The mirror (closed again) and the pins SPEC@VERSION or --lock name; the PATHs checked."""
    from neuromirror.read.pinned import from_lock, resolve

    if not args.spec and not args.lock:
        raise UserError("urls needs a SPEC@VERSION or --lock FILE")
    if args.lock and args.spec and ":" not in args.spec:  # urls --lock FILE PATH...: no SPEC, only paths
        args.paths, args.spec = [args.spec, *args.paths], None
    spec = spec_arg(args.spec) if args.spec else None
    if spec is not None and spec.is_glob:
        raise UserError(f"{spec}: urls names one source, not a pattern")
    for path in args.paths:  # else git's own "fatal: ... outside repository" line came before ours
        if path.startswith("/") or ".." in path.split("/"):
            raise UserError(f"{path}: a PATH is inside the version, from its top (no leading / and no '..')")
    mirror = require_mirror(args)
    try:
        if args.lock:
            return mirror, from_lock(mirror, args.lock, spec.source if spec else None)
        assert spec is not None
        return mirror, [resolve(mirror, spec)]
    finally:
        mirror.close()


def _write_files(
    args: argparse.Namespace, mirror: Any, pins: list[Pin], out: TextIO
) -> tuple[dict[str, int], list[str]]:
    """Each file of ``pins`` written to ``out`` (a line, or a --json row); (count by what serves it, the
    files --check found no URL serves)."""
    from neuromirror.read.check import checked
    from neuromirror.read.loss import Losses, source_lock
    from neuromirror.read.urls import pin_files

    counts: dict[str, int] = {}
    lost: list[str] = []
    first = True
    if args.json:
        out.write("[")
    losses = Losses(mirror.index_path, source_lock(mirror.root, args.index))  # what readers found lost
    for pin in pins:
        files = map(losses.apply, pin_files(pin, args.paths))
        on_gone = functools.partial(_record_loss, losses, pin.source)
        for f in checked(files, on_gone=on_gone) if args.check else files:
            counts[f.served_by] = counts.get(f.served_by, 0) + 1
            if args.check and f.served_by == "none":
                lost.append(f"{pin.source}@{pin.version}: {f.path} ({f.key}): {f.why}")
            _write_file(out, args.json, pin, f, first)
            first = False
    if args.json:
        out.write("\n]\n")
    losses.flush()
    return counts, lost


def _write_file(out: TextIO, as_json: bool, pin: Pin, f: PinnedFile, first: bool) -> None:
    if as_json:
        row = {"source": pin.source, "version": pin.version, "commit": pin.commit, **f.to_json()}
        out.write(("\n" if first else ",\n") + json.dumps(row))
    elif f.url:
        out.write(f"{f.path}\t{f.url}\n")
    else:
        note = "in the dataset's git (no URL; a clone or the view serves it)" if f.served_by == "git" else f.why
        out.write(f"{f.path}\t-\t{note}\n")


def _write_images(args: argparse.Namespace, pins: list[Pin], out: TextIO) -> int:
    """``--neuroglancer``: each image of ``pins`` (under the PATHs) with its links, by the pin's commit."""
    from neuromirror.read.ome import neuroglancer as ng

    if not args.neuroglancer.startswith(("http://", "https://")):
        raise UserError(f"--neuroglancer {args.neuroglancer}: give the view's base URL (http://HOST:PORT/)")
    base, rows = args.neuroglancer, []
    for pin in pins:
        for path, image in ng.images_of(pin, args.paths):
            links = ng.links(base, [image], own_client=True)
            rows.append({"source": pin.source, "version": pin.version, "commit": pin.commit, "path": path,
                         "type": image.kind, "layer_source": ng.source(base, image.path), "neuroglancer": links})  # fmt: skip
            if not args.json:
                out.write(f"{path}\t{links['public']}\n")
    if not rows:
        where = f" under {', '.join(args.paths)}" if args.paths else ""
        raise UserError(f"no OME-Zarr image (a *.zarr directory) in {pins[0].source}@{pins[0].version}{where}")
    if args.json:
        out.write(json.dumps(rows, indent=1) + "\n")
    print(f"{len(rows)} image(s)", file=sys.stderr)
    return 0


def _write_references(args: argparse.Namespace, mirror: Any, pins: list[Pin], out: TextIO) -> int:
    """``--references``: each HDF5 file of ``pins`` with a reference, where it is (and at the view, for Neurosift)."""
    from neuromirror.read.references.listing import references_of

    if not args.references or (args.view and not args.view.startswith(("http://", "https://"))):
        raise UserError("give --references, and --view the view's base URL (http://HOST:PORT/)")
    rows = [r for pin in pins for r in references_of(mirror.root, pin, args.paths, args.view)]
    if args.json:
        out.write(json.dumps(rows, indent=1) + "\n")
    for r in rows if not args.json else ():
        out.write("\t".join([r["path"], r["url"], r["neurosift"]] if args.view else [r["path"], r["reference"]]) + "\n")
    print(f"{len(rows)} LINDI reference(s)", file=sys.stderr)
    return 0


_LABELS = (
    ("archive", "from the archive"),
    ("store", "from the lab's store"),
    ("git", "in git"),
    ("none", "not streamable"),
)


def _record_loss(losses: Any, source: str, f: Any, status: str) -> None:
    losses.record(f, status, source)
