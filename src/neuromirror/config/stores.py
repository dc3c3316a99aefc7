"""Where a source's content is kept and how it is checked: ``store:``/``stores:``, ``copies:``, ``verify:``.

Given at the top level, in ``defaults`` or on a source entry (the nearest wins)::

    stores: [/data/keep, s3://lab-backup/keep]   # or store: /data/keep (one)
    copies: 2                                     # verified copies wanted outside the archive (default: as recorded, 1)
    verify: {fraction: 0.05}                      # the rolling check: a slice of every store each cycle
    verify: {period: 30d}                         # ... or every stored byte re-read within this (default 30d)
    drill: {to: s3://scratch/drills, every: 7d, sample: 20}   # a restore rehearsed (restore --drill)

Each store is checked as ``neuromirror keep --to`` checks it (its kind; nothing is created), a
relative directory is relative to the file.  ``copies`` above the number of stores is refused: the
count could never be met.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from neuromirror.config.model import (
    DEFAULT_DRILL_EVERY,
    DEFAULT_DRILL_SAMPLE,
    DEFAULT_VERIFY_PERIOD,
    DrillPolicy,
    VerifyPolicy,
)
from neuromirror.config.reader import Node, Reader, kind_of
from neuromirror.config.rules import Rule, duration, number, read_fields, read_value, valid, whole
from neuromirror.config.sections import read_store

VERIFY_KEYS = ("fraction", "period")
DRILL_KEYS = ("to", "every", "sample")


@dataclass(frozen=True)
class StoreSettings:
    stores: tuple[str, ...] = ()
    copies: Optional[int] = None  # None: no ``copies:`` named (the recorded wanted count stays; 1 if none)
    verify: Optional[VerifyPolicy] = None
    drill: Optional[DrillPolicy] = None
    given: bool = False  # a store was named here or above (even if invalid: reported once)


def read_stores(r: Reader, node: Node, path: str) -> Optional[tuple[str, ...]]:
    """``stores:``: a list of stores (one string is a list of one)."""
    v = node.value
    items = [node] if isinstance(v, str) else v if isinstance(v, list) else None
    if not items:
        r.error(
            node.line, path, f"expected a list of stores (directories or URLs such as s3://BUCKET), got {kind_of(v)}"
        )
        return None
    names = [read_store(r, n, f"{path}[{i}]") for i, n in enumerate(items)]
    if any(n is None for n in names):
        return None
    out = tuple(n for n in names if n is not None)
    if len(set(out)) != len(out):
        r.error(node.line, path, "a store is listed twice")
        return None
    return out


#: ``verify:`` and ``drill:`` (besides its ``to``): checked in this order, the first invalid value refuses the section
VERIFY_RULES = (Rule("fraction", number(lambda f: 0 < f <= 1, "a fraction in (0, 1]")), Rule("period", duration))
DRILL_RULES = (Rule("every", duration), Rule("sample", whole(1, None, "a number of objects (1, 2, ...)")))
COPIES = whole(1, None, "the number of copies wanted (1, 2, ...)")


def read_copies(r: Reader, node: Node, path: str) -> Optional[int]:
    v = read_value(r, node, path, COPIES)
    return v if valid(v) else None


def read_verify(r: Reader, node: Node, path: str) -> Optional[VerifyPolicy]:
    m = r.mapping(node, path, VERIFY_KEYS)
    if m is None:
        return None
    values, ok = read_fields(r, m, path, VERIFY_RULES, stop=True)
    return VerifyPolicy(values.get("fraction"), values.get("period", DEFAULT_VERIFY_PERIOD)) if ok else None


def read_drill(r: Reader, node: Node, path: str) -> Optional[DrillPolicy]:
    """``drill: {to: SCRATCH, every: 7d, sample: 20}``: ``to`` a directory or s3://BUCKET[/PREFIX], as stores."""
    m = r.mapping(node, path, DRILL_KEYS)
    if m is None:
        return None
    if "to" not in m:
        r.error(node.line, path, "a drill needs its scratch target: to: DIR or s3://BUCKET[/PREFIX]")
        return None
    to = read_store(r, m["to"], f"{path}.to")
    values, ok = read_fields(r, m, path, DRILL_RULES, stop=True)
    if not ok or not to:
        return None
    return DrillPolicy(to, values.get("every", DEFAULT_DRILL_EVERY), values.get("sample", DEFAULT_DRILL_SAMPLE))


def read_store_settings(r: Reader, m: dict[str, Node], path: str, above: StoreSettings) -> StoreSettings:
    """``store``/``stores``, ``copies`` and ``verify`` of one mapping (top, defaults or a source), over ``above``."""
    prefix = f"{path}." if path else ""
    stores, given = _named_stores(r, m, prefix, above)
    # each policy read by its section's reader; an invalid one (its error recorded) leaves the one above
    policies = {key: read(r, m[key], f"{prefix}{key}") for key, read in POLICY_READERS if key in m}
    copies, verify, drill = (policies.get(key) or getattr(above, key) for key, _ in POLICY_READERS)
    here = m.get("copies") or m.get("stores") or m.get("store")
    if stores and copies is not None and copies > len(stores) and here is not None:
        r.error(
            here.line,
            f"{prefix}copies",
            f"{copies} copies wanted but {len(stores)} store(s) named: it could never be met",
        )
    return StoreSettings(stores, copies, verify, drill, given)


def _named_stores(r: Reader, m: dict[str, Node], prefix: str, above: StoreSettings) -> tuple[tuple[str, ...], bool]:
    """The stores named here (``store``: one, ``stores``: a list), else those above; and whether any was named."""
    if "store" in m and "stores" in m:
        r.error(m["stores"].line, f"{prefix}stores", "give 'store' (one) or 'stores' (a list), not both")
    if "store" in m:
        one = read_store(r, m["store"], f"{prefix}store")
        return ((one,) if one else ()), True
    if "stores" in m:
        return read_stores(r, m["stores"], f"{prefix}stores") or (), True
    return above.stores, above.given


#: the policies of a mapping, each read by its section's reader, in this order
POLICY_READERS: tuple[tuple[str, Callable[[Reader, Node, str], Any]], ...] = (
    ("copies", read_copies),
    ("verify", read_verify),
    ("drill", read_drill),
)
