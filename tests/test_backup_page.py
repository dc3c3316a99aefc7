"""The backup page (issue 59): ``status --backup [--json]`` and ``/backup/``, ``/backup.json`` of ``serve --http``.

One dandiset on the DANDI stand-in, mirrored by a real sync: a published version holding ``a`` and ``b``,
then a draft where ``b`` was replaced, ``c`` added, and ``gone`` added whose blob's current S3 object is
deleted (only the noncurrent version the mirror pinned serves it).  The published version is kept into a
directory store, the draft into a packed store (``pack+file://``) without ``c`` and ``gone``: the draft is
whole in neither, ``c`` and ``gone`` are in no store.  ``verify --stores`` re-reads both.  The numbers
``status --backup --json`` gives are checked against what git-annex (``whereis``), the stores' files and
the index (sqlite3, as a user would query it) say; the page is read in headless Chromium and photographed.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest
import requests

from helpers.keep import store_keys
from helpers.service import Served, metric_samples, neuromirror, ok, serving_page, wait_for, write_config
from helpers.status_pages import CHROMIUM, by_class, chromium, keep_screenshot, page_at, parse_html, text_of

A, B_OLD, B_NEW, C, GONE = b"a" * 3000, b"b" * 5000, b"B" * 6000, b"c" * 2000, b"g" * 400


class Mirrored(NamedTuple):
    root: Path
    sid: str
    version: str  # the published version
    directory: Path
    packed: Path
    cfg: Path
    api: str


@pytest.fixture(scope="module")
def mirrored(dandi_archive, tmp_path_factory) -> Iterator[Mirrored]:  # noqa: ANN001
    a = dandi_archive
    tmp = tmp_path_factory.mktemp("backup")
    ident = a.create_dandiset(name="backup page")
    a.put_asset(ident, "sub-0/a.nwb", A)
    a.put_asset(ident, "sub-0/b.nwb", B_OLD)
    version = a.publish(ident)
    a.put_asset(ident, "sub-0/b.nwb", B_NEW)  # replaced in the draft: the old bytes only in the published version
    a.put_asset(ident, "sub-0/c.nwb", C)
    gone = a.put_asset(ident, "sub-0/gone.nwb", GONE)
    a.delete_blob_object(a.asset(gone).blob.blob_id)  # a delete marker: only the noncurrent version serves it
    root, sid = tmp / "mirror", f"dandi:{ident}"
    out = neuromirror(root, "sync", sid, "--dandi-api", a.api_url)
    assert out.returncode == 0, out.stderr[-3000:]
    directory, packed = tmp / "keep-dir", tmp / "keep-pack"
    ok(root, "keep", f"{sid}@{version}", "--to", str(directory))
    ok(
        root,
        "keep",
        f"{sid}@draft",
        "--to",
        f"pack+file://{packed}",
        "--exclude",
        "sub-0/c.nwb",
        "--exclude",
        "sub-0/gone.nwb",
    )
    ok(root, "verify", "--stores")
    yield Mirrored(root, sid, version, directory, packed, write_config(tmp / "m.yaml", a.api_url, [sid]), a.api_url)


def backup_json(m: Mirrored | Path, *args: str) -> dict:
    root = m if isinstance(m, Path) else m.root
    return json.loads(ok(root, "status", "--backup", "--json", *args))


def index_keys(m: Mirrored) -> tuple[dict[str, int], dict[str, int]]:
    """key -> size of every annexed file of the source's versions, and of its newest state: sqlite3 on the index."""
    conn = sqlite3.connect(m.root / ".neuromirror" / "index.sqlite")
    try:
        sql = (
            "SELECT DISTINCT e.key, e.size FROM version_files vf JOIN versions v ON v.id = vf.version_id"
            " JOIN entries e ON e.id = vf.entry_id WHERE v.source = ? AND e.key IS NOT NULL"
            " AND e.checksum_kind NOT IN ('git', 'subdataset')"
        )
        every = dict(conn.execute(sql, [m.sid]).fetchall())
        head = conn.execute(
            "SELECT max(id) FROM versions WHERE source = ? AND kind != 'published'", [m.sid]
        ).fetchone()[0]
        newest = dict(conn.execute(sql + " AND v.id = ?", [m.sid, head]).fetchall())
    finally:
        conn.close()
    return every, newest


def whereis(m: Mirrored, key: str) -> set[str]:
    """The descriptions of the repositories git-annex says hold ``key`` (``git annex whereis``, as a user runs it)."""
    ds = m.root / "dandi" / m.sid.split(":")[1]
    out = subprocess.run(["git", "annex", "whereis", "--json", "--key", key], cwd=ds, capture_output=True, text=True)
    return {w["description"] for w in json.loads(out.stdout)["whereis"]} if out.stdout.strip() else set()


def split(keys: set[str], sizes: dict[str, int], newest: dict[str, int]) -> dict:
    cur = [k for k in keys if k in newest]
    old = [k for k in keys if k not in newest]
    return {
        "objects": len(keys),
        "bytes": sum(sizes[k] for k in keys),
        "current": {"objects": len(cur), "bytes": sum(sizes[k] for k in cur)},
        "noncurrent": {"objects": len(old), "bytes": sum(sizes[k] for k in old)},
    }


def test_the_numbers_are_what_git_annex_and_the_index_say(mirrored: Mirrored) -> None:
    m = mirrored
    got = backup_json(m)
    assert got["schema_version"] == 1 and got["expiry_window_days"] == 30
    (src,) = got["sources"]
    assert src["source"] == m.sid and src["verdict"] == "at risk"
    every, newest = index_keys(m)
    assert len(every) == 5 and len(newest) == 4  # a, b (old), B, c, gone; the draft: a, B, c, gone
    assert sorted(every.values()) == sorted(len(x) for x in (A, B_OLD, B_NEW, C, GONE))
    assert src["archive"] == split(set(every), every, newest)

    in_dir = store_keys(m.directory) & set(every)
    assert len(in_dir) == 2  # the published version: a and the old b
    in_pack = {k for k in every if any(str(m.packed) in d for d in whereis(m, k))}
    assert len(in_pack) == 2  # the draft without c and gone: a and the new B
    assert all(any(str(m.directory) in d for d in whereis(m, k)) for k in in_dir)
    stores = {s["kind"]: s for s in src["stores"]}
    assert set(stores) == {"directory", "pack"}, stores
    for s, keys in ((stores["directory"], in_dir), (stores["pack"], in_pack)):
        assert s["kept"] == split(keys, every, newest), s
        assert s["missing"] == split(set(every) - keys, every, newest), s
    assert stores["directory"]["url"] == str(m.directory) and str(m.packed) in stores["pack"]["url"]
    nowhere = set(every) - in_dir - in_pack
    assert src["kept_nowhere"] == split(nowhere, every, newest)
    assert src["kept_nowhere"]["current"]["objects"] == 2 and src["kept_nowhere"]["noncurrent"]["objects"] == 0
    assert [(u["path"], u["size"]) for u in src["in_no_store"]] == [
        ("sub-0/c.nwb", len(C)),
        ("sub-0/gone.nwb", len(GONE)),
    ]
    assert {u["key"] for u in src["in_no_store"]} == nowhere

    # the oldest state not whole in each: the draft in the directory store, the published version in the packed one
    assert stores["directory"]["oldest_unkept"]["version"] == "draft"
    assert stores["pack"]["oldest_unkept"]["version"] == m.version

    # the last verify --stores of each store: every copy it holds re-read, none bad
    for s, keys in ((stores["directory"], in_dir), (stores["pack"], in_pack)):
        v = s["last_verification"]
        assert v["ok"] is True and v["checked"] == len(keys) and v["bad"] == v["missing"] == 0, v
        at = datetime.fromisoformat(v["at"].replace("Z", "+00:00"))
        assert timedelta(0) <= datetime.now(timezone.utc) - at < timedelta(hours=1), v

    # what the archive deletes within 30 days and no store holds: gone.nwb, its blob's current object deleted
    exp = src["expiring"]
    assert exp["objects"] == 1 and exp["bytes"] == len(GONE), exp
    (item,) = exp["items"]
    assert item["path"] == "sub-0/gone.nwb" and item["key"] in nowhere and item["expires_is"] == "at the latest"
    left = datetime.fromisoformat(item["expires"].replace("Z", "+00:00")) - datetime.now(timezone.utc)
    assert timedelta(days=29) < left <= timedelta(days=30), item


def test_the_lines_say_what_is_at_risk(mirrored: Mirrored) -> None:
    text = ok(mirrored.root, "status", "--backup")
    lines = text.splitlines()
    assert lines[0].startswith(f"{mirrored.sid}: AT RISK: the archive holds 5 objects"), text
    assert "in no store: 2 objects (2.3 KiB) of the newest" in lines[0], text
    assert lines[1] == "  in no store: sub-0/c.nwb (2.0 KiB), sub-0/gone.nwb (400 B)", text
    assert any(ln.strip().startswith(f"store {mirrored.directory} (directory store): holds 1 of 4") for ln in lines), (
        text
    )
    assert any("the oldest state not whole there: draft" in ln for ln in lines), text
    assert sum("last verification: OK at" in ln for ln in lines) == 2, text
    assert any(ln.strip().startswith("EXPIRES UNKEPT within 30 days: 1 object (400 B)") for ln in lines), text
    assert any(ln.strip().startswith("sub-0/gone.nwb (draft): by ") for ln in lines), text
    # one source by its SPEC; a SPEC that is none is one line and exit 2
    assert backup_json(mirrored, mirrored.sid)["sources"][0]["source"] == mirrored.sid
    for spec in ("nope", "dandi:9*", "dandi:000999", "dandi:1"):  # none names a source here: exit 2, one line
        bad = neuromirror(mirrored.root, "status", "--backup", spec)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_the_expiry_of_the_definitions(mirrored: Mirrored, tmp_path: Path) -> None:
    """``keep: {expire_after: 10d}`` in the definition given (``-c``): the archive deletes the noncurrent version 10
    days after the first sync that saw it, not 30."""
    cfg = tmp_path / "keep.yaml"
    cfg.write_text(
        f"store: {mirrored.directory}\n"
        f'defaults: {{schedule: {{interval: 1h}}, options: {{dandi_api: "{mirrored.api}"}}}}\n'
        f'sources:\n  - spec: "{mirrored.sid}"\n    keep: {{versions: published, expire_after: 10d}}\n'
    )
    (item,) = backup_json(mirrored, "-c", str(cfg))["sources"][0]["expiring"]["items"]
    left = datetime.fromisoformat(item["expires"].replace("Z", "+00:00")) - datetime.now(timezone.utc)
    assert timedelta(days=9) < left <= timedelta(days=10), item


def test_it_reads_no_dataset_and_is_quick(mirrored: Mirrored) -> None:
    """From the index alone: the datasets moved away, the numbers stay (and come in well under a second)."""
    from neuromirror import api

    with api.open(mirrored.root) as m:
        started = time.monotonic()
        first = m.backup().to_json()
        took = time.monotonic() - started
    ds = mirrored.root / "dandi"
    ds.rename(mirrored.root / "dandi.away")
    try:
        with api.open(mirrored.root) as m:
            again = m.backup(mirrored.sid).to_json()
    finally:
        (mirrored.root / "dandi.away").rename(ds)
    first.pop("generated"), again.pop("generated")
    assert again == first and took < 2.0, took


@pytest.fixture(scope="module")
def served(mirrored: Mirrored) -> Iterator[Served]:
    with serving_page(mirrored.root, mirrored.cfg, "backup/") as svc:
        yield svc


def test_the_page_and_its_json(mirrored: Mirrored, served: Served) -> None:
    doc = page_at(served.url("backup/"))
    (row,) = by_class(doc, "tr", "source")
    assert mirrored.sid in text_of(row) and "at risk" in text_of(row)
    assert len(by_class(doc, "tr", "store")) == 2
    totals = [[text_of(td) for td in tr.iter("td")] for tr in by_class(doc, "tr", "store-total")]
    assert [t[1:4] for t in totals] == [
        ["directory store", "1", "2 objects (7.8 KiB)"],
        ["packed store", "1", "2 objects (8.8 KiB)"],
    ], totals
    (gone,) = by_class(doc, "tr", "expiring")
    assert "sub-0/gone.nwb" in text_of(gone)
    cells = [[text_of(td) for td in tr.iter("td")] for tr in by_class(doc, "tr", "unkept")]
    assert cells == [["sub-0/c.nwb", "2.0 KiB"], ["sub-0/gone.nwb", "400 B"]], cells
    j = requests.get(served.url("backup.json"), timeout=30).json()
    cli = backup_json(mirrored)
    j.pop("generated"), cli.pop("generated")
    for s in j["sources"] + cli["sources"]:  # a store's newest check moves if the service's sync ran between
        for st in s["stores"]:
            st.pop("newest_check")
    assert j == cli
    assert 'href="backup/"' in requests.get(served.url(""), timeout=30).text  # the status page links it
    source_page = requests.get(served.url(f"source/{mirrored.sid}"), timeout=30).text
    assert f'href="../backup/#{mirrored.sid}"' in source_page  # and each source's page its section


def test_metrics_carry_the_page_numbers(mirrored: Mirrored, served: Served) -> None:
    """/metrics, parsed by prometheus_client: per source the objects and bytes in no store and those expiring
    unkept within 30 days, per store its last verification's age and result, as ``status --backup --json``
    says them."""
    body = requests.get(served.url("metrics"), timeout=30).text
    m = metric_samples(body)
    (src,) = backup_json(mirrored)["sources"]
    sid = ("source", mirrored.sid)
    for state in ("current", "noncurrent"):
        nowhere = src["kept_nowhere"][state]
        assert m["neuromirror_backup_unkept_objects", sid, ("state", state)] == nowhere["objects"], state
        assert m["neuromirror_backup_unkept_bytes", sid, ("state", state)] == nowhere["bytes"], state
    assert src["kept_nowhere"]["current"] == {"objects": 2, "bytes": len(C) + len(GONE)}
    assert m["neuromirror_backup_expiring_unkept_objects", sid] == src["expiring"]["objects"] == 1
    assert m["neuromirror_backup_expiring_unkept_bytes", sid] == src["expiring"]["bytes"] == len(GONE)
    assert len(src["stores"]) == 2
    for st in src["stores"]:
        store, v = ("store", st["url"]), st["last_verification"]
        assert v["ok"] and m["neuromirror_store_last_verification", ("result", "ok"), store] == 1, (st, body)
        assert not [k for k in m if k[0] == "neuromirror_store_last_verification" and store in k and "ok" not in k[1]]
        since = time.time() - datetime.fromisoformat(v["at"].replace("Z", "+00:00")).timestamp()
        assert 0 <= m["neuromirror_store_last_verification_age_seconds", store] <= since + 1, (since, st)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed: the page is not looked at in a browser here")
def test_the_page_in_a_browser(mirrored: Mirrored, served: Served, tmp_path: Path) -> None:
    dom = parse_html(chromium(served.url("backup/"), tmp_path), strict=False)
    says = " ".join(text_of(p) for p in by_class(dom, "p", "say"))
    assert "2 objects (2.3 KiB) of the archive's current files are in no store" in says, says
    assert "will be deleted by the archive's lifecycle" in says, says
    assert [text_of(v) for v in by_class(dom, "span", "verdict")][:1] == ["at risk"]
    shot = tmp_path / "backup.png"
    chromium(served.url("backup/"), tmp_path, screenshot=shot, size="1400,1000")
    assert shot.stat().st_size > 10_000
    keep_screenshot(shot)


def test_a_slice_that_rereads_nothing_leaves_the_last_verification(mirrored: Mirrored) -> None:
    before = {s["kind"]: s["last_verification"] for s in backup_json(mirrored)["sources"][0]["stores"]}
    ok(mirrored.root, "verify", "--stores", "--older-than", "3650")  # no copy is ten years unchecked
    after = {s["kind"]: s["last_verification"] for s in backup_json(mirrored)["sources"][0]["stores"]}
    assert after == before and before["directory"]["checked"] == 2, (before, after)


def test_a_failed_verification_is_shown(mirrored: Mirrored) -> None:
    """A copy whose bytes went wrong in the directory store: the last verification says so (and that it was
    re-kept); the store's counts are whole again."""
    m = mirrored
    path = next(p for p in m.directory.glob("*/*/*/*") if p.is_file())
    path.parent.chmod(0o755)
    path.chmod(0o644)
    path.write_bytes(b"x" * path.stat().st_size)
    out = neuromirror(m.root, "verify", "--stores", "--store", str(m.directory))
    assert out.returncode == 1, out.stdout + out.stderr
    (src,) = backup_json(m)["sources"]
    d = next(s for s in src["stores"] if s["kind"] == "directory")
    v = d["last_verification"]
    assert v["ok"] is False and v["bad"] == 1 and v["repaired"] == 1 and v["unresolved"] == 0, v
    assert d["kept"]["objects"] == 2
    text = ok(m.root, "status", "--backup")
    assert "last verification: REPAIRED at" in text and "1 bad, 0 missing, 0 unreadable, 1 re-kept" in text, text


STORE_U1 = "00000000-0000-4000-8000-000000000001"  # the store's UUID


def synthetic_index(path: Path, versions: int, files: int, changed: int = 5) -> None:
    """An index of one source with ``versions`` states of ``files`` files, ``changed`` of them replaced in each
    state, 80 % of the keys held by one store (a directory beside the index, reachable: its identity is there):
    written with sqlite3 as the sync lays the rows out (fileset spans)."""
    from neuromirror.index.db import Index
    from neuromirror.index.filesets import OPEN

    Index(path).close()  # the schema, as every command makes it
    keep = path.parent / "keep"
    keep.mkdir()
    (keep / ".neuromirror-store.json").write_text(json.dumps({"uuid": STORE_U1, "name": "neuromirror-store-u1"}))
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO sources (id, archive, remote_id, dataset) VALUES ('dandi:900000', 'dandi', '900000', 'dandi/900000')"
        )
        conn.execute(
            "INSERT INTO stores (uuid, url, kind, name) VALUES (?, ?, 'directory', 'neuromirror-store-u1')",
            [STORE_U1, str(keep)],
        )
        open_spans: dict[int, int] = {}  # slot -> entry id
        entry = 0

        def add(slot: int, since: int) -> None:
            nonlocal entry
            entry += 1
            key = f"SHA256E-s{1000 + entry}--{entry:064x}.nwb"
            conn.execute(
                "INSERT INTO entries (id, source, path, key, size, checksum_kind, checksum, urls) VALUES (?, 'dandi:900000', ?, ?, ?, 'sha256', ?, '[]')",
                [entry, f"f{slot}.nwb", key, 1000 + entry, f"{entry:064x}"],
            )
            if entry % 5:
                conn.execute(
                    "INSERT INTO store_checks (store, key, checked, stored) VALUES (?, ?, 1, 1)", [STORE_U1, key]
                )
            open_spans[slot] = entry
            conn.execute(
                "INSERT INTO fileset_spans (source, until, entry_id, since) VALUES ('dandi:900000', ?, ?, ?)",
                [OPEN, entry, since],
            )

        for v in range(1, versions + 1):
            conn.execute("INSERT INTO filesets (id, source, entries) VALUES (?, 'dandi:900000', ?)", [v, files])
            for slot in range(files) if v == 1 else [(v * changed + i) % files for i in range(changed)]:
                if slot in open_spans:
                    conn.execute("UPDATE fileset_spans SET until = ? WHERE entry_id = ?", [v, open_spans[slot]])
                add(slot, v)
            conn.execute(
                "INSERT INTO versions (id, source, label, kind, \"commit\", synced_at, fileset) VALUES (?, 'dandi:900000', ?, ?, ?, ?, ?)",
                [
                    v,
                    "draft" if v == versions else f"0.{v:06d}",
                    "draft" if v == versions else "published",
                    f"{v:040x}",
                    "2026-01-01T00:00:00Z",
                    v,
                ],
            )
    conn.close()


def test_a_few_queries_whatever_the_versions(tmp_path: Path) -> None:
    """The numbers come from a few queries for the whole mirror, not one per version: as many statements for
    2,000 versions as for 20, and 2,000 versions of 1,000 files (11,000 keys) counted in a few seconds."""
    from neuromirror.account.backup import backup
    from neuromirror.index.db import Index

    def measured(versions: int) -> tuple[int, float, dict]:
        path = tmp_path / f"v{versions}" / "index.sqlite"
        path.parent.mkdir()
        synthetic_index(path, versions, 1000)
        index = Index(path)
        statements: list[str] = []
        index.db.conn.set_trace_callback(statements.append)
        started = time.monotonic()
        got = backup(index).to_json()
        took = time.monotonic() - started
        index.close()
        return len(statements), took, got

    few, _, small = measured(20)
    many, took, big = measured(2000)
    assert many == few, (few, many)
    (src,) = big["sources"]
    keys = 1000 + 1999 * 5
    assert src["archive"]["objects"] == keys and src["archive"]["current"]["objects"] == 1000
    assert src["kept_nowhere"]["objects"] == keys // 5  # every fifth key is in no store
    (store,) = src["stores"]
    assert store["oldest_unkept"]["version"] == "0.000001" and store["kept"]["objects"] == keys - keys // 5
    assert took < 5, took  # 0.2 s here, alone on a 2-core machine


AIND_ASSET = "ecephys_654321_2023-05-06_07-08-09"


def test_objects_overwritten_upstream_expire(s3, tmp_path: Path) -> None:  # noqa: ANN001
    """An AIND asset in a versioned bucket: one object overwritten, one deleted after the first sync.  The first
    state's pins now rest on noncurrent S3 versions no store holds: they expire within 30 days of the second state."""
    name = f"aind-backup-{tmp_path.name[-8:].lower().replace('_', '-')}"
    s3.create_bucket(name, versioned=True, public=True)
    description = {
        "name": AIND_ASSET,
        "subject_id": "654321",
        "data_level": "raw",
        "creation_time": "2023-05-06T07:08:09",
    }
    s3.put(name, f"{AIND_ASSET}/data_description.json", json.dumps(description).encode())
    s3.put(name, f"{AIND_ASSET}/ecephys/notes.bin", b"first version of the notes\x00\x01")
    s3.put(name, f"{AIND_ASSET}/ecephys/old.bin", b"this object will be deleted upstream\x00")
    root, sid = tmp_path / "mirror", f"aind:{AIND_ASSET}"
    sync = ("sync", sid, "--bucket", name, "--s3-endpoint", s3.endpoint_url)
    ok(root, *sync)
    first = int(time.time())
    wait_for(lambda: int(time.time()) > first, 5, "a later second (a new state's label)")
    s3.put(name, f"{AIND_ASSET}/ecephys/notes.bin", b"second version of the notes!\x02")
    s3.client().delete_object(Bucket=name, Key=f"{AIND_ASSET}/ecephys/old.bin")
    ok(root, *sync)
    (src,) = backup_json(root, sid)["sources"]
    assert src["versions"] == 2 and src["archive"]["noncurrent"]["objects"] == 2, src
    items = {x["path"]: x for x in src["expiring"]["items"]}
    assert set(items) == {"ecephys/notes.bin", "ecephys/old.bin"}, src["expiring"]
    for x in items.values():
        left = datetime.fromisoformat(x["expires"].replace("Z", "+00:00")) - datetime.now(timezone.utc)
        assert timedelta(days=29) < left <= timedelta(days=30) and x["expires_is"] == "at the latest", x
        assert "noncurrent since the state of" in x["why"], x
    assert src["verdict"] == "at risk"


def test_a_page_of_many_sources_details_only_those_at_risk() -> None:
    """2,000 dandisets on a wall: a summary row each, a section only for those not wholly kept."""
    from neuromirror.account.backup_model import Backup, SourceBackup
    from neuromirror.service.pages.backup import as_html

    sources = [SourceBackup(f"dandi:{i:06d}") for i in range(60)]
    for b in sources:
        b.archive.add(100, True)
    sources[7].nowhere.add(100, True)  # one file of dandi:000007 is in no store
    doc = parse_html(as_html(Backup("2026-11-27T00:00:00Z", sources)))
    assert len(by_class(doc, "tr", "source")) == 60
    assert [s.get("id") for s in doc.iter("section")] == ["dandi:000007"]
    assert "59 source(s) wholly kept" in " ".join(text_of(p) for p in by_class(doc, "p", "note"))
