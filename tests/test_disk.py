"""Free disk space: a sync, keep or publish refuses to start below ``min_free``; status and /metrics show it;
a disk that fills mid-sync leaves the dataset and the index as they were, and the next sync converges."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from conftest import CLI, git
from neuromirror.bench.archives import put_empty_blob
from neuromirror.bench.moto_patch import moto_bucket_backend

T0 = datetime(2025, 7, 1, 8, 0, tzinfo=timezone.utc)


def runs(root: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(root / ".neuromirror" / "index.sqlite") as db:
        return list(db.execute("SELECT source, outcome FROM runs ORDER BY id"))


def versions(root: Path, sid: str) -> int:
    with sqlite3.connect(root / ".neuromirror" / "index.sqlite") as db:
        return int(db.execute("SELECT count(*) FROM versions WHERE source=?", [sid]).fetchone()[0])


def test_below_min_free_sync_keep_and_publish_refuse_in_one_line(
    dandi_archive, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    ident = dandi_archive.create_dandiset(name="disk", created=T0)
    dandi_archive.put_asset(ident, "a.nwb", b"disk bytes" * 10, when=T0)
    cli = CLI(tmp_path / "mirror", capsys, dandi_archive.api_url)
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    head = git(cli.root / "dandi" / ident, "rev-parse", "HEAD")
    dandi_archive.put_asset(ident, "b.nwb", b"more" * 10, when=T0 + timedelta(hours=1))

    monkeypatch.setenv("NEUROMIRROR_MIN_FREE", "1000000T")
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code != 0
    line = [x for x in err.splitlines() if "min_free" in x]
    assert len(line) == 1 and f"not starting the sync of dandi:{ident}" in line[0], err
    assert git(cli.root / "dandi" / ident, "rev-parse", "HEAD") == head  # nothing written
    assert [r for r in runs(cli.root) if r[1] != "ok"] == []  # not even a run: it never started

    code, out, err = cli("keep", f"dandi:{ident}", "--to", str(tmp_path / "store"))
    assert code == 2 and "not starting keeping into" in err and "min_free" in err, err
    code, out, err = cli("publish", f"dandi:{ident}", "--to", str(tmp_path / "bare"))
    assert code != 0 and "not starting publishing dandi:" in err, err
    code, out, err = cli("publish", f"dandi:{ident}", "--to", f"ria+file://{tmp_path / 'ria'}")
    assert code != 0 and "not starting publishing into" in err, err

    code, out, err = cli("status")
    assert code == 0
    disk = [x for x in out.splitlines() if x.startswith("disk: root ")]
    assert len(disk) == 1 and "LOW" in disk[0] and "free of" in disk[0], out

    from neuromirror.service.metrics import render_metrics
    from neuromirror.service.state import status_report

    text = render_metrics(status_report(cli.root))
    assert f'neuromirror_disk_free_bytes{{path="{cli.root}",what="root"}}' in text, text

    monkeypatch.setenv("NEUROMIRROR_MIN_FREE", "1M")  # space again: the sync goes on
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0 and (cli.root / "dandi" / ident / "b.nwb").is_symlink(), err


def test_bad_min_free_in_a_definition_is_refused(tmp_path: Path) -> None:
    from neuromirror.config.load import load_config
    from neuromirror.errors import UserError

    cfg = tmp_path / "m.yaml"
    cfg.write_text("sources:\n  - spec: 'dandi:000001'\n    schedule: 1h\n    options: {min_free: lots}\n")
    with pytest.raises(UserError, match="min_free.*not a size"):
        load_config(cfg)


def test_every_size_reads_one_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """``min_free``, ``keep --budget``, a keep policy and ``--hash-threshold`` share one parser (issue 41):
    ``GiB`` is binary, ``GB`` decimal, a bare unit decimal as ``GB``; a bad size is one UserError line."""
    from neuromirror.errors import UserError
    from neuromirror.util.disk import min_free
    from neuromirror.util.sizes import human_bytes, parse_size

    assert parse_size("1GiB") == 1 << 30 and parse_size("1Gi") == 1 << 30 and parse_size("1 gib") == 1 << 30
    assert parse_size("1GB") == parse_size("1G") == parse_size("1g") == 10**9
    assert parse_size("1.5T") == 1_500_000_000_000 and parse_size("512B") == parse_size("512") == 512
    monkeypatch.setenv("NEUROMIRROR_MIN_FREE", "2G")
    assert min_free() == 2 * 10**9 and min_free("3GiB") == 3 << 30
    for bad in ("lots", "1GX", "-1", "1 G B", True):
        with pytest.raises(UserError, match="not a size"):
            parse_size(bad)
    assert (human_bytes(512), human_bytes(1536), human_bytes(None), human_bytes(3 << 40)) == (
        "512 B",
        "1.5 KiB",
        "-",
        "3.0 TiB",
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs (needs root and CAP_SYS_ADMIN; skipped with the reason otherwise)."""
    where = tmp_path / f"small-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64M", "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs here ({r.stderr.strip() or r.returncode}): the mid-sync fill needs one"
        )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_disk_that_fills_mid_sync_leaves_everything_as_it_was_and_the_next_sync_converges(
    dandi_archive, small_disk: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEUROMIRROR_MIN_FREE", "1M")  # a 64 MiB disk
    ident = dandi_archive.create_dandiset(name="fills", created=T0)
    dandi_archive.put_asset(ident, "first.nwb", b"first" * 10, when=T0)
    cli = CLI(small_disk / "mirror", capsys, dandi_archive.api_url)
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    ds = cli.root / "dandi" / ident
    head = git(ds, "rev-parse", "HEAD")
    added = dandi_archive.add_synthetic_assets(ident, 3000, when=T0 + timedelta(hours=1))  # MBs of git objects and rows
    # their blobs in S3, as the archive's are: a blob the HEAD cannot find has its versions listed
    # (sources/dandi/blob_versions.py), and moto's ListObjectVersions copies the whole shared bucket each time
    backend = moto_bucket_backend(dandi_archive.bucket)
    for asset_id in added:
        put_empty_blob(backend, dandi_archive, asset_id)

    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    with filler.open("wb") as fh:  # leave ~300 KiB: the sync starts, then runs out
        fh.truncate(0)
        fh.write(b"\0" * max(0, free - 300 * 1024))
    monkeypatch.setenv("NEUROMIRROR_MIN_FREE", "0")  # the check off: the disk fills mid-sync
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code != 0
    assert any(w in err for w in ("No space left", "Out of diskspace", "disk is full", "ENOSPC")), err
    assert len([x for x in err.strip().splitlines() if x.startswith("neuromirror")]) >= 1

    filler.unlink()  # space again: the dataset and the index are as they were
    assert list((ds / ".git" / "objects" / "pack").glob("tmp_*")) == []  # no half-written pack
    assert git(ds, "rev-parse", "HEAD") == head
    assert git(ds, "status", "--porcelain") == ""
    assert versions(cli.root, f"dandi:{ident}") == 1
    monkeypatch.setenv("NEUROMIRROR_MIN_FREE", "1M")
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    assert len(git(ds, "ls-files").split()) >= 3000
    assert git(ds, "status", "--porcelain") == ""
    assert subprocess.run(["git", "-C", str(ds), "fsck", "--no-progress"], capture_output=True).returncode == 0


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB file system (tmpfs): a store that fills up as a real disk does (needs the right to mount)."""
    where = tmp_path / "tiny"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_store_that_fills_up_is_named_as_full_not_the_sources(
    dandi_archive, tmp_path: Path, tiny_disk: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tried as a new user would: a full target blamed every place the bytes came from ("store /other:
    writing to the store failed: No space left on device"). Now each file not kept names the full store, once,
    and the other store of the same run is not blamed and still gets every copy."""
    ident = dandi_archive.create_dandiset(name="full", created=T0)
    for i in range(4):
        dandi_archive.put_asset(ident, f"f{i}.nwb", uuid.uuid4().bytes * 6000, when=T0)  # 96 kB each: 2 fit
    cli = CLI(tmp_path / "mirror", capsys, dandi_archive.api_url)
    assert cli("sync", f"dandi:{ident}")[0] == 0
    monkeypatch.setenv("NEUROMIRROR_MIN_FREE", "0")
    roomy, full = tmp_path / "roomy", tiny_disk / "keep"
    # a filtered keep is not judged before it starts (what it copies is known only as it goes): the disk fills
    # mid-keep, as with a size known too late (tests/test_disk_full.py: the keep refused before it starts)
    code, out, err = cli("keep", f"dandi:{ident}", "--to", str(roomy), "--to", str(full), "--max-file-size", "1G")
    assert code != 0
    failed = [x for x in out.splitlines() if x.strip().startswith("FAILED")]
    assert failed and all(f"the store {full} is full (No space left on device)" in x for x in failed), out
    assert str(roomy) not in "".join(failed)  # the source store is not blamed
    assert len(list(roomy.glob("*/*/SHA256E-*.nwb"))) == 4  # the roomy store got every file
    in_full = list(full.glob("*/*/SHA256E-*.nwb"))
    assert 0 < len(in_full) < 4 and len(failed) == 4 - len(in_full), out  # what fit is kept; each other file named
    # the run's summary says which store fell short
    assert f"not kept in {full}" in err and str(roomy) not in err.split("not kept in")[-1], err
