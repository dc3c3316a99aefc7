"""``api.Mirror.sync``: the verb ``neuromirror sync`` stands on, from a script (issue 58).

The same call on the same mirror gives the same JSON as ``sync --json``: the mirror is synced once, copied
whole, the archive moves on, then the API syncs one copy and the command line the other (a commit is dated by
the version, so both write the same commits).  The JSON is compared as the command prints it (key order and
all) after dropping only the fields that time the run: each report's ``timings`` and, per archive endpoint in
``network``, ``waited_s`` and ``requests_per_s``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from helpers.keep import T0
from helpers.retrieve import Runner
from helpers.service import write_config
from neuromirror.demo import deterministic_bytes

#: what times a run, not what it did
TIMED = ("timings",)
TIMED_PER_ENDPOINT = ("waited_s", "requests_per_s")


def untimed(report: object) -> str:
    """``report`` (one source's or a list) as ``sync --json`` prints it, less the fields that time the run."""

    def one(r: dict) -> dict:
        kept = {k: v for k, v in r.items() if k not in TIMED}
        if "network" in kept:
            kept["network"] = [{k: v for k, v in e.items() if k not in TIMED_PER_ENDPOINT} for e in kept["network"]]
        return kept

    shaped = [one(r) for r in report] if isinstance(report, list) else one(report)  # type: ignore[arg-type]
    return json.dumps(shaped, indent=2, default=str)


def assert_same(api_json: str, cli_json: str) -> None:
    import difflib

    diff = "\n".join(difflib.unified_diff(api_json.splitlines(), cli_json.splitlines(), "api", "cli", lineterm=""))
    assert api_json == cli_json, diff


def as_printed(obj: object) -> object:
    """What ``sync --json`` prints of ``obj``, read back (``print_json``: indent 2, ``default=str``)."""
    return json.loads(json.dumps(obj, indent=2, default=str))


def copy_mirror(root: Path, dest: Path) -> None:
    """``root`` copied whole to ``dest``, each dataset's git index told its files' new stat data (a copy's inodes
    differ: ``git read-tree -m -u`` would find every file "not uptodate")."""
    shutil.copytree(root, dest, symlinks=True)
    for ds in (dest, *dest.glob("dandi/*")):
        subprocess.run(["git", "-C", str(ds), "update-index", "-q", "--refresh"], check=True)


def dandiset(archive, name: str, day: int, files: dict[str, int]) -> str:  # noqa: ANN001
    when = T0 + timedelta(days=900 + day + len(archive.dandiset_ids()))
    ident = archive.create_dandiset(name=name, created=when)
    for i, (path, n) in enumerate(files.items()):
        archive.put_asset(ident, path, deterministic_bytes(f"{ident}:{path}", n), when=when + timedelta(minutes=i + 1))
    return ident


def test_the_api_and_the_command_give_the_same_json_for_the_same_call(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror import api
    from neuromirror.api.syncing import Outcome
    from neuromirror.results import Failed, Status

    a = dandiset(dandi_archive, "api sync a", 1, {"sub-01/a.nwb": 1_200, "sub-02/b.nwb": 900})
    dandi_archive.publish(a, when=T0 + timedelta(days=1200))
    b = dandiset(dandi_archive, "api sync b", 2, {"sub-01/c.nwb": 700})
    specs = [f"dandi:{a}", f"dandi:{b}"]
    run = Runner(tmp_path / "one")
    run.ok("sync", *specs, "--dandi-api", dandi_archive.api_url)
    copy_mirror(tmp_path / "one", tmp_path / "two")  # the same mirror, twice
    # the archive moves on: a new file in each draft, and a hostile path the sync refuses
    later = T0 + timedelta(days=1300)
    dandi_archive.put_asset(a, "sub-03/new.nwb", b"n" * 500, when=later)
    dandi_archive.put_asset(b, "sub-02/d.nwb", b"d" * 300, when=later)
    dandi_archive.put_asset(b, "../escape.nwb", b"evil", when=later + timedelta(minutes=1))

    with api.open(tmp_path / "one") as m:
        result = m.sync(specs, dandi_api=dandi_archive.api_url)
    code, out, err = run("sync", *specs, "--dandi-api", dandi_archive.api_url, "--json", root=tmp_path / "two")
    assert code == result.exit_code == 3, err  # synced; an item refused: the partial success's own exit
    assert "1 item(s) refused" in err and f"dandi:{b}" not in err.split("refused")[0]
    assert_same(untimed(as_printed(result.to_json())), untimed(json.loads(out)))
    # the records behind the JSON: one item per source, typed fields for what the dicts said
    first, second = result.sources
    assert [i.status for i in result.items()] == [Status.OK, Status.IMPOSSIBLE]
    assert first.outcome is Outcome.OK and [v.label for v in first.versions] == ["draft"] and first.added == 1
    assert first.versions[0].commit == json.loads(out)[0]["versions"][0]["commit"]  # the same commit, both ways
    assert [(r.path, r.reason.split(":")[0]) for r in second.refused] == [("../escape.nwb", "refused")]
    assert not result.ok and not result
    with pytest.raises(Failed, match=rf"impossible: dandi:{b}: refused '../escape.nwb'"):
        result.check()
    # the command's lines are the result's lines
    assert run("sync", *specs, "--dandi-api", dandi_archive.api_url, root=tmp_path / "two")[1].splitlines()[-1] == (
        "2 sources: 0 updated, 2 unchanged, 0 failed"
    )


def test_a_new_mirror_synced_from_a_script_with_progress(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror import api
    from neuromirror.results import Status

    ident = dandiset(dandi_archive, "api sync cold", 3, {"sub-01/a.nwb": 800})
    spec = f"dandi:{ident}"
    root = tmp_path / "mirror"
    with pytest.raises(api.UserError, match="no mirror at"):
        api.open(root)  # a root with no index: still refused without create
    assert not root.exists()

    class Recording:
        """A script's progress: each (source, stage) reported, and each source whose sync ended."""

        def __init__(self) -> None:
            self.stages: set[tuple[str, str]] = set()
            self.done_with: list[str] = []

        def __call__(self, source: str, stage: str, done: int, total: int | None) -> None:
            self.stages.add((source, stage))

        def finished(self, source: str) -> None:
            self.done_with.append(source)

    progress = Recording()
    with api.open(root, create=True) as m:
        assert not root.exists()  # opening makes nothing
        result = m.sync(spec, dandi_api=dandi_archive.api_url, progress=progress)
        assert result.ok and result.check() is result and result.exit_code == 0
        assert [(i.status, i.what) for i in result.items()] == [(Status.OK, spec)]
        assert {s for s, _ in progress.stages} == {spec} and progress.done_with == [spec]
        assert [v.label for v in m.versions(spec)] == ["draft"]
        again = m.sync([spec], dandi_api=dandi_archive.api_url)
    assert [(i.status, i.message) for i in again.items()] == [(Status.NOTNEEDED, "unchanged")] and again.ok
    assert again.lines() == [f"{spec}: unchanged"]
    out = Runner(root).ok("sync", spec, "--dandi-api", dandi_archive.api_url, "--json")
    assert_same(untimed(as_printed(again.to_json())), untimed(json.loads(out)))  # a resync: the same report
    # a mirror definition: its sources with its options (here the archive's API), as sync --config
    definition = write_config(tmp_path / "mirror.yaml", dandi_archive.api_url, [spec])
    dandi_archive.put_asset(ident, "sub-02/b.nwb", b"b" * 400, when=T0 + timedelta(days=1400))
    with api.open(root) as m:
        by_definition = m.sync(config=definition)
    assert [(s.source, s.outcome.value, s.added) for s in by_definition.sources] == [(spec, "ok", 1)]


def test_a_source_busy_elsewhere_is_an_error_item_with_the_commands_json(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror import api
    from neuromirror.dataset.mirror import Datasets as Datasets
    from neuromirror.results import Status

    ident = dandiset(dandi_archive, "api sync busy", 4, {"a.nwb": 300})
    spec, root = f"dandi:{ident}", tmp_path / "mirror"
    Runner(root).ok("sync", spec, "--dandi-api", dandi_archive.api_url)
    held = Datasets(root)
    try:
        with held.lock(spec, wait=10):
            with api.open(root) as m:
                result = m.sync(spec, dandi_api=dandi_archive.api_url, wait=False)
            code, out, err = Runner(root)("sync", spec, "--dandi-api", dandi_archive.api_url, "--no-wait", "--json")
    finally:
        held.close()
    assert code == result.exit_code == 1
    assert json.dumps(result.to_json(), indent=2, default=str) + "\n" == out  # nothing timed: the same bytes
    assert set(result.to_json()) == {"source", "dataset", "outcome", "error"}
    (item,) = result.items()
    assert item.status is Status.ERROR and item.what == spec and not result.ok
    assert err.strip() == f"neuromirror: {spec}: {result.sources[0].error}"


def test_wrong_inputs_raise_their_kind_and_write_nothing(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror import api

    root = tmp_path / "mirror"
    url = dandi_archive.api_url
    m = api.open(root, create=True)
    wrong = [
        (api.BadInput, "one '@'", dict(specs="dandi:000027@@draft")),
        (api.BadInput, "a version is not allowed here", dict(specs="dandi:000027@0.230629.1955")),
        (api.BadInput, "nothing to sync", dict(specs=[])),
        (api.BadInput, "jobs must be at least 1", dict(specs="dandi:000001", jobs=0)),
        (api.BadInput, "engine 'git'", dict(specs="dandi:000001", engine="git")),
        (api.BadInput, "max_rate: not a rate", dict(specs="dandi:000001", max_rate="fast")),
        (api.BadInput, "max_in_flight 0", dict(specs="dandi:000001", max_in_flight=0)),
        (api.BadInput, "no source has an option 'colour'", dict(specs="dandi:000001", options={"colour": "red"})),
        (api.BadInput, "unknown DANDI instance 'nowhere'", dict(specs="dandi:000001", dandi_instance="nowhere")),
        (api.UserError, "no such file", dict(config=tmp_path / "missing.yaml")),
        (api.NotMirrored, r"nothing to sync; dandi:9999\* matched nothing", dict(specs="dandi:9999*")),
    ]
    for kind, said, call in wrong:
        with pytest.raises(kind, match=said):
            m.sync(**{"dandi_api": url, **call})  # type: ignore[arg-type]
    other = tmp_path / "elsewhere.yaml"
    other.write_text(f"root: {tmp_path / 'other-root'}\ndefaults: {{schedule: 1h}}\nsources: ['dandi:000001']\n")
    with pytest.raises(api.BadInput, match="differs from this mirror's root"):
        m.sync(config=other)
    m.close()
    assert not root.exists()  # every mistake said before anything was written
    from neuromirror.config.reader import ConfigError

    with pytest.raises(ConfigError):
        api.open(root, create=True).sync(config=[tmp_path / "missing.yaml"])


DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def test_the_sync_examples_of_the_python_api_doc_run(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/python-api.md's sync section (its ```python sync blocks: they need an archive, so the doc's other
    test leaves them) on the stand-in, ``dandi:000027`` standing for one of its dandisets."""
    import re

    blocks = re.findall(r"```python sync\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, "the doc lost its sync example"
    ident = dandiset(dandi_archive, "api sync doc", 5, {"sub-01/a.nwb": 600})
    monkeypatch.setenv("NEUROMIRROR_DANDI_API", dandi_archive.api_url)  # what the DANDI source reads, as dandi's
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code.replace('"dandi:000027"', f'"dandi:{ident}"'), f"sync example {i + 1}", "exec"), namespace)
    printed = capsys.readouterr().out
    assert f"dandi:{ident}: 1 new version(s) (draft): 2 added, 0 removed, 0 changed" in printed  # dandiset.yaml too
    assert f"dandi:{ident} ok [('draft', " in printed and "a version is not allowed here" in printed
    assert (tmp_path / "new-mirror" / "dandi" / ident).is_dir()
    assert f"dandi:{ident} listing " in printed  # the progress callback heard the source's stages
