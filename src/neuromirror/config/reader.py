"""YAML read with the line of every value, and the problems found reported against those lines.

PyYAML's ``safe_load`` forgets where a value came from; a user fixing a definition needs
``mirrors/x.yaml:7: sources[1].schedule: unknown key 'intrval'``.  So a file is composed
into :class:`Node` trees (value, line, and each key's line) and a :class:`Reader` collects
every issue and warning of one file, so that all of them are reported at once
(:class:`ConfigError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from neuromirror.errors import UserError


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: Optional[int]  # 1-based
    field: str  # "sources[1].schedule", "" for the whole file
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(UserError):
    """A mirror definition is invalid; ``issues`` lists every problem found, ``str()`` one per line."""

    def __init__(self, issues: Sequence[ConfigIssue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class Node:
    """A parsed YAML value with the line of its node and, for mappings, of each key."""

    __slots__ = ("value", "line", "key_lines")

    def __init__(self, value: Any, line: int, key_lines: Optional[dict[str, int]] = None):
        self.value = value
        self.line = line
        self.key_lines = key_lines or {}


class Reader:
    def __init__(self, file: str, base_dir: Optional[Path] = None):
        self.file = file
        self.base_dir = base_dir or Path.cwd()
        self.issues: list[ConfigIssue] = []
        self.warnings: list[str] = []

    def error(self, line: Optional[int], fieldname: str, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, line, fieldname, message))

    def warn(self, line: Optional[int], fieldname: str, message: str) -> None:
        self.warnings.append(str(ConfigIssue(self.file, line, fieldname, message)))

    # -- YAML -> Node trees --------------------------------------------
    def parse(self, text: str) -> Optional[Node]:
        import yaml

        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            self.error(line, "", f"not valid YAML: {exc.problem or exc.context}")
            return None
        except yaml.YAMLError as exc:
            self.error(None, "", f"not valid YAML: {exc}")
            return None
        if node is None:
            return None
        return self._convert(node, "")

    def _convert(self, node: Any, path: str) -> Node:
        import yaml

        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            constructor = yaml.SafeLoader("")
            try:
                constructor.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
            except yaml.YAMLError as exc:
                self.error(line, path, f"bad merge key: {getattr(exc, 'problem', exc)}")
            out: dict[str, Node] = {}
            key_lines: dict[str, int] = {}
            for knode, vnode in node.value:
                key = constructor.construct_object(knode, deep=True) if isinstance(knode, yaml.ScalarNode) else None
                kline = knode.start_mark.line + 1
                if not isinstance(key, str):
                    self.error(kline, path, f"keys must be names, got {key!r}")
                    continue
                if key in out:
                    self.error(kline, join_field(path, key), f"duplicate key (first on line {key_lines[key]})")
                    continue
                out[key] = self._convert(vnode, join_field(path, key))
                key_lines[key] = kline
            return Node(out, line, key_lines)
        if isinstance(node, yaml.SequenceNode):
            return Node([self._convert(n, f"{path}[{i}]") for i, n in enumerate(node.value)], line)
        constructor = yaml.SafeLoader("")
        try:
            value = constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.error(line, path, f"cannot read value: {getattr(exc, 'problem', exc)}")
            value = None
        return Node(value, line)

    # -- helpers --------------------------------------------------------
    def mapping(
        self, node: Node, path: str, allowed: Iterable[str], *, extra_ok: bool = False
    ) -> Optional[dict[str, Node]]:
        if not isinstance(node.value, dict):
            self.error(node.line, path, f"expected a mapping (key: value), got {kind_of(node.value)}")
            return None
        allowed = tuple(allowed)
        if not extra_ok:
            for key in node.value:
                if key not in allowed:
                    self.unknown_key(node, path, key, allowed)
        return node.value

    def unknown_key(self, node: Node, path: str, key: str, allowed: Sequence[str]) -> None:
        import difflib

        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(allowed)})"
        self.error(node.key_lines.get(key, node.line), path or "top level", f"unknown key '{key}'{hint}")


def join_field(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    return f"a {type(value).__name__} ({value!r})"
