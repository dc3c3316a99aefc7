"""Helpers the commands share: arguments made into the API's inputs, and output.  Like the commands, they
stand on ``neuromirror.api`` alone (tests/test_house_rules.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from neuromirror.api import UserError, human_bytes  # noqa: F401  (re-exported for the commands)

if TYPE_CHECKING:
    from neuromirror.api import Mirror, Spec


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


def spec_arg(text: str, *, allow_version: bool = True) -> Spec:
    from neuromirror.api import spec_of

    return spec_of(text, allow_version=allow_version)


def open_api(args: argparse.Namespace) -> Mirror:
    """The mirror of a read-only command through the Python API (the command is one call into it)."""
    from neuromirror import api

    return api.open(root_of(args), args.index)


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")


def add_dask(p: argparse.ArgumentParser, what: str) -> None:
    """``--dask ADDRESS`` (env ``NEUROMIRROR_DASK``): ``what`` the command runs on the cluster's workers."""
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        default=os.environ.get("NEUROMIRROR_DASK") or None,
        help=f"{what} (env NEUROMIRROR_DASK, e.g. tcp://10.0.0.5:8786; docs/scale-out.md)",
    )


def add_ceiling(p: argparse.ArgumentParser, whatever: str) -> None:
    """``--max-rate N/s`` and ``--max-in-flight N``: the operator's ceiling per archive endpoint (docs/network.md)."""
    p.add_argument(
        "--max-rate",
        metavar="N/s",
        default=None,
        help=f"at most N requests a second (N/s; also N/min, N/h) to each archive endpoint, whatever {whatever} "
        "(over network: max_rate of --config; a wait it makes is said; docs/network.md)",
    )
    p.add_argument(
        "--max-in-flight",
        metavar="N",
        default=None,
        help="at most N requests at once to each archive endpoint (over network: max_in_flight)",
    )


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
