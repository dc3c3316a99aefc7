"""Mirror definitions (mirrors/*.yaml): the shipped examples load, every mistake is named by file, line and field."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from helpers.config import errors, write
from neuromirror.cli import main
from neuromirror.config import options as config_mod
from neuromirror.config.load import load_config, load_configs, sync_targets
from neuromirror.config.reader import ConfigError
from neuromirror.config.schedule import Backoff, Schedule, cron_trigger, parse_duration
from neuromirror.spec import parse_spec
from neuromirror.util.dates import format_duration

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "mirrors").glob("*-example.yaml"))


# -- the examples shipped in the repository ------------------------------------


@pytest.mark.parametrize("name", ["dandi-example.yaml", "boss-example.yaml"])
def test_shipped_examples_exist(name: str) -> None:
    assert (REPO / "mirrors" / name).exists()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_shipped_examples_are_valid(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.sources, path
    for s in cfg.sources:
        parse_spec(s.spec, allow_version=False)
        s.schedule.trigger()  # APScheduler accepts it
    code = main(["check-config", str(path)])
    assert code == 0


def test_dandi_example_contents() -> None:
    cfg = load_config(REPO / "mirrors" / "dandi-example.yaml")
    by_spec = {s.spec: s for s in cfg.sources}
    assert by_spec["dandi:000027"].schedule == Schedule(cron="0 3 * * *", timezone="UTC")
    assert by_spec["dandi:000027"].options["dandi_api"] == "https://api.dandiarchive.org/api"
    assert by_spec["dandi:*"].enabled is False  # written as {archive: dandi, all: true}
    assert by_spec["dandi:000003"].publish == {"to": "/srv/neuromirror-public"}
    assert cfg.jobs == 2


# -- a complete, valid file ----------------------------------------------------


def test_full_schema(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
        root: ./mirror-root
        jobs: 3
        defaults:
          schedule: {interval: 1h30m}
          dandi-api: http://example.org/api       # options may sit directly in defaults, flag spelling too
          backoff: {initial: 30s, max: 10m, factor: 3}
          publish: published                      # a string is {to: ...}; relative = next to this file
        sources:
          - "https://dandiarchive.org/dandiset/000027"   # an identifier copied from the archive
          - spec: "dandi:000028"
            schedule: {cron: "@daily", timezone: Europe/Berlin, jitter: 1m}
            options: {engine: batch}
            publish: null                         # not this one
          - archive: dandi
            all: true
            schedule: 86400
            enabled: false
          - spec: "boss:coll/exp"
            schedule: "*/15 * * * *"
            backoff: {max: 1h}
            publish: {to: "ssh://host/srv/{slug}.git", name: pub}
    """,
    )
    cfg = load_config(p)
    assert cfg.root == (tmp_path / "mirror-root").absolute()
    assert cfg.jobs == 3
    a, b, c, d = cfg.sources
    assert a.spec == "dandi:000027" and a.line == 9
    assert a.schedule == Schedule(interval=5400.0)
    assert a.options == {"dandi_api": "http://example.org/api"}
    assert a.backoff == Backoff(initial=30.0, factor=3.0, max=600.0)
    assert a.publish == {"to": str(tmp_path / "published")}
    assert b.schedule.cron == "@daily" and b.schedule.timezone == "Europe/Berlin" and b.schedule.jitter == 60
    assert b.options == {"dandi_api": "http://example.org/api", "engine": "batch"} and b.engine == "batch"
    assert b.publish is None
    assert c.spec == "dandi:*" and c.is_glob and not c.enabled and c.schedule.interval == 86400
    assert [s.spec for s in cfg.enabled_sources] == ["dandi:000027", "dandi:000028", "boss:coll/exp"]
    assert d.schedule.cron == "*/15 * * * *"
    assert d.backoff == Backoff(initial=30.0, factor=3.0, max=3600.0)  # merged over the defaults
    assert d.publish == {"to": "ssh://host/srv/{slug}.git", "name": "pub"}
    assert json.dumps(cfg.to_json())  # serialisable for check-config --json
    # the options a sync gets: every known option's default, then the file's
    opts = b.sync_options()
    assert opts["dandi_api"] == "http://example.org/api" and opts["engine"] == "batch"


def test_yaml_anchors_and_merge_keys(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
        x-nightly: &nightly {cron: "0 2 * * *"}
    """,
    )
    # unknown top-level keys are refused, anchors belong under a known key
    assert "unknown key 'x-nightly'" in errors(p)[0]
    p = write(
        tmp_path,
        """
        defaults:
          schedule: &nightly {cron: "0 2 * * *"}
        sources:
          - {spec: "dandi:000001", schedule: *nightly}
          - spec: "dandi:000002"
            schedule: {<<: *nightly, timezone: Asia/Tokyo}
    """,
    )
    a, b = load_config(p).sources
    assert a.schedule.cron == b.schedule.cron == "0 2 * * *" and b.schedule.timezone == "Asia/Tokyo"


# -- errors: file, line, field -------------------------------------------------


def test_misspelt_schedule_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        tmp_path,
        """
        defaults:
          schedule: {interval: 6h}
        sources:
          - spec: "dandi:000027"
          - spec: "dandi:000028"
            schedule:
              intrval: 30m
    """,
    )
    monkeypatch.chdir(tmp_path)
    assert errors(Path("m.yaml")) == ["m.yaml:7: sources[1].schedule: unknown key 'intrval' (did you mean 'interval'?)"]


def test_every_error_reported_at_once_in_line_order(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
        jobs: many
        sources:
          - spec: "dandi:12345"
            schedule: {cron: "61 * * * *"}
          - spec: "figshare:1"
            schedule: {interval: soon}
          - spec: "aind:a/b"
            schedule: {cron: "0 3 * *"}
          - spec: "dandi:000001"
            schedule: {interval: 0}
          - spec: "boss:c/e"
            schedule: {cron: "0 3 * * *", interval: 1h}
          - spec: "boss:c/e2"
            schedule: {interval: 1h, timezone: Mars/Olympus}
          - spec: "dandi:000002"
          - spec: 27
            schedule: 1h
          - spec: "dandi:000003"
            schedule: {interval: 1h}
            backoff: {initial: 1h, max: 1m}
            publish: {name: x}
            enabled: "yes"
            colour: blue
    """,
    )
    errs = errors(p)
    f = str(p)
    expected = [
        f"{f}:1: jobs: expected a whole number from 1 to 256, got a str ('many')",
        f"{f}:3: sources[0].spec: 'dandi:12345': a dandiset id has 6 digits, e.g. dandi:000027",
        f"{f}:4: sources[0].schedule.cron: invalid cron expression:",
        f"{f}:5: sources[1].spec: unknown archive 'figshare'",
        f"{f}:6: sources[1].schedule.interval: 'soon' is not a duration",
        f"{f}:7: sources[2].spec: 'aind:a/b': an AIND asset name is a top-level prefix without '/'",
        f"{f}:8: sources[2].schedule.cron: invalid cron expression: '0 3 * *': a cron expression has 5 fields",
        f"{f}:10: sources[3].schedule.interval: a duration must be positive, got 0",
        f"{f}:12: sources[4].schedule: give exactly one of 'cron'",
        f"{f}:14: sources[5].schedule.timezone: unknown time zone 'Mars/Olympus'",
        f"{f}:15: sources[6]: no schedule: set 'schedule' here or in 'defaults'",
        f'{f}:16: sources[7].spec: expected a SPEC like "dandi:000027" in quotes, got a number (27)',
        f"{f}:20: sources[8].backoff: max (1m) is below initial (1h)",
        f"{f}:21: sources[8].publish: missing 'to'",
        f"{f}:22: sources[8].enabled: expected true or false, got a str ('yes')",
        f"{f}:23: sources[8]: unknown key 'colour'",
    ]
    assert len(errs) == len(expected), "\n".join(errs)
    for got, want in zip(sorted(errs, key=lambda e: int(e.split(":")[1])), expected):
        assert got.startswith(want), f"{got!r} does not start with {want!r}"


@pytest.mark.parametrize(
    "text, want",
    [
        ("sources: [\n  {spec: 'dandi:000001'\n", ":3: not valid YAML"),
        ("sources:\n  - spec: 'dandi:000001'\n   schedule: 1h\n", ":3: not valid YAML"),
        ("", ":1: empty file"),
        ("- dandi:000001\n", ":1: expected a mapping"),
        ("defaults: {schedule: 1h}\n", ":1: missing 'sources:'"),
        ("sources: dandi:000001\n", ":1: sources: expected a list of sources"),
        ("sources: []\n", ":1: sources: the list is empty"),
        ("srcs: []\n", "unknown key 'srcs' (did you mean 'sources'?)"),
        (
            "defaults: {schedule: 1h}\nsources:\n  - spec: 'dandi:000001'\n    spec: 'dandi:000002'\n",
            ":4: sources[0].spec: duplicate key (first on line 3)",
        ),
        (
            "defaults: {schedule: 1h}\nsources:\n  - dandi:000001\n  - DANDI:000001\n",
            ":4: sources[1]: dandi:000001 is listed twice (first on line 3)",
        ),
        ("defaults: {schedule: 1h}\nsources:\n  - {archive: dandi}\n", ":3: sources[0]: 'archive' needs 'all: true'"),
        (
            "defaults: {schedule: 1h}\nsources:\n  - {spec: 'dandi:000001', all: true}\n",
            ":3: sources[0]: give either 'spec' or 'archive'",
        ),
        ("defaults: {schedule: 1h}\nsources:\n  - {schedule: 1h}\n", ":3: sources[0]: missing 'spec'"),
        ("defaults: {schedule: 1h}\nsources:\n  - {spec: 'dandi:000001@0.1'}\n", "a version is not allowed here"),
        ("defaults: {schedule: 1h, jobs: 0}\nsources: [dandi:000001]\n", ":1: defaults.jobs: expected a whole number"),
        (
            "defaults: {schedule: 1h}\nsources:\n  - {spec: 'dandi:000001', options: {engine: turbo}}\n",
            "sources[0].options.engine: unknown engine 'turbo'",
        ),
        (
            "defaults: {schedule: 1h}\nsources:\n  - {spec: 'dandi:000001', publish: {to: 'x/{nope}'}}\n",
            "sources[0].publish.to: bad placeholder 'nope'",
        ),
        (
            "defaults: {schedule: {cron: '0 0 * * 8'}}\nsources: [dandi:000001]\n",
            "defaults.schedule.cron: invalid cron expression: day of week '8'",
        ),
        ("root: 3\nsources: []\n", ":1: root: expected a directory path"),
        # keep: and store: (docs/service.md)
        (
            "store: /s\ndefaults: {schedule: 1h}\nsources:\n  - {spec: 'dandi:000001', keep: sometimes}\n",
            ":4: sources[0].keep: unknown keep policy 'sometimes': expected none, published, all",
        ),
        (
            "defaults: {schedule: 1h}\nsources:\n  - {spec: 'dandi:000001', keep: published}\n",
            ":3: sources[0].keep: keeping needs a store",
        ),
        (
            "store: /s\ndefaults: {schedule: 1h, keep: {versions: drafts}}\nsources: [dandi:000001]\n",
            ":2: defaults.keep.versions: expected published or all",
        ),
        (
            "store: /s\ndefaults: {schedule: 1h}\nsources:\n  - {spec: 'dandi:000001', keep: {budget: lots}}\n",
            ":4: sources[0].keep.budget: not a size: 'lots'",
        ),
        (
            "store: /s\ndefaults: {schedule: 1h}\nsources:\n  - {spec: 'dandi:000001', keep: {includes: 'a/*'}}\n",
            "sources[0].keep: unknown key 'includes' (did you mean 'include'?)",
        ),
        (
            "store: /s\ndefaults: {schedule: 1h}\nsources:\n  - {spec: 'dandi:000001', keep: [all]}\n",
            "sources[0].keep: expected none, published, all or a mapping",
        ),
        (
            "defaults: {schedule: 1h}\nsources:\n  - {spec: 'dandi:000001', store: 'https://example.org/s'}\n",
            ":3: sources[0].store: store kind not supported yet",
        ),
        ("store: /a\ndefaults: {schedule: 1h, store: /b}\nsources: [dandi:000001]\n", "'store' is given twice"),
    ],
)
def test_single_errors(tmp_path: Path, text: str, want: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    errs = errors(p)
    assert any(want in e for e in errs), errs
    assert all(e.startswith(str(p)) for e in errs)


def test_store_and_keep_policies(tmp_path: Path) -> None:
    from neuromirror.config.model import KeepPolicy

    p = write(
        tmp_path,
        """
        store: lab-store            # relative to this file
        defaults:
          schedule: 6h
          keep: published
        sources:
          - dandi:000001
          - spec: "dandi:000002"
            keep: {versions: all, include: "sub-01/*", exclude: ["*.mp4", "*.avi"], max_file_size: 10M, budget: 1T}
          - spec: "dandi:000003"
            keep: none
          - spec: "dandi:000004"
            store: /mnt/other
        """,
    )
    by_spec = {s.spec: s for s in load_config(p).sources}
    assert by_spec["dandi:000001"].store == str(tmp_path / "lab-store")
    assert by_spec["dandi:000001"].keep == KeepPolicy("published")
    assert by_spec["dandi:000002"].keep == KeepPolicy("all", ("sub-01/*",), ("*.mp4", "*.avi"), 10**7, 10**12)
    assert by_spec["dandi:000003"].keep is None
    assert by_spec["dandi:000004"].store == "/mnt/other" and by_spec["dandi:000004"].keep == KeepPolicy()
    assert by_spec["dandi:000002"].to_json()["keep"]["budget"] == 10**12


def test_missing_file(tmp_path: Path) -> None:
    assert errors(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: no such file"]


def test_option_names_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(
        tmp_path,
        """
        defaults: {schedule: 1h}
        sources:
          - spec: "dandi:000001"
            options: {dandi_apii: "http://x/api"}
    """,
    )
    # every source module imported: an unknown option is an error with a suggestion
    monkeypatch.setattr(config_mod, "_known_options_cache", ({"dandi_api": None, "engine": "fast-import"}, True))
    assert errors(p) == [f"{p}:4: sources[0].options: unknown key 'dandi_apii' (did you mean 'dandi_api'?)"]
    # a source module missing: unknown names pass with a warning (they may be that module's)
    monkeypatch.setattr(config_mod, "_known_options_cache", ({"dandi_api": None, "engine": "fast-import"}, False))
    cfg = load_config(p)
    assert cfg.sources[0].options == {"dandi_apii": "http://x/api"}
    assert cfg.warnings and "dandi_apii" in cfg.warnings[0]


def test_known_options_come_from_the_source_modules() -> None:
    known, _ = config_mod.known_options()
    assert "dandi_api" in known and "engine" in known


# -- several files -------------------------------------------------------------


def test_load_configs_merges_and_refuses_conflicts(tmp_path: Path) -> None:
    a = write(tmp_path, "jobs: 1\ndefaults: {schedule: 1h}\nsources: [dandi:000001]\n", "a.yaml")
    b = write(tmp_path, "jobs: 4\ndefaults: {schedule: 2h}\nsources: [dandi:000002, 'aind:ecephys_*']\n", "b.yaml")
    cfg = load_configs([a, b])
    assert [s.spec for s in cfg.sources] == ["dandi:000001", "dandi:000002", "aind:ecephys_*"]
    assert cfg.jobs == 4 and cfg.files == [str(a), str(b)]
    c = write(tmp_path, "defaults: {schedule: 1h}\nsources: [dandi:000002]\n", "c.yaml")
    with pytest.raises(ConfigError) as info:
        load_configs([a, b, c])
    assert str(info.value) == f"{c}:2: dandi:000002 is also defined at {b}:3"
    r1 = write(tmp_path, "root: /srv/one\ndefaults: {schedule: 1h}\nsources: [dandi:000003]\n", "r1.yaml")
    r2 = write(tmp_path, "root: /srv/two\ndefaults: {schedule: 1h}\nsources: [dandi:000004]\n", "r2.yaml")
    with pytest.raises(ConfigError, match="root: /srv/two differs from /srv/one"):
        load_configs([r1, r2])
    # root in the file and --root must agree
    cfg = load_config(r1)
    assert cfg.resolve_root(None) == Path("/srv/one")
    assert cfg.resolve_root("/srv/one") == Path("/srv/one")
    with pytest.raises(Exception, match=r"^root /srv/other: differs from .*r1\.yaml's root /srv/one"):
        cfg.resolve_root("/srv/other")


def test_sync_targets(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
        defaults: {schedule: 1h, options: {dandi_api: "http://a/api"}}
        sources:
          - spec: "dandi:000001"
          - spec: "dandi:00001*"
            options: {dandi_api: "http://b/api"}
          - spec: "dandi:000002"
            enabled: false
    """,
    )
    cfg = load_config(p)
    base = {"dandi_api": "http://cli/api", "engine": "fast-import"}
    got = [(s.source, o["dandi_api"]) for s, o in sync_targets(cfg, [], base)]
    assert got == [("dandi:000001", "http://a/api"), ("dandi:00001*", "http://b/api")]
    specs = [parse_spec(x) for x in ("dandi:000001", "dandi:000015", "dandi:000099")]
    got = [(s.source, o["dandi_api"]) for s, o in sync_targets(cfg, specs, base)]
    assert got == [
        ("dandi:000001", "http://a/api"),
        ("dandi:000015", "http://b/api"),
        ("dandi:000099", "http://cli/api"),
    ]


# -- schedules -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [
        (90, 90.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("6h", 21600.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("1h 30m", 5400.0),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "1x", "h", "-5", "0", "30m10", True, None, "inf"])
def test_parse_duration_refuses(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (1, 90, 3600, 5400, 86400 + 60, 0.5)] == [
        "1s",
        "1m30s",
        "1h",
        "1h30m",
        "1d1m",
        "0.5s",
    ]


@pytest.mark.parametrize(
    "dow, names",
    [
        ("1-5", "mon,tue,wed,thu,fri"),  # crontab: 0 = Sunday (APScheduler alone would read mon=0)
        ("0", "sun"),
        ("7", "sun"),
        ("5-7", "sun,fri,sat"),
        ("sat,sun", "sun,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("1/3", "mon,thu"),
        ("mon-wed", "mon,tue,wed"),
    ],
)
def test_cron_day_of_week_means_what_crontab_means(dow: str, names: str) -> None:
    trig = cron_trigger(f"0 3 * * {dow}")
    field = next(f for f in trig.fields if f.name == "day_of_week")
    assert str(field) == names
    # and the trigger fires on those days: 2026-11-16 is a Monday
    start = datetime(2026, 11, 15, 12, tzinfo=timezone.utc)  # Sunday noon
    fired = set()
    t = start
    for _ in range(7):
        t = trig.get_next_fire_time(None, t)
        fired.add(t.strftime("%a").lower())
        t = t.replace(hour=4)
    assert fired == set(names.split(","))


def test_schedule_next_after_and_describe() -> None:
    t = datetime(2026, 1, 1, 3, 0, tzinfo=timezone.utc)
    assert Schedule(interval=60).next_after(t) == datetime(2026, 1, 1, 3, 1, tzinfo=timezone.utc)
    assert Schedule(cron="0 3 * * *").next_after(t) == datetime(2026, 1, 2, 3, 0, tzinfo=timezone.utc)
    assert Schedule(interval=5400).describe() == "every 1h30m"
    assert Schedule(cron="0 3 * * *", timezone="Europe/Berlin").describe() == "cron '0 3 * * *' (Europe/Berlin)"
    with pytest.raises(ValueError):
        Schedule()


def test_backoff_is_exponential_and_capped() -> None:
    b = Backoff(initial=60, factor=2, max=600)
    assert [b.delay(k) for k in range(0, 7)] == [0, 60, 120, 240, 480, 600, 600]
    assert Backoff(initial=1, factor=2, max=8).delay(10_000) == 8


# -- the check-config command --------------------------------------------------


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROMIRROR_CONTACT", "tests@example.org")  # else one warning: no contact (test_user_agent)
    good = write(
        tmp_path,
        "defaults: {schedule: 1h}\nsources: [dandi:000001, {spec: 'dandi:000002', schedule: '0 3 * * 1-5'}]\n",
        "good.yaml",
    )
    bad = write(tmp_path, "sources:\n  - spec: dandi:000001\n    schedule: {intrval: 1h}\n", "bad.yaml")
    assert main(["check-config", str(good)]) == 0
    out, err = capsys.readouterr()
    assert f"{good}: ok, 2 sources" in out and "dandi:000002  cron '0 3 * * 1-5' (UTC)" in out and not err
    assert main(["check-config", str(good), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert f"{bad}:3: sources[0].schedule: unknown key 'intrval' (did you mean 'interval'?)" in err
    assert "1 invalid mirror definition" in err
    assert main(["check-config", "--json", str(bad)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["files"][0]["errors"][0].startswith(f"{bad}:3: ")
    # two valid files that define the same source are refused together
    dup = write(tmp_path, "defaults: {schedule: 1h}\nsources: [dandi:000001]\n", "dup.yaml")
    assert main(["check-config", str(good), str(dup)]) == 1
    assert "dandi:000001 is also defined at" in capsys.readouterr().err


def test_a_store_that_is_a_file_and_a_list_for_one_url_are_refused(tmp_path: Path) -> None:
    """Tried as a new user would: ``store: /etc/passwd`` passed check-config and failed at the first key kept;
    ``dandi_api: [a, b]`` passed and reached the source as a list. Both are now named by file, line and field."""
    plain = tmp_path / "plain-file"
    plain.write_text("not a directory\n")
    p = write(
        tmp_path,
        f"""
        store: {plain}/keep
        defaults: {{schedule: 1h}}
        sources:
          - spec: "dandi:000001"
            options: {{dandi_api: [http://a/api, http://b/api], channels: [images, annotations]}}
    """,
    )
    assert errors(p) == [
        f"{p}:1: store: {plain}/keep: {plain} is a file, not a directory (a store is a directory or a URL)",
        f"{p}:5: sources[0].options.dandi_api: expected one value, got a list (dandi_api takes one)",
    ]
    # a list stays fine where the option takes several values (channels, as --channels a,b)
    ok = write(
        tmp_path,
        "defaults: {schedule: 1h}\nsources:\n  - spec: 'boss:c/e'\n    options: {channels: [a, b]}\n",
        "b.yaml",
    )
    assert load_config(ok).sources[0].options["channels"] == ["a", "b"]
