"""A version's asset listing, spooled to disk, and what a resync takes from the last synced state.

The listing of a dandiset of 10^5 assets must not live in memory, must refuse a page
the archive repeats, and, on a resync, must not cost a metadata GET per asset the mirror
already holds: a DANDI asset never changes (new content makes a new asset id), so an
asset id found at the path where the last sync recorded it is that file again
(:class:`Reuse`).  Which assets are small text files for git is decided here too, since
a file in git is never reused.
"""

from __future__ import annotations

from typing import Iterator, Optional

from neuromirror.records import SHA256, AnnexEntry, SourceState, VersionFile
from neuromirror.sources.dandi.changes.stamp import Mark
from neuromirror.util.dates import parse_iso
from neuromirror.util.memory.spool import Spool

PAGE_SIZE = 1000
TEXT_EXTENSIONS = {".json", ".jsonld", ".yaml", ".yml", ".tsv", ".csv", ".txt", ".md", ".rst", ".bib", ".cff"}
TEXT_NAMES = {"README", "CHANGES", "LICENSE", "CITATION"}
GIT_MAX_BYTES = 1 << 20
#: the metadata fields a blob asset's entry is made from (the listing keeps only these)
BLOB_METADATA = ("digest", "contentSize", "contentUrl")
#: a resync lists with metadata after all once more assets than both of these need it (see Reuse)
REFETCH_MIN = 200
REFETCH_SHARE = 0.10


class Listing(Spool):
    """A version's asset records on disk, refusing an asset id seen twice (a repeated page).

    With ``reuse`` (a resync), assets wait a page at a time to be looked up in
    the last synced state together; a reusable one is spooled as the fields of
    its file (a :data:`Reused` tuple), the others as they came (dicts).  ``flush``
    before reading ``count`` or iterating.
    """

    def __init__(self, reuse: Optional[Reuse] = None) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self._reuse = reuse
        self._page: list[dict] = []
        #: the newest asset listed (the watermark a resync reads changes down to: :mod:`.changes`)
        self.newest: Optional[Mark] = None
        self.zarrs = False  # it holds a Zarr asset
        self.by_changes = False  # made from the draft's changes (:mod:`.changes.listing`)
        #: only the changes, over the last synced state's other files (``Snapshot.over_head``): the paths they name
        self.over_head: Optional[frozenset[str]] = None

    def add_asset(self, asset: dict) -> bool:
        """Spool ``asset``; False when its id was listed already."""
        if asset["asset_id"] in self.ids:
            return False
        self.ids.add(asset["asset_id"])
        self._note_newest(asset)
        self.zarrs = self.zarrs or bool(asset.get("zarr"))
        if self._reuse is not None:
            self._page.append(asset)
            if len(self._page) >= PAGE_SIZE:
                self.flush()
            return True
        md = asset.get("metadata")
        if isinstance(md, dict) and asset.get("blob") and not asset.get("zarr"):
            # a blob asset needs only these (see _resolve/_entry); pickling the whole
            # metadata was 1-2 s of a 10^5-asset listing, and 4x the spool's size
            asset = {**asset, "metadata": {k: md[k] for k in BLOB_METADATA if k in md}}
        super().add(asset)
        return True

    def _note_newest(self, asset: dict) -> None:
        if self.newest is None:
            when = parse_iso(asset.get("modified"))
            if when is not None:
                self.newest = Mark(when, asset["asset_id"])
        else:
            self.newest = self.newest.later(asset)

    def flush(self) -> None:
        if self._reuse is not None and self._page:
            for record in self._reuse.records(self._page):
                super().add(record)
            self._page = []


class Reuse:
    """The files of the last synced state a resync takes as they are, found while listing.

    A DANDI asset never changes: new content or new metadata makes a new asset
    id.  So where the draft still has, at a path, the asset id the last sync
    recorded there, the file's key, size and URLs are what a listing with
    metadata (and the pin cache) would give again, and the resync lists
    without ``metadata=1`` (4.5x less JSON to parse on the stand-in, more on
    the archive, whose asset metadata is richer) and makes no metadata or pin
    look-up for it.  That holds only for what the last sync made the same
    way, hence the guards: an annexed SHA256 file (not a text file in git, a
    Zarr, a pending asset), its URLs under this run's API URL
    (``--dandi-api`` may point elsewhere now), every other URL pinned with
    ``?versionId=`` (an unpinned one means the HEAD failed or the bucket did
    not say: a full resync would ask again), and no embargo now or at the last
    sync (lifting it changes URLs under fixed asset ids; checked by
    :meth:`DandiSource._reuse_for`).  The archive changing the form of its S3
    URLs under fixed asset ids would go unnoticed until the asset changes.

    Every other asset needs its metadata, one GET each (``METADATA_WORKERS``
    at a time): a round trip and a request's overhead at the archive apiece
    (~1 ms of CPU here, ~0.1 s of latency from afar), where the listing with
    metadata costs the parse of ~1 KB of JSON per asset of the whole version
    (~100 MB at 10^5) in pages of 1000.  When more than ``REFETCH_SHARE`` of
    the version and more than ``REFETCH_MIN`` assets need their metadata (a
    large upload, a mirror whose URLs are not pinned), the GETs would cost
    about as much as that listing or more, and load the archive with
    thousands of requests: the listing stops as soon as that is known and the
    version is listed again with metadata, as a cold mirror does.  Below
    ``REFETCH_MIN`` the GETs take about the wall time of one listing page.
    """

    def __init__(self, state: SourceState, api_url: str, known: Optional[dict] = None) -> None:
        self._state = state
        self._api = api_url.rstrip("/") + "/"
        self.to_fetch = 0  # assets of this listing that need their metadata
        self._known = known or {}  # zarr ids whose checksum is known: their assets need no metadata

    def restart(self) -> None:
        """A new listing attempt."""
        self.to_fetch = 0

    def too_many(self, total: Optional[int]) -> bool:
        """Whether a listing with metadata is cheaper than the GETs to make (see the class)."""
        return total is not None and self.to_fetch > max(REFETCH_MIN, REFETCH_SHARE * total)

    def records(self, page: list[dict]) -> Iterator[dict | tuple]:
        """The page's assets as the listing keeps them: the reusable ones as their files' fields.

        One look-up of the page's paths in the last synced state: memory for a
        page of files, not for the whole state (10^5 files with their URLs are
        ~100 MB), and each asset is looked up once.
        """
        candidates = [self._candidate(a) for a in page]
        paths = [a["path"] for a, candidate in zip(page, candidates) if candidate]
        many = getattr(self._state, "previous_many", None)  # IndexState has it; a plain SourceState may not
        if many is not None:
            found: dict[str, VersionFile] = many(paths)
        else:
            found = {p: f for p in paths if (f := self._state.previous(p)) is not None}
        for asset, candidate in zip(page, candidates):
            prev = found.get(asset["path"]) if candidate else None
            if prev is not None and self.reusable(asset, prev):
                yield (asset["asset_id"], prev.path, prev.key, prev.size, prev.urls, prev.checksum)
            else:
                if not (asset.get("zarr") and asset.get("zarr") in self._known):
                    self.to_fetch += 1
                yield asset

    @staticmethod
    def _candidate(asset: dict) -> bool:
        size = asset.get("size")
        return (
            bool(asset.get("blob"))
            and not asset.get("zarr")
            and isinstance(asset.get("path"), str)
            and type(size) is int
        )

    def reusable(self, asset: dict, prev: VersionFile) -> bool:
        """Whether ``prev`` (the last state's file at the asset's path) is the asset's file again."""
        path, size = asset["path"], asset["size"]
        if (
            prev.remote_id != asset["asset_id"]
            or prev.checksum_kind != SHA256
            or prev.key is None
            or prev.size != size
            or is_text_asset(path, size)
        ):
            return False
        api = self._api
        on_api = False  # at least one URL under this run's API, every other one pinned
        for u in prev.urls:
            if u.startswith(api):
                on_api = True
            elif "?versionId=" not in u:
                return False
        return on_api


#: a listed asset whose file is the last synced state's, as the listing spools it:
#: (asset_id, path, key, size, urls, checksum) — a plain tuple pickles 2x faster than a NamedTuple
Reused = tuple


def reused_entry(record: tuple) -> AnnexEntry:
    asset_id, path, key, size, urls, checksum = record
    return AnnexEntry(path, key, size, urls, SHA256, checksum, asset_id)


def is_text_asset(path: str, size: int) -> bool:
    """Whether the asset is a small text file, kept in git: by its extension (``posixpath.splitext``'s: the
    last dot's, not one a name begins with) or its name.  Asked of every file of a resync's last state
    (:mod:`.changes.listing`): string methods, 5x cheaper than ``basename`` and ``splitext``."""
    if size > GIT_MAX_BYTES:
        return False
    name = path[path.rfind("/") + 1 :]
    dot = name.rfind(".")
    if dot > 0 and name[:dot].strip("."):
        return name[dot:].lower() in TEXT_EXTENSIONS
    return name.upper() in TEXT_NAMES
