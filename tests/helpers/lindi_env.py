"""Processes that see lindi: the overlay scripts/_venv.sh builds (lindi 0.4 with zarr 2, which it pins), on PYTHONPATH.

lindi cannot import beside zarr 3, which the test venv has for its Zarr readers; so the tests that make or
read LINDI references run the CLI and the readers (pynwb, lindi) in subprocesses with ``PYTHONPATH`` the
overlay, and everything else from the venv.  No overlay: those tests are skipped, saying how to build it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers.service import ENV


def env() -> dict[str, str]:
    """The environment of a process that sees lindi (the test is skipped when there is no overlay): this
    process's as it is now (a fixture's S3 store endpoint and credentials too), with the stand-ins' settings."""
    from neuromirror.read.references.lindi_env import overlay, with_overlay

    if overlay() is None:
        pytest.skip("no lindi overlay beside the venv (scripts/_venv.sh builds it; lindi pins zarr < 3)")
    return with_overlay({**os.environ, **{k: v for k, v in ENV.items() if k not in os.environ}})


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


def definition(where: Path, ident: str, api: str, *, on_the_source: bool = False) -> Path:
    """A mirror definition of ``dandi:IDENT`` with ``references: nwb`` (hourly), written in ``where``:
    in its ``options``, or (``on_the_source``) on the source itself, as docs/reading.md says it."""
    from helpers.config import write

    refs = "\n            references: nwb" if on_the_source else ""
    text = f"""
        sources:
          - spec: "dandi:{ident}"
            schedule: {{interval: 1h}}{refs}
            options: {{dandi_api: "{api}"{"" if on_the_source else ", references: nwb"}}}
        """
    return write(where, text)


#: lindi itself on a URL of a reference (the view's), pynwb reading the timeseries file through it
READ_SERVED = """
import json, sys
import lindi
import numpy as np
from pynwb import NWBHDF5IO

f = lindi.LindiH5pyFile.from_lindi_file(sys.argv[1])
with NWBHDF5IO(file=f, mode="r") as io:
    n = io.read()
    data = n.acquisition["running_speed"].data
    print(json.dumps({"head": np.asarray(data[:100]).tolist(), "tail": np.asarray(data[-5:]).tolist(),
                      "session_id": n.session_id}))
"""


def timeseries_values() -> dict:
    """What :data:`READ_SERVED` prints of ``helpers.nwb.timeseries_nwb``'s file."""
    from helpers import nwb

    speed = nwb.speed()
    return {"head": speed[:100].tolist(), "tail": speed[-5:].tolist(), "session_id": "ses-1"}


def synced_timeseries(dandi_archive, root: Path, days: int, name: str):  # noqa: ANN001, ANN201
    """A dandiset of one pynwb-written timeseries file (``helpers.nwb``), published, synced into ``root`` with
    ``--references`` (a process that sees lindi): its ``helpers.keep.Dandiset``."""
    from datetime import timedelta

    from helpers import nwb
    from helpers.keep import T0, Dandiset
    from helpers.retrieve import Runner

    when = T0 + timedelta(days=days + len(dandi_archive.dandiset_ids()))
    ident = dandi_archive.create_dandiset(name=name, created=when)
    files = {nwb.TIMESERIES: nwb.timeseries_nwb(ident)}
    dandi_archive.put_asset(ident, nwb.TIMESERIES, files[nwb.TIMESERIES], when=when + timedelta(minutes=1))
    version = dandi_archive.publish(ident, when=when + timedelta(hours=1))
    got = cli(root, "sync", f"dandi:{ident}", "--dandi-api", dandi_archive.api_url, "--references")
    assert got.returncode == 0, got.stderr
    assert "references: 1 made" in got.stdout, got.stdout
    return Dandiset(dandi_archive, ident, version, files, Runner(root))
