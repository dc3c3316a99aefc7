"""Credentials stay with their data: kept BOSS chunks do not reach a public RIA store unless asked.

Why: every BOSS read needs an account there, yet ``sync --store`` keeps its chunks like any other
content (a backup must not depend on who may read the archive).  A RIA store is served to anyone:
publishing the kept chunks into it would hand the bytes to readers without the token.  So
``publish --to ria+file://...`` puts the dataset in (keys, chunk URLs, metadata) but not its kept
objects, and says so; ``--include-embargoed`` (``include_embargoed: true`` in a mirror definition)
carries them.  The service's publish step records what stayed out, and the source's status page
shows it.  Real BOSS stand-in, real store, real RIA store on disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import git
from helpers.boss import CHUNK_ARG, SPEC, Runner
from neuromirror.standins.boss.server import BossStandIn

pytestmark = pytest.mark.usefixtures("hermetic")  # every test: an empty HOME, the stand-in's token


def ria_objects(ria: Path) -> set[str]:
    return {p.name for p in ria.glob("*/*/annex/objects/*/*/*/*") if p.is_file()}


def test_kept_boss_chunks_stay_out_of_a_public_store_unless_asked(boss: BossStandIn, tmp_path: Path) -> None:  # noqa: F811
    store, ria = tmp_path / "keep", tmp_path / "ria"
    cli = Runner(tmp_path / "mirror", boss.url)
    cli.ok("sync", SPEC, "--chunk", CHUNK_ARG, "--store", str(store))
    kept = {p.name for p in store.rglob("SHA256E-*") if p.is_file()}
    assert kept

    out = cli.ok("publish", SPEC, "--to", f"ria+file://{ria}", "--json")
    rep = json.loads(out)
    assert [p["source"] for p in rep["published"]] == [SPEC] and rep["held_back"] == []
    (held,) = rep["content_held_back"]
    assert held["source"] == SPEC and f"{len(kept)} kept object(s) not put in the store" in held["why"]
    assert "the BOSS needs an account to read" in held["why"] and "--include-embargoed" in held["why"]
    assert rep["published"][0]["kept_objects"] == 0 and rep["published"][0]["kept_held_back"] == len(kept)
    assert ria_objects(ria) == set()  # the dataset is there, no chunk's bytes
    assert (ria / "alias" / "boss").exists()
    assert "neuromirror-ria" not in git(cli.ds(), "show", "git-annex:remote.log")  # no ORA claims the chunks
    out = cli.ok("publish", SPEC, "--to", f"ria+file://{ria}")
    assert f"{SPEC}: kept content held back, {len(kept)} kept object(s)" in out

    # asked for: the kept chunks go in, and the ORA remote is recorded as holding them
    rep = json.loads(cli.ok("publish", SPEC, "--to", f"ria+file://{ria}", "--include-embargoed", "--json"))
    assert rep["content_held_back"] == [] and rep["published"][0]["kept_objects"] == len(kept)
    assert ria_objects(ria) == kept


def test_the_service_says_what_was_held_back(boss: BossStandIn, tmp_path: Path) -> None:  # noqa: F811
    from neuromirror.api import Mirror
    from neuromirror.config.model import SourceConfig
    from neuromirror.config.schedule import Schedule
    from neuromirror.service.pages import publish_rows
    from neuromirror.service.publishing import publish_after_sync, publish_facts
    from neuromirror.service.state import SourceRuntime

    store, ria = tmp_path / "keep", tmp_path / "ria"
    cli = Runner(tmp_path / "mirror", boss.url)
    cli.ok("sync", SPEC, "--chunk", CHUNK_ARG, "--store", str(store))
    mirror = Mirror(cli.root)
    try:
        source = SimpleNamespace(id=SPEC, relpath=mirror.dataset_of(SPEC))
        for include, expect_held in ((False, True), (True, False)):
            entry = SourceConfig(
                SPEC, Schedule(interval=3600), publish={"to": f"ria+file://{ria}", "include_embargoed": include}
            )
            rt = SourceRuntime(SPEC, SPEC)
            publish_after_sync(mirror, entry, source, SimpleNamespace(outcome="ok"), rt)  # type: ignore[arg-type]
            assert rt.publish_error is None
            facts = publish_facts(mirror.records, SPEC)[SPEC]
            assert facts["outcome"] == "ok"
            rows = dict(publish_rows(facts))
            if expect_held:
                assert "the BOSS needs an account to read" in rows["kept content held back"]
                assert ria_objects(ria) == set()
            else:
                assert "kept content held back" not in rows and ria_objects(ria)
    finally:
        mirror.close()
