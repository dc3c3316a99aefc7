"""A newcomer's first hour (issue 15): the command line as a new user meets it.

Each test is a short session: a stand-in DANDI archive on loopback, ``neuromirror``
run in-process (the ``cli`` fixture) or as the installed console script, then a
look at the output, the index (sqlite) and the datasets (git).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import CLI, git
from neuromirror.cli import main

T0 = datetime(2025, 2, 1, 9, 0, tzinfo=timezone.utc)
BIN = Path(sys.executable).parent  # the venv's bin: neuromirror, git-annex, datalad


def sigint_as_at_a_terminal() -> None:
    """In the child before it runs: Ctrl-C's default action. A shell starts background jobs (a CI
    runner's ``cmd &``) with SIGINT ignored, which the children inherit, and Python then installs
    no KeyboardInterrupt handler: the SIGINT a test sends would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def small_dandiset(archive, name: str, publish: bool = False) -> tuple[str, str | None]:  # noqa: ANN001
    ident = archive.create_dandiset(name=name, created=T0)
    archive.put_asset(ident, "sub-01/data.nwb", f"{name} data".encode() * 50, when=T0)
    archive.put_asset(ident, "README.md", f"# {name}\n".encode(), when=T0)
    return ident, (archive.publish(ident, when=T0) if publish else None)


def query(root: Path, sql: str, *params: object) -> list[tuple]:
    conn = sqlite3.connect(f"file:{root / '.neuromirror' / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def script_env(**extra: str) -> dict:
    """The environment of a user who did not activate the venv: its bin dir is not on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("NEUROMIRROR_ROOT", "NEUROMIRROR_INDEX")}
    env["PATH"] = (
        os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != BIN.resolve())
        or "/usr/bin:/bin"
    )
    env.update(extra)
    return env


# -- the git-annex installed with neuromirror ------------------------------------------------------


def test_console_script_finds_its_git_annex_without_the_venv_on_path(dandi_archive, tmp_path: Path) -> None:
    ident, version = small_dandiset(dandi_archive, "no-venv-on-path", publish=True)
    env = script_env()
    probe = subprocess.run(["sh", "-c", "command -v git-annex || echo none"], env=env, capture_output=True, text=True)
    if probe.stdout.strip() != "none":
        pytest.skip(f"git-annex is on PATH outside the venv here ({probe.stdout.strip()}): nothing to prove")
    exe = str(BIN / "neuromirror")
    root = tmp_path / "mirror"
    sync = subprocess.run(
        [exe, "--root", str(root), "sync", f"dandi:{ident}", "--dandi-api", dandi_archive.api_url, "-q"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert sync.returncode == 0, sync.stderr
    assert "git-annex" not in sync.stderr
    # git-annex ran (datalad create's init): the dataset is an annex
    assert git(root / "dandi" / ident, "config", "annex.uuid").strip()
    get = subprocess.run(
        [
            exe,
            "--root",
            str(root),
            "get",
            f"dandi:{ident}@{version}",
            "--to",
            str(tmp_path / "c"),
            "--allow-ip",
            "all",
            "-q",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert get.returncode == 0, get.stderr
    assert (tmp_path / "c" / "sub-01" / "data.nwb").read_bytes() == b"no-venv-on-path data" * 50


# -- a source that does not exist; forget ------------------------------------------------------------


def test_mistyped_and_missing_dandisets_leave_no_trace(cli: CLI, dandi_archive) -> None:  # noqa: ANN001
    # a typo in the id: one line, on stderr only
    code, out, err = cli("sync", "dandi:00027")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == ["neuromirror: 'dandi:00027': a dandiset id has 6 digits, e.g. dandi:000027"]
    # an id the archive does not have: said once, and nothing recorded
    ok, _ = small_dandiset(dandi_archive, "exists")
    assert "999999" not in dandi_archive.dandiset_ids()
    code, out, err = cli("sync", f"dandi:{ok}", "dandi:999999")
    assert code == 1
    assert "999999" not in out and out.splitlines()[-1] == "2 sources: 1 updated, 0 unchanged, 1 failed"
    lines = [ln for ln in err.splitlines() if "999999" in ln]
    assert len(lines) == 1 and "No such Dandiset" in lines[0], err
    assert query(cli.root, "SELECT id FROM sources") == [(f"dandi:{ok}",)]
    assert query(cli.root, "SELECT DISTINCT source FROM runs") == [(f"dandi:{ok}",)]
    assert not (cli.root / "dandi" / "999999").exists()
    status = cli.json("status")
    assert [r["source"] for r in status["sources"]] == [f"dandi:{ok}"]
    assert cli("publish", "dandi:*", "--to", str(cli.root.parent / "pub"))[0] == 0


def test_forget_a_source_and_its_dataset(cli: CLI, dandi_archive) -> None:  # noqa: ANN001
    a, _ = small_dandiset(dandi_archive, "forget-a")
    b, _ = small_dandiset(dandi_archive, "forget-b")
    assert cli("sync", f"dandi:{a}", f"dandi:{b}")[0] == 0
    # index only: the dataset stays (and says how reindex would bring it back)
    code, out, err = cli("forget", f"dandi:{a}")
    assert code == 0, err
    assert f"forgot dandi:{a}; its dataset stays at {cli.root / 'dandi' / a}" in out
    assert query(cli.root, "SELECT count(*) FROM runs WHERE source=?", f"dandi:{a}") == [(0,)]
    assert query(cli.root, "SELECT count(*) FROM versions WHERE source=?", f"dandi:{a}") == [(0,)]
    assert [r["source"] for r in cli.json("status")["sources"]] == [f"dandi:{b}"]
    code, _, err = cli("versions", f"dandi:{a}")
    assert code == 2 and f"dandi:{a} is not mirrored here, in {cli.root}" in err
    # with --dataset: out of the root superdataset (committed, clean) and off the disk
    code, out, err = cli("forget", f"dandi:{b}", "--dataset")
    assert code == 0, err
    assert f"forgot dandi:{b}; removed its dataset dandi/{b}" in out
    assert not (cli.root / "dandi" / b).exists()
    assert f"dandi/{b}" not in git(cli.root, "config", "-f", ".gitmodules", "--list")
    assert f"dandi/{b}" not in git(cli.root, "ls-files")
    assert git(cli.root, "status", "--porcelain") == ""
    assert query(cli.root, "SELECT id FROM sources") == []
    code, _, err = cli("forget", "dandi:000000")
    # what is not there is not forgotten, and not to be synced first either (it said: run: neuromirror sync)
    assert code == 2 and f"dandi:000000 is not mirrored here, in {cli.root} (nothing to forget)" in err, err
    assert "sync" not in err


# -- read-only commands create nothing -----------------------------------------------------------------


def test_read_only_commands_create_nothing_and_name_the_root(tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("NEUROMIRROR_ROOT", raising=False)
    monkeypatch.delenv("NEUROMIRROR_INDEX", raising=False)
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "neuromirror-root"
    for argv in (
        ["versions", "dandi:000001"],
        ["pin", "DANDI:000001/draft"],
        ["search", "--path", "*.nwb"],
        ["cite", "dandi:000001"],
        ["diff", "dandi:000001@a", "dandi:000001@b"],
        ["verify", "dandi:000001"],
        ["lock", "dandi:000001", "-o", "x.lock"],
        ["publish", "dandi:000001", "--to", "pub"],
        ["reindex"],
        ["forget", "dandi:000001"],
        ["maintain"],
    ):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert f"no mirror at {root}" in err, (argv, err)
    assert main(["status"]) == 2  # no such root: a mistyped path, not a report of nothing
    assert (
        capsys.readouterr().err
        == f"neuromirror: no mirror at {root}: no such directory (pass --root or set NEUROMIRROR_ROOT)\n"
    )
    assert list(tmp_path.iterdir()) == []
    root.mkdir()  # a root that is there, with nothing mirrored yet: status says so
    assert main(["status"]) == 0
    assert f"no sources in {root} (no index {root}/.neuromirror/index.sqlite" in capsys.readouterr().out
    assert list(root.iterdir()) == []


# -- options where users put them ------------------------------------------------------------------


def test_global_options_after_the_command_and_version_and_log_level(dandi_archive, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    ident, _ = small_dandiset(dandi_archive, "options-after")
    root = tmp_path / "elsewhere"
    assert (
        main(
            ["sync", "--root", str(root), f"dandi:{ident}", "--dandi-api", dandi_archive.api_url, "-q", "-l", "warning"]
        )
        == 0
    )
    assert (root / "dandi" / ident / ".git").is_dir()
    capsys.readouterr()
    # given before and after the command: the one after wins, as the user typed it last
    assert main(["--root", str(tmp_path / "other"), "versions", f"dandi:{ident}", "--root", str(root), "--json"]) == 0
    assert [v["version"] for v in json.loads(capsys.readouterr().out)] == ["draft"]
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    from neuromirror import __version__

    assert capsys.readouterr().out.strip() == f"neuromirror {__version__}"
    assert main(["-l", "info", "--root", str(root), "status"]) == 0
    assert f"dandi:{ident}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["-l", "loud", "status"])
    assert "unknown log level 'loud'" in capsys.readouterr().err


def test_warnings_are_shown_by_default_and_log_level_sets_the_level(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    ident = dandi_archive.create_dandiset(name="warns", created=T0)
    dandi_archive.put_asset(ident, "../escape.nwb", b"evil", when=T0)
    dandi_archive.put_asset(ident, "good.nwb", b"good" * 10, when=T0)
    warning = f"WARNING neuromirror.dandi: DANDI:{ident}: refusing asset '../escape.nwb'"
    for name, options, shown in (("default", [], True), ("quiet", ["-l", "error"], False)):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "neuromirror",
                *options,
                "--root",
                str(tmp_path / name),
                "sync",
                f"dandi:{ident}",
                "--dandi-api",
                dandi_archive.api_url,
                "-q",
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 3, proc.stderr  # synced, an item refused
        assert (warning in proc.stderr) is shown, (name, proc.stderr)


def test_sync_config_then_a_spec(cli: CLI, dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    ident, _ = small_dandiset(dandi_archive, "config-then-spec")
    other, _ = small_dandiset(dandi_archive, "config-other")
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        f"defaults:\n  schedule: 1h\n  options: {{dandi-api: '{dandi_archive.api_url}'}}\n"
        f"sources:\n  - 'dandi:{ident}'\n  - 'dandi:{other}'\n"
    )
    code, out, err = cli("sync", "-c", str(cfg), f"dandi:{ident}")
    assert code == 0, err
    assert out.startswith(f"dandi:{ident}: 1 new version(s)") and other not in out


def test_the_same_source_named_twice_is_synced_once(cli: CLI, dandi_archive) -> None:  # noqa: ANN001
    a, _ = small_dandiset(dandi_archive, "dup-a")
    b, _ = small_dandiset(dandi_archive, "dup-b")
    glob_of_a = f"dandi:[{a[0]}]{a[1:]}"
    code, out, err = cli("sync", f"dandi:{a}", glob_of_a, f"dandi:{b}", f"DANDI:{b}")
    assert code == 0, err
    assert out.splitlines()[-1] == "2 sources: 2 updated, 0 unchanged, 0 failed"
    assert query(cli.root, "SELECT source, count(*) FROM runs GROUP BY source ORDER BY source") == [
        (f"dandi:{a}", 1),
        (f"dandi:{b}", 1),
    ]


# -- Ctrl-C --------------------------------------------------------------------------------------------


def test_ctrl_c_is_recorded_as_interrupted_not_as_a_failure(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    ident, _ = small_dandiset(dandi_archive, "ctrl-c")
    root = tmp_path / "mirror"
    cmd = [sys.executable, "-m", "neuromirror", "--root", str(root)]
    env = dict(os.environ, NEUROMIRROR_HTTP_RETRIES="1")
    plan = dandi_archive.faults
    plan.reset()  # the archive is the session's: no fault another test left queued may answer first
    old_timeout = plan.timeout_seconds
    # the archive stalls on the first API request (the user gives up): for longer than a loaded CI
    # machine can take to get there, or the stall ends on its own and the sync fails instead
    plan.timeout_seconds = 600
    plan.fail_next(1, "timeout")
    try:
        proc = subprocess.Popen(
            [*cmd, "sync", f"dandi:{ident}", "--dandi-api", dandi_archive.api_url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=sigint_as_at_a_terminal,
        )
        # until the sync has started its run AND is blocked on the stalled request (the stand-in took
        # the fault off its queue): a SIGINT any earlier could land in start-up instead of the wait
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                running = query(root, "SELECT count(*) FROM runs WHERE outcome='running'") == [(1,)]
            except sqlite3.OperationalError:  # no index, or no schema yet
                running = False
            if running and plan.pending == 0:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        plan.timeout_seconds = old_timeout
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "neuromirror: interrupted"
    assert query(root, "SELECT outcome, error FROM runs") == [("interrupted", "interrupted (Ctrl-C)")]
    status = subprocess.run([*cmd, "status"], capture_output=True, text=True, env=env)
    assert "failing" not in status.stdout and "KeyboardInterrupt" not in status.stdout, status.stdout
    assert git(root, "status", "--porcelain") == ""


def test_ctrl_c_while_a_worker_thread_waits_on_the_archive_ends_at_once(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """The Zarr list is read in a thread beside the draft's listing; when the archive never answers
    it, Ctrl-C still ends the sync at once (recorded as interrupted), not when the archive gives up."""
    ident, _ = small_dandiset(dandi_archive, "ctrl-c-worker")
    root = tmp_path / "mirror"
    plan = dandi_archive.faults
    plan.reset()
    old_timeout = plan.timeout_seconds
    plan.timeout_seconds = 600  # longer than the test would wait: only Ctrl-C can end it
    plan.set_only_paths(r"/zarr/\?")
    plan.set_rate(1.0, ("timeout",))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "neuromirror", "--root", str(root), "sync", f"dandi:{ident}"]
            + ["--dandi-api", dandi_archive.api_url],
            env=dict(os.environ, NEUROMIRROR_HTTP_RETRIES="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=sigint_as_at_a_terminal,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not plan.injected:
            time.sleep(0.05)  # until the Zarr list's request is stalled (the stand-in logged its fault)
        assert proc.poll() is None and plan.injected, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)  # the stall lasts 600 s
    finally:
        plan.reset()
        plan.set_only_paths(None)
        plan.timeout_seconds = old_timeout
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "neuromirror: interrupted"
    assert query(root, "SELECT outcome FROM runs") == [("interrupted",)]


# -- pipes ---------------------------------------------------------------------------------------------


def test_broken_pipe_exits_silently(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head` that has already gone
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "neuromirror", "--root", str(tmp_path), "status", "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == 141


# -- identifiers users copy -------------------------------------------------------------------------------


def test_identifiers_copied_from_the_archive_work_as_specs(cli: CLI, dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    ident, version = small_dandiset(dandi_archive, "copied-ids", publish=True)
    page = f"https://dandiarchive.org/dandiset/{ident}/{version}"
    code, out, err = cli("sync", page)  # --dandi-api (the stand-in) wins over the URL's instance
    assert code == 0, err
    assert out.startswith(f"dandi:{ident}: 2 new version(s)")
    pin = cli.json("pin", f"dandi:{ident}@{version}")
    for spec in (
        page,
        f"DANDI:{ident}/{version}",
        f"10.48324/dandi.{ident}/{version}",
        f"https://doi.org/10.48324/dandi.{ident}/{version}",
        f"dandi://dandi/{ident}@{version}",
    ):
        assert cli.json("pin", spec) == pin, spec
    assert cli.json("pin", f"https://dandiarchive.org/dandiset/{ident}/draft")["version"] == "draft"
    assert [v["version"] for v in cli.json("versions", f"DANDI:{ident}")] == [version, "draft"]
    code, out, _ = cli("cite", f"https://doi.org/10.48324/dandi.{ident}/{version}")
    assert code == 0 and version in out
    code, out, err = cli(
        "get",
        f"https://dandiarchive.org/dandiset/{ident}/{version}",
        "--to",
        str(tmp_path / "g"),
        "--allow-ip",
        "all",
        "-q",
    )
    assert code == 0, err
    # what names a file, or an instance we do not know, is refused in one line
    code, _, err = cli("pin", f"https://dandiarchive.org/dandiset/{ident}/draft/files?location=sub-01")
    assert code == 2 and "not of a file or folder" in err
    code, _, err = cli("pin", f"https://example.org/dandiset/{ident}")
    assert code == 2 and "example.org is not a known DANDI instance" in err


def test_dandi_instance_names_the_api(tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    """--dandi-instance and a URL of a known instance choose its API (a local one, nothing listens there)."""
    from neuromirror.commands.sync import dandi_options
    from neuromirror.spec import parse_spec

    monkeypatch.setenv("NEUROMIRROR_HTTP_RETRIES", "1")
    monkeypatch.delenv("NEUROMIRROR_DANDI_API", raising=False)
    assert (
        dandi_options(parse_spec("https://sandbox.dandiarchive.org/dandiset/000027"), {})["dandi_api"]
        == "https://api.sandbox.dandiarchive.org/api"
    )
    assert (
        dandi_options(parse_spec("dandi:000027"), {"dandi_instance": "dandi-sandbox", "dandi_api": "http://x/api"})[
            "dandi_api"
        ]
        == "https://api.sandbox.dandiarchive.org/api"
    )
    root = str(tmp_path / "r")
    assert main(["--root", root, "sync", "-i", "nowhere", "dandi:000027"]) == 2
    assert "unknown DANDI instance 'nowhere' (known: dandi, dandi-sandbox" in capsys.readouterr().err
    cfg = tmp_path / "m.yaml"
    cfg.write_text("defaults: {schedule: 1h, dandi-instance: nowhere}\nsources: ['dandi:000027']\n")
    assert main(["check-config", str(cfg)]) == 1
    assert "defaults.dandi-instance: unknown DANDI instance 'nowhere'" in capsys.readouterr().err


# -- progress off a terminal ------------------------------------------------------------------------------


def test_get_progress_off_a_terminal_is_clean_lines(cli: CLI, dandi_archive, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from neuromirror.util import progress

    ident = dandi_archive.create_dandiset(name="progress-lines", created=T0)
    for i in range(6):
        dandi_archive.put_asset(ident, f"sub-{i}/data.nwb", bytes([i]) * 200_000, when=T0)
    assert cli("sync", f"dandi:{ident}")[0] == 0
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)  # a line per refresh, as a long get prints every few seconds
    code, out, err = cli("get", f"dandi:{ident}", "--to", str(tmp_path / "g"), "--allow-ip", "all", "-J", "1")
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith(f"dandi:{ident}@draft")]
    assert len(lines) >= 2, err
    assert "\r" not in err
    assert all(ln == ln.rstrip() for ln in err.splitlines())
    assert all(x != y for x, y in zip(lines, lines[1:])), lines
    assert "100%" in lines[-1] and "6/6 files" in lines[-1], lines[-1]
    assert sum("6/6 files" in ln for ln in lines) == 1, lines  # the final state, once


def test_every_command_says_what_it_does_in_its_help() -> None:
    """``neuromirror CMD --help`` opens with a description for every command, not only the usage line."""
    import argparse

    from neuromirror.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    bare = sorted(name for name, p in sub.choices.items() if not (p.description or "").strip())
    assert not bare, f"commands whose --help has no description: {bare}"
