"""Run history kept by the mirror definition's ``retention:``, the index compacted and its WAL checkpointed."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import CLI
from neuromirror.config.load import load_config
from neuromirror.config.reader import ConfigError
from neuromirror.index.db import Index
from neuromirror.index.retention import DEFAULT_DAYS, DEFAULT_RUNS, Retention, tidy_if_due

T0 = datetime(2025, 5, 1, 8, 0, tzinfo=timezone.utc)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "m.yaml"
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p


def test_retention_in_the_definition(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
            retention: {runs: 50}
            defaults: {schedule: 1h}
            sources:
              - spec: dandi:000027
                retention: {days: 2w}
              - dandi:000003
            """,
        )
    )
    of = cfg.retention_of()
    assert of("dandi:000027") == Retention(runs=50, days=14.0)
    assert of("dandi:000003") == Retention(runs=50, days=DEFAULT_DAYS)
    assert of("aind:not-in-the-file") == Retention(runs=50, days=DEFAULT_DAYS)
    plain = load_config(write(tmp_path, "defaults: {schedule: 1h}\nsources: [dandi:000027]\n"))
    assert plain.retention_of()("dandi:000027") == Retention(DEFAULT_RUNS, DEFAULT_DAYS)


@pytest.mark.parametrize(
    "text, want",
    [
        ("retention: {runs: 0}\n", "m.yaml:1: retention.runs: expected a number of runs (1 or more)"),
        ("retention: {days: soon}\n", "m.yaml:1: retention.days: "),
        ("retention: {keep: 3}\n", "m.yaml:1: retention: unknown key 'keep'"),
    ],
)
def test_bad_retention_is_one_line_with_file_and_line(tmp_path: Path, text: str, want: str) -> None:
    path = write(tmp_path, text + "defaults: {schedule: 1h}\nsources: [dandi:000027]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    issues = [str(i) for i in info.value.issues]
    assert len(issues) == 1 and "\n" not in issues[0], issues
    assert issues[0].split("/")[-1].startswith(want), issues


def runs_of(index: Path, source: str) -> list[tuple[int, str, str]]:
    db = sqlite3.connect(index)
    try:
        return db.execute("SELECT id, outcome, started FROM runs WHERE source = ? ORDER BY id", [source]).fetchall()
    finally:
        db.close()


def test_prune_keeps_the_policy_and_what_status_reads(cli: CLI, dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    ident = dandi_archive.create_dandiset(name="a long history", created=T0)
    dandi_archive.put_asset(ident, "sub-1/sub-1_ecephys.nwb", b"rec" * 30, when=T0)
    spec = f"dandi:{ident}"
    for _ in range(12):  # a year of hourly syncs, at toy size
        assert cli("sync", spec)[0] == 0
    index = cli.root / ".neuromirror" / "index.sqlite"
    history = runs_of(index, spec)
    assert len(history) == 12
    # the first run was the only one that changed anything; the oldest three are 100 days old
    db = sqlite3.connect(index)
    old = (datetime.now(timezone.utc) - timedelta(days=100)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    db.executemany("UPDATE runs SET started = ? WHERE id = ?", [(old, r[0]) for r in history[:3]])
    db.commit()
    db.close()
    status_before = cli.json("status", spec)["sources"][0]

    conf = write(
        tmp_path,
        f"""
        root: {cli.root}
        defaults: {{schedule: 1h}}
        sources:
          - spec: {spec}
            retention: {{runs: 8, days: 30}}
        """,
    )
    code, out, err = cli("reindex", "--prune", "--config", str(conf), "--json")
    assert code == 0, err
    done = json.loads(out)
    left = runs_of(index, spec)
    # the newest 8 are within 30 days: kept; the 100-day-old ones go, and so does the 4th (past the newest 8)
    assert [r[0] for r in left] == [r[0] for r in history[4:]]
    assert done["runs_removed"] == 4 and done["checkpointed"] is True
    status_after = cli.json("status", spec)["sources"][0]
    assert status_after["last_success"] == status_before["last_success"]
    assert status_after["versions"] == status_before["versions"]
    wal = Path(f"{index}-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed and truncated

    # a policy of one run: the newest stays (and it is the newest success too)
    code, out, err = cli(
        "reindex", "--prune", "--config", str(write(tmp_path, conf.read_text().replace("runs: 8", "runs: 1")))
    )
    assert code == 0 and "removed 7 runs" in out, out + err
    assert [r[0] for r in runs_of(index, spec)] == [history[-1][0]]
    # --config without --prune is a mistake, said in one line
    code, _, err = cli("reindex", "--config", str(conf))
    assert code == 2 and "--config goes with --prune" in err


def test_tidy_gives_pages_back_and_runs_at_most_once_an_interval(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite")
    assert index.db.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL from the start
    with index.transaction():
        for _ in range(3000):
            run = index.start_run("dandi:000001", trigger="service")
            index.end_run(run, {"outcome": "unchanged", "error": None, "warnings": ["x" * 400]})
    pages = index.db.conn.execute("PRAGMA page_count").fetchone()[0]
    keep_ten = lambda source: Retention(runs=10, days=365)  # noqa: E731
    first = tidy_if_due(index, keep_ten, now=T0)
    assert first is not None and first.runs_removed == 2990 and first.pages_freed > 0
    assert index.db.conn.execute("PRAGMA page_count").fetchone()[0] < pages / 5
    assert index.db.conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 10
    assert tidy_if_due(index, keep_ten, now=T0 + timedelta(minutes=30)) is None  # too soon
    assert tidy_if_due(index, keep_ten, now=T0 + timedelta(hours=2)) is not None
    index.close()
