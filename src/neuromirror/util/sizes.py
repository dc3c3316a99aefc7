"""Sizes: one parser for what a user writes (``500M``, ``1GiB``, ``1GB``) and one formatter for what we print.

Why one of each: a definition's ``min_free`` and ``keep --budget`` once read ``1G`` differently
(2^30 and 10^9 bytes).  Now every size a user writes means the same everywhere:

* ``1KiB`` ``1MiB`` ``1GiB`` ``1TiB`` ``1PiB`` (also ``1Ki``...): binary, powers of 1024;
* ``1KB`` ``1MB`` ``1GB`` ``1TB`` ``1PB``: decimal (SI), powers of 1000;
* a bare unit, ``1K`` ``1M`` ``1G`` ``1T`` ``1P``: decimal too, as ``1GB`` (``keep --budget 100K`` is
  100,000 bytes, as it has always been); write ``GiB`` for powers of 1024;
* a plain number (``1048576``, ``1048576B``) is bytes.

Case does not matter (``1gib``), a space may stand between number and unit, fractions are fine
(``1.5T``).  What we print is binary (``1.5 KiB``), as ``df -h`` and ``du -h`` print it, with the
unit spelled out so that it reads the same either way.
"""

from __future__ import annotations

import re
from typing import Optional

from neuromirror.errors import UserError

#: what a bare unit (``1G``) means: 1000 (decimal, as ``1GB``); 1024 would make it ``1GiB``
BARE_UNIT_BASE = 1000
_UNITS = "KMGTP"
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:([KMGTP])(I)?)?(B)?\s*", re.IGNORECASE)
EXAMPLES = "e.g. 500MB = 500 x 10^6 bytes, 1GiB = 2^30 bytes, or a number of bytes"


class SizeError(UserError, ValueError):
    """Not a size: one line (exit 2 when nothing catches it); a ValueError for the callers that say where."""


def parse_size(value: object) -> int:
    """Bytes from ``1048576``, ``"500MB"``, ``"1GiB"``, ``"2G"`` (= ``2GB``), ``"1.5TiB"``; 0 for None or ``""``.

    Raises :class:`SizeError` (a :class:`UserError` and a ``ValueError``) for anything else:
    a word, a negative number, a boolean.
    """
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise SizeError(f"not a size: {value!r} ({EXAMPLES})")
    if isinstance(value, (int, float)):
        if value < 0:
            raise SizeError(f"not a size: {value!r} (a size cannot be negative)")
        return int(value)
    m = _SIZE.fullmatch(str(value))
    if not m:
        raise SizeError(f"not a size: {value!r} ({EXAMPLES})")
    number, unit, binary = float(m.group(1)), (m.group(2) or "").upper(), m.group(3)
    if not unit:
        return int(number)
    base = 1024 if binary else (1000 if m.group(4) else BARE_UNIT_BASE)
    return int(number * base ** (_UNITS.index(unit) + 1))


def human_bytes(n: Optional[float], none: str = "-") -> str:
    """``1536`` -> ``'1.5 KiB'``, ``512`` -> ``'512 B'``; ``none`` for None (a size not known)."""
    if n is None:
        return none
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
