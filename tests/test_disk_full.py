"""A full disk, met on a real small file system (a 4 MiB tmpfs): a sync of a new root, a keep (a directory and a
packed store) and a get each say in one line, before any work, which file system is short and by how much, and
leave nothing half-made there; a new root the disk fills anyway is removed whole.  On landed main: raw
"database or disk is full" with ``.neuromirror/`` left behind, a store called DOWN beside a 1 MiB staged pack,
and datalad's multi-line clone failure.  (``get --format tiff``: tests/test_boss_tiff.py.)
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from helpers.keep import key_of
from helpers.mounts import fill, tmpfs
from helpers.retrieve import Runner, git
from helpers.service import ENV

T0 = datetime(2025, 9, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def mirrored(dandi_archive, tmp_path_factory) -> tuple[Runner, str]:  # noqa: ANN001
    """A dandiset of four 600 kB files (2.4 MB to keep or get), mirrored on a roomy disk."""
    ident = dandi_archive.create_dandiset(name="full disk", created=T0)
    for i in range(4):
        dandi_archive.put_asset(ident, f"sub-0{i}/f{i}.nwb", os.urandom(600_000), when=T0 + timedelta(minutes=i))
    run = Runner(tmp_path_factory.mktemp("full") / "mirror")
    run.ok("sync", f"dandi:{ident}", "--dandi-api", dandi_archive.api_url)
    return run, f"dandi:{ident}"


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small", "4m") as d:
        yield d


def neuromirror(root: Path, *args: str, min_free: str) -> subprocess.CompletedProcess:
    """``python -m neuromirror --root ROOT ARGS`` with ``NEUROMIRROR_MIN_FREE`` set (0: only what the work needs)."""
    env = {**ENV, "NEUROMIRROR_MIN_FREE": min_free}
    return subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(root), *args], env=env, capture_output=True, text=True
    )


def one_line(p: subprocess.CompletedProcess) -> str:
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr and p.stdout == "", p.stderr
    return lines[0]


#: (case, the command with {root} the mirror's root, {s} its source, {d} the small disk; space left there)
CASES = [
    ("sync of a new root", ["--root", "{d}/mirror", "sync", "{s}", "--dandi-api", "{api}"], 200_000),
    ("keep into a directory", ["--root", "{root}", "keep", "{s}", "--to", "{d}/store"], 1_000_000),
    ("keep into a packed store", ["--root", "{root}", "keep", "{s}", "--to", "pack+file://{d}/packs"], 1_000_000),
    ("get", ["--root", "{root}", "get", "{s}", "--to", "{d}/clone", "--allow-ip", "all"], 1_000_000),
]


@pytest.mark.parametrize("case,template,leave", CASES, ids=[c[0] for c in CASES])
def test_a_full_disk_is_said_before_work_in_one_line_and_nothing_is_made(
    mirrored: tuple[Runner, str],
    dandi_archive,
    small: Path,
    case: str,
    template: list[str],
    leave: int,  # noqa: ANN001
) -> None:
    run, source = mirrored
    fill(small, leave)
    before = run.ok("versions", source, "--json")
    args = [a.format(root=run.root, s=source, d=small, api=dandi_archive.api_url) for a in template]
    line = one_line(neuromirror(Path(args[1]), *args[2:], min_free="0"))
    assert (
        f"tmpfs at {small} has " in line and "more needed" in line and line.startswith("neuromirror: not starting")
    ), line
    assert sorted(p.name for p in small.iterdir()) == ["filler"]  # nothing made on the full disk
    assert run.ok("versions", source, "--json") == before  # nothing of the mirror changed
    assert (
        git(run.root, "status", "--porcelain") == ""
        and git(run.root / source.replace(":", "/"), "status", "--porcelain") == ""
    )


def test_a_new_root_the_disk_fills_anyway_is_removed_whole(
    dandi_archive,
    small: Path,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    """Past the check (a new root's start fits), the disk fills as the dataset is written: the half-made root goes."""
    from neuromirror.bench.archives import put_empty_blob
    from neuromirror.bench.moto_patch import moto_bucket_backend

    ident = dandi_archive.create_dandiset(name="fills a new root", created=T0)
    added = dandi_archive.add_synthetic_assets(ident, 2000, when=T0 + timedelta(hours=1))  # MBs of git objects and rows
    backend = moto_bucket_backend(dandi_archive.bucket)
    for asset_id in added:
        put_empty_blob(backend, dandi_archive, asset_id)
    fill(small, 1_200_000)
    p = neuromirror(
        small / "mirror",
        "sync",
        f"dandi:{ident}",
        "--dandi-api",
        dandi_archive.api_url,
        min_free="0",
    )
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert (
        lines[-1]
        == f"neuromirror: tmpfs at {small} is full: the new mirror root at {small / 'mirror'} was not made (free space there)"
    ), p.stderr
    assert sorted(x.name for x in small.iterdir()) == ["filler"]


def test_below_min_free_names_the_file_system_and_what_is_missing(mirrored: tuple[Runner, str], small: Path) -> None:
    run, source = mirrored
    line = one_line(neuromirror(run.root, "keep", source, "--to", str(small / "store"), min_free="5M"))
    assert f"tmpfs at {small} has 4.0 MiB free, below min_free 4.8 MiB: 786.8 KiB more needed" in line, line
    assert list(small.iterdir()) == []


def test_a_store_too_small_beside_a_roomy_one_is_not_started_and_the_other_gets_every_copy(
    mirrored: tuple[Runner, str], small: Path, tmp_path: Path
) -> None:
    run, source = mirrored
    fill(small, 1_000_000)
    roomy, full = tmp_path / "roomy", small / "store"
    p = neuromirror(run.root, "keep", source, "--to", str(roomy), "--to", str(full), min_free="0")
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    said = [
        x for x in p.stdout.splitlines() if x.startswith(f"store {full} NOT STARTED: not starting keeping into {full}")
    ]
    assert len(said) == 1 and f"tmpfs at {small} has" in said[0] and "more needed" in said[0], p.stdout
    assert len(list(roomy.glob("*/*/SHA256E-*.nwb"))) == 4
    assert sorted(x.name for x in small.iterdir()) == ["filler"]


def _packs_hold(index_files: list[bytes]) -> list[str]:
    """Every key the store's index files name, as often as they name it."""
    return [entry[0] for raw in index_files for entry in json.loads(raw)["keys"]]


def _recorded_in(ds: Path, uuid: str) -> set[str]:
    """The keys whose git-annex location log says ``uuid`` holds them (what a clone would ask it for)."""
    found = subprocess.run(["git", "grep", "-l", uuid, "git-annex", "--", "*/*/*.log"], cwd=ds, capture_output=True)
    return {Path(line.split(":", 1)[1]).stem for line in found.stdout.decode().splitlines()}


@pytest.mark.parametrize("kind", ["pack+file", "pack+s3"])
def test_a_packed_keep_the_disk_fills_under_discards_its_open_pack_records_none_of_it_and_a_rerun_converges(
    dandi_archive,  # noqa: ANN001
    s3,  # noqa: ANN001
    bucket: str,
    small: Path,
    tmp_path: Path,
    kind: str,
) -> None:
    """Past the check, the disk fills as a packed keep writes: a ``pack+file://`` store's own disk (packs of 1.5 MB,
    two 600 kB keys sealed in the first, the third's pack open when the fourth finds no room), and the local disk
    a ``pack+s3://`` store stages its packs on (the first key finds no room).  On landed main: the staged pack left
    in the store's ``tmp/``, and a ~1,300-character line per file naming every URL.  Now: the open pack discarded,
    none of its keys recorded kept anywhere (location log, the index's checks, the store's index files), what was
    sealed before left as it is, one line naming the store and the full file system, exit 1; with room again a
    rerun keeps the rest, each key in one pack, and ``verify --kept`` finds every file in the store."""
    ident = dandi_archive.create_dandiset(name="fills a packed store", created=T0)
    files = {f"sub-0{i}/f{i}.nwb": os.urandom(600_000) for i in range(4)}
    for i, (path, data) in enumerate(files.items()):
        dandi_archive.put_asset(ident, path, data, when=T0 + timedelta(minutes=i))
    run = Runner(tmp_path / "mirror")
    run.ok("sync", f"dandi:{ident}", "--dandi-api", dandi_archive.api_url)
    ds, source = run.root / "dandi" / ident, f"dandi:{ident}"
    keys = {key_of(ds, path, "HEAD") for path in files}
    if kind == "pack+file":  # the keep fits by the check; the packs' trailers and index files do not
        url, staged, leave, sealed = f"pack+file://{small}/packs", small / "packs" / "tmp", 2_400_000 + 8192, 2
        args: tuple[str, ...] = ("--pack-size", str(1_500_000))
        lost = ", 1 key(s) in it not kept"
    else:  # no check covers the staging disk: its first key does not fit
        url, staged, leave, sealed = f"pack+s3://{bucket}/lab", small / "neuromirror-packs", 300_000, 0
        args, lost = (), ""
    env = {**os.environ, "NEUROMIRROR_PACK_STAGING": str(small) if kind == "pack+s3" else ""}

    def keep() -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "neuromirror", "--root", str(run.root), "keep", source, "--to", url, "-J", "1"]
        return subprocess.run(
            [*cmd, *args], env={**ENV, **env, "NEUROMIRROR_MIN_FREE": "0"}, capture_output=True, text=True
        )

    def index_files() -> list[bytes]:
        if kind == "pack+file":
            return [p.read_bytes() for p in (small / "packs" / "index").glob("*.json")]
        listed = s3.client().list_objects_v2(Bucket=bucket, Prefix="lab/index/").get("Contents", [])
        return [s3.client().get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed]

    filler = fill(small, leave)
    p = keep()
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    (line,) = [x for x in p.stderr.splitlines() if "is full" in x]
    store = url.rstrip("/") + ("/" if kind == "pack+s3" else "")
    assert line.startswith(
        f"neuromirror: keep: store {store} is full: No space left on device on tmpfs at {small}; "
    ), line
    assert line.endswith(f"{store}: its open pack discarded{lost}: free space there and keep again"), line
    assert list(staged.iterdir()) == []  # the open pack's staged file is gone
    held = _packs_hold(index_files())
    assert len(held) == sealed and set(held) < keys  # the first pack's keys sealed before stay; no other
    uuid = json.loads(
        (small / "packs" / ".neuromirror-store.json").read_bytes()
        if kind == "pack+file"
        else s3.client().get_object(Bucket=bucket, Key="lab/.neuromirror-store.json")["Body"].read()
    )["uuid"]
    assert _recorded_in(ds, uuid) == set()  # no location log names the store: nothing recorded kept there
    with sqlite3.connect(run.root / ".neuromirror" / "index.sqlite") as db:
        assert db.execute("SELECT key FROM store_checks WHERE store = ?", (uuid,)).fetchall() == []

    filler.unlink()  # room again: the rerun keeps the rest and converges
    p = keep()
    assert p.returncode == 0, p.stdout + p.stderr
    held = _packs_hold(index_files())
    assert sorted(held) == sorted(keys)  # each key in exactly one pack
    assert list(staged.iterdir()) == []
    assert _recorded_in(ds, uuid) == keys
    p = subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(run.root), "verify", source, "--kept", "--store", url],
        env={**ENV, **env},
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0 and "MISMATCH" not in p.stdout, p.stdout + p.stderr
