"""A pin: the exact, citable state of a source (commit, tag, DOI), as ``pin``, ``lock`` and ``get`` print it."""

from __future__ import annotations

from typing import Any

from neuromirror.index.lookup import find_version
from neuromirror.spec import Spec


def pin_record(mirror: Any, spec: Spec) -> dict:
    row = find_version(mirror.index, spec)
    src = mirror.index.source(spec.source)
    return {
        "source": spec.source,
        "version": row["label"],
        "dataset": str(mirror.root / src["dataset"]),
        "commit": row["commit"],
        "tag": row["tag"],
        "doi": row["doi"],
    }
