"""Local servers the scenarios start beside what they measure: a free port, a directory served over dumb HTTP.

A store published over HTTP is served by ``python -m http.server`` in a process of its own, so the
server's CPU is never counted as the client's; its access log (stderr) goes to a file when a scenario
counts the requests a clone made.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from neuromirror.network.ports import free_port


@contextmanager
def served_directory(root: Path, log: Optional[Path] = None) -> Iterator[str]:
    """``python -m http.server`` on ``root`` (each request logged to ``log`` when given); its URL while it runs."""
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)]
    if log is None:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        with log.open("wb") as fh:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=fh)
    try:
        _wait_listening(proc, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_listening(proc: subprocess.Popen, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("http.server did not start") from None
            time.sleep(0.05)
