"""A chunk file and the cutout that fills it: the URL that names the cutout, and the chunk's bytes.

A chunk's URL is all the special remote gets from git-annex, so it says
everything needed to read the chunk again anywhere: server, collection,
experiment, channel, resolution, the cutout's box and the chunk's full shape and
datatype.  The bytes are the cutout padded to that shape, so they depend on the
data alone and a SHA256E key made at sync time checks them in any clone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

from neuromirror.sources.boss.api import NAME_RE, BossError, boss_url_of, with_retries

SCHEME = "neuromirror+boss"  # https BOSS
SCHEME_HTTP = "neuromirror+boss+http"  # plain-http BOSS (stand-ins, private deployments)
#: the URL prefix the special remote claims (both schemes)
URL_PREFIX = "neuromirror+boss"
UPSTREAM_CHANGED = "upstream data changed since this version was mirrored"


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
        protocol = _PROTOCOLS.get(parts.scheme)
        if protocol is None:
            raise ValueError(f"not a neuromirror BOSS chunk URL: {url}")
        segs = [s for s in parts.path.split("/") if s]
        if len(segs) not in (7, 8) or not parts.netloc or not all(NAME_RE.match(s) for s in segs[:3]):
            raise ValueError(f"malformed BOSS chunk URL: {url}")
        res, ranges, shape, dtype = _numbers(url, segs, parts.query)
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
            res,
            x,
            y,
            z,
            t,
            shape,
            dtype,
        )


#: a chunk URL's scheme -> the protocol its cutouts are read by
_PROTOCOLS = {SCHEME: "https", SCHEME_HTTP: "http"}


def _numbers(url: str, segs: list[str], query: str) -> tuple[int, list[tuple[int, int]], tuple[int, int, int], str]:
    """(resolution, ranges x y z [t], chunk shape z y x, dtype) of a chunk URL, each checked: a clear
    ValueError naming the URL for anything malformed or a datatype the mirror does not read."""
    try:
        res = int(segs[3])
        ranges = [_span(s) for s in segs[4:]]
        q = parse_qs(query)
        nz, ny, nx = (int(v) for v in q["chunk"][0].split(","))
        dtype = q["dtype"][0]
    except (ValueError, KeyError, IndexError):
        raise ValueError(f"malformed BOSS chunk URL: {url}") from None
    shape = (nz, ny, nx)
    if any(r[0] < 0 or r[1] <= r[0] for r in ranges) or min(shape) < 1:
        raise ValueError(f"malformed BOSS chunk URL: {url}")
    if dtype not in ("uint8", "uint16", "uint64"):
        raise ValueError(f"unsupported datatype {dtype!r} in {url}")
    return res, ranges, shape, dtype


def _span(text: str) -> tuple[int, int]:
    """``"32:64"`` -> (32, 64); a ValueError for anything but two integers."""
    a, b = (int(v) for v in text.split(":"))
    return a, b


def read_chunk(remote: Any, chunk: Chunk, *, token: Optional[str] = None) -> bytes:
    """The chunk file's bytes: the cutout, padded with zeros to the chunk shape, C order, little-endian."""
    import numpy as np
    from intern.resource.boss.resource import ChannelResource

    ctype = "annotation" if chunk.dtype == "uint64" else "image"
    resource = ChannelResource(chunk.channel, chunk.collection, chunk.experiment, type=ctype, datatype=chunk.dtype)
    server = boss_url_of(chunk.protocol, chunk.host)
    arr = with_retries(
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
