"""``audit --recheck``: the findings the archive can answer for now, asked again.

* ``no-doi``: the version's metadata (``GET <api>/dandisets/<id>/versions/<version>/``); a DOI there now
  drops the finding (the mirror records it at its next sync of a new version; this one's record stays).
* ``noncurrent-only``: a ``HEAD`` of the object without its versionId (current again: dropped), then its
  S3 versions listed (``ListObjectVersions``, anonymously): the first version or delete marker after the
  pinned one is when it became noncurrent, and ``expires`` that plus the lifecycle's 30 days (exact).

* ``manifest-drift`` (given the mirror's manifest root): the archive's manifest of each Zarr state the
  mirror recorded, one GET each, against the mirror's (:mod:`.manifests`); how far in ``coverage``.

The archive's API is the one the source's recorded download URLs name (``<api>/assets/<id>/download/``),
else ``dandi_api``.  Other kinds are left as recorded; an answer that fails leaves the finding as it was and
says why in :attr:`.findings.Audit.recheck_errors`.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import quote

from neuromirror.audit.findings import EXPIRE_AFTER, Audit, Finding
from neuromirror.util.dates import iso_z, parse_iso
from neuromirror.util.text import one_line

if TYPE_CHECKING:
    from neuromirror.index.db import Index

TIMEOUT = 30
PUBLIC_API = "https://api.dandiarchive.org/api"


def recheck(
    index: Index,
    found: Audit,
    dandi_api: Optional[str] = None,
    manifest_root: Optional[Path] = None,
    zarr_manifests: Optional[str] = None,
) -> Audit:
    """``found`` with its ``no-doi`` and ``noncurrent-only`` findings asked of the archive again, and with
    ``manifest_root`` (the mirror's) its Zarr manifests compared with the archive's (at ``zarr_manifests``,
    else in each Zarr's bucket)."""
    from neuromirror.network import identity

    session = identity.session()  # an operator sees who asks (issue 59)
    kept: list[Finding] = []
    errors: list[str] = []
    for f in found.findings:
        try:
            if f.kind == "no-doi":
                again = _doi(session, index, f, dandi_api)
            elif f.kind == "noncurrent-only":
                again = _noncurrent(session, index, f)
            else:
                again = f
        except Exception as exc:  # an archive that does not answer: the record stands
            errors.append(f"{f.source} {f.kind} {f.path or f.version}: {one_line(exc, 200)}")
            again = f
        if again is not None:
            kept.append(again)
    coverage = dict(found.coverage)
    if manifest_root is not None:
        from neuromirror.audit.manifests import drift

        drifted, how_far, failed = drift(session, index, manifest_root, found.sources, zarr_manifests)
        kept = sorted(kept + drifted, key=lambda f: (f.source, f.kind, f.path, f.version or ""))
        errors += failed
        coverage["manifest-drift"] = how_far.to_json()
    return dataclasses.replace(found, findings=kept, rechecked=True, recheck_errors=errors, coverage=coverage)


def _api_of(index: Index, sid: str, given: Optional[str]) -> str:
    head = index.head_version(sid)
    for f in index.version_files(head.id) if head is not None else []:
        for u in f.urls:
            if "/assets/" in u and u.rstrip("/").endswith("/download"):
                return u[: u.index("/assets/")]
    return (given or PUBLIC_API).rstrip("/")


def _doi(session: Any, index: Index, f: Finding, dandi_api: Optional[str]) -> Optional[Finding]:
    row = index.source(f.source)
    if row is None:  # forgotten since the audit read it
        return None
    url = f"{_api_of(index, f.source, dandi_api)}/dandisets/{row.remote_id}/versions/{f.version}/"
    r = session.get(url, timeout=TIMEOUT)
    r.raise_for_status()
    if r.json().get("doi"):
        return None
    return dataclasses.replace(f, detail=f"{f.detail}; the archive still gives none ({url})", last_seen=_now())


def _noncurrent(session: Any, index: Index, f: Finding) -> Optional[Finding]:
    head = index.head_version(f.source)
    entry = index.version_file(head.id, f.source, f.path) if head is not None else None
    pinned = next((u for u in (entry.urls if entry else ()) if "versionId=" in u and "/blobs/" in u), None)
    if pinned is None:
        return f
    plain, vid = pinned.split("?", 1)[0], pinned.split("versionId=", 1)[1].split("&", 1)[0]
    if session.head(plain, timeout=TIMEOUT, allow_redirects=False).ok:
        return None  # current again
    cut = plain.index("/blobs/")
    r = session.get(f"{plain[:cut]}/?versions&prefix={quote(plain[cut + 1 :])}", timeout=TIMEOUT)
    r.raise_for_status()
    since = _noncurrent_since(r.content, plain[cut + 1 :], vid)
    if since is None:
        return dataclasses.replace(f, last_seen=_now())
    return dataclasses.replace(f, expires=iso_z(since + EXPIRE_AFTER), expires_exact=True, last_seen=_now())


def _noncurrent_since(body: bytes, key: str, vid: str) -> Any:
    """When the version ``vid`` of ``key`` stopped being current: the oldest later version or delete marker."""
    stamps: list[tuple[Any, str]] = []
    for el in ET.fromstring(body).iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag not in ("Version", "DeleteMarker"):
            continue
        got = {c.tag.rsplit("}", 1)[-1]: c.text for c in el}
        when = parse_iso(got.get("LastModified"))
        if got.get("Key") == key and when is not None:
            stamps.append((when, str(got.get("VersionId"))))
    mine = next((w for w, v in stamps if v == vid), None)
    later = [w for w, v in stamps if v != vid and mine is not None and w >= mine]
    return min(later) if later else None


def _now() -> str:
    import time

    return iso_z(time.time())
