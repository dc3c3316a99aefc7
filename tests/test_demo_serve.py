"""``neuromirror demo --serve`` as a newcomer runs it: a real process, its printed lines pasted into a shell.

The demo is started once for the module (a subprocess, as a user starts it); each test waits for
its ready lines (a state: the line that says it serves), runs what it printed, or reads the view
with real clients (webdav4 for dates, requests for headers), and the last one stops it with
Ctrl-C (SIGINT) and checks it ends cleanly.  The README's DataLad lines run against its mirror too.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional

import pytest

from neuromirror.demo.serve import NWB_PATH, READY, SERVING, ZARR_PATH, zarr_files
from neuromirror.read.references.lindi_env import overlay

REPO = Path(__file__).resolve().parent.parent
#: the dates the demo gives its dandisets upstream (neuromirror.demo.build_sample_dandiset, demo.serve.build)
PUBLISHED = datetime(2024, 3, 2, 12, 0, tzinfo=timezone.utc)
ZARR_CREATED = datetime(2024, 4, 1, 12, 0, tzinfo=timezone.utc)
#: a stand-in archive on loopback: git-annex may fetch from it in the clones made here
LOOPBACK_ENV = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "annex.security.allowed-ip-addresses",
    "GIT_CONFIG_VALUE_0": "127.0.0.1",
}


@dataclass
class Demo:
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith(SERVING):
                self.ready.set()
        self.ended.set()
        self.ready.set()  # ended before it was ready: the test says so

    def printed(self) -> list[str]:
        """The lines between the ready line and the serving line."""
        return self.lines[self.lines.index(READY) + 1 : self.lines.index(SERVING)]

    def value(self, prefix: str) -> str:
        return next(x[len(prefix) :].strip() for x in self.printed() if x.startswith(prefix))

    @property
    def mirror(self) -> Path:
        return Path(self.value("mirror:"))

    @property
    def view(self) -> str:
        return self.value("view:")

    @property
    def dandi_api(self) -> str:
        m = next(re.search(r"DANDI API (\S+),", x) for x in self.lines if "DANDI API" in x)
        assert m is not None
        return m.group(1)

    def commands(self) -> list[str]:
        return [x for x in self.printed() if x and not x.startswith(("#", "mirror:", "view:"))]

    def command(self, pattern: str) -> list[str]:
        found = [c for c in self.commands() if re.search(pattern, c)]
        assert found, f"no printed line matches {pattern!r}: {self.commands()}"
        return found


def shell(cmd: str, cwd: Optional[Path] = None, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """One line as a user pastes it into bash."""
    return subprocess.run(
        ["bash", "-c", cmd], cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


def fresh_shell(cmd: str, home: Path, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """One line pasted into bash on a fresh machine: HOME an empty directory (no ~/.gitconfig), no git
    identity or config in the environment, and PATH without the venv's bin (no git-annex, datalad or
    neuromirror on it).  ``user.useConfigOnly`` makes git refuse to guess an identity from the host
    name, as it must on a machine whose host name has no domain."""
    home.mkdir(exist_ok=True)
    (home / ".gitconfig").write_text("[user]\n\tuseConfigOnly = true\n")
    venv_bin = os.path.abspath(Path(sys.executable).parent)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_", "DATALAD_")) and k not in ("EMAIL", "XDG_CONFIG_HOME", "VIRTUAL_ENV")
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and os.path.abspath(p) != venv_bin
    )
    env["HOME"] = str(home)
    assert shutil.which("git-annex", path=env["PATH"]) is None, "git-annex outside the venv: not a fresh machine"
    ident = subprocess.run(["git", "var", "GIT_COMMITTER_IDENT"], env=env, capture_output=True, cwd=home)
    assert ident.returncode != 0, "a git identity is set: not a fresh machine"
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    cwd = tmp_path_factory.mktemp("demo-cwd")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "neuromirror", "demo", "--serve"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    d = Demo(proc)
    threading.Thread(target=d.read, daemon=True).start()
    d.ready.wait(600)  # a state: the line that says it serves (or its end)
    assert not d.ended.is_set() and SERVING in d.lines, "\n".join(d.lines[-40:])
    yield d
    if proc.poll() is None:  # test_ctrl_c_stops_it_cleanly did not run
        proc.kill()
        proc.wait()


def test_every_printed_line_runs(demo: Demo, tmp_path: Path) -> None:
    """Each printed line in a shell of a fresh machine (:func:`fresh_shell`): before, the DataLad line
    found no git-annex and could not ``git annex init`` without an identity, and a ``get -r`` of a
    Zarr's subdataset was refused the loopback archive's address."""
    assert demo.mirror.is_dir() and demo.view.startswith("http://127.0.0.1:")
    commit = re.search(r"earlier one \(([0-9a-f]{12})\)", "\n".join(demo.printed()))
    assert commit is not None
    first = commit.group(1)
    checks = {
        r" urls dandi:": lambda out: f"{NWB_PATH}\thttp://127.0.0.1:" in out,
        r" versions dandi:": lambda out: (
            bool(re.search(rf"^draft +{first} +draft ", out, re.M))
            and len(re.findall(r"^draft +draft +draft ", out, re.M)) == 1
        ),  # READ_AS tells the two drafts apart
        r"h5py": lambda out: "[0.  0.1 0.2 0.3 0.4]" in out,
        rf"zarr.*@{first}/|zarr.*/{first}/": lambda out: out.startswith("[[ 0  1  2  3  4  5]") and "900" not in out,
        r"zarr.*@draft/": lambda out: out.startswith("[[900 901 902   3   4   5]"),
        r"^curl .*README\.md": lambda out: out.startswith("# Demo dandiset"),
        r"^curl .*format=json": lambda out: f'"name": "{first}"' in out and '"name": "draft"' in out,
        r"datalad.* clone .* get ": lambda out: "get(ok)" in out,
        rf"datalad.* clone .* checkout -q {first} .* get -r {ZARR_PATH}$": lambda out: "install(ok)" in out,
        # the README's restore into the archive's bucket, at the stand-in's S3: it holds every object yet
        r"^NEUROMIRROR_STORE_ENDPOINT=http://127\.0\.0\.1:\d+ .* restore dandi:\d+@\S+ --to s3://dandiarchive --dry-run$": (
            lambda out: bool(
                re.search(
                    r"^restore \(dry run\) into s3://dandiarchive/?: (\d+) objects .*, 0 to write .*, \1 already right",
                    out,
                    re.M,
                )
            )
        ),
    }
    if overlay() is not None:  # issue 60: the NWB file's LINDI reference, made with the overlay scripts/_venv.sh builds
        checks[r"open_hdf5"] = lambda out: out.startswith("reference [0.  0.1 0.2 0.3 0.4]")
        checks[r"^curl .*\.lindi\.json"] = lambda out: out.startswith('{"refs":')
    ran = set()
    for cmd in demo.commands():
        if cmd.startswith("rclone"):
            continue  # test_the_rclone_line
        matching = [p for p in checks if re.search(p, cmd)]
        assert matching, f"a printed line no check knows: {cmd}"
        p = fresh_shell(cmd, tmp_path / "home", cwd=tmp_path)
        out = p.stdout.strip() if "curl" not in cmd else p.stdout
        assert p.returncode == 0, f"{cmd}\n{p.stdout}\n{p.stderr}"
        for pattern in matching:
            assert checks[pattern](out), f"{cmd}\n{out}\n{p.stderr}"
            ran.add(pattern)
    assert ran == set(checks)
    # DataLad: the NWB file the clone got is the one the view and neuromirror:// read
    clone = Path(re.search(r" && cd (\S+) ", demo.command(r"datalad.* clone")[0]).group(1))  # type: ignore[union-attr]
    import requests

    got = hashlib.sha256((clone / NWB_PATH).read_bytes()).hexdigest()
    listing = requests.get(f"{demo.view}dav/dandi/000001/{version_of(demo)}/sub-01/?format=json", timeout=30).json()
    (entry,) = [e for e in listing["entries"] if e["name"] == NWB_PATH.rsplit("/", 1)[1]]
    assert got in entry["key"], (got, entry)
    # the Zarr clone holds the earlier state's every object: the chunk before its rewrite upstream
    line = demo.command(rf"get -r {ZARR_PATH}$")[0]
    zarr_clone = Path(re.search(r" && cd (\S+) ", line).group(1)) / ZARR_PATH  # type: ignore[union-attr]
    assert {p: (zarr_clone / p).read_bytes() for p in zarr_files()} == zarr_files()


def version_of(demo: Demo) -> str:
    m = re.search(r"urls dandi:\d+@(\S+)", "\n".join(demo.commands()))
    assert m is not None
    return m.group(1)


def test_the_rclone_line(demo: Demo, tmp_path: Path) -> None:
    if shutil.which("rclone") is None:
        pytest.skip("rclone is not installed here: its printed line is not run (the other lines are)")
    (cmd,) = demo.command(r"^rclone ")
    p = fresh_shell(cmd, tmp_path / "home")
    assert p.returncode == 0, p.stderr
    assert NWB_PATH in p.stdout and "2024-03-02 12:00:00" in p.stdout, p.stdout
    # rclone copy writes the version's date; check --download compares the bytes (the view has no rclone hash)
    source = cmd.split(" ", 1)[1].replace("lsl ", "", 1)
    p = shell(f"rclone copy {source} {tmp_path / 'copy'}")
    assert p.returncode == 0, p.stderr
    when = datetime.fromtimestamp((tmp_path / "copy" / NWB_PATH).stat().st_mtime, timezone.utc)
    assert when == PUBLISHED
    p = shell(f"rclone check --download {source} {tmp_path / 'copy'}")
    assert p.returncode == 0 and "0 differences found" in p.stderr, p.stderr


def test_webdav_dates(demo: Demo) -> None:
    """getlastmodified on every PROPFIND entry (webdav4), Last-Modified on a file's GET/HEAD."""
    import requests
    from webdav4.client import Client

    version = version_of(demo)
    client = Client(f"{demo.view}dav")
    entries = client.ls(f"dandi/000001/{version}/sub-01", detail=True)
    assert entries and all(e["modified"] == PUBLISHED for e in entries), entries
    for path in ("", "dandi", "dandi/000001", f"dandi/000001/{version}", "dandi/000002"):
        for e in client.ls(path, detail=True):
            assert e["modified"] is not None, (path, e)
    # dandidav's /zarrs/: each object dated by the manifest's lastModified (the chunk rewritten a day later)
    zarrs, path = Client(f"{demo.view}zarrs"), ""
    for _ in range(3):
        path = client_first_dir(zarrs, path)
    states = [e for e in zarrs.ls(path, detail=True) if e["name"].endswith(".zarr")]
    assert len(states) == 2 and all(e["modified"] is not None for e in states), states
    for state in states:
        for inner in ("", "/0", "/0/0"):
            for e in zarrs.ls(state["name"] + inner, detail=True):
                assert e["modified"] is not None and e["modified"].year >= 2024, e  # S3's time, not 1754 or none
    dandisets = Client(f"{demo.view}dandisets")
    for path in ("", "000001", "000001/releases", f"000001/releases/{version}"):
        for e in dandisets.ls(path, detail=True):
            assert e["modified"] is not None, (path, e)
    versions = {e["name"].rsplit("/", 1)[-1]: e["modified"] for e in client.ls("dandi/000001", detail=True)}
    assert versions[version] == PUBLISHED
    # a Zarr dandiset's earlier state, by its commit: the date of that commit (the draft as synced)
    states = {e["name"].rsplit("/", 1)[-1]: e["modified"] for e in client.ls("dandi/000002", detail=True)}
    assert len(states) == 2 and "draft" in states, states
    (first,) = [s for s in states if s != "draft"]
    assert re.fullmatch(r"[0-9a-f]{12}", first)
    assert states[first] == ZARR_CREATED, states
    for method in (requests.head, requests.get):
        r = method(f"{demo.view}dav/dandi/000001/{version}/{NWB_PATH}", allow_redirects=False, timeout=30)
        assert r.status_code == 307, r.text
        assert r.headers["Last-Modified"] == "Sat, 02 Mar 2024 12:00:00 GMT"
    # the ETag is the file's key, which holds its sha256 (what rclone check --download is the way around)
    pinned = requests.get(r.headers["Location"], timeout=30).content
    assert hashlib.sha256(pinned).hexdigest() in r.headers["ETag"]
    listing = requests.get(f"{demo.view}dav/dandi/000001/?format=json", timeout=30).json()["entries"]
    assert {e["name"]: e["modified"] for e in listing}[version] == "2024-03-02T12:00:00Z"
    r = requests.get(f"{demo.view}dav/dandi/000001/{version}/README.md", timeout=30)  # kept in git: streamed
    assert r.status_code == 200 and r.headers["Last-Modified"] == "Sat, 02 Mar 2024 12:00:00 GMT"


def client_first_dir(client: object, path: str) -> str:
    """The first directory under ``path`` (a WebDAV listing of dandidav's /zarrs/ shards)."""
    dirs = [e["name"] for e in client.ls(path, detail=True) if e["type"] == "directory"]  # type: ignore[attr-defined]
    assert dirs, path
    return dirs[0]


def test_an_unknown_id_is_not_listed_and_leaves_no_lock(demo: Demo) -> None:
    import requests

    p = subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(demo.mirror), "sync", "dandi:000999"]
        + ["--dandi-api", demo.dandi_api],
        capture_output=True,
        text=True,
    )
    assert p.returncode != 0 and "000999" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert list((demo.mirror / ".neuromirror" / "locks").glob("*.lock")) == []
    for listing in ("dav/dandi/", "dandisets/"):
        names = [e["name"] for e in requests.get(f"{demo.view}{listing}?format=json", timeout=30).json()["entries"]]
        assert "000001" in names and "000002" in names and "000999" not in names, names
    r = requests.get(f"{demo.view}dav/dandi/000999/draft/", timeout=30)
    assert r.status_code == 404 and "000999" in r.text


def test_view_404s_say_which_part_is_wrong(demo: Demo) -> None:
    """GET and PROPFIND of a path naming nothing: 404, one line of text naming the wrong part."""
    import requests

    version = version_of(demo)
    cases = {
        "dav/nope/": "/dav/nope/: no such archive",
        "dav/dandi/000123/draft/": "dandi:000123 is not mirrored here",
        "dav/dandi/000001/9.9.9/": "dandi:000001 has no version or commit '9.9.9' (known: 0.240302.1200, draft)",
        f"dav/dandi/000001/{version}/sub-09/x.nwb": f"dandi:000001@{version}: no 'sub-09' in the top directory",
        f"dav/dandi/000001/{version}/sub-01/nope.nwb": f"dandi:000001@{version}: no 'nope.nwb' in sub-01",
        f"dav/dandi/000001/{version}/README.md/x": f"dandi:000001@{version}: 'README.md' is a file, not a directory",
        "dandisets/000001/releases/9.9.9/": "dandi:000001 has no version or commit '9.9.9'",
    }
    for path, expected in cases.items():
        for method in ("GET", "PROPFIND"):
            r = requests.request(method, demo.view + path, headers={"Depth": "1"}, timeout=30)
            assert r.status_code == 404, (method, path, r.status_code)
            assert r.headers["Content-Type"].startswith("text/plain"), (method, path, r.headers)
            assert r.text.count("\n") == 1 and r.text.startswith(expected), (method, path, r.text)


def test_the_readme_datalad_lines_run(demo: Demo, tmp_path: Path) -> None:
    """The README's DataLad line, as written, against the demo's mirror (its names swapped for the demo's)."""
    readme = (REPO / "README.md").read_text()
    lines = re.findall(r"`(datalad clone [^`]+)`", readme)
    assert any("/data/mirror/" in x for x in lines) and any("ria+" in x for x in lines), lines
    version = version_of(demo)
    # the RIA store the README's second line clones from: the demo's datasets published as the README says
    ria = f"ria+file://{tmp_path / 'ria'}"
    p = subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(demo.mirror), "publish", "dandi:*", "--to", ria]
        + ["--with-root"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    for i, line in enumerate(lines):
        cmd = line.replace("/data/mirror", str(demo.mirror)).replace("ria+https://data.lab.org/ria", ria)
        cmd = cmd.replace("000027", "000001").replace("0.230629.1955", version)
        where = tmp_path / f"line-{i}"
        where.mkdir()
        p = shell(cmd, cwd=where, env=LOOPBACK_ENV)
        assert p.returncode == 0, f"{cmd}\n{p.stdout}\n{p.stderr}"
        assert (where / "000001" / NWB_PATH).read_bytes()[:8] == b"\x89HDF\r\n\x1a\n", cmd


def test_serve_no_schedule_names_every_route_and_lands_on_them(demo: Demo) -> None:
    """``serve --http ADDR --no-schedule`` on the demo's mirror: its start-up line names every route; ``/`` links them."""
    import requests

    proc = subprocess.Popen(
        [sys.executable, "-m", "neuromirror", "--root", str(demo.mirror), "serve", "--http", "127.0.0.1:0"]
        + ["--no-schedule"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # a state: the start-up line is printed once it listens
        m = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert m is not None, line
        base = m.group(1)
        for route in ("/dav/", "/dandisets/", "/zarrs/", "/zarr-manifests/"):
            assert f"{base}{route}" in line, (route, line)
        r = requests.get(base + "/", timeout=30)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
        for route in ("/dav/", "/dandisets/", "/zarrs/", "/zarr-manifests/"):
            assert f'href="{route}"' in r.text, route
            assert requests.get(base + route, timeout=30).status_code == 200, route
        r = requests.get(base + "/status.json", timeout=30)
        assert r.status_code == 404 and r.text.count("\n") == 1 and "/dav/" in r.text, r.text
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0


def test_ctrl_c_stops_it_cleanly(demo: Demo) -> None:
    demo.proc.send_signal(signal.SIGINT)
    assert demo.proc.wait(120) == 0, "\n".join(demo.lines[-20:])
    demo.ended.wait(30)
    assert demo.lines[-1].startswith("== stopped"), demo.lines[-5:]
    assert not any("Traceback" in x for x in demo.lines)
    assert not demo.mirror.exists()  # a temporary mirror: removed
