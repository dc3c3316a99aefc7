"""Config validation by rule tables (issue 41): one rule kind per kind of value, wherever the field is.

A duration is read by the same rule in every section (``schedule.jitter``, ``backoff.max``,
``verify.period``, ``drill.every``, ``keep.expire_after``), so one bad value gets one wording;
a section's errors come in its table's order, each at its own line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from neuromirror.config.load import load_config
from neuromirror.config.reader import ConfigError


def errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(issue) for issue in info.value.issues]


def test_a_bad_duration_reads_the_same_in_every_section(tmp_path: Path) -> None:
    store, scratch = tmp_path / "store", tmp_path / "scratch"
    store.mkdir()
    scratch.mkdir()
    found = errors(
        tmp_path,
        f"""\
        store: {store}
        sources:
          - spec: "dandi:000027"
            schedule: {{interval: 6h, jitter: soon}}
            backoff: {{max: soon}}
            verify: {{period: soon}}
            drill: {{to: {scratch}, every: soon}}
            keep: {{versions: all, expire_after: soon}}
        """,
    )
    fields = ["schedule.jitter", "backoff.max", "verify.period", "drill.every", "keep.expire_after"]
    assert [e.split(": ", 2)[1] for e in found] == [f"sources[0].{f}" for f in fields]
    assert {e.split(": ", 2)[2] for e in found} == {
        "'soon' is not a duration: use e.g. 90s, 30m, 6h, 1h30m, 1d, 1w or a number of seconds"
    }
    assert [e.split(":")[1] for e in found] == ["4", "5", "6", "7", "8"]


def test_a_sections_errors_come_in_its_tables_order(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        """\
        defaults:
          schedule: 6h
        sources:
          - spec: "dandi:000027"
            backoff: {factor: 0, max: never, initial: -1}
            retention: {days: 0, runs: 0}
            enabled: maybe
        """,
    )
    assert [e.split(": ", 2)[1] for e in found] == [
        "sources[0].backoff.initial",
        "sources[0].backoff.max",
        "sources[0].backoff.factor",
        "sources[0].retention.runs",
        "sources[0].retention.days",
        "sources[0].enabled",
    ]
    assert found[2].endswith("expected a number from 1 to 100, got a number (0)")
    assert found[3].endswith("expected a number of runs (1 or more), got a number (0)")
    assert found[4].endswith("expected a positive number of days, got 0 (a number of days or a duration such as 90d)")
    assert found[5].endswith("expected true or false, got a str ('maybe')")
