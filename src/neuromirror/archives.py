"""The archives the mirror knows, each an :class:`Archive` its own package registers: nothing else names them.

As restic's backend ``location.Registry`` and rclone's ``fs.Register``: ``sources/<name>/__init__.py``
calls :func:`register` with one record saying everything the rest of the house asks of an archive (how
its names read, its citation's publisher, its view's name parts, whether reading needs an account, what
a sync keeps, its restore key layout...). The modules that used to hold a table keyed by archive names
ask :func:`get` instead, so an archive is added by adding its package (or, for a test, by calling
:func:`register` with a stand-in's record) and no other file.

This module sits in the base (spec reads it) and imports nothing above it. The records are filled when
``neuromirror.sources`` is imported, which the registry (a :class:`~neuromirror.registry.Registry`) does on
first use by the package's *name* (``importlib``), as entry points are loaded: the base never depends on
the sources at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from neuromirror.registry import Registry

#: the package whose subpackages register the archives (imported on first use, by name)
PLUGINS = "neuromirror.sources"

#: a SPEC's name as typed (``text`` is the whole SPEC, for the error), checked and in its normal form
NameCheck = Callable[[str, str], str]
#: an identifier copied from an archive's pages (URL, DOI...) read as (name, version, API URL); it raises
#: a :class:`~neuromirror.errors.BadInput` for text that looks like one but names nothing to mirror
IdentifierReader = Callable[[str], "tuple[str, Optional[str], Optional[str]]"]
#: a file's bytes found again by the archive's own record of it (``repin``): (source, path, the file's recorded
#: URLs, the key's SHA-256 or None) -> (the URL of an S3 object the record says holds them, why), None: no record
Refind = Callable[[str, str, "tuple[str, ...]", Optional[str]], "Optional[tuple[str, str]]"]


def _any_key(key: str) -> bool:
    return bool(key)


def _never(url: str) -> bool:
    return False


def _one_put(key: str, size: int) -> Optional[list[tuple[int, int]]]:
    """No parts of the archive's own: restore's default split applies."""
    return None


@dataclass(frozen=True)
class Archive:
    """What the house asks of one archive, in one place."""

    name: str  # the ARCHIVE of ``ARCHIVE:NAME``
    source_module: str  # the module with ``expand`` (and ``listed``, ``listing_covers``...): the Source
    check_name: NameCheck
    publisher: str  # who publishes its datasets, as a citation names them
    #: the metadata file at a dataset's top a citation reads (title, authors, licence...), None: none
    citation_file: Optional[str] = None
    #: path parts of a source's name under ``/dav/ARCHIVE/`` (``boss:COLL/EXP``: 2)
    name_parts: int = 1
    #: the view's share laid out as the archive's own file server lays its sources out (dandidav's
    #: ``/dandisets/``), None: under ``/dav/ARCHIVE/`` only
    view_share: Optional[str] = None
    #: ``draft`` is a state of the archive's own, moving with each sync (else ``@draft`` is the newest snapshot)
    has_draft: bool = False
    #: a reader of the identifiers users copy from the archive (and whether ``text`` looks like one)
    looks_like_identifier: Optional[Callable[[str], bool]] = None
    read_identifier: Optional[IdentifierReader] = None
    #: why every read needs an account there (said by publish), None: its content is public
    account: Optional[str] = None
    #: a sync keeps content in the lab's store as it goes (BOSS chunks, read once), not only ``keep``
    keeps_at_sync: bool = False
    #: restore's key layout: whether an S3 key on a host no endpoint setting names is the archive's
    key_rule: Callable[[str], bool] = _any_key
    #: the parts an object was uploaded in, so its ETag comes back the same (None: restore's default)
    part_spans: Callable[[str, int], Optional[list[tuple[int, int]]]] = _one_put
    #: content behind the archive's own special remote is restored under the file's path as its key
    restores_special_at_path: bool = False
    #: the URL prefix the archive's own special remote claims (``neuromirror+boss``), and why a file with
    #: only such a URL has none a reader may use; None: no special remote
    special_remote: Optional[tuple[str, str]] = None
    #: whether a URL its special remote claims always serves the same bytes (the URL rule's IMMUTABLE)
    special_immutable: Callable[[str], bool] = _never
    #: the key under which its images' ``.zattrs`` carry the archive's own facts (a level's recorded extent,
    #: an annotation channel's type); None: none
    image_attrs: Optional[str] = None
    #: the document at a pin's top that lists its images' channels (``regions``), None: name a PATH
    channels_document: Optional[str] = None
    #: the module with the archive's ``add_options(group)`` (light: every parser reads it); None: ``options``
    #: beside the source module
    options_module: Optional[str] = None
    #: the sync options a SPEC adds (an instance's API its URL named...): (spec, options) -> options
    sync_options: Optional[Callable[..., dict[str, Any]]] = None
    #: ``repin``'s last way to a key whose pins died: the archive's record of the file (DANDI: the asset re-uploaded
    #: at its path with the same digest); None: the archive keeps no such record
    refind: Optional[Refind] = None
    #: the archive's own page of a source, the homepage of its published repository (``publish --to github:``):
    #: ``{name}`` the source's name, ``{first}`` its first part (a BOSS collection); "" none
    home_page: str = ""


_ARCHIVES: Registry[Archive] = Registry([PLUGINS])
#: make an archive known (its package calls this when imported; a test may, for a toy archive)
register = _ARCHIVES.register
#: forget an archive (a test's toy one, once the test is done)
unregister = _ARCHIVES.unregister
#: every registered archive by name, in the order their packages registered
known = _ARCHIVES.known
names = _ARCHIVES.names
#: the archive called ``name`` (case as typed is the caller's), None when no package registered it
get = _ARCHIVES.get


def keeps_at_sync(name: str) -> bool:
    """Whether a sync of the archive's sources keeps content in the lab's store as it goes."""
    archive = get(name)
    return bool(archive and archive.keeps_at_sync)


def with_share(share: str) -> str:
    """The name of the archive whose sources the view's ``share`` lists ("" when none does)."""
    return next((a.name for a in known().values() if a.view_share == share), "")


def image_facts(attrs: dict[str, Any]) -> dict[str, Any]:
    """What an archive wrote of its own into an image's ``.zattrs`` (under its record's ``image_attrs``); {}: none."""
    for archive in known().values():
        facts = attrs.get(archive.image_attrs) if archive.image_attrs else None
        if isinstance(facts, dict):
            return facts
    return {}


def of_special_url(url: str) -> Optional[Archive]:
    """The archive whose special remote claims ``url`` (its record's ``special_remote`` prefix), None: none."""
    for archive in _ARCHIVES.values():  # asked once per URL of large listings: no copy of the registry
        if archive.special_remote and url.startswith(archive.special_remote[0]):
            return archive
    return None


def of_source(source: str) -> Optional[Archive]:
    """The archive of a source id (``ARCHIVE:NAME``)."""
    return get(source.split(":", 1)[0])
