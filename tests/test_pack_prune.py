"""``keep --prune`` with packed stores: a key another source still needs is never dropped, and the API's keep and
prune report what the command prints.

Why: a service keeping the latest draft of a dandiset every hour gives its store every draft state; retention
drops the superseded ones and a packed store rewrites the packs they left mostly dead (restic's prune).  That a
prune drops a superseded draft state's key from every kind of store, leaving no file holding its bytes, is
tests/test_store_kinds.py's; here what sharing a packed store and scripting it add.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

from helpers.keep import T0, key_of, make_dandiset
from helpers.retrieve import Runner
from neuromirror.demo import deterministic_bytes


def pack_bytes(store: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((store / "packs").glob("*.pack"))]


def indexed_keys(store: Path) -> set[str]:
    return {k[0] for f in (store / "index").glob("*.json") for k in json.loads(f.read_text())["keys"]}


def test_keep_prune_never_drops_a_key_another_source_still_needs(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """Two dandisets share one store; pruning one keeps what the other's kept version holds, and a version
    left out with --prune is given back by a keep that names it again."""
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"x.nwb": 40_000})
    e = make_dandiset(dandi_archive, tmp_path / "mirror", {"y.nwb": 40_000})
    store = tmp_path / "packed"
    url = f"pack+file://{store}"
    assert d.run("keep", d.source, e.source, "--to", url, "--pack-size", "1M")[0] == 0
    x, y = key_of(d.ds, "x.nwb", d.version), key_of(e.ds, "y.nwb", e.version)
    # keep only d's draft state of d (its published version left out): x stays (the draft has it too)
    code, out, err = d.run("keep", f"{d.source}@draft", "--to", url, "--prune", "--json")
    assert code == 0, err
    assert json.loads(out)["prune"]["dropped_versions"] == [f"{d.source}@{d.version}"]
    assert json.loads(out)["prune"]["dead_keys"] == 0
    assert indexed_keys(store) == {x, y}


#: what differs between two mirrors and two stores of the same history: each made its own commits, store
#: identities and times
PLAIN = (
    (r"\b[0-9a-f]{40}\b", "COMMIT"),
    (r"@[0-9a-f]{12}\b", "@COMMIT"),
    (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "UUID"),
    (r"neuromirror-store-[0-9a-f]{8}", "NAME"),
    (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "TIME"),
)


def test_the_apis_keep_and_prune_are_the_commands_json(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """A script keeping and pruning with the API alone reads what ``keep --json`` prints for the same call: two
    mirrors of one dandiset, each keeping into a packed store of its own, one through ``neuromirror.api`` and one
    through the command; their reports are the same but for the stores' names and identities and the lags' times."""
    from neuromirror import api

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 30_000})
    cli = Runner(tmp_path / "mirror-cli")
    cli.ok("sync", d.source, "--dandi-api", dandi_archive.api_url)  # the same history in both mirrors
    when = T0 + timedelta(days=500)
    dandi_archive.put_asset(d.id, "c.nwb", deterministic_bytes(f"{d.id}:api-c1", 50_000), when=when)
    for run in (d.run, cli):
        run.ok("sync", d.source, "--dandi-api", dandi_archive.api_url)
    by_api, by_cli = f"pack+file://{tmp_path / 'by-api'}", f"pack+file://{tmp_path / 'by-cli'}"

    def same(report: dict, printed: str) -> None:
        def plain(text: str, store: str, root: Path) -> dict:
            text = text.replace(store, "STORE").replace(store.split("://")[1], "STORE").replace(str(root), "ROOT")
            for pattern, word in PLAIN:
                text = re.sub(pattern, word, text)
            out = json.loads(text)
            out["lags"] = sorted(out["lags"])  # which versions got a lag, not how long it was
            return out

        got, want = plain(json.dumps(report), by_api, d.run.root), plain(printed, by_cli, cli.root)
        for k in got:
            assert got[k] == want[k], (k, got[k], want[k])
        assert got == want

    with api.open(d.run.root) as m:
        first = m.keep(d.source, by_api, all_versions=True)
    assert first.ok
    same(first.to_json(), cli.ok("keep", d.source, "--to", by_cli, "--all-versions", "--json"))

    dandi_archive.put_asset(
        d.id, "c.nwb", deterministic_bytes(f"{d.id}:api-c2", 50_000), when=when + timedelta(hours=1)
    )
    for run in (d.run, cli):
        run.ok("sync", d.source, "--dandi-api", dandi_archive.api_url)
    with api.open(d.run.root) as m:
        pruned = m.keep(d.source, by_api, prune=True)
    # both superseded draft states dropped, each by the commit that reads it (``draft`` reads the newest)
    dropped = pruned.to_json()["prune"]["dropped_versions"]
    assert pruned.ok and len(dropped) == 2 and all(re.fullmatch(rf"{d.source}@[0-9a-f]{{12}}", x) for x in dropped)
    same(pruned.to_json(), cli.ok("keep", d.source, "--to", by_cli, "--prune", "--json"))
