"""A version's asset list read whole: every page, each asset once, as many as the version says (and the
dandiset's versions list: each once, its most recent published one in it).

Why its own room: a page that repeats or skips, or a body cut short, must never become a commit
that lies about the archive, so the listing is judged whole and read again (a few times) until it
is complete; a resync that finds too many assets needing their metadata abandons its light
listing for one with metadata (:class:`~neuromirror.sources.dandi.assets.Reuse`).  Pins are asked from the pages as they
come (:mod:`neuromirror.sources.dandi.pin_ahead`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Optional

import requests

from neuromirror.records import ProgressCallback
from neuromirror.sources.dandi import assets
from neuromirror.sources.dandi.assets import Listing, Reuse
from neuromirror.sources.dandi.client import LISTING_ATTEMPTS, DandiAPI, DandiError, gist
from neuromirror.sources.dandi.pin_ahead import PinAhead
from neuromirror.util.crashpoints import crashpoint

log = logging.getLogger("neuromirror.dandi")

#: what :meth:`AssetListing._read_assets` says when the listing was abandoned (compared by identity)
_TOO_MANY = "too many assets need their metadata: listing again with it"


@dataclass(frozen=True)
class _Asked:
    """What every attempt at a version's listing asks and expects (:meth:`AssetListing._list_assets`)."""

    rd: Any  # the version's remote dandiset (its API path)
    params: dict[str, str]
    progress: Optional[ProgressCallback]
    reuse: Optional[Reuse]
    ahead: Optional[PinAhead]
    expected: Any  # the version's asset_count, as the archive wrote it
    total: Optional[int]  # the same when it is a count


class AssetListing(DandiAPI):
    """The part of :class:`~neuromirror.sources.dandi.source.DandiSource` that lists a version's assets."""

    def _published_versions(self, d: Any) -> list[Any]:
        """The dandiset's published versions, judged whole as an asset listing is: a version listed twice
        (a page repeated) or the most recent one the dandiset names missing (a page skipped, say the
        only page: an empty list would read as "nothing published") lists again, a few times."""
        latest = self._call(lambda: d.most_recent_published_version, "reading dandiset")
        problem = ""
        for attempt in range(LISTING_ATTEMPTS):
            versions = self._call(lambda: [v for v in d.get_versions() if v.identifier != "draft"], "listing versions")
            labels = [v.identifier for v in versions]
            if len(set(labels)) < len(labels):
                problem = "a version listed twice (a page repeated)"
            elif latest is not None and latest.identifier not in labels:
                problem = f"the most recent version {latest.identifier} not listed (a page skipped)"
            else:
                return versions
            self._again("listing versions", problem, attempt)
        raise self._inconsistent("versions listing", problem)

    def _list_assets(
        self,
        rd: Any,
        version: Any,
        progress: Optional[ProgressCallback],
        reuse: Optional[Reuse] = None,
        ahead: Optional[PinAhead] = None,
    ) -> Optional[Listing]:
        """The version's complete asset list, spooled to disk and checked for completeness.

        A page that repeats or skips, or a body cut short, must never become
        a commit that lies about the archive: every asset id must be unique
        and their number must match the version's ``asset_count``; otherwise
        list again.  With ``reuse``, the assets come without their metadata and
        are looked up in the last synced state a page at a time; None when so
        many need their metadata that listing with it is cheaper (:class:`Reuse`).
        """
        expected = getattr(version, "asset_count", None)
        total = expected if isinstance(expected, int) and not isinstance(expected, bool) else None
        params = {"order": "path"} if reuse is not None else {"order": "path", "metadata": "1"}
        asked = _Asked(rd, params, progress, reuse, ahead, expected, total)
        last_problem = ""
        for attempt in range(LISTING_ATTEMPTS):
            listing = Listing(reuse)
            if reuse is not None:
                reuse.restart()
            problem = self._attempt(asked, listing)
            if problem is _TOO_MANY:
                return None
            if problem is None:
                if progress:
                    progress("listing", listing.count, expected)
                return listing
            listing.close()
            last_problem = problem
            self._again("listing", problem, attempt)
        raise self._inconsistent("asset listing", last_problem)

    def _again(self, what: str, problem: str, attempt: int) -> None:
        """A listing judged not whole (``problem``) at ``attempt`` (0, 1, ...): said, and a pause before the next."""
        log.warning("DANDI:%s: %s; %s again (attempt %d)", self.identifier, problem, what, attempt + 2)
        time.sleep(min(2**attempt * 0.2, 3))

    def _inconsistent(self, what: str, problem: str) -> DandiError:
        """A listing never whole in :data:`LISTING_ATTEMPTS` tries: the sync's one-line error."""
        return DandiError(f"DANDI API at {self.api_url}: inconsistent {what} of {self.identifier}: {problem}")

    def _attempt(self, asked: _Asked, listing: Listing) -> Optional[str]:
        """One listing of the version into ``listing``, judged whole: None when complete, the problem
        that makes it list again (a body cut short, a count that disagrees), or :data:`_TOO_MANY`
        when ``reuse`` gave up.  Any other failure closes the listing and is the sync's error."""
        expected, reuse = asked.expected, asked.reuse
        try:
            problem = self._read_assets(asked, listing)
            if problem is _TOO_MANY:
                return problem
        except DandiError:
            listing.close()
            raise
        except (ValueError, requests.exceptions.ChunkedEncodingError) as exc:
            # a body cut short (the client does not retry it): unparsable JSON — requests'
            # JSONDecodeError is a ValueError — or fewer bytes than the server announced
            problem = f"unreadable page ({gist(exc)})"
        except Exception as exc:
            listing.close()
            raise DandiError(f"DANDI API at {self.api_url}: listing assets of {self.identifier}: {gist(exc)}") from None
        if problem is None and isinstance(expected, int) and listing.count != expected:
            problem = f"listing has {listing.count} assets, the version says {expected}"
        if problem is None and reuse is not None and reuse.too_many(listing.count):  # the last page's share
            self._abandon(listing, reuse)
            return _TOO_MANY
        return problem

    def _read_assets(self, asked: _Asked, listing: Listing) -> Optional[str]:
        """One pass over the version's asset pages into ``listing`` (:meth:`_list_assets`' attempt):
        None when every page was read, the problem that makes it list again (a malformed record, a
        page repeated), or :data:`_TOO_MANY` when ``reuse`` gave up and the listing was abandoned."""
        page = assets.PAGE_SIZE
        progress, reuse, ahead, expected, total = asked.progress, asked.reuse, asked.ahead, asked.expected, asked.total
        problem = None
        for asset in self._paginate(f"{asked.rd.version_api_path}assets/", page_size=page, params=asked.params):
            if not isinstance(asset, dict) or not isinstance(asset.get("asset_id"), str):
                problem = "malformed asset record in listing"
                break
            if not listing.add_asset(asset):
                problem = f"asset {asset['asset_id']} listed twice (a page repeated)"
                break
            if ahead is not None:
                ahead.offer(asset)
            if reuse is not None and reuse.too_many(total):
                self._abandon(listing, reuse)
                return _TOO_MANY
            crashpoint("dandi-asset")
            if progress and len(listing.ids) % page == 0:
                progress("listing", len(listing.ids), expected)
        if problem is None:
            listing.flush()
        if ahead is not None:
            ahead.flush()
        return problem

    def _abandon(self, listing: Listing, reuse: Reuse) -> None:
        listing.close()
        log.info(
            "DANDI:%s: %d assets or more need their metadata: listing again with it", self.identifier, reuse.to_fetch
        )
