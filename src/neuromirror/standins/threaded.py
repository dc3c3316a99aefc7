"""The life of a stand-in served from a thread of the test's own process: start, stop, ``with``.

The DANDI, BOSS, GitHub and generated-S3 stand-ins each bind a ``ThreadingHTTPServer`` and serve it
from a daemon thread; only how the server is made differs (:meth:`ThreadServed._bind`).  ``stop``
wakes what waits on the server's ``stop_event`` (a stalled "timeout" fault) before shutting it down,
and keeps the stand-in's state: starting again serves the same archive (on the same port when the
stand-in asked for one).
"""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Any, Optional, TypeVar

_T = TypeVar("_T", bound="ThreadServed")


class ThreadServed:
    """Mixin: ``start`` / ``stop`` / ``running`` / ``with`` over the server :meth:`_bind` makes."""

    _server: Optional[ThreadingHTTPServer] = None
    _thread: Optional[threading.Thread] = None
    #: the server loop's poll: stop() returns within it
    POLL = 0.05

    def _bind(self) -> ThreadingHTTPServer:
        """A bound server whose handlers find this stand-in (``server.standin``); the port is known after."""
        raise NotImplementedError

    def start(self: _T) -> _T:
        """Serve from a daemon thread (a no-op when serving): listening once this returns."""
        if self._server is not None:
            return self
        server = self._bind()
        port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": self.POLL},
            daemon=True,
            name=f"{type(self).__name__}-{port}",
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; the stand-in's state is kept."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        stop_event = getattr(server, "stop_event", None)
        if stop_event is not None:
            stop_event.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self: _T) -> _T:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
