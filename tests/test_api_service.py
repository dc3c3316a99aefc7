"""The service stands on the API (issue 58): its keep is ``api.Mirror.keep``, its view app is ``api.Mirror.view()``.

A dandiset of the DANDI stand-in (a published version) is kept by one cycle of the real service (its scheduler
object, :meth:`Service.run_cycle`) into a directory store.  The same call through the API, on the same state, then
finds everything there: its record, made the way the service makes its own, names the same versions, files, bytes
and copies, and copies nothing.  The view the API hands out, mounted in a standard-library WSGI server on
loopback, answers a pinned file's path with the redirect to exactly its bytes, which requests follows.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Iterator
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import requests

from helpers.keep import T0, keep_config, store_keys
from helpers.service import runs
from neuromirror.demo import deterministic_bytes

A = deterministic_bytes("api-service:a", 5000)
B = deterministic_bytes("api-service:b", 3000)


class Kept:
    """A dandiset kept by one service cycle: its id, the root, the store and the cycle's keep record."""

    def __init__(self, sid: str, root: Path, store: Path, record: dict) -> None:
        self.sid, self.root, self.store, self.record = sid, root, store, record


@pytest.fixture(scope="module")
def kept(dandi_archive, tmp_path_factory: pytest.TempPathFactory) -> Kept:  # noqa: ANN001
    from neuromirror.config.load import load_config
    from neuromirror.service.scheduler import Service

    when = T0 + timedelta(days=5000 + len(dandi_archive.dandiset_ids()))
    ident = dandi_archive.create_dandiset(name="the service on the API", created=when)
    dandi_archive.put_asset(ident, "sub-01/a.nwb", A, when=when)
    dandi_archive.put_asset(ident, "sub-02/b.nwb", B, when=when)
    dandi_archive.publish(ident, when=when + timedelta(hours=1))
    sid, tmp = f"dandi:{ident}", tmp_path_factory.mktemp("api-service")
    store, root = tmp / "store", tmp / "root"
    config = load_config(keep_config(tmp / "m.yaml", dandi_archive.api_url, sid, f'store: "{store}"\n'))
    config.apply_network()
    Service(config, root).run_cycle(sid)
    records = [json.loads(r["report"] or "{}").get("keep") for r in runs(root, sid)]
    (record,) = [r for r in records if r]
    return Kept(sid, root, store, record)


def test_the_service_keep_is_the_api_keep(kept: Kept) -> None:
    """The cycle's keep record against ``Mirror.keep`` of the same policy on the same state: same versions,
    files, bytes, copies; the API call finds every file there (the service kept them through it)."""
    from neuromirror import api
    from neuromirror.service.keeping import keep_record, policy_specs, policy_versions
    from neuromirror.store.location import open_store

    record = kept.record
    assert record["outcome"] == "ok" and record["policy"] == "published"
    assert record["files"] == 2 and record["bytes"] == len(A) + len(B) and len(store_keys(kept.store)) == 2
    with api.open(kept.root) as m:
        from neuromirror.config.model import KeepPolicy

        policy = KeepPolicy(versions="published")
        targets = policy_versions(m, kept.sid, policy)
        assert [f"{t.source}@{t.label}" for t in targets] == record["versions"]
        stores = [open_store(str(kept.store))]
        result = m.keep(policy_specs(kept.sid, targets, policy), stores)
        again = keep_record(result, stores, [], policy.versions)
        as_json = result.to_json()
    assert result.ok and again["outcome"] == "ok"
    for field in ("versions", "files", "bytes", "skipped", "failed"):
        assert again[field] == record[field], field
    # the keep lag is measured once, by the run that gave a version its last wanted copy: the service's
    assert list(record["lags"]) == record["versions"] and again["lags"] == {}
    assert [v["version"] for v in again["copies"]["versions"]] == [v["version"] for v in record["copies"]["versions"]]
    assert again["transferred"] == {"files": 0, "bytes": 0} and record["transferred"]["files"] == 2
    # the API's JSON (keep --json's) says the same of the one store
    assert [v["version"] for v in as_json["versions"]] == [v.split("@", 1)[1] for v in record["versions"]]
    assert sum(v["already"] for v in as_json["versions"]) == record["files"]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def view_url(kept: Kept) -> Iterator[str]:
    """``Mirror.view()`` mounted in wsgiref's server on loopback (port 0: any free one), until the test ends."""
    from neuromirror import api

    with api.open(kept.root) as m:
        app = m.view()
    httpd = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        app.tree.close()


def test_the_api_view_app_serves_a_pinned_file_over_loopback(kept: Kept, view_url: str) -> None:
    from neuromirror import api

    with api.open(kept.root) as m:
        (published,) = [v for v in m.versions(kept.sid) if v.kind == "published"]
    archive, ident = kept.sid.split(":")
    url = f"{view_url}/dav/{archive}/{ident}/{published.label}/sub-01/a.nwb"
    first = requests.get(url, allow_redirects=False, timeout=60)
    assert first.status_code == 307 and "versionId=" in first.headers["Location"]  # pinned: that S3 version
    assert requests.get(url, timeout=60).content == A
    listing = requests.get(f"{view_url}/dav/{archive}/{ident}/{published.label}/sub-02/?format=json", timeout=60)
    assert listing.status_code == 200 and "b.nwb" in listing.text
    assert requests.put(url, data=b"x", timeout=60).status_code == 405  # read-only


def test_the_services_records_are_the_apis(kept: Kept) -> None:
    """The service reads and writes its runs' records through ``api.Mirror.records`` (issue 77: it imports no index
    module): what the API reads is what sqlite holds, and a failed run it records is a run sqlite sees, read back
    as the source's failure streak (the backoff a restarted service restores)."""
    from neuromirror import api

    rows = runs(kept.root, kept.sid)
    with api.open(kept.root) as m:
        history = m.records.run_history(kept.sid)
        assert [r.id for r in history] == [r["id"] for r in reversed(rows)] and m.records.newest_run() == rows[-1]["id"]
        assert m.records.reports("keep", kept.sid)[-1] == (kept.sid, json.loads(rows[-1]["report"])["keep"])
        m.records.record_failed_run("dandi:9*", "listing dandi:9*: the archive answered 503")
        (streak,) = m.records.failure_streaks(["dandi:9*", "dandi:9*/*"])
    failed = runs(kept.root, "dandi:9*")
    assert [(r["outcome"], r["trigger"], r["error"]) for r in failed] == [
        ("failed", "service", "listing dandi:9*: the archive answered 503")
    ]
    assert (streak.source, streak.failures, streak.last_failure) == ("dandi:9*", 1, failed[0]["ended"])
