"""The API's verbs that hand a pin's files out: ``get``, ``reproduce``, ``urls`` and ``search``.

Each is what its command does (``neuromirror get``, ``reproduce``, ``urls``, ``search``), with keyword arguments
for the options, errors of :mod:`neuromirror.errors` naming the thing, and a
:class:`~neuromirror.results.Result` back whose ``write_json(out)`` writes the bytes the command's ``--json``
prints (``to_json()`` is that JSON as Python).  ``urls`` streams: its result is read once, as it is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

from neuromirror.api.finding import Found, Listing, Urls, search_filters, search_pairs, urls_spec
from neuromirror.api.inputs import PathLike, jobs_of, spec_of
from neuromirror.api.reading import Reading
from neuromirror.errors import BadInput, Unavailable
from neuromirror.pin.handout import (
    Got,
    Printed,
    Reproduced,
    check_version_paths,
    lock_paths,
    recorded_version,
    store_preparer,
)
from neuromirror.records import ProgressCallback
from neuromirror.results import Item, Status
from neuromirror.spec import Spec
from neuromirror.util.disk import DiskFull, check_room, filesystem, is_full
from neuromirror.util.progress import BYTES_STAGE, BYTES_STAGES, COUNT_STAGES, FILES_STAGE, ByteBar

if TYPE_CHECKING:
    from neuromirror.pin.fetch import Retrieval
    from neuromirror.read.ome.regions import TiffReport
    from neuromirror.read.pinned import Pin


class Bars:
    """The command line's progress, a ``progress(stage, done, total)`` callback like any other: each bytes stage
    (``get LABEL``, ``keep LABEL``, ``verify LABEL``, ``restore LABEL``) a tqdm bar of bytes on stderr, with the
    ``N/M files`` (objects, copies) its count stage of the same LABEL tells (``files LABEL``...).  ``get``'s bar
    is named LABEL (a version, or a subdataset of one: ``SPEC@VERSION PATH``), the others' by their stage
    (``keep SPEC@VERSION -> STORE``, ``verify SPEC@VERSION``).  A bar ends when its files and bytes are all
    there, or when another stage begins (a failed file leaves it short), or when closed (``with Bars() as
    bars``).  The other stages (a version's start and end, ``reproduce``'s datasets) draw nothing: the bars
    say it."""

    def __init__(self) -> None:
        self._bars: dict[str, ByteBar] = {}
        self._files: dict[str, tuple[int, int, str]] = {}  # label -> (done, total, unit) last told

    def __call__(self, stage: str, done: int, total: Optional[int]) -> None:
        word, _, label = stage.partition(" ")
        if word in COUNT_STAGES and label and total is not None:
            self._files[label] = (done, total, word)
            if label in self._bars:
                self._bars[label].files(done, total, word)
        elif word in BYTES_STAGES and label:
            self._bytes(stage if word != BYTES_STAGE else label, label, done, total)
        else:
            return self.close()
        bar = self._bars.get(label)
        files_done, files, _ = self._files.get(label, (0, -1, ""))
        if bar is not None and files_done == files and bar.full():
            self._bars.pop(label).close()

    def _bytes(self, title: str, label: str, done: int, total: Optional[int]) -> None:
        bar = self._bars.get(label)
        if bar is None:
            self.close(but=label)
            told = self._files.get(label)
            shown = (told[0], told[1]) if told else None
            bar = self._bars[label] = ByteBar(title, total, shown, told[2] if told else FILES_STAGE)
        bar.bytes(done, total)

    def close(self, but: str = "") -> None:
        """Every bar ended (``but`` that one's files kept: its bar is about to begin)."""
        for label in list(self._bars):
            self._bars.pop(label).close()
        self._files = {but: self._files[but]} if but in self._files else {}

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Tiff(Printed):
    """What ``get ... region=, format=NAME`` wrote: the file's path, the image, level, region and chunks read
    (``report``: the registered format's, :class:`~neuromirror.read.ome.regions.TiffReport` for ``tiff``)."""

    def __init__(self, report: TiffReport) -> None:
        self.report = report

    def items(self) -> list[Item]:
        return [Item(Status.OK, str(self.report.path), f"{self.report.source}@{self.report.version}")]

    def to_json(self) -> dict[str, Any]:
        return self.report.to_json()

    def lines(self) -> list[str]:
        return [self.report.line()]


#: the free space git-annex keeps when it fetches content (its ``annex.diskreserve`` default: 100 MB)
ANNEX_RESERVE = 100_000_000


def _get_bytes(rec: Mapping[str, Any], paths: Sequence[str]) -> tuple[int, bool]:
    """What a get of the recorded version ``rec`` writes, known before it starts: the files asked (subdatasets'
    too) and the dataset's git objects, which the clone copies; and whether any of it is annexed content."""
    from neuromirror.annex.tree import iter_version
    from neuromirror.util import gitutil

    ds = Path(rec["dataset"])
    files = list(iter_version(ds, rec["commit"], recurse=True, urls=False, paths=paths))
    counted = dict(
        line.split(": ", 1) for line in gitutil.out(ds, "count-objects", "-v", check=False).splitlines() if ": " in line
    )
    git = 1024 * sum(int(counted.get(k, "0")) for k in ("size", "size-pack"))
    return sum(f.size or 0 for f in files) + git, any(f.key for f in files)


def _unmade_if_full(to: Path, existed: bool, label: str, why: str) -> None:
    """A get the disk could not hold leaves no half-made clone (one that was there before stays), said in one line."""
    from neuromirror.pin.clone import remove_clone

    if not is_full(RuntimeError(why)):
        return
    if not existed and to.exists():
        remove_clone(to)
    raise DiskFull(
        f"{filesystem(to)} is full: the get of {label} into {to} stopped, nothing of it left (free space there)"
    )


class Getting(Reading):
    """The API's verbs that hand a pin's files out."""

    # -- get and reproduce: a version back in a directory ----------------------------------------------------
    def get(
        self,
        spec: Union[str, Spec],
        paths: Sequence[str] = (),
        *,
        to: PathLike,
        from_url: Optional[str] = None,
        store: Optional[str] = None,
        jobs: int = 4,
        allow_ip: Optional[str] = None,
        progress: Optional[ProgressCallback] = None,
        region: Optional[str] = None,
        res: Optional[int] = None,
        channel: Optional[str] = None,
        format: Optional[str] = None,  # noqa: A002  (the command's --format)
        force: bool = False,
    ) -> Union[Got, Tiff]:
        """Clone the dataset of ``spec`` (``SPEC[@VERSION|@COMMIT]``; default the latest version) into the directory
        ``to``, check out the version's commit and fetch the content of ``paths`` (default all), git-annex checking
        every byte (``neuromirror get``); a path the version lacks raises :class:`~neuromirror.errors.NoSuchPath`
        before anything is cloned.  ``from_url``: clone a published copy instead (then the mirror need not
        hold the source); ``store``: the lab's store to fall back to when the archive's URLs fail (else
        ``$NEUROMIRROR_STORE``).  ``progress(stage, done, total)``: ``("SPEC@VERSION", 0, 1)`` when the version
        starts and ``(..., 1, 1)`` when it is done; between them, as git-annex reports them (at most ten
        times a second, and once at the end), ``("files SPEC@VERSION", files done, files)`` and
        ``("get SPEC@VERSION", bytes done, bytes)`` of the files not yet here (a subdataset's:
        ``SPEC@VERSION PATH``); :class:`Bars` draws them.  A file that failed is an ``error`` item of the
        :class:`Got` (``.check()`` raises); a clone that cannot be made raises
        :class:`~neuromirror.errors.Unavailable`.

        ``region="X0:X1,Y0:Y1,Z0:Z1", format="tiff"`` (``res``, ``channel``, one image path): that region of the
        pinned OME-Zarr image (a BOSS channel) written to the file ``to`` in a format registered with
        :mod:`neuromirror.readers` (``tiff``: a TIFF stack, :mod:`neuromirror.read.ome.regions`; the names:
        ``api.formats()``), nothing cloned: a :class:`Tiff`; an existing file there is refused unless ``force``.
        A get whose bytes do not fit on the disk of ``to`` raises ``DiskFull`` before it starts (one line naming the
        file system and how much more is needed), and one the disk fills anyway leaves nothing half-made."""
        s = spec_of(spec)
        jobs_of(jobs)
        if s.is_glob:
            raise BadInput(f"{s}: get takes one source, not a pattern")
        if format is not None or region is not None or res is not None or channel is not None:
            if from_url or store:
                raise BadInput(f"{s}: a region is read from the mirror's pin, not from a published copy or a store")
            return self._region(s, paths, Path(to), region, format, res=res, channel=channel, jobs=jobs, force=force)
        return self._clone(s, paths, Path(to), from_url, _Fetching(store, jobs, allow_ip, progress))

    def _clone(self, s: Spec, paths: Sequence[str], to: Path, from_url: Optional[str], how: _Fetching) -> Got:
        """``get``'s clone: checked first (``to``, the paths), then cloned, checked out and fetched."""
        from neuromirror.pin.fetch import get_version
        from neuromirror.pin.retrieve import RetrieveError

        if to.exists() and not to.is_dir():
            raise BadInput(f"{to}: exists and is not a directory (get clones into a new directory or a previous clone)")
        rec, relpath = recorded_version(self.datasets, s, from_url)
        if rec is not None and paths:
            check_version_paths(rec, paths)
        notes: list[str] = []
        label = f"{s.source}@{rec['version'] if rec else s.version or 'latest'}"
        existed = to.exists()
        if rec is not None:
            need, annexed = _get_bytes(rec, paths)
            reserve = (ANNEX_RESERVE, "git-annex's annex.diskreserve") if annexed else (0, "")
            check_room(
                to, need, f"the get of {label} into {to}", option=0, reserve=reserve
            )  # no min_free: not the mirror's disk
        _tell(how.progress, label, 0, 1)
        try:
            got = get_version(s, rec, relpath, to, paths, _retrieval(from_url, how, notes))
        except RetrieveError as exc:
            _unmade_if_full(to, existed, label, str(exc))
            raise Unavailable(f"get {label} failed: {exc}") from None
        for _, why in got.report.failed:
            _unmade_if_full(to, existed, label, why)
        _tell(how.progress, label, 1, 1)
        return Got(s, got, notes)

    def _region(
        self,
        s: Spec,
        paths: Sequence[str],
        to: Path,
        region: Optional[str],
        format: Optional[str],
        **how: Any,  # noqa: A002
    ) -> Tiff:
        """``get``'s region as a TIFF: every check first (:class:`BadInput`), then the pinned chunks."""
        from neuromirror.read.ome.level import RegionError
        from neuromirror.read.ome.regions import Region, RegionRequest
        from neuromirror.readers import formats

        writer, known = formats().get(format or ""), ", ".join(formats()) or "none"
        if writer is None and format is not None:
            raise BadInput(f"format {format!r}: not a registered format ({known})").at("format")
        if writer is None or not region:
            raise BadInput(
                f"a region, a level (res) and a channel are read in a format ({known}), which needs a region"
            )
        if len(paths) > 1:
            raise BadInput(f"{s}: a region is read from one image, give one path at most")
        box = Region.parse(region)  # BadInput, about the region
        image = paths[0] if paths else None
        request = RegionRequest(self.root, str(self.datasets.index_path), s, box, to, image=image, **how)
        try:
            return Tiff(writer.write(request))
        except RegionError as exc:
            raise Unavailable(f"get failed: {exc}") from None

    def reproduce(
        self,
        lock: PathLike,
        paths: Sequence[str] = (),
        *,
        to: PathLike,
        content: bool = True,
        keep_failed: bool = False,
        from_url: Optional[str] = None,
        store: Optional[str] = None,
        jobs: int = 4,
        allow_ip: Optional[str] = None,
        progress: Optional[ProgressCallback] = None,
    ) -> Reproduced:
        """Rebuild every dataset of the lock file ``lock`` in ``to``/its path: clone, check out the locked commit,
        check the tag and the file list against the lock, fetch the content of ``paths`` (relative to ``to``;
        default all; ``content=False``: none) with git-annex verifying every byte (``neuromirror reproduce``).
        A dataset that differs is an ``error`` item of the :class:`~neuromirror.pin.handout.Reproduced`, its
        clone removed unless ``keep_failed``.  ``progress("reproduce", done, total)``: datasets done, before each
        and at the end; the content's ``("files SPEC@VERSION", ...)`` and ``("get SPEC@VERSION", ...)`` as
        :meth:`get` tells them."""
        from neuromirror.pin import lockfile
        from neuromirror.pin.fetch import reproduce_dataset

        try:
            locked = lockfile.read(str(lock))
        except lockfile.LockError as exc:
            raise BadInput(str(exc)) from None
        base = Path(to).absolute()
        chosen = lock_paths(paths, locked)
        notes: list[str] = []
        how = _retrieval(from_url, _Fetching(store, jobs, allow_ip, progress), notes)
        done: list[dict[str, Any]] = []
        for d in locked.datasets:
            _tell(progress, "reproduce", len(done), len(locked.datasets))
            done.append(reproduce_dataset(d, base, chosen, how, content=content, keep_failed=keep_failed))
        _tell(progress, "reproduce", len(done), len(locked.datasets))
        return Reproduced(str(lock), base, done, notes)

    # -- urls: where each file's bytes are served, for ever ---------------------------------------------------
    def urls(
        self,
        spec: Union[str, Spec, None] = None,
        paths: Sequence[str] = (),
        *,
        lock: Optional[PathLike] = None,
        check: bool = False,
        neuroglancer: Optional[str] = None,
        references: bool = False,
        view: Optional[str] = None,
    ) -> Union[Urls, Listing]:
        """Each file of the version ``spec`` names (or of every version the lock file ``lock`` names; ``spec`` then
        picks one source), under ``paths``, with the URL that serves exactly its bytes: the archive's pinned URL,
        else the lab's store's, else why none does (``neuromirror urls``).  ``check``: each URL asked once (a dead
        archive URL falls back to the store; a file no URL serves is an ``error`` item, remembered for every
        reader).  The :class:`~neuromirror.api.finding.Urls` result streams: iterate it or ``write_json(out)``
        once, files arriving as the trees are read, never all in memory.

        ``neuroglancer=VIEW_URL``: each OME-Zarr image with its Neuroglancer links instead; ``references=True``
        (``view``: the view's base URL): each NWB/HDF5 file with its LINDI reference instead (a :class:`Listing`)."""
        s = urls_spec(spec, lock, paths)
        for what, url in (("neuroglancer", neuroglancer), ("view", view)):
            if url is not None and not url.startswith(("http://", "https://")):
                raise BadInput(f"{what} {url}: give the view's base URL (http://HOST:PORT/)")
        if view is not None and not references:
            raise BadInput(f"view {view}: the view's URL goes with references=True")
        pins = self._pins(s, lock)
        if neuroglancer:
            return Listing.images(pins, paths, neuroglancer)
        if references or view:
            return Listing.by_reader("references", self.root, pins, paths, view)
        return Urls(pins, list(paths), self.datasets.index_path, self.root, check=check)

    def _pins(self, spec: Optional[Spec], lock: Optional[PathLike]) -> list[Pin]:
        """The pins ``spec`` or ``lock`` names, each in this mirror."""
        from neuromirror.read.pinned import from_lock, resolve

        if lock is not None:
            return from_lock(self.datasets, str(lock), spec.source if spec else None)
        assert spec is not None
        return [resolve(self.datasets, spec)]

    # -- search: which mirrored datasets hold a file, an asset, an NWB session ---------------------------------
    def search(
        self,
        *,
        sha256: Optional[str] = None,
        md5: Optional[str] = None,
        key: Optional[str] = None,
        path: Optional[str] = None,
        subject: Optional[str] = None,
        modality: Optional[str] = None,
        date_from: Optional[str] = None,
        date_to: Optional[str] = None,
        project: Optional[str] = None,
        data_level: Optional[str] = None,
        derived_from: Optional[str] = None,
        nwb_fields: Union[Mapping[str, str], Sequence[str]] = (),
        source: Optional[str] = None,
        all_versions: bool = False,
        limit: Optional[int] = None,
    ) -> Found:
        """What the index says holds a file (``sha256``, ``md5``, ``key``, ``path`` glob), which versions' metadata
        match (``subject``, ``modality``, ``date_from``/``date_to`` as YYYY[-MM[-DD]], ``project``,
        ``data_level``, ``derived_from``), or which NWB files' fields do (``nwb_fields``: ``{"location": "CA1"}``
        or ``["location=CA1"]``, read from their LINDI references): from the index alone (``neuromirror search``).
        ``source``: a source glob or an archive's name; each file state with its newest version unless
        ``all_versions``.  A malformed digest, date or field is :class:`BadInput` naming it."""
        files = dict(sha256=sha256, md5=md5, key=key, path=path, subject=subject, modality=modality, project=project)
        if nwb_fields:
            pairs = search_pairs(nwb_fields, files)
            return Found.nwb(self.index, pairs, source=source, all_versions=all_versions, limit=limit)
        more = dict(date_from=date_from, date_to=date_to, data_level=data_level, derived_from=derived_from)
        wanted = search_filters({**files, **more}, source=source, all_versions=all_versions, limit=limit)
        return Found.of(self.index, self.root, wanted)


def _tell(progress: Optional[ProgressCallback], stage: str, done: int, total: Optional[int]) -> None:
    if progress is not None:
        progress(stage, done, total)


@dataclass(frozen=True)
class _Fetching:
    """How content is fetched, as ``get`` and ``reproduce`` were asked."""

    store: Optional[str]
    jobs: int
    allow_ip: Optional[str]
    progress: Optional[ProgressCallback]


def _retrieval(from_url: Optional[str], how: _Fetching, notes: list[str]) -> Retrieval:
    """How ``get`` and ``reproduce`` fetch: ``progress`` told the bytes; a store's notes into ``notes``."""
    from neuromirror.pin.fetch import Retrieval

    return Retrieval(
        from_url=from_url,
        allow_ip=how.allow_ip,
        jobs=how.jobs,
        progress=how.progress,
        prepare_for=lambda recorded: store_preparer(how.store, recorded, notes),
    )
