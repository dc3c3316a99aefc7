"""The API's verb that mirrors: ``sync`` (``neuromirror sync``), sources to datasets, the index and the root."""

from __future__ import annotations

from neuromirror.api.base import MirrorBase


class Syncing(MirrorBase):
    """The API's verb that mirrors."""
