"""Mirror definitions written and checked (tests/test_config.py and the tests that write one)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from neuromirror.config.load import load_config
from neuromirror.config.reader import ConfigError


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p


def errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(i) for i in info.value.issues]
