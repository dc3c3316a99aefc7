"""The DANDI identifiers users copy from the archive's pages and from papers, read as SPECs.

As the dandi CLI reads them (``dandi download URL``): the web page of a dandiset
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

from neuromirror.errors import BadInput

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
