"""Helpers the commands share: specs, version lookup, output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from neuromirror.errors import UserError
from neuromirror.index.lookup import find_version, not_mirrored, sources_matching, where  # noqa: F401  (re-exported)
from neuromirror.spec import Spec, SpecError, parse_spec
from neuromirror.util.sizes import human_bytes  # noqa: F401  (re-exported for commands)


def root_of(args: argparse.Namespace) -> Path:
    return Path(args.root or "neuromirror-root").absolute()


def check_folder(label: str, path: str | Path, hint: str = "", *, writable: bool = True) -> None:
    """``path`` must be a directory, or one that can be made (``writable``: by this user), said as one
    line naming ``label`` (``--to DIR``) before any work, not as the errno of whatever first touches it."""
    dest = Path(path).absolute()
    if dest.exists() and not dest.is_dir():
        raise UserError(f"{label}: exists and is not a directory{hint}")
    parent = dest
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{label}: {parent} is a file, not a directory")
    if writable and not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{label}: cannot create or write there ({parent} is not writable)")


def open_mirror(args: argparse.Namespace) -> Any:  # -> Mirror, imported lazily
    from neuromirror.dataset.mirror import Mirror

    return Mirror(root_of(args), args.index)


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


def open_api(args: argparse.Namespace) -> Any:  # -> neuromirror.api.Mirror, imported lazily
    """The mirror of a read-only command through the Python API (the command is one call into it)."""
    from neuromirror import api

    return api.open(root_of(args), args.index)


def _mirror(args: argparse.Namespace) -> Any:
    from neuromirror.dataset.mirror import Mirror

    return Mirror(root_of(args), args.index)  # creates nothing until its index is opened


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
