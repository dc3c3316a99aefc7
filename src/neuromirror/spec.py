"""Source specifications as users type them: ``dandi:000027@0.230629.1955``.

DANDI identifiers copied from the archive (its URLs, ``DANDI:000027/VERSION``,
DOIs) are read too, by :mod:`neuromirror.identifiers`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

ARCHIVES = ("dandi", "aind", "boss")


class SpecError(ValueError):
    """A SPEC the user typed does not name a source."""


@dataclass(frozen=True)
class Spec:
    archive: str
    name: str  # "000027", "ecephys_*", "collection/experiment"
    version: Optional[str] = None
    #: the archive API a URL or DOI named (a known DANDI instance's); None for ARCHIVE:NAME
    api: Optional[str] = field(default=None, compare=False)

    @property
    def source(self) -> str:
        return f"{self.archive}:{self.name}"

    @property
    def is_glob(self) -> bool:
        return any(c in self.name for c in "*?[")

    def __str__(self) -> str:
        return self.source + (f"@{self.version}" if self.version else "")


_DANDI_ID = re.compile(r"^[0-9]{6}$")  # ASCII digits: "０００２７" is no id


def parse_spec(text: str, *, allow_version: bool = True) -> Spec:
    """A SPEC, or a DANDI identifier users copy (URL, ``DANDI:ID/VERSION``, DOI).

    A copied identifier may name a version where none is allowed (``sync`` of a
    version's URL): it then names the dandiset, whose every version a sync mirrors.
    """
    from neuromirror.identifiers import IdentifierError, looks_like_dandi, parse_dandi_identifier

    if looks_like_dandi(text):
        try:
            ident = parse_dandi_identifier(text)
        except IdentifierError as exc:
            raise SpecError(str(exc)) from None
        return Spec("dandi", ident.identifier, ident.version if allow_version else None, ident.api)
    if ":" not in text:
        raise SpecError(
            f"{text!r} is not a source spec: expected ARCHIVE:NAME, e.g. dandi:000027 (archives: {', '.join(ARCHIVES)})"
        )
    archive, rest = text.split(":", 1)
    archive = archive.lower()
    if archive not in ARCHIVES:
        raise SpecError(f"unknown archive {archive!r} in {text!r} (known: {', '.join(ARCHIVES)})")
    version = None
    if rest.count("@") > 1:
        raise SpecError(f"{text!r}: one '@' between the name and the version, e.g. {archive}:NAME@VERSION")
    if "@" in rest:
        rest, version = rest.rsplit("@", 1)
        if not allow_version:
            raise SpecError(f"{text!r}: a version is not allowed here")
        if not version:
            raise SpecError(f"{text!r}: empty version after '@'")
    if not rest:
        raise SpecError(f"{text!r}: empty name")
    if archive == "dandi":
        if not (_DANDI_ID.match(rest) or any(c in rest for c in "*?[")):
            raise SpecError(f"{text!r}: a dandiset id has 6 digits, e.g. dandi:000027")
    if archive == "boss":
        parts = rest.strip("/").split("/")
        if len(parts) > 2 or not all(parts):
            raise SpecError(f"{text!r}: expected boss:COLLECTION or boss:COLLECTION/EXPERIMENT")
        rest = "/".join(parts)
    if archive == "aind" and "/" in rest:
        raise SpecError(f"{text!r}: an AIND asset name is a top-level prefix without '/'")
    return Spec(archive, rest, version)


def dataset_relpath(spec: Spec) -> str:
    """Where a source's dataset lives under the mirror root."""
    return f"{spec.archive}/{spec.name}"
