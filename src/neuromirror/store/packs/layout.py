"""The formats of a packed store: a pack's bytes and trailer, an index file, the store's config.

A pack is the keys' bytes one after another, then a trailer (the pack's index as JSON), then 16 bytes:
the trailer's length (8 bytes, big-endian) and the magic ``NMPACK01``.  Its name is the SHA-256 of the
whole file.  The index file ``index/<name>.json`` holds the same entries plus the pack's size and
checksum: a reader needs only the index files; a pack whose index file is missing (a writer killed
between the two) is adopted from its trailer by the next writer.  Plain JSON, so that a person with
``jq`` and ``dd`` can read a key back without neuromirror.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Optional

from neuromirror.errors import NeuromirrorError

MAGIC = b"NMPACK01"
FOOTER = struct.Struct(">Q8s")
FORMAT = 1
PACKS = "packs/"
INDEX = "index/"
#: an empty object per cluster task under way (``tasks/<task>``): its rerun knows itself by it
TASKS = "tasks/"
#: the store's identity and settings (the same name as the other store kinds': one identity per place)
CONFIG = ".neuromirror-store.json"
_NAME = re.compile(r"^[0-9a-f]{64}$")


class PackFormatError(NeuromirrorError, ValueError):
    """A pack or index file that is not what the format says (cut short, rotten, foreign)."""


@dataclass(frozen=True)
class Entry:
    """Where one key's bytes lie: ``length`` bytes at ``offset`` of pack ``pack``; ``checksum``
    ("sha256:HEX" / "md5:HEX", the key's own, verified before the bytes were appended)."""

    key: str
    pack: str
    offset: int
    length: int
    checksum: str = ""


@dataclass
class PackIndex:
    """One pack's index: its name (its SHA-256), size and entries, as its index file says."""

    pack: str
    size: int
    entries: list[Entry] = field(default_factory=list)
    storage_class: str = "STANDARD"
    created: str = ""

    @property
    def live_bytes(self) -> int:
        return sum(e.length for e in self.entries)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "pack": self.pack,
            "sha256": self.pack,
            "size": self.size,
            "storage_class": self.storage_class,
            "created": self.created,
            "keys": entries_json(self.entries),
        }

    def encode(self) -> bytes:
        return (json.dumps(self.to_json(), separators=(",", ":")) + "\n").encode()

    @classmethod
    def decode(cls, data: bytes, name: Optional[str] = None) -> PackIndex:
        try:
            doc = json.loads(data)
            pack = str(doc["pack"])
            if doc.get("format") != FORMAT or not _NAME.match(pack) or (name is not None and name != pack):
                raise PackFormatError(f"index of {name or pack}: not a format-{FORMAT} pack index")
            entries = [Entry(str(k), pack, int(o), int(n), str(c)) for k, o, n, c in doc["keys"]]
            return cls(
                pack,
                int(doc["size"]),
                entries,
                str(doc.get("storage_class") or "STANDARD"),
                str(doc.get("created") or ""),
            )
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, PackFormatError):
                raise
            raise PackFormatError(f"index of {name or '?'}: {exc}") from None


def entries_json(entries: list[Entry]) -> list[list[Any]]:
    """The entries as both a trailer and an index file list them: ``[key, offset, length, checksum]`` each."""
    return [[e.key, e.offset, e.length, e.checksum] for e in entries]


def trailer(entries: list[Entry]) -> bytes:
    """The bytes that close a pack: its entries as JSON, their length and the magic."""
    body = json.dumps({"format": FORMAT, "keys": entries_json(entries)}).encode()
    return body + FOOTER.pack(len(body), MAGIC)


def read_trailer(tail: bytes, pack: str, size: int) -> PackIndex:
    """A pack's index from its last bytes (``tail`` must hold the whole trailer; :func:`trailer_span`)."""
    if len(tail) < FOOTER.size:
        raise PackFormatError(f"pack {pack}: cut short ({size} bytes)")
    length, magic = FOOTER.unpack(tail[-FOOTER.size :])
    if magic != MAGIC or length + FOOTER.size > len(tail):
        raise PackFormatError(f"pack {pack}: no trailer (not a neuromirror pack, or cut short)")
    body = tail[-FOOTER.size - length : -FOOTER.size]
    try:
        doc = json.loads(body)
        entries = [Entry(str(k), pack, int(o), int(n), str(c)) for k, o, n, c in doc["keys"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise PackFormatError(f"pack {pack}: its trailer does not read: {exc}") from None
    return PackIndex(pack, size, entries)


def skip(fh: Any, n: int) -> None:
    """Read past ``n`` bytes of a pack being read front to back (a stream: S3's cannot seek)."""
    while n > 0:
        got = fh.read(min(n, 1 << 20))
        if not got:
            raise OSError("pack cut short")
        n -= len(got)


def read_exact(fh: Any, n: int) -> bytes:
    """The next ``n`` bytes of a pack (OSError: it ends first)."""
    parts, left = [], n
    while left > 0:
        got = fh.read(left)
        if not got:
            raise OSError("pack cut short")
        parts.append(got)
        left -= len(got)
    return b"".join(parts)


def pack_name(name: str) -> Optional[str]:
    """The pack a ``packs/<sha>.pack`` or ``index/<sha>.json`` object names; None for anything else."""
    stem = name.rsplit("/", 1)[-1].split(".", 1)[0]
    return stem if _NAME.match(stem) else None


def pack_object(pack: str) -> str:
    return f"{PACKS}{pack}.pack"


def index_object(pack: str) -> str:
    return f"{INDEX}{pack}.json"
