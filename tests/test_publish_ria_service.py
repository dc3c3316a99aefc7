"""``neuromirror serve`` publishing into a RIA store after each sync, and saying where to clone from.

Why: a lab runs the service and points its members at one URL; the store must follow the archive
on its own (a new file in a dandiset reaches the store after the next sync, with no one running
``publish``), the status page must say what to type (``datalad clone 'ria+http://...#~dandi/N'``)
and what was held back (an embargoed dandiset) and why.  The service runs as a subprocess
(tests/test_service.py's ``serve``), the store is served by ``python -m http.server`` in a process
of its own, and a stranger clones it with DataLad alone.
"""

from __future__ import annotations

import html
import json
import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from helpers.publish_ria import Served, sh
from neuromirror.demo import deterministic_bytes

KEY = "nmsvckey" + uuid.uuid4().hex  # the DANDI API key the service syncs the embargoed dandiset with


@pytest.fixture(scope="module")
def archive(s3) -> Iterator[object]:  # noqa: ANN001
    from neuromirror.standins.dandi.server import DandiStandIn

    with DandiStandIn(s3, bucket=f"nm-riasvc-{uuid.uuid4().hex[:8]}", api_token=KEY) as a:
        yield a


def test_service_publishes_into_the_ria_store_after_each_sync(
    archive,
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # noqa: ANN001
    from helpers.service import ENV, get, serve, wait_for
    from neuromirror.publish.ria.layout import read_refs

    a = archive.create_dandiset(name="open")  # type: ignore[attr-defined]
    first = deterministic_bytes(a + "1", 12_000)
    archive.put_asset(a, "sub-01/one.nwb", first)  # type: ignore[attr-defined]
    archive.publish(a)  # type: ignore[attr-defined]
    h = archive.create_dandiset(name="embargoed", embargoed=True)  # type: ignore[attr-defined]
    archive.put_asset(h, "secret.nwb", b"embargoed bytes" * 100)  # type: ignore[attr-defined]
    root, store = tmp_path / "mirror", served.store
    cfg = tmp_path / "m.yaml"
    cfg.write_text(
        "defaults:\n"
        "  schedule: {interval: 2s}\n"
        f'  options: {{dandi_api: "{archive.api_url}"}}\n'  # type: ignore[attr-defined]
        f'  publish: {{to: "ria+file://{store}", public_url: "{served.url}"}}\n'
        "sources:\n"
        f'  - spec: "dandi:{a}"\n'
        f'  - spec: "dandi:{h}"\n'
    )
    monkeypatch.setitem(ENV, "DANDI_API_KEY", KEY)
    clone_url = f"ria+{served.url}#~dandi/{a}"

    def publish_of(sid: str, svc: object) -> dict:
        rows = json.loads(get(svc.url("status.json"))[2])["sources"]  # type: ignore[attr-defined]
        return next((r.get("publish") or {} for r in rows if r["source"] == sid), {})

    def store_head() -> str | None:
        d = store / "alias" / "dandi" / a
        return read_refs(d.resolve()).get("refs/heads/master") if d.exists() else None

    def mirror_head() -> str:
        return sh(root / "dandi" / a, "git", "rev-parse", "HEAD").strip()

    with serve(root, cfg) as svc:
        done = wait_for(lambda: publish_of(f"dandi:{a}", svc).get("outcome") == "ok", 120, "a publish", svc)
        held = wait_for(lambda: publish_of(f"dandi:{h}", svc).get("outcome") == "held back", 120, "a hold", svc)
        assert done and held
        pub, hold = publish_of(f"dandi:{a}", svc), publish_of(f"dandi:{h}", svc)
        assert pub["clone_url"] == clone_url and pub["clone"] == f"datalad clone '{clone_url}'"
        assert pub["to"] == f"ria+file://{store}" and "embargoed (EMBARGOED)" in hold["why"]
        assert store_head() == mirror_head()
        # the pages: the clone command on the source page and the overview; the hold and why
        page = get(svc.url(f"source/dandi:{a}"))[2]
        assert f"<dt>clone</dt><dd><code>{html.escape(pub['clone'])}</code></dd>" in page
        assert html.escape(pub["clone"]) in get(svc.url(""))[2]
        page = get(svc.url(f"source/dandi:{h}"))[2]
        assert "<dt>held back</dt>" in page and html.escape(hold["why"]) in page and "<dt>clone</dt>" not in page

        # a stranger clones over HTTP: the archive's bytes
        one = tmp_path / "one"
        sh(tmp_path, "datalad", "clone", clone_url, str(one))
        sh(one, "datalad", "get", ".")
        assert (one / "sub-01/one.nwb").read_bytes() == first
        assert not (store / "alias" / "dandi" / h).exists()

        # the archive changes: the next sync publishes it, unasked
        second = deterministic_bytes(a + "2", 9_000)
        archive.put_asset(a, "sub-02/two.nwb", second)  # type: ignore[attr-defined]
        wait_for(
            lambda: (root / "dandi" / a / "sub-02/two.nwb").is_symlink() and store_head() == mirror_head(),
            120,
            "the change synced and published",
            svc,
        )
        # the embargo lifted: the next sync publishes the dandiset that was held back
        archive.set_embargoed(h, False)  # type: ignore[attr-defined]
        wait_for(lambda: publish_of(f"dandi:{h}", svc).get("outcome") == "ok", 120, "the lifted one published", svc)
        assert publish_of(f"dandi:{h}", svc)["clone_url"] == f"ria+{served.url}#~dandi/{h}"

    two = tmp_path / "two"
    sh(tmp_path, "datalad", "clone", clone_url, str(two))
    sh(two, "datalad", "get", ".")
    assert (two / "sub-02/two.nwb").read_bytes() == second and (two / "sub-01/one.nwb").read_bytes() == first
    lifted = tmp_path / "lifted"
    sh(tmp_path, "datalad", "clone", f"ria+{served.url}#~dandi/{h}", str(lifted))
    sh(lifted, "datalad", "get", ".")
    assert (lifted / "secret.nwb").read_bytes() == b"embargoed bytes" * 100
    # the key the service synced with reached neither the store nor the service's log
    assert KEY not in svc.stderr
    for dirpath, _, names in os.walk(store):
        for n in names:
            p = Path(dirpath) / n
            assert not (p.is_file() and KEY.encode() in p.read_bytes()), p


@pytest.mark.parametrize(
    "publish, error",
    [
        ("{to: 'ria+ssh://host/srv/ria'}", "publish.to: ria+ssh://host/srv/ria: the service publishes into a RIA"),
        ("{to: 'ria+file:///srv/ria', public_url: 'https://u:p@host/ria'}", "publish.public_url: expected the URL"),
        ("{to: 'ria+file:///srv/ria', include_embargoed: 'yes'}", "publish.include_embargoed: expected true or false"),
    ],
)
def test_a_bad_ria_publish_target_is_refused_at_load(tmp_path: Path, publish: str, error: str) -> None:
    from neuromirror.config.load import load_config
    from neuromirror.config.reader import ConfigError

    f = tmp_path / "m.yaml"
    f.write_text(f"defaults: {{schedule: 1h}}\nsources:\n  - {{spec: 'dandi:000001', publish: {publish}}}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    assert error in str(exc.value), str(exc.value)
    f.write_text("defaults: {schedule: 1h}\nsources:\n  - {spec: 'dandi:000001', publish: 'ria+file:///srv/ria'}\n")
    assert load_config(f).sources[0].publish == {"to": "ria+file:///srv/ria"}
