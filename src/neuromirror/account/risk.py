"""What is at risk, counted live for ``neuromirror status`` (``api.Mirror.status``): per published version and the
latest draft, files and bytes kept in a store, only behind a pinned URL, only behind mutable URLs, and the unkept
pins on noncurrent S3 versions -- the counts of :mod:`neuromirror.verify.risk` and
:mod:`neuromirror.verify.noncurrent`, added to the status report's rows (:mod:`.status`).  The service counts the
same once a sync ended and records them (``neuromirror.service.risk``); this is the live count, below the API.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Optional

from neuromirror.account.status import SourceStatus
from neuromirror.config.model import MirrorConfig
from neuromirror.util.text import one_line


def add_live_risk(report: dict, root: Path, index_path: Optional[str], config: Optional[MirrorConfig] = None) -> None:
    """``neuromirror status``'s counts, live: per source (``at_risk``), per published version and the
    latest draft, files and bytes kept in a store, only behind a pinned URL, only behind mutable URLs, and the
    unkept pins on noncurrent S3 versions (``expiry``) -- from the index and the git-annex branches, no
    network.  A damaged dataset is said in the row (``at_risk_error``, ``expiry_error``), the others counted."""
    from neuromirror.dataset.mirror import Datasets
    from neuromirror.util.gitutil import GitError
    from neuromirror.verify.noncurrent import expiry_of
    from neuromirror.verify.risk import source_risk

    expire_after = _expire_after(report, config)
    mirror = Datasets(Path(str(root)), index_path)
    try:
        if not mirror.index_path.exists():
            return
        rows: list[SourceStatus] = report["sources"]
        for r in rows:
            src = mirror.index.source(r.source)
            if src is None or not (mirror.root / src.dataset / ".git").exists():
                continue
            ds = mirror.root / src.dataset
            out: list[dict] = []
            try:
                out = source_risk(mirror.index, ds, r.source)
            except (GitError, OSError) as exc:  # a damaged dataset: say so, the rest of status still shows
                r.add(at_risk_error=one_line(exc))
            r.add(at_risk=out)
            try:
                r.add(expiry=expiry_of(mirror.index, ds, r.source, expire_after[r.source]).to_json())
            except (GitError, OSError) as exc:
                r.add(expiry_error=one_line(exc))
    finally:
        mirror.close()


def _expire_after(report: dict, config: Optional[MirrorConfig]) -> dict[str, float]:
    """Per source of the report: after how long its noncurrent S3 versions expire (``keep: {expire_after: ...}`` of
    the definitions given, else the default)."""
    from collections import defaultdict

    from neuromirror.verify.noncurrent import DEFAULT_EXPIRE_AFTER

    expire_after: dict[str, float] = defaultdict(lambda: DEFAULT_EXPIRE_AFTER)
    for e in getattr(config, "sources", None) or []:
        if e.keep is not None and e.keep.expire_after is not None:
            for r in report["sources"]:
                if fnmatch.fnmatchcase(r.source, e.spec):
                    expire_after[r.source] = e.keep.expire_after
    return expire_after
