"""The one rule for the URLs registered for a key: no mutable URL beside a pinned one.

Why it exists: git-annex's web remote downloads from the first of a key's URLs
that answers and only then verifies; after a failed verification it does *not*
go on to the next URL (it does after a 404).  So a URL whose bytes can change
upstream (an S3 key without ``versionId``, the DANDI API's Zarr download route,
which redirects to the *current* object) registered beside a pinned one makes
``get`` of an older commit fail after an in-place rewrite, although the pinned
URL would still serve the right bytes.  A pinned version that cannot be
retrieved is the worst bug a mirror can have.

The rule, applied to every annexed entry of every source before it is diffed
and written (:func:`admit`; the generic sync and the Zarr subdataset writer
both call it), and to datasets made by earlier versions (:mod:`neuromirror.engine.repair`):

* a URL is **stable** when it always serves the key's bytes or nothing: pinned
  by an S3 ``versionId``, or naming something the archive never reuses for
  other bytes (a DANDI asset id's download route, a DANDI blob's S3 key);
* stable URLs are registered, mutable ones are dropped whenever a stable one
  exists;
* an entry with no stable URL at all (a bucket without versioning, an
  embargoed Zarr object, a BOSS cutout) keeps its mutable URLs — the only way
  to its bytes — and is counted as **unpinned**: the sync says so, and the key
  (MD5E / SHA256E, or a VURL whose checksum git-annex records on first get)
  refuses other bytes.

URLs are told apart by their shape alone, so that the rule needs no archive
client and applies to the git-annex branch of any existing dataset.  Anything
not recognised as stable is mutable: an unknown URL never shadows a pinned one.
"""

from __future__ import annotations

import dataclasses
import re
from enum import Enum
from typing import Iterable
from urllib.parse import urlsplit

from neuromirror import archives
from neuromirror.records import AnnexEntry


class Stability(str, Enum):
    PINNED = "pinned"  # an S3 object version: ?versionId=
    IMMUTABLE = "immutable"  # a name the archive never reuses for other bytes
    MUTABLE = "mutable"  # may serve other bytes tomorrow


_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
#: DANDI's download route of an asset, top-level or nested under a version: an asset
#: id names one blob for good (new content or metadata makes a new asset id)
_DANDI_ASSET_DOWNLOAD = re.compile(rf"/assets/{_UUID}/download/?$", re.I)
#: a DANDI blob's S3 key, blobs/<3>/<3>/<blob uuid>: a blob's bytes never change
_DANDI_BLOB_KEY = re.compile(r"/blobs/([0-9a-f]{3})/([0-9a-f]{3})/(\1\2[0-9a-f-]{30})$", re.I)
#: an S3 object version in a query string (a "null" version id pins nothing)
_VERSION_ID = re.compile(r"[?&]versionId=(?!null(?:[&#]|$))[^&#]")


def stability(url: str) -> Stability:
    """What a URL promises about the bytes it serves, from its shape."""
    if not url.startswith(("http://", "https://")):
        return _special(url)
    # called for every entry of 10^6-object listings: regexes on the string, no urlsplit
    cut = url.find("?")
    if cut >= 0 and _VERSION_ID.search(url, cut):
        return Stability.PINNED
    path = url if cut < 0 else url[:cut]
    path = path.split("#", 1)[0]
    # both patterns are case-blind and anchored at the end: a look at the end first (a Zarr
    # object's API route, once per object of a listing, ends in neither)
    tail = path[-64:].casefold()
    if (tail.endswith(("/download", "/download/")) and _DANDI_ASSET_DOWNLOAD.search(path)) or (
        "/blobs/" in tail and _DANDI_BLOB_KEY.search(path)
    ):
        return Stability.IMMUTABLE
    return Stability.MUTABLE


def _special(url: str) -> Stability:
    """A URL of an archive's own special remote (``neuromirror+dandi:<API URL>``, ``neuromirror+boss://...``)
    is immutable when its archive's record says so (a DANDI asset's download route); anything else is mutable."""
    archive = archives.of_special_url(url)
    return Stability.IMMUTABLE if archive and archive.special_immutable(url) else Stability.MUTABLE


def is_asset_download(url: str) -> bool:
    """Whether ``url``'s path is a DANDI asset's download route (an asset id names one blob for good)."""
    return bool(_DANDI_ASSET_DOWNLOAD.search(urlsplit(url).path))


def is_stable(url: str) -> bool:
    return stability(url) is not Stability.MUTABLE


def admissible(urls: Iterable[str]) -> tuple[tuple[str, ...], bool]:
    """(the URLs to register, whether none of them is stable) — see the module's rule."""
    urls = tuple(urls)
    if len(urls) == 1:  # an S3 object's one URL, 10^6 times in a large asset
        return urls, not is_stable(urls[0])
    stable = tuple(u for u in urls if is_stable(u))
    if stable:
        return stable, False
    return urls, bool(urls)


def to_drop(urls: Iterable[str]) -> list[str]:
    """The registered URLs the rule removes: mutable ones beside a stable one (for repair)."""
    kept, _ = admissible(urls)
    return [u for u in urls if u not in kept]


@dataclasses.dataclass
class Tally:
    """Counts the entries a sync registers without any stable URL, for its report."""

    unpinned: int = 0
    example: str = ""

    def admit(self, entry: AnnexEntry) -> AnnexEntry:
        """The entry with only the URLs the rule lets it register."""
        urls, unpinned = admissible(entry.urls)
        if unpinned:
            self.unpinned += 1
            self.example = self.example or entry.path
        if urls == entry.urls:
            return entry
        return dataclasses.replace(entry, urls=urls)

    def warning(self, where: str = "") -> str | None:
        """The line the sync output and the run record carry, or None when every URL is stable."""
        if not self.unpinned:
            return None
        at = f" in {where}" if where else ""
        return (
            f"{self.unpinned} file(s){at} have no pinned URL (e.g. {self.example!r}): their URLs may serve "
            "other bytes after an upstream change, which the key's check then refuses"
        )
