"""What a newcomer meets first: ``--help`` grouped by job, routes named, and one-line errors.

Each error is checked as the user sees it: the command's exit code (2 for a usage error) and its
one line on stderr naming what is wrong.  ``neuromirror://`` against a served mirror that does not
answer raises one ``OSError`` line, not the HTTP library's chain.  Source locks leave no file behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from neuromirror.cli import GROUPS, OTHER, command_modules, grouped


def nm(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neuromirror", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_help_groups_commands_by_job() -> None:
    p = nm("--help")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    heads = [f"  {job}:" for job in GROUPS]
    at = [out.index(h + "\n") for h in heads]
    assert at == sorted(at), "the jobs in order: mirror; pin and reproduce; read; keep and check; operate"
    for job, names in grouped([m.replace("_", "-") for m in command_modules()]):
        start = out.index(f"  {job}:\n")
        for name in names:
            assert f"\n    {name} " in out[start:], (job, name)
    # every command is listed once, and `neuromirror CMD --help` still works
    for name in ("sync", "urls", "serve", "check-config"):
        assert out.count(f"\n    {name} ") == 1
        assert nm(name, "--help").returncode == 0


def test_a_command_no_group_names_is_listed_under_other() -> None:
    assert grouped(["sync", "brand-new", "keep"]) == [
        ("mirror", ["sync"]),
        ("keep and check", ["keep"]),
        (OTHER, ["brand-new"]),
    ]


def test_serve_help_names_every_route() -> None:
    p = nm("serve", "--help")
    assert p.returncode == 0
    text = " ".join(p.stdout.split())
    for route in ("/dav/", "/dandisets/", "/zarrs/", "/zarr-manifests/", "/status.json", "/metrics", "/view/"):
        assert route in text, route


def test_get_to_a_file_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    for to, says in (
        ("/etc/passwd", "--to /etc/passwd: exists and is not a directory"),
        (str(tmp_path / "a-file" / "sub"), "is a file, not a directory"),
    ):
        p = nm("--root", str(tmp_path / "mirror"), "get", "dandi:000001@0.1.0", "--to", to)
        assert p.returncode == 2, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and says in p.stderr, p.stderr
    assert (tmp_path / "a-file").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: an unwritable --to cannot be made here")
def test_get_to_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    p = nm("--root", str(tmp_path / "mirror"), "get", "dandi:000001@0.1.0", "--to", str(locked / "clone"))
    assert p.returncode == 2 and "is not writable" in p.stderr, p.stderr


def test_pin_of_a_pattern_does_not_suggest_a_sync(tmp_path: Path) -> None:
    p = nm("--root", str(tmp_path), "pin", "dandi:*")
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "not a pattern" in p.stderr and "sync" not in p.stderr, p.stderr


def test_an_unreachable_served_mirror_is_one_oserror_line() -> None:
    import socket

    import fsspec

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fs = fsspec.filesystem("neuromirror", base_url=f"http://127.0.0.1:{port}/", skip_instance_cache=True)
    with pytest.raises(OSError) as err:
        fs.ls("dandi/000001@draft")
    text = str(err.value)
    assert "\n" not in text and f"127.0.0.1:{port}" in text and "does not answer" in text, text
    assert "HTTPConnectionPool" not in text and "Max retries" not in text


def test_source_locks_exclude_and_leave_no_file(tmp_path: Path) -> None:
    from neuromirror.dataset.mirror import Datasets

    mirror = Datasets(tmp_path / "root")
    inside, overlaps = [0], []

    def work() -> None:
        for _ in range(5):
            with mirror.lock("dandi:000999", wait=60):
                inside[0] += 1
                overlaps.append(inside[0])
                time.sleep(0.01)
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(overlaps) == 20 and set(overlaps) == {1}, overlaps
    assert list((mirror.state_dir / "locks").glob("*.lock")) == []
    mirror.close()
