"""A CITATION.cff document checked against CFF 1.2.0: its required keys and the types of what it holds.

``cite -f cff`` writes the document (:func:`neuromirror.pin.citation.cff_dict`); :func:`check_cff` is how
the tests, and a user's script, tell that what was written is valid CFF without a schema validator at hand.
The DOI and SPDX forms are the ones the citation itself keeps to.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

#: an SPDX license id (``CC-BY-4.0``): what a CFF ``license`` holds
SPDX_ID = re.compile(r"^[A-Za-z0-9.+-]+$")
#: a DOI name (``10.48324/dandi.000027/0.210831.2033``), without a resolver in front
DOI_NAME = re.compile(r"^10\.\d{4,9}(\.\d+)?/\S+$")

REQUIRED_CFF_KEYS = ("cff-version", "message", "title", "authors")
#: keys whose value CFF wants as a string
_STRING_KEYS = ("message", "title", "version", "doi", "url", "repository", "commit", "abstract")


def check_cff(data: Any) -> list[str]:
    """Problems with a CITATION.cff 1.2.0 document (required keys and their types); [] when fine."""
    if not isinstance(data, dict):
        return ["not a mapping"]
    return (
        _key_problems(data)
        + _author_problems(data.get("authors"))
        + _value_problems(data)
        + _identifier_problems(data.get("identifiers") or [])
        + _license_problems(data.get("license"))
    )


def _key_problems(data: dict) -> list[str]:
    """The required keys, the version of CFF, and the keys that hold a string."""
    problems = [f"missing {k}" for k in REQUIRED_CFF_KEYS if k not in data]
    if data.get("cff-version") != "1.2.0":
        problems.append("cff-version is not 1.2.0")
    problems += [f"{k} is not a string" for k in _STRING_KEYS if k in data and not isinstance(data[k], str)]
    return problems


def _value_problems(data: dict) -> list[str]:
    """The values CFF restricts: the type of work, a release date (a YAML date), a DOI."""
    problems = []
    if "type" in data and data["type"] not in ("dataset", "software"):
        problems.append("type must be dataset or software")
    if "date-released" in data and not isinstance(data["date-released"], date):
        problems.append("date-released is not a YYYY-MM-DD date")
    if "doi" in data and not DOI_NAME.match(str(data["doi"])):
        problems.append("doi is not a DOI")
    return problems


def _license_problems(lic: Any) -> list[str]:
    """A license is an SPDX id, or a list of them."""
    if lic is None or all(isinstance(x, str) and SPDX_ID.match(x) for x in ([lic] if isinstance(lic, str) else lic)):
        return []
    return ["license is not an SPDX id (or list of them)"]


def _author_problems(authors: Any) -> list[str]:
    """``authors`` must be a non-empty list of persons or entities, each named (``name`` or
    ``family-names``): a citation nobody can be credited by is not valid CFF."""
    if not isinstance(authors, list) or not authors:
        return ["authors is not a non-empty list"]
    return [
        f"author {a!r} has neither name nor family-names"
        for a in authors
        if not isinstance(a, dict) or not (isinstance(a.get("name"), str) or isinstance(a.get("family-names"), str))
    ]


def _identifier_problems(identifiers: Any) -> list[str]:
    """Each of ``identifiers`` must be a mapping with a CFF identifier type and a string value."""
    return [
        f"bad identifier {ident!r}"
        for ident in identifiers
        if not isinstance(ident, dict)
        or ident.get("type") not in ("doi", "url", "swh", "other")
        or not isinstance(ident.get("value"), str)
    ]
