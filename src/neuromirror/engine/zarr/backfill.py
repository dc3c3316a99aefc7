"""Manifests for the DANDI Zarr states a mirror held before it wrote manifests.

A sync writes a Zarr state's manifest when it lists that state (:mod:`.job`).  A Zarr mirrored
by a release that wrote none, and unchanged since, is never listed again: the run takes it as
held (:class:`.run.ZarrRun`), so its state would stay without a manifest for ever.  Such a Zarr
is listed once more, by the sync's executor beside the changed Zarrs' jobs: if the listing gives
the held checksum, its manifest is written; nothing is committed either way.  Each (Zarr,
checksum) is tried once (the index's cache records the outcome; a job that failed is tried again
next sync), so a Zarr the archive lists only through its API (no S3 versionIds: no manifest can be
made) is not listed every sync.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor, Future
from datetime import datetime, timezone
from pathlib import Path

from neuromirror.engine.zarr.job import ZarrJob, write_state_manifest
from neuromirror.engine.zarr.manifest import manifest_path
from neuromirror.records import SourceState
from neuromirror.sources import urlrule
from neuromirror.sources.dandi import embargo
from neuromirror.sources.dandi import zarr_listing as zl
from neuromirror.sources.dandi.client import DandiAPI
from neuromirror.util.dates import parse_iso

log = logging.getLogger("neuromirror.dandi")

#: index cache: "<zarr id> <checksum>" of held Zarr states whose manifest was tried -> the outcome
BACKFILL_CACHE = "zarr-manifest"
WRITTEN = "written"


def backfill_manifest(job: ZarrJob) -> str:
    """List a held Zarr and write its state's manifest: ``"written"``, or why not (a worker's job)."""
    api = DandiAPI(job.dandiset, api_url=job.api_url, token=embargo.api_key())
    objs, how = zl.list_zarr(api, job.zarr_id, job.s3_base, job.embargoed, job.checksum)
    if how not in zl.VERSIONED:
        return f"listed by {how}: no S3 versionIds to write"
    entries, leaves, _, _ = zl.object_entries(api, job.zarr_id, objs, job.s3_base, job.embargoed, urlrule.admissible)
    computed = zl.checksum_of(leaves)
    if computed != job.checksum:
        return f"the listing gives checksum {computed}, not the held {job.checksum}: written when next mirrored"
    dates = [o.modified for o in objs if isinstance(o.modified, datetime)]
    date = max(dates) if dates else (parse_iso(job.modified) or datetime.now(timezone.utc))
    write_state_manifest(job, objs, entries, job.checksum, date)
    return WRITTEN


class ManifestWanted:
    """Does a held Zarr state still need its manifest (none on disk, never tried)? Asked per Zarr."""

    def __init__(self, state: SourceState, root: str) -> None:
        self.state, self.root = state, Path(root)

    def __call__(self, zarr_id: str, checksum: str) -> bool:
        if manifest_path(self.root, zarr_id, checksum).exists():
            return False
        return self.state.cache_get(BACKFILL_CACHE, f"{zarr_id} {checksum}") is None


class Backfill:
    """The held Zarrs of one snapshot whose state has no manifest yet: submitted, then awaited."""

    def __init__(self, state: SourceState, root: str, executor: Executor) -> None:
        self.state, self.executor = state, executor
        self.wanted = ManifestWanted(state, root)
        self._futures: list[tuple[str, str, Future[str]]] = []

    def submit(self, job: ZarrJob) -> None:
        key = f"{job.zarr_id} {job.checksum}"
        self._futures.append((job.path, key, self.executor.submit(backfill_manifest, job)))

    def wait(self, dandiset: str) -> int:
        """Await the jobs and record each outcome; a failure is a warning, never the sync's. How many were written."""
        written = 0
        for path, key, future in self._futures:
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - a manifest is a view of the state; the sync goes on
                log.warning("DANDI:%s: Zarr %s: its manifest failed (tried again next sync): %s", dandiset, path, exc)
                continue
            if outcome == WRITTEN:
                written += 1
            else:
                log.warning("DANDI:%s: Zarr %s: no manifest for its held state: %s", dandiset, path, outcome)
            self.state.cache_put(BACKFILL_CACHE, key, outcome[:500])
        self._futures.clear()
        return written
