"""A sync's paces shared with its worker processes: one limit and one Retry-After per endpoint.

Why: a dandiset's large Zarrs are listed in worker processes (:mod:`neuromirror.util.processes`),
beside the sync's own threads pinning blobs against the same S3 endpoint.  With a pace each, a
``SlowDown`` or a ``Retry-After`` one process met would not hold the others back, and their limits
would add up.  So the process that starts the workers holds the paces and answers for them on a
Unix socket (``multiprocessing.connection``, with a key of its own); a worker's
:class:`~neuromirror.network.pacing.RemotePace` asks it for each slot.  A slot is asked once a
listing page (1,000 objects), so the round trip on the socket (~0.1 ms) costs nothing that counts.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from multiprocessing import AuthenticationError
from typing import Any, Optional

from neuromirror.network import pacing

_address: Optional[str] = None
_lock = threading.Lock()


def serve() -> None:
    """Hold this process's paces for the worker processes it starts from now on (once per process).

    The address and key go into the environment (:data:`~neuromirror.network.pacing.SHARED_ENV`),
    which a spawned worker inherits, and a worker's :func:`~neuromirror.network.pacing.pace_for`
    reads.
    """
    global _address
    from multiprocessing.connection import Listener

    with _lock:
        if _address is not None:
            return
        folder = tempfile.mkdtemp(prefix="neuromirror-pace-")
        key = os.urandom(16)
        path = os.path.join(folder, "paces")
        listener = Listener(path, family="AF_UNIX", authkey=key)
        atexit.register(_close, listener, folder)
        threading.Thread(target=_accept, args=(listener,), name="pace-holder", daemon=True).start()
        os.environ[pacing.SHARED_ENV] = f"{os.getpid()} {path} {key.hex()}"
        _address = path


def _close(listener: Any, folder: str) -> None:
    """At exit: the socket unlinked by its listener, then its folder."""
    try:
        listener.close()
    except OSError:
        pass
    shutil.rmtree(folder, ignore_errors=True)


def _accept(listener: Any) -> None:
    while True:
        try:
            conn = listener.accept()
        except AuthenticationError:  # not one of ours: the next
            continue
        except OSError:  # the listener closed at exit
            return
        threading.Thread(target=_answer, args=(conn,), name="pace-answer", daemon=True).start()


def _answer(conn: Any) -> None:
    """One worker thread's requests, in order: open, acquire, release, observe."""
    with conn:
        while True:
            try:
                op, endpoint, *args = conn.recv()
            except (EOFError, OSError):
                return
            if op == "open":  # the worker's ceilings, and how far the endpoint is
                conn.send(pacing.pace_for(endpoint, int(args[0]), args[1]).min_rtt)
                continue
            pace = pacing.pace_for(endpoint)
            if op == "acquire":
                conn.send(pace.acquire())
            elif op == "release":
                pace.release(*args)
                conn.send(None)
            elif op == "observe":
                pace.observe(float(args[0]))
                conn.send(None)
            else:
                conn.send(None)
