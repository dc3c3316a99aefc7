"""The ``index`` scenario: ``versions`` and ``pin`` on an index of ``--index-rows`` file rows.

Mirroring 10^7 files to measure a query would take days, so the index is synthesised
directly with sqlite (the real schema, bulk rows, the secondary indexes rebuilt after);
the queries are timed in-process (what the commands do after the interpreter started)
and as commands.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from neuromirror.bench.measure import child_env, neuromirror_cmd, run_measured, say


def build_index(path: Path, rows: int, *, sources: int = 10, versions: int = 10) -> dict:
    """An index with ``rows`` file rows (entries, each in one version's fileset), written directly with sqlite."""
    import sqlite3

    from neuromirror.index.db import Index
    from neuromirror.index.filesets import OPEN

    if path.exists():
        path.unlink()
    Index(path).close()  # the real schema
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    # secondary indexes are rebuilt after the bulk insert (sorting beats 10^7 random b-tree inserts)
    idx_sql = [
        sql
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name IN ('entries','fileset_spans')"
            " AND sql IS NOT NULL"
        )
    ]
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name IN "
        "('entries','fileset_spans') AND sql IS NOT NULL"
    ).fetchall():
        conn.execute(f'DROP INDEX "{name}"')
    per_version = max(1, rows // (sources * versions))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    conn.execute("BEGIN")
    eid = vid = 0
    for s in range(sources):
        sid = f"dandi:{s:06d}"
        conn.execute(
            "INSERT INTO sources (id, archive, remote_id, dataset, created, meta) VALUES (?,?,?,?,?,?)",
            [sid, "dandi", f"{s:06d}", f"dandi/{s:06d}", now, "{}"],
        )
        for v in range(versions):
            vid += 1
            label = f"0.{250101 + v:06d}.1200" if v < versions - 1 else "draft"
            conn.execute(
                'INSERT INTO versions (id, source, label, kind, "commit", tag, synced_at, remote_modified, date, files,'
                " bytes, doi, citation, meta, fileset) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    vid,
                    sid,
                    label,
                    "draft" if label == "draft" else "published",
                    f"{vid:040x}",
                    None if label == "draft" else label,
                    now,
                    now,
                    now,
                    per_version,
                    per_version * 1024,
                    None if label == "draft" else f"10.80507/dandi.{s:06d}/{label}",
                    None,
                    "{}",
                    vid,
                ],
            )
            conn.execute("INSERT INTO filesets (id, source, entries) VALUES (?,?,?)", [vid, sid, per_version])
            first = eid + 1

            def entries(first: int = first, v: int = v, sid: str = sid) -> Iterator[tuple]:
                for i in range(per_version):
                    sha = f"{(first + i):064x}"
                    path = f"sub-{i // 100:05d}/sub-{i // 100:05d}_obj-{i:07d}_v{v}.nwb"
                    yield (
                        first + i,
                        sid,
                        path,
                        f"SHA256E-s1024--{sha}.nwb",
                        1024,
                        "sha256",
                        sha,
                        f'["http://s3/blobs/{sha[:3]}/{sha}","http://api/assets/{first + i}/download/"]',
                        None,
                    )

            conn.executemany(
                "INSERT INTO entries (id, source, path, key, size, checksum_kind, checksum, urls, remote_id)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                entries(),
            )
            # every version's files its own (the worst case for the spans: nothing shared)
            until = OPEN if v == versions - 1 else vid + 1
            conn.executemany(
                "INSERT INTO fileset_spans (source, until, entry_id, since) VALUES (?,?,?,?)",
                ((sid, until, first + i, vid) for i in range(per_version)),
            )
            eid += per_version
    conn.execute("COMMIT")
    for sql in idx_sql:
        conn.execute(sql)
    conn.execute("ANALYZE")
    conn.close()
    return {"file_rows": eid, "sources": sources, "versions": vid, "query_source": f"dandi:{sources - 1:06d}"}


def bench_index(rows: int, work: Path, startup: float) -> dict:
    from neuromirror.index.db import Index
    from neuromirror.spec import parse_spec

    path = work / f"index-{rows}.sqlite"
    say(f"index: writing {rows} file rows into {path} ...")
    t = time.perf_counter()
    meta = build_index(path, rows)
    build_s = time.perf_counter() - t
    say(f"index: built in {build_s:.1f} s; timing versions / pin ...")
    src = meta["query_source"]

    def in_process() -> tuple[float, float, float]:
        """(open, versions, pin) seconds: what the commands do after the interpreter started."""
        from neuromirror.index.lookup import find_version

        t0 = time.perf_counter()
        index = Index(path)
        t1 = time.perf_counter()
        rows_ = index.versions(src)
        t2 = time.perf_counter()
        row = find_version(index, parse_spec(src))
        index.source(src)
        t3 = time.perf_counter()
        index.close()
        assert rows_ and row
        return t1 - t0, t2 - t1, t3 - t2

    samples = [in_process() for _ in range(7)]
    open_ms = statistics.median(s[0] for s in samples) * 1000
    versions_ms = open_ms + statistics.median(s[1] for s in samples) * 1000
    pin_ms = open_ms + statistics.median(s[2] for s in samples) * 1000
    env = child_env()
    root = work / "index-root"
    cmd_v = [*neuromirror_cmd(), "--root", str(root), "--index", str(path), "versions", src, "--json"]
    cmd_p = [*neuromirror_cmd(), "--root", str(root), "--index", str(path), "pin", src, "--json"]
    walls_v = [run_measured(cmd_v, env=env)["wall"] for _ in range(3)]
    walls_p = [run_measured(cmd_p, env=env)["wall"] for _ in range(3)]
    res = {
        "scenario": "index",
        "n": meta["file_rows"],
        "build_s": round(build_s, 1),
        "versions_in_process_ms": round(versions_ms, 2),
        "pin_in_process_ms": round(pin_ms, 2),
        "index_open_ms": round(open_ms, 2),
        "versions_command_s": round(statistics.median(walls_v), 3),
        "pin_command_s": round(statistics.median(walls_p), 3),
        "versions_command_beyond_startup_s": round(statistics.median(walls_v) - startup, 3),
        "pin_command_beyond_startup_s": round(statistics.median(walls_p) - startup, 3),
        "size_mb": round(path.stat().st_size / 2**20, 1),
        **meta,
    }
    say(
        f"index: versions {versions_ms:.1f} ms, pin {pin_ms:.1f} ms in-process; as commands "
        f"{res['versions_command_s']:.2f} s / {res['pin_command_s']:.2f} s (start-up {startup:.2f} s)"
    )
    path.unlink()
    return res
