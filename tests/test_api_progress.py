"""``get`` and ``reproduce`` tell a script's ``progress(stage, done, total)`` the bytes git-annex moves.

A dandiset (two NWB files of a few MB, a small Zarr asset: a subdataset of its own) is mirrored from the DANDI
stand-in the way a user does it (``neuromirror sync``); the API's ``get`` and ``reproduce`` are called with a
callback that records each call.  Per repository fetched, ``("files LABEL", ...)`` and ``("get LABEL",
done, total)``: the total is the bytes of the files asked for, done never goes back and ends equal to the
total, and calls come at most ten a second (the last one excepted).  The command line's tqdm bars are one
such callback (``api.getting.Bars``): ``neuromirror get`` in a process of its own still draws them on stderr,
and draws nothing with ``--json``.

``keep``, ``verify`` and ``restore`` tell theirs the same way: ``("files SPEC@VERSION -> STORE", ...)`` and
``("keep SPEC@VERSION -> STORE", ...)`` into a directory store and a packed one, ``("files SPEC@VERSION", ...)``
and ``("verify SPEC@VERSION", ...)`` as ``verify(content=True)`` hashes, ``("objects TARGET", ...)`` and
``("restore TARGET", ...)`` into a directory: each total is what the result says was copied, hashed or
written, done never goes back and ends at the total; ``keep`` and ``verify`` on the command line draw the
same bars through ``Bars`` (nothing with ``--json``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

from helpers.keep import Dandiset, make_dandiset
from neuromirror import api
from neuromirror.demo import deterministic_bytes

SIZES = {"sub-01/a.nwb": 3_000_000, "sub-02/b.nwb": 1_500_000}
ZARR = "sub-09/sample.zarr"
CHUNKS = {
    ".zgroup": b'{"zarr_format": 2}',
    "0/.zarray": b'{"chunks": [64], "zarr_format": 2}',
    **{f"0/{i}": deterministic_bytes(f"progress z{i}", 700 + 31 * i) for i in range(4)},
}


@pytest.fixture(scope="module")
def mirrored(dandi_archive, tmp_path_factory: pytest.TempPathFactory) -> Dandiset:  # noqa: ANN001
    return make_dandiset(dandi_archive, tmp_path_factory.mktemp("api-progress") / "mirror", SIZES, zarr=CHUNKS)


class Calls:
    """A script's progress callback: every call, with when it came."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, int, Optional[int]]] = []

    def __call__(self, stage: str, done: int, total: Optional[int]) -> None:
        self.calls.append((time.monotonic(), stage, done, total))

    def stages(self) -> list[str]:
        return [stage for _, stage, _, _ in self.calls]

    def of(self, stage: str) -> list[tuple[int, Optional[int]]]:
        return [(done, total) for _, s, done, total in self.calls if s == stage]

    def check_bytes(self, label: str, total: int, files: int, word: str = "get", unit: str = "files") -> None:
        """``label``'s bytes and files told as they should be: one total, done never back, ending at the total."""
        told = self.of(f"{word} {label}")
        assert told[0] == (0, total) and told[-1] == (total, total), told
        assert {t for _, t in told} == {total}
        assert [d for d, _ in told] == sorted(d for d, _ in told)  # never back
        assert len(set(told)) == len(told)  # nothing told twice
        counted = self.of(f"{unit} {label}")
        assert counted[0] == (0, files) and counted[-1] == (files, files) and {t for _, t in counted} == {files}
        assert [d for d, _ in counted] == sorted({d for d, _ in counted})  # each count once, never back
        when = [t for t, s, _, _ in self.calls if s == f"{word} {label}"]
        gaps = [b - a for a, b in zip(when, when[1:-1])]  # the last call is never held back
        assert all(g >= 0.09 for g in gaps), gaps  # at most ~10 a second


def test_get_tells_the_bytes_of_each_repository(mirrored: Dandiset, tmp_path: Path) -> None:
    to = tmp_path / "clone"
    calls = Calls()
    with api.open(mirrored.run.root) as m:
        got = m.get(mirrored.spec, to=to, progress=calls, allow_ip="all")
    assert got.ok, got.lines()
    spec = mirrored.spec
    calls.check_bytes(spec, sum(SIZES.values()), len(SIZES))
    zarr_bytes = sum(map(len, CHUNKS.values()))  # its metadata annexed too
    calls.check_bytes(f"{spec} {ZARR}", zarr_bytes, len(CHUNKS))
    assert calls.calls[0][1:] == (spec, 0, 1) and calls.calls[-1][1:] == (spec, 1, 1)  # the version's start, end
    assert set(calls.stages()) == {spec, *(f"{w} {spec}{sub}" for w in ("get", "files") for sub in ("", f" {ZARR}"))}
    assert got.to_json()["fetched_bytes"] == sum(SIZES.values()) + zarr_bytes
    # a subset, into the same clone, everything already there: no bytes to tell
    again = Calls()
    with api.open(mirrored.run.root) as m:
        m.get(mirrored.spec, ["sub-01"], to=to, progress=again)
    assert again.stages() == [spec, spec]


def test_get_of_some_paths_tells_their_bytes(mirrored: Dandiset, tmp_path: Path) -> None:
    calls = Calls()
    with api.open(mirrored.run.root) as m:
        m.get(mirrored.spec, ["sub-02"], to=tmp_path / "clone", progress=calls, allow_ip="all").check()
    calls.check_bytes(mirrored.spec, SIZES["sub-02/b.nwb"], 1)
    assert not [s for s in calls.stages() if ZARR in s]  # the Zarr was not asked for


def test_reproduce_tells_each_dataset_and_its_bytes(mirrored: Dandiset, tmp_path: Path) -> None:
    lock = tmp_path / "data.lock"
    mirrored.run.ok("lock", mirrored.spec, "-o", str(lock))
    calls = Calls()
    with api.open(mirrored.run.root) as m:
        done = m.reproduce(lock, [f"dandi/{mirrored.id}/sub-01"], to=tmp_path / "work", allow_ip="all", progress=calls)
    assert done.ok, done.lines()
    assert calls.calls[0][1:] == ("reproduce", 0, 1) and calls.calls[-1][1:] == ("reproduce", 1, 1)
    calls.check_bytes(mirrored.spec, SIZES["sub-01/a.nwb"], 1)
    assert set(calls.stages()) == {"reproduce", f"get {mirrored.spec}", f"files {mirrored.spec}"}


def neuromirror(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line in a process of its own, stderr not a terminal; its progress printed at every refresh
    (off a terminal a line comes every few seconds at most, and a get this short would print none)."""
    code = (
        "import sys; from neuromirror.util import progress; progress.LOG_EVERY = 0.0; "
        "from neuromirror.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_the_commands_bars_are_such_a_callback(mirrored: Dandiset, tmp_path: Path) -> None:
    root = ["--root", str(mirrored.run.root)]
    shown = neuromirror(
        *root, "get", mirrored.spec, "sub-01", "sub-02", "--to", str(tmp_path / "a"), "--allow-ip", "all"
    )
    assert shown.returncode == 0, shown.stderr
    lines = [ln for ln in shown.stderr.splitlines() if ln.startswith(f"{mirrored.spec}: ")]
    assert len(lines) >= 2 and "\r" not in shown.stderr, shown.stderr
    assert "100%" in lines[-1] and "2/2 files" in lines[-1] and "4.29M/4.29M" in lines[-1], lines
    assert sum("2/2 files" in ln for ln in lines) == 1, lines  # the final state, once
    quiet = neuromirror(*root, "get", mirrored.spec, "--to", str(tmp_path / "b"), "--allow-ip", "all", "--json")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert json.loads(quiet.stdout)["fetched_bytes"] > sum(SIZES.values())


def test_keep_tells_the_bytes_copied_into_each_store(mirrored: Dandiset, tmp_path: Path) -> None:
    """Into a directory store and a packed one (``pack+file://``): per version and store, the files and bytes
    copied, their totals those the result says were transferred."""
    for to in (tmp_path / "store", f"pack+file://{tmp_path}/packed"):
        calls = Calls()
        with api.open(mirrored.run.root) as m:
            kept = m.keep(mirrored.spec, to, progress=calls)
        assert kept.ok, kept.lines()
        run = kept.runs[0]
        label = f"{mirrored.spec} -> {run.store}"
        assert run.transferred_bytes >= sum(SIZES.values()) and run.transferred == len(SIZES) + len(CHUNKS)
        calls.check_bytes(label, run.transferred_bytes, run.transferred, word="keep")
        assert set(calls.stages()) == {f"keep {label}", f"files {label}"}
        again = Calls()  # everything held already: nothing to copy, nothing told
        with api.open(mirrored.run.root) as m:
            assert m.keep(mirrored.spec, to, progress=again).ok
        assert again.calls == []


def test_verify_content_tells_the_bytes_hashed(mirrored: Dandiset) -> None:
    """Each copy read (every URL of a file, a store's copy) adds its bytes; a file is done with its last."""
    calls = Calls()
    with api.open(mirrored.run.root) as m:
        report = m.verify(mirrored.spec, content=True, progress=calls, allow_ip="all")
    assert report.ok, report.lines()
    content = report.to_json()["content"]
    calls.check_bytes(mirrored.spec, content["bytes"], content["keys"], word="verify")
    assert set(calls.stages()) == {f"verify {mirrored.spec}", f"files {mirrored.spec}"}
    assert content["bytes"] >= sum(SIZES.values())


def test_verify_stores_tells_the_copies_re_read(mirrored: Dandiset, tmp_path: Path) -> None:
    """A store's copies of the version re-read: as many as keep put there, their bytes those it copied."""
    store = tmp_path / "store"
    with api.open(mirrored.run.root) as m:
        run = m.keep(mirrored.spec, store).check().runs[0]
        calls = Calls()
        checked = m.verify_stores(mirrored.spec, store=store, progress=calls)
    assert checked.ok and checked.checked == run.transferred, checked.lines()
    calls.check_bytes("stores", run.transferred_bytes, run.transferred, word="verify", unit="copies")
    assert set(calls.stages()) == {"verify stores", "copies stores"}


def test_restore_tells_the_objects_written(mirrored: Dandiset, tmp_path: Path) -> None:
    """Into a directory: every object written, the totals the report's objects and bytes."""
    with api.open(mirrored.run.root) as m:
        m.keep(mirrored.spec, tmp_path / "store").check()
        calls = Calls()
        report = m.restore(mirrored.spec, tmp_path / "restored", progress=calls, stores=[str(tmp_path / "store")])
    assert report.ok and report.written == report.objects and report.written_bytes == report.bytes, report.lines()
    calls.check_bytes(report.target, report.bytes, report.objects, word="restore", unit="objects")
    assert set(calls.stages()) == {f"restore {report.target}", f"objects {report.target}"}
    assert report.bytes >= sum(SIZES.values())


def test_keep_and_verify_on_the_command_line_draw_the_same_bars(mirrored: Dandiset, tmp_path: Path) -> None:
    root = ["--root", str(mirrored.run.root)]
    store = tmp_path / "store"
    shown = neuromirror(*root, "keep", mirrored.spec, "--to", str(store))
    assert shown.returncode == 0, shown.stderr
    lines = [ln for ln in shown.stderr.splitlines() if ln.startswith(f"keep {mirrored.spec} -> {store}: ")]
    files = len(SIZES) + len(CHUNKS)
    assert lines and "100%" in lines[-1] and f"{files}/{files} files" in lines[-1], shown.stderr
    assert sum(f"{files}/{files} files" in ln for ln in lines) == 1, lines  # the final state, once
    checked = neuromirror(*root, "verify", mirrored.spec, "--content", "--allow-ip", "all")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = [ln for ln in checked.stderr.splitlines() if ln.startswith(f"verify {mirrored.spec}: ")]
    assert lines and "100%" in lines[-1] and f"{files}/{files} files" in lines[-1], checked.stderr
    for quiet in (
        ["keep", mirrored.spec, "--to", str(tmp_path / "b"), "--json"],
        ["verify", mirrored.spec, "--content", "--allow-ip", "all", "-q"],
    ):
        run = neuromirror(*root, *quiet)
        assert run.returncode == 0 and run.stderr == "", run.stderr


def test_a_version_is_kept_a_batch_of_its_files_at_a_time(dandi_archive, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """A version's files are read ``BATCH`` at a time with at most ``WINDOW`` x ``-J`` copies under way (a
    10^6-object Zarr's keep held 3.4 GB when it read the listing whole and made a Future per key). Batches of 3
    here: two chunks with the same bytes, batches apart, are copied once; the version is whole (the rerun takes
    its mark: nothing copied, nothing told); the totals are told when the last batch is read."""
    from neuromirror.keep import versions

    monkeypatch.setattr(versions, "BATCH", 3)
    monkeypatch.setattr(versions, "WINDOW", 1)
    same = deterministic_bytes("batches: the same bytes", 900)
    chunks = {
        ".zgroup": b'{"zarr_format": 2}',
        **{f"0/{i}": deterministic_bytes(f"batch {i}", 800 + i) for i in range(12)},
    }
    chunks["0/0"] = chunks["0/9"] = same  # "0/0" is read first, "0/9" last
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 5000}, zarr=chunks)
    to = f"pack+file://{tmp_path}/packed"
    calls = Calls()
    with api.open(d.run.root) as m:
        kept = m.keep(d.spec, to, progress=calls, jobs=1)
    assert kept.ok, kept.lines()
    run = kept.runs[0]
    assert run.transferred == len(set(chunks.values())) + 1  # + the NWB file; "0/0" and "0/9" once
    (version,) = run.versions
    assert version.kept == len(chunks) + 1 and version.already == 0 and version.branches, version
    told = calls.of(f"keep {d.spec} -> {run.store}")
    assert told[0] == (0, None) and told[-1] == (run.transferred_bytes, run.transferred_bytes), told
    assert [done for done, _ in told] == sorted(done for done, _ in told)
    again = Calls()
    with api.open(d.run.root) as m:
        rerun = m.keep(d.spec, to, progress=again, jobs=1)
    assert rerun.ok and rerun.runs[0].marked == 1 and rerun.runs[0].transferred == 0 and again.calls == []
    with api.open(d.run.root) as m:  # every file's key recorded in the store, as a clone would find it
        assert m.verify(d.spec, kept=True, store=to).ok
