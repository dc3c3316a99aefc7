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

Incremental syncs: the archive does not move the draft's ``modified`` when a Zarr
changes in place, so the draft's ``remote_modified`` gains ``zarrs=<digest>``: the
digest of the dandiset's Zarr archives and their checksums as the archive's Zarr list
gave them before the draft was listed (:mod:`.zarr_states`, ~200 bytes a Zarr, no asset
metadata) — written only when every Zarr asset of the draft was mirrored at exactly
the checksum that list gives (or waits for one the list does not have yet), else
``zarrs=recheck``, which no listing matches: the next sync looks again.  A sync whose
recorded stamp has the token reads that list again and compares
(:func:`unchanged`): an unchanged dandiset costs a few plain GETs.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from neuromirror.records import Entry, Pending, Snapshot, SourceState
from neuromirror.sources.dandi.changes.stamp import BY_MODIFIED, NEWEST
from neuromirror.sources.dandi.zarr_listing import CHECKSUM_RE, checksum_in, expected_objects
from neuromirror.sources.dandi.zarr_states import ZarrStates
from neuromirror.util.processes import RoutedExecutor, default_processes

#: Zarrs committed at once by the default executor's threads (their git work: as the CPU allows)
ZARR_WORKERS = max(1, int(os.environ.get("NEUROMIRROR_ZARR_WORKERS", "4")))
#: small Zarrs listed at once (S3 listings are round trips: a far archive wants many in flight while
#: ZARR_WORKERS of them are committed: engine.zarr.job.mirror_zarr)
ZARR_LISTINGS = max(ZARR_WORKERS, int(os.environ.get("NEUROMIRROR_ZARR_LISTINGS", str(4 * ZARR_WORKERS))))
#: a Zarr of at least this many objects (as its checksum says) and at most PROCESS_MAX is mirrored in a
#: worker process (util.processes): its Python then runs beside the other jobs' instead of taking turns
#: with them; smaller ones are not worth an interpreter's start, larger ones take turns in threads so
#: that memory stays that of one large commit (annex.fastimport.Turns)
PROCESS_MIN = int(os.environ.get("NEUROMIRROR_ZARR_PROCESS_MIN", "2000"))
PROCESS_MAX = 200_000


def _heavy(job: Any) -> bool:
    """A Zarr job worth a worker process (by the object count its checksum states)."""
    n = expected_objects(getattr(job, "checksum", None))
    return n is not None and PROCESS_MIN <= n <= PROCESS_MAX


def zarr_executor() -> Executor:
    """The default executor of a dandiset's Zarr jobs: threads, and worker processes for the large ones."""
    from neuromirror.network import pacing, shared

    cores = default_processes()

    def processes() -> int:  # at the first large Zarr: the pins have measured how far S3 is by then
        return cores * 2 if pacing.far() else cores  # a far archive: one worker lists while another commits

    # worker processes meet the sync's own paces (one limit and Retry-After per endpoint)
    return RoutedExecutor(ZARR_LISTINGS, processes if cores else 0, _heavy, name="zarr", before_processes=shared.serve)


class ZarrOwner(Protocol):
    """What a Zarr run reads of the DANDI source (:class:`~neuromirror.sources.dandi.source.DandiSource`)."""

    identifier: str
    api_url: str
    #: the dandiset's dataset (set by ``prepare_dataset``): the Zarrs' datasets go inside it
    dataset_path: Optional[Path]
    #: zarr id -> the archive's Zarr checksum, from the dandiset's Zarr list (:mod:`.zarr_states`); drafts only
    zarr_checksums: Optional[dict[str, str]]

    def asset_metadata(self, asset_id: str) -> Any:
        """The asset's metadata, asked of the API."""

    def s3_url(self, md: dict) -> Optional[str]:
        """The asset's S3 URL among its metadata's ``contentUrl``s, if any."""

    def zarr_states(self) -> Optional[ZarrStates]:
        """The dandiset's Zarr archives as listed before the draft (:mod:`.zarr_states`), None if unknown."""


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

    From the asset's metadata, else from the dandiset's Zarr list (``known``: zarr id ->
    checksum), else from the metadata asked of the API now (kept in ``asset``).
    """
    md = asset.get("metadata")
    asset_id: str = asset["asset_id"]  # the listing refuses an asset without one
    checksum = checksum_in(md) if md is not None else known.get(str(asset.get("zarr")))
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
#: the stamp's Zarr token when the mirror does not hold the Zarr list's states: no digest matches it
RECHECK = "recheck"


def split_stamp(recorded: str) -> tuple[str, Optional[str]]:
    """A recorded ``remote_modified``: (the draft's own stamp, the ``zarrs=`` token's value or None); the
    ``newest=`` watermark (:mod:`.changes.stamp`) is in neither: it says what was listed, not what the draft is."""
    tokens = recorded.split(" ")
    zarrs = [t[len("zarrs=") :] for t in tokens if t.startswith("zarrs=")]
    base = (t for t in tokens if not t.startswith(("zarrs=", NEWEST)))  # the watermark: what was listed (.changes)
    return " ".join(base), (zarrs[0] if zarrs else None)


class _DraftStamp:
    """Whether the draft's mirrored Zarrs are the states of the Zarr list read before it was listed.

    Kept on the draft's snapshot: the Zarr run tells each mirrored Zarr (:func:`note_zarr`),
    the source each Zarr asset it hands the run (:func:`expect_zarrs`), a page at a time.
    Each Zarr is compared once, as it comes: the stamp of 20,000 Zarrs costs no sort.
    """

    def __init__(self, states: Callable[[], Optional[ZarrStates]]):
        self._get_states = states
        self._states: Optional[ZarrStates] = None
        self._asked = False
        self.has_zarrs = False  # the draft has Zarr assets (none: no token, as for a dandiset of blobs)
        self.agrees = True
        self.unnoted: set[str] = set()  # zarr ids handed to the run and not (yet) noted as mirrored

    @property
    def states(self) -> Optional[ZarrStates]:
        """The Zarr list, asked for once (the first Zarr waits for it, if it has not come yet)."""
        if not self._asked:
            self._states, self._asked = self._get_states(), True
        return self._states

    def note(self, zarr_id: str, checksum: str) -> None:
        self.unnoted.discard(zarr_id)
        states = self.states
        if states is None or states.checksums.get(zarr_id) != checksum:
            self.agrees = False  # mirrored at another state than the list says (it moved since)

    def settle_page(self) -> None:
        """The page's Zarrs are done: one not mirrored agrees only while the list has no checksum for it."""
        states = self.states
        for zarr_id in self.unnoted:
            if states is None or zarr_id not in states.checksums or states.checksums[zarr_id] is not None:
                self.agrees = False  # refused, or pending although the list has its checksum
        self.unnoted.clear()

    def token(self) -> str:
        states = self.states
        return states.digest if self.agrees and states is not None else RECHECK


def track_draft(snap: Snapshot, states: Callable[[], Optional[ZarrStates]]) -> None:
    """Make ``snap`` (the draft) stamped from the Zarr list ``states()`` gives (see the module)."""
    snap.__dict__["_nm_draft_stamp"] = _DraftStamp(states)


def expect_zarrs(snap: Snapshot, assets: list[dict]) -> None:
    """The Zarr assets of a page of the draft, as handed to its Zarr run."""
    stamp: Optional[_DraftStamp] = snap.__dict__.get("_nm_draft_stamp")
    if stamp is not None and assets:
        stamp.has_zarrs = True
        stamp.unnoted.update(str(a.get("zarr")) for a in assets)


def note_zarr(snap: Snapshot, path: str, zarr_id: str, checksum: str) -> None:
    """A Zarr the mirror holds at ``checksum``; :func:`stamp_zarrs` writes the stamp (``... zarrs=<digest>``).

    Only collected here: recomputing a digest per Zarr made a dandiset of 20,000 Zarrs
    cost O(N^2 log N) (minutes) per sync.
    """
    stamp: Optional[_DraftStamp] = snap.__dict__.get("_nm_draft_stamp")
    if stamp is not None:
        stamp.note(zarr_id, checksum)
        return
    seen: list[tuple[str, str, str]] = snap.__dict__.setdefault("_nm_zarrs", [])
    seen.append((path, zarr_id, checksum))


def stamp_zarrs(snap: Snapshot) -> None:
    """The snapshot's ``remote_modified`` with its Zarrs' token (once per page).

    The draft: the Zarr list's digest, or :data:`RECHECK` (see the module).  A published
    version (whose stamp no sync compares) keeps the digest of its mirrored Zarrs' paths,
    ids and checksums, as before.
    """
    stamp: Optional[_DraftStamp] = snap.__dict__.get("_nm_draft_stamp")
    if stamp is not None:
        stamp.settle_page()
        if not stamp.has_zarrs:
            return
        token = stamp.token()
    else:
        seen: list[tuple[str, str, str]] = snap.__dict__.get("_nm_zarrs", [])
        if not seen:
            return
        token = _zarr_digest(seen)
    base, _ = split_stamp(snap.remote_modified or "")
    snap.remote_modified = f"{base} zarrs={token}".strip()


def _zarr_digest(items: list[tuple[str, str, str]]) -> str:
    h = hashlib.sha1()
    for path, zid, checksum in sorted(items):
        h.update(f"{path}\0{zid}\0{checksum}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def settle(snap: Snapshot) -> None:
    """Tell the snapshot's Zarr runs that the dandiset's commit of ``snap`` is made (see ``ZarrRun.settle``).

    Called by the source when the sync asks for the next snapshot, which it does only once
    this one is committed and recorded.
    """
    for run in snap.__dict__.pop("_nm_zarr_runs", []):
        done = getattr(run, "settle", None)
        if done is not None:
            done()


def unchanged(
    source: ZarrOwner, recorded: Optional[str], stamp: str, wanted: Optional[Callable[[str, str], bool]] = None
) -> bool:
    """Whether the draft is as recorded: same stamp, and its Zarrs (if any) at the recorded states.

    ``wanted(zarr_id, checksum)``, the mirror's, says a held Zarr state still needs its manifest
    (mirrored by a release that wrote none): the draft is then listed once more, which writes it."""
    if recorded is None:
        return False
    base, zarrs = split_stamp(recorded)
    if base != stamp:
        return False
    if zarrs is None:
        return True
    if zarrs == BY_MODIFIED:  # no Zarr ingest since: the -modified listing's head is the recorded one
        moved = getattr(source, "head_moved", None)
        return moved is not None and not moved(recorded)
    states = source.zarr_states()
    if states is None or states.digest != zarrs:
        return False
    if wanted is not None and "embargo=" not in stamp:
        return not any(c and wanted(z, c) for z, c in states.checksums.items())
    return True
