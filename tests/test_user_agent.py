"""A name on every request: ``User-Agent: neuromirror/VERSION (+CONTACT)`` on each request to an archive.

Each archive's stand-in sits behind :class:`~neuromirror.standins.network.ShapingProxy`, whose log
records every request's User-Agent as it arrived: the DANDI API and its S3 (a dandiset's sync, then
``neuromirror get`` of a file, which git-annex downloads from S3), AIND's bucket, a BOSS experiment.
The contact comes from a mirror definition's ``contact:`` or from ``NEUROMIRROR_CONTACT``.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from typing import Iterator

import pytest

from helpers.keep import T0
from helpers.retrieve import Runner
from neuromirror.demo import deterministic_bytes
from neuromirror.network import pacing
from neuromirror.network.identity import CONTACT_ENV, user_agent
from neuromirror.standins.network import ShapingProxy

CONTACT = "mirror-admin@lab.example.org"
BUCKET = "ua-dandiarchive"


def expected(contact: str = CONTACT) -> str:
    from neuromirror import __version__

    return f"neuromirror/{__version__} (+{contact})"


class World:
    def __init__(self, s3, api_proxy: ShapingProxy, s3_proxy: ShapingProxy, archive) -> None:  # noqa: ANN001
        self.s3, self.api_proxy, self.s3_proxy, self.archive = s3, api_proxy, s3_proxy, archive

    @property
    def api_url(self) -> str:
        return self.api_proxy.url + "/api"

    def records(self) -> list:
        return list(self.api_proxy.log) + list(self.s3_proxy.log)

    def reset(self) -> None:
        self.api_proxy.reset_stats()
        self.s3_proxy.reset_stats()


@pytest.fixture(scope="module")
def world(s3) -> Iterator[World]:  # noqa: ANN001
    from neuromirror.standins.dandi.server import DandiStandIn

    with ShapingProxy(s3.endpoint_url) as s3_proxy:
        with DandiStandIn(s3.through(s3_proxy.url), bucket=BUCKET) as archive:
            with ShapingProxy(f"http://{archive.host}:{archive.port}") as api_proxy:
                yield World(s3, api_proxy, s3_proxy, archive)


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONTACT_ENV, raising=False)  # restored after each test: a contact: set it in-process
    pacing.forget()


def assert_named(records: list, contact: str = CONTACT) -> None:
    assert records, "no request reached the archive"
    named = expected(contact)
    stray = [(r.method, r.target, r.user_agent) for r in records if not (r.user_agent or "").startswith(named)]
    assert not stray, f"{len(stray)} of {len(records)} requests without {named!r}: {stray[:5]}"


def test_a_dandi_sync_from_a_definition_and_a_get_name_the_mirror_and_its_contact(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    when = T0
    ident = world.archive.create_dandiset(name="named requests", created=when)
    files = {f"sub-{i:02d}/f{i}.nwb": deterministic_bytes(f"{ident}:ua:{i}", 2000 + i) for i in range(6)}
    files["README.md"] = b"# named\n"
    for path, data in files.items():
        world.archive.put_asset(ident, path, data, when=when)
    config = tmp_path / "mirror.yaml"
    config.write_text(
        f"contact: {CONTACT}\n"
        "defaults: {schedule: {interval: 6h}, options: {dandi_api: '%s'}}\n"
        f"sources:\n  - spec: 'dandi:{ident}'\n" % world.api_url
    )
    run = Runner(tmp_path / "mirror")
    world.reset()
    code, out, err = run("sync", "--config", str(config), "--json")
    assert code == 0, err
    api, s3 = list(world.api_proxy.log), list(world.s3_proxy.log)
    assert api and s3  # the API's pages and the pins' HEADs
    assert_named(api + s3)

    # a get in a fresh clone: git-annex downloads from the archive (its download URL) under the same name
    monkeypatch.setenv(CONTACT_ENV, "lab-get@example.org")
    world.reset()
    dest = tmp_path / "got"
    code, out, err = run("get", f"dandi:{ident}@draft", "sub-01", "--to", str(dest), "--allow-ip", "all")
    assert code == 0, err
    assert (dest / "sub-01" / "f1.nwb").read_bytes() == files["sub-01/f1.nwb"]
    gets = [r for r in world.records() if r.method == "GET"]
    assert gets, "git-annex fetched nothing from the archive"
    assert_named(world.records(), "lab-get@example.org")


def test_an_aind_sync_names_the_mirror_on_every_listing_head_and_read(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = "ua-aind-open-data"
    world.s3.create_bucket(bucket, versioned=True, public=True)
    asset = "ecephys_700002_2024-01-02_03-04-05"
    world.s3.put(bucket, f"{asset}/data_description.json", json.dumps({"name": asset, "subject_id": "700002"}).encode())
    for i in range(5):
        world.s3.put(bucket, f"{asset}/ecephys/part{i:02d}.bin", deterministic_bytes(f"ua-aind:{i}", 100 + i))
    monkeypatch.setenv(CONTACT_ENV, CONTACT)
    world.reset()
    run = Runner(tmp_path / "mirror")
    code, out, err = run("sync", f"aind:{asset}", "--bucket", bucket, "--s3-endpoint", world.s3_proxy.url, "-J1")
    assert code == 0, err
    assert_named(list(world.s3_proxy.log))


def test_a_boss_sync_names_the_mirror_on_every_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers.boss import SPEC, TOKEN, _base_env
    from helpers.boss import Runner as BossRunner
    from neuromirror.standins.boss.tiny import tiny_sample

    for k, v in _base_env(tmp_path / "home").items():
        monkeypatch.setenv(k, v)
    for k in ("INTERN_HOST", "INTERN_PROTOCOL", "NEUROMIRROR_BOSS_URL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("INTERN_TOKEN", TOKEN)
    monkeypatch.setenv(CONTACT_ENV, CONTACT)
    with tiny_sample(token=TOKEN) as boss, ShapingProxy(boss.url) as proxy:
        run = BossRunner(tmp_path / "mirror", proxy.url)
        run.ok("sync", SPEC)
        assert any("/cutout/" in r.target for r in proxy.log)
        assert_named(list(proxy.log))
        assert TOKEN not in user_agent()


def test_check_config_warns_once_without_a_contact_and_not_with_one(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from neuromirror.cli import main

    body = "defaults: {schedule: {interval: 6h}}\nsources:\n  - spec: 'dandi:000027'\n"
    bare, named = tmp_path / "bare.yaml", tmp_path / "named.yaml"
    bare.write_text(body)
    named.write_text(f"contact: {CONTACT}\n" + body)
    assert main(["check-config", str(bare)]) == 0
    err = capsys.readouterr().err
    assert len([ln for ln in err.splitlines() if "contact" in ln]) == 1, err
    assert main(["check-config", str(named)]) == 0
    assert "contact" not in capsys.readouterr().err


# -- every client of the house is named in one place (network/identity.py) -----------------------------------

SRC = Path(__file__).resolve().parent.parent / "src" / "neuromirror"
#: the one place clients are made (network/), and what is no client of the house: the stand-in archives (servers of
#: their own) and the benchmark's readers (a user's clients of the view, timed)
OUTSIDE = ("network/", "standins/", "bench/")
#: calls that make an HTTP client or send a request, by their full dotted name
UNNAMED = {
    *(f"requests.{f}" for f in ("Session", "session", "get", "head", "post", "put", "patch", "delete", "request")),
    "urllib.request.urlopen",
    *(f"urllib3.{f}" for f in ("PoolManager", "ProxyManager", "connection_from_url", "request", "HTTPConnectionPool")),
    "http.client.HTTPConnection",
    "http.client.HTTPSConnection",
    "aiohttp.ClientSession",
    "botocore.config.Config",
    "boto3.client",
    "boto3.resource",
    "fsspec.implementations.http.HTTPFileSystem",
}


def _aliases(tree) -> dict[str, str]:  # noqa: ANN001
    """Every name a module binds by an import (at any depth) -> what it names."""
    import ast

    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out[(a.asname or a.name).split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _dotted(func, aliases: dict[str, str]) -> str:  # noqa: ANN001
    import ast

    parts = []
    while isinstance(func, (ast.Attribute, ast.Call)):  # ``boto3.session.Session().client``: through the call
        if isinstance(func, ast.Attribute):
            parts.append(func.attr)
        func = func.value if isinstance(func, ast.Attribute) else func.func
    if not isinstance(func, ast.Name):
        return ""
    return ".".join([aliases.get(func.id, func.id), *reversed(parts)])


def unnamed_clients(src: Path = SRC) -> list[str]:
    """``file:line call`` of every HTTP client made, or request sent, outside the one place: a constructor or
    request function of requests, urllib, urllib3, http.client, aiohttp, httpx, botocore/boto3, fsspec's HTTP; an S3
    client made without ``config=`` (whose User-Agent is then botocore's)."""
    import ast

    found: list[tuple[str, int, str]] = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        if rel.startswith(OUTSIDE):
            continue
        tree = ast.parse(path.read_text(), rel)
        aliases = _aliases(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _dotted(node.func, aliases)
            first = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            bad = name in UNNAMED or name.startswith("httpx.")
            bad |= name == "fsspec.filesystem" and first in ("http", "https")
            bad |= (
                name.endswith((".client", ".resource"))
                and first == "s3"
                and not any(k.arg == "config" for k in node.keywords)
            )
            if bad:
                found.append((rel, node.lineno, name))
    return [f"{rel}:{line} {name}" for rel, line, name in sorted(found)]


def test_no_http_client_is_made_outside_the_one_place(tmp_path: Path) -> None:
    """A static scan: every client of the house comes from network/identity.py (or network/'s pools), which names it.
    The scan itself is checked on a module that makes each kind of unnamed client."""
    assert unnamed_clients() == []
    pkg = tmp_path / "neuromirror" / "read"
    pkg.mkdir(parents=True)
    (pkg / "bad.py").write_text(
        "import requests\nimport urllib.request\nfrom requests import Session as S\nimport boto3\nimport fsspec\n"
        "from botocore.config import Config\n"
        "def f(u):\n    requests.get(u)\n    S()\n    urllib.request.urlopen(u)\n"
        "    boto3.session.Session().client('s3')\n    fsspec.filesystem('http')\n    Config()\n"
        "    requests.Session().get(u)\n"
    )
    (tmp_path / "neuromirror" / "network").mkdir()
    (tmp_path / "neuromirror" / "network" / "identity.py").write_text("import requests\nrequests.Session()\n")
    got = unnamed_clients(tmp_path / "neuromirror")
    assert [g.split(" ", 1)[1] for g in got] == [
        "requests.get",
        "requests.Session",
        "urllib.request.urlopen",
        "boto3.session.Session.client",
        "fsspec.filesystem",
        "botocore.config.Config",
        "requests.Session",
    ], got


def test_verify_content_urls_check_keep_and_the_view_name_the_mirror(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request that ``verify --content``, ``urls --check``, ``keep`` and the view (its check of an archive URL
    before a redirect) send to the archive carries the name, as the counting proxy saw it arrive."""
    import subprocess
    import sys

    import requests

    ident = world.archive.create_dandiset(name="named checks", created=T0)
    files = {f"sub-01/f{i}.nwb": deterministic_bytes(f"{ident}:ua-checks:{i}", 1500 + i) for i in range(4)}
    for path, data in files.items():
        world.archive.put_asset(ident, path, data, when=T0)
    monkeypatch.setenv(CONTACT_ENV, CONTACT)
    run = Runner(tmp_path / "mirror")
    spec = f"dandi:{ident}"
    code, out, err = run("sync", spec, "--dandi-api", world.api_url)
    assert code == 0, err

    for args in (
        ("verify", "--content", spec),
        ("urls", f"{spec}@draft", "--check"),
        ("keep", f"{spec}@draft", "--to", str(tmp_path / "store")),
    ):
        world.reset()
        code, out, err = run(*args)
        assert code == 0, (args, out, err)
        assert world.s3_proxy.log, f"{args}: no request reached the archive"
        assert_named(world.records())

    world.reset()
    env = {**os.environ, CONTACT_ENV: CONTACT, "NEUROMIRROR_VIEW_RECHECK": "0"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neuromirror",
            "--root",
            str(run.root),
            "serve",
            "--http",
            "127.0.0.1:0",
            "--no-schedule",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        base = re.search(r"(http://127\.0\.0\.1:\d+)/", proc.stderr.readline())
        assert base is not None
        for path in files:
            r = requests.get(f"{base.group(1)}/dav/dandi/{ident}/draft/{path}", allow_redirects=False, timeout=60)
            assert r.status_code == 307, (r.status_code, r.text)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    heads = [r for r in world.s3_proxy.log if r.method == "HEAD"]
    assert len(heads) >= len(files), "the view did not ask the archive before its redirects"
    assert_named(world.records())


def test_the_service_names_the_mirror_on_every_request(world: World, tmp_path: Path) -> None:
    """``serve --config`` (the scheduled service, its own process): its syncs' every request carries the name and
    the definition's contact."""
    from helpers.service import runs, serve, wait_for

    ident = world.archive.create_dandiset(name="named service", created=T0)
    for i in range(3):
        world.archive.put_asset(ident, f"sub-01/s{i}.nwb", deterministic_bytes(f"{ident}:ua-service:{i}", 900 + i))
    config = tmp_path / "mirror.yaml"
    config.write_text(
        f"contact: {CONTACT}\n"
        "defaults: {schedule: {interval: 1h}, options: {dandi_api: '%s'}}\n"
        f"sources:\n  - spec: 'dandi:{ident}'\n" % world.api_url
    )
    root = tmp_path / "mirror"
    world.reset()
    with serve(root, config) as svc:
        wait_for(lambda: [r for r in runs(root, f"dandi:{ident}") if r["ended"]], 120, "the service's first run", svc)
        assert svc.stop() == 0
    (run,) = runs(root, f"dandi:{ident}")
    assert run["outcome"] == "ok" and run["trigger"] == "service", run
    assert world.api_proxy.log and world.s3_proxy.log
    assert_named(world.records())
