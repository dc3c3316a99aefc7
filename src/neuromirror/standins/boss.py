"""A stand-in BOSS (bossdb / neurodata) API server on loopback.

Why this exists: neuromirror mirrors BOSS experiments into DataLad datasets through
the real ``intern.remote.boss.BossRemote`` client.  Tests and the demo must run
without internet, so this module serves the part of the BOSS v1 REST API that
intern 1.4.x uses for reading, with the request and response shapes of the real
server (``jhuapl-boss/boss``: bosscore serializers and resource views,
bossspatialdb cutout/downsample views, bossmeta views), so that the client runs
unchanged against it::

    with BossStandIn.sample() as boss:
        rmt = BossRemote(boss.remote_config())
        chan = rmt.get_channel("image8", "neuromirror_demo", "exp1")
        arr = rmt.get_cutout(chan, 0, [0, 600], [0, 700], [0, 40])
        assert (arr == boss.volume("neuromirror_demo", "exp1", "image8")).all()

Behaviour taken from the real server (and kept on purpose, since the mirror tool
must cope with it):

* Routes are ``/v1/collection/...``, ``/v1/coord/...``, ``/v1/cutout/...``,
  ``/v1/downsample/...`` and ``/v1/meta/...``; trailing slashes are optional and
  intern lists collections with ``GET /v1/collection//``.
* Auth is DRF token auth: ``Authorization: Token <key>``.  A wrong key gives
  ``401 {"detail": "Invalid token."}``.  No header at all is *not* refused
  outright (the BOSS uses ``IsAuthenticatedOrReadOnly``): anonymous callers see
  only resources flagged ``public``; lists silently omit the others and reading a
  non-public resource gives ``403 {"status": 403, "code": 3001, "message": ...}``.
* Cutouts: ``Accept: application/blosc`` (intern's choice; also the default) ->
  ``blosc.compress(c_order_bytes, typesize=<bits per voxel>)`` of the (z, y, x)
  or, with a time range, (t, z, y, x) array.  ``application/blosc-python``
  (``blosc.pack_array``) and ``application/npygz`` (zlib of an ``.npy``) are
  served too.  Ranges are validated against the *coordinate frame* (level-0)
  bounds at every resolution, as the real server does; voxels past a level's
  downsampled extent come back as zeros.  Requests over 520 MiB uncompressed
  (a quarter of that counted for uint64) get 413.
* ``/v1/downsample/{c}/{e}/{ch}`` reports extents per level as repeated
  ``ceil(n / 2)`` of the coordinate frame's *stop* values.

The served volumes are numpy arrays indexed by absolute voxel coordinates
(``array[z, y, x]``, shape ``(z_stop, y_stop, x_stop)`` at level 0).  Level ``r``
is computed from level ``r - 1`` by halving x and y (and z for isotropic
experiments): the mean of each 2x2(x2) block for image channels, the most
frequent non-zero label for annotation channels; odd edges are padded by
repeating the last voxel.  Nothing is written to disk.

Faults: set ``faults`` to a ``neuromirror.standins.faults.FaultPlan`` to get
5xx/429 answers, stalls, resets or truncated bodies on chosen requests; every
request is recorded in ``request_log`` (with the fault injected, if any).
"""

from __future__ import annotations

import io
import json
import math
import re
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Iterable, Mapping
from urllib.parse import parse_qs, urlsplit

import blosc
import numpy as np

if TYPE_CHECKING:  # the faults module is optional at run time (imported lazily)
    from neuromirror.standins.faults import FaultPlan

__all__ = [
    "BossStandIn",
    "LoggedRequest",
    "SAMPLE_COLLECTION",
    "SAMPLE_COORD_FRAME",
    "SAMPLE_EXPERIMENT",
    "SAMPLE_CHANNELS",
]

SAMPLE_COLLECTION = "neuromirror_demo"
SAMPLE_EXPERIMENT = "exp1"
SAMPLE_COORD_FRAME = "neuromirror_demo_frame"
#: channel name -> (type, datatype) of the sample experiment
SAMPLE_CHANNELS: dict[str, tuple[str, str]] = {
    "image8": ("image", "uint8"),
    "image16": ("image", "uint16"),
    "annotation": ("annotation", "uint64"),
}

#: The BOSS stores data in cuboids of 512 x 512 x 16 (x, y, z) at every level.
CUBOID_SIZE: tuple[int, int, int] = (512, 512, 16)
#: settings.CUTOUT_MAX_SIZE of the real server (bytes, uncompressed).
CUTOUT_MAX_BYTES = 520 * 1048576

_DTYPES: dict[str, type[np.unsignedinteger[Any]]] = {
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint64": np.uint64,
}
# The BOSS only accepts these type/datatype pairs.
_ALLOWED_DATATYPES = {"image": ("uint8", "uint16"), "annotation": ("uint64",)}
_HIERARCHY_METHODS = ("anisotropic", "isotropic")
_VOXEL_UNITS = ("nanometers", "micrometers", "millimeters", "centimeters")
_TIME_UNITS = ("", "nanoseconds", "microseconds", "milliseconds", "seconds")
_DOWNSAMPLE_STATUSES = ("NOT_DOWNSAMPLED", "IN_PROGRESS", "DOWNSAMPLED", "FAILED", "QUEUED")
_NAME_RE = re.compile(r"^[\w-]+$")

# bosscore.error.ErrorCodes values used here.
_INVALID_URL = 1000
_INVALID_CUTOUT_ARGS = 1001
_TYPE_ERROR = 1002
_INVALID_POST_ARGUMENT = 1003
_REQUEST_TOO_LARGE = 2000
_DATATYPE_NOT_SUPPORTED = 2003
_MISSING_PERMISSION = 3001
_RESOURCE_NOT_FOUND = 4000


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the stand-in saw it, for assertions on client behaviour."""

    method: str
    path: str  # path with query string, as sent
    route: str  # e.g. "collection_list", "channel", "cutout", "unknown"
    auth: str  # "token", "anonymous" or "invalid"
    status: int  # 0 if no status line was sent (e.g. a fault dropped the connection)
    response_bytes: int  # the Content-Length announced
    fault: str | None = None  # the FaultPlan kind injected, if any


class _HTTPError(Exception):
    """An error answer: raised inside request handling, turned into JSON."""

    def __init__(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None):
        super().__init__(body)
        self.status = status
        self.body = dict(body)
        self.headers = dict(headers or {})


def _boss_error(status: int, code: int, message: str) -> _HTTPError:
    """bosscore.error.BossHTTPError's JSON shape."""
    return _HTTPError(status, {"status": status, "code": code, "message": message})


def _not_found(name: str) -> _HTTPError:
    return _boss_error(404, _RESOURCE_NOT_FOUND, f"{name} does not exist.")


def _check_name(kind: str, name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid {kind} name {name!r}: the BOSS allows letters, digits, '_' and '-'")


@dataclass
class _CoordFrame:
    name: str
    description: str
    x_start: int
    x_stop: int
    y_start: int
    y_stop: int
    z_start: int
    z_stop: int
    x_voxel_size: float
    y_voxel_size: float
    z_voxel_size: float
    voxel_unit: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "x_start": self.x_start,
            "x_stop": self.x_stop,
            "y_start": self.y_start,
            "y_stop": self.y_stop,
            "z_start": self.z_start,
            "z_stop": self.z_stop,
            "x_voxel_size": self.x_voxel_size,
            "y_voxel_size": self.y_voxel_size,
            "z_voxel_size": self.z_voxel_size,
            "voxel_unit": self.voxel_unit,
        }


@dataclass
class _Channel:
    name: str
    description: str
    type: str
    datatype: str
    default_time_sample: int
    sources: list[str]
    related: list[str]
    downsample_status: str
    public: bool
    seed: int
    # level -> read-only (t, z, y, x) array, filled on first use (level 0 from
    # synthetic content unless data was given)
    levels: dict[int, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(_DTYPES[self.datatype])


@dataclass
class _Experiment:
    name: str
    description: str
    coord_frame: str
    num_hierarchy_levels: int
    hierarchy_method: str
    num_time_samples: int
    time_step: int | None
    time_step_unit: str
    public: bool
    channels: dict[str, _Channel] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class _Collection:
    name: str
    description: str
    public: bool
    experiments: dict[str, _Experiment] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- data


def _synthetic_volume(channel_type: str, datatype: str, shape: tuple[int, int, int, int], seed: int) -> np.ndarray:
    """Deterministic content for a channel created without data.

    Images are a diagonal gradient plus seeded noise (so compression and
    downsampling do real work); annotations are blocks of large uint64 labels
    (above 2**32, to catch 32-bit truncation) not aligned to cuboids, a quarter of
    them background (0).  Built slice by slice to keep temporaries small.
    """
    rng = np.random.default_rng(seed)
    t_n, z_n, y_n, x_n = shape
    if channel_type == "annotation":
        bz, by, bx = 8, 48, 40
        grid = (t_n, -(-z_n // bz), -(-y_n // by), -(-x_n // bx))
        ids = rng.integers(2**32, 2**48, size=grid, dtype=np.uint64)
        ids[rng.random(grid) < 0.25] = 0
        zi = (np.arange(z_n) // bz)[:, None, None]
        yi = (np.arange(y_n) // by)[None, :, None]
        xi = (np.arange(x_n) // bx)[None, None, :]
        labels = np.empty(shape, dtype=np.uint64)
        for t in range(t_n):
            labels[t] = ids[t][zi, yi, xi]
        return labels
    dtype = np.dtype(_DTYPES[datatype])
    out = np.empty(shape, dtype=dtype)
    yy = np.arange(y_n, dtype=np.int32)[:, None] // 4
    xx = np.arange(x_n, dtype=np.int32)[None, :] // 4
    for t in range(t_n):
        for z in range(z_n):
            base = (xx + yy + 3 * z + 11 * t) % 192
            if dtype == np.uint8:
                out[t, z] = base + rng.integers(0, 64, size=(y_n, x_n), dtype=np.int32)
            else:
                out[t, z] = base * 256 + rng.integers(0, 16384, size=(y_n, x_n), dtype=np.int32)
    return out


def _downsample(arr: np.ndarray, factors: tuple[int, int, int], annotation: bool) -> np.ndarray:
    """Halve a (t, z, y, x) array by ``factors`` (z, y, x), each 1 or 2.

    Odd sizes are padded by repeating the edge voxel so the result has
    ``ceil(n / f)`` voxels, matching the extents the real server reports.
    Images take the (floored) block mean; annotations the most frequent non-zero
    label of the block (first one on ties), so labels survive rather than being
    averaged into nonsense ids.
    """
    fz, fy, fx = factors
    t_n, z_n, y_n, x_n = arr.shape
    pad = [(0, 0), (0, -z_n % fz), (0, -y_n % fy), (0, -x_n % fx)]
    if any(p[1] for p in pad):
        arr = np.pad(arr, pad, mode="edge")
    # The k voxels of every block, each as a strided view of the output's shape.
    cands = [arr[:, dz::fz, dy::fy, dx::fx] for dz in range(fz) for dy in range(fy) for dx in range(fx)]
    if not annotation:
        total = np.zeros(cands[0].shape, dtype=np.uint64)
        for cand in cands:
            total += cand
        return (total // np.uint64(len(cands))).astype(arr.dtype)
    # Mode: count equal pairs once each; background (0) never wins over a label.
    counts = [np.ones(cands[0].shape, dtype=np.uint8) for _ in cands]
    for i in range(len(cands)):
        for j in range(i + 1, len(cands)):
            same = cands[i] == cands[j]
            counts[i] += same
            counts[j] += same
    best = cands[0].copy()
    best_count = np.where(cands[0] != 0, counts[0], 0).astype(np.uint8)
    for cand, count in zip(cands[1:], counts[1:]):
        better = (cand != 0) & (count > best_count)
        best[better] = cand[better]
        best_count[better] = count[better]
    return best


def _read_only(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


# --------------------------------------------------------------------------- HTTP


_ID = r"[\w-]+"
_RANGE = r"\d+:\d+"
_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(pattern))
    for name, pattern in [
        # intern lists collections with "/v1/collection//"
        ("collection_list", r"^/v1/collection/{0,2}$"),
        ("collection", rf"^/v1/collection/(?P<collection>{_ID})/?$"),
        ("experiment_list", rf"^/v1/collection/(?P<collection>{_ID})/experiment/?$"),
        ("experiment", rf"^/v1/collection/(?P<collection>{_ID})/experiment/(?P<experiment>{_ID})/?$"),
        ("channel_list", rf"^/v1/collection/(?P<collection>{_ID})/experiment/(?P<experiment>{_ID})/channel/?$"),
        (
            "channel",
            rf"^/v1/collection/(?P<collection>{_ID})/experiment/(?P<experiment>{_ID})"
            rf"/channel/(?P<channel>{_ID})/?$",
        ),
        ("coord_list", r"^/v1/coord/?$"),
        ("coord", rf"^/v1/coord/(?P<coord>{_ID})/?$"),
        ("downsample", rf"^/v1/downsample/(?P<collection>{_ID})/(?P<experiment>{_ID})/(?P<channel>{_ID})/?$"),
        (
            "cutout",
            rf"^/v1/cutout/(?P<collection>{_ID})/(?P<experiment>{_ID})/(?P<channel>{_ID})"
            rf"/(?P<resolution>\d+)/(?P<x>{_RANGE})/(?P<y>{_RANGE})/(?P<z>{_RANGE})(?:/(?P<t>{_RANGE}))?/?$",
        ),
        (
            "meta",
            rf"^/v1/meta/(?P<collection>{_ID})(?:/(?P<experiment>{_ID})(?:/(?P<channel>{_ID}))?)?/?$",
        ),
    ]
]

_CUTOUT_FORMATS = ("application/blosc", "application/blosc-python", "application/npygz")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: BossStandIn
    #: faults.apply_fault's "timeout" waits on this, so stop() is not held up
    stop_event: threading.Event


class _Handler(BaseHTTPRequestHandler):
    """Request handler: one instance (and thread) per connection, serving its
    keep-alive requests one after the other.

    ``route`` (a route name, see ``_ROUTES``) and ``params`` (its named groups)
    are set before the fault plan is consulted.
    """

    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as requests.Session expects
    # Headers and body are separate writes; with Nagle on, each keep-alive
    # response stalls ~40 ms on the client's delayed ACK.
    disable_nagle_algorithm = True
    timeout = 60  # drop idle keep-alive connections eventually
    server_version = "BossStandIn/1"

    route: str = "unknown"
    params: dict[str, str]
    fault: str | None = None
    _status: int = 0
    _auth: str = "anonymous"

    _length: int = 0
    _recorded: bool = False

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "content-length":
            self._length = int(value)
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        # Record before the body goes out, so that a client which has its answer
        # always finds its request in the log (tests count requests).
        self._record()
        super().end_headers()

    def _record(self) -> None:
        if not self._recorded:
            self._recorded = True
            self.server.standin._record(
                LoggedRequest(self.command, self.path, self.route, self._auth, self._status, self._length, self.fault)
            )

    def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str]) -> None:
        """Send a complete response with Content-Length (needed for keep-alive)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence stderr; requests are recorded in ``BossStandIn.request_log``."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _refuse_method(self) -> None:
        # Read-only stand-in; drain any body so the connection stays usable.
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._dispatch(allowed=False)

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method

    def _dispatch(self, allowed: bool = True) -> None:
        standin: BossStandIn = self.server.standin
        # One handler serves every request of a keep-alive connection: reset.
        self.route, self.params, self.fault = "unknown", {}, None
        self._auth, self._status, self._length, self._recorded = "anonymous", 0, 0, False
        split = urlsplit(self.path)
        for name, pattern in _ROUTES:
            m = pattern.match(split.path)
            if m:
                self.route = name
                self.params = {k: v for k, v in m.groupdict().items() if v is not None}
                break
        try:
            if standin._maybe_fault(self):
                return
            headers: dict[str, str] = {}
            try:
                if self.route == "unknown":
                    raise _boss_error(404, _INVALID_URL, f"Invalid URL {split.path}")
                if not allowed:
                    raise _HTTPError(405, {"detail": f'Method "{self.command}" not allowed.'})
                self._auth = "invalid"  # kept if _authenticate refuses the header
                self._auth = standin._authenticate(self.headers.get("Authorization"))
                query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
                status, body, content_type = standin._answer(
                    self.route, self.params, query, self._auth == "token", self.headers.get("Accept")
                )
            except _HTTPError as err:
                status, body, content_type = err.status, json.dumps(err.body).encode(), "application/json"
                headers = err.headers
            except Exception as exc:  # a stand-in bug must not hang the client
                status, content_type = 500, "application/json"
                body = json.dumps({"status": 500, "code": 9002, "message": f"stand-in error: {exc!r}"}).encode()
            if standin._maybe_fault(self, body, content_type):
                return
            self._send(status, body, content_type, headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self._record()  # for requests a fault answered without headers


# --------------------------------------------------------------------------- stand-in


class BossStandIn:
    """An in-process BOSS API server for tests and demos (see module docstring).

    Populate it with ``add_collection`` / ``add_coord_frame`` / ``add_experiment``
    / ``add_channel`` (or take ``BossStandIn.sample()``), then ``start()`` it or
    use it as a context manager.  Resources can be added or changed while it runs;
    all state is guarded by one lock, and served arrays are never modified in
    place, so concurrent requests (intern fetches cutout blocks in parallel) see
    consistent data.
    """

    creator = "neuromirror-standin"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = "public-test-token",
        faults: FaultPlan | None = None,
    ) -> None:
        self._bind_host = host
        self._port = port
        self.token = token
        #: optional neuromirror.standins.faults.FaultPlan, consulted for every
        #: request (may be set or replaced while running)
        self.faults: FaultPlan | None = faults
        #: uncompressed size limit for one cutout; lower it to test the 413 path
        self.cutout_max_bytes = CUTOUT_MAX_BYTES
        self._lock = threading.RLock()
        self._collections: dict[str, _Collection] = {}
        self._coords: dict[str, _CoordFrame] = {}
        self._log: list[LoggedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> BossStandIn:
        """Start serving in a daemon thread; a no-op if already running.

        After ``stop()``, starting again binds the same port, so a client that
        kept the URL can reconnect (useful to simulate an outage).
        """
        if self._server is not None:
            return self
        server = _Server((self._bind_host, self._port), _Handler)
        server.standin = self
        server.stop_event = threading.Event()
        self._port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"boss-standin-{self._port}", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.stop_event.set()
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> BossStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self.running else "not running"
        return f"<BossStandIn {where} collections={sorted(self._collections)}>"

    # -- addresses and client configuration

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("BossStandIn has no port yet: call start() first")
        return self._port

    @property
    def protocol(self) -> str:
        return "http"

    @property
    def host(self) -> str:
        """``host:port`` as intern's ``host`` setting wants it (no scheme)."""
        return f"{self._bind_host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.host}"

    def remote_config(self, token: str | None = None) -> dict[str, str]:
        """The dict for ``BossRemote(...)``; ``token`` overrides the valid one."""
        return {"protocol": self.protocol, "host": self.host, "token": self.token if token is None else token}

    def env(self, token: str | None = None) -> dict[str, str]:
        """INTERN_PROTOCOL / INTERN_HOST / INTERN_TOKEN, which ``BossRemote()``
        reads when no config file (``~/.intern/intern.cfg``) exists."""
        cfg = self.remote_config(token)
        return {"INTERN_PROTOCOL": cfg["protocol"], "INTERN_HOST": cfg["host"], "INTERN_TOKEN": cfg["token"]}

    # -- request log

    @property
    def request_log(self) -> list[LoggedRequest]:
        """A copy of the requests answered so far, oldest first."""
        with self._lock:
            return list(self._log)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._log)

    def clear_request_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _maybe_fault(self, handler: _Handler, body: bytes | None = None, content_type: str = "") -> bool:
        """Let ``self.faults`` (a FaultPlan) break this request; True if it did.

        Called twice per request.  First (``body`` None, right after routing,
        before authentication) it draws the request's fault kind and carries out
        every kind but "truncated", which needs the real response; the second
        call, with the response about to be sent, carries that one out.  BOSS
        lists are not paginated, so page faults are never drawn.
        """
        plan = self.faults
        if plan is None:
            return False
        from neuromirror.standins.faults import apply_fault  # optional module, imported when used

        if body is None:
            handler.fault = plan.pick(handler.command, handler.path, paginated=False)
            if handler.fault == "truncated":
                return False
            return apply_fault(handler, plan, handler.fault)
        if handler.fault != "truncated":
            return False
        return apply_fault(handler, plan, handler.fault, body, content_type=content_type)

    # -- building the data model

    def add_collection(self, name: str, description: str = "", *, public: bool = False) -> None:
        """Add an (empty) collection; ``public`` makes it readable without a token."""
        _check_name("collection", name)
        with self._lock:
            if name in self._collections:
                raise ValueError(f"collection {name!r} exists")
            self._collections[name] = _Collection(name, description, public)

    def add_coord_frame(
        self,
        name: str,
        x_stop: int,
        y_stop: int,
        z_stop: int,
        x_voxel_size: float = 1.0,
        y_voxel_size: float = 1.0,
        z_voxel_size: float = 1.0,
        voxel_unit: str = "nanometers",
        *,
        x_start: int = 0,
        y_start: int = 0,
        z_start: int = 0,
        description: str = "",
    ) -> None:
        """Add a coordinate frame; stops are exclusive, as in the BOSS."""
        _check_name("coordinate frame", name)
        if voxel_unit not in _VOXEL_UNITS:
            raise ValueError(f"voxel_unit must be one of {_VOXEL_UNITS}")
        for axis, start, stop in (("x", x_start, x_stop), ("y", y_start, y_stop), ("z", z_start, z_stop)):
            if not 0 <= start < stop:
                raise ValueError(f"need 0 <= {axis}_start < {axis}_stop, got {start}, {stop}")
        with self._lock:
            if name in self._coords:
                raise ValueError(f"coordinate frame {name!r} exists")
            self._coords[name] = _CoordFrame(
                name, description, int(x_start), int(x_stop), int(y_start), int(y_stop), int(z_start), int(z_stop),
                float(x_voxel_size), float(y_voxel_size), float(z_voxel_size), voxel_unit,
            )  # fmt: skip

    def add_experiment(
        self,
        collection: str,
        name: str,
        coord_frame: str,
        *,
        description: str = "",
        num_hierarchy_levels: int = 2,
        hierarchy_method: str = "anisotropic",
        num_time_samples: int = 1,
        time_step: int | None = None,
        time_step_unit: str = "",
        public: bool = False,
    ) -> None:
        """Add an experiment to a collection, on an existing coordinate frame."""
        _check_name("experiment", name)
        if hierarchy_method not in _HIERARCHY_METHODS:
            raise ValueError(f"hierarchy_method must be one of {_HIERARCHY_METHODS}")
        if time_step_unit not in _TIME_UNITS:
            raise ValueError(f"time_step_unit must be one of {_TIME_UNITS}")
        if num_hierarchy_levels < 1 or num_time_samples < 1:
            raise ValueError("num_hierarchy_levels and num_time_samples must be >= 1")
        with self._lock:
            coll = self._collection(collection)
            if coord_frame not in self._coords:
                raise KeyError(f"no coordinate frame {coord_frame!r}")
            if name in coll.experiments:
                raise ValueError(f"experiment {collection}/{name} exists")
            coll.experiments[name] = _Experiment(
                name, description, coord_frame, int(num_hierarchy_levels), hierarchy_method,
                int(num_time_samples), time_step, time_step_unit, public,
            )  # fmt: skip

    def add_channel(
        self,
        collection: str,
        experiment: str,
        name: str,
        *,
        type: str = "image",  # noqa: A002 - the BOSS field name
        datatype: str = "uint8",
        data: np.ndarray | None = None,
        description: str = "",
        default_time_sample: int = 0,
        sources: Iterable[str] = (),
        related: Iterable[str] = (),
        downsample_status: str = "DOWNSAMPLED",
        public: bool = False,
        seed: int | None = None,
    ) -> None:
        """Add a channel.

        ``data`` is the level-0 volume indexed by absolute coordinates: shape
        ``(z_stop, y_stop, x_stop)`` of the experiment's coordinate frame, or
        ``(num_time_samples, z_stop, y_stop, x_stop)``.  Without it, deterministic
        synthetic content is generated on first use (from ``seed``, by default
        derived from the channel's path).  A channel whose ``downsample_status``
        is not DOWNSAMPLED serves zeros above level 0, as an un-downsampled BOSS
        channel does.
        """
        _check_name("channel", name)
        if type not in _ALLOWED_DATATYPES:
            raise ValueError(f"type must be one of {tuple(_ALLOWED_DATATYPES)}")
        if datatype not in _ALLOWED_DATATYPES[type]:
            raise ValueError(f"a {type} channel must have datatype in {_ALLOWED_DATATYPES[type]}")
        if downsample_status not in _DOWNSAMPLE_STATUSES:
            raise ValueError(f"downsample_status must be one of {_DOWNSAMPLE_STATUSES}")
        with self._lock:
            exp = self._experiment(collection, experiment)
            if name in exp.channels:
                raise ValueError(f"channel {collection}/{experiment}/{name} exists")
            if not 0 <= default_time_sample < exp.num_time_samples:
                raise ValueError("default_time_sample out of range")
            if seed is None:
                seed = zlib.crc32(f"{collection}/{experiment}/{name}".encode())
            chan = _Channel(
                name, description, type, datatype, int(default_time_sample), list(sources), list(related),
                downsample_status, public, seed,
            )  # fmt: skip
            if data is not None:
                chan.levels[0] = self._validated(exp, chan, data)
            exp.channels[name] = chan

    def set_volume(self, collection: str, experiment: str, channel: str, data: np.ndarray) -> None:
        """Replace a channel's level-0 data (e.g. an upstream annotation edit).

        Lower levels are recomputed on next use.  Takes the same shapes as
        ``add_channel(data=...)``; the array is copied.
        """
        with self._lock:
            exp = self._experiment(collection, experiment)
            chan = self._channel(exp, collection, experiment, channel)
            chan.levels = {0: self._validated(exp, chan, data)}

    def set_metadata(self, resource: str, key: str, value: str) -> None:
        """Set a metadata key on ``"coll"``, ``"coll/exp"`` or ``"coll/exp/chan"``."""
        with self._lock:
            self._meta_store(resource.strip("/").split("/"))[key] = str(value)

    def volume(
        self, collection: str, experiment: str, channel: str, resolution: int = 0, *, time_sample: int | None = None
    ) -> np.ndarray:
        """The read-only (z, y, x) array served at ``resolution`` for one time
        sample (default: the channel's default_time_sample).  Index it with the
        same absolute coordinates as a cutout: ``volume(...)[z0:z1, y0:y1, x0:x1]``."""
        with self._lock:
            exp = self._experiment(collection, experiment)
            chan = self._channel(exp, collection, experiment, channel)
            if not 0 <= resolution < exp.num_hierarchy_levels:
                raise ValueError(f"resolution must be in [0, {exp.num_hierarchy_levels})")
            t = chan.default_time_sample if time_sample is None else time_sample
            return self._level(exp, chan, resolution)[t]

    def downsample_info(self, collection: str, experiment: str, channel: str) -> dict[str, Any]:
        """What ``GET /v1/downsample/{c}/{e}/{ch}`` returns."""
        with self._lock:
            exp = self._experiment(collection, experiment)
            chan = self._channel(exp, collection, experiment, channel)
            cf = self._coords[exp.coord_frame]
            voxel = [cf.x_voxel_size, cf.y_voxel_size, cf.z_voxel_size]
            extent = [cf.x_stop, cf.y_stop, cf.z_stop]
            info: dict[str, Any] = {
                "status": chan.downsample_status,
                "num_hierarchy_levels": exp.num_hierarchy_levels,
                "voxel_size": {},
                "extent": {},
                "cuboid_size": {},
            }
            for res in range(exp.num_hierarchy_levels):
                if res:
                    zf = 2 if exp.hierarchy_method == "isotropic" else 1
                    voxel = [voxel[0] * 2, voxel[1] * 2, voxel[2] * zf]
                    extent = [math.ceil(extent[0] / 2), math.ceil(extent[1] / 2), math.ceil(extent[2] / zf)]
                info["voxel_size"][str(res)] = list(voxel)
                info["extent"][str(res)] = list(extent)
                info["cuboid_size"][str(res)] = list(CUBOID_SIZE)
            return info

    @classmethod
    def sample(
        cls,
        *,
        shape: tuple[int, int, int] = (40, 700, 600),
        num_hierarchy_levels: int = 2,
        **kwargs: Any,
    ) -> BossStandIn:
        """A populated (not yet started) stand-in for tests and the demo.

        Collection ``neuromirror_demo``, coordinate frame
        ``neuromirror_demo_frame`` (``shape`` is (z, y, x), default 40 x 700 x 600:
        3 cuboids in z, 2 in y and x, with partial edge cuboids; 4 x 4 x 40 nm
        voxels), experiment ``exp1`` (anisotropic, 2 levels) with channels
        ``image8`` (uint8 image), ``image16`` (uint16 image) and ``annotation``
        (uint64 annotation, source ``image8``), all with seeded synthetic
        content, and a little metadata.  ``kwargs`` go to the constructor.
        """
        standin = cls(**kwargs)
        z, y, x = shape
        standin.add_collection(SAMPLE_COLLECTION, "neuromirror stand-in sample collection")
        standin.add_coord_frame(
            SAMPLE_COORD_FRAME, x, y, z, 4.0, 4.0, 40.0, "nanometers", description="sample coordinate frame"
        )
        standin.add_experiment(
            SAMPLE_COLLECTION,
            SAMPLE_EXPERIMENT,
            SAMPLE_COORD_FRAME,
            description="synthetic EM-like volume",
            num_hierarchy_levels=num_hierarchy_levels,
        )
        for name, (ctype, datatype) in SAMPLE_CHANNELS.items():
            standin.add_channel(
                SAMPLE_COLLECTION,
                SAMPLE_EXPERIMENT,
                name,
                type=ctype,
                datatype=datatype,
                description=f"synthetic {datatype} {ctype}",
                sources=["image8"] if ctype == "annotation" else (),
            )
        standin.set_metadata(SAMPLE_COLLECTION, "project", "neuromirror stand-in")
        standin.set_metadata(f"{SAMPLE_COLLECTION}/{SAMPLE_EXPERIMENT}/image8", "stain", "synthetic")
        return standin

    # -- internals: lookups (call with the lock held)

    def _collection(self, name: str) -> _Collection:
        try:
            return self._collections[name]
        except KeyError:
            raise KeyError(f"no collection {name!r}") from None

    def _experiment(self, collection: str, name: str) -> _Experiment:
        try:
            return self._collection(collection).experiments[name]
        except KeyError:
            raise KeyError(f"no experiment {collection}/{name}") from None

    def _channel(self, exp: _Experiment, collection: str, experiment: str, name: str) -> _Channel:
        try:
            return exp.channels[name]
        except KeyError:
            raise KeyError(f"no channel {collection}/{experiment}/{name}") from None

    def _meta_store(self, parts: list[str]) -> dict[str, str]:
        if len(parts) == 1:
            return self._collection(parts[0]).metadata
        if len(parts) == 2:
            return self._experiment(*parts).metadata
        if len(parts) == 3:
            exp = self._experiment(parts[0], parts[1])
            return self._channel(exp, *parts).metadata
        raise ValueError("metadata resource must be coll, coll/exp or coll/exp/chan")

    def _validated(self, exp: _Experiment, chan: _Channel, data: np.ndarray) -> np.ndarray:
        cf = self._coords[exp.coord_frame]
        arr = np.asarray(data)
        if arr.ndim == 3:
            arr = arr[None]
        want = (exp.num_time_samples, cf.z_stop, cf.y_stop, cf.x_stop)
        if arr.shape != want:
            raise ValueError(f"data must have shape {want[1:]} or {want} (t, z, y, x), got {np.shape(data)}")
        if not np.can_cast(arr.dtype, chan.dtype, casting="safe"):
            raise ValueError(f"data of dtype {arr.dtype} does not fit channel datatype {chan.datatype}")
        return _read_only(np.array(arr, dtype=chan.dtype, order="C", copy=True))

    def _level(self, exp: _Experiment, chan: _Channel, res: int) -> np.ndarray:
        """The (t, z, y, x) array of a level, computed and cached on first use."""
        arr = chan.levels.get(res)
        if arr is not None:
            return arr
        if res == 0:
            cf = self._coords[exp.coord_frame]
            shape = (exp.num_time_samples, cf.z_stop, cf.y_stop, cf.x_stop)
            arr = _synthetic_volume(chan.type, chan.datatype, shape, chan.seed)
        else:
            prev = self._level(exp, chan, res - 1)
            factors = (2 if exp.hierarchy_method == "isotropic" else 1, 2, 2)
            if chan.downsample_status == "DOWNSAMPLED":
                arr = _downsample(prev, factors, chan.type == "annotation")
            else:
                arr = np.zeros(
                    (prev.shape[0],) + tuple(-(-n // f) for n, f in zip(prev.shape[1:], factors)), dtype=chan.dtype
                )
        chan.levels[res] = arr = _read_only(arr)
        return arr

    # -- internals: answering requests

    def _authenticate(self, header: str | None) -> str:
        """DRF TokenAuthentication semantics: no "Token" header means anonymous."""
        parts = (header or "").split()
        if not parts or parts[0].lower() != "token":
            return "anonymous"
        if len(parts) == 1:
            raise _HTTPError(
                401, {"detail": "Invalid token header. No credentials provided."}, {"WWW-Authenticate": "Token"}
            )
        if len(parts) > 2:
            raise _HTTPError(
                401, {"detail": "Invalid token header. Token string should not contain spaces."},
                {"WWW-Authenticate": "Token"},
            )  # fmt: skip
        if parts[1] != self.token:
            raise _HTTPError(401, {"detail": "Invalid token."}, {"WWW-Authenticate": "Token"})
        return "token"

    def _answer(
        self, route: str, p: Mapping[str, str], query: Mapping[str, str], authed: bool, accept: str | None
    ) -> tuple[int, bytes, str]:
        """(status, body, content type) for a routed GET; ``authed`` tells a
        valid token from an anonymous caller (invalid tokens never get here)."""
        if route == "cutout":
            return self._cutout(p, query, authed, accept)
        with self._lock:
            payload = self._json_answer(route, p, query, authed)
        return 200, json.dumps(payload).encode(), "application/json"

    def _json_answer(self, route: str, p: Mapping[str, str], query: Mapping[str, str], authed: bool) -> Any:
        if route == "collection_list":
            return {"collections": [c.name for c in self._collections.values() if authed or c.public]}
        if route == "coord_list":
            return {"coords": list(self._coords)}
        if route == "coord":
            cf = self._coords.get(p["coord"])
            if cf is None:
                raise _not_found(p["coord"])
            return cf.to_json()

        coll = self._collections.get(p["collection"])
        if coll is None:
            raise _not_found(p["collection"])
        if route == "experiment_list":
            return {"experiments": [e.name for e in coll.experiments.values() if authed or e.public]}
        if route == "collection":
            if not (authed or coll.public):
                raise _boss_error(403, _MISSING_PERMISSION, f"Missing read permissions on the resource {coll.name}")
            visible = [e.name for e in coll.experiments.values() if authed or coll.public or e.public]
            return {
                "name": coll.name,
                "public": coll.public,
                "description": coll.description,
                "experiments": visible,
                "creator": self.creator,
            }
        if route == "meta" and "experiment" not in p:
            return self._meta_answer(coll.metadata, coll.public or authed, query)

        exp = coll.experiments.get(p["experiment"])
        if exp is None:
            raise _not_found(p["experiment"])
        if route == "channel_list":
            return {"channels": [c.name for c in exp.channels.values() if authed or c.public]}
        if route == "experiment":
            if not (authed or exp.public):
                raise _boss_error(403, _MISSING_PERMISSION, f"Missing read permissions on the resource {exp.name}")
            return {
                "channels": [c.name for c in exp.channels.values() if authed or exp.public or c.public],
                "name": exp.name,
                "public": exp.public,
                "description": exp.description,
                "collection": coll.name,
                "coord_frame": exp.coord_frame,
                "num_hierarchy_levels": exp.num_hierarchy_levels,
                "hierarchy_method": exp.hierarchy_method,
                "num_time_samples": exp.num_time_samples,
                "time_step": exp.time_step,
                "time_step_unit": exp.time_step_unit,
                "creator": self.creator,
            }
        if route == "meta" and "channel" not in p:
            return self._meta_answer(exp.metadata, exp.public or authed, query)

        chan = exp.channels.get(p["channel"])
        if chan is None:
            raise _not_found(p["channel"])
        if route == "channel":
            if not (authed or chan.public):
                raise _boss_error(403, _MISSING_PERMISSION, f"Missing read permissions on the resource {chan.name}")
            return {
                "name": chan.name,
                "public": chan.public,
                "description": chan.description,
                "experiment": exp.name,
                "default_time_sample": chan.default_time_sample,
                "type": chan.type,
                "base_resolution": 0,
                "datatype": chan.datatype,
                "creator": self.creator,
                "sources": list(chan.sources),
                "downsample_status": chan.downsample_status,
                "related": list(chan.related),
                # intern.array reads raw["storage_type"] to choose its backend
                "storage_type": "spdb",
                "bucket": None,
                "cv_path": None,
            }
        if route == "meta":
            return self._meta_answer(chan.metadata, chan.public or authed, query)
        if route == "downsample":
            self._require_read(chan, authed)
            return self.downsample_info(coll.name, exp.name, chan.name)
        raise _boss_error(404, _INVALID_URL, "Invalid URL")  # pragma: no cover - all routes handled

    @staticmethod
    def _require_read(chan: _Channel, authed: bool) -> None:
        # bosscore.request.BossRequest.check_permissions' answer
        if not (authed or chan.public):
            raise _boss_error(403, _MISSING_PERMISSION, "This user does not have the required permissions")

    @staticmethod
    def _meta_answer(store: Mapping[str, str], readable: bool, query: Mapping[str, str]) -> Any:
        if not readable:
            raise _boss_error(403, _MISSING_PERMISSION, "This user does not have the required permissions")
        if "key" not in query:
            return {"keys": list(store)}
        key = query["key"]
        if key not in store:
            raise _boss_error(400, _INVALID_POST_ARGUMENT, f"Invalid request. Key {key} Not found in the database")
        return {"key": key, "value": store[key]}

    def _cutout(
        self, p: Mapping[str, str], query: Mapping[str, str], authed: bool, accept: str | None
    ) -> tuple[int, bytes, str]:
        fmt = _negotiate(accept)
        with self._lock:
            coll = self._collections.get(p["collection"])
            if coll is None:
                raise _boss_error(404, _RESOURCE_NOT_FOUND, f"Collection {p['collection']} not found")
            exp = coll.experiments.get(p["experiment"])
            if exp is None:
                raise _boss_error(404, _RESOURCE_NOT_FOUND, f"Experiment {p['experiment']} not found")
            chan = exp.channels.get(p["channel"])
            if chan is None:
                raise _boss_error(404, _RESOURCE_NOT_FOUND, f"Channel {p['channel']} not found")
            self._require_read(chan, authed)
            cf = self._coords[exp.coord_frame]
            res = int(p["resolution"])
            if not 0 <= res < exp.num_hierarchy_levels:
                raise _boss_error(
                    400, _TYPE_ERROR,
                    f"Invalid resolution {res}. The resolution has to be within 0 and {exp.num_hierarchy_levels}",
                )  # fmt: skip
            (x0, x1), (y0, y1), (z0, z1) = (tuple(map(int, p[a].split(":"))) for a in "xyz")
            if (
                x0 >= x1 or y0 >= y1 or z0 >= z1
                or x0 < cf.x_start or x1 > cf.x_stop
                or y0 < cf.y_start or y1 > cf.y_stop
                or z0 < cf.z_start or z1 > cf.z_stop
            ):  # fmt: skip
                raise _boss_error(
                    400, _INVALID_CUTOUT_ARGS, f"Incorrect cutout arguments {res}/{p['x']}/{p['y']}/{p['z']}"
                )
            time_request = "t" in p
            if time_request:
                t0, t1 = map(int, p["t"].split(":"))
                if not 0 <= t0 < t1 <= exp.num_time_samples:
                    raise _boss_error(
                        400, _INVALID_URL,
                        f"Invalid time range {p['t']}. Out of bounds with maximum time sample {exp.num_time_samples}",
                    )  # fmt: skip
            else:
                t0 = chan.default_time_sample
                t1 = t0 + 1
            ids: np.ndarray | None = None
            if query.get("filter"):
                if chan.type != "annotation":
                    raise _boss_error(
                        400, _DATATYPE_NOT_SUPPORTED,
                        f"The channel in request has type {chan.type}. Filter is only valid for annotation channels",
                    )  # fmt: skip
                try:
                    ids = np.array([int(i) for i in query["filter"].split(",")], dtype=np.uint64)
                except ValueError:
                    raise _boss_error(
                        400, _INVALID_URL, f"Invalid id in list of filter ids {query['filter']}"
                    ) from None
            bits = chan.dtype.itemsize * 8
            nbytes = (x1 - x0) * (y1 - y0) * (z1 - z0) * (t1 - t0) * bits / 8
            if bits == 64:
                nbytes /= 4  # the BOSS lets (well-compressing) annotations be 4x larger
            if nbytes > self.cutout_max_bytes:
                raise _boss_error(
                    413, _REQUEST_TOO_LARGE, "Cutout request is over 500MB when uncompressed. Reduce cutout dimensions."
                )
            level = self._level(exp, chan, res)
        # Slicing and encoding outside the lock: level arrays are never mutated.
        data = _region(level, (t0, t1), (z0, z1), (y0, y1), (x0, x1))
        if ids is not None:
            data = np.where(np.isin(data, ids), data, np.zeros((), dtype=data.dtype))
        if not time_request:
            data = data[0]
        data = np.ascontiguousarray(data)
        if fmt == "application/blosc":
            body = blosc.compress(memoryview(data).cast("B"), typesize=bits)
        elif fmt == "application/blosc-python":
            body = blosc.pack_array(data)
        else:
            buf = io.BytesIO()
            np.save(buf, data, allow_pickle=False)
            body = zlib.compress(buf.getvalue())
        return 200, body, fmt


def _negotiate(accept: str | None) -> str:
    """Pick the cutout encoding; like DRF, no Accept (or */*) means the first
    renderer, blosc.  Anything else we do not render gets 406."""
    if not accept:
        return "application/blosc"
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        if media in _CUTOUT_FORMATS:
            return media
        if media in ("*/*", "application/*"):
            return "application/blosc"
    raise _HTTPError(406, {"detail": "Could not satisfy the request Accept header."})


def _region(level: np.ndarray, *ranges: tuple[int, int]) -> np.ndarray:
    """``level[t0:t1, z0:z1, y0:y1, x0:x1]``, zero-filled where the requested box
    passes the level's extent (allowed because requests are checked against the
    level-0 frame)."""
    inside = all(stop <= n for (_, stop), n in zip(ranges, level.shape))
    if inside:
        return level[tuple(slice(a, b) for a, b in ranges)]
    out = np.zeros(tuple(b - a for a, b in ranges), dtype=level.dtype)
    src = tuple(slice(min(a, n), min(b, n)) for (a, b), n in zip(ranges, level.shape))
    dst = tuple(slice(0, s.stop - s.start) for s in src)
    out[dst] = level[src]
    return out
