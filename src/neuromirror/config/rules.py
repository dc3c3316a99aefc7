"""Config values checked by rule: one rule kind per kind of value, and a table of rules per section.

A *check* takes a value as read from YAML and returns it typed, or raises ValueError whose
message is the error the file gets (at the value's line, under its field's dotted path).  A
section lists its :class:`Rule` s in a table (the order is the order its errors are reported in)
and :func:`read_fields` applies them: so a duration (``jitter``, ``backoff.max``, ``verify.period``,
``drill.every``, ``keep.expire_after``...) is read by one rule kind, :func:`duration`, wherever it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from neuromirror.config.reader import Node, Reader, join_field, kind_of
from neuromirror.config.schedule import parse_duration

#: a value -> the value typed; ValueError (its message the file's error) when it is not valid
Check = Callable[[Any], Any]


@dataclass(frozen=True)
class Rule:
    """``key`` of a section, checked by ``check`` when it is given."""

    key: str
    check: Check


def duration(value: Any) -> float:
    """A duration (``90``, ``30m``, ``1h30m``, ``7d``...) in seconds: the one rule for every duration field."""
    return parse_duration(value)


def size(positive: bool) -> Check:
    """A size as every size a user writes is read (:func:`neuromirror.util.sizes.parse_size`: ``1GiB``,
    ``1GB``...), in bytes; never empty.  ``positive``: above 0, and no boolean (a budget, a file-size
    limit); else 0 is a size too (``min_free: 0`` turns the check off)."""

    def check(value: Any) -> int:
        from neuromirror.util.sizes import parse_size

        if value is None or (positive and isinstance(value, bool)):  # an empty field is a mistake, not "the default"
            raise ValueError(f"not a size: {value!r}")
        n = parse_size(value)
        if positive and n <= 0:
            raise ValueError(f"not a size: {value!r}")
        return n

    return check


def whole(low: int, high: Optional[int], expected: str) -> Check:
    """A whole number from ``low`` (to ``high``, if any); a boolean is not one."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            raise ValueError(f"expected {expected}, got {kind_of(value)}")
        return value

    return check


def number(within: Callable[[float], bool], expected: str) -> Check:
    """A number (int or float, not a boolean) for which ``within`` holds, as a float."""

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not within(value):
            raise ValueError(f"expected {expected}, got {kind_of(value)}")
        return float(value)

    return check


def flag(value: Any) -> bool:
    """``true`` or ``false``."""
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {kind_of(value)}")
    return value


def text(expected: str) -> Check:
    """A non-empty string, stripped."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"expected {expected}, got {kind_of(value)}")
        return value.strip()

    return check


_INVALID = object()


def read_value(r: Reader, node: Node, path: str, check: Check) -> Any:
    """``check`` applied to ``node``'s value; on ValueError the error is recorded (at the node's
    line, as ``path``) and the result is ``_INVALID`` (test it with :func:`valid`)."""
    try:
        return check(node.value)
    except ValueError as exc:
        r.error(node.line, path, str(exc))
        return _INVALID


def valid(value: Any) -> bool:
    """Whether :func:`read_value` returned a value (not its mark of an invalid one)."""
    return value is not _INVALID


def read_fields(
    r: Reader, m: Mapping[str, Node], path: str, rules: Sequence[Rule], *, stop: bool = False
) -> tuple[dict[str, Any], bool]:
    """The rules' keys given in ``m``, each checked in the table's order: (key -> typed value, all valid).

    Every invalid value is reported (with ``stop``, only the first: the section is then refused
    without reading further).
    """
    out: dict[str, Any] = {}
    ok = True
    for rule in rules:
        node = m.get(rule.key)
        if node is None:
            continue
        value = read_value(r, node, join_field(path, rule.key), rule.check)
        if not valid(value):
            ok = False
            if stop:
                break
            continue
        out[rule.key] = value
    return out, ok
