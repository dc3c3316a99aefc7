"""The environment variables a URL's proxy depends on, read as one key.

Why: :class:`.pools.Pools` and :class:`.sessions.EnvOnceSession` both keep urllib's proxy answer (which walks the
whole environment, ~80 us) per host, and must see a changed ``HTTP_PROXY`` / ``NO_PROXY`` at the next request: they
keep it under these variables' values, by one rule.  A module of its own so that neither imports the other.
"""

from __future__ import annotations

import os
from typing import Optional

#: the variables urllib's proxy answer for a URL depends on, besides ``<scheme>_proxy`` (lower case: read as the key)
PROXY_ENV = ("REQUEST_METHOD", "no_proxy", "NO_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


def proxy_env(scheme: str) -> tuple[Optional[str], ...]:
    """The values of the variables a ``scheme`` URL's proxy depends on: what a kept proxy answer is kept under,
    so that a change to any is seen at the next request."""
    return (*map(os.environ.get, PROXY_ENV), os.environ.get(f"{scheme}_proxy"))
