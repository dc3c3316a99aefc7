"""A name on every request: ``User-Agent: neuromirror/VERSION (+CONTACT)`` on each request to an archive.

Each archive's stand-in sits behind :class:`~neuromirror.standins.network.ShapingProxy`, whose log
records every request's User-Agent as it arrived: the DANDI API and its S3 (a dandiset's sync, then
``neuromirror get`` of a file, which git-annex downloads from S3), AIND's bucket, a BOSS experiment.
The contact comes from a mirror definition's ``contact:`` or from ``NEUROMIRROR_CONTACT``.
"""

from __future__ import annotations

import json
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
