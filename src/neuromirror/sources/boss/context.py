"""What the source's steps need of an experiment: two small protocols, so that each step reads without :mod:`.source`.

:mod:`.plan`, :mod:`.layout`, :mod:`.metadata` and :mod:`.keys` are handed the
experiment they work on; they name here the few things they read of it, and
:class:`~neuromirror.sources.boss.source.BossSource` has them all.  The source
passes itself (nothing is copied per sync, nothing more is looked up per chunk),
and no step imports the source back.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

from neuromirror.records import ContentSink
from neuromirror.sources.boss.chunks import Chunk
from neuromirror.sources.boss.options import BossSettings


class Experiment(Protocol):
    """Which experiment, and what to mirror of it: what planning and laying out read (:mod:`.plan`, :mod:`.layout`)."""

    @property
    def collection(self) -> str: ...

    @property
    def experiment(self) -> str: ...

    @property
    def remote_id(self) -> str:
        """``COLL/EXP``, as messages name it."""

    @property
    def settings(self) -> BossSettings: ...


class ExperimentReader(Experiment, Protocol):
    """An experiment to read from the BOSS (:mod:`.metadata`, :mod:`.keys`): the client, and the log's id."""

    @property
    def id(self) -> str: ...

    @property
    def remote(self) -> Any:
        """The intern client (made on first use)."""

    def call(self, what: str, fn: Any) -> Any:
        """``fn()`` against the BOSS: retried when transient, a one-line BossError when not."""

    def hash_chunk(self, chunk: Chunk, sink: Optional[ContentSink] = None, path: str = "") -> str:
        """The sha256 of a chunk's bytes, read now (handed to ``sink`` as well, if any)."""
