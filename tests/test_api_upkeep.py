"""``status``, ``publish``, ``maintain`` and ``reindex`` stand on the API (issue 58): for each verb the API's
``to_json()`` printed as the command prints it is the command's ``--json``, byte for byte, for the same call
on the same mirror (one dandiset synced from the DANDI stand-in, as a user syncs it); its ``lines()`` are what
the command prints without ``--json``; a wrong input raises the error class that names it.

What may differ between two calls and is dropped before comparing, only where it is: a repository's
``seconds`` in ``maintain``'s rows (how long measuring took) and each disk's ``free`` and ``used`` bytes in
``status`` (and its ``disk:`` lines: other writers on the machine's disk), and the second ``status --backup``'s
record was ``generated`` in.  Nothing else.
"""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from helpers.keep import Dandiset, make_dandiset


@pytest.fixture(scope="module")
def d(dandi_archive, tmp_path_factory) -> Dandiset:  # noqa: ANN001
    return make_dandiset(dandi_archive, tmp_path_factory.mktemp("upkeep") / "mirror", {"sub-01/a.nwb": 2_000})


def printed(obj: Any) -> str:
    """What the commands' ``--json`` prints of ``obj`` (``commands.common.print_json``)."""
    from neuromirror.commands.common import print_json

    out = io.StringIO()
    with redirect_stdout(out):
        print_json(obj)
    return out.getvalue()


def text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def without_free(doc: str) -> dict:
    """The JSON without the disks' free and used bytes."""
    got = json.loads(doc)
    for disk in got.get("disk") or []:
        disk.pop("free", None)
        disk.pop("used", None)
    return got


def test_status_is_the_commands_in_every_mode(d: Dandiset) -> None:
    from neuromirror import api

    with api.Mirror(d.run.root) as m:
        table = m.status()
        narrowed = m.status(d.source, at_risk=False)
        copies = m.status([d.spec], copies=True)
        backup = m.status(backup=True)
    cli = d.run.ok("status", "--json")
    assert printed(table.to_json()) == cli or without_free(printed(table.to_json())) == without_free(cli)
    assert [r.source for r in table.sources] == [d.source] and table.ok
    assert [(i.status.value, i.what) for i in table.items()] == [("ok", d.source)]
    assert without_free(printed(narrowed.to_json())) == without_free(
        d.run.ok("status", d.source, "--no-at-risk", "--json")
    )
    assert "at_risk" not in narrowed.to_json()["sources"][0]
    assert _only_disk_differs(text(table.lines()), d.run.ok("status"))
    assert printed(copies.to_json()) == d.run.ok("status", d.spec, "--copies", "--json")
    assert text(copies.lines()) == d.run.ok("status", d.spec, "--copies")
    assert _without_generated(printed(backup.to_json())) == _without_generated(d.run.ok("status", "--backup", "--json"))
    assert text(backup.lines()) == d.run.ok("status", "--backup")


def _without_generated(doc: str) -> dict:
    """The backup record without the second it was made in."""
    got = json.loads(doc)
    assert got.pop("generated")
    return got


def _only_disk_differs(a: str, b: str) -> bool:
    """The same text but for the disks' lines (their free bytes)."""
    return [x for x in a.splitlines() if not x.startswith("disk: ")] == [
        x for x in b.splitlines() if not x.startswith("disk: ")
    ]


def test_publish_is_the_commands(d: Dandiset, tmp_path: Path) -> None:
    from neuromirror import api

    base = tmp_path / "siblings"
    told: list[str] = []
    with api.Mirror(d.run.root) as m:
        first = m.publish(d.source, str(base), progress=told.append)
    assert first.ok and told == first.lines() and told[0].startswith(f"{d.source} -> ")
    assert first.to_json()["published"][0]["created"] is True
    cli = d.run.ok("publish", d.source, "--to", str(base), "--json")  # the same call again: nothing to push
    with api.Mirror(d.run.root) as m:
        again = m.publish(d.source, str(base))
    assert printed(again.to_json()) == cli
    assert text(again.lines()) == d.run.ok("publish", d.source, "--to", str(base))
    assert [(i.status.value, i.what) for i in again.items()] == [("ok", d.source)]


def test_maintain_is_the_commands(d: Dandiset) -> None:
    from neuromirror import api

    told: list[str] = []
    with api.Mirror(d.run.root) as m:
        dry = m.maintain(dry_run=True, progress=told.append)
        one = m.maintain(d.source, dry_run=True)
    assert told == [d.source, "(root superdataset)"]
    assert _without_seconds(printed(dry.to_json())) == _without_seconds(d.run.ok("maintain", "--dry-run", "--json"))
    assert text(dry.lines()) == d.run.ok("maintain", "--dry-run")
    assert _without_seconds(printed(one.to_json())) == _without_seconds(
        d.run.ok("maintain", d.source, "--dry-run", "--json")
    )
    assert dry.ok and {i.what for i in dry.items()} >= {r["label"] for r in dry.repositories}


def _without_seconds(doc: str) -> dict:
    got = json.loads(doc)
    for r in got["repositories"]:
        r.pop("seconds")
    return got


def test_reindex_is_the_commands_and_makes_a_lost_index(d: Dandiset, tmp_path: Path) -> None:
    from neuromirror import api

    copy = tmp_path / "mirror"
    shutil.copytree(d.run.root, copy, symlinks=True)
    shutil.rmtree(copy / ".neuromirror")  # the index is lost: api.open refuses the root, api.Mirror rebuilds it
    with pytest.raises(api.UserError, match="no index"):
        api.open(copy)
    with api.open(d.run.root) as m:
        labels = [v.label for v in m.versions(d.source)]
    told: list[str] = []
    with api.Mirror(copy) as m:
        rebuilt = m.reindex(progress=told.append)
    assert told == [f"dandi/{d.id}"] and rebuilt.to_json() == {d.source: len(labels)}
    assert printed(rebuilt.to_json()) == d.run.ok("reindex", "--json", root=copy)
    assert text(rebuilt.lines()) == d.run.ok("reindex", root=copy)
    with api.open(copy) as m:
        assert [v.label for v in m.versions(d.source)] == labels
        pruned = m.reindex(prune=True)
    assert printed(pruned.to_json()) == d.run.ok("reindex", "--prune", "--json", root=copy)
    assert pruned.to_json()["runs_removed"] == 0


def test_wrong_inputs_raise_the_class_that_names_them(d: Dandiset, tmp_path: Path) -> None:
    from neuromirror import api
    from neuromirror.config.model import MirrorConfig

    missing = tmp_path / "nowhere"
    with api.Mirror(d.run.root) as m:
        with pytest.raises(api.BadInput, match="whole datasets") as exc:
            m.publish(d.spec, str(tmp_path / "x"))
        assert "--" not in str(exc.value)
        with pytest.raises(api.NotMirrored, match="dandi:999999 is not mirrored"):
            m.publish("dandi:999999", str(tmp_path / "x"))
        with pytest.raises(api.NotMirrored, match="dandi:999999 is not mirrored"):
            m.maintain("dandi:999999")
        with pytest.raises(api.BadInput):
            m.maintain("not a spec")
        with pytest.raises(api.BadInput):
            m.status(d.spec)  # a status row is a source's, not a version's
        with pytest.raises(api.BadInput, match="retention") as exc:
            m.reindex(config=MirrorConfig())
        assert "--" not in str(exc.value)
    with api.Mirror(missing) as m:
        with pytest.raises(api.NotMirrored, match="no such directory"):
            m.status()
        with pytest.raises(api.NotMirrored, match="no index"):
            m.status(copies=True)
        with pytest.raises(api.NotMirrored, match="not a dataset"):
            m.reindex()
        with pytest.raises(api.NotMirrored, match="nothing to prune"):
            m.reindex(prune=True)
        with pytest.raises(api.NotMirrored, match="no index"):
            m.maintain()
    assert not missing.exists()  # asking created nothing
