"""The service's publish step: push a dataset to its entry's ``publish: {to: ...}`` target after a sync."""

from __future__ import annotations

import logging
from typing import Any

from neuromirror.config.model import SourceConfig
from neuromirror.service.state import SourceRuntime
from neuromirror.sources.base import Source

log = logging.getLogger("neuromirror.service")

_missing_logged = False


def publish_after_sync(mirror: Any, entry: SourceConfig, source: Source, report: Any, rt: SourceRuntime) -> None:
    """Push the dataset to the entry's target (``neuromirror.reproduce.publish``); a failure is kept in ``rt.publish_error``.

    After a sync that changed the dataset, and after any successful sync while the
    target has not received this dataset yet (a target added to the file later).
    Keys of ``publish:`` besides ``to``: ``name`` (the remote's name, default
    ``published``) and ``force``.  A failed push is not a failed sync.
    """
    global _missing_logged
    if not entry.publish:
        return
    from neuromirror.engine.sync import one_line

    try:
        from neuromirror.reproduce import publish as pub
    except ImportError:
        if not _missing_logged:
            log.warning("publish targets are configured but this neuromirror has no publish step; not publishing")
            _missing_logged = True
        return
    to = str(entry.publish["to"])
    name = str(entry.publish.get("name") or "published")
    try:
        if report.outcome != "ok":
            ds = mirror.root / source.relpath
            if pub.published_url(ds, name) == pub.target_url(to, source.id, source.relpath):
                return
        result = pub.publish_source(mirror, source.id, to, name=name, force=bool(entry.publish.get("force")))
        rt.publish_error = None
        log.info("%s: published: %s", source.id, result.line())
    except Exception as exc:
        rt.publish_error = one_line(exc)
        log.warning("%s: publishing to %s failed: %s", source.id, to, rt.publish_error)
