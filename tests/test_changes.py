"""``changes --since DATE``: what an archive's dandisets gained, lost and changed since a date, from the index.

Why: DANDI's NIH reporting asks per dandiset and asset what was added, removed and changed in a
period (dandi-archive #877); the mirror's index holds every state it synced.  This test syncs one
stand-in dandiset three times (files added, a file's content changed, a file removed, a Zarr changed)
and checks that ``changes --since`` names exactly what changed after each date, in JSON and text.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from helpers.retrieve import Runner
from neuromirror.demo import deterministic_bytes

T = datetime(2025, 9, 1, 8, 0, tzinfo=timezone.utc)


def names(report: dict, source: str) -> dict[str, set[str]]:
    (c,) = [c for c in report["sources"] if c["source"] == source]
    return {k: {f["path"] for f in c[k]} for k in ("added", "removed", "changed")}


def test_changes_since_names_exactly_what_changed_over_three_syncs(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    a = dandi_archive
    ident = a.create_dandiset(name="changes sample", created=T)
    src = f"dandi:{ident}"
    run = Runner(tmp_path / "mirror")

    def sync() -> None:
        run.ok("sync", src, "--dandi-api", a.api_url)

    def put(path: str, seed: str, when: datetime) -> None:
        a.put_asset(ident, path, deterministic_bytes(f"{ident}{seed}", 20_000), when=when)

    put("sub-01/a.nwb", "a", T + timedelta(minutes=1))
    put("sub-01/b.nwb", "b", T + timedelta(minutes=2))
    put("sub-02/c.nwb", "c", T + timedelta(minutes=3))
    a.add_zarr_asset(
        ident, "sub-03/s.zarr", {".zgroup": b'{"zarr_format": 2}', "0/0": b"x" * 900}, when=T + timedelta(minutes=4)
    )
    sync()
    t2 = T + timedelta(days=1)
    put("sub-01/b.nwb", "b2", t2)  # changed content
    put("sub-04/d.nwb", "d", t2 + timedelta(minutes=1))  # added
    sync()
    t3 = T + timedelta(days=2)
    a.delete_asset(ident, "sub-02/c.nwb", when=t3)  # removed
    put("sub-05/e.nwb", "e", t3 + timedelta(minutes=1))  # added
    zid = a.asset_at(ident, "sub-03/s.zarr").zarr.zarr_id
    a.modify_zarr(zid, put={"0/1": b"y" * 700}, when=t3 + timedelta(minutes=2))  # the Zarr changed
    sync()

    # before the first sync's state: everything there now is added
    r = run.json("changes", "--since", "2025-08-01", src)
    assert names(r, src) == {
        "added": {"sub-01/a.nwb", "sub-01/b.nwb", "sub-03/s.zarr", "sub-04/d.nwb", "sub-05/e.nwb", "dandiset.yaml"},
        "removed": set(),
        "changed": set(),
    }
    # since the first sync's state (a day later than its changes): b changed, d and e added, c removed, the Zarr changed
    r = run.json("changes", "--since", (T + timedelta(hours=12)).isoformat(), src)
    got = names(r, src)
    assert got == {
        "added": {"sub-04/d.nwb", "sub-05/e.nwb"},
        "removed": {"sub-02/c.nwb"},
        "changed": {"sub-01/b.nwb", "sub-03/s.zarr"} | (got["changed"] & {"dandiset.yaml"}),
    }
    # since the second sync's state: only the third sync's changes
    r = run.json("changes", "--since", (T + timedelta(days=1, hours=12)).isoformat(), src)
    got = names(r, src)
    assert got["added"] == {"sub-05/e.nwb"} and got["removed"] == {"sub-02/c.nwb"}
    assert got["changed"] - {"dandiset.yaml"} == {"sub-03/s.zarr"}
    assert r["summary"]["sources"] == 1
    # after the last state: nothing
    r = run.json("changes", "--since", (T + timedelta(days=30)).isoformat(), src)
    assert names(r, src) == {"added": set(), "removed": set(), "changed": set()}

    # the text report, every source by default
    out = run.ok("changes", "--since", (T + timedelta(days=1, hours=12)).date().isoformat())
    assert (
        f"{src}:" in out and "  A  sub-05/e.nwb" in out and "  D  sub-02/c.nwb" in out and "  M  sub-03/s.zarr" in out
    )
    code, _, err = run("changes", "--since", "last tuesday")
    assert code == 2 and "not a date" in err and len(err.strip().splitlines()) == 1


def test_changes_since_counts_a_published_version_as_a_state(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """A mirror first made after a publish and a removal in the draft: the published version is the state
    of the day it was published, so ``changes --since`` a date between the two names the removed file."""
    a = dandi_archive
    ident = a.create_dandiset(name="changes after a publish", created=T)
    src = f"dandi:{ident}"
    for i, p in enumerate(("sub-01/a.nwb", "sub-01/b.nwb", "sub-02/c.nwb")):
        a.put_asset(ident, p, deterministic_bytes(f"{ident}{p}", 20_000), when=T + timedelta(minutes=i + 1))
    version = a.publish(ident, when=T + timedelta(days=1))
    a.delete_asset(ident, "sub-02/c.nwb", when=T + timedelta(days=2))
    run = Runner(tmp_path / "mirror")
    run.ok("sync", src, "--dandi-api", a.api_url)  # the mirror's first sync: the publish and the removal are past

    # since the publish's day (before the removal): the removed file, nothing "added"
    r = run.json("changes", "--since", (T + timedelta(days=1, hours=12)).isoformat(), src)
    got = names(r, src)
    assert got == {"added": set(), "removed": {"sub-02/c.nwb"}, "changed": got["changed"] & {"dandiset.yaml"}}, got
    (c,) = r["sources"]
    assert c["from"]["version"] == version and c["to"]["version"] == "draft"
    out = run.ok("changes", "--since", (T + timedelta(days=1, hours=12)).isoformat(), src)
    assert f"{src}: {version} " in out and "  D  sub-02/c.nwb" in out and "  A  " not in out, out
    # after the removal: nothing (the published version, older, is no change since)
    r = run.json("changes", "--since", (T + timedelta(days=3)).isoformat(), src)
    assert names(r, src) == {"added": set(), "removed": set(), "changed": set()}
    # before the publish, no state of then recorded: what is there now was added since (c came and went)
    r = run.json("changes", "--since", (T - timedelta(days=1)).isoformat(), src)
    assert names(r, src) == {
        "added": {"sub-01/a.nwb", "sub-01/b.nwb", "dandiset.yaml"},
        "removed": set(),
        "changed": set(),
    }
    assert r["sources"][0]["from"] is None
