"""``audit --recheck``'s ``manifest-drift``: the archive's Zarr manifests against what the mirror listed.

The archive is to publish a manifest of each Zarr state in its bucket (dandi-archive
``doc/design/zarr-manifests.md``: ``zarr-manifest/{id[0:3]}/{id[3:6]}/{id}/{checksum}.json``, each
object's S3 versionId, time, size and ETag); dandidav serves Zarrs from them, so a manifest that
disagrees with the objects sends readers to bytes that are not the Zarr's (dandi-archive#2536).  The
mirror writes a manifest of the same format for each Zarr state it records, from the objects it
listed (:mod:`neuromirror.engine.zarr.manifest`).  For each such state this GETs the archive's
manifest once and compares them path by path: an object one has and the other lacks, or whose
versionId, size or ETag differ, is a finding (the time is not compared: the versionId names the
bytes, and the proof of concept's times are its listing's).

Where the archive's manifests are: ``--zarr-manifests URL`` (a manifest root, e.g. the proof of
concept's), else the Zarr's own bucket, from the S3 prefix the mirror recorded beside its manifests
(``https://dandiarchive.s3.amazonaws.com/zarr/{id}/`` -> ``.../zarr-manifest/...``).  A state the
archive publishes no manifest of (403 or 404) is no finding: it is counted in the JSON's ``coverage``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from neuromirror.audit.findings import Finding
from neuromirror.engine.zarr.manifest import base_url_of, manifest_path
from neuromirror.index.nested import ZarrState, zarr_states
from neuromirror.util.dates import iso_z
from neuromirror.util.text import one_line
from neuromirror.util.zarr_manifest import ManifestEntry, read_entries

if TYPE_CHECKING:
    from neuromirror.index.db import Index

TIMEOUT = 30
#: the archive's manifests in its bucket (the design's prefix)
ARCHIVE_PREFIX = "zarr-manifest"
#: what a manifest entry's fields are called in a finding's detail
_FIELDS = (("version_id", "versionId"), ("size", "size"), ("etag", "ETag"))


@dataclass
class ManifestCoverage:
    """How far the archive's manifests were compared: the JSON's ``coverage["manifest-drift"]``."""

    root: Optional[str]  # --zarr-manifests, or None: each Zarr's bucket
    compared: int = 0  # Zarr states whose manifests were compared
    not_written: int = 0  # states the mirror holds no manifest of (embargoed, or not listed with versions)
    not_published: list[dict[str, str]] = field(default_factory=list)  # states the archive gives none of

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest_root": self.root or f"each Zarr's bucket, {ARCHIVE_PREFIX}/",
            "zarr_states_compared": self.compared,
            "zarr_states_without_mirror_manifest": self.not_written,
            "zarr_states_not_published": self.not_published,
        }


def archive_manifest_url(root_url: Optional[str], mine: Path, state: ZarrState) -> Optional[str]:
    """Where the archive publishes the manifest of ``state`` (``mine``: the mirror's manifest of it)."""
    zid, tail = state.zarr_id, f"{state.zarr_id[:3]}/{state.zarr_id[3:6]}/{state.zarr_id}/{state.checksum}.json"
    if root_url:
        return f"{root_url.rstrip('/')}/{tail}"
    prefix = base_url_of(mine.parent)  # the Zarr's S3 prefix: <bucket URL>/zarr/<id>/
    if not prefix or not prefix.endswith(f"/zarr/{zid}/"):
        return None
    return f"{prefix[: -len(f'zarr/{zid}/')]}{ARCHIVE_PREFIX}/{tail}"


def drift(
    session: Any, index: Index, manifest_root: Path, sources: list[str], root_url: Optional[str] = None
) -> tuple[list[Finding], ManifestCoverage, list[str]]:
    """The ``manifest-drift`` findings of ``sources``, how far they looked, and the requests that failed.

    One GET per Zarr state (a state several paths or versions hold is asked once), on ``session``:
    the recheck's, named and paced as every request to the archive.
    """
    cov, found, errors = ManifestCoverage(root_url), [], []
    asked: dict[str, Optional[dict[str, ManifestEntry]]] = {}
    for state in zarr_states(index, sources):
        mine = manifest_path(manifest_root, state.zarr_id, state.checksum)
        url = archive_manifest_url(root_url, mine, state) if mine.is_file() else None
        if url is None:
            cov.not_written += 1
            continue
        try:
            if url not in asked:
                asked[url] = _archive_manifest(session, url)
            theirs = asked[url]
            if theirs is None:
                cov.not_published.append({"source": state.source, "path": state.path, "url": url})
                continue
            listed = read_entries(json.loads(mine.read_text(encoding="utf-8")))
        except Exception as exc:  # an archive that does not answer, a manifest that is not one: said, not drift
            errors.append(f"{state.source} manifest-drift {state.path}: {one_line(exc, 200)}")
            asked[url] = None
            continue
        cov.compared += 1
        found += differences(state, url, listed, theirs)
    return found, cov, errors


def _archive_manifest(session: Any, url: str) -> Optional[dict[str, ManifestEntry]]:
    """The archive's manifest at ``url``, or None when it publishes none (403: S3's answer to an
    anonymous GET of a key that is not there in a bucket that denies listing)."""
    r = session.get(url, timeout=TIMEOUT)
    if r.status_code in (403, 404):
        return None
    r.raise_for_status()
    return read_entries(r.json())


def differences(
    state: ZarrState, url: str, listed: dict[str, ManifestEntry], theirs: dict[str, ManifestEntry]
) -> list[Finding]:
    """One finding per path where the archive's manifest and the listed objects disagree."""
    now, out = iso_z(time.time()), []
    where = f"Zarr {state.zarr_id} at {state.checksum}, the archive's manifest {url}"
    for path in sorted(listed.keys() | theirs.keys()):
        ours, arch = listed.get(path), theirs.get(path)
        if arch is None:
            assert ours is not None
            what = f"listed (versionId {ours.version_id}, {ours.size} bytes) but missing from the archive's manifest"
        elif ours is None:
            what = f"in the archive's manifest (versionId {arch.version_id}, {arch.size} bytes) but not listed"
        else:
            diff = [f"{name} {getattr(arch, a)!s} in the manifest, {getattr(ours, a)!s} listed" for a, name in _FIELDS]
            what = "; ".join(d for d, (a, _) in zip(diff, _FIELDS) if getattr(arch, a) != getattr(ours, a))
            if not what:
                continue
        found = Finding(state.source, "manifest-drift", f"{state.path}/{path}", f"{what} ({where})", None, now, now)
        out.append(found)
    return out
