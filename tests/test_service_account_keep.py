"""A service cycle with nothing new is lean, and one with something new still keeps it (issue 59).

The service (its real scheduler object, one cycle at a time: :meth:`Service.run_cycle`) keeps a dandiset
into a directory store and an S3 store (moto) with ``copies: 2``.  A cycle whose sync found no change
opens no store (no keep record, the at-risk count carried); a cycle after a new published version keeps
it into both stores; the rolling check still comes when due.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from helpers.keep import T0, keep_config, store_keys
from helpers.service import runs
from neuromirror.demo import deterministic_bytes


def _service(cfg: Path, root: Path):  # noqa: ANN202
    from neuromirror.config.load import load_config
    from neuromirror.service.scheduler import Service

    config = load_config(cfg)
    config.apply_network()
    return Service(config, root)


def _records(root: Path, sid: str, part: str) -> list[tuple[int, dict]]:
    out = []
    for r in runs(root, sid):
        report = json.loads(r["report"] or "{}")
        if part in report:
            out.append((r["id"], report[part]))
    return out


def _s3_keys(s3, bucket: str) -> set[str]:  # noqa: ANN001
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix="keep/").get("Contents", [])
    return {o["Key"].rsplit("/", 1)[-1] for o in listed if o["Key"].rsplit("/", 1)[-1].startswith("SHA256")}


def test_a_no_change_cycle_opens_no_store_and_a_changed_one_keeps_into_both(
    dandi_archive, s3, bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    from neuromirror.service import keeping
    from neuromirror.store import s3 as s3store

    when = T0 + timedelta(days=4000 + len(dandi_archive.dandiset_ids()))
    ident = dandi_archive.create_dandiset(name="lean cycles", created=when)
    dandi_archive.put_asset(ident, "sub-01/a.nwb", deterministic_bytes(f"{ident}:a", 4000), when=when)
    dandi_archive.publish(ident, when=when + timedelta(hours=1))
    sid, directory = f"dandi:{ident}", tmp_path / "dir-store"
    head = f'stores: ["{directory}", "s3://{bucket}/keep"]\ncopies: 2\n'
    root = tmp_path / "served"
    svc = _service(keep_config(tmp_path / "m.yaml", dandi_archive.api_url, sid, head), root)

    clients: list[object] = []
    made = s3store.S3Store.client

    def counted(self):  # noqa: ANN001, ANN202 - the real client, counted: what a cycle opens
        if self._client is None:
            clients.append(self.url)
        return made(self)

    monkeypatch.setattr(s3store.S3Store, "client", counted)
    caplog.set_level(logging.INFO, logger="neuromirror.service")
    svc.run_cycle(sid)
    ((_, first),) = _records(root, sid, "keep")
    assert first["outcome"] == "ok" and [s["files"] for s in first["stores"]] == [1, 1]
    assert len(store_keys(directory)) == 1 and len(_s3_keys(s3, bucket)) == 1
    line = next(r.getMessage() for r in caplog.records if "kept in 2 store(s)" in r.getMessage())
    assert str(directory) in line and f"s3://{bucket}/keep/" in line and "copies wanted 2" in line, line
    risk = _records(root, sid, "at_risk")[-1][1]

    # nothing new: no store opened, no keep record, the at-risk count carried into the run as it was
    clients.clear()
    for _ in range(3):
        svc.run_cycle(sid)
    assert clients == [] and len(_records(root, sid, "keep")) == 1
    assert [r["outcome"] for r in runs(root, sid)][-3:] == ["unchanged"] * 3
    assert _records(root, sid, "at_risk")[-1][1]["counted_at"] == risk["counted_at"]

    # a new published version: the next cycle keeps its new file into both stores, and counts again
    dandi_archive.put_asset(
        ident, "sub-02/b.nwb", deterministic_bytes(f"{ident}:b", 3000), when=when + timedelta(days=1)
    )
    dandi_archive.publish(ident, when=when + timedelta(days=1, hours=1))
    svc.run_cycle(sid)
    (kept_run, kept) = _records(root, sid, "keep")[-1]
    assert kept["outcome"] == "ok" and kept["transferred"]["files"] == 2  # one new file, into each store
    assert [s["transferred"]["files"] for s in kept["stores"]] == [1, 1]
    assert len(store_keys(directory)) == 2 and len(_s3_keys(s3, bucket)) == 2
    assert all(v["ok"] for v in kept["copies"]["versions"]) and len(kept["copies"]["versions"]) == 2
    assert _records(root, sid, "at_risk")[-1][1]["basis"] != risk["basis"]  # counted again (a time may repeat)

    # the rolling check due (an hour since the last one, here at once): a no-change cycle keeps and checks
    monkeypatch.setattr(keeping, "ROLLING_EVERY", 0.0)
    svc.run_cycle(sid)
    (checked_run, checked) = _records(root, sid, "keep")[-1]
    # a keep of its own run (its time may be the last one's second on a fast machine), nothing to copy, checked
    assert checked_run != kept_run and checked["transferred"]["files"] == 0 and checked["verify"]["ok"]
    from neuromirror.config.model import VerifyPolicy

    # the slice of the time since the last check, at least one schedule interval's (1 h)
    assert checked["verify"]["fraction"] == pytest.approx(3600 / VerifyPolicy().period, rel=0.01)


def test_check_config_names_every_store_and_the_copies(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neuromirror.cli import main

    monkeypatch.delenv("NEUROMIRROR_CONTACT", raising=False)

    cfg = keep_config(tmp_path / "m.yaml", "http://127.0.0.1:1/api", "dandi:000001", "")
    cfg.write_text(
        f'contact: lab@example.org\nstores: ["{tmp_path}/keep", "s3://lab-keep/dandi"]\ncopies: 2\n' + cfg.read_text()
    )
    assert main(["check-config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"keep published in {tmp_path}/keep, s3://lab-keep/dandi (copies: 2)" in out, out
    cfg.write_text(cfg.read_text().replace("contact: lab@example.org\n", ""))
    assert main(["check-config", "--json", str(cfg)]) == 0  # a warning, not an error: no contact for the service
    data = json.loads(capsys.readouterr().out)["files"][0]
    assert (
        data["config"]["sources"][0]["stores"][1] == "s3://lab-keep/dandi"
        and data["config"]["sources"][0]["copies"] == 2
    )
    assert any("no contact:" in w for w in data["warnings"])


def test_a_changing_sync_leaves_no_info_exclude_for_maintain_to_remove(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """The sync lists its new Zarr datasets in ``.git/info/exclude`` while their jobs run and takes them out
    once registered: it left the file empty, which ``maintain`` removed as git's leftover after every
    changing sync, and the next one wrote again.  Now the sync removes the file it emptied."""
    from helpers.retrieve import Runner

    when = T0 + timedelta(days=5000 + len(dandi_archive.dandiset_ids()))
    ident = dandi_archive.create_dandiset(name="exclude churn", created=when)
    dandi_archive.put_asset(ident, "a.nwb", b"a" * 100, when=when)
    run, sid = Runner(tmp_path / "mirror"), f"dandi:{ident}"
    exclude = run.root / "dandi" / ident / ".git" / "info" / "exclude"
    for i in range(2):  # each sync brings a new Zarr
        chunks = {".zgroup": b'{"zarr_format": 2}', "0/0": deterministic_bytes(f"{ident}:{i}", 50)}
        dandi_archive.add_zarr_asset(ident, f"s{i}.zarr", chunks, when=when + timedelta(days=i + 1))
        run.ok("sync", sid, "--dandi-api", dandi_archive.api_url)
        assert not exclude.exists()
        assert "info/exclude" not in run.ok("maintain", sid)
