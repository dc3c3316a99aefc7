"""Source specifications as users type them: ``dandi:000027@0.230629.1955``.

What the name after ``ARCHIVE:`` may be, and which identifiers copied from an archive's pages (DANDI's
URLs, ``DANDI:000027/VERSION``, DOIs) name a source, each archive says in its registered
:class:`~neuromirror.archives.Archive`: this module knows none of them by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from neuromirror import archives
from neuromirror.errors import BadInput


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


def parse_spec(text: str, *, allow_version: bool = True) -> Spec:
    """A SPEC, or a DANDI identifier users copy (URL, ``DANDI:ID/VERSION``, DOI).

    A copied identifier may name a version where none is allowed (``sync`` of a
    version's URL): it then names the dandiset, whose every version a sync mirrors.
    """
    for known in archives.known().values():
        if known.looks_like_identifier and known.read_identifier and known.looks_like_identifier(text):
            try:
                name, version, api = known.read_identifier(text)
            except BadInput as exc:
                raise SpecError(str(exc)) from None
            return Spec(known.name, name, version if allow_version else None, api)
    archive, rest = _split_archive(text)
    rest, version = _split_version(text, archive, rest, allow_version)
    if not rest:
        raise SpecError(f"{text!r}: empty name")
    return Spec(archive, archives.known()[archive].check_name(text, rest), version)


def _split_archive(text: str) -> tuple[str, str]:
    """``ARCHIVE:REST`` with a known archive: the archive decides how the rest is read."""
    known = archives.names()
    if ":" not in text:
        raise SpecError(
            f"{text!r} is not a source spec: expected ARCHIVE:NAME, e.g. dandi:000027 (archives: {', '.join(known)})"
        )
    archive, rest = text.split(":", 1)
    archive = archive.lower()
    if archive not in known:
        raise SpecError(f"unknown archive {archive!r} in {text!r} (known: {', '.join(known)})")
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


def dataset_relpath(spec: Spec) -> str:
    """Where a source's dataset lives under the mirror root."""
    return f"{spec.archive}/{spec.name}"
