"""The ``lindi`` package, imported when first needed, with one line saying what to install when it cannot be.

lindi 0.4 pins ``zarr < 3`` (lindi#119) while the rest of neuromirror reads Zarr with zarr-python 3: an
environment has one or the other.  ``pip install 'neuromirror[references]'`` resolves zarr 2 for a lab's
own environment; the test suite puts lindi and zarr 2 on ``PYTHONPATH`` for the processes that need them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

from neuromirror.errors import UserError

MISSING = (
    "LINDI references need the lindi package, which pins zarr < 3 (lindi#119): "
    "pip install 'neuromirror[references]' (in an environment of its own)"
)
_why: Optional[str] = None


def lindi() -> Any:
    """The ``lindi`` module; a :class:`UserError` naming the extra when it does not import here."""
    try:
        import lindi as module

        module.LindiH5pyFile, module.LindiH5ZarrStore  # noqa: B018 - a directory named lindi is no lindi
    except Exception as exc:  # noqa: BLE001 - under zarr 3 lindi fails with an AttributeError, not an ImportError
        raise UserError(f"{MISSING} ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    return module


def available() -> bool:
    """Whether lindi imports in this process (asked once)."""
    global _why
    if _why is None:
        try:
            lindi()
            _why = ""
        except UserError as exc:
            _why = str(exc)
    return not _why


def why_not() -> str:
    """Why lindi does not import here ("" when it does)."""
    available()
    return _why or ""


def overlay() -> Optional[Path]:
    """The directory ``scripts/_venv.sh`` installs lindi and zarr 2 into, beside the venv's zarr 3
    (``$NEUROMIRROR_VENV/lindi-overlay``, else this interpreter's venv's): a process with it first on
    ``PYTHONPATH`` imports lindi.  None when it is not there."""
    where = Path(os.environ.get("NEUROMIRROR_VENV") or sys.prefix) / "lindi-overlay"
    return where if (where / "lindi").is_dir() else None


def with_overlay(env: dict[str, str]) -> dict[str, str]:
    """``env`` with :func:`overlay` first on ``PYTHONPATH`` (unchanged when there is none)."""
    where = overlay()
    if where is None:
        return env
    return {**env, "PYTHONPATH": os.pathsep.join([str(where), *filter(None, [env.get("PYTHONPATH")])])}
