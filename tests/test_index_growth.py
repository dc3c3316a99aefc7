"""A year of hourly syncs at toy size: the index grows with what changes, not with the syncs.

A stand-in dandiset gets one asset per sync (a version published every tenth), with a
no-change sync in between now and then; after each sync the rows of every table of the
index are counted.  Counts, not times: a one-file change adds a handful of rows, a sync
that finds nothing new adds its run row and nothing else.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

from conftest import CLI

T0 = datetime(2025, 3, 1, 0, 0, tzinfo=timezone.utc)
SYNCS = 36
PUBLISH_EVERY = 10
#: the issue's bound on the rows a one-file change adds (the run, the version, its fileset, the new entry...)
PER_CHANGE = 20


def rows_per_table(index: Path) -> dict[str, int]:
    db = sqlite3.connect(index)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        db.close()


def test_rows_grow_with_changes_not_with_syncs(cli: CLI, dandi_archive) -> None:  # noqa: ANN001
    ident = dandi_archive.create_dandiset(name="hourly growth", created=T0)
    for i in range(40):  # a dandiset bigger than any bound below: a full copy per sync would show
        dandi_archive.put_asset(ident, f"sub-{i:03d}/sub-{i:03d}_ecephys.nwb", f"rec {i}".encode() * 8, when=T0)
    spec = f"dandi:{ident}"
    index = cli.root / ".neuromirror" / "index.sqlite"
    code, _, err = cli("sync", spec)
    assert code == 0, err
    before = rows_per_table(index)
    first_spans = before["fileset_spans"]
    changes: list[int] = []
    quiet: list[dict[str, int]] = []
    published = 0
    for n in range(1, SYNCS + 1):
        when = T0 + timedelta(hours=n)
        dandi_archive.put_asset(ident, f"sub-new/sub-new_obj-{n:03d}.nwb", f"new {n}".encode() * 8, when=when)
        if n % PUBLISH_EVERY == 0:
            dandi_archive.publish(ident, when=when + timedelta(minutes=5))
            published += 1
        code, _, err = cli("sync", spec)
        assert code == 0, err
        after = rows_per_table(index)
        changes.append(sum(after.values()) - sum(before.values()))
        before = after
        if n % 5 == 0:  # nothing new in the archive: the run row only
            code, _, err = cli("sync", spec)
            assert code == 0, err
            after = rows_per_table(index)
            quiet.append({t: after[t] - before[t] for t in after if after[t] != before[t]})
            before = after

    assert max(changes) < PER_CHANGE, changes
    assert quiet and all(q == {"runs": 1} for q in quiet), quiet
    # the file lists: one span per file that ever was, not one row per file per version
    versions = before["versions"]
    assert versions >= SYNCS + 1 + published
    # each sync: the new asset, and the draft's dandiset.yaml (its summary changed); a publish: its dandiset.yaml
    assert before["fileset_spans"] - first_spans <= 2 * SYNCS + 2 * published, (first_spans, before["fileset_spans"])
    # and what the index answers is still every version's whole list
    code, out, err = cli("versions", spec, "--json")
    assert code == 0, err
    db = sqlite3.connect(index)
    last = db.execute("SELECT id, files FROM versions WHERE label = 'draft' ORDER BY id DESC LIMIT 1").fetchone()
    listed = db.execute("SELECT count(*) FROM version_files WHERE version_id = ?", [last[0]]).fetchone()[0]
    first = db.execute("SELECT id, files FROM versions ORDER BY id LIMIT 1").fetchone()
    listed_first = db.execute("SELECT count(*) FROM version_files WHERE version_id = ?", [first[0]]).fetchone()[0]
    every_list = db.execute("SELECT sum(files) FROM versions").fetchone()[0]  # what schema 1 stored
    db.close()
    assert listed == last[1] and listed_first == first[1] and last[1] - first[1] == SYNCS
    assert every_list > 10 * before["fileset_spans"]
