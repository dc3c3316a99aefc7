"""Every verb's answer is one shape (:class:`neuromirror.results.Result`), and its JSON is its command's.

One mirror made as a user makes it (``neuromirror sync`` from the stand-in DANDI archive); each verb called
through :mod:`neuromirror.api` and through the command line on the same mirror, the API's ``to_json()``
dumped as the command dumps it against the command's ``--json`` bytes.  Fields that are a clock's (a
restore's seconds and rate, an audit's time) or a drill's fresh scratch place are set aside, nothing else.
Then the one failure rule: a verb that cannot start raises; one that started and failed returns a result
whose ``.ok`` and ``bool()`` are False and whose ``.check()`` raises :class:`~neuromirror.results.Failed`.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tomllib

from helpers.keep import T0, make_dandiset
from helpers.retrieve import Runner
from neuromirror.demo import deterministic_bytes

CLOCK = ("seconds", "rate", "generated", "at")


def dumped(result: Any) -> str:
    """What ``print_json`` writes for the result."""
    return json.dumps(result.to_json(), indent=2, sort_keys=False, default=str) + "\n"


def timeless(doc: Any, *drop: str) -> Any:
    """``doc`` without the clock's fields (and ``drop``), at any depth."""
    if isinstance(doc, dict):
        return {k: timeless(v, *drop) for k, v in doc.items() if k not in CLOCK + drop}
    if isinstance(doc, list):
        return [timeless(v, *drop) for v in doc]
    return doc


def test_every_verb_answers_a_result_whose_json_is_the_commands(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror import api
    from neuromirror.results import Result

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 2_000, "sub-02/b.nwb": 1_200})
    run, store, out = d.run, tmp_path / "store", tmp_path / "restored"
    run.ok("keep", d.spec, "--to", str(store))  # the first keep copies; each call below finds the same state
    run.ok("restore", d.spec, "--to", str(out))
    config = tmp_path / "lab.yaml"
    config.write_text(f'contact: lab@example.org\nsources:\n  - spec: "{d.source}"\n    schedule: {{interval: 1h}}\n')
    same: dict[str, tuple[Any, list[str]]] = {}  # verb -> (the API's result, the command's arguments)
    with api.open(run.root) as m:
        same["versions"] = m.versions(d.source), ["versions", d.source]
        same["pin"] = m.pin(d.spec), ["pin", d.spec]
        same["diff"] = m.diff(d.spec, "@draft"), ["diff", d.spec, "@draft"]
        same["changes"] = m.changes("2000-01-01"), ["changes", "--since", "2000-01-01"]
        same["cite"] = m.cite(d.spec), ["cite", d.spec]
        same["keep"] = m.keep(d.spec, store), ["keep", d.spec, "--to", str(store)]
        same["verify"] = (
            m.verify_versions(d.spec, kept=True, store=store),
            ["verify", d.spec, "--kept", "--store", str(store)],
        )
        same["verify --stores"] = m.verify_stores(d.source), ["verify", "--stores", d.source]
        same["restore"] = m.restore(d.spec, out), ["restore", d.spec, "--to", str(out)]
        same["drill"] = (
            m.drill(d.source, to=str(tmp_path / "scratch")),
            ["restore", "--drill", d.source, "--to", str(tmp_path / "scratch")],
        )
        same["audit"] = m.audit(), ["audit"]
        same["repair"] = m.repair(d.source, force=True), ["repair", d.source, "--force"]
        locked = m.lock(d.spec)
    same["check-config"] = api.Mirror.check_config([config]), ["check-config", str(config)]
    for verb, (result, args) in same.items():
        assert isinstance(result, Result) and result.ok and bool(result), (verb, result.failures())
        assert result.check() is result and all(i.status in ("ok", "notneeded") for i in result.items()), verb
        assert isinstance(result.lines(), list) and repr(result).startswith("<"), verb
        printed = run.ok(*args, "--json")
        if verb in ("restore", "drill", "audit", "verify --stores"):  # a clock's fields, a drill's fresh scratch place
            drop = ("target",) if verb == "drill" else ()
            assert timeless(result.to_json(), *drop) == timeless(json.loads(printed), *drop), verb
        else:
            assert dumped(result) == printed, verb
    # lock: the TOML file the command writes, as a dict (but for the moment each was made)
    assert isinstance(locked, Result) and locked.ok
    written = tomllib.loads(run.ok("lock", d.spec))
    assert {k: v for k, v in locked.to_json().items() if k != "created"} == {
        k: v for k, v in written.items() if k != "created"
    }
    # forget: the source back by reindex between the API's forget and the command's
    with api.open(run.root) as m:
        forgot = m.forget(d.source)
    run.ok("reindex")
    assert isinstance(forgot, Result) and forgot.ok and [f.source for f in forgot] == [d.source]
    assert dumped(forgot) == run.ok("forget", d.source, "--json")


def test_the_records_read_as_before_and_say_what_they_are(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """Versions index and iterate, a pin reads as the dict it was, changes as their sources; the reprs name
    the thing (a notebook's ``m.version(...)`` shows source, label, kind and commit)."""
    from neuromirror import api
    from neuromirror.results import Result

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 1_000})
    with api.open(d.run.root) as m:
        vs = m.versions(d.source)
        v = m.version(d.spec)
        pin = m.pin(d.spec)
        changes = m.changes("2000-01-01", d.source)
        f = next(iter(v.files(paths=["a.nwb"])))
        backed = m.backup()
    assert len(vs) == 2 and vs[0] == v and [x.label for x in vs][-1] == "draft" and vs[-1:][0].label == "draft"
    assert repr(v) == f"<Version {d.spec} published {v.commit[:7]}>"
    assert repr(f) == f"<VersionFile a.nwb 1000 bytes {f.key}>"
    assert pin["commit"] == pin.commit == v.commit and pin == json.loads(d.run.ok("pin", d.spec, "--json"))
    assert dict(pin) == pin.to_json() and repr(pin).startswith(f"<Pin {d.spec} {v.commit[:7]}")
    assert changes[0]["source"] == changes[0].source == d.source and len(changes) == 1
    assert [c.source for c in changes] == [d.source] and changes[0].summary["added"] == len(changes[0].added)
    assert "a.nwb" in [f["path"] for f in changes[0]["added"]]
    assert repr(changes).startswith("<Changes since 2000-01-01")
    # the backup page's record: a result too, an item per source (what is at risk is no failed verb)
    assert isinstance(backed, Result) and backed.ok and [i.what for i in backed.items()] == [d.source]
    assert repr(backed).startswith("<Backup 1 source(s)")


def test_the_index_returns_the_one_version_record_the_api_returns(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """One record of a version: the index's rows are the API's ``Version`` (source, dataset, kind an enum),
    not a row type to convert, and a keep, a verify and a drill take what the index gave."""
    import neuromirror.index.rows
    from neuromirror import api
    from neuromirror.dataset.mirror import Datasets

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 1_000})
    rows = Datasets(d.run.root).index.versions(d.source)  # the index, read as the layers below the API read it
    with api.open(d.run.root) as m:
        v = m.version(d.spec)
        listed = m.versions(d.source)
        report = m.verify(rows[0].under(d.run.root))  # the index's record is what the API's verbs take
    assert api.Version is neuromirror.index.rows.Version and not hasattr(neuromirror.index.rows, "VersionRow")
    assert [type(r) for r in rows] == [api.Version, api.Version] and rows == list(listed) and rows[0] == v
    assert rows[0].source == d.source and rows[0].relpath == f"dandi/{d.source.split(':')[1]}"
    assert rows[0].kind is api.VersionKind.PUBLISHED and rows[-1].kind is api.VersionKind.DRAFT
    assert rows[0].under(d.run.root).dataset == v.dataset == d.run.root / rows[0].relpath
    assert rows[0].file_count == v.to_json()["files"] and v.to_json()["files"] >= 1
    with pytest.raises(ValueError, match="without its mirror's root"):  # the index knows no root: said, not guessed
        print(rows[0].dataset)
    assert report.ok, report.lines()


def test_keep_raises_when_it_cannot_start_and_fails_by_its_result(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror import api
    from neuromirror.results import Failed

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 3_000})
    a_file = tmp_path / "a-file"
    a_file.write_text("not a store")
    with api.open(d.run.root) as m:
        # cannot start: a plain file is no store; said with the place as given, before anything is copied
        with pytest.raises(api.BadInput, match=f"^{a_file}: exists and is not a directory"):
            m.keep(d.spec, a_file)
        assert a_file.read_text() == "not a store"
        # an error about one argument says the call's keyword; the command line says its option (cli.main)
        with pytest.raises(api.BadInput, match="^pack_size 10: at least 1024 bytes") as small:
            m.keep(d.spec, f"pack+file://{tmp_path}/packed", pack_size=10)
        assert small.value.argument == "pack_size" and small.value.cli_line().startswith("--pack-size 10: at least")
        with pytest.raises(api.BadInput, match="^budget: not a size: '10X'"):  # the thing named, not a flag
            m.keep(d.spec, tmp_path / "store", budget="10X")
        # started, and the budget stops it: a result, not ok, and check() raises naming what failed
        stopped = m.keep(d.spec, tmp_path / "store", budget=1)
    assert not stopped.ok and not bool(stopped)
    assert [i.status for i in stopped.failures()] == ["impossible"] and "budget" in stopped.failures()[0].message
    with pytest.raises(Failed, match="StoresRun: impossible: ") as caught:
        stopped.check()
    assert caught.value.result is stopped and isinstance(caught.value, api.NeuromirrorError)
    code, _, err = d.run("keep", d.spec, "--to", str(tmp_path / "store"), "--budget", "10X")
    assert code == 2 and err.startswith("neuromirror: --budget: not a size: '10X'"), err  # the command names its flag
    code, _, err = d.run("keep", d.spec, "--to", f"pack+file://{tmp_path}/packed", "--pack-size", "10")
    assert code == 2 and err.startswith("neuromirror: --pack-size 10: at least 1024 bytes"), err
    code, printed, _ = d.run("keep", d.spec, "--to", str(tmp_path / "store"), "--budget", "1", "--json")
    assert code == 1 and json.loads(printed)["ok"] is False


def test_verify_that_finds_mismatches_fails_by_its_result(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror import api
    from neuromirror.results import Failed

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 1_500, "b.nwb": 900})
    empty = tmp_path / "empty-store"
    with api.open(d.run.root) as m:
        assert m.keep(d.spec, empty, exclude=["*"]).ok  # a store with nothing of the version in it
        report = m.verify(d.spec, kept=True, store=empty)
        with pytest.raises(api.UserError, match="not a neuromirror store"):  # cannot start: no store there
            m.verify(d.spec, kept=True, store=tmp_path / "nowhere")
    assert not report.ok and not bool(report)
    assert sorted(i.what for i in report.failures()) == ["a.nwb", "b.nwb"]
    assert all(i.status == "error" and "not-kept" in i.message for i in report.failures())
    with pytest.raises(Failed, match=r"VerifyReport: error: .*not-kept.* \(and 1 more\)"):
        report.check()
    code, printed, _ = d.run("verify", d.spec, "--kept", "--store", str(empty), "--json")
    assert code == 1 and dumped(report) == printed


def test_restore_that_fails_fails_by_its_result(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror import api
    from neuromirror.results import Failed

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 2_200})
    out = tmp_path / "restored"
    with api.open(d.run.root) as m:
        assert m.keep(d.spec, tmp_path / "store").ok
        with pytest.raises(api.UserError):  # cannot start: a restore's target that is a plain file
            (tmp_path / "a-file").write_text("x")
            m.restore(d.spec, tmp_path / "a-file")
        assert m.restore(d.spec, out).check().ok
        written = next(p for p in out.rglob("*") if p.is_file() and p.stat().st_size == 2_200)
        written.write_bytes(b"other bytes")  # the archive's key now holds something else: left alone
        report = m.restore(d.spec, out)
    assert not report.ok and not bool(report)
    assert [i.status for i in report.failures()] == ["impossible"]
    with pytest.raises(Failed, match="RestoreReport: impossible: "):
        report.check()
    assert written.read_bytes() == b"other bytes"
    code, printed, _ = d.run("restore", d.spec, "--to", str(out), "--json")
    assert code == 1 and timeless(json.loads(printed)) == timeless(report.to_json())
    shutil.rmtree(out)


def test_every_name_the_api_exports_is_there_and_every_result_is_a_result() -> None:
    """``from neuromirror.api import X`` works for every name in ``__all__`` (most load when first named), and
    what the verbs return, exported for a script's annotations, is a :class:`neuromirror.results.Result`."""
    import neuromirror.api as api
    from neuromirror.results import Result

    got = {name: getattr(api, name) for name in api.__all__}
    results = [n for n, v in got.items() if isinstance(v, type) and issubclass(v, Result) and v is not Result]
    verbs = {"SyncResult", "StoresRun", "VerifyReport", "RestoreReport", "Got", "Urls", "Found", "StatusReport"}
    assert verbs <= set(results), sorted(verbs - set(results))
    assert sorted(dir(api)) == sorted(api.__all__)


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
