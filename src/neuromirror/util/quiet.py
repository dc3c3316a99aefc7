"""Keep DataLad from chatting on our stderr while we call its API."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def quiet_env() -> Iterator[None]:
    """DataLad reads its log level from the environment; keep it from chatting on our stderr."""
    import logging

    logger = logging.getLogger("datalad")
    old = logger.level
    logger.setLevel(max(old, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(old)
