"""DANDI: dandisets as snapshots, through the official ``dandi`` client (:mod:`.source`).

The archive's side only: its API (:mod:`.client`), the asset listing and what a resync reuses
(:mod:`.assets`), blob assets as entries (:mod:`.blobs`), embargoed content (:mod:`.embargo`),
and Zarr assets as the archive states them (:mod:`.zarr_assets`, :mod:`.zarr_listing`).  Writing a
Zarr asset's own dataset is the engine's (:mod:`neuromirror.engine.zarr`), which hands the source
its hook through the state of a sync.  May import ``annex.keys``, the other ``sources`` modules and
the base modules; never ``index``, ``dataset``, ``engine`` or above.  Imports nothing heavy here:
``neuromirror --help`` reads this package's options.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from neuromirror import identifiers
from neuromirror.archives import Archive, register
from neuromirror.errors import BadInput
from neuromirror.spec import SpecError

_ID = re.compile(r"^[0-9]{6}$")  # ASCII digits: "０００２７" is no id
#: a blob's key in the archive's bucket (``blobs/abc/def/UUID``): uploaded in the parts the API handed out
_BLOB = re.compile(r"(?:^|/)blobs/[0-9a-f]{3}/[0-9a-f]{3}/[0-9a-f-]{36}$")


def check_name(text: str, name: str) -> str:
    """A dandiset is named by its 6-digit id, or a glob over ids."""
    if not (_ID.match(name) or any(c in name for c in "*?[")):
        raise SpecError(f"{text!r}: a dandiset id has 6 digits, e.g. dandi:000027")
    return name


def read_identifier(text: str) -> tuple[str, Optional[str], Optional[str]]:
    """A URL, ``DANDI:ID/VERSION`` or DOI users copy: (dandiset id, version, the instance's API)."""
    ident = identifiers.parse_dandi_identifier(text)
    return ident.identifier, ident.version, ident.api


def dandi_spans(size: int) -> list[tuple[int, int]]:
    """(offset, size) of each part of a ``size``-byte DANDI upload: dandischema's own ``PartGenerator``,
    the rule the archive's uploads follow (dandischema comes with the dandi client)."""
    from dandischema.digests.dandietag import PartGenerator

    return [(p.offset, p.size) for p in PartGenerator.for_file_size(size)] if size else []


def part_spans(key: str, size: int) -> Optional[list[tuple[int, int]]]:
    """A blob goes back in the parts it went up in, so its ETag is the asset's ``dandi-etag`` again."""
    return dandi_spans(size) if _BLOB.search(key) and size > 0 else None


def key_rule(key: str) -> bool:
    """Whether an S3 key is one of the archive's (a blob's or a Zarr's), on a host no setting names."""
    from neuromirror.sources.dandi.zarr_listing import is_archive_key

    return is_archive_key(key)


def sync_options(spec: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The API a DANDI source is read from: ``dandi_instance``, else ``dandi_api``, else the instance its URL or
    DOI named."""
    try:
        if options.get("dandi_instance"):
            return {**options, "dandi_api": identifiers.instance_api(options["dandi_instance"])}
    except identifiers.IdentifierError as exc:
        raise BadInput(str(exc)) from None
    if not options.get("dandi_api") and spec.api:
        return {**options, "dandi_api": spec.api}
    return options


ARCHIVE = register(
    Archive(
        name="dandi",
        source_module="neuromirror.sources.dandi.source",
        check_name=check_name,
        publisher="DANDI Archive",
        view_share="dandisets",  # dandidav's /dandisets/{id}/draft/, /dandisets/{id}/releases/{version}/
        has_draft=True,
        special_remote=(
            "neuromirror+dandi:",
            "embargoed: its URL needs a DANDI API key (neuromirror never writes one); keep it, or read it with the key",
        ),
        citation_file="dandiset.yaml",
        looks_like_identifier=identifiers.looks_like_dandi,
        read_identifier=read_identifier,
        key_rule=key_rule,
        part_spans=part_spans,
        sync_options=sync_options,
    )
)
