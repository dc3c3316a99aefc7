"""DANDI's Zarr manifest format itself: one Zarr state's objects as a JSON document, written and read.

Two writers and one reader share it, so that they cannot drift apart: the mirror writes a manifest
per Zarr state it records (:mod:`neuromirror.engine.zarr.manifest` places the files), the DANDI
stand-in publishes the archive's own in its bucket (:mod:`neuromirror.standins.dandi.assets`), and
``audit --recheck`` reads both to compare them (:mod:`neuromirror.audit.manifests`).  It lives in the
base because the stand-in, which is the archive and not the mirror, may import nothing above it.

The document is what the proof of concept's ``update_manifest.py`` writes (dandi-archive
``doc/design/zarr-manifests.md``): ``schemaVersion`` 2, ``fields``
``["versionId","lastModified","size","ETag"]``, ``statistics`` (entries, depth, totalSize,
lastModified, zarrChecksum) and ``entries``, a nested tree whose files are positional arrays, in S3
key order, indented by one space with each array on one line.  It is written as a stream (objects
sorted by path come out as a depth-first walk of the tree), so a Zarr of 10^6 objects never becomes
a nested dict in memory.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import IO, Any, Iterable, NamedTuple, Optional, Sequence

SCHEMA_VERSION = 2
FIELDS = ("versionId", "lastModified", "size", "ETag")


class ManifestEntry(NamedTuple):
    """One object of a Zarr state, as a manifest records it (a tuple: one per object of a state)."""

    path: str  # inside the Zarr, '/'-separated
    version_id: str
    modified: datetime
    size: int
    etag: str  # the MD5 (or multipart ETag), lowercase, no quotes


def stamp(t: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS+00:00``: the design's time format (S3 times are whole seconds)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    elif t.utcoffset():
        t = t.astimezone(timezone.utc)
    # formatted by hand: strftime and astimezone were a third of a manifest's CPU (10^5 rows a Zarr)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}+00:00"


#: strings JSON writes as they are (the quotes aside): object names, versionIds and ETags nearly always
_PLAIN = re.compile(r'[^"\\\x00-\x1f\x7f-\U0010ffff]*')


def _string(s: str) -> str:
    """``json.dumps(s)``, without its call for the strings that need no escape."""
    return f'"{s}"' if _PLAIN.fullmatch(s) else json.dumps(s)


def write_document(
    out: IO[str], entries: Sequence[ManifestEntry], checksum: str, archive_checksum: Optional[str] = None
) -> None:
    """The manifest of one Zarr state to ``out``.

    ``checksum`` is the Zarr checksum of ``entries``; ``archive_checksum``, when the archive states
    another, is recorded as the proof of concept does (``zarrChecksumMismatch``).
    """
    ordered = sorted(entries, key=lambda e: e.path)
    stats: dict[str, Any] = {
        "entries": len(ordered),
        "depth": max((e.path.count("/") for e in ordered), default=0),
        "totalSize": sum(e.size for e in ordered),
        "lastModified": stamp(max(e.modified for e in ordered)) if ordered else None,
        "zarrChecksum": checksum,
    }
    if archive_checksum and archive_checksum != checksum:
        stats["zarrChecksumMismatch"] = archive_checksum
    out.write(
        f'{{\n "schemaVersion": {SCHEMA_VERSION},\n "fields": {json.dumps(list(FIELDS), separators=(",", ":"))},\n'
    )
    out.write(' "statistics": {\n')
    out.write(",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in stats.items()))
    out.write('\n },\n "entries": ')
    _write_tree(out, ordered)
    out.write("\n}\n")


def _write_tree(out: IO[str], ordered: Iterable[ManifestEntry]) -> None:
    """The nested ``entries`` object, streamed: sorted paths are a depth-first walk of the tree.

    Per row, only string formatting: a Zarr state of 5,000 objects is written for every state a
    sync records, on the hot path of a cold Zarr-heavy sync (issue 40).
    """
    stack: list[str] = []  # the open directories
    first = [True]  # per open object: no member written yet
    write = out.write
    last_when: Optional[datetime] = None
    when = ""
    write("{")
    for e in ordered:
        *dirs, name = e.path.split("/")
        common = 0
        while common < min(len(stack), len(dirs)) and stack[common] == dirs[common]:
            common += 1
        while len(stack) > common:  # close the directories this path is not in
            stack.pop()
            first.pop()
            write("\n" + " " * (len(stack) + 2) + "}")
        for d in dirs[common:]:  # open the ones it is in
            write(("" if first[-1] else ",") + "\n" + " " * (len(stack) + 2) + _string(d) + ": {")
            first[-1] = False
            stack.append(d)
            first.append(True)
        if e.modified != last_when:  # objects of one upload share their time
            last_when, when = e.modified, stamp(e.modified)
        write(
            f"{'' if first[-1] else ','}\n{' ' * (len(stack) + 2)}{_string(name)}: "
            f'[{_string(e.version_id)},"{when}",{int(e.size)},{_string(e.etag)}]'
        )
        first[-1] = False
    while stack:
        stack.pop()
        first.pop()
        write("\n" + " " * (len(stack) + 2) + "}")
    write("\n }" if not first[-1] else "}")


def read_entries(document: Any) -> dict[str, ManifestEntry]:
    """Path -> entry of a parsed manifest (``json.loads`` of its text): the nested tree flattened.

    Raises ValueError for a document that is not a manifest of this format (another ``fields``, an
    entry that is not a four-field array): a reader must not take a foreign file for an empty Zarr.
    """
    if not isinstance(document, dict) or list(document.get("fields") or FIELDS) != list(FIELDS):
        raise ValueError("not a Zarr manifest with fields " + ",".join(FIELDS))
    out: dict[str, ManifestEntry] = {}
    todo: list[tuple[str, Any]] = [("", document.get("entries") or {})]
    while todo:
        prefix, tree = todo.pop()
        if not isinstance(tree, dict):
            raise ValueError(f"a Zarr manifest's directory {prefix or '/'} is not an object")
        for name, value in tree.items():
            path = f"{prefix}{name}"
            if isinstance(value, dict):
                todo.append((path + "/", value))
            elif isinstance(value, list) and len(value) == len(FIELDS):
                version, when, size, etag = value
                modified = datetime.fromisoformat(str(when).replace("Z", "+00:00"))
                out[path] = ManifestEntry(path, str(version), modified, int(size), str(etag).strip('"').lower())
            else:
                raise ValueError(f"a Zarr manifest's entry {path} is not [versionId, lastModified, size, ETag]")
    return out
