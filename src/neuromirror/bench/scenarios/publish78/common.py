"""The options and the target rows of issue 78's scenarios (:mod:`.github`, :mod:`.icechunk_read`).

Why a room of its own: :mod:`neuromirror.bench.options` and :mod:`neuromirror.bench.run` import these without
importing the scenarios (nor the GitHub stand-in, nor icechunk) before one of them is asked for.
"""

from __future__ import annotations

from typing import Any

from neuromirror.bench.targets import reported

#: the scenarios' names (``--scenarios``)
SCENARIOS = ("publish-github", "icechunk-read")


def add_options(p: Any) -> None:
    g = p.add_argument_group(
        "publish-github, icechunk-read (issue 78): publish to a GitHub organisation beside pre-made bare repositories; "
        "an Icechunk export of a pinned Zarr state and a slice read through it"
    )
    g.add_argument("--publish-dandisets", type=int, default=200, help="publish-github: dandisets (default 200)")
    g.add_argument(
        "--icechunk-chunks",
        type=lambda s: int(float(s)),
        default=100_000,
        help="icechunk-read: chunks of the Zarr state whose export is timed (default 10^5)",
    )
    g.add_argument(
        "--icechunk-slice", type=int, default=100, help="icechunk-read: chunks of the slice read (default 100)"
    )
    g.add_argument(
        "--icechunk-rtt", type=float, default=0.05, help="icechunk-read: the archive's round trip, s (default 0.05)"
    )


def issue78_targets(results: list[dict]) -> list[dict[str, Any]]:
    """The judged rows of both scenarios as rows of the run's target report."""
    out: list[dict[str, Any]] = []
    for r in results:
        name = str(r.get("scenario", ""))
        if name.startswith("publish-github") or name.startswith("icechunk-"):
            out += reported(r, str(r.get("note", f"N={r.get('n')}")))
    return out
