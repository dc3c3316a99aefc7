"""Processes that see lindi: the overlay scripts/_venv.sh builds (lindi 0.4 with zarr 2, which it pins), on PYTHONPATH.

lindi cannot import beside zarr 3, which the test venv has for its Zarr readers; so the tests that make or
read LINDI references run the CLI and the readers (pynwb, lindi) in subprocesses with ``PYTHONPATH`` the
overlay, and everything else from the venv.  No overlay: those tests are skipped, saying how to build it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers.service import ENV


def env() -> dict[str, str]:
    """The environment of a process that sees lindi (the test is skipped when there is no overlay)."""
    from neuromirror.read.references.lindi_env import overlay, with_overlay

    if overlay() is None:
        pytest.skip("no lindi overlay beside the venv (scripts/_venv.sh builds it; lindi pins zarr < 3)")
    return with_overlay(ENV)


def cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    """``neuromirror --root ROOT ARGS`` in a process that sees lindi."""
    return subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(root), *args],
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def python(code: str, *args: str) -> Any:
    """Run ``code`` (which prints one JSON document last) in a process that sees lindi; what it printed."""
    got = subprocess.run([sys.executable, "-c", code, *args], env=env(), capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, got.stderr[-3000:]
    lines = [line for line in got.stdout.splitlines() if line.startswith(("{", "["))]  # lindi prints warnings too
    assert lines, got.stdout[-3000:]
    return json.loads(lines[-1])


def definition(where: Path, ident: str, api: str) -> Path:
    """A mirror definition of ``dandi:IDENT`` with ``references: nwb`` (hourly), written in ``where``."""
    from helpers.config import write

    text = f"""
        sources:
          - spec: "dandi:{ident}"
            schedule: {{interval: 1h}}
            options: {{dandi_api: "{api}", references: nwb}}
        """
    return write(where, text)
