"""``get``, ``reproduce``, ``urls`` and ``search`` through the Python API: the same bytes as the commands' ``--json``.

A dandiset is mirrored from the DANDI stand-in the way a user does it (``neuromirror sync``); each verb is then
called through ``neuromirror.api`` and through the command line on the same mirror, and the JSON the API's
result writes must be the command's ``--json`` byte for byte (a clone is made at the same place by both: the
API's is removed before the command's, so ``dir`` and ``reused`` agree).  A path the version lacks raises
NoSuchPath, a malformed region or digest BadInput, naming the thing and not a flag.
"""

from __future__ import annotations

import io
import json
import shutil
import stat
from pathlib import Path

import pytest

from helpers.keep import Dandiset, make_dandiset
from neuromirror import api


@pytest.fixture(scope="module")
def mirrored(dandi_archive, tmp_path_factory: pytest.TempPathFactory) -> Dandiset:  # noqa: ANN001
    root = tmp_path_factory.mktemp("api-getting") / "mirror"
    return make_dandiset(dandi_archive, root, {"sub-01/a.nwb": 3_000, "sub-02/b.nwb": 1_500})


def written(result: object) -> str:
    """What the result's ``write_json`` writes: the bytes its command's ``--json`` prints."""
    out = io.StringIO()
    result.write_json(out)  # type: ignore[attr-defined]
    return out.getvalue()


def removed(path: Path) -> None:
    """A clone gone (git-annex leaves its content read-only)."""
    for p in [path, *path.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    shutil.rmtree(path)


def test_get_writes_the_commands_json(mirrored: Dandiset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROMIRROR_ALLOW_IP", "all")
    to = tmp_path / "clone"
    seen: list[tuple[str, int, object]] = []
    with api.open(mirrored.run.root) as m:
        got = m.get(mirrored.spec, ["sub-01"], to=to, progress=lambda *a: seen.append(a))
    assert got.ok and [i.status.value for i in got.items()] == ["ok"]
    assert (to / "sub-01" / "a.nwb").read_bytes() == mirrored.files["sub-01/a.nwb"]
    # a script's callback is told the version's start and end, and between them its file and bytes
    assert seen[0] == (mirrored.spec, 0, 1) and seen[-1] == (mirrored.spec, 1, 1)
    assert {stage for stage, _, _ in seen[1:-1]} == {f"files {mirrored.spec}", f"get {mirrored.spec}"}
    last = {stage: (done, total) for stage, done, total in seen[1:-1]}  # each stage's last call
    assert last == {f"files {mirrored.spec}": (1, 1), f"get {mirrored.spec}": (3_000, 3_000)}
    mine = written(got)
    removed(to)
    assert mine == mirrored.run.ok("get", mirrored.spec, "sub-01", "--to", str(to), "--json")
    assert json.loads(mine) == got.to_json() and got.to_json()["fetched"] == 1


def test_reproduce_writes_the_commands_json(mirrored: Dandiset, tmp_path: Path) -> None:
    lock = tmp_path / "data.lock"
    mirrored.run.ok("lock", mirrored.spec, "--files", "-o", str(lock))
    to = tmp_path / "work"
    with api.open(mirrored.run.root) as m:
        done = m.reproduce(lock, to=to, content=False, allow_ip="all")
    assert done.ok and [i.status.value for i in done.items()] == ["ok"]
    mine = written(done)
    removed(to)
    cli = mirrored.run.ok("reproduce", str(lock), "--to", str(to), "--no-content", "--allow-ip", "all", "--json")
    assert mine == cli and json.loads(mine)["datasets"][0]["commit"] == done.datasets[0]["commit"]
    with api.open(mirrored.run.root) as m, pytest.raises(api.BadInput, match="none of the lock's datasets"):
        m.reproduce(lock, ["dandi/000000/x"], to=tmp_path / "w2")


FRESH_MACHINE = """
import json, sys
from neuromirror import api
with api.open(sys.argv[1]) as m:
    got = m.get(sys.argv[2], ["sub-01"], to=sys.argv[3], allow_ip="all")
    done = m.reproduce(sys.argv[4], to=sys.argv[5], allow_ip="all")
print(json.dumps({"got": got.ok, "failed": got.failed, "reproduced": done.ok, "items": [str(i) for i in done.items()]}))
"""


def test_get_and_reproduce_on_a_fresh_machine_as_the_commands_do(mirrored: Dandiset, tmp_path: Path) -> None:
    """A script run by the venv's python without the venv's bin on PATH, and with no git identity anywhere
    (an empty HOME, no global or system git config): the API finds its own git-annex and DataLad and commits
    as the mirror, as the CLI does (docs/python-api.md's example on a fresh machine)."""
    import os
    import subprocess
    import sys

    lock = tmp_path / "data.lock"
    mirrored.run.ok("lock", mirrored.spec, "--files", "-o", str(lock))
    home = tmp_path / "home"
    home.mkdir()
    keep = {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "LANG", "TMPDIR", "DANDI_NO_ET")}
    env = {
        **keep,
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    bare = subprocess.run(["git", "var", "GIT_AUTHOR_IDENT"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert (
        bare.returncode != 0
        and "git-annex"
        not in subprocess.run(
            ["sh", "-c", "command -v git-annex || true"], env=env, capture_output=True, text=True
        ).stdout
    )  # the machine as a new user's: no identity, no git-annex on PATH
    to, again = tmp_path / "clone", tmp_path / "rebuilt"
    proc = subprocess.run(
        [sys.executable, "-c", FRESH_MACHINE, str(mirrored.run.root), mirrored.spec, str(to), str(lock), str(again)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["got"] and result["failed"] == [] and result["reproduced"], result
    assert (to / "sub-01" / "a.nwb").read_bytes() == mirrored.files["sub-01/a.nwb"]
    assert (again / "dandi" / mirrored.id / "sub-02" / "b.nwb").read_bytes() == mirrored.files["sub-02/b.nwb"]


def test_urls_streams_the_commands_json(mirrored: Dandiset, tmp_path: Path) -> None:
    with api.open(mirrored.run.root) as m:
        mine = written(m.urls(mirrored.spec))
        listed = m.urls(mirrored.spec, ["sub-01"])
        rows = [(pin.version, f.path, f.served_by) for pin, f in listed]  # streamed: (pin, file) pairs
        with pytest.raises(RuntimeError, match="read once"):
            list(listed)
    assert mine == mirrored.run.ok("urls", mirrored.spec, "--json")
    assert rows == [(mirrored.version, "sub-01/a.nwb", "archive")] and listed.counts == {"archive": 1}
    assert listed.ok and listed.summary() == ["1 file(s): 1 from the archive"]
    # the lock file as the input
    lock = tmp_path / "data.lock"
    mirrored.run.ok("lock", mirrored.spec, "-o", str(lock))
    with api.open(mirrored.run.root) as m:
        by_lock = m.urls(lock=lock)
        mine = written(by_lock)
    assert mine == mirrored.run.ok("urls", "--lock", str(lock), "--json")
    assert {r["path"] for r in json.loads(mine)} >= set(mirrored.files)


def test_a_path_the_version_lacks_is_no_such_path(mirrored: Dandiset, tmp_path: Path) -> None:
    with api.open(mirrored.run.root) as m:
        with pytest.raises(api.NoSuchPath, match="'sub-09' is not in this version"):
            m.get(mirrored.spec, ["sub-09"], to=tmp_path / "clone")
        assert not (tmp_path / "clone").exists()  # said before anything is cloned
        with pytest.raises(api.NotMirrored, match="dandi:999999 is not in the mirror"):
            m.get("dandi:999999", to=tmp_path / "clone")
        with pytest.raises(api.NoSuchPath, match="no file of .* under sub-09"):
            written(m.urls(mirrored.spec, ["sub-09"]))
        with pytest.raises(api.NoSuchPath, match="a PATH is inside the version"):
            m.urls(mirrored.spec, ["../etc"])
    code, out, err = mirrored.run("urls", mirrored.spec, "sub-09", "--json")
    assert code == 2 and "no file of" in err and json.loads(out) == []


def test_search_writes_the_commands_json(mirrored: Dandiset) -> None:
    with api.open(mirrored.run.root) as m:
        found = m.search(path="sub-0*/*.nwb", source=mirrored.source)
        none = m.search(sha256="0" * 64)
    assert written(found) == mirrored.run.ok("search", "--path", "sub-0*/*.nwb", "--source", mirrored.source, "--json")
    assert sorted(r["path"] for r in found.rows) == sorted(mirrored.files) and len(list(found.items())) == 2
    assert none.rows == [] and none.ok  # nothing matched: no item failed (the command exits 1, like grep)
    with api.open(mirrored.run.root) as m:
        with pytest.raises(api.BadInput, match="^sha256 wants 64 hex digits"):
            m.search(sha256="abc")
        with pytest.raises(api.BadInput, match="NWB field 'brain_region'"):
            m.search(nwb_fields={"brain_region": "CA1"})
    code, _, err = mirrored.run("search", "--date-from", "May")
    assert code == 2 and "--date-from wants YYYY" in err  # the command names its flag


def test_a_bad_region_is_bad_input(mirrored: Dandiset, tmp_path: Path) -> None:
    with api.open(mirrored.run.root) as m:
        for region, says in (("0:8,0:8", "give X0:X1,Y0:Y1,Z0:Z1"), ("8:8,0:8,0:2", "x 8:8 is empty")):
            with pytest.raises(api.BadInput, match=says) as caught:
                m.get(mirrored.spec, to=tmp_path / "r.tif", region=region, format="tiff")
            assert "--" not in str(caught.value), caught.value
        with pytest.raises(api.BadInput, match=r"in a format \(tiff\), which needs a region"):
            m.get(mirrored.spec, to=tmp_path / "r.tif", channel="image8")
    assert not (tmp_path / "r.tif").exists()


def test_references_and_nwb_fields_write_the_commands_json(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from helpers import lindi_env, nwb

    d = lindi_env.synced_timeseries(dandi_archive, tmp_path / "mirror", 950, "api getting references")
    view = "http://127.0.0.1:9/"
    with api.open(d.run.root) as m:
        refs = m.urls(d.spec, references=True, view=view)
        found = m.search(nwb_fields=["session_id=ses-1"], source=d.source)
    assert written(refs) == d.run.ok("urls", d.spec, "--references", "--view", view, "--json")
    assert [r["path"] for r in refs.rows] == [nwb.TIMESERIES] and refs.summary() == ["1 LINDI reference(s)"]
    assert written(found) == d.run.ok("search", "--nwb-field", "session_id=ses-1", "--source", d.source, "--json")
    assert [r["path"] for r in found.rows] == [nwb.TIMESERIES]


def test_a_region_as_tiff_writes_the_commands_json(hermetic, boss, tmp_path: Path) -> None:  # noqa: ANN001
    from helpers.boss import CHUNK_ARG, SPEC, Runner

    cli = Runner(tmp_path / "mirror", boss.url)
    assert cli("sync", SPEC, "--chunk", CHUNK_ARG)[0] == 0
    out = tmp_path / "region.tif"
    how = {"region": "5:70,10:90,3:17", "channel": "image16", "format": "tiff"}
    with api.open(cli.root) as m:
        made = m.get(SPEC, to=out, **how)
    assert made.ok and made.to_json()["shape_zyx"] == [14, 80, 65]
    mine = written(made)
    out.unlink()
    code, printed, err = cli("get", SPEC, "--region", how["region"], "--channel", "image16", "--format", "tiff",
                             "--to", str(out), "--json")  # fmt: skip
    assert code == 0 and printed == mine, err
