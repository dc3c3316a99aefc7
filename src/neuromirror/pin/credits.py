"""Who a dataset credits, as the archives' metadata says: authors (persons and organizations), ORCIDs, licenses.

DANDI's ``dandiset.yaml`` lists contributors (``includeInCitation``), AIND's ``data_description.json``
investigators and an institution; both name licenses by SPDX id.  :mod:`neuromirror.pin.citation` makes a
citation of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from neuromirror.pin.cff_check import SPDX_ID


@dataclass
class Author:
    """A person (family and given names, ORCID, affiliation) or an organization a citation credits."""

    name: str  # as the archive wrote it ("Doe, Jane" or "Allen Institute")
    family: Optional[str] = None
    given: Optional[str] = None
    orcid: Optional[str] = None
    affiliation: Optional[str] = None
    organization: bool = False


def split_name(name: str) -> tuple[Optional[str], Optional[str]]:
    """("Doe", "Jane") from "Doe, Jane" or "Jane Doe"."""
    name = " ".join(name.split())
    if "," in name:
        family, given = name.split(",", 1)
        return family.strip() or None, given.strip() or None
    parts = name.split(" ")
    if len(parts) == 1:
        return parts[0], None
    return parts[-1], " ".join(parts[:-1])


def _orcid(value: Any) -> Optional[str]:
    """An ORCID as its URL, wherever the archive wrote it (a bare id, or in a URL)."""
    if not isinstance(value, str):
        return None
    m = re.search(r"(\d{4}-\d{4}-\d{4}-\d{3}[\dX])", value)
    return f"https://orcid.org/{m.group(1)}" if m else None


def dandi_authors(contributors: Any) -> list[Author]:
    """DANDI's contributors the dandiset says to cite (``includeInCitation``), persons with ORCID and affiliation."""
    out: list[Author] = []
    if not isinstance(contributors, list):
        return out
    for c in contributors:
        if not isinstance(c, dict) or not c.get("name") or not c.get("includeInCitation", False):
            continue
        org = c.get("schemaKey") == "Organization"
        aff = None
        if isinstance(c.get("affiliation"), list) and c["affiliation"]:
            first = c["affiliation"][0]
            aff = first.get("name") if isinstance(first, dict) else None
        if org:
            out.append(Author(str(c["name"]), organization=True))
        else:
            fam, giv = split_name(str(c["name"]))
            out.append(Author(str(c["name"]), fam, giv, _orcid(c.get("identifier")), aff))
    return out


def licenses(values: Any) -> list[str]:
    """The SPDX ids of a license field (one or a list, ``spdx:`` prefixed or not); what is no SPDX id is left out."""
    if isinstance(values, str):
        values = [values]
    out = []
    for v in values or []:
        if isinstance(v, str):
            v = v.split(":", 1)[1] if v.lower().startswith("spdx:") else v
            if SPDX_ID.match(v):
                out.append(v)
    return out


def aind_authors(md: dict) -> list[Author]:
    """The investigators, each a name or a record with one (and an ORCID); none: the institution."""
    people = md.get("investigators") or []
    authors: list[Author] = []
    for p in people if isinstance(people, list) else []:
        name = p.get("name") if isinstance(p, dict) else p if isinstance(p, str) else None
        if name:
            fam, giv = split_name(str(name))
            orcid = _orcid(p.get("registry_identifier")) if isinstance(p, dict) else None
            authors.append(Author(str(name), fam, giv, orcid))
    inst = md.get("institution")
    inst_name = inst.get("name") if isinstance(inst, dict) else inst if isinstance(inst, str) else None
    if not authors and inst_name:
        authors.append(Author(str(inst_name), organization=True))
    return authors
