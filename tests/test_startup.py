"""Start-up stays cheap: commands import the heavy libraries only when they need them.

``neuromirror --help`` (and every command's parser) must not import datalad, the
dandi client, boto3 or pandas; reading the index (``versions``, ``pin``, a resync
with no change) must not import pandas either (``sqlite_utils`` would pull it in).
Each check runs in a fresh interpreter and looks at ``sys.modules`` afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("datalad", "dandi", "boto3", "botocore", "pandas", "moto", "dask", "distributed")

PROBE = """
import json, sys
from neuromirror.cli import main
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as exc:
    code = exc.code
sys.stdout.write("\\n" + json.dumps({"code": code, "modules": sorted(m for m in sys.modules if m.split(".")[0] in %r)}))
""" % (HEAVY + ("sqlite_utils",),)


def _imports(argv: list[str]) -> tuple[object, set[str]]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True, timeout=120)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["code"], {m.split(".")[0] for m in result["modules"]}


def test_help_imports_nothing_heavy() -> None:
    code, mods = _imports(["--help"])
    assert code == 0
    assert not mods & set(HEAVY), f"neuromirror --help imported {sorted(mods & set(HEAVY))}"


def test_sync_help_imports_nothing_heavy() -> None:
    code, mods = _imports(["sync", "--help"])
    assert code == 0
    assert not mods & set(HEAVY), f"neuromirror sync --help imported {sorted(mods & set(HEAVY))}"


def test_reading_the_index_imports_neither_sqlite_utils_nor_pandas(tmp_path: Path) -> None:
    from neuromirror.index.db import Index

    index = Index(tmp_path / "root" / ".neuromirror" / "index.sqlite")  # the schema exists, as after a sync
    index.close()
    for command in (["versions", "dandi:000001"], ["pin", "dandi:000001"]):
        code, mods = _imports(["--root", str(tmp_path / "root"), *command])
        assert code == 2  # "not mirrored here": the index was opened and read
        assert not mods & {"sqlite_utils", *HEAVY}, f"neuromirror {command[0]} imported {sorted(mods)}"
