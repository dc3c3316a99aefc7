"""Version facts carried in commit messages, so the index can be rebuilt from git alone."""

from __future__ import annotations

from typing import Mapping, Optional

PREFIX = "Neuromirror-"


def format_trailers(fields: Mapping[str, Optional[str]]) -> str:
    lines = []
    for name, value in fields.items():
        if value is None or value == "":
            continue
        value = " ".join(str(value).split())  # one line each, whatever the archive sent
        lines.append(f"{name}: {value}")
    return "\n".join(lines) + "\n"


def parse_trailers(message: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in message.splitlines():
        if line.startswith(PREFIX) and ": " in line:
            name, value = line.split(": ", 1)
            out[name[len(PREFIX) :].lower()] = value.strip()
    return out
