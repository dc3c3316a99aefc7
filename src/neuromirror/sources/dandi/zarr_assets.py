"""DANDI Zarr assets: each one a DataLad dataset of its own, a subdataset of its dandiset.

A Zarr asset is a tree of objects changed in place (same asset and zarr id), with a
tree checksum (:mod:`.zarr_listing`).  The DANDI source hands each page's Zarr assets to
a :class:`ZarrRun`, the engine's (:class:`neuromirror.engine.zarr.run.ZarrRun`), which

1. looks for a commit of the Zarr's dataset (``<dandiset dataset>/<asset
   path>``) already recording this zarr id, checksum and access (open or
   embargoed) — in the index's cache ``dandi-zarr-commit``, else in the
   dataset's trailers; for the draft only the dataset's HEAD counts, for a
   published version any commit — and uses it: **an unchanged Zarr costs no
   listing and no git process**;
2. otherwise submits a :class:`~neuromirror.engine.zarr.job.ZarrJob` to an executor;
   the job (:func:`~neuromirror.engine.zarr.job.mirror_zarr`, steps 2-4, writing only
   the Zarr's dataset) lists the Zarr and turns every object into an annexed file
   (:mod:`.zarr_listing`).  Nothing is downloaded;
3. computes the Zarr checksum from exactly those recorded keys and compares
   it with the archive's.  A mismatch re-lists once (and re-reads the
   archive's checksum); if it persists the asset is **refused** for this
   version with the reason, and no commit claims that state.  The last
   verified state of the path, if any, is kept in the version (said in the
   refusal), so that an archive in the middle of recomputing a checksum does
   not make a Zarr vanish from the mirror;
4. commits the Zarr's dataset (fast-import writer, dated with the newest
   object's LastModified, trailers ``Neuromirror-Zarr``, ``-Zarr-Checksum``,
   ``-Zarr-Access``) and returns a record; :meth:`ZarrRun.entries` turns the
   records into :class:`SubdatasetEntry` (gitlink + .gitmodules section
   ``url = ./<path>``) for the dandiset's one commit; a published version's tag
   then pins the Zarr at that commit, and the Zarr's dataset gets the same tag.

The source never writes a dataset: the run comes from the sync's state (``zarr_run``,
:class:`ZarrRuns`), which knows the mirror.  A state without one (``verify`` lists the
archive again without writing) leaves the Zarr assets pending.  Here is the source's
side: the asset's checksum as the archive states it (:func:`archive_checksum`) and the
draft's stamp of the Zarr states the mirror holds.

Incremental syncs: the draft's ``remote_modified`` gains ``zarrs=<digest>``
(of the mirrored Zarrs' ids and checksums).  The archive does not always move
the draft's ``modified`` when a Zarr changes in place, so when that token is
present :func:`unchanged` asks for the draft's Zarr assets (one listing page,
``zarr=true``) and compares: an unchanged dandiset stays O(1) API calls.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Protocol

from neuromirror.records import Entry, Pending, Snapshot, SourceState
from neuromirror.sources.dandi.zarr_listing import API_PAGE, CHECKSUM_FIELD, CHECKSUM_RE, checksum_in
from neuromirror.util.paths import check_path

if TYPE_CHECKING:
    from neuromirror.sources.dandi.source import DandiSource

log = logging.getLogger("neuromirror.dandi")

#: Zarrs mirrored at once by the default executor (each: one S3 listing, then git children)
ZARR_WORKERS = max(1, int(os.environ.get("NEUROMIRROR_ZARR_WORKERS", "4")))


class ZarrOwner(Protocol):
    """What a Zarr run reads of the DANDI source (:class:`~neuromirror.sources.dandi.source.DandiSource`)."""

    identifier: str
    api_url: str
    #: the dandiset's dataset (set by ``prepare_dataset``): the Zarrs' datasets go inside it
    dataset_path: Optional[Path]
    #: asset id -> the archive's Zarr checksum, from the draft's Zarr listing (:func:`current_digest`)
    zarr_checksums: Optional[dict[str, str]]

    def asset_metadata(self, asset_id: str) -> Any:
        """The asset's metadata, asked of the API."""

    def s3_url(self, md: dict) -> Optional[str]:
        """The asset's S3 URL among its metadata's ``contentUrl``s, if any."""


class ZarrRun(Protocol):
    """The Zarr assets of one snapshot: planned as each page comes, mirrored elsewhere, gathered at the end."""

    def add(self, assets: list[dict]) -> None:
        """Plan the assets' Zarrs; start the work for the ones the mirror does not hold yet."""

    def entries(self) -> dict[str, Optional[Entry]]:
        """Asset path -> its entry (None: nothing for it in this version), once every Zarr is done."""

    def settle(self) -> None:
        """The parent's commit of the snapshot is made: what the run kept aside until then is released."""


class ZarrRuns(Protocol):
    """What a sync's state offers as ``zarr_run``: a Zarr run writing the datasets inside ``parent``."""

    def __call__(self, source: ZarrOwner, snap: Snapshot, parent: Path, executor: Executor) -> ZarrRun: ...


class _Unwritten:
    """The Zarr assets of a snapshot nobody writes (no dataset, a state without ``zarr_run``): pending."""

    def __init__(self, snap: Snapshot):
        self.snap = snap

    def add(self, assets: list[dict]) -> None:
        for a in assets:
            self.snap.pending.append(
                Pending(a["path"], "Zarr asset: the dandiset's dataset is not known", a.get("asset_id"))
            )

    def entries(self) -> dict[str, Optional[Entry]]:
        return {}

    def settle(self) -> None:
        pass


def zarr_run(source: ZarrOwner, snap: Snapshot, state: SourceState, executor: Executor) -> ZarrRun:
    """The run of ``snap``'s Zarr assets the sync's state offers, run by ``executor``."""
    make: Optional[ZarrRuns] = getattr(state, "zarr_run", None)
    if make is None or source.dataset_path is None:
        return _Unwritten(snap)
    run = make(source, snap, source.dataset_path, executor)
    snap.__dict__.setdefault("_nm_zarr_runs", []).append(run)  # for settle()
    return run


def archive_checksum(source: ZarrOwner, asset: dict, known: dict[str, str]) -> tuple[Optional[str], str]:
    """The Zarr checksum the archive states for ``asset``, or None and why the asset waits (pending).

    From the asset's metadata, else from the draft's Zarr listing (``known``), else from
    the metadata asked of the API now (kept in ``asset``).
    """
    md = asset.get("metadata")
    asset_id: str = asset["asset_id"]  # the listing refuses an asset without one
    checksum = checksum_in(md) if md is not None else known.get(asset_id)
    if md is None and checksum is None:
        md = asset["metadata"] = source.asset_metadata(asset_id)
        checksum = checksum_in(md)
    if not isinstance(checksum, str) or not CHECKSUM_RE.match(checksum):
        reason = (
            "Zarr asset: the archive has no checksum for it yet"
            if checksum is None
            else f"Zarr asset: malformed checksum {str(checksum)[:80]!r}"
        )
        return None, reason + "; will be mirrored when it has one"
    return checksum, ""


# -- the draft's stamp: which Zarr states the mirror holds ---------------------------------
def _zarr_digest(items: list[tuple[str, str, str]]) -> str:
    h = hashlib.sha1()
    for path, zid, checksum in sorted(items):
        h.update(f"{path}\0{zid}\0{checksum}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def note_zarr(snap: Snapshot, path: str, zarr_id: str, checksum: str) -> None:
    """Add a mirrored Zarr to the snapshot's stamp; :func:`stamp_zarrs` writes it (``... zarrs=<digest>``).

    Only collected here: the digest sorts every Zarr of the snapshot, and recomputing it per
    Zarr made a dandiset of 20,000 Zarrs cost O(N^2 log N) (minutes) per sync.
    """
    seen: list[tuple[str, str, str]] = snap.__dict__.setdefault("_nm_zarrs", [])
    seen.append((path, zarr_id, checksum))


def stamp_zarrs(snap: Snapshot) -> None:
    """The snapshot's ``remote_modified`` with the digest of the Zarrs noted so far (once per page)."""
    seen: list[tuple[str, str, str]] = snap.__dict__.get("_nm_zarrs", [])
    if not seen:
        return
    base = " ".join(t for t in (snap.remote_modified or "").split(" ") if not t.startswith("zarrs="))
    snap.remote_modified = f"{base} zarrs={_zarr_digest(seen)}".strip()


def settle(snap: Snapshot) -> None:
    """Tell the snapshot's Zarr runs that the dandiset's commit of ``snap`` is made (see ``ZarrRun.settle``).

    Called by the source when the sync asks for the next snapshot, which it does only once
    this one is committed and recorded.
    """
    for run in snap.__dict__.pop("_nm_zarr_runs", []):
        done = getattr(run, "settle", None)
        if done is not None:
            done()


def unchanged(source: DandiSource, recorded: Optional[str], stamp: str) -> bool:
    """Whether the draft is as recorded: same stamp, and its Zarrs (if any) still at the recorded checksums."""
    if recorded is None:
        return False
    tokens = recorded.split(" ")
    zarrs = [t[len("zarrs=") :] for t in tokens if t.startswith("zarrs=")]
    base = " ".join(t for t in tokens if not t.startswith("zarrs="))
    if not zarrs:
        return base == stamp
    # listed even when the stamp moved: the Zarr assets' checksums then spare a resync one
    # metadata GET per unchanged Zarr asset (``source.zarr_checksums``)
    return current_digest(source) == zarrs[0] and base == stamp


def current_digest(source: DandiSource) -> Optional[str]:
    """The digest of the draft's Zarr assets as the archive lists them now (one paged call)."""
    items: list[tuple[str, str, str]] = []
    # asset id -> checksum: a resync then needs no metadata GET for an unchanged Zarr asset
    known: dict[str, str] = {}
    source.zarr_checksums = known
    try:
        for a in source.client.paginate(
            f"/dandisets/{source.identifier}/versions/draft/assets/",
            page_size=API_PAGE,
            params={"zarr": "true", "metadata": "1", "order": "path"},
        ):
            if not isinstance(a, dict) or not a.get("zarr") or check_path(a.get("path"), source.reserved):
                continue
            md = a.get("metadata")
            digest = md.get("digest") if isinstance(md, dict) else None
            checksum = digest.get(CHECKSUM_FIELD) if isinstance(digest, dict) else None
            if isinstance(checksum, str) and CHECKSUM_RE.match(checksum):
                items.append((a["path"], str(a["zarr"]), checksum))
                if isinstance(a.get("asset_id"), str):
                    known[a["asset_id"]] = checksum
    except Exception as exc:  # then list the dandiset: correct, only slower
        log.info("DANDI:%s: cannot list its Zarr assets (%s): syncing the draft", source.identifier, exc)
        return None
    return _zarr_digest(items)
