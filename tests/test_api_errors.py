"""An error about one argument names the argument, not a command-line flag (issue 58), and the command line
says the same mistake as its option, in one place (``cli.main``: ``NeuromirrorError.cli_line``).

Each case is one mistake made twice on the same mirror: by a script (a call into ``neuromirror.api``, or the
service's ``serve_view`` for the view's address) and by the command (``python -m neuromirror``, its own
process, as ``tests/test_api_script.py`` runs it).  The script's message has no ``--flag`` and starts with the
argument it is about (``.argument`` says which); the command prints the option form, one line, exit 2.
(tests/test_python_api.py checks the error kinds a script catches; tests/test_house_rules.py that no raise
below the command line names a flag.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from helpers.keep import make_dandiset


def cli(root: Path, *args: str) -> tuple[int, str]:
    """``neuromirror --root ROOT ARGS...`` as its own process: (exit code, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stderr


def script_says(call: Callable[[], Any], kind: type[BaseException], argument: str) -> str:
    """What the call raised: of ``kind``, about ``argument`` and naming it first, with no flag in it."""
    with pytest.raises(kind) as caught:
        call()
    said = str(caught.value)
    assert getattr(caught.value, "argument", None) == argument, (said, argument)
    assert said.startswith(argument) or argument == "root", said
    assert not re.search(r"--[a-z]", said), f"a script is told a flag: {said}"
    return said


def cli_says(root: Path, args: list[str], expected: str) -> None:
    """The command's one line for the same mistake: exit 2, the option form."""
    code, err = cli(root, *args)
    assert code == 2 and err.strip().splitlines() == [f"neuromirror: {expected}"], (code, err)


def test_a_mirror_not_there_is_said_by_where_it_is_and_the_cli_says_how_to_name_another(tmp_path: Path) -> None:
    from neuromirror import api

    nowhere = tmp_path / "nowhere"
    said = script_says(lambda: api.open(nowhere), api.NotMirrored, "root")
    index = nowhere / ".neuromirror" / "index.sqlite"
    assert said == f"no mirror at {nowhere} (no index {index})"
    nowhere.mkdir()  # a directory with no index: the command line adds its own way to name a root
    cli_says(
        nowhere,
        ["versions", "dandi:000001"],
        f"no mirror at {nowhere} (no index {index}; pass --root or set NEUROMIRROR_ROOT)",
    )
    gone = tmp_path / "gone"
    said = script_says(lambda: api.Mirror(gone).status(), api.NotMirrored, "root")
    assert said == f"no mirror at {gone}: no such directory"
    cli_says(gone, ["status"], f"no mirror at {gone}: no such directory (pass --root or set NEUROMIRROR_ROOT)")


def test_a_store_setting_is_said_by_its_argument_and_option(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror import api

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 1_000})
    plain = tmp_path / "plain-store"
    with api.open(d.run.root) as m:
        said = script_says(lambda: m.keep(d.spec, to=str(plain), pack_size=4096), api.BadInput, "pack_size")
        assert said == f"pack_size is for packed stores (pack+file:///PATH, pack+s3://BUCKET/PREFIX), not {plain}"
        args = ["keep", d.spec, "--to", str(plain), "--pack-size", "4096"]
        cli_says(
            d.run.root,
            args,
            f"--pack-size is for packed stores (pack+file:///PATH, pack+s3://BUCKET/PREFIX), not {plain}",
        )
        said = script_says(
            lambda: m.keep(d.spec, to=str(plain), storage_class="GLACIER"), api.BadInput, "storage_class"
        )
        assert said == f"storage_class is for S3 stores (s3://, pack+s3://), not {plain}"
        args = ["keep", d.spec, "--to", str(plain), "--storage-class", "GLACIER"]
        cli_says(d.run.root, args, f"--storage-class is for S3 stores (s3://, pack+s3://), not {plain}")
        # a packed store keeps the pack size it was made with
        packed = f"pack+file://{tmp_path}/packed"
        assert m.keep(d.spec, to=packed, pack_size=2048).check().ok
        said = script_says(lambda: m.keep(d.spec, to=packed, pack_size=4096), api.UserError, "pack_size")
        assert said.startswith(f"pack_size 4096: {packed} was made with pack size 2048 ") and "is fixed" in said
        code, err = cli(d.run.root, "keep", d.spec, "--to", packed, "--pack-size", "4096")
        assert code == 2 and err.startswith(f"neuromirror: --pack-size 4096: {packed} was made with pack size 2048 ")
    assert not plain.exists()  # every mistake said before a store was made


def test_the_views_address_is_said_by_its_argument_and_option(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror import api
    from neuromirror.service.running import ServeOptions, serve_view

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 1_000})
    for address, why in (("example.org", "expected HOST:PORT"), ("127.0.0.1:70000", "the port must be a number")):
        options = ServeOptions(root=str(d.run.root), http=address, no_schedule=True)
        said = script_says(lambda o=options: serve_view(o, lambda line: None), api.UserError, "http")
        assert said.startswith(f"http {address!r}: {why}"), said
        code, err = cli(d.run.root, "serve", "--no-schedule", "--http", address)
        assert code == 2 and err.startswith(f"neuromirror: --http {address!r}: {why}"), (code, err)
    options = ServeOptions(root=str(d.run.root), no_schedule=True)
    script_says(lambda: serve_view(options, lambda line: None), api.BadInput, "http")
    cli_says(d.run.root, ["serve", "--no-schedule"], "serve --no-schedule: give --http HOST:PORT to serve the view on")


def test_a_root_named_twice_is_said_by_its_argument_and_option(tmp_path: Path) -> None:
    from neuromirror import api

    definitions = tmp_path / "m.yaml"
    definitions.write_text(f"root: {tmp_path / 'one'}\ndefaults: {{schedule: 1h}}\nsources: [dandi:000001]\n")
    other = tmp_path / "other"
    other.mkdir()
    said = script_says(lambda: api.Mirror.definitions(definitions).resolve_root(str(other)), api.UserError, "root")
    assert said == f"root {other}: differs from {definitions}'s root {tmp_path / 'one'}; drop one of them"
    cli_says(other, ["status", "--config", str(definitions)], "--" + said)


# -- what a result says (not raised: a note, a reason, a line), read by a script as well as on the command line --
# Each names the thing, the same words on both sides (their JSON is the same bytes); a hint of what to run is said
# as the command (`neuromirror verify --stores`).  tests/test_house_rules.py checks every string below the command line.


def no_flag(said: str) -> str:
    """``said``, when it names no flag outside a command said in backticks."""
    assert not re.search(r"--[a-z]", re.sub(r"`neuromirror [^`]*`", "", said)), f"a script is told a flag: {said}"
    return said


def test_verify_kept_with_no_store_says_to_name_one(dandi_archive, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    import json
    import os

    from neuromirror import api

    monkeypatch.delenv("NEUROMIRROR_STORE", raising=False)
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 1_000})
    expected = {
        "kind": "store",
        "path": None,
        "detail": "no store named or recorded: name one (a directory or s3://BUCKET) or set NEUROMIRROR_STORE",
    }
    with api.open(d.run.root) as m:
        report = m.verify(d.spec, kept=True)
    assert not report.ok
    stores = [m for m in report.to_json()["mismatches"] if m["kind"] == "store"]
    assert [{k: m[k] for k in expected} for m in stores] == [expected] and no_flag(stores[0]["detail"])
    env = {k: v for k, v in os.environ.items() if k != "NEUROMIRROR_STORE"}
    done = subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(d.run.root), "verify", d.spec, "--kept", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 1, done.stderr  # a failed check, not a mistake in the command
    said = [m for m in json.loads(done.stdout)["mismatches"] if m["kind"] == "store"]  # one version: its report
    assert [{k: m[k] for k in expected} for m in said] == [expected]


def test_a_file_over_the_max_size_is_skipped_by_the_things_name(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror import api

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 1_000, "b.nwb": 10})
    with api.open(d.run.root) as m:
        kept = m.keep(d.spec, to=str(tmp_path / "store"), max_file_size=100)
    skipped = [s for v in kept.to_json()["versions"] for s in v["skipped"]]
    assert [(s["path"], s["why"]) for s in skipped] == [("a.nwb", "larger than the max file size (100 bytes)")]
    assert "skipped 1 file(s), 1000 B: larger than the max file size (100 bytes)" in "\n".join(kept.lines())
    # the command's own words: tests/test_keep.py::test_filters_and_the_json_report


def test_forget_and_lock_say_what_stays_and_what_to_give(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror import api

    root = tmp_path / "mirror"
    d = make_dandiset(dandi_archive, root, {"a.nwb": 1_000})
    e = make_dandiset(dandi_archive, root, {"b.nwb": 1_000})
    with api.open(root) as m:
        notes = m.lock(d.spec).notes
        stays = m.forget(d.source).lines()
    ds = root / "dandi" / d.id
    assert notes == [
        f"{d.source}: the lock names the mirror's local path {ds}; for a lock others can use, publish the dataset "
        "(neuromirror publish) or give the base url others clone from"
    ]
    assert stays == [
        f"forgot {d.source}; its dataset stays at {ds} "
        "(reindex would bring it back; forgetting the dataset too removes it)"
    ]
    code, out, err = e.run("lock", e.spec, "-o", str(tmp_path / "e.lock"))
    assert code == 0 and f"neuromirror: note: {e.source}: the lock names the mirror's local path" in err
    assert no_flag(err) and err.rstrip().endswith("or give the base url others clone from"), err
    code, out, err = e.run("forget", e.source)
    assert code == 0 and out.strip() == no_flag(
        f"forgot {e.source}; its dataset stays at {root / 'dandi' / e.id} "
        "(reindex would bring it back; forgetting the dataset too removes it)"
    ), (out, err)


def test_serving_the_view_alone_says_the_definitions_are_not_read(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    import os
    import queue
    import signal
    import threading

    from neuromirror.service.running import ServeOptions, serve_view

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 1_000})
    definitions = str(tmp_path / "m.yaml")  # not read, so not made
    expected = f"warning: only the view is served: the mirror definitions ({definitions}) are not read"
    said: list[str] = []

    answers: dict[str, tuple[int, str]] = {}

    def say(line: str) -> None:  # once it serves: what it answers, then the stop it waits for (its SIGTERM handler)
        said.append(line)
        if line.startswith("serving "):
            base = re.search(r"http://[^/ ]+", line)
            for path in ("/status.json", "/lindi/SHA256E-s1--00.nwb.lindi.json"):
                answers[path] = not_found(f"{base.group(0) if base else ''}{path}")
            os.kill(os.getpid(), signal.SIGTERM)

    options = ServeOptions(root=str(d.run.root), http="127.0.0.1:0", no_schedule=True, config=[definitions])
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert serve_view(options, say) == 0
        # the caller's own handlers are back once it returns (a notebook's Ctrl-C is its own again)
        assert {s: signal.getsignal(s) for s in handlers} == handlers
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    assert said[0] == no_flag(expected), said
    # what the view alone answers a script (or a browser) asking what it does not serve: the thing, no flag
    code, body = answers["/status.json"]
    assert code == 404 and body.startswith("/status.json: not found (only the view is served: /, "), body
    code, body = answers["/lindi/SHA256E-s1--00.nwb.lindi.json"]
    assert code == 404 and no_flag(body) == (
        "no LINDI reference of key SHA256E-s1--00.nwb (run `neuromirror sync --references` to make them)\n"
    ), body
    # the command says the same, before it says where it serves
    args = ["serve", "--no-schedule", "--http", "127.0.0.1:0", "--config", definitions]
    proc = subprocess.Popen(
        [sys.executable, "-m", "neuromirror", "--root", str(d.run.root), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr or ()], daemon=True).start()
    try:
        seen = [lines.get(timeout=60)]
        while "serving " not in seen[-1]:
            seen.append(lines.get(timeout=60))
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    assert seen[0].rstrip() == f"neuromirror: {expected}", seen


def not_found(url: str) -> tuple[int, str]:
    """A GET of ``url`` that is answered with an error: (status code, body)."""
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=30)
    return caught.value.code, caught.value.read().decode()


def test_the_audit_says_what_a_recheck_adds_by_its_name(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """``audit --json`` is the API's ``to_json()`` (tests/test_api_results.py), so one side is enough here."""
    from neuromirror import api

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 1_000})
    with api.open(d.run.root) as m:
        audited = m.audit(d.spec)
    kinds = audited.to_json()["kinds"]
    assert kinds["manifest-drift"]["covered"].startswith("recheck only: "), kinds
    assert kinds["no-doi"]["covered"] == "recorded; a recheck asks again"
    assert kinds["noncurrent-only"]["covered"] == "recorded; the expiry date with a recheck"
    assert [no_flag(k["covered"]) for k in kinds.values()]
    text = "\n".join(audited.lines())
    assert "not looked at without a recheck: manifest-drift" in no_flag(text), text


def test_the_pages_say_what_the_status_lines_say() -> None:
    """The status and backup pages word a hint of what to run as ``status`` does: the command, in backticks on
    the backup page (its sentences are escaped text) and as code on the source page."""
    import html

    from neuromirror.account.backup_model import Backup, SourceBackup
    from neuromirror.account.backup_text import source_lines
    from neuromirror.account.status import SourceStatus
    from neuromirror.api.status import refused_lines
    from neuromirror.service.pages.backup import as_html
    from neuromirror.service.pages.source import render_source_page

    b = SourceBackup("dandi:000001", zarrs_uncounted=2)
    hint = "(run `neuromirror status --copies` to count their objects)"
    assert [line for line in source_lines(b) if "Zarr" in line] == [f"  2 Zarr state(s) not counted here {hint}"]
    page = html.unescape(as_html(Backup(generated="2026-11-27T00:00:00Z", sources=[b])))
    assert f"2 Zarr state(s) are not counted here {hint}." in page
    refused = [{"path": f"z{i}.zarr", "reason": "checksum"} for i in range(5)]
    row = SourceStatus("dandi:000001", "refusing", refused=refused, refused_count=7)
    hint = "(run `neuromirror sync --json` to list them)"
    assert refused_lines(row)[-1] == f"dandi:000001: ... and 2 more refused {hint}"
    page = render_source_page(row, [], [], root="/srv/mirror")
    assert "<p>... and 2 more refused (run <code>neuromirror sync --json</code> to list them)</p>" in page


def test_a_failed_reproduction_says_its_clone_was_removed_in_plain_words(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """A lock whose commit the dataset never had: the clone is removed, said without the option that keeps it
    (``keep_failed``; ``reproduce --keep-failed``), the same line from the API's result and the command."""
    from neuromirror import api

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 1_000})
    lock = tmp_path / "good.lock"
    d.run.ok("lock", d.spec, "-o", str(lock))
    commit = d.run.json("pin", d.spec)["commit"]
    bad = tmp_path / "bad.lock"
    bad.write_text(lock.read_text().replace(commit, "0" * 40))
    removed = "(clone removed; failed clones are kept only when asked to)"
    with api.open(d.run.root) as m:
        done = m.reproduce(bad, to=tmp_path / "a", allow_ip="all")
    assert not done.ok and any(line.endswith(f": FAILED {removed}") for line in done.lines()), done.lines()
    assert no_flag("\n".join(done.lines()))
    code, out, err = d.run("reproduce", str(bad), "--to", str(tmp_path / "b"), "--allow-ip", "all")
    assert code == 1 and f": FAILED {removed}" in out, (out, err)
