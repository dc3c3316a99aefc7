"""HTTP/1.1 on the wire for the shaping proxy (:mod:`neuromirror.standins.network`): parse, forward, pace, cut.

Why by hand and not an HTTP library: the proxy must see and control every byte (send an answer's
head and half its body, then reset the connection; pace a body per connection; keep the client's
connection alive when the upstream closes its own), at a fraction of a millisecond of CPU per
request.  Bodies pass through as they came (a chunked body stays chunked); only a close-delimited
answer is read whole and given a ``Content-Length``, so that the client's connection can stay open.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
from dataclasses import dataclass
from typing import AsyncIterator, Optional, Protocol

from neuromirror.standins.network_faults import Fault, fault_answer

__all__ = ["Pacer", "Proxy", "Request", "close_quietly", "read_request", "relay", "rst", "stall_or_cut"]

#: headers of one hop, which the proxy sets itself on each side
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "expect"})
_PIECE = 1 << 16


class Proxy(Protocol):
    """What the wire needs of the proxy (:class:`~neuromirror.standins.network.ShapingProxy`)."""

    bandwidth: Optional[float]

    async def half_rtt(self) -> None: ...

    async def upstream_connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]: ...

    def give_back(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None: ...

    def count_down(self, n: int) -> None: ...

    @property
    def stopping(self) -> asyncio.Event: ...


@dataclass
class Request:
    method: str
    target: str
    keep_alive: bool
    upstream_head: bytes  # the request line and headers to send upstream
    body: bytes  # as received (a chunked body stays chunked)
    user_agent: Optional[str] = None  # the client's User-Agent header, as sent (the proxy's log records it)


@dataclass
class Response:
    status: int
    head: list[str]  # the status line's reason and the headers, without hop-by-hop ones
    framing: str  # "none", "length", "chunked" or "close"
    length: int
    reusable: bool  # the upstream keeps the connection open after this answer


def _headers(lines: list[str]) -> tuple[list[str], dict[str, str]]:
    """The header lines without hop-by-hop ones, and every header by lower-case name."""
    kept, by_name = [], {}
    for line in lines:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        by_name[key] = value.strip()
        if key not in _HOP:
            kept.append(line)
    return kept, by_name


async def _chunked(reader: asyncio.StreamReader) -> AsyncIterator[tuple[bytes, int]]:
    """A chunked body as it came: (raw bytes, data bytes in them), trailers included."""
    while True:
        line = await reader.readuntil(b"\r\n")
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:  # the last chunk, then trailers up to an empty line
            while (more := await reader.readuntil(b"\r\n")) != b"\r\n":
                line += more
            yield line + more, 0
            return
        yield line + await reader.readexactly(size + 2), size


async def _pieces(reader: asyncio.StreamReader, framing: str, length: int) -> AsyncIterator[tuple[bytes, int]]:
    if framing == "chunked":
        async for piece in _chunked(reader):
            yield piece
        return
    if framing == "none":
        return
    left = length if framing == "length" else -1
    while left != 0:
        data = await reader.read(_PIECE if left < 0 else min(left, _PIECE))
        if not data:
            if left > 0:
                raise asyncio.IncompleteReadError(b"", left)
            return
        left -= len(data) if left > 0 else 0
        yield data, len(data)


async def read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Optional[Request]:
    """The next request on a client connection, or None when the client closed it."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial.strip():
            raise
        return None
    lines = raw.decode("latin-1").lstrip("\r\n").split("\r\n")[:-2]
    method, target, version = lines[0].split(" ", 2)
    kept, by_name = _headers(lines[1:])
    connection = by_name.get("connection", "").lower()
    keep_alive = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
    if by_name.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in by_name.get("transfer-encoding", "").lower():
        body = b"".join([raw async for raw, _ in _chunked(reader)])
    else:
        body = await reader.readexactly(int(by_name.get("content-length") or 0))
    head = "\r\n".join([f"{method} {target} HTTP/1.1", *kept]) + "\r\n\r\n"
    return Request(method, target, keep_alive, head.encode("latin-1"), body, by_name.get("user-agent"))


async def _read_response(reader: asyncio.StreamReader, method: str) -> Response:
    while True:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")[:-2]
        version, _, rest = lines[0].partition(" ")
        status = int(rest[:3])
        if not 100 <= status < 200 or status == 101:
            break
    kept, by_name = _headers(lines[1:])
    connection = by_name.get("connection", "").lower()
    reusable = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
    if method == "HEAD" or status in (204, 304) or status < 200:
        framing, length = "none", 0
    elif "chunked" in by_name.get("transfer-encoding", "").lower():
        framing, length = "chunked", 0
    elif "content-length" in by_name:
        framing, length = "length", int(by_name["content-length"])
    else:
        framing, length, reusable = "close", 0, False
    return Response(status, [rest, *kept], framing, length, reusable)


def _client_head(resp: Response, length: Optional[int] = None, close: bool = False) -> bytes:
    """The answer's head for the client, HTTP/1.1 (``length``: a Content-Length of the proxy's; ``close``: the last)."""
    lines = [f"HTTP/1.1 {resp.head[0]}", *resp.head[1:]]
    if length is not None:
        lines = [h for h in lines if not h.lower().startswith("content-length:")] + [f"Content-Length: {length}"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Pacer:
    """One direction of one connection under the proxy's bandwidth cap: each write waits its own transmission time."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.free = 0.0  # when the link is free again (loop time)

    async def pace(self, n: int) -> None:
        bps = self.proxy.bandwidth
        if not bps or n <= 0:
            return
        now = asyncio.get_running_loop().time()
        self.free = max(now, self.free) + n / bps
        await asyncio.sleep(self.free - now)


async def _exchange(proxy: Proxy, req: Request) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Response] | None:
    """Send ``req`` upstream and read the answer's head; a pooled connection the upstream closed is retried once."""
    for _ in range(2):
        try:
            reader, writer, reused = await proxy.upstream_connection()
        except OSError:
            return None
        try:
            writer.write(req.upstream_head + req.body)
            await writer.drain()
            return reader, writer, await _read_response(reader, req.method)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            close_quietly(writer)
            if not reused:
                return None
    return None


async def relay(proxy: Proxy, req: Request, client: asyncio.StreamWriter, down: Pacer) -> tuple[Optional[int], bool]:
    """Forward ``req`` and stream the answer to the client; (status, whether the client connection is usable)."""
    got = await _exchange(proxy, req)
    if got is None:  # the upstream is down: what a load balancer says
        await proxy.half_rtt()
        client.write(fault_answer(Fault("502"), req.method == "HEAD", close=not req.keep_alive))
        await client.drain()
        return 502, True
    reader, writer, resp = got
    reusable = False
    try:
        await proxy.half_rtt()
        if resp.framing == "close":
            body = b"".join([raw async for raw, _ in _pieces(reader, "close", 0)])
            client.write(_client_head(resp, len(body), not req.keep_alive))
            await _send(proxy, client, down, body, len(body))
        else:
            client.write(_client_head(resp, None, not req.keep_alive))
            async for raw, n in _pieces(reader, resp.framing, resp.length):
                await _send(proxy, client, down, raw, n)
        await client.drain()
        reusable = resp.reusable
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        return resp.status, False  # the upstream cut its answer: so does the proxy
    finally:
        if reusable:
            proxy.give_back(reader, writer)
        else:
            close_quietly(writer)
    return resp.status, True


async def _send(proxy: Proxy, client: asyncio.StreamWriter, down: Pacer, raw: bytes, n: int) -> None:
    proxy.count_down(n)  # before the client can have it: tests read the count once they hold the body
    client.write(raw)
    await client.drain()
    await down.pace(len(raw))


async def stall_or_cut(
    proxy: Proxy, req: Request, rule: Fault, client: asyncio.StreamWriter, down: Pacer
) -> tuple[Optional[int], bool]:
    """Send the upstream answer's head and half its body (half the head if it has none), then reset or stall."""
    got = await _exchange(proxy, req)
    if got is None:
        rst(client)
        return None, False
    reader, writer, resp = got
    try:
        body = b"".join([raw async for raw, _ in _pieces(reader, resp.framing, resp.length)])
    finally:
        close_quietly(writer)
    head = _client_head(resp, len(body) if resp.framing == "close" else None)
    sent = head + body[: len(body) // 2] if body else head[: len(head) // 2]
    await proxy.half_rtt()
    proxy.count_down(max(0, len(sent) - len(head)))
    client.write(sent)
    await client.drain()
    if rule.kind == "reset":
        await _flushed(client)
        rst(client)
    else:
        try:
            await asyncio.wait_for(proxy.stopping.wait(), rule.stall_seconds)
        except asyncio.TimeoutError:
            pass
        close_quietly(client)
    return resp.status, False


async def _flushed(writer: asyncio.StreamWriter) -> None:
    """Wait (up to ~1 s) until what was written left the kernel too: a reset drops what is still queued."""
    writer.transport.set_write_buffer_limits(0)
    await writer.drain()
    sock = writer.get_extra_info("socket")
    for _ in range(200):
        try:
            (queued,) = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))
        except (OSError, ValueError):
            return
        if queued == 0:
            return
        await asyncio.sleep(0.005)


def rst(writer: asyncio.StreamWriter) -> None:
    """Close with ``SO_LINGER 0``: the peer gets a TCP RST ("connection reset by peer")."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


def close_quietly(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
    except (OSError, RuntimeError):
        pass
