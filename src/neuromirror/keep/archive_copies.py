"""Verified copies per archive, counted per key: the numbers an operator judges a backup by.

``status --copies --json`` gives, besides each version's counts (:mod:`.copies`), one record per
archive (``dandi``, ``aind``, ``boss``): its distinct keys by number of verified copies outside the
archive (``by_copies``: ``{"0": n, "1": n, "2": n}``), per store the keys and bytes it holds verified
and the times of its oldest and newest good check, and the age of the oldest last check (how long
the stalest verified copy has gone unread).  A key several versions share counts once; a copy counts
as :mod:`.copies` counts it (named by the location log, with a good check in the index).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from neuromirror.dataset.files import annex_key
from neuromirror.records import VersionFile
from neuromirror.util.dates import iso_z

if TYPE_CHECKING:
    from neuromirror.index.rows import Version


@dataclass
class ArchiveCopies:
    archive: str
    wanted: int = 1
    keys: dict[str, dict[str, float]] = field(default_factory=dict)  # key -> {store uuid: last good check}
    sizes: dict[str, int] = field(default_factory=dict)

    def to_json(self, stores: dict[str, dict], now: Optional[float] = None) -> dict:
        now = time.time() if now is None else now
        by_copies: dict[str, int] = {}
        by_store: dict[str, dict] = {}
        lasts: list[float] = []
        short = 0
        for key, checked in self.keys.items():
            n = str(len(checked))
            by_copies[n] = by_copies.get(n, 0) + 1
            short += len(checked) < self.wanted
            for uuid, t in checked.items():
                s = by_store.setdefault(uuid, {"keys": 0, "bytes": 0, "oldest_check": t, "newest_check": t})
                s["keys"] += 1
                s["bytes"] += self.sizes.get(key, 0)
                s["oldest_check"] = min(s["oldest_check"], t)
                s["newest_check"] = max(s["newest_check"], t)
            if checked:
                lasts.append(max(checked.values()))
        for uuid, s in by_store.items():
            known = stores.get(uuid, {})
            s.update(url=known.get("url"), name=known.get("name"), kind=known.get("kind"))
            s["oldest_check_age_s"] = round(now - s["oldest_check"], 1)
            s["oldest_check"], s["newest_check"] = iso_z(s["oldest_check"]), iso_z(s["newest_check"])
        stalest = min(lasts, default=None)
        return {
            "archive": self.archive,
            "keys": len(self.keys),
            "bytes": sum(self.sizes.values()),
            "wanted": self.wanted,
            "by_copies": dict(sorted(by_copies.items(), key=lambda kv: int(kv[0]))),
            "fewer_than_wanted": short,
            "by_store": by_store,
            "oldest_last_check": iso_z(stalest),
            "oldest_last_check_age_s": None if stalest is None else round(now - stalest, 1),
        }


class PerArchive:
    """Collects :class:`ArchiveCopies` from :func:`neuromirror.keep.copies.copies_report`'s ``on_file``."""

    def __init__(self, wanted: dict[str, int]):
        self.archives: dict[str, ArchiveCopies] = {}
        self._wanted = wanted  # source -> the copies wanted for it

    def __call__(self, target: Version, f: VersionFile, checked: dict[str, float]) -> None:
        archive = target.source.split(":", 1)[0]
        a = self.archives.setdefault(archive, ArchiveCopies(archive))
        a.wanted = max(a.wanted, self._wanted.get(target.source, 1))
        have = a.keys.setdefault(annex_key(f), {})
        for uuid, t in checked.items():
            have[uuid] = max(t, have.get(uuid, t))
        a.sizes[annex_key(f)] = f.size or 0
