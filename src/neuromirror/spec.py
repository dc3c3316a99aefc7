"""Source specifications as users type them: ``dandi:000027@0.230629.1955``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

ARCHIVES = ("dandi", "aind", "boss")


class SpecError(ValueError):
    """A SPEC the user typed does not name a source."""


@dataclass(frozen=True)
class Spec:
    archive: str
    name: str  # "000027", "ecephys_*", "collection/experiment"
    version: Optional[str] = None

    @property
    def source(self) -> str:
        return f"{self.archive}:{self.name}"

    @property
    def is_glob(self) -> bool:
        return any(c in self.name for c in "*?[")

    def __str__(self) -> str:
        return self.source + (f"@{self.version}" if self.version else "")


_DANDI_ID = re.compile(r"^\d{6}$")


def parse_spec(text: str, *, allow_version: bool = True) -> Spec:
    if ":" not in text:
        raise SpecError(f"{text!r} is not a source spec: expected ARCHIVE:NAME, e.g. dandi:000027 (archives: {', '.join(ARCHIVES)})")
    archive, rest = text.split(":", 1)
    archive = archive.lower()
    if archive not in ARCHIVES:
        raise SpecError(f"unknown archive {archive!r} in {text!r} (known: {', '.join(ARCHIVES)})")
    version = None
    if "@" in rest:
        rest, version = rest.rsplit("@", 1)
        if not allow_version:
            raise SpecError(f"{text!r}: a version is not allowed here")
        if not version:
            raise SpecError(f"{text!r}: empty version after '@'")
    if not rest:
        raise SpecError(f"{text!r}: empty name")
    if archive == "dandi":
        if rest.isdigit() and len(rest) < 6:
            rest = rest.zfill(6)
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
