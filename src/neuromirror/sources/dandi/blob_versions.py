"""A blob whose current S3 object is deleted is still pinned: the noncurrent version holding the asset's bytes.

Why: the mirror pins a blob's S3 URL with the ``versionId`` a ``HEAD`` of the object gives.  A
mirror first made after the archive deleted the asset (a delete marker on top of the object, its
older versions kept for 30 days by the bucket's lifecycle rule) gets a 404 from that ``HEAD``, and
would record the plain URL — which serves nothing — while a noncurrent version still serves the
exact bytes.  So on a 404 (a 403 is not enough: an embargoed blob in the private bucket answers
403, and its bytes move to another bucket when the embargo ends) the object's versions are listed (``ListObjectVersions`` on the key, anonymously, as the Zarr side
lists its objects: :func:`neuromirror.sources.s3listing.paginate_versions`) and the newest version
whose ETag is the asset's ``dandi:dandi-etag`` and whose size is the asset's is pinned.  The
archive's uploads are multipart, and the dandi-etag is exactly that upload's S3 ETag, so a match
names the bytes (the SHA256E key still refuses any others at retrieval).  No match: no pin.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Optional

from neuromirror.sources import s3urls
from neuromirror.sources.dandi.unsigned_s3 import UnsignedS3
from neuromirror.sources.dandi.zarr_listing import is_archive_key

log = logging.getLogger("neuromirror.dandi")

#: seconds an answer of the archive's API may take (``repin``'s asset records)
TIMEOUT = 30
#: HEAD answers after which the object's versions are listed
LIST_AFTER = (404,)


def noncurrent_version(url: str, endpoints: tuple[str, ...], etag: Optional[str], size: int) -> Optional[str]:
    """The newest S3 version of ``url``'s object with ``etag`` and ``size`` (None: none, or no listing).

    Without an ETag to match there is no pin: a size alone does not name bytes.
    """
    if not etag:
        return None
    loc = s3urls.locate(url, endpoints, archive_key=is_archive_key)
    if loc is None:
        return None
    from botocore.exceptions import BotoCoreError, ClientError

    from neuromirror.sources.s3listing import paginate_versions

    client = UnsignedS3(loc.endpoint, os.environ.get("NEUROMIRROR_DANDI_S3_REGION", "us-east-1"))
    want = etag.strip('"').lower()
    found: list[tuple[str, str]] = []  # (LastModified, VersionId)
    try:
        for page in paginate_versions(client, Bucket=loc.bucket, Prefix=loc.key):
            found += _matching(page, loc.key, want, size)
    except (ClientError, BotoCoreError, OSError) as exc:  # a bucket we may not list: no pin, as before
        log.info("cannot list the versions of %s: %s", url, exc)
        return None
    return max(found)[1] if found else None


def _matching(page: dict, key: str, etag: str, size: int) -> list[tuple[str, str]]:
    """(LastModified, VersionId) of a listing page's versions of ``key`` with the asset's ETag and size:
    the versions that hold its bytes (the listing's prefix also finds longer keys: not these)."""
    found = []
    for v in page.get("Versions", []) or []:
        vid = v.get("VersionId")
        if (
            v.get("Key") == key
            and vid
            and vid != "null"
            and int(v.get("Size") or -1) == size
            and str(v.get("ETag") or "").strip('"').lower() == etag
        ):
            found.append((str(v.get("LastModified") or ""), vid))
    return found


#: the archive's own download route in a recorded URL: ``<api>/assets/<asset_id>/download/``
_DOWNLOAD = re.compile(r"^(?P<api>https?://.+?)/assets/[0-9a-f-]{36}/download/?$")


def reuploaded(source: str, path: str, urls: tuple[str, ...], sha256: Optional[str]) -> Optional[tuple[str, str]]:
    """``repin``'s question to the archive: the S3 URL of the draft's asset at ``path`` when its record's
    ``dandi:sha2-256`` is ``sha256`` (the same bytes re-uploaded as a new blob), and why; None: no such asset.

    The API is the one the file's recorded download route names (the archive writes its configured API URL
    there); the asset found by its path (``GET .../versions/draft/assets/?path=``), its digest and
    ``contentUrl`` read from its full record (``GET <api>/assets/<id>/``).  A record whose digest is another
    is no answer: a same-path asset with other bytes is not the file's."""
    api = next((m.group("api") for m in map(_DOWNLOAD.match, urls) if m), None)
    if api is None or not sha256:
        return None
    found = _draft_asset(api, source.partition(":")[2], path)
    if found is None:
        return None
    asset_id, meta = found
    if str((meta.get("digest") or {}).get("dandi:sha2-256", "")).lower() != sha256.lower():
        return None
    s3 = [u for u in meta.get("contentUrl") or [] if isinstance(u, str) and not _DOWNLOAD.match(u)]
    why = f"the archive's asset {asset_id} at {path}: its dandi:sha2-256 is the key's"
    return (s3[0].split("?", 1)[0], why) if s3 else None


def _draft_asset(api: str, dandiset: str, path: str) -> Optional[tuple[str, dict]]:
    """(asset_id, full metadata) of the draft's asset at ``path``; None: no asset there."""
    from neuromirror.network import identity

    listed = identity.request(
        "GET", f"{api}/dandisets/{dandiset}/versions/draft/assets/", params={"path": path}, timeout=TIMEOUT
    )
    listed.raise_for_status()
    asset = next((a for a in listed.json().get("results") or [] if a.get("path") == path), None)
    if asset is None:
        return None
    record = identity.request("GET", f"{api}/assets/{asset['asset_id']}/", timeout=TIMEOUT)
    record.raise_for_status()
    return str(asset["asset_id"]), record.json()
