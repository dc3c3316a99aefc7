"""Helpers the commands share: specs, version lookup, output."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ..cli import UserError, open_mirror, root_of  # noqa: F401  (re-exported for commands)
from ..progress import human_bytes  # noqa: F401  (re-exported for commands)
from ..spec import Spec, SpecError, parse_spec


def spec_arg(text: str, *, allow_version: bool = True) -> Spec:
    try:
        return parse_spec(text, allow_version=allow_version)
    except SpecError as exc:
        raise UserError(str(exc)) from None


def mirror_if_exists(args: argparse.Namespace) -> Optional[Any]:
    """The mirror named by --root/--index if it has an index; None otherwise (nothing is created)."""
    m = _mirror(args)
    return m if m.index_path.exists() else None


def require_mirror(args: argparse.Namespace) -> Any:
    """The mirror of a read-only command: an existing index, or a one-line error naming where we looked."""
    m = _mirror(args)
    if not m.index_path.exists():
        raise UserError(f"no mirror at {m.root} (no index {m.index_path}; pass --root or set NEUROMIRROR_ROOT)")
    return m


def _mirror(args: argparse.Namespace) -> Any:
    from ..mirror import Mirror

    return Mirror(root_of(args), args.index)  # creates nothing until its index is opened


def where(index: Any) -> str:
    """The mirror an index belongs to, for messages: its root, or the index file given by --index."""
    path = Path(index.path)
    return str(path.parent.parent) if path.parent.name == ".neuromirror" else str(path)


def not_mirrored(index: Any, source: str) -> UserError:
    return UserError(f"{source} is not mirrored here, in {where(index)} (run: neuromirror sync {source})")


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def print_table(rows: Sequence[dict], columns: Sequence[str]) -> None:
    if not rows:
        return
    widths = {c: max(len(c), *(len(_cell(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        print("  ".join(_cell(r.get(c)).ljust(widths[c]) for c in columns).rstrip())


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    return str(v)


def find_version(index: Any, spec: Spec) -> dict:
    """The index row a SPEC[@VERSION] names; without a version, the latest recorded."""
    if index.source(spec.source) is None:
        raise not_mirrored(index, spec.source)
    row = index.latest_version(spec.source, spec.version) if spec.version else index.latest_version(spec.source)
    if row is None and spec.version:
        labels = sorted({v["label"] for v in index.versions(spec.source)})
        raise UserError(f"{spec.source} has no version {spec.version!r} (known: {', '.join(labels) or 'none'})")
    if row is None:
        raise UserError(f"{spec.source} has no recorded version yet")
    return row


def sources_matching(index: Any, specs: Iterable[Spec]) -> list[str]:
    import fnmatch

    known = [s["id"] for s in index.sources()]
    out: list[str] = []
    for spec in specs:
        hits = [s for s in known if fnmatch.fnmatchcase(s, spec.source)]
        if not hits:
            raise not_mirrored(index, spec.source)
        out += [h for h in hits if h not in out]
    return out
