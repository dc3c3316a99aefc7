"""The operator's surface, whole (issue 76): the pages on the view alone, verdicts told as they are, bad SPECs refused.

A Zarr dandiset (7 objects, no other annexed file) is mirrored by a real sync and kept into a directory store;
a second dandiset's first sync is killed (SIGKILL, as a power cut) before it recorded any state.  Then:

* ``status --backup`` counts the Zarr's objects (it was called "NOTHING TO KEEP: the archive holds 0 objects")
  and says "not synced yet" for the source with no state (not "nothing to keep");
* ``serve --http ADDR --no-schedule`` (the view alone, no mirror definition) answers ``/audit/``,
  ``/audit.json``, ``/backup/`` and ``/backup.json`` as ``audit --json`` and ``status --backup --json`` say,
  its landing page links them, and the backup page reads right in headless Chromium;
* every reporting command refuses a malformed or unknown SPEC with exit 2 and one line, no traceback
  (a table), and the mirror is unchanged after them all.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest
import requests

from helpers.service import ENV, neuromirror, ok
from helpers.status_pages import CHROMIUM, by_class, chromium, keep_screenshot, page_at, parse_html, text_of
from neuromirror.demo import deterministic_bytes

ZARR = {".zgroup": b'{"zarr_format": 2}', **{f"0/{i}": deterministic_bytes(f"op-zarr:{i}", 100 + i) for i in range(6)}}


class World(NamedTuple):
    root: Path
    zarr_source: str  # a Zarr dandiset, synced and kept
    killed_source: str  # a dandiset whose first sync was killed before it recorded a state
    store: Path


@pytest.fixture(scope="module")
def world(dandi_archive, tmp_path_factory) -> World:  # noqa: ANN001
    a = dandi_archive
    tmp = tmp_path_factory.mktemp("operator")
    root, store = tmp / "mirror", tmp / "store"
    zarred = a.create_dandiset(name="a Zarr and nothing else")
    a.add_zarr_asset(zarred, "sub-01/sample.zarr", ZARR)
    killed = a.create_dandiset(name="killed on its first sync")
    a.put_asset(killed, "sub-01/a.nwb", b"k" * 1000)
    ok(root, "sync", f"dandi:{zarred}", "--dandi-api", a.api_url)
    ok(root, "keep", f"dandi:{zarred}@draft", "--to", str(store))
    cut = subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(root), "sync", f"dandi:{killed}", "--dandi-api", a.api_url],
        env={**ENV, "NEUROMIRROR_CRASH_AT": "before-commit"},
        capture_output=True,
        text=True,
    )
    assert cut.returncode == -signal.SIGKILL, (cut.returncode, cut.stderr[-2000:])
    return World(root, f"dandi:{zarred}", f"dandi:{killed}", store)


def backup_json(w: World) -> dict:
    return {s["source"]: s for s in json.loads(ok(w.root, "status", "--backup", "--json"))["sources"]}


def test_the_backup_counts_a_zarrs_objects_and_a_source_never_synced(world: World) -> None:
    got = backup_json(world)
    z = got[world.zarr_source]
    assert z["verdict"] == "kept", z
    assert z["archive"]["objects"] == len(ZARR) == 7 and z["archive"]["bytes"] == sum(map(len, ZARR.values()))
    assert z["kept_nowhere"]["objects"] == 0 and z["zarr_states_uncounted"] == 0
    (store,) = z["stores"]
    assert store["url"] == str(world.store) and store["kept"]["objects"] == 7
    kept_files = [p for p in world.store.rglob("*") if p.is_file() and not p.name.startswith(".neuromirror")]
    assert len(kept_files) == 7  # what the store holds, as a user lists it
    k = got[world.killed_source]
    assert k["verdict"] == "not synced yet" and k["versions"] == 0, k

    text = ok(world.root, "status", "--backup")
    assert f"{world.zarr_source}: KEPT: the archive holds 7 objects" in text, text
    assert f"{world.killed_source}: NOT SYNCED YET: no state recorded" in text, text
    assert "NOTHING TO KEEP" not in text


class Viewed(NamedTuple):
    base: str
    line: str  # what serve said when it started


@pytest.fixture(scope="module")
def viewed(world: World) -> Iterator[Viewed]:
    """``serve --http 127.0.0.1:0 --no-schedule``: the view alone, as a real process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "neuromirror", "--root", str(world.root), "serve", "--http", "127.0.0.1:0"]
        + ["--no-schedule"],
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # a state: printed once it listens
        m = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert m is not None, line
        yield Viewed(m.group(1), line)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0


def test_the_view_alone_serves_the_audit_and_backup_pages(world: World, viewed: Viewed) -> None:
    base = viewed.base
    for route in ("/audit/", "/backup/"):
        assert f"{base}{route}" in viewed.line, (route, viewed.line)
    landing = requests.get(base + "/", timeout=30).text
    assert 'href="/audit/"' in landing and 'href="/backup/"' in landing

    served = requests.get(base + "/backup.json", timeout=30)
    assert served.status_code == 200 and served.headers["Content-Type"] == "application/json"
    cli = json.loads(ok(world.root, "status", "--backup", "--json"))
    got = served.json()
    got.pop("generated"), cli.pop("generated")
    assert got == cli

    audit = requests.get(base + "/audit.json", timeout=30)
    assert audit.status_code == 200
    cli_audit = json.loads(ok(world.root, "audit", "--json"))
    assert {k: v for k, v in audit.json().items() if k != "generated"} == {
        k: v for k, v in cli_audit.items() if k != "generated"
    }

    doc = page_at(base + "/backup/")
    rows = [text_of(tr) for tr in by_class(doc, "tr", "source")]
    (zarr_row,) = [r for r in rows if world.zarr_source in r]
    (killed_row,) = [r for r in rows if world.killed_source in r]
    assert "kept" in zarr_row and "not synced yet" in killed_row, rows
    assert page_at(base + "/audit/") is not None
    assert requests.get(base + "/status.json", timeout=30).status_code == 404  # the service's own: not here


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed: the pages are not looked at in a browser here")
def test_the_views_backup_page_in_a_browser(world: World, viewed: Viewed, tmp_path: Path) -> None:
    dom = parse_html(chromium(viewed.base + "/backup/", tmp_path), strict=False)
    verdicts = [text_of(v) for v in by_class(dom, "span", "verdict")]
    assert "kept" in verdicts and "not synced yet" in verdicts, verdicts
    says = " ".join(text_of(p) for p in by_class(dom, "p", "say"))
    assert "Every one of the 7 objects" in says and "No state of" in says, says
    landing = parse_html(chromium(viewed.base + "/", tmp_path), strict=False)
    links = {a.get("href") for a in landing.iter("a")}
    assert {"/audit/", "/backup/"} <= links, links
    shot = tmp_path / "view-backup.png"
    chromium(viewed.base + "/backup/", tmp_path, screenshot=shot, size="1400,1000")
    assert shot.stat().st_size > 10_000
    keep_screenshot(shot)


#: (arguments, what the one line says): a malformed or unknown SPEC to every reporting command, and -J, rates,
#: in-flight ceilings out of range to every command taking them; each exits 2 with one line and no traceback
BAD_INPUTS = [
    (("audit", "dandi:1"), "a dandiset id has 6 digits"),
    (("audit", "dandi:000999"), "dandi:000999 is not mirrored here"),
    (("audit", "dandi:9*"), "no mirrored source matches dandi:9*"),
    (("audit", "nope"), "is not a source spec"),
    (("status", "--backup", "dandi:000999"), "dandi:000999 is not mirrored here"),
    (("status", "--backup", "dandi:1"), "a dandiset id has 6 digits"),
    (("status", "--copies", "dandi:000999"), "dandi:000999 is not mirrored here"),
    (("status", "dandi:000999"), "dandi:000999 is not mirrored here"),
    (("status", "dandi:9*"), "no mirrored or defined source matches dandi:9*"),
    (("versions", "dandi:000999"), "dandi:000999 is not mirrored here"),
    (("versions", "dandi:1"), "a dandiset id has 6 digits"),
    (("pin", "dandi:000999"), "dandi:000999 is not mirrored here"),
    (("cite", "dandi:000999"), "dandi:000999 is not mirrored here"),
    (("verify", "dandi:000999"), "dandi:000999 is not mirrored here"),
    (("urls", "dandi:000999"), "dandi:000999 is not mirrored here"),
    (("changes", "dandi:000999", "--since", "2024-01-01"), "dandi:000999 is not mirrored here"),
    (("lock", "dandi:000999"), "dandi:000999 is not mirrored here"),
    (("diff", "dandi:000999@draft", "dandi:000999@x"), "dandi:000999 is not mirrored here"),
    (("verify", "--stores", "dandi:000999"), "dandi:000999 is not mirrored here"),
    (("verify", "--stores", "-J", "0"), "-J must be at least 1"),
    (("keep", "dandi:000999", "--to", "STORE", "-J", "0"), "-J must be at least 1"),
    (("restore", "--drill", "--to", "SCRATCH", "-J", "0"), "-J must be at least 1"),
    (("get", "ZARR", "--to", "GOT", "-J", "0"), "-J must be at least 1"),
    (("sync", "dandi:000999", "-J", "0"), "-J must be at least 1"),
    (("sync", "dandi:000999", "--max-rate", "0"), "--max-rate: not a rate: '0'"),
    (("sync", "dandi:000999", "--max-rate", "5/d"), "--max-rate: not a rate: '5/d' (say e.g. 20/s, 300/min, 5/h)"),
    (("sync", "dandi:000999", "--max-in-flight", "0"), "--max-in-flight '0': a whole number of requests"),
]


def test_bad_inputs_exit_2_with_one_line_and_lose_nothing(world: World, tmp_path: Path) -> None:
    ds = world.root / "dandi" / world.zarr_source.split(":")[1]
    before = (ok(world.root, "versions", world.zarr_source, "--json"), _git_status(ds))
    wrong = []
    for args, said in BAD_INPUTS:
        args = tuple(
            {"STORE": str(tmp_path / "store"), "SCRATCH": str(tmp_path / "scratch"), "GOT": str(tmp_path / "got")}.get(
                a, world.zarr_source if a == "ZARR" else a
            )
            for a in args
        )
        out = neuromirror(world.root, *args)
        lines = out.stderr.strip().splitlines()
        if out.returncode != 2 or len(lines) != 1 or said not in lines[0] or "Traceback" in out.stderr or out.stdout:
            wrong.append((args, out.returncode, out.stdout[-300:], out.stderr[-600:]))
    assert not wrong, "\n".join(map(str, wrong))
    assert (ok(world.root, "versions", world.zarr_source, "--json"), _git_status(ds)) == before
    assert not (tmp_path / "store").exists() and not (tmp_path / "got").exists()
    ok(world.root, "verify", world.zarr_source)


def _git_status(repo: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True).stdout


def test_a_sync_held_by_its_rate_ceiling_says_so(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """``--max-rate 5/h``: one request every 12 minutes, accepted as asked; the wait is said in a line on stderr
    (it waited in silence), naming the endpoint and the ceiling."""
    import queue
    import threading

    ident = dandi_archive.create_dandiset(name="held by its ceiling")
    dandi_archive.put_asset(ident, "a.nwb", b"h" * 100)
    proc = subprocess.Popen(
        [sys.executable, "-m", "neuromirror", "--root", str(tmp_path / "mirror"), "sync", f"dandi:{ident}"]
        + ["--dandi-api", dandi_archive.api_url, "--max-rate", "5/h"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as a terminal sends it: a suite started in the background by a script (`.ci/run &`) runs with
        # SIGINT ignored, which its children inherit, and Python then installs no KeyboardInterrupt for it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
    try:
        said = ""
        while "waiting" not in said:
            said = lines.get(timeout=120)  # a state: the line, or the test fails after 2 minutes
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    host = dandi_archive.api_url.split("/api")[0]
    assert said.startswith("WARNING neuromirror.network: ") and host in said, said
    assert "min for the next request: the ceiling max_rate 5/h holds it" in said, said
