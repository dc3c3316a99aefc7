"""``keep --prune``: retention drops versions from a store, and a packed store rewrites the packs they left
mostly dead (restic's prune) — used as a lab's hourly keep of a changing draft would use it.

Why: a service keeping the latest draft of a dandiset every hour gives its store every draft state; without
retention the store grows with every replaced file for ever, and a packed store keeps packs whose bytes no
kept version needs.  The test keeps a published version and a draft into a packed directory store, replaces
the draft's file upstream, keeps again with ``--prune``: the superseded draft state is dropped, its own key
leaves the store (its pack rewritten, the old pack deleted, no pack holding its bytes), the keys the
published version still needs stay and read back, the dataset's git-annex branch no longer sends clones to
the store for the dropped key, and ``verify --stores`` is clean.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

from conftest import git
from helpers.keep import T0, key_of, lost_then_got, make_dandiset, whereis
from helpers.retrieve import Runner
from neuromirror.demo import deterministic_bytes


def pack_bytes(store: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((store / "packs").glob("*.pack"))]


def indexed_keys(store: Path) -> set[str]:
    return {k[0] for f in (store / "index").glob("*.json") for k in json.loads(f.read_text())["keys"]}


def test_keep_prune_drops_a_superseded_draft_state_and_rewrites_its_pack(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 60_000, "b.nwb": 20_000})
    when = T0 + timedelta(days=400)
    first = deterministic_bytes(f"{d.id}:c-first", 300_000)
    dandi_archive.put_asset(d.id, "c.nwb", first, when=when)  # draft only
    d.run.ok("sync", d.source, "--dandi-api", dandi_archive.api_url)
    store = tmp_path / "packed"
    url = f"pack+file://{store}"
    code, out, err = d.run("keep", d.source, "--to", url, "--pack-size", "1M", "--json")
    assert code == 0, err
    assert [v["version"] for v in json.loads(out)["versions"]] == [d.version, "draft"]
    draft_commit = git(d.ds, "rev-parse", "HEAD").strip()
    old_key = key_of(d.ds, "c.nwb", draft_commit)
    shared = {key_of(d.ds, p, d.version) for p in ("a.nwb", "b.nwb")}
    assert indexed_keys(store) == shared | {old_key}

    # upstream replaces the draft's file: a new draft state; the old one is no longer selected
    second = deterministic_bytes(f"{d.id}:c-second", 300_000)
    dandi_archive.put_asset(d.id, "c.nwb", second, when=when + timedelta(hours=1))
    d.run.ok("sync", d.source, "--dandi-api", dandi_archive.api_url)
    new_key = key_of(d.ds, "c.nwb", "HEAD")
    assert new_key != old_key

    code, out, err = d.run("keep", d.source, "--to", url, "--prune", "--json")
    assert code == 0, err
    report = json.loads(out)
    pruned = report["prune"]
    assert pruned["dropped_versions"] == [f"{d.source}@{draft_commit[:12]}"]  # the superseded state, by its commit
    assert pruned["dead_keys"] == 1 and pruned["unrecorded"] == 1
    assert pruned["store_dropped"]["keys"] == 1 and pruned["store_dropped"]["rewritten"] == 1
    assert pruned["store_dropped"]["bytes"] > 300_000  # the old pack went, holding the dead 300 kB

    # the store names the kept versions' keys and no pack holds the dropped key's bytes any more
    assert indexed_keys(store) == shared | {new_key}
    packs = pack_bytes(store)
    assert not any(first in p for p in packs)
    assert any(second in p for p in packs)
    assert all(sum(data in p for p in packs) == 1 for data in (d.files["a.nwb"], d.files["b.nwb"]))
    # the dataset's branch no longer sends clones to the store for the dropped key; the kept ones still do
    assert not any("neuromirror" in w for w in whereis(d.ds, old_key))
    assert all(any("neuromirror" in w for w in whereis(d.ds, k)) for k in shared | {new_key})

    # the store reads clean, and a plain clone gets the kept versions' files from it
    code, out, err = d.run("verify", "--stores", d.source, "--store", url, "--json")
    assert code == 0, out + err
    lost_then_got(d, tmp_path / "clone", {"a.nwb": d.files["a.nwb"], "c.nwb": second})  # the store must serve them

    # a rerun drops nothing more and changes no file of the store
    before = sorted(p.name for p in store.rglob("*") if p.is_file())
    code, out, err = d.run("keep", d.source, "--to", url, "--prune")
    assert code == 0, err
    assert "no version dropped" in out
    assert sorted(p.name for p in store.rglob("*") if p.is_file()) == before


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
