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
