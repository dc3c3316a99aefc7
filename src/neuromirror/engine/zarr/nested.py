"""Zarrs nested in an asset (AIND's ``*.zarr/`` prefixes): each its own dataset, fed while the listing streams.

(The names this module writes and that are read back, from before issue 51, still say "store" of a
Zarr: the commit trailers ``Neuromirror-Store*``, the index caches ``store-commit``, ``store-size``
and ``store-manifest``, the staging directory, the timing phases ``store-*`` and a new dataset's
git-annex description (``...: store PATH``).  They stay; nothing here is the lab's store of ``keep``.)

An AIND light-sheet asset holds several OME-Zarrs of up to millions of objects.
As files of the asset's one dataset they made every clone carry a tree of millions of
entries and every sync hold all their paths.  Here each Zarr becomes a subdataset
of the asset's dataset, like a DANDI Zarr asset (:mod:`.run`), written by the same
dataset code (:mod:`.dataset`), and the asset's dataset keeps the metadata and small
files: a clone of it is instant, ``datalad get -r SPIM.ome.zarr`` installs one Zarr.

The source lists the asset once, in key order, so a Zarr's objects come one after
another.  :meth:`NestedZarrRun.add` takes them as the source makes them into entries and
spools them (paths inside the Zarr) to a named file, with a digest of their
identities; when the next Zarr (or the end) comes, the Zarr is closed:

* **unchanged** — the index's cache maps (Zarr path, digest) to the commit the last
  synced version recorded at that path: taken from memory, no git process;
* otherwise a :class:`.nested_job.NestedZarrJob` goes to the executor (a thread pool, or the
  Dask cluster's per-part tasks), which commits the Zarr's whole tree in its dataset
  (one commit, trailers ``Neuromirror-Store`` and ``-Store-Digest``) while the listing
  goes on with the next Zarr.

:meth:`NestedZarrRun.entries` then gives the parent its :class:`SubdatasetEntry` per Zarr.

**Conversion.**  A mirror made before Zarrs were datasets holds a Zarr's objects as
files of the parent.  The Zarr's dataset is then built in a staging place inside the
parent's ``.git``; the parent's one commit replaces the files by the gitlink, and
:meth:`NestedZarrRun.settle` moves the dataset into place.  Older versions keep their trees
(the files, with their URLs in the parent's git-annex branch) and reproduce as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
from concurrent.futures import Executor, Future
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional, Union

from neuromirror.engine.zarr.dataset import assume_unchanged, exclude, excluded, tag, unexclude
from neuromirror.engine.zarr.manifest import ManifestRows, manifest_root
from neuromirror.engine.zarr.nested_job import (
    NestedZarrJob,
    NestedZarrRecord,
    mirror_nested_zarr,
    write_nested_manifest,
)
from neuromirror.errors import NeuromirrorError
from neuromirror.index.nested import NESTED_SIZE_CACHE, nested_size_value
from neuromirror.index.trailers import parse_trailers
from neuromirror.index.zarr_catalog import NESTED_COMMIT_CACHE  # "<zarr path> <digest>" -> its commit
from neuromirror.records import SUBDATASET, AnnexEntry, Entry, Snapshot, SourceState, SubdatasetEntry
from neuromirror.sources.urlrule import Tally
from neuromirror.util import gitutil, timing
from neuromirror.util.memory.spool import Spool

log = logging.getLogger("neuromirror.zarr")
#: index cache: "<zarr path> <digest>" of the held Zarr states whose manifest is written (the name from before issue 51)
NESTED_MANIFEST_CACHE = "store-manifest"

#: inside the parent's git directory: spools, and the datasets of Zarrs that replace files (the name from before
#: issue 51: a stopped run's leftover is found by it)
STAGING = "neuromirror-stores"


class NestedZarrError(NeuromirrorError, RuntimeError):
    """A Zarr's objects did not come together (the listing was not in key order)."""


class _Open:
    """The Zarr being listed: its spool, digest and newest modification time."""

    def __init__(self, path: str, spool_path: Path):
        self.path = path
        self.spool_path = spool_path
        self.spool: Spool[Entry] = Spool(spool_path)
        self.digest = hashlib.sha256()
        self.newest: Optional[datetime] = None
        self.bytes = 0  # what its objects weigh, for the version's totals (index.nested)
        #: the Zarr's manifest rows, spooled beside its entries; None once an object lacks S3's fields
        self.rows: Optional[ManifestRows] = ManifestRows(spool_path.with_suffix(".manifest"))

    def manifest_row(
        self, inner: Entry, modified: Optional[datetime], version_id: Optional[str], etag: Optional[str]
    ) -> None:
        if self.rows is None:
            return
        if modified is None or not etag:
            self.rows.discard()
            self.rows = None
            return
        url = inner.urls[0] if type(inner) is AnnexEntry and inner.urls else None
        self.rows.add(inner.path, version_id, modified, inner.size or 0, etag, url)


class NestedZarrRun:
    """The nested Zarrs of one snapshot of one parent dataset (see the module)."""

    def __init__(self, owner: str, snap: Snapshot, state: SourceState, parent: Path, executor: Executor, describe: str):
        self.owner = owner  # the source's id, for messages
        self.snap = snap
        self.state = state
        self.parent = parent
        self.executor = executor
        self.describe = describe  # "<what> mirrored from <where>": each Zarr's description adds its path
        self.staging_dir = parent / ".git" / STAGING
        self.in_flight = excluded(parent)
        self.tally = Tally()
        self._open: Optional[_Open] = None
        self._done: set[str] = set()
        self._slots: dict[str, Union[SubdatasetEntry, Future[NestedZarrRecord]]] = {}
        self._staged: dict[str, Path] = {}  # Zarr path -> its dataset's staging place
        self._sizes: dict[str, str] = {}  # Zarr path -> its objects' count and bytes (index.nested)
        self._registered: dict[str, str] = {}  # Zarr path -> commit, for settle()
        if self.staging_dir.exists():  # a run that stopped before its parent's commit: start again
            shutil.rmtree(self.staging_dir)

    # -- while the listing streams -----------------------------------------
    def add(
        self,
        zarr: str,
        entry: Entry,
        modified: Optional[datetime],
        version_id: Optional[str] = None,
        etag: Optional[str] = None,
    ) -> None:
        """One object of ``zarr`` (``entry.path`` in the parent), in listing order; S3's ``version_id``
        and ``etag`` of it, when given, go into the Zarr's manifest (:mod:`.manifest`)."""
        if self._open is None or self._open.path != zarr:
            self._close()
            if zarr in self._done:
                raise NestedZarrError(
                    f"{self.owner}: the objects of Zarr {zarr!r} did not come together: the listing is not in key order"
                )
            self.staging_dir.mkdir(parents=True, exist_ok=True)
            self._open = _Open(zarr, self.staging_dir / f"{_slug(zarr)}.spool")
        o = self._open
        inner = _inner(zarr, entry, self.tally)
        o.spool.add(inner)
        o.manifest_row(inner, modified, version_id, etag)
        _fold(o.digest, inner)
        o.bytes += inner.size or 0
        if modified is not None and (o.newest is None or modified > o.newest):
            o.newest = modified

    def _close(self) -> None:
        o, self._open = self._open, None
        if o is None:
            return
        self._done.add(o.path)
        digest = o.digest.hexdigest()[:32]
        self._sizes[o.path] = nested_size_value(o.spool.count, o.bytes)
        held = self._held(o.path, digest)
        if held is not None:
            self._keep_held(o, digest)
            self._slots[o.path] = SubdatasetEntry(o.path, held, "./" + o.path, None)
            return
        o.spool.flush()
        o.spool.close()
        self._slots[o.path] = self.executor.submit(mirror_nested_zarr, self._job(o, digest))

    def _keep_held(self, o: _Open, digest: str) -> None:
        """A Zarr the mirror holds at this state: its spooled listing is dropped, and a Zarr mirrored
        before manifests were written gets one now, from this listing (once: the cache says so)."""
        o.spool.close()
        os.unlink(o.spool_path)
        if o.rows is None:
            return
        root = manifest_root(self.state)
        base = o.rows.close().base
        written = f"{o.path} {digest}"
        if root and base and self.state.cache_get(NESTED_MANIFEST_CACHE, written) is None:
            write_nested_manifest(root, str(o.rows.path), base, self.owner)
            self.state.cache_put(NESTED_MANIFEST_CACHE, written, "1")
        o.rows.discard()

    def _job(self, o: _Open, digest: str) -> NestedZarrJob:
        """What a worker needs to make the Zarr's dataset commit of this listing; the parent's own files
        of the Zarr (a conversion) are staged aside, and the Zarr kept out of the parent's status."""
        rows = o.rows.close() if o.rows is not None else None
        place = self.parent / o.path
        staging = None
        if place.is_dir() and not (place / ".git").exists():  # the parent's files of the Zarr (conversion)
            staging = self.staging_dir / _slug(o.path)
            self._staged[o.path] = staging
        exclude(self.parent, [o.path])  # out of the parent's status until its commit registers it
        return NestedZarrJob(
            path=o.path,
            dataset=str(place),
            staging=str(staging) if staging else None,
            spool=str(o.spool_path),
            count=o.spool.count,
            digest=digest,
            description=f"{self.describe}: store {o.path}",  # git-annex description: the word from before issue 51
            subject=f"{self.owner} {o.path}",
            date=o.newest or datetime.now(timezone.utc),
            manifests=manifest_root(self.state) if rows is not None and rows.base else None,
            manifest_rows=str(rows.path) if rows is not None else None,
            manifest_base=rows.base if rows is not None else None,
            source=self.owner,
        )

    def _held(self, path: str, digest: str) -> Optional[str]:
        """The Zarr dataset's commit of this state, if the mirror holds it (see the module)."""
        cached = self.state.cache_get(NESTED_COMMIT_CACHE, f"{path} {digest}")
        prev = self.state.previous(path)
        recorded = prev.checksum if prev is not None and prev.checksum_kind == SUBDATASET else None
        if cached is not None and cached == recorded and path not in self.in_flight:
            return cached
        place = self.parent / path
        if not (place / ".git").is_dir():
            return None
        body = gitutil.out(place, "log", "-1", "--format=%H%n%B", check=False)
        head, _, message = body.partition("\n")
        if head and parse_trailers(message).get("store-digest") == digest:
            self.state.cache_put(NESTED_COMMIT_CACHE, f"{path} {digest}", head)
            return head
        return None

    # -- after the listing -------------------------------------------------
    def entries(self) -> Iterator[SubdatasetEntry]:
        """Each Zarr's subdataset entry, in listing order, once its job is done."""
        self._close()
        spent = timing.current()
        wait = timing.Stopwatch()  # a generator: its time (the consumer's between items too) added once it is done
        for path, slot in self._slots.items():
            if isinstance(slot, Future):
                rec = slot.result()
                if spent is not None:  # the job's own phases (summed over workers)
                    spent.merge(rec.timings, prefix="store-")
                self.state.cache_put(NESTED_COMMIT_CACHE, f"{path} {rec.digest}", rec.commit)
                log.info("%s: Zarr %s: %d objects, commit %s", self.owner, path, rec.objects, rec.commit[:10])
                slot = SubdatasetEntry(path, rec.commit, "./" + path, rec.datalad_id)
            self._registered[path] = slot.commit
            if path in self._sizes:
                self.state.cache_put(NESTED_SIZE_CACHE, slot.commit, self._sizes.pop(path))
            yield slot
        if spent is not None:
            spent.add("store-wait", wait.seconds())
        warning = self.tally.warning(self.snap.label or "the Zarrs")
        if warning:
            self.snap.warnings.append(warning)

    def settle(self) -> None:
        """The parent's commit is made: Zarrs built aside move into place, get the version's tag,
        and leave the parent's status and exclude file."""
        for path, staging in self._staged.items():
            place = self.parent / path
            if place.is_dir() and not place.is_symlink():
                shutil.rmtree(place)  # the checkout left the gitlink's empty directory (or debris)
            place.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, place)
        if self.snap.tag:
            for path, commit in self._registered.items():
                tag(
                    self.parent / path,
                    self.snap.tag,
                    commit,
                    self.snap.tag_message or self.snap.message,
                    self.snap.date,
                )
        assume_unchanged(self.parent, set(self._registered))
        unexclude(self.parent, set(self._registered))
        if self.staging_dir.exists():
            shutil.rmtree(self.staging_dir, ignore_errors=True)
        self._staged.clear()
        self._registered.clear()


def _inner(zarr: str, entry: Entry, tally: Tally) -> Entry:
    """The entry as the Zarr's dataset holds it: its path inside the Zarr, its URLs as the rule admits."""
    inner = dataclasses.replace(entry, path=entry.path[len(zarr) + 1 :])
    return tally.admit(inner) if type(inner) is AnnexEntry else inner


def _fold(digest: hashlib._Hash, inner: Entry) -> None:
    """The Zarr's digest: what each of its files became, in listing order."""
    digest.update(inner.identity.encode("utf-8", "surrogateescape") + b"\0")


def _slug(path: str) -> str:
    return hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]


class NestedZarrCheck:
    """The Zarrs of a snapshot listed again to be compared, not written (``verify --archive``).

    Each Zarr is digested as :class:`NestedZarrRun` digests it and named by the commit the mirror
    made of that state (the index cache), or by the digest when the mirror holds no such state:
    the comparison then reports the Zarr as differing.
    """

    def __init__(self, state: SourceState):
        self.state = state
        self.tally = Tally()
        self._digests: dict[str, hashlib._Hash] = {}

    def add(
        self,
        zarr: str,
        entry: Entry,
        modified: Optional[datetime],
        version_id: Optional[str] = None,
        etag: Optional[str] = None,
    ) -> None:
        _fold(self._digests.setdefault(zarr, hashlib.sha256()), _inner(zarr, entry, self.tally))

    def entries(self) -> Iterator[SubdatasetEntry]:
        for path, h in self._digests.items():
            digest = h.hexdigest()[:32]
            commit = self.state.cache_get(NESTED_COMMIT_CACHE, f"{path} {digest}") or "not mirrored"
            yield SubdatasetEntry(path, commit, "./" + path, None)

    def settle(self) -> None:
        pass
