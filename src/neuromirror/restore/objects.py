"""The archive objects a version's files are: each file's key in the archive's own bucket layout.

The key is read from what the mirror recorded, never guessed from the path: a file's S3 URL
(DANDI's ``…/blobs/abc/def/<uuid>?versionId=…``, a Zarr object's ``…/zarr/<id>/<path>``, an AIND
asset's ``…/<asset>/<path>``) names its bucket and key; a BOSS chunk has no S3 object, its
OME-Zarr chunk path in the dataset is its key.  A file the mirror keeps in git (DANDI's README.md,
CHANGES...) is an archive object too when the archive serves it: its URLs are on the git-annex
branch (:mod:`.gitfiles`), its bytes in git.  A file with neither (an embargoed DANDI file) is
reported as not restorable, with why.  A key that could escape a directory target (``..``,
absolute, control characters) is refused by the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from neuromirror import archives
from neuromirror.dataset.files import SPECIAL_PREFIX, annex_key, annex_repo
from neuromirror.records import VersionFile
from neuromirror.sources import s3urls


@dataclass(frozen=True)
class ArchiveObject:
    """One object to restore: where it goes (``archive_key``), what it must hold (``key``) and why."""

    archive_key: str
    key: str  # the git-annex key its bytes are checked against
    size: Optional[int]
    path: str  # the file in the version (a Zarr's files under its path)
    source: str
    label: str
    bucket: str = ""  # the bucket its recorded S3 URL names ("" for BOSS chunks)
    url: str = ""  # that URL, without its query: the base of the URL a restore into that bucket records
    repo: str = ""  # the dataset whose git-annex branch knows the key
    git: str = ""  # a file kept in git: ``COMMIT:PATH`` of its blob in ``repo`` (its bytes come from there)


@dataclass(frozen=True)
class Unplaced:
    path: str
    key: str
    why: str


def key_rule(source: str) -> Callable[[str], bool]:
    """What an S3 key of ``source``'s archive looks like, for URLs on hosts no endpoint setting names (its record's
    ``key_rule``: any key when no archive registered the source's)."""
    archive = archives.of_source(source)
    return archive.key_rule if archive else bool


def _special_at_path(source: str) -> bool:
    """Whether content behind the archive's own special remote goes back under its path (BOSS chunks)."""
    archive = archives.of_source(source)
    return bool(archive and archive.restores_special_at_path)


def place(
    f: VersionFile, source: str, label: str, locator: Optional[s3urls.Locator] = None
) -> ArchiveObject | Unplaced:
    """The archive object ``f`` is, or why it has none the mirror knows (``locator``: one for ``source``,
    :func:`locator`, kept by a caller placing many files)."""
    found = _s3_object(f.urls, locator or locator_for(source))
    if found is not None:
        (bucket, key), base = found
        return ArchiveObject(key, annex_key(f), f.size, f.path, source, label, bucket, base, str(annex_repo(f)))
    if _special_at_path(source) and any(u.startswith(SPECIAL_PREFIX) for u in f.urls):
        return ArchiveObject(f.path, annex_key(f), f.size, f.path, source, label, "", "", str(annex_repo(f)))
    if any(u.startswith(SPECIAL_PREFIX) for u in f.urls):
        return Unplaced(f.path, annex_key(f), "content behind a special remote (embargoed): no S3 key recorded")
    return Unplaced(f.path, annex_key(f), "no S3 URL recorded: the archive's key for it is unknown")


def place_in_git(
    path: str,
    key: str,
    size: Optional[int],
    urls: Iterable[str],
    source: str,
    label: str,
    locator: s3urls.Locator,
    repo: str,
    blob: str,
) -> ArchiveObject | Unplaced | None:
    """A file kept in git whose archive ``urls`` (registered under ``key``) name an S3 object: that object,
    its bytes read from ``blob`` (``COMMIT:PATH`` in ``repo``); None for a file the archive does not serve
    (no URL: the mirror's own, such as ``dandiset.yaml``)."""
    urls = tuple(urls)
    if not urls:
        return None
    found = _s3_object(urls, locator)
    if found is None:
        return Unplaced(path, key, "kept in git; no S3 URL recorded: the archive's key for it is unknown")
    (bucket, archive_key), base = found
    return ArchiveObject(archive_key, key, size, path, source, label, bucket, base, repo, blob)


def _s3_object(urls: Iterable[str], find: s3urls.Locator) -> Optional[tuple[tuple[str, str], str]]:
    """((bucket, key), the URL without its query) of the first URL naming an S3 object; a versioned URL
    first: it is the S3 one (the archive's download route has none), one parse per file."""
    urls = tuple(urls)
    for url in sorted(urls, key=lambda u: "versionId=" not in u) if len(urls) > 1 else urls:
        loc = find(url)
        if loc is not None and loc.key:
            return (loc.bucket, loc.key), url.split("?", 1)[0]
    return None


def locator_for(source: str) -> s3urls.Locator:
    """How ``source``'s recorded URLs name S3 objects (the endpoints in use, its archive's key shape)."""
    return s3urls.Locator(s3urls.endpoints_in_use(), key_rule(source))


def dedupe(objs: Iterable[ArchiveObject]) -> tuple[list[ArchiveObject], list[ArchiveObject]]:
    """One object per archive key, the last named winning (a later version's state of a Zarr chunk);
    the objects it displaced whose content differs (reported, not written)."""
    chosen: dict[str, ArchiveObject] = {}
    displaced: list[ArchiveObject] = []
    for o in objs:
        old = chosen.get(o.archive_key)
        if old is not None and old.key != o.key:
            displaced.append(old)
        chosen[o.archive_key] = o
    return list(chosen.values()), displaced
