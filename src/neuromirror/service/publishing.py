"""The service's publish step: push a dataset to its entry's ``publish: {to: ...}`` target after a sync.

Three kinds of target, as ``neuromirror publish --to`` takes them: a BASE or URL template (a git
push, :mod:`neuromirror.publish.sibling`), ``ria+file:///PATH``, a DataLad RIA store on this
host that any static web server serves (:mod:`neuromirror.publish.ria.publish`; ``public_url``
says where clones reach it, ``include_embargoed`` publishes embargoed dandisets too), or ``github:ORG``,
repositories made through GitHub's API (:mod:`neuromirror.publish.github`; ``zarr_org``, ``github_api``).
Each is one call of :meth:`neuromirror.api.Mirror.publish`, the verb ``neuromirror publish`` stands on, for the
one source: the service publishes what the command would.

The outcome goes into the run's report in the index (``report["publish"]``: the target, the
outcome — ``ok``, ``held back`` or ``error`` — the clone URL and the ``datalad clone`` command,
or why it was held back), where the source's status page reads it (:func:`publish_facts`); a
failure is also kept in ``rt.publish_error``.  A failed publish is not a failed sync.
"""

from __future__ import annotations

import logging
import shlex
from typing import TYPE_CHECKING, Any, Optional, TypeVar

from neuromirror.api.records import Records
from neuromirror.config.model import SourceConfig
from neuromirror.pin.published import published_url
from neuromirror.records import SyncReport
from neuromirror.service.state import SourceRuntime, SourceStatus
from neuromirror.sources.base import Source
from neuromirror.spec import Spec

if TYPE_CHECKING:
    from neuromirror.api import Mirror, Published

_R = TypeVar("_R")

log = logging.getLogger("neuromirror.service")

_missing_logged = False


def publish_after_sync(
    mirror: Mirror,
    entry: SourceConfig,
    source: Source,
    report: SyncReport,
    rt: SourceRuntime,
    *,
    recorded: bool = False,
) -> None:
    """Publish the dataset to the entry's target; the outcome in the run's report and ``rt.publish_error``.

    After a sync that changed the dataset or a keep that ``recorded`` copies on its git-annex branches
    (the same cycle: clones of the published copy know every kept copy), and after any successful sync
    while the target has not received this dataset yet (a target added to the file later).
    Keys of ``publish:`` besides ``to``: ``name`` (the remote's name, default
    ``published``) and ``force``; for a RIA store ``public_url`` and ``include_embargoed``.
    """
    global _missing_logged
    if not entry.publish:
        return
    from neuromirror.util.text import one_line

    try:
        from neuromirror.publish import sibling as pub
    except ImportError:
        if not _missing_logged:
            log.warning("publish targets are configured but this neuromirror has no publish step; not publishing")
            _missing_logged = True
        return
    to = str(entry.publish["to"])
    if to.startswith("ria+"):
        _publish_ria(mirror, entry, source, report, rt, recorded)
        return
    if to.startswith("github:"):
        _publish_github(mirror, entry, source, rt)
        return
    name = str(entry.publish.get("name") or "published")
    try:
        if report.outcome != "ok" and not recorded:
            ds = mirror.root / source.relpath
            if published_url(ds, name) == pub.target_url(to, source.id, source.relpath):
                return
        published = mirror.publish(
            _spec(source), to, name=name, force=bool(entry.publish.get("force")), min_free=entry.options.get("min_free")
        )
        result = _one(published, pub.SiblingsReport).published[0]
        rt.publish_error = None
        outcome = {"to": to, "outcome": "ok", "clone_url": result.url, "clone": clone_command(result.url)}
        log.info("%s: published: %s", source.id, result.line())
    except Exception as exc:
        rt.publish_error = one_line(exc)
        outcome = {"to": to, "outcome": "error", "error": rt.publish_error}
        log.warning("%s: publishing to %s failed: %s", source.id, to, rt.publish_error)
    mirror.records.record_in_run(source.id, outcome, field="publish")


def _publish_ria(
    mirror: Mirror, entry: SourceConfig, source: Source, report: SyncReport, rt: SourceRuntime, recorded: bool
) -> None:
    """Into the RIA store: every successful sync (an unchanged one only while the store lacks the source or
    a keep ``recorded`` copies since)."""
    from neuromirror.publish.ria.layout import RiaStore
    from neuromirror.publish.ria.publish import RiaReport, ora_url_for
    from neuromirror.util.text import one_line

    cfg = entry.publish or {}
    to = str(cfg["to"])
    public = cfg.get("public_url")
    outcome: dict[str, Any] = {"to": to}
    try:
        store = RiaStore.from_url(to)
        if report.outcome != "ok" and not recorded:
            expected = f"{ora_url_for(store, str(public) if public else None)}#~{source.relpath}"
            if published_url(mirror.root / source.relpath, "published") == expected:
                return
        published = mirror.publish(
            _spec(source),
            to,
            include_embargoed=bool(cfg.get("include_embargoed")),
            force=bool(cfg.get("force")),
            public_url=str(public) if public else None,
            min_free=entry.options.get("min_free"),
        )
        res = _one(published, RiaReport)
        rt.publish_error = None
        if res.held_back:
            outcome.update(outcome="held back", why=res.held_back[0].why)
            log.info("%s: not published to %s: %s", source.id, to, res.held_back[0].why)
        else:
            done = res.published[0]
            outcome.update(
                outcome="ok",
                clone_url=done.clone_url,
                clone=clone_command(done.clone_url),
                updated=done.updated,
                created=done.created,
            )
            if res.content_held_back:  # the status page says what stayed out, and why
                outcome["content_held_back"] = res.content_held_back[0].why
            log.info("%s: published: %s", source.id, done.line())
    except Exception as exc:
        rt.publish_error = one_line(exc)
        outcome.update(outcome="error", error=rt.publish_error)
        log.warning("%s: publishing to %s failed: %s", source.id, to, rt.publish_error)
    mirror.records.record_in_run(source.id, outcome, field="publish")


def _publish_github(mirror: Mirror, entry: SourceConfig, source: Source, rt: SourceRuntime) -> None:
    """Into GitHub (``publish: {to: github:ORG, zarr_org: ORG2, github_api: URL}``): after every sync, since a
    repository whose refs and metadata GitHub already has costs no call (the publisher's state file)."""
    from neuromirror.publish.github.publish import GitHubReport
    from neuromirror.util.text import one_line

    cfg = entry.publish or {}
    to = str(cfg["to"])
    outcome: dict[str, Any] = {"to": to}
    try:
        zarr_org, api = cfg.get("zarr_org"), cfg.get("github_api")
        published = mirror.publish(
            _spec(source),
            to,
            force=bool(cfg.get("force")),
            zarr_org=str(zarr_org) if zarr_org else None,
            github_api=str(api) if api else None,
        )
        res = _one(published, GitHubReport)
        done = res.published[0]
        rt.publish_error = None
        outcome.update(outcome="ok", clone_url=done.url, clone=clone_command(done.url), api_calls=res.api_calls)
        log.info("%s: published: %s", source.id, done.line())
    except Exception as exc:
        rt.publish_error = one_line(exc)
        outcome.update(outcome="error", error=rt.publish_error)
        log.warning("%s: publishing to %s failed: %s", source.id, to, rt.publish_error)
    mirror.records.record_in_run(source.id, outcome, field="publish")


def _spec(source: Source) -> Spec:
    """The spec naming exactly ``source`` for :meth:`neuromirror.api.Mirror.publish`."""
    archive, name = source.id.split(":", 1)
    return Spec(archive, name)


def _one(published: Published, kind: type[_R]) -> _R:
    """The publish report (of the target's ``kind``) of the one source :meth:`~neuromirror.api.Mirror.publish` was
    given; its errors raised as one (the step records it, the sync stands)."""
    if published.errors:
        raise RuntimeError("; ".join(published.errors))
    assert isinstance(published.report, kind), published.report
    return published.report


def clone_command(url: str) -> str:
    """What a lab member types to get the dataset (quoted: a RIA URL holds ``#`` and ``~``)."""
    return f"datalad clone {shlex.quote(url)}"


def publish_facts(records: Records, sid: Optional[str] = None) -> dict[str, dict]:
    """Per source (or only ``sid``), its publish state for the status pages: the last publish record,
    with ``clone``/``clone_url`` from the last publish that succeeded (a later failure or hold-back
    does not hide where the dataset is); sources never published are left out."""
    out: dict[str, dict] = {}
    for source, record in records.reports("publish", sid):
        facts = out.get(source, {})
        kept = {k: facts[k] for k in ("clone", "clone_url") if k in facts}
        out[source] = {**kept, **record} if record.get("outcome") != "ok" else record
    return out


def add_publishes(report: dict, records: Records) -> None:
    """Each published source's publish record on its status row (``publish``)."""
    facts = publish_facts(records)
    rows: list[SourceStatus] = report.get("sources", [])
    for row in rows:
        if row.source in facts:
            row.add(publish=facts[row.source])
