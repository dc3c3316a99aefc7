"""What the API's calls take, made into what the mirror's modules take: specs, dates, paths, places.

A user's input is checked here once, for every verb, with the errors of :mod:`neuromirror.errors`
(a spec string is one spec, never its characters; a ``datetime`` without a zone is UTC; a path
meets the sync's own rule for a path from an archive).
"""

from __future__ import annotations

import os
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator, Sequence, Union

from neuromirror.errors import BadInput, NoSuchPath
from neuromirror.index.rows import Version
from neuromirror.records import VersionFile
from neuromirror.spec import Spec, SpecError, parse_spec

if TYPE_CHECKING:
    pass

#: where a mirror is when none is named (the commands' ``--root`` default)
ROOT_ENV = "NEUROMIRROR_ROOT"
PathLike = Union[str, "os.PathLike[str]"]


def spec_of(text: Union[str, Spec], *, allow_version: bool = True) -> Spec:
    """``dandi:000027``, ``dandi:000027@0.230629.1955``, ``dandi:000027@COMMIT`` as a :class:`Spec`."""
    if isinstance(text, Spec):
        return text
    try:
        return parse_spec(text, allow_version=allow_version)
    except SpecError as exc:
        raise BadInput(str(exc)) from None


def specs_of(given: Union[str, Spec, Sequence[Union[str, Spec]]]) -> list[Spec]:
    """One spec or several: ``"dandi:000027"`` is one source, never the characters of its name."""
    if given is None:
        raise BadInput("name what to work on: a spec (dandi:000027[@VERSION]) or a list of them")
    if isinstance(given, (str, Spec)):
        return [spec_of(given)]
    return [spec_of(s) for s in given]


def jobs_of(jobs: Any, what: str = "") -> int:
    """``jobs`` (``-J``: how many at once) as every verb takes it: a whole number, 1 or more; else :class:`BadInput`
    said by its option (one check for sync, keep, restore, drills, verify, get and serve: ``-J 0`` ran nothing, or
    waited forever, and said nothing)."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise BadInput(f"jobs must be at least 1{f' ({what})' if what else ''}, not {jobs!r}").at("jobs", "-J")
    return jobs


def moment(since: Union[str, date, datetime]) -> datetime:
    """A date as ISO text (``2024-05-01``, ``2024-05-01T12:00:00Z``), a ``date`` (its midnight, UTC) or a
    ``datetime`` (one without a zone is taken as UTC): always an aware ``datetime``."""
    from neuromirror.pin.changes import parse_since

    if isinstance(since, datetime):
        return since if since.tzinfo is not None else since.replace(tzinfo=timezone.utc)
    if isinstance(since, date):
        return datetime(since.year, since.month, since.day, tzinfo=timezone.utc)
    if isinstance(since, str):
        return parse_since(since)
    raise BadInput(f"since {since!r}: not a date (give a date, a datetime or ISO 8601 text)")


def each_then_check(files: Iterator[VersionFile], wanted: Sequence[str], version: Version) -> Iterator[VersionFile]:
    """``files`` as they stream; then a :class:`NoSuchPath` for a path in ``wanted`` none of them was under."""
    missing = {p.strip("/") for p in wanted}
    for f in files:
        if missing:
            missing = {p for p in missing if not (f.path == p or f.path.startswith(p + "/"))}
        yield f
    if missing:
        raise NoSuchPath(f"{version.source}@{version.label} has no {', '.join(sorted(missing))}")
