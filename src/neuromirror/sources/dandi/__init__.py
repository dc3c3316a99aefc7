"""DANDI: dandisets as snapshots, through the official ``dandi`` client (:mod:`.source`).

The archive's side only: its API (:mod:`.client`), the asset listing and what a resync reuses
(:mod:`.assets`), blob assets as entries (:mod:`.blobs`), embargoed content (:mod:`.embargo`),
and Zarr assets as the archive states them (:mod:`.zarr_assets`, :mod:`.zarr_listing`).  Writing a
Zarr asset's own dataset is the engine's (:mod:`neuromirror.engine.zarr`), which hands the source
its hook through the state of a sync.  May import ``annex.keys``, the other ``sources`` modules and
the base modules; never ``index``, ``dataset``, ``engine`` or above.  Imports nothing heavy here:
``neuromirror --help`` reads this package's options.

Here, the archive's face: its :class:`~neuromirror.archives.Archive` record (registered on import) and the
identifiers users copy from the archive's pages and from papers, read as SPECs.  As the dandi CLI reads them (``dandi download URL``): the web page of a dandiset
or of one of its versions, the API's URL, the archive's own ``DANDI:000027/VERSION``
form, the version's DOI (``10.48324/dandi.000027/0.230629.1955``, with or without
``https://doi.org/``) and dandi's ``dandi://INSTANCE/000027@VERSION``.  A URL or a
DOI of a known instance (dandi's ``known_instances``: ``dandi``, ``dandi-sandbox``,
``linc``...) also names the instance's API, which a sync uses unless
``--dandi-api``/``--dandi-instance`` say otherwise.

Only what names a dandiset or a version is accepted; a URL of a file or a folder
is refused, rather than quietly widened to the whole dandiset.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple, Optional
from urllib.parse import urlsplit

from neuromirror.archives import Archive, register
from neuromirror.errors import BadInput
from neuromirror.spec import SpecError

#: a dandiset id, and a version (``draft`` or ``0.YYMMDD.HHMM``)
_ID = r"(?P<id>[0-9]{6})"
_VERSION = r"(?P<version>draft|[0-9]+\.[0-9]{6}\.[0-9]{4})"
#: DataCite prefixes of the instances that mint DOIs
DOI_PREFIXES = {"10.48324": "dandi", "10.80507": "dandi-sandbox"}

_DANDI_FORM = re.compile(rf"^DANDI:{_ID}(?:/{_VERSION})?/?$", re.IGNORECASE)
_DOI = re.compile(
    rf"^(?:doi:|https?://(?:dx\.)?doi\.org/)?(?P<prefix>10\.\d{{4,9}})/dandi\.{_ID}(?:/{_VERSION})?/?$", re.IGNORECASE
)
_RESOURCE = re.compile(rf"^dandi://(?P<instance>[-\w.]+)/{_ID}(?:@{_VERSION})?/?$", re.IGNORECASE)
#: the web app's paths (with or without the old "#/" routing) and the API's
_GUI_PATH = re.compile(rf"^/(?:#/)?dandiset/{_ID}(?:/{_VERSION})?(?:/files)?/?$")
_API_PATH = re.compile(rf"^(?P<api>/api)/dandisets/{_ID}/?(?:versions/{_VERSION}/?(?:info/?)?)?$")


class DandiIdentifier(NamedTuple):
    identifier: str  # "000027"
    version: Optional[str]  # "0.230629.1955", "draft" or None
    instance: Optional[str]  # "dandi", "dandi-sandbox"... or None (no instance named)
    api: Optional[str]  # the instance's API URL, when one is named


class IdentifierError(BadInput, ValueError):
    """Text that looks like a DANDI identifier but names nothing neuromirror can mirror."""


def known_instances() -> dict[str, Any]:
    """dandi's own table of instances (``dandi.consts`` is light; the client is not imported)."""
    from dandi.consts import known_instances as instances

    return dict(instances)


def instance_api(name: str) -> str:
    """The API URL of a known instance, as the dandi CLI's ``-i NAME``."""
    instances = known_instances()
    if name not in instances:
        raise IdentifierError(f"unknown DANDI instance {name!r} (known: {', '.join(instances)})")
    return str(instances[name].api).rstrip("/")


def looks_like_dandi(text: str) -> bool:
    """Whether ``text`` is one of the forms this module reads (and not ``ARCHIVE:NAME``)."""
    t = text.strip()
    low = t.lower()
    return low.startswith(("http://", "https://", "dandi://", "doi:", "10.")) or (low.startswith("dandi:") and "/" in t)


def parse_dandi_identifier(text: str) -> DandiIdentifier:
    t = text.strip()
    m = _DANDI_FORM.match(t)
    if m:
        return DandiIdentifier(m["id"], m["version"], None, None)
    m = _DOI.match(t)
    if m:
        instance = DOI_PREFIXES.get(m["prefix"])
        return DandiIdentifier(m["id"], m["version"], instance, instance_api(instance) if instance else None)
    m = _RESOURCE.match(t)
    if m:
        return DandiIdentifier(m["id"], m["version"], m["instance"], instance_api(m["instance"]))
    if t.lower().startswith(("http://", "https://")):
        return _from_url(t)
    raise IdentifierError(
        f"{text!r} is not a DANDI identifier: expected dandi:000027, DANDI:000027/VERSION, a dandiset's URL or its DOI"
    )


def _from_url(url: str) -> DandiIdentifier:
    parts = urlsplit(url)
    path = parts.path + (f"#{parts.fragment}" if parts.fragment else "")
    host = parts.netloc.lower()
    for name, inst in known_instances().items():
        gui, api = urlsplit(str(inst.gui)), urlsplit(str(inst.api))
        if host == gui.netloc.lower() or host == f"www.{gui.netloc.lower()}":
            m = _GUI_PATH.match(path)
            if m and not parts.query:
                return DandiIdentifier(m["id"], m["version"], name, str(inst.api).rstrip("/"))
            raise IdentifierError(
                f"{url!r}: expected the page of a dandiset or of a version "
                f"({inst.gui}/dandiset/000027[/VERSION]), not of a file or folder"
            )
        if host == api.netloc.lower():
            m = _API_PATH.match(parts.path)
            if m and not parts.query:
                return DandiIdentifier(m["id"], m["version"], name, str(inst.api).rstrip("/"))
            raise IdentifierError(f"{url!r}: expected {inst.api}/dandisets/000027/[versions/VERSION/]")
    raise IdentifierError(
        f"{url!r}: {host} is not a known DANDI instance (known: "
        f"{', '.join(known_instances())}); name the dandiset as dandi:ID and its archive's API URL as dandi_api"
    )


#: the URLs the DANDI special remote claims (:mod:`neuromirror.remotes.dandi`): ``neuromirror+dandi:<API URL>``
SPECIAL_PREFIX = "neuromirror+dandi:"
_NAME = re.compile(r"^[0-9]{6}$")  # ASCII digits: "０００２７" is no id
#: a blob's key in the archive's bucket (``blobs/abc/def/UUID``): uploaded in the parts the API handed out
_BLOB = re.compile(r"(?:^|/)blobs/[0-9a-f]{3}/[0-9a-f]{3}/[0-9a-f-]{36}$")


def check_name(text: str, name: str) -> str:
    """A dandiset is named by its 6-digit id, or a glob over ids."""
    if not (_NAME.match(name) or any(c in name for c in "*?[")):
        raise SpecError(f"{text!r}: a dandiset id has 6 digits, e.g. dandi:000027")
    return name


def read_identifier(text: str) -> tuple[str, Optional[str], Optional[str]]:
    """A URL, ``DANDI:ID/VERSION`` or DOI users copy: (dandiset id, version, the instance's API)."""
    ident = parse_dandi_identifier(text)
    return ident.identifier, ident.version, ident.api


def dandi_spans(size: int) -> list[tuple[int, int]]:
    """(offset, size) of each part of a ``size``-byte DANDI upload: dandischema's own ``PartGenerator``,
    the rule the archive's uploads follow (dandischema comes with the dandi client)."""
    from dandischema.digests.dandietag import PartGenerator

    return [(p.offset, p.size) for p in PartGenerator.for_file_size(size)] if size else []


def part_spans(key: str, size: int) -> Optional[list[tuple[int, int]]]:
    """A blob goes back in the parts it went up in, so its ETag is the asset's ``dandi-etag`` again."""
    return dandi_spans(size) if _BLOB.search(key) and size > 0 else None


def special_immutable(url: str) -> bool:
    """A ``neuromirror+dandi:`` URL naming an asset's download route serves that asset's one blob for good."""
    from neuromirror.sources.urlrule import is_asset_download

    return is_asset_download(url[len(SPECIAL_PREFIX) :])


def key_rule(key: str) -> bool:
    """Whether an S3 key is one of the archive's (a blob's or a Zarr's), on a host no setting names."""
    from neuromirror.sources.dandi.zarr_listing import is_archive_key

    return is_archive_key(key)


def sync_options(spec: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The API a DANDI source is read from: ``dandi_instance``, else ``dandi_api``, else the instance its URL or
    DOI named."""
    try:
        if options.get("dandi_instance"):
            return {**options, "dandi_api": instance_api(options["dandi_instance"])}
    except IdentifierError as exc:
        raise BadInput(str(exc)) from None
    if not options.get("dandi_api") and spec.api:
        return {**options, "dandi_api": spec.api}
    return options


def refind(source: str, path: str, urls: tuple[str, ...], sha256: Optional[str]) -> Optional[tuple[str, str]]:
    """``repin``: the asset re-uploaded at ``path`` with the key's digest (:func:`.blob_versions.reuploaded`)."""
    from neuromirror.sources.dandi.blob_versions import reuploaded

    return reuploaded(source, path, urls, sha256)


ARCHIVE = register(
    Archive(
        home_page="https://identifiers.org/DANDI:{name}",
        name="dandi",
        source_module="neuromirror.sources.dandi.source",
        check_name=check_name,
        publisher="DANDI Archive",
        view_share="dandisets",  # dandidav's /dandisets/{id}/draft/, /dandisets/{id}/releases/{version}/
        has_draft=True,
        special_immutable=special_immutable,
        special_remote=(
            SPECIAL_PREFIX,
            "embargoed: its URL needs a DANDI API key (neuromirror never writes one); keep it, or read it with the key",
        ),
        citation_file="dandiset.yaml",
        looks_like_identifier=looks_like_dandi,
        read_identifier=read_identifier,
        key_rule=key_rule,
        part_spans=part_spans,
        sync_options=sync_options,
        refind=refind,
    )
)
