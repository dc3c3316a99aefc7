"""The API's verbs that report on and tend the mirror: ``status``, ``publish``, ``maintain`` and ``reindex``."""

from __future__ import annotations

from neuromirror.api.reading import Reading


class Upkeep(Reading):
    """The API's verbs that report on and tend the mirror."""
