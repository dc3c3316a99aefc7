"""The API's verbs that hand a pin's files out: ``get``, ``reproduce``, ``urls`` and ``search``."""

from __future__ import annotations

from neuromirror.api.reading import Reading


class Getting(Reading):
    """The API's verbs that hand a pin's files out."""
