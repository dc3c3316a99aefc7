"""A port nobody listens on now, for a server the mirror starts on this machine.

Why one function: the view of ``browse`` (``serve --browse`` with port 0), the bench's local servers and the
tests' Dask clusters each asked the system for one, three times the same lines.  The system picks it (bind to
port 0) and the socket closes at once, so the port is free when asked, not reserved: a server started right
after binds it (another process taking it meanwhile is a server's own error to say).
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` (an IPv4 or IPv6 address; default loopback) that nobody listens on now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
