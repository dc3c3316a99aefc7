"""BOSS (bossdb / neurodata): experiments as OME-Zarr datasets, through ``intern``.

The BOSS holds volumes, not files, behind a token-protected cutout API.  Each
experiment ``COLL/EXP`` becomes the dataset ``boss/COLL/EXP``; each of its
channels an OME-Zarr (NGFF 0.4) multiscale image ``<channel>.ome.zarr/``:

* ``.zgroup``, ``.zattrs`` (multiscales: axes with the coordinate frame's
  units, one scale per level; ``boss``: provenance) and one ``<level>/.zarray``
  per resolution level, in git;
* one annexed file per chunk, ``<level>/<z>/<y>/<x>`` (``<level>/<t>/<z>/<y>/<x>``
  with a time range): the voxels of a chunk-sized box, uncompressed, C order,
  little-endian, padded with 0 where the box passes the volume's edge.  Its
  bytes depend on the data alone, so its SHA256E key can be checked anywhere.

A chunk's URL names the cutout that fills it::

    neuromirror+boss://HOST/COLL/EXP/CHAN/RES/X0:X1/Y0:Y1/Z0:Z1/[T0:T1/]?chunk=Z,Y,X&dtype=uint8

(``neuromirror+boss+http://`` for a plain-http BOSS).  The dataset's special
remote (``git-annex-remote-neuromirror``, :mod:`neuromirror.remotes.boss`)
claims these URLs and reads the cutout with intern at retrieval time, with the
token of whoever retrieves.  No token is ever written into a dataset, the
index or a log: it is read from ``INTERN_TOKEN`` or ``~/.intern/intern.cfg``
when needed, and scrubbed from every error text.

Keys: by default every chunk is read once and gets a SHA256E key (streamed,
cutouts run concurrently, progress in bytes).  Image channels are then only
compared by metadata (experiment, coordinate frame, channel, extents): a chunk
whose URL and channel metadata are unchanged keeps its key (cached per chunk,
forever).  Annotation channels (uint64) are edited upstream, so every sync
re-reads them; a changed chunk makes a new version.  ``--no-hash`` gives image
chunks VURL keys instead (no reading); the special remote records the sha256
on first retrieval in the clone and checks later ones against it.

Every sync that changed something is a ``snapshot`` labelled by its UTC time
(``2026-11-21T10-00-00Z``), committed and tagged; the BOSS has no versions of
its own, so an old version's annotation chunk that changed upstream can no
longer be fetched: the special remote says so rather than hand over other bytes.
"""

from __future__ import annotations

import configparser
import fnmatch
import hashlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence
from urllib.parse import parse_qs, urlsplit

from neuromirror.annex.keys import sha256e_key, url_key
from neuromirror.records import (
    SHA256,
    VERIFY_ON_GET,
    AnnexEntry,
    Entry,
    GitEntry,
    ProgressCallback,
    Snapshot,
    SourceState,
)
from neuromirror.sources import ngff
from neuromirror.spec import Spec
from neuromirror.util.spool import Spool

log = logging.getLogger("neuromirror.boss")

DEFAULT_URL = "https://api.bossdb.io"
#: chunk shape (z, y, x): the BOSS cuboid, so each chunk is one server-side read
DEFAULT_CHUNK = (16, 512, 512)
SCHEME = "neuromirror+boss"  # https BOSS
SCHEME_HTTP = "neuromirror+boss+http"  # plain-http BOSS (stand-ins, private deployments)
#: the URL prefix the special remote claims (both schemes)
URL_PREFIX = "neuromirror+boss"
REMOTE_NAME = "neuromirror"
EXTERNAL_TYPE = "neuromirror"
METADATA_FILE = "boss.json"
CACHE_NAMESPACE = "boss-chunk-sha256"
DEFAULT_JOBS = 4
TIMEOUT = 120.0
NO_TOKEN = "no BOSS token: set INTERN_TOKEN or ~/.intern/intern.cfg ([Default] token = ...)"
UPSTREAM_CHANGED = "upstream data changed since this version was mirrored"
_STAMP = "%Y-%m-%dT%H-%M-%SZ"
_NAME_RE = re.compile(r"^[\w-]+$")

#: the resource fields recorded (volatile or derived fields such as lists of children are left out)
EXPERIMENT_FIELDS = (
    "name",
    "description",
    "collection",
    "coord_frame",
    "num_hierarchy_levels",
    "hierarchy_method",
    "num_time_samples",
    "time_step",
    "time_step_unit",
)
CHANNEL_FIELDS = (
    "name",
    "description",
    "type",
    "datatype",
    "base_resolution",
    "default_time_sample",
    "sources",
    "related",
    "downsample_status",
)
COORD_FIELDS = (
    "name",
    "description",
    "x_start",
    "x_stop",
    "y_start",
    "y_stop",
    "z_start",
    "z_stop",
    "x_voxel_size",
    "y_voxel_size",
    "z_voxel_size",
    "voxel_unit",
)


class BossError(RuntimeError):
    """The BOSS could not be read; the message names the server and the cause (never the token)."""


class BossAuthError(BossError):
    """No token, or the BOSS rejected it."""


# --------------------------------------------------------------------------- token and URLs


def intern_config_path() -> Path:
    return Path(os.path.expanduser("~/.intern/intern.cfg"))


def _intern_config() -> Optional[configparser.ConfigParser]:
    path = intern_config_path()
    if not path.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except configparser.Error:
        return None
    return parser


def find_token(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The user's BOSS token: ``INTERN_TOKEN``, else ``token`` in ``~/.intern/intern.cfg``.

    The file is read as intern reads it (INI; the ``Volume Service`` section
    wins over ``Project Service`` and ``Default``, since chunks are cutouts).
    Unlike intern, ``INTERN_TOKEN`` alone is enough and wins over the file, so
    a token can be given for one command.
    """
    env = os.environ if environ is None else environ
    token = (env.get("INTERN_TOKEN") or "").strip()
    if token:
        return token
    cfg = _intern_config()
    if cfg is not None:
        for section in ("Volume Service", "Project Service", "Default"):
            if cfg.has_option(section, "token"):
                value = cfg.get(section, "token").strip()
                if value:
                    return value
    return None


def require_token() -> str:
    token = find_token()
    if not token:
        raise BossAuthError(NO_TOKEN)
    return token


def scrub(text: str, token: Optional[str]) -> str:
    """``text`` with the token replaced, so that no error or log line can leak it."""
    if token and len(token) >= 4 and token in text:
        text = text.replace(token, "<token>")
    return text


def split_boss_url(url: str) -> tuple[str, str]:
    """``https://api.bossdb.io`` -> (``https``, ``api.bossdb.io``); user info is refused."""
    parts = urlsplit(url.strip() if "://" in url else "https://" + url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BossError(f"not a BOSS API URL: {url!r} (expected e.g. https://api.bossdb.io)")
    if parts.username or parts.password:
        raise BossError(
            "the BOSS URL must not carry credentials: give the token in INTERN_TOKEN or ~/.intern/intern.cfg"
        )
    if parts.path.strip("/") not in ("", "v1"):
        raise BossError(f"not a BOSS API URL: {url!r} (give the server only, e.g. https://api.bossdb.io)")
    return parts.scheme, parts.netloc


def boss_url_of(protocol: str, host: str) -> str:
    return f"{protocol}://{host}"


def trusted_hosts(environ: Optional[Mapping[str, str]] = None) -> set[str]:
    """BOSS hosts the user configured, to which the special remote may send the token.

    A dataset names its chunks' host in their URLs, and datasets can come from
    anywhere: the token goes only to the default BOSS, the host of
    ``NEUROMIRROR_BOSS_URL``, ``INTERN_HOST`` or the ``host`` of ``~/.intern/intern.cfg``.
    """
    env = os.environ if environ is None else environ
    hosts = {split_boss_url(DEFAULT_URL)[1]}
    for value in (env.get("NEUROMIRROR_BOSS_URL"), env.get("INTERN_HOST")):
        if value:
            try:
                hosts.add(split_boss_url(value)[1])
            except BossError:
                pass
    cfg = _intern_config()
    if cfg is not None:
        for section in cfg.sections() + ["DEFAULT"]:
            if cfg.has_option(section, "host"):
                try:
                    hosts.add(split_boss_url(cfg.get(section, "host"))[1])
                except BossError:
                    pass
    return {h.lower() for h in hosts}


@dataclass(frozen=True)
class Chunk:
    """One chunk file: the cutout that fills it and the full (padded) shape."""

    protocol: str
    host: str
    collection: str
    experiment: str
    channel: str
    resolution: int
    x: tuple[int, int]
    y: tuple[int, int]
    z: tuple[int, int]
    t: Optional[tuple[int, int]]
    shape: tuple[int, int, int]  # (z, y, x) of the whole chunk
    dtype: str

    @property
    def itemsize(self) -> int:
        import numpy as np

        return int(np.dtype(self.dtype).itemsize)

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2] * self.itemsize

    @property
    def cutout_path(self) -> str:
        rng = "/".join(f"{a}:{b}" for a, b in (self.x, self.y, self.z))
        tpart = f"/{self.t[0]}:{self.t[1]}" if self.t else ""
        return f"{self.collection}/{self.experiment}/{self.channel}/{self.resolution}/{rng}{tpart}"

    @property
    def remote_id(self) -> str:
        return self.cutout_path

    @property
    def url(self) -> str:
        scheme = SCHEME if self.protocol == "https" else SCHEME_HTTP
        shape = ",".join(str(n) for n in self.shape)
        return f"{scheme}://{self.host}/{self.cutout_path}/?chunk={shape}&dtype={self.dtype}"

    @property
    def where(self) -> str:
        t = f" t {self.t[0]}:{self.t[1]}" if self.t else ""
        return (
            f"{self.collection}/{self.experiment}/{self.channel} resolution {self.resolution} "
            f"x {self.x[0]}:{self.x[1]} y {self.y[0]}:{self.y[1]} z {self.z[0]}:{self.z[1]}{t}"
        )

    @classmethod
    def parse(cls, url: str) -> Chunk:
        parts = urlsplit(url)
        if parts.scheme == SCHEME:
            protocol = "https"
        elif parts.scheme == SCHEME_HTTP:
            protocol = "http"
        else:
            raise ValueError(f"not a neuromirror BOSS chunk URL: {url}")
        segs = [s for s in parts.path.split("/") if s]
        if len(segs) not in (7, 8) or not parts.netloc:
            raise ValueError(f"malformed BOSS chunk URL: {url}")
        for s in segs[:3]:
            if not _NAME_RE.match(s):
                raise ValueError(f"malformed BOSS chunk URL: {url}")
        try:
            res = int(segs[3])
            ranges = [tuple(int(v) for v in s.split(":")) for s in segs[4:]]
            q = parse_qs(parts.query)
            shape = tuple(int(v) for v in q["chunk"][0].split(","))
            dtype = q["dtype"][0]
        except (ValueError, KeyError, IndexError):
            raise ValueError(f"malformed BOSS chunk URL: {url}") from None
        if any(len(r) != 2 or r[0] < 0 or r[1] <= r[0] for r in ranges) or len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"malformed BOSS chunk URL: {url}")
        if dtype not in ("uint8", "uint16", "uint64"):
            raise ValueError(f"unsupported datatype {dtype!r} in {url}")
        x, y, z = ranges[0], ranges[1], ranges[2]
        t = ranges[3] if len(ranges) == 4 else None
        for (a, b), n in zip((z, y, x), shape):
            if (a // n) != ((b - 1) // n):
                raise ValueError(f"cutout box of {url} is not inside one chunk")
        return cls(
            protocol,
            parts.netloc,
            segs[0],
            segs[1],
            segs[2],
            res,  # type: ignore[arg-type]
            x,
            y,
            z,
            t,
            shape,
            dtype,
        )


def make_remote(protocol: str, host: str, token: str, *, timeout: float = TIMEOUT) -> Any:
    """An ``intern`` BossRemote for ``host``, with a request timeout on every service."""
    from intern.remote.boss import BossRemote

    try:  # intern turns the dict into INI text: a stray '%' in a token would fail, quoting the token
        rmt = BossRemote({"protocol": protocol, "host": host, "token": token})
    except Exception as exc:
        # the exception's text may quote part of the token: name its type only
        raise BossAuthError(
            f"cannot configure intern for {protocol}://{host} with this token "
            f"({type(exc).__name__}); check INTERN_TOKEN or ~/.intern/intern.cfg"
        ) from None
    for svc in (rmt.project_service, rmt.metadata_service, rmt.volume_service):
        opts = dict(svc.session_send_opts or {})
        opts["timeout"] = timeout
        svc.session_send_opts = opts
    return rmt


def _status(exc: BaseException) -> Optional[int]:
    resp = getattr(exc, "response", None)
    code = getattr(resp, "status_code", None)
    if isinstance(code, int):
        return code
    m = re.search(r"\((\d{3})\)", str(exc))
    return int(m.group(1)) if m else None


def _detail(exc: BaseException) -> str:
    resp = getattr(exc, "response", None)
    try:
        body = resp.json() if resp is not None else None
    except Exception:
        body = None
    if isinstance(body, dict):
        for k in ("detail", "message"):
            if isinstance(body.get(k), str):
                return body[k]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def _transient(exc: BaseException) -> bool:
    import requests

    if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)):
        return True
    code = _status(exc)
    return code in (429, 500, 502, 503, 504)


def explain(exc: BaseException, server: str, what: str, token: Optional[str]) -> BossError:
    """A one-line BossError for an intern/requests failure; the token is scrubbed."""
    import requests

    if isinstance(exc, BossError):
        return type(exc)(scrub(str(exc), token))
    code = _status(exc)
    if code == 401:
        err: BossError = BossAuthError(
            f"BOSS rejected the token (401 {_detail(exc)} from {server}): check INTERN_TOKEN or ~/.intern/intern.cfg"
        )
    elif code == 403:
        err = BossAuthError(f"BOSS at {server}: no permission to read {what} (403 {_detail(exc)})")
    elif code == 404:
        err = BossError(f"BOSS at {server}: {what} not found (404 {_detail(exc)})")
    elif isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        err = BossError(f"BOSS at {server} is unreachable ({type(exc).__name__}) while reading {what}")
    elif code is not None:
        err = BossError(f"BOSS at {server}: reading {what} failed ({code} {_detail(exc)})")
    else:
        err = BossError(f"BOSS at {server}: reading {what} failed: {_detail(exc)}")
    return type(err)(scrub(str(err), token))


def _with_retries(fn: Any, *, server: str, what: str, token: Optional[str], attempts: int = 5) -> Any:
    delay = 0.5
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:  # intern raises requests' HTTPError; transport errors too
            if attempt + 1 < attempts and _transient(exc):
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
                continue
            raise explain(exc, server, what, token) from None
    raise AssertionError("unreachable")  # pragma: no cover


def read_chunk(remote: Any, chunk: Chunk, *, token: Optional[str] = None) -> bytes:
    """The chunk file's bytes: the cutout, padded with zeros to the chunk shape, C order, little-endian."""
    import numpy as np
    from intern.resource.boss.resource import ChannelResource

    ctype = "annotation" if chunk.dtype == "uint64" else "image"
    resource = ChannelResource(chunk.channel, chunk.collection, chunk.experiment, type=ctype, datatype=chunk.dtype)
    server = boss_url_of(chunk.protocol, chunk.host)
    arr = _with_retries(
        lambda: remote.get_cutout(
            resource,
            chunk.resolution,
            list(chunk.x),
            list(chunk.y),
            list(chunk.z),
            time_range=list(chunk.t) if chunk.t else None,
            parallel=False,
        ),
        server=server,
        what=chunk.where,
        token=token,
    )
    want = (chunk.z[1] - chunk.z[0], chunk.y[1] - chunk.y[0], chunk.x[1] - chunk.x[0])
    if chunk.t:
        if arr.shape[0] != 1:
            raise BossError(f"BOSS at {server}: cutout {chunk.where} has {arr.shape[0]} time samples, expected 1")
        arr = arr[0]
    if tuple(arr.shape) != want:
        raise BossError(f"BOSS at {server}: cutout {chunk.where} has shape {tuple(arr.shape)}, expected {want}")
    dtype = np.dtype(chunk.dtype).newbyteorder("<")
    out = np.zeros(chunk.shape, dtype=dtype)
    oz, oy, ox = ((a // n) * n for (a, _), n in zip((chunk.z, chunk.y, chunk.x), chunk.shape))
    out[chunk.z[0] - oz : chunk.z[1] - oz, chunk.y[0] - oy : chunk.y[1] - oy, chunk.x[0] - ox : chunk.x[1] - ox] = arr
    return out.tobytes(order="C")


# --------------------------------------------------------------------------- settings


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        out: list[str] = []
        for v in value:
            out += _as_list(v)
        return out
    return [p.strip() for p in str(value).split(",") if p.strip()]


def _range(text: str, what: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) >= int(m.group(2)):
        raise BossError(f"{what}: expected START:STOP with START < STOP, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def parse_resolutions(value: Any) -> Optional[tuple[int, ...]]:
    """``"0,1"``, ``"0-2"``, ``[0, 2]``, ``"all"`` -> levels (None = all)."""
    items = _as_list(value)
    if not items or items == ["all"]:
        return None
    out: set[int] = set()
    for item in items:
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not m:
            raise BossError(f"--resolutions: expected e.g. 0,1 or 0-2 or all, got {item!r}")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise BossError(f"--resolutions: empty range {item!r}")
        out.update(range(lo, hi + 1))
    return tuple(sorted(out))


def parse_bbox(value: Any) -> Optional[tuple[tuple[int, int], tuple[int, int], tuple[int, int]]]:
    """``"X0:X1,Y0:Y1,Z0:Z1"`` (level-0 voxels, stops exclusive) -> ((x0, x1), (y0, y1), (z0, z1))."""
    items = _as_list(value)
    if not items:
        return None
    if len(items) != 3:
        raise BossError(f"--bbox: expected X0:X1,Y0:Y1,Z0:Z1, got {value!r}")
    x, y, z = (_range(i, "--bbox") for i in items)
    return x, y, z


def parse_time_range(value: Any) -> Optional[tuple[int, int]]:
    items = _as_list(value)
    if not items:
        return None
    if len(items) != 1:
        raise BossError(f"--time-range: expected T0:T1, got {value!r}")
    return _range(items[0], "--time-range")


def parse_chunk(value: Any) -> tuple[int, int, int]:
    """``"16x512x512"`` (z x y x x) -> (16, 512, 512)."""
    if value is None or value == "":
        return DEFAULT_CHUNK
    if isinstance(value, (list, tuple)) and len(value) == 3:
        parts = [str(v) for v in value]
    else:
        parts = re.split(r"[x,]", str(value).strip().lower())
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise BossError(f"--chunk: expected ZxYxX, e.g. 16x512x512, got {value!r}")
    return shape  # type: ignore[return-value]


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class BossSettings:
    """What to mirror and how; from ``sync`` options or a mirror definition's ``options``."""

    url: str = DEFAULT_URL
    channels: Optional[tuple[str, ...]] = None  # None = all
    resolutions: Optional[tuple[int, ...]] = None  # None = every level
    bbox: Optional[tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = None  # (x, y, z) level 0
    time_range: Optional[tuple[int, int]] = None
    hash: bool = True
    chunk: tuple[int, int, int] = DEFAULT_CHUNK
    jobs: int = DEFAULT_JOBS
    reread: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> BossSettings:
        url = options.get("boss_url") or os.environ.get("NEUROMIRROR_BOSS_URL") or DEFAULT_URL
        protocol, host = split_boss_url(str(url))
        channels = tuple(_as_list(options.get("channels"))) or None
        for ch in channels or ():
            if not _NAME_RE.match(ch):
                raise BossError(f"--channels: {ch!r} is not a BOSS channel name")
        no_hash = options.get("no_hash")
        if no_hash is None:
            no_hash = _truthy(os.environ.get("NEUROMIRROR_BOSS_NO_HASH", ""))
        jobs = options.get("boss_jobs") or os.environ.get("NEUROMIRROR_BOSS_JOBS") or DEFAULT_JOBS
        try:
            jobs = max(1, int(jobs))
        except ValueError:
            raise BossError(f"--boss-jobs: expected a number, got {jobs!r}") from None
        return cls(
            url=boss_url_of(protocol, host),
            channels=channels,
            resolutions=parse_resolutions(options.get("resolutions")),
            bbox=parse_bbox(options.get("bbox")),
            time_range=parse_time_range(options.get("time_range")),
            hash=not bool(no_hash),
            chunk=parse_chunk(options.get("chunk")),
            jobs=jobs,
            reread=bool(options.get("reread")),
        )

    @property
    def protocol(self) -> str:
        return split_boss_url(self.url)[0]

    @property
    def host(self) -> str:
        return split_boss_url(self.url)[1]

    def selection(self) -> dict[str, Any]:
        """The settings that decide which files the dataset has (recorded in boss.json)."""
        return {
            "channels": list(self.channels) if self.channels else "all",
            "resolutions": list(self.resolutions) if self.resolutions is not None else "all",
            "bbox": {"x": list(self.bbox[0]), "y": list(self.bbox[1]), "z": list(self.bbox[2])} if self.bbox else None,
            "time_range": list(self.time_range) if self.time_range else None,
            "chunk_zyx": list(self.chunk),
        }


# --------------------------------------------------------------------------- the plan


def _halve(n: int, times: int, up: bool) -> int:
    for _ in range(times):
        n = -(-n // 2) if up else n // 2
    return n


@dataclass
class LevelPlan:
    res: int
    start: tuple[int, int, int]  # (z, y, x), inclusive
    stop: tuple[int, int, int]  # (z, y, x), exclusive: the level's extent
    voxel: tuple[float, float, float]  # (z, y, x)
    lo: tuple[int, int, int]  # the selected box at this level, (z, y, x)
    hi: tuple[int, int, int]

    def grid(self, chunk: tuple[int, int, int]) -> list[range]:
        return [range(lo // c, -(-hi // c)) if hi > lo else range(0) for lo, hi, c in zip(self.lo, self.hi, chunk)]

    def count(self, chunk: tuple[int, int, int]) -> int:
        return math.prod(len(r) for r in self.grid(chunk))


@dataclass
class ChannelPlan:
    name: str
    raw: dict[str, Any]
    levels: list[LevelPlan]
    times: Optional[list[int]]  # None: the default time sample, no t axis
    data_digest: str  # what the bytes of an image chunk depend on (besides its URL)
    zattrs: bytes = b""

    @property
    def type(self) -> str:
        return str(self.raw.get("type") or "image")

    @property
    def datatype(self) -> str:
        return str(self.raw.get("datatype") or "uint8")

    @property
    def annotation(self) -> bool:
        return self.type == "annotation"

    @property
    def root(self) -> str:
        return f"{self.name}.ome.zarr"


@dataclass
class _ChunkRec:
    """A chunk entry as spooled between the passes."""

    path: str
    key: str
    size: int
    url: str
    kind: str
    sha: Optional[str]
    remote_id: str
    annotation: bool


class _CacheWriter:
    """Batches the per-chunk cache rows (one transaction per batch, not per chunk)."""

    def __init__(self, state: SourceState, batch: int = 2000):
        self.state = state
        self.batch = batch
        self.items: list[tuple[str, str]] = []

    def put(self, key: str, value: str) -> None:
        self.items.append((key, value))
        if len(self.items) >= self.batch:
            self.flush()

    def flush(self) -> None:
        items, self.items = self.items, []
        if not items:
            return
        index = getattr(self.state, "index", None)
        if index is not None and hasattr(index, "cache_put_many"):
            index.cache_put_many(CACHE_NAMESPACE, items)
        else:
            for k, v in items:
                self.state.cache_put(CACHE_NAMESPACE, k, v)


def _fields(raw: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {k: raw.get(k) for k in names}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --------------------------------------------------------------------------- the source


class BossSource:
    archive = "boss"
    reserved = (METADATA_FILE,)

    def __init__(
        self,
        collection: str,
        experiment: str,
        settings: Optional[BossSettings] = None,
        *,
        token: Optional[str] = None,
        remote: Any = None,
    ):
        self.collection = collection
        self.experiment = experiment
        self.settings = settings or BossSettings()
        self._token = token
        self._remote = remote
        self.id = f"boss:{collection}/{experiment}"
        self.remote_id = f"{collection}/{experiment}"
        self.relpath = f"boss/{collection}/{experiment}"
        self._ds: Optional[Path] = None
        self._local = threading.local()

    def __repr__(self) -> str:  # never the token
        return f"<BossSource {self.id} at {self.settings.url}>"

    # -- plumbing -------------------------------------------------------
    @property
    def token(self) -> str:
        if not self._token:
            self._token = require_token()
        return self._token

    @property
    def remote(self) -> Any:
        if self._remote is None:
            self._remote = make_remote(self.settings.protocol, self.settings.host, self.token)
        return self._remote

    def _thread_remote(self) -> Any:
        rmt = getattr(self._local, "remote", None)
        if rmt is None:
            rmt = self._local.remote = make_remote(self.settings.protocol, self.settings.host, self.token)
        return rmt

    def _call(self, what: str, fn: Any) -> Any:
        return _with_retries(fn, server=self.settings.url, what=what, token=self._token)

    def describe(self) -> str:
        return f"BOSS {self.collection}/{self.experiment} mirrored from {self.settings.url}"

    def check_access(self) -> None:
        """Read the experiment once: a missing token, a rejected one or a wrong name fails here."""
        self._call(f"experiment {self.remote_id}", lambda: self.remote.get_experiment(self.collection, self.experiment))

    # -- the dataset's special remote ------------------------------------
    def prepare_dataset(self, path: Path) -> dict[str, str]:
        """Make sure the dataset has the ``neuromirror`` special remote (autoenabled in clones).

        Its config holds the BOSS URL only; the token is read at retrieval time.
        """
        self._ds = Path(path)
        env = special_remote_env()
        uuid = _git(path, "config", "--get", f"remote.{REMOTE_NAME}.annex-uuid")
        if not uuid:
            known = _git(path, "show", "git-annex:remote.log", check=False) or ""
            if re.search(rf"(^|\s)name={REMOTE_NAME}(\s|$)", known):
                _annex(path, ["enableremote", REMOTE_NAME], env)
            else:
                _annex(
                    path,
                    [
                        "initremote",
                        REMOTE_NAME,
                        "type=external",
                        f"externaltype={EXTERNAL_TYPE}",
                        "encryption=none",
                        "autoenable=true",
                        f"url={self.settings.url}",
                    ],
                    env,
                )
            uuid = _git(path, "config", "--get", f"remote.{REMOTE_NAME}.annex-uuid")
            if not uuid:
                raise BossError(f"could not set up the {REMOTE_NAME} special remote in {path}")
        return {URL_PREFIX: uuid}

    # -- snapshots ------------------------------------------------------
    def snapshots(self, state: SourceState, progress: Optional[ProgressCallback] = None) -> Iterator[Snapshot]:
        info = self._read_metadata()
        warnings: list[str] = []
        plans = self._plan(info, warnings)
        git_entries = self._git_entries(info, plans)
        for plan in plans:
            plan.zattrs = next(e.content for e in git_entries if e.path == f"{plan.root}/.zattrs")  # type: ignore[misc]
        cache = _CacheWriter(state)
        try:
            decided = self._decide(plans, state, cache)
            chunks = self._resolve(decided, cache, progress)
        finally:
            cache.flush()  # facts about chunk bytes hold whether or not this sync completes
        try:
            entries = lambda: self._entries(git_entries, chunks)  # noqa: E731
            if self._unchanged(entries(), state):
                log.info("%s: unchanged", self.id)
                return
            now = datetime.now(timezone.utc).replace(microsecond=0)
            label = self._label(now, state)
            date = datetime.strptime(label, _STAMP).replace(tzinfo=timezone.utc)
            remote_modified = self._remote_modified(git_entries, chunks)
            meta = self._meta(info, plans, chunks)
            snap = Snapshot(
                label=label,
                kind="snapshot",
                entries=entries(),
                date=date,
                message=f"BOSS {self.remote_id} snapshot {label}",
                tag=label,
                tag_message=self._tag_message(label, info, plans, meta),
                remote_modified=remote_modified,
                meta=meta,
                warnings=warnings,
            )
            yield snap
        finally:
            chunks.close()

    # metadata ------------------------------------------------------------
    def _read_metadata(self) -> dict[str, Any]:
        from intern.resource.boss.resource import ChannelResource, CollectionResource, ExperimentResource

        rmt, c, e = self.remote, self.collection, self.experiment
        coll = self._call(f"collection {c}", lambda: rmt.get_project(CollectionResource(c)))
        exp = self._call(f"experiment {c}/{e}", lambda: rmt.get_experiment(c, e))
        exp_raw = dict(exp.raw or {})
        cf_name = exp_raw.get("coord_frame") or exp.coord_frame
        cf = self._call(f"coordinate frame {cf_name}", lambda: rmt.get_coordinate_frame(cf_name))
        cf_raw = dict(cf.raw or {}) or {k: getattr(cf, k, None) for k in COORD_FIELDS}
        names = self._call(f"channels of {c}/{e}", lambda: rmt.list_channels(c, e))
        wanted = self.settings.channels
        if wanted:
            missing = [n for n in wanted if n not in names]
            if missing:
                raise BossError(
                    f"BOSS at {self.settings.url}: experiment {c}/{e} has no channel "
                    f"{', '.join(missing)} (it has: {', '.join(names) or 'none'})"
                )
            names = [n for n in names if n in wanted]
        channels: dict[str, dict[str, Any]] = {}
        for name in names:
            ch = self._call(f"channel {c}/{e}/{name}", lambda name=name: rmt.get_channel(name, c, e))
            raw = _fields(dict(ch.raw or {}), CHANNEL_FIELDS)
            raw["metadata"] = self._kv(ChannelResource(name, c, e), f"channel {c}/{e}/{name}")
            channels[name] = raw
        return {
            "collection": {
                **_fields(dict(coll.raw or {}), ("name", "description")),
                "metadata": self._kv(CollectionResource(c), f"collection {c}"),
            },
            "experiment": {
                **_fields(exp_raw, EXPERIMENT_FIELDS),
                "metadata": self._kv(ExperimentResource(e, c), f"experiment {c}/{e}"),
            },
            "coord_frame": _fields(cf_raw, COORD_FIELDS),
            "channels": channels,
        }

    def _kv(self, resource: Any, what: str) -> dict[str, str]:
        """The resource's key-value metadata (BOSS /v1/meta); {} when the server will not say."""
        try:
            keys = self._call(f"metadata of {what}", lambda: self.remote.list_metadata(resource))
            if not keys:
                return {}
            values = self._call(f"metadata of {what}", lambda: self.remote.get_metadata(resource, list(keys)))
            return {str(k): str(v) for k, v in sorted((values or {}).items())}
        except BossAuthError as exc:
            if "rejected the token" in str(exc):
                raise
            return {}
        except BossError as exc:
            log.info("%s: no key-value metadata for %s: %s", self.id, what, exc)
            return {}

    # plan ----------------------------------------------------------------
    def _plan(self, info: dict[str, Any], warnings: list[str]) -> list[ChannelPlan]:
        s = self.settings
        exp, cf = info["experiment"], info["coord_frame"]
        n_levels = int(exp.get("num_hierarchy_levels") or 1)
        iso = exp.get("hierarchy_method") == "isotropic"
        start0 = (int(cf["z_start"]), int(cf["y_start"]), int(cf["x_start"]))
        stop0 = (int(cf["z_stop"]), int(cf["y_stop"]), int(cf["x_stop"]))
        voxel0 = (float(cf["z_voxel_size"]), float(cf["y_voxel_size"]), float(cf["x_voxel_size"]))
        if s.bbox:
            (bx0, bx1), (by0, by1), (bz0, bz1) = s.bbox
            blo, bhi = (bz0, by0, bx0), (bz1, by1, bx1)
        else:
            blo, bhi = start0, stop0
        times: Optional[list[int]] = None
        if s.time_range:
            n_t = int(exp.get("num_time_samples") or 1)
            t0, t1 = s.time_range
            if t1 > n_t:
                raise BossError(f"--time-range {t0}:{t1}: experiment {self.remote_id} has {n_t} time sample(s)")
            times = list(range(t0, t1))
        if s.resolutions is not None:
            bad = [r for r in s.resolutions if r >= n_levels]
            if bad:
                raise BossError(
                    f"--resolutions: experiment {self.remote_id} has levels 0-{n_levels - 1}, "
                    f"not {', '.join(map(str, bad))}"
                )
        plans: list[ChannelPlan] = []
        for name, raw in info["channels"].items():
            if raw.get("datatype") not in ("uint8", "uint16", "uint64"):
                warnings.append(f"channel {name}: datatype {raw.get('datatype')!r} not supported; skipped")
                continue
            levels_wanted = list(s.resolutions) if s.resolutions is not None else list(range(n_levels))
            if raw.get("downsample_status") != "DOWNSAMPLED" and any(r > 0 for r in levels_wanted):
                levels_wanted = [r for r in levels_wanted if r == 0]
                warnings.append(
                    f"channel {name} is not downsampled upstream "
                    f"({raw.get('downsample_status')}): only resolution 0 mirrored"
                )
            levels: list[LevelPlan] = []
            for r in levels_wanted:
                zr = r if iso else 0
                times_ = (zr, r, r)
                # The BOSS checks cutout ranges against the level-0 frame at every level
                # (bosscore.request.set_cutoutargs), so a level is readable from the frame's
                # start on; below it the chunks keep the fill value.
                start = start0
                stop = tuple(_halve(v, k, True) for v, k in zip(stop0, times_))
                lo = tuple(max(_halve(v, k, False), a) for v, k, a in zip(blo, times_, start))
                hi = tuple(min(_halve(v, k, True), b) for v, k, b in zip(bhi, times_, stop))
                voxel = tuple(v * 2**k for v, k in zip(voxel0, times_))
                lp = LevelPlan(r, start, stop, voxel, lo, hi)  # type: ignore[arg-type]
                if lp.count(s.chunk) == 0:
                    warnings.append(
                        f"channel {name} resolution {r}: no voxels to mirror "
                        "(outside the bounding box, or below the frame's start at this level)"
                    )
                levels.append(lp)
            if not levels:
                continue
            data_digest = _digest(
                {
                    "boss": s.url,
                    "experiment": {k: v for k, v in exp.items() if k not in ("description", "metadata")},
                    "coord_frame": {k: v for k, v in cf.items() if k != "description"},
                    "channel": {k: v for k, v in raw.items() if k not in ("description", "metadata")},
                    "chunk": list(s.chunk),
                    "layout": 1,
                }
            )
            plans.append(ChannelPlan(name, raw, levels, times, data_digest))
        if not plans:
            raise BossError(f"BOSS at {s.url}: nothing to mirror in {self.remote_id} with these settings")
        return plans

    def _chunks(self, plan: ChannelPlan) -> Iterator[tuple[str, Chunk]]:
        """(path, chunk) of every chunk file of a channel, in a fixed order."""
        s = self.settings
        cz, cy, cx = s.chunk
        for lv in plan.levels:
            gz, gy, gx = lv.grid(s.chunk)
            for t in plan.times if plan.times is not None else [None]:
                for iz in gz:
                    z = (max(iz * cz, lv.start[0]), min((iz + 1) * cz, lv.stop[0]))
                    for iy in gy:
                        y = (max(iy * cy, lv.start[1]), min((iy + 1) * cy, lv.stop[1]))
                        for ix in gx:
                            x = (max(ix * cx, lv.start[2]), min((ix + 1) * cx, lv.stop[2]))
                            chunk = Chunk(
                                s.protocol,
                                s.host,
                                self.collection,
                                self.experiment,
                                plan.name,
                                lv.res,
                                x,
                                y,
                                z,
                                (t, t + 1) if t is not None else None,
                                s.chunk,
                                plan.datatype,
                            )
                            tpart = f"{t}/" if t is not None else ""
                            yield f"{plan.root}/{lv.res}/{tpart}{iz}/{iy}/{ix}", chunk

    # git files -----------------------------------------------------------
    def _git_entries(self, info: dict[str, Any], plans: list[ChannelPlan]) -> list[GitEntry]:
        s = self.settings
        exp, cf = info["experiment"], info["coord_frame"]
        doc = {
            "boss_url": s.url,
            "collection": info["collection"],
            "experiment": exp,
            "coord_frame": cf,
            "channels": {p.name: {**p.raw, "path": p.root, "resolutions": [lv.res for lv in p.levels]} for p in plans},
            "mirror": {
                **s.selection(),
                "layout": "OME-Zarr (NGFF 0.4): <channel>.ome.zarr/<level>/[<t>/]<z>/<y>/<x>, "
                "uncompressed C-order chunks padded with 0",
                "chunk_url": f"{SCHEME if s.protocol == 'https' else SCHEME_HTTP}://{s.host}/"
                "COLL/EXP/CHAN/RES/X0:X1/Y0:Y1/Z0:Z1/[T0:T1/]?chunk=Z,Y,X&dtype=DTYPE",
            },
        }
        out = [GitEntry(METADATA_FILE, ngff.dumps(doc))]
        for p in plans:
            out += self._ngff_entries(p, info)
        return out

    def _ngff_entries(self, p: ChannelPlan, info: dict[str, Any]) -> list[GitEntry]:
        s = self.settings
        exp, cf = info["experiment"], info["coord_frame"]
        timed = p.times is not None
        axes = ngff.axes(cf.get("voxel_unit"), time=timed, time_unit=exp.get("time_step_unit"))
        t_scale = [float(exp.get("time_step") or 1)] if timed else []
        datasets = [(str(lv.res), t_scale + list(lv.voxel)) for lv in p.levels]
        n_t = int(exp.get("num_time_samples") or 1)
        provenance = {
            "api": s.url,
            "collection": self.collection,
            "experiment": self.experiment,
            "channel": p.name,
            "coord_frame": cf.get("name"),
            **{k: p.raw.get(k) for k in CHANNEL_FIELDS if k != "name"},
            "hierarchy_method": exp.get("hierarchy_method"),
            "num_hierarchy_levels": exp.get("num_hierarchy_levels"),
            "time_sample": None if timed else p.raw.get("default_time_sample"),
            "time_range": list(s.time_range) if s.time_range else None,
            "bbox": s.selection()["bbox"],
            "levels": {
                str(lv.res): {"start_zyx": list(lv.start), "stop_zyx": list(lv.stop), "voxel_size_zyx": list(lv.voxel)}
                for lv in p.levels
            },
            "chunk_zyx": list(s.chunk),
            "chunk_url": f"{SCHEME if s.protocol == 'https' else SCHEME_HTTP}://{s.host}/{self.collection}/"
            f"{self.experiment}/{p.name}/RES/X0:X1/Y0:Y1/Z0:Z1/"
            f"{'T0:T1/' if timed else ''}?chunk={','.join(map(str, s.chunk))}&dtype={p.datatype}",
        }
        zattrs = {
            "multiscales": ngff.multiscales(
                p.name,
                axes,
                datasets,
                metadata={
                    "description": p.raw.get("description") or "",
                    "method": f"BOSS downsampling ({exp.get('hierarchy_method')})",
                },
            ),
            "boss": provenance,
        }
        out = [
            GitEntry(f"{p.root}/.zgroup", ngff.dumps(ngff.zgroup())),
            GitEntry(f"{p.root}/.zattrs", ngff.dumps(zattrs)),
        ]
        for lv in p.levels:
            shape = ([n_t] if timed else []) + list(lv.stop)
            chunks = ([1] if timed else []) + list(s.chunk)
            out.append(GitEntry(f"{p.root}/{lv.res}/.zarray", ngff.dumps(ngff.zarray(shape, chunks, p.datatype))))
        return out

    # keys ----------------------------------------------------------------
    def _decide(self, plans: list[ChannelPlan], state: SourceState, cache: _CacheWriter) -> Spool:
        """Pass 1: per chunk, a known key, a VURL key, or "read" (in plan order)."""
        s = self.settings
        spool = Spool()
        for p in plans:
            prev_z = state.previous(f"{p.root}/.zattrs")
            same_meta = bool(prev_z and prev_z.checksum == hashlib.sha256(p.zattrs).hexdigest())
            for path, chunk in self._chunks(p):
                url = chunk.url
                action: tuple[str, Optional[str], Optional[str]] = ("read", None, None)
                if not p.annotation and not s.reread:
                    cached = state.cache_get(CACHE_NAMESPACE, f"{p.data_digest}:{url}")
                    prev = state.previous(path) if same_meta else None
                    if cached:
                        action = ("known", SHA256, cached)
                    elif prev and prev.urls == (url,) and prev.checksum_kind == SHA256 and prev.checksum:
                        action = ("known", SHA256, prev.checksum)
                        cache.put(f"{p.data_digest}:{url}", prev.checksum)
                    elif not s.hash:
                        action = ("vurl", VERIFY_ON_GET, None)
                spool.add((path, chunk, p.annotation, p.data_digest, action))
        return spool

    def _resolve(self, decided: Spool, cache: _CacheWriter, progress: Optional[ProgressCallback]) -> Spool:
        """Pass 2: read and hash the "read" chunks, concurrently and in order; spool the entries."""
        out = Spool()
        try:
            total = n_read = 0
            for _, chunk, _, _, (action, _, _) in decided:
                if action == "read":
                    total += chunk.nbytes
                    n_read += 1
            done = 0
            if progress and total:
                progress("reading cutouts (bytes)", 0, total)
            jobs = max(1, self.settings.jobs)
            window: deque[tuple[tuple, Optional[Future]]] = deque()
            with ThreadPoolExecutor(jobs, thread_name_prefix="boss-read") as pool:
                try:
                    for rec in decided:
                        fut = pool.submit(self._hash_chunk, rec[1]) if rec[4][0] == "read" else None
                        window.append((rec, fut))
                        while len(window) > 2 * jobs or (window and window[0][1] is None):
                            done += self._emit(out, cache, *window.popleft())
                            if progress and total:
                                progress("reading cutouts (bytes)", done, total)
                    while window:
                        done += self._emit(out, cache, *window.popleft())
                        if progress and total:
                            progress("reading cutouts (bytes)", done, total)
                except BaseException:
                    for _, fut in window:
                        if fut is not None:
                            fut.cancel()
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
            log.info("%s: %d chunks read and hashed (%d bytes), %d entries", self.id, n_read, total, out.count)
        except BaseException:
            out.close()
            raise
        finally:
            decided.close()
        return out

    def _hash_chunk(self, chunk: Chunk) -> str:
        data = read_chunk(self._thread_remote(), chunk, token=self._token)
        return hashlib.sha256(data).hexdigest()

    def _emit(self, out: Spool, cache: _CacheWriter, rec: tuple, fut: Optional[Future]) -> int:
        path, chunk, annotation, data_digest, (action, kind, sha) = rec
        read = 0
        if action == "read":
            assert fut is not None
            sha = fut.result()
            kind = SHA256
            read = chunk.nbytes
            if not annotation:  # a fact for good: these bytes under this channel metadata
                cache.put(f"{data_digest}:{chunk.url}", sha)
        if kind == SHA256:
            key = sha256e_key(sha, chunk.nbytes, path)  # type: ignore[arg-type]
        else:
            key = url_key(chunk.url, chunk.nbytes)
        out.add(
            _ChunkRec(
                path,
                key,
                chunk.nbytes,
                chunk.url,
                kind,
                sha,  # type: ignore[arg-type]
                chunk.remote_id,
                annotation,
            )
        )
        return read

    def _entries(self, git_entries: list[GitEntry], chunks: Spool) -> Iterator[Entry]:
        yield from git_entries
        for r in chunks:
            yield AnnexEntry(r.path, r.key, r.size, (r.url,), r.kind, r.sha, r.remote_id)

    def _unchanged(self, entries: Iterable[Entry], state: SourceState) -> bool:
        n = 0
        for e in entries:
            prev = state.previous(e.path)
            if prev is None or prev.identity != e.identity:
                return False
            n += 1
        return n == sum(1 for _ in state.previous_files())

    def _remote_modified(self, git_entries: list[GitEntry], chunks: Spool) -> str:
        """A digest of the metadata and of every annotation chunk's sha256."""
        h = hashlib.sha256()
        for g in git_entries:
            h.update(g.path.encode() + b"\0" + g.checksum.encode() + b"\n")
        for r in chunks:
            if r.annotation:
                h.update(r.path.encode() + b"\0" + (r.sha or "").encode() + b"\n")
        return "sha256:" + h.hexdigest()

    def _label(self, now: datetime, state: SourceState) -> str:
        known = state.labels()
        while True:
            label = now.strftime(_STAMP)
            tag_taken = self._ds is not None and bool(
                _git(self._ds, "rev-parse", "-q", "--verify", f"refs/tags/{label}", check=False)
            )
            if label not in known and not tag_taken:
                return label
            now += timedelta(seconds=1)

    def _meta(self, info: dict[str, Any], plans: list[ChannelPlan], chunks: Spool) -> dict[str, Any]:
        kinds: dict[str, set[str]] = {}
        counts: dict[str, int] = {}
        for r in chunks:
            name = r.path.split(".ome.zarr/", 1)[0]
            kinds.setdefault(name, set()).add(r.kind)
            counts[name] = counts.get(name, 0) + 1
        cf = info["coord_frame"]

        def keys_of(name: str) -> str:
            k = kinds.get(name, set())
            return k.pop() if len(k) == 1 else ("mixed" if k else "none")

        all_kinds = set().union(*kinds.values()) if kinds else set()
        return {
            "boss_url": self.settings.url,
            "collection": self.collection,
            "experiment": self.experiment,
            "coord_frame": cf.get("name"),
            "extent_xyz": [cf.get("x_stop"), cf.get("y_stop"), cf.get("z_stop")],
            "voxel_size_xyz": [cf.get("x_voxel_size"), cf.get("y_voxel_size"), cf.get("z_voxel_size")],
            "voxel_unit": cf.get("voxel_unit"),
            "keys": (VERIFY_ON_GET if all_kinds == {VERIFY_ON_GET} else "mixed" if len(all_kinds) > 1 else SHA256),
            "channels": {
                p.name: {
                    "type": p.type,
                    "datatype": p.datatype,
                    "resolutions": [lv.res for lv in p.levels],
                    "chunks": counts.get(p.name, 0),
                    "keys": keys_of(p.name),
                }
                for p in plans
            },
            "selection": self.settings.selection(),
        }

    def _tag_message(self, label: str, info: dict[str, Any], plans: list[ChannelPlan], meta: dict[str, Any]) -> str:
        exp = info["experiment"]
        lines = [f"BOSS {self.remote_id} snapshot {label}", ""]
        if exp.get("description"):
            lines.append(f"Description: {' '.join(str(exp['description']).split())}")
        for p in plans:
            m = meta["channels"][p.name]
            lines.append(
                f"Channel: {p.name} ({p.type}, {p.datatype}), resolutions "
                f"{', '.join(map(str, m['resolutions']))}, {m['chunks']} chunks, keys {m['keys']}"
            )
        lines.append(f"Source: {self.settings.url}/v1/collection/{self.collection}/experiment/{self.experiment}")
        lines.append("The BOSS keeps no history: chunks that changed upstream since this snapshot cannot be fetched.")
        return "\n".join(lines) + "\n"

    def __getstate__(self) -> dict:  # never pickle the token or clients
        d = dict(self.__dict__)
        d["_token"] = None
        d["_remote"] = None
        d["_local"] = None
        return d


# --------------------------------------------------------------------------- git helpers


def _git(repo: Path | str, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if check and proc.returncode not in (0, 1):
        raise BossError(f"git {' '.join(args[:2])} failed in {repo}: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip() if proc.returncode == 0 else ""


def special_remote_env() -> dict[str, str]:
    """Put ``git-annex-remote-neuromirror`` on PATH (for every git-annex this process runs).

    The console script sits next to the Python running neuromirror (a venv's
    ``bin/``), which need not be on PATH when neuromirror runs as ``python -m``;
    git-annex runs it for ``initremote`` and, with the batch engine, for
    ``registerurl`` (CLAIMURL).
    """
    bindir = os.path.dirname(sys.executable)
    if shutil.which("git-annex-remote-neuromirror") is None and os.path.exists(
        os.path.join(bindir, "git-annex-remote-neuromirror")
    ):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    return dict(os.environ)


def _annex(repo: Path, args: list[str], env: dict[str, str]) -> None:
    from neuromirror.util.gitutil import git_env

    proc = subprocess.run(
        ["git", "-C", str(repo), "annex", *args], capture_output=True, text=True, env=git_env({"PATH": env["PATH"]})
    )
    if proc.returncode != 0:
        err = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise BossError(
            f"git annex {args[0]} {REMOTE_NAME} failed in {repo}: {err[-1] if err else proc.returncode}"
            " (is git-annex-remote-neuromirror installed? pip install neuromirror)"
        )


# --------------------------------------------------------------------------- CLI plumbing


def add_options(group: Any) -> None:
    def add(*flags: str, **kw: Any) -> None:
        taken = getattr(group, "_option_string_actions", {})
        if any(f in taken for f in flags):
            log.debug("boss: option %s already defined", flags[0])
            return
        group.add_argument(*flags, **kw)

    add(
        "--boss-url",
        default=None,
        metavar="URL",
        help=f"BOSS: API URL (env NEUROMIRROR_BOSS_URL; default {DEFAULT_URL}); "
        "the token comes from INTERN_TOKEN or ~/.intern/intern.cfg",
    )
    add("--channels", default=None, metavar="NAMES", help="BOSS: channels to mirror, comma-separated (default: all)")
    add(
        "--resolutions",
        default=None,
        metavar="LEVELS",
        help="BOSS: resolution levels, e.g. 0,1 or 0-2 (default: all the experiment has)",
    )
    add(
        "--bbox",
        default=None,
        metavar="X0:X1,Y0:Y1,Z0:Z1",
        help="BOSS: mirror only chunks meeting this box (level-0 voxels, stops exclusive)",
    )
    add(
        "--time-range",
        default=None,
        metavar="T0:T1",
        help="BOSS: time samples T0..T1-1 as a t axis (default: the channel's default time sample, no t axis)",
    )
    add("--chunk", default=None, metavar="ZxYxX", help="BOSS: chunk shape (default 16x512x512, the BOSS cuboid)")
    add(
        "--no-hash",
        action="store_true",
        default=None,
        help="BOSS: do not read image chunks; record VURL keys checked on first retrieval "
        "(annotation channels are always read) (env NEUROMIRROR_BOSS_NO_HASH=1)",
    )
    add(
        "--reread",
        action="store_true",
        default=None,
        help="BOSS: re-read and hash image chunks too, even when their metadata did not change",
    )
    add(
        "--boss-jobs",
        type=int,
        default=None,
        metavar="N",
        help=f"BOSS: cutouts read at once (env NEUROMIRROR_BOSS_JOBS; default {DEFAULT_JOBS})",
    )


def expand(spec: Spec, options: dict) -> Iterator[BossSource]:
    """``boss:COLL/EXP`` -> one source, ``boss:COLL`` -> one per experiment (globs allowed).

    The BOSS is asked before anything is written: a missing or rejected token,
    or an unknown collection or experiment, fails here.
    """
    settings = BossSettings.from_options(options)
    token = require_token()
    remote = make_remote(settings.protocol, settings.host, token)

    def call(what: str, fn: Any) -> Any:
        return _with_retries(fn, server=settings.url, what=what, token=token)

    coll_pat, _, exp_pat = spec.name.partition("/")
    if any(ch in coll_pat for ch in "*?["):
        colls = sorted(
            n for n in call("the list of collections", remote.list_collections) if fnmatch.fnmatchcase(n, coll_pat)
        )
    else:
        colls = [coll_pat]
    for coll in colls:
        if exp_pat and not any(ch in exp_pat for ch in "*?["):
            src = BossSource(coll, exp_pat, settings, token=token, remote=remote)
            src.check_access()
            yield src
            continue
        exps = call(f"experiments of collection {coll}", lambda coll=coll: remote.list_experiments(coll))
        for exp in sorted(exps):
            if not exp_pat or fnmatch.fnmatchcase(exp, exp_pat):
                # each source makes its own client: sources are synced in parallel threads
                yield BossSource(coll, exp, settings, token=token)


def remote_id_for(path: str, key: Optional[str], urls: tuple[str, ...]) -> Optional[str]:
    """The cutout behind a chunk file, from its URL (used by reindex)."""
    for u in urls:
        u = u[1:] if u.startswith(":") else u
        if u.startswith(URL_PREFIX):
            try:
                return Chunk.parse(u).remote_id
            except ValueError:
                return None
    return None
