"""The view serves each pinned NWB file's LINDI reference (issue 60): at the file's path + ``.lindi.json`` and by key.

A dandiset of pynwb-written files is synced with ``--references`` (a process that sees lindi); ``urls
--references --view`` lists each reference's URL at a running ``serve --http`` and its Neurosift link; a
real HTTP client gets the same JSON on both routes, and lindi (``LindiH5pyFile.from_lindi_file`` on the
served URL, read by pynwb, in a lindi process) reads the file's values through it, chunks from the pinned
archive URL.  Once the archive lost the file (kept first), the reference the view serves names the view's
own URL of the file, which streams the store's copy: lindi still reads it from outside the mirror.  Both times
neuromirror's own door on the served mirror (``open_hdf5(..., base_url=VIEW)``) opens the file through it too.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import requests

from helpers import lindi_env, nwb
from helpers.keep import T0, Dandiset, lose_blobs
from helpers.read import view_server
from helpers.retrieve import Runner
from helpers.service import wait_for
from neuromirror.read.references.chunks import chunk_urls
from neuromirror.read.references.location import reference_path

#: through a served mirror: neuromirror's door with base_url, the view answering the reference
READ_BY_BASE_URL = """
import json, sys
import numpy as np
from pynwb import NWBHDF5IO
from neuromirror.read.references.reading import open_hdf5

opened = open_hdf5(sys.argv[2], base_url=sys.argv[1])
with NWBHDF5IO(file=opened.file, mode="r") as io:
    n = io.read()
    data = n.acquisition["running_speed"].data
    print(json.dumps({"via": opened.via, "head": np.asarray(data[:100]).tolist(), "tail": np.asarray(data[-5:]).tolist(),
                      "session_id": n.session_id}))
"""


@pytest.fixture
def synced(dandi_archive, tmp_path: Path) -> Dandiset:  # noqa: ANN001
    return lindi_env.synced_timeseries(dandi_archive, tmp_path / "mirror", 1200, "lindi view")


def test_the_view_serves_the_reference_by_path_and_key_and_lindi_reads_it(synced: Dandiset, tmp_path: Path) -> None:
    d = synced
    with view_server(d.run.root) as base:
        (row,) = d.run.json("urls", d.spec, "--references", "--view", base)
        assert row["path"] == nwb.TIMESERIES
        assert row["url"] == f"{base}dav/dandi/{d.id}/{d.version}/{nwb.TIMESERIES}.lindi.json"
        assert row["by_key"] == f"{base}lindi/{row['key']}.lindi.json"
        assert row["neurosift"] == f"https://neurosift.app/nwb?url={quote(row['url'], safe=':/')}&st=lindi"
        text = d.run.ok("urls", d.spec, "--references", "--view", base)
        assert text == f"{nwb.TIMESERIES}\t{row['url']}\t{row['neurosift']}\n"
        by_path, by_key = requests.get(row["url"], timeout=30), requests.get(row["by_key"], timeout=30)
        assert by_path.status_code == by_key.status_code == 200, (by_path.text, by_key.text)
        assert by_path.headers["Content-Type"] == "application/json"
        assert by_path.json() == by_key.json() == json.loads(Path(row["reference"]).read_text())
        pinned = d.run.json("urls", d.spec, nwb.TIMESERIES)[0]["url"]
        assert chunk_urls(by_path.json()) == {pinned}
        assert lindi_env.python(lindi_env.READ_SERVED, row["url"]) == lindi_env.timeseries_values()
        target = f"dandi/{d.id}@{d.version}/{nwb.TIMESERIES}"
        assert lindi_env.python(READ_BY_BASE_URL, base, target) == {"via": "reference", **lindi_env.timeseries_values()}
        # no reference: a 404 saying why, on both routes
        missing = requests.get(f"{base}dav/dandi/{d.id}/{d.version}/dandiset.yaml.lindi.json", timeout=30)
        assert missing.status_code == 404 and "no LINDI reference" in missing.text
        assert requests.get(f"{base}lindi/SHA256E-s1--00.nwb.lindi.json", timeout=30).status_code == 404

        # the archive loses the file after a keep: the served reference's chunks name the view's own URL of it
        d.run.ok("keep", d.spec, "--to", str(tmp_path / "store"))
        lose_blobs(d, [nwb.TIMESERIES])
        lost = requests.get(row["url"], timeout=30).json()
        file_url = f"{base}dav/dandi/{d.id}/{d.version}/{nwb.TIMESERIES}"
        assert chunk_urls(lost) == {file_url}
        assert lindi_env.python(lindi_env.READ_SERVED, row["url"]) == lindi_env.timeseries_values()
        assert lindi_env.python(READ_BY_BASE_URL, base, target) == {"via": "reference", **lindi_env.timeseries_values()}
    np.testing.assert_array_equal(nwb.speed()[:3], [0.0, 0.1, 0.2])


def test_the_service_makes_the_references_a_definition_asks_for(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """``serve --config`` with ``references: nwb``: the scheduled sync's new NWB key gets its reference (a service
    process that sees lindi), and its fields are in the index."""
    when = T0 + timedelta(days=2100 + len(dandi_archive.dandiset_ids()))
    ident = dandi_archive.create_dandiset(name="lindi service", created=when)
    data = nwb.ecephys_nwb(ident)
    dandi_archive.put_asset(ident, nwb.ECEPHYS, data, when=when + timedelta(minutes=1))
    root = tmp_path / "mirror"
    definition = lindi_env.definition(tmp_path, ident, dandi_archive.api_url)
    key = f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}.nwb"
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "neuromirror", "--root", str(root), "serve", "--config", str(definition)],
        env=lindi_env.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: reference_path(root, key).is_file(), 120, "the service to make the reference")
        rows = wait_for(
            lambda: Runner(root)("search", "--nwb-field", "location=VISp", "--json")[1].strip() not in ("", "[]"),
            30,
            "the fields in the index",
        )
        assert rows
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    assert [r["path"] for r in Runner(root).json("search", "--nwb-field", "location=VISp")] == [nwb.ECEPHYS]
