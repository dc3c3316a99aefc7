"""Source specifications as users type them: ``dandi:000027@0.230629.1955``.

DANDI identifiers copied from the archive (its URLs, ``DANDI:000027/VERSION``,
DOIs) are read too, by :mod:`neuromirror.identifiers`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from neuromirror.errors import BadInput

ARCHIVES = ("dandi", "aind", "boss")


class SpecError(BadInput, ValueError):
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
    archive, rest = _split_archive(text)
    rest, version = _split_version(text, archive, rest, allow_version)
    if not rest:
        raise SpecError(f"{text!r}: empty name")
    return Spec(archive, _NAME_CHECKS[archive](text, rest), version)


def _split_archive(text: str) -> tuple[str, str]:
    """``ARCHIVE:REST`` with a known archive: the archive decides how the rest is read."""
    if ":" not in text:
        raise SpecError(
            f"{text!r} is not a source spec: expected ARCHIVE:NAME, e.g. dandi:000027 (archives: {', '.join(ARCHIVES)})"
        )
    archive, rest = text.split(":", 1)
    archive = archive.lower()
    if archive not in ARCHIVES:
        raise SpecError(f"unknown archive {archive!r} in {text!r} (known: {', '.join(ARCHIVES)})")
    return archive, rest


def _split_version(text: str, archive: str, rest: str, allow_version: bool) -> tuple[str, Optional[str]]:
    """The name and the version after its one ``@``, refused where no version is allowed."""
    if rest.count("@") > 1:
        raise SpecError(f"{text!r}: one '@' between the name and the version, e.g. {archive}:NAME@VERSION")
    if "@" not in rest:
        return rest, None
    rest, version = rest.rsplit("@", 1)
    if not allow_version:
        raise SpecError(f"{text!r}: a version is not allowed here")
    if not version:
        raise SpecError(f"{text!r}: empty version after '@'")
    return rest, version


def _dandi_name(text: str, name: str) -> str:
    """A dandiset is named by its 6-digit id, or a glob over ids."""
    if not (_DANDI_ID.match(name) or any(c in name for c in "*?[")):
        raise SpecError(f"{text!r}: a dandiset id has 6 digits, e.g. dandi:000027")
    return name


def _boss_name(text: str, name: str) -> str:
    """A BOSS source is a collection or a collection/experiment; stray slashes are dropped."""
    parts = name.strip("/").split("/")
    if len(parts) > 2 or not all(parts):
        raise SpecError(f"{text!r}: expected boss:COLLECTION or boss:COLLECTION/EXPERIMENT")
    return "/".join(parts)


def _aind_name(text: str, name: str) -> str:
    """An AIND asset is a top-level prefix of the bucket."""
    if "/" in name:
        raise SpecError(f"{text!r}: an AIND asset name is a top-level prefix without '/'")
    return name


#: each archive's check (and normal form) of a source's name
_NAME_CHECKS = {"dandi": _dandi_name, "boss": _boss_name, "aind": _aind_name}


def dataset_relpath(spec: Spec) -> str:
    """Where a source's dataset lives under the mirror root."""
    return f"{spec.archive}/{spec.name}"
