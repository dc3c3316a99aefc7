"""One level of a pinned OME-Zarr image: what its metadata says, and its chunks read from their pinned copies.

The metadata (``.zattrs``, the level's ``.zarray``) and every chunk are read through ``neuromirror://``
(:mod:`neuromirror.read.fsspec_fs`): a chunk from its pinned URL, else from a store of the lab's that keeps
it.  A BOSS chunk has no pinned URL (the BOSS keeps no history); one no store keeps is read from the BOSS
by its recorded cutout URL (:func:`neuromirror.sources.boss.chunks.read_chunk`, with the user's token, only
to a host the user or the mirror's own sync named), and like every chunk its bytes are checked against
its git-annex key: a BOSS that serves other bytes now than at the pin is an error, never a wrong voxel.
A chunk the pin does not have (outside a BOSS mirror's ``--bbox``) is the array's fill value, as zarr reads it.

Zarr v2 only (what BOSS mirrors and NGFF 0.4 images are): raw chunks, or compressed ones when
``numcodecs`` (zarr-python's codecs) is installed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from neuromirror import archives
from neuromirror.annex.keys import key_checksum, key_hash, log_path
from neuromirror.annex.logs import web_urls
from neuromirror.errors import NeuromirrorError, UserError
from neuromirror.read.loss import NotStreamable
from neuromirror.util import gitutil

AXES = ("z", "y", "x")


class RegionError(NeuromirrorError):
    """A chunk of the pin could not be read as it was pinned (one line; the command exits 1)."""


@dataclass(frozen=True)
class Level:
    """One level of an OME-Zarr at a pin: where its array is and how its chunks are laid out."""

    path: str  # the array's neuromirror:// path: ARCHIVE/NAME@COMMIT/x.ome.zarr/0
    name: str  # as the user names it: "image8.ome.zarr level 1"
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    fill: Any
    order: str
    separator: str
    codecs: tuple[dict, ...]  # the filters, then the compressor (decoded in reverse); () for raw chunks
    zyx: tuple[int, int, int]  # the positions of the z, y and x axes in ``shape``
    start: tuple[int, int, int]  # the extent a region may take, z, y, x: a BOSS level's recorded start...
    stop: tuple[int, int, int]  # ... and stop, else 0 and the array's shape

    def extent(self) -> str:
        """``X0:X1,Y0:Y1,Z0:Z1`` of the whole level, as ``--region`` takes it."""
        return ",".join(f"{s}:{e}" for s, e in reversed(list(zip(self.start, self.stop))))


def read_json(fs: Any, path: str, what: str) -> dict:
    try:
        doc = json.loads(fs.cat_file(path))
    except FileNotFoundError:
        raise UserError(f"{what}: no {path.rsplit('/', 1)[-1]} at this pin") from None
    except ValueError as exc:
        raise UserError(f"{what}: {path.rsplit('/', 1)[-1]} is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{what}: {path.rsplit('/', 1)[-1]} is not a JSON object")
    return doc


def open_level(fs: Any, image: str, res: Optional[int], what: str) -> Level:
    """Level ``res`` of the OME-Zarr image at ``image`` (a neuromirror:// path): the multiscale dataset whose
    path is ``res`` (a BOSS level's number), else the ``res``-th; None: the first (the finest)."""
    attrs = read_json(fs, f"{image}/.zattrs", what)
    scales = attrs.get("multiscales") or [{}]
    datasets = [str(d.get("path")) for d in scales[0].get("datasets") or [] if isinstance(d, dict)]
    if not datasets:
        raise UserError(f"{what}: not an OME-Zarr image (no multiscales datasets in .zattrs)")
    level = _chosen(datasets, res, what)
    name = f"{what} level {level}"
    meta = _zarray(fs, f"{image}/{level}", name)
    shape = tuple(int(n) for n in meta["shape"])
    zyx = _spatial_axes(scales[0].get("axes"), shape, name)
    start, stop = _extent(attrs, level, shape, zyx)
    compressor = meta.get("compressor")
    return Level(
        path=f"{image}/{level}",
        name=name,
        shape=shape,
        chunks=tuple(int(n) for n in meta["chunks"]),
        dtype=np.dtype(meta["dtype"]),
        fill=meta.get("fill_value"),
        order=str(meta.get("order") or "C"),
        separator=str(meta.get("dimension_separator") or "."),
        codecs=tuple(meta.get("filters") or ()) + ((compressor,) if compressor else ()),
        zyx=(zyx[0], zyx[1], zyx[2]),
        start=start,
        stop=stop,
    )


def _chosen(datasets: list[str], res: Optional[int], what: str) -> str:
    """The path of level ``res``: the dataset of that path when all are numbered (a BOSS level's number),
    else the ``res``-th; None: the first (the finest)."""
    numbered = all(p.isdigit() for p in datasets)
    if res is None:
        return datasets[0]
    if numbered and str(res) in datasets:
        return str(res)
    if not numbered and 0 <= res < len(datasets):
        return datasets[res]
    raise UserError(f"{what} has no level {res} (levels: {', '.join(datasets)})")


def _extent(
    attrs: dict, level: str, shape: tuple[int, ...], zyx: tuple[int, ...]
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(start, stop), z, y, x, that a region may take: a BOSS level's recorded extent, else the array's."""
    boss = (archives.image_facts(attrs).get("levels") or {}).get(level) or {}
    start = tuple(int(n) for n in boss.get("start_zyx") or (0, 0, 0))
    stop = tuple(int(n) for n in boss.get("stop_zyx") or (shape[i] for i in zyx))
    return (start[0], start[1], start[2]), (stop[0], stop[1], stop[2])


def _zarray(fs: Any, level: str, name: str) -> dict:
    try:
        meta = json.loads(fs.cat_file(f"{level}/.zarray"))
    except FileNotFoundError:
        v3 = fs.exists(f"{level}/zarr.json")
        raise UserError(f"{name}: {'a Zarr v3 array, not read yet' if v3 else 'no .zarray at this pin'}") from None
    if meta.get("zarr_format") != 2 or not meta.get("shape") or len(meta["chunks"]) != len(meta["shape"]):
        raise UserError(f"{name}: not a Zarr v2 array this reader knows (.zarray: {json.dumps(meta)[:120]})")
    return meta


def _spatial_axes(axes: Any, shape: tuple[int, ...], name: str) -> tuple[int, ...]:
    """Where z, y and x are in ``shape`` (NGFF 0.4 axes, or 0.3's names; none: the last three), every
    other axis (time, channel) of length 1."""
    names = [str(a.get("name") if isinstance(a, dict) else a).lower() for a in axes or ()]
    if not names:
        names = ["?"] * (len(shape) - 3) + list(AXES)
    if len(names) != len(shape) or not set(AXES) <= set(names):
        raise UserError(f"{name}: needs z, y and x axes (it has {', '.join(names) or 'none'}, shape {shape})")
    wide = [f"{n} ({shape[i]})" for i, n in enumerate(names) if n not in AXES and shape[i] != 1]
    if wide:
        raise UserError(f"{name}: more than one {', '.join(wide)}: a TIFF region takes z, y and x only")
    return tuple(names.index(a) for a in AXES)


@dataclass
class Counts:
    """What the chunks of a read came from."""

    read: int = 0  # chunks read through neuromirror:// (pinned URL, a store's copy)
    from_boss: int = 0  # BOSS chunks no store keeps, read from the BOSS and checked against their keys
    missing: int = 0  # not in the pin: the fill value
    unchecked: int = 0  # keys with no checksum (a BOSS sync with --no-hash): as served now
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, what: str) -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)


class Chunks:
    """The chunks of one :class:`Level`, read concurrently from any thread, each checked against its key."""

    def __init__(self, fs: Any, level: Level, repo: Path, boss_url: Optional[str] = None) -> None:
        self.fs, self.level, self.repo = fs, level, repo
        self.boss_url = boss_url  # the BOSS the mirror's own sync read this dataset from (its host is trusted)
        self.counts = Counts()
        self._cat: Optional[gitutil.CatFile] = None
        self._git = threading.Lock()
        self._local = threading.local()

    def get(self, index: tuple[int, ...]) -> Optional[np.ndarray]:
        """The chunk at ``index`` (chunk numbers, one per axis) decoded to the full chunk shape; None: not in
        the pin (the fill value)."""
        path = f"{self.level.path}/{self.level.separator.join(map(str, index))}"
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            self.counts.add("missing")
            return None
        key = str(info.get("key") or "")
        cutouts = self.cutouts(key, index) if info.get("served_by") == "none" else []
        if cutouts:  # a BOSS chunk no store keeps: no URL serves it, so to the BOSS at once
            return self._decode(path, self._boss_chunk(key, index, cutouts))
        try:
            data = self.fs.cat_file(path)
            self.counts.add("read")
        except NotStreamable as exc:
            cutouts = self.cutouts(key, index)
            if not cutouts:
                raise RegionError(str(exc)) from None
            return self._decode(path, self._boss_chunk(key, index, cutouts))
        if info.get("served_by") != "git":
            self._check(path, key, data)
        return self._decode(path, data)

    def _boss_chunk(self, key: str, index: tuple[int, ...], cutouts: list[Any]) -> bytes:
        """A chunk from the BOSS, checked against its key once, where it was read (:meth:`_from_boss`)."""
        data = self._from_boss(key, index, cutouts)
        self.counts.add("from_boss")
        if key_hash(key) is None:
            self.counts.add("unchecked")
        return data

    def close(self) -> None:
        if self._cat is not None:
            self._cat.close()

    def _check(self, path: str, key: str, data: bytes) -> None:
        want = key_checksum(key)  # an XMPETAG key (a multipart Zarr's chunk) too: its multipart ETag
        if want is None:
            self.counts.add("unchecked")
            return
        digest = want.new()
        digest.update(data)
        got = digest.hexdigest()
        if got != want.digest:
            raise RegionError(f"{path}: its bytes are not those of its key {key} ({want.algorithm} {got[:12]}...)")

    def _decode(self, path: str, data: bytes) -> np.ndarray:
        lv = self.level
        if lv.codecs:
            try:
                from numcodecs import get_codec
            except ImportError:
                raise RegionError(f"{lv.name}: compressed chunks need numcodecs (pip install zarr)") from None
            for codec in reversed(lv.codecs):
                data = bytes(get_codec(codec).decode(data))
        if len(data) != int(np.prod(lv.chunks)) * lv.dtype.itemsize:
            raise RegionError(f"{path}: {len(data)} bytes, not a chunk of {lv.chunks} {lv.dtype}")
        return np.frombuffer(data, dtype=lv.dtype).reshape(lv.chunks, order="F" if lv.order == "F" else "C")

    # -- a BOSS chunk no store keeps ------------------------------------------------
    def _boss_urls(self, key: str) -> list[str]:
        from neuromirror.sources.boss.chunks import URL_PREFIX

        with self._git:
            if self._cat is None:
                self._cat = gitutil.CatFile(self.repo)
            log = self._cat.get(f"git-annex:{log_path(key, '.log.web')}") if key else None
        return [u for u in web_urls(log) if u.startswith(URL_PREFIX)]

    def cutouts(self, key: str, index: tuple[int, ...]) -> list[Any]:
        """The BOSS cutouts recorded for ``key`` (:class:`~neuromirror.sources.boss.chunks.Chunk`), the chunk at
        ``index``'s own first: chunks of the same bytes share a key, and so its URLs."""
        from neuromirror.sources.boss.chunks import Chunk

        chunks = [Chunk.parse(u) for u in self._boss_urls(key)]
        here = tuple(index[a] for a in self.level.zyx)
        chunks.sort(key=lambda c: (c.z[0] // c.shape[0], c.y[0] // c.shape[1], c.x[0] // c.shape[2]) != here)
        return chunks

    def read_cutout(self, chunk: Any) -> bytes:
        """One cutout's chunk bytes from the BOSS (intern, this thread's client), unchecked."""
        from neuromirror.sources.boss.api import BossError
        from neuromirror.sources.boss.chunks import read_chunk

        try:
            return read_chunk(self._remote(chunk), chunk, token=self._token())
        except BossError as exc:
            raise RegionError(str(exc)) from None

    def _from_boss(self, key: str, index: tuple[int, ...], chunks: list[Any]) -> bytes:
        """The chunk read from the BOSS by the cutouts recorded for its key (:meth:`cutouts`, its own first),
        checked against the key."""
        from neuromirror.sources.boss.chunks import UPSTREAM_CHANGED

        want = key_hash(key)
        for chunk in chunks:
            data = self.read_cutout(chunk)
            if want is None or hashlib.new(want[0], data).hexdigest() == want[1]:
                return data
        raise RegionError(
            f"{UPSTREAM_CHANGED}: BOSS now serves other bytes for {self.level.name} chunk "
            f"{'/'.join(map(str, index))} ({chunks[0].where}) and no store keeps this version's chunk "
            "(a sync given a store keeps every chunk it reads)"
        )

    def _token(self) -> str:
        from neuromirror.sources.boss.api import NO_TOKEN, find_token

        token = find_token()
        if not token:
            raise RegionError(NO_TOKEN)
        return token

    def _remote(self, chunk: Any) -> Any:
        from neuromirror.sources.boss.api import boss_url_of, make_remote, split_boss_url, trusted_hosts

        remote = getattr(self._local, "remote", None)
        if remote is None:
            trusted = trusted_hosts() | ({split_boss_url(self.boss_url)[1]} if self.boss_url else set())
            if chunk.host.lower() not in {h.lower() for h in trusted}:
                raise RegionError(
                    f"refusing to send your BOSS token to {chunk.host}: not a BOSS host you configured "
                    f"(to trust it: export NEUROMIRROR_BOSS_URL={boss_url_of(chunk.protocol, chunk.host)})"
                )
            remote = self._local.remote = make_remote(chunk.protocol, chunk.host, self._token())
        return remote
