"""Mirroring BOSS, as a lab would use it: stand-in BOSS, CLI sync, datalad clone / get, zarr-python.

Everything runs against ``neuromirror.standins.boss`` on loopback with a tiny
experiment (20 x 96 x 80 voxels, chunks of 8 x 32 x 32: partial chunks at the
edges, two resolution levels), so a sync takes about a second.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from conftest import git
from helpers.boss import (
    CHUNK_ARG,
    SPEC,
    TOKEN,
    VENV_BIN,
    C,
    E,
    Runner,
    _base_env,
    chunk_bytes,
    clone,
    cutouts,
    get,
    key_of,
    run,
)
from neuromirror.standins.boss.server import BossStandIn
from neuromirror.standins.boss.tiny import TINY_CHUNK, tiny_sample

pytestmark = pytest.mark.usefixtures("hermetic")  # every test: an empty HOME, the stand-in's token


# ----------------------------------------------------------------------------- helpers


def tree(ds: Path, rev: str = "HEAD") -> set[str]:
    return {
        p
        for p in git(ds, "ls-tree", "-r", "--name-only", rev).splitlines()
        if not p.startswith(".datalad/") and p != ".gitattributes"
    }


# ----------------------------------------------------------------------------- one mirror, read-only tests


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One sync of the tiny sample (with -vv: every log line is captured), a clone, some chunks fetched."""
    base = tmp_path_factory.mktemp("boss-mirror")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in _base_env(base / "home").items():
            mp.setenv(k, v)
        for k in ("INTERN_HOST", "INTERN_PROTOCOL", "NEUROMIRROR_BOSS_URL", "NEUROMIRROR_BOSS_NO_HASH"):
            mp.delenv(k, raising=False)
        mp.setenv("INTERN_TOKEN", TOKEN)
        from neuromirror.util import progress

        mp.setattr(progress, "LOG_EVERY", 0.0)  # off a terminal, a sync this short would print no progress
        with tiny_sample(token=TOKEN) as server:
            cli = Runner(base / "mirror", server.url)
            out = cli.ok("sync", SPEC, "--chunk", CHUNK_ARG, verbose=True)
            work = clone(cli.ds(), base / "clone")
            # the special remote may send the token only to a host the user configured
            mp.setenv("NEUROMIRROR_BOSS_URL", server.url)
            fetched = run(["git", "annex", "get", "--debug", "image8.ome.zarr", "annotation.ome.zarr/0/1"], cwd=work)
            assert fetched.returncode == 0, fetched.stdout + fetched.stderr
            cli.transcript += [fetched.stdout, fetched.stderr]
            yield {"cli": cli, "boss": server, "work": work, "out": out, "base": base}


def test_dataset_layout_and_index(mirrored: dict) -> None:
    cli, boss = mirrored["cli"], mirrored["boss"]
    ds = cli.ds()
    assert "1 new version(s)" in mirrored["out"]
    # progress in bytes while the chunks are read (3 channels x 39 chunks of 8 x 32 x 32 voxels: 3.35 MiB):
    # a bar of bytes (B/s), as the other long commands draw, not of "it/s"
    bars = [ln for ln in cli.transcript[1].splitlines() if ": reading cutouts" in ln]
    assert bars and any("100%" in ln and "3.35M/3.35M" in ln for ln in bars), cli.transcript[1]
    assert all(re.search(r"[0-9.]+[kMG]?B/s|\?B/s", ln) and "it/s" not in ln for ln in bars), bars
    files = tree(ds)
    assert "boss.json" in files
    for ch in ("image8", "image16", "annotation"):
        assert {
            f"{ch}.ome.zarr/.zgroup",
            f"{ch}.ome.zarr/.zattrs",
            f"{ch}.ome.zarr/0/.zarray",
            f"{ch}.ome.zarr/1/.zarray",
        } <= files
        # level 0: 20 x 96 x 80 in 8 x 32 x 32 -> 3 x 3 x 3 chunks; level 1 (x, y halved): 3 x 2 x 2
        assert len([f for f in files if f.startswith(f"{ch}.ome.zarr/0/") and not f.endswith(".zarray")]) == 27
        assert len([f for f in files if f.startswith(f"{ch}.ome.zarr/1/") and not f.endswith(".zarray")]) == 12
    # metadata in git, chunks annexed with SHA256E keys of the padded bytes
    assert (ds / "boss.json").is_file() and not (ds / "boss.json").is_symlink()
    assert (ds / "image8.ome.zarr/0/2/2/2").is_symlink()
    key = key_of(ds, "image8.ome.zarr/0/2/2/2")
    assert key.startswith("SHA256E-s8192--")  # a full 8 x 32 x 32 uint8 chunk although only 4 x 32 x 16 is data
    assert key_of(ds, "annotation.ome.zarr/0/0/0/0").startswith("SHA256E-s65536--")

    meta = json.loads((ds / "boss.json").read_text())
    assert meta["experiment"]["name"] == E and meta["experiment"]["hierarchy_method"] == "anisotropic"
    assert meta["coord_frame"]["voxel_unit"] == "nanometers" and meta["coord_frame"]["x_stop"] == 80
    assert meta["channels"]["annotation"]["type"] == "annotation"
    assert meta["channels"]["image8"]["metadata"] == {"stain": "synthetic"}
    assert meta["collection"]["metadata"] == {"project": "neuromirror stand-in"}
    assert meta["mirror"]["chunk_zyx"] == list(TINY_CHUNK)

    zattrs = json.loads((ds / "image8.ome.zarr/.zattrs").read_text())
    ms = zattrs["multiscales"][0]
    assert ms["version"] == "0.4"
    assert [(a["name"], a["unit"]) for a in ms["axes"]] == [("z", "nanometer"), ("y", "nanometer"), ("x", "nanometer")]
    assert [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]] == [[40, 4, 4], [40, 8, 8]]
    assert zattrs["boss"]["api"] == boss.url and zattrs["boss"]["channel"] == "image8"
    zarray = json.loads((ds / "image8.ome.zarr/1/.zarray").read_text())
    assert zarray["shape"] == [20, 48, 40] and zarray["chunks"] == list(TINY_CHUNK)
    assert zarray["compressor"] is None and zarray["dimension_separator"] == "/" and zarray["dtype"] == "|u1"

    # a version: commit, tag, index row with files and the experiment's metadata
    label = git(ds, "tag", "-l").split()
    assert (
        len(label) == 1
        and git(ds, "rev-parse", f"{label[0]}^{{commit}}").strip() == git(ds, "rev-parse", "HEAD").strip()
    )
    with sqlite3.connect(cli.index) as db:
        db.row_factory = sqlite3.Row
        v = db.execute("SELECT * FROM versions WHERE source=?", [SPEC]).fetchall()
        assert len(v) == 1 and v[0]["label"] == label[0] and v[0]["kind"] == "snapshot" and v[0]["tag"] == label[0]
        assert v[0]["files"] == len(files)
        vmeta = json.loads(v[0]["meta"])
        assert vmeta["keys"] == "sha256" and vmeta["channels"]["annotation"]["chunks"] == 39
        assert vmeta["voxel_unit"] == "nanometers"
        kinds = {
            r[0] for r in db.execute("SELECT checksum_kind FROM entries WHERE source=? AND key IS NOT NULL", [SPEC])
        }
        assert kinds == {"sha256"}
        rid = db.execute(
            "SELECT remote_id FROM entries WHERE source=? AND path=?", [SPEC, "image8.ome.zarr/0/1/2/0"]
        ).fetchone()[0]
        assert rid == f"{C}/{E}/image8/0/0:32/64:96/8:16"
    # the special remote is set up for clones, with no secret in its config
    remote_log = git(ds, "show", "git-annex:remote.log")
    assert "externaltype=neuromirror" in remote_log and "autoenable=true" in remote_log
    assert f"url={boss.url}" in remote_log


def test_clone_get_chunk_equals_server_array(mirrored: dict, tmp_path: Path) -> None:
    boss, work = mirrored["boss"], mirrored["work"]
    # the clone has the special remote enabled by autoenable
    assert "neuromirror" in git(work, "annex", "info", "--fast")
    vol0 = boss.volume(C, E, "image8")
    vol1 = boss.volume(C, E, "image8", 1)
    for iz in range(3):
        for iy in range(3):
            for ix in range(3):
                got = (work / f"image8.ome.zarr/0/{iz}/{iy}/{ix}").read_bytes()
                assert got == chunk_bytes(vol0, iz, iy, ix), (iz, iy, ix)
    assert (work / "image8.ome.zarr/1/2/1/1").read_bytes() == chunk_bytes(vol1, 2, 1, 1)  # edge in z, y and x
    ann = boss.volume(C, E, "annotation")
    assert (work / "annotation.ome.zarr/0/1/2/2").read_bytes() == chunk_bytes(ann, 1, 2, 2)

    # datalad get of one chunk in a fresh clone, from the special remote
    other = clone(mirrored["cli"].ds(), tmp_path / "other")
    proc = get(other, "image16.ome.zarr/0/2/0/2", env={"NEUROMIRROR_BOSS_URL": boss.url}, datalad=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "from neuromirror" in proc.stdout
    assert (other / "image16.ome.zarr/0/2/0/2").read_bytes() == chunk_bytes(boss.volume(C, E, "image16"), 2, 0, 2)


def test_zarr_python_reads_across_chunk_borders(mirrored: dict) -> None:
    import zarr

    boss, work = mirrored["boss"], mirrored["work"]
    group = zarr.open_group(str(work / "image8.ome.zarr"), mode="r")
    assert group.attrs["multiscales"][0]["datasets"][1]["path"] == "1"
    level0 = group["0"]
    assert level0.shape == (20, 96, 80) and level0.dtype == np.uint8
    vol = boss.volume(C, E, "image8")
    # crosses z=8 and 16, y=32 and 64, x=32 and 64, up to the partial edge chunks
    np.testing.assert_array_equal(level0[5:20, 30:70, 20:80], vol[5:20, 30:70, 20:80])
    np.testing.assert_array_equal(group["1"][:], boss.volume(C, E, "image8", 1))
    ann = zarr.open_array(str(work / "annotation.ome.zarr/0"), mode="r")
    assert ann.dtype == np.uint64
    np.testing.assert_array_equal(ann[8:16, 10:90, 5:75], boss.volume(C, E, "annotation")[8:16, 10:90, 5:75])


def test_token_appears_nowhere(mirrored: dict) -> None:
    cli, base = mirrored["cli"], mirrored["base"]
    needle = TOKEN.encode()
    hits: list[str] = []
    repos = [cli.root, cli.ds(), mirrored["work"]]
    for repo in repos:
        # every object, the git-annex branch's included, decompressed
        objs = subprocess.run(
            ["git", "cat-file", "--batch-all-objects", "--batch"], cwd=repo, capture_output=True
        ).stdout
        assert objs and b"neuromirror" in objs
        if needle in objs:
            hits.append(f"{repo}: git objects")
        annex_branch = subprocess.run(["git", "log", "-p", "git-annex"], cwd=repo, capture_output=True).stdout
        if needle in annex_branch:
            hits.append(f"{repo}: git-annex branch history")
    # every file on disk: work trees, .git/config, annex journals and logs, the index and its WAL
    for top in (base / "mirror", base / "clone"):
        for dirpath, _, names in os.walk(top):
            for name in names:
                p = Path(dirpath) / name
                if p.is_file() and not p.is_symlink() and needle in p.read_bytes():
                    hits.append(str(p))
    assert cli.index.exists()
    # everything printed or logged (sync at -vv: neuromirror, intern, urllib3, datalad; git annex get --debug)
    assert any("reading cutout" in t for t in cli.transcript)  # the special remote's debug output was captured
    hits += [f"transcript {i}" for i, t in enumerate(cli.transcript) if TOKEN in t]
    with sqlite3.connect(cli.index) as db:
        for report, error in db.execute("SELECT report, error FROM runs"):
            assert TOKEN not in (report or "") + (error or "")
    assert hits == []


# ----------------------------------------------------------------------------- errors and the token


def test_wrong_token_clear_error_writes_nothing(
    boss: BossStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = Runner(tmp_path / "mirror", boss.url)
    monkeypatch.setenv("INTERN_TOKEN", "wrong-" + TOKEN)
    code, out, err = cli("sync", SPEC, "--chunk", CHUNK_ARG)
    assert code != 0
    assert "rejected the token" in err and "INTERN_TOKEN" in err and "401" in err
    assert TOKEN not in out + err
    assert not cli.root.exists()

    monkeypatch.delenv("INTERN_TOKEN")
    code, out, err = cli("sync", SPEC)
    assert code != 0 and "set INTERN_TOKEN or ~/.intern/intern.cfg" in err
    assert not cli.root.exists()

    # ~/.intern/intern.cfg is read as intern reads it
    cfg = Path(os.environ["HOME"]) / ".intern" / "intern.cfg"
    cfg.parent.mkdir()
    cfg.write_text(f"[Default]\nprotocol = {boss.protocol}\nhost = {boss.host}\ntoken = {TOKEN}\n")
    cli.ok("sync", SPEC, "--chunk", CHUNK_ARG, "--channels", "image8", "--resolutions", "1")
    assert tree(cli.ds()) >= {"image8.ome.zarr/1/0/0/0", "boss.json"}


def test_retrieval_token_errors(mirrored: dict) -> None:
    boss, work = mirrored["boss"], mirrored["work"]
    path = "image16.ome.zarr/0/0/0/0"  # not fetched in that clone
    proc = get(work, path, env={"INTERN_TOKEN": "", "NEUROMIRROR_BOSS_URL": boss.url})
    assert proc.returncode != 0 and "set INTERN_TOKEN or ~/.intern/intern.cfg" in proc.stdout + proc.stderr
    proc = get(work, path, env={"INTERN_TOKEN": "not-" + TOKEN, "NEUROMIRROR_BOSS_URL": boss.url})
    assert proc.returncode != 0 and "BOSS rejected the token" in proc.stdout + proc.stderr
    # a host the user did not configure never sees the token
    before = boss.request_count
    proc = get(work, path)
    assert proc.returncode != 0 and "refusing to send your BOSS token" in proc.stdout + proc.stderr
    assert boss.request_count == before
    assert not (work / path).exists()
    assert TOKEN not in proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- versions


def test_annotation_change_new_version_old_chunk_fails_clearly(boss: BossStandIn, tmp_path: Path) -> None:
    cli = Runner(tmp_path / "mirror", boss.url)
    cli.ok("sync", SPEC, "--chunk", CHUNK_ARG)
    ds = cli.ds()
    first = git(ds, "tag", "-l").split()
    head1 = git(ds, "rev-parse", "HEAD").strip()

    # nothing changed: annotations are re-read, images are not, no commit
    boss.clear_request_log()
    out = cli.ok("sync", SPEC, "--chunk", CHUNK_ARG)
    assert "unchanged" in out
    assert git(ds, "rev-parse", "HEAD").strip() == head1
    assert set(cutouts(boss)) == {"annotation"} and len(cutouts(boss)) == 39

    # an annotation edit upstream inside chunk (0, 0, 0) of level 0
    old = boss.volume(C, E, "annotation").copy()
    edited = old.copy()
    edited[2:6, 3:20, 4:30] = 424242424242
    boss.set_volume(C, E, "annotation", edited)
    out = cli.ok("sync", SPEC, "--chunk", CHUNK_ARG)
    assert "1 new version(s)" in out
    tags = git(ds, "tag", "-l").split()
    assert len(tags) == 2 and tags[0] == first[0] and tags[1] > tags[0]
    changed = git(ds, "diff", "--name-only", tags[0], tags[1]).split()
    assert "annotation.ome.zarr/0/0/0/0" in changed
    assert all(p.startswith("annotation.ome.zarr/") for p in changed)
    assert set(changed) <= {"annotation.ome.zarr/0/0/0/0", "annotation.ome.zarr/1/0/0/0"}
    with sqlite3.connect(cli.index) as db:
        rows = db.execute(
            "SELECT label, tag, remote_modified FROM versions WHERE source=? ORDER BY id", [SPEC]
        ).fetchall()
    assert [r[0] for r in rows] == tags and [r[1] for r in rows] == tags
    assert rows[0][2] != rows[1][2] and rows[1][2].startswith("sha256:")

    work = clone(ds, tmp_path / "clone")
    env = {"NEUROMIRROR_BOSS_URL": boss.url}
    # the new version: the new bytes
    proc = get(work, "annotation.ome.zarr/0/0/0/0", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / "annotation.ome.zarr/0/0/0/0").read_bytes() == chunk_bytes(edited, 0, 0, 0)
    # the old version: its unchanged chunks still come, the changed one fails with a clear message
    git(work, "checkout", "-q", tags[0])
    proc = get(work, "annotation.ome.zarr/0/0/0/1", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / "annotation.ome.zarr/0/0/0/1").read_bytes() == chunk_bytes(old, 0, 0, 1)
    proc = get(work, "annotation.ome.zarr/0/0/0/0", env=env, datalad=True)
    assert proc.returncode != 0
    assert "upstream data changed since this version was mirrored" in proc.stdout + proc.stderr
    target = work / "annotation.ome.zarr/0/0/0/0"
    assert target.is_symlink() and not target.exists()  # never wrong bytes


def test_no_hash_keys_verified_on_first_get(boss: BossStandIn, tmp_path: Path) -> None:
    cli = Runner(tmp_path / "mirror", boss.url)
    boss.clear_request_log()
    cli.ok("sync", SPEC, "--chunk", CHUNK_ARG, "--no-hash")
    assert set(cutouts(boss)) == {"annotation"}  # image chunks were not read
    ds = cli.ds()
    assert key_of(ds, "image8.ome.zarr/0/0/0/0").startswith("VURL-s8192--")
    assert key_of(ds, "annotation.ome.zarr/0/0/0/0").startswith("SHA256E-")
    with sqlite3.connect(cli.index) as db:
        kinds = dict(
            db.execute(
                "SELECT path, checksum_kind FROM entries WHERE source=? AND path IN (?, ?)",
                [SPEC, "image8.ome.zarr/0/0/0/0", "annotation.ome.zarr/0/0/0/0"],
            ).fetchall()
        )
        meta = json.loads(db.execute("SELECT meta FROM versions WHERE source=?", [SPEC]).fetchone()[0])
    assert kinds == {"image8.ome.zarr/0/0/0/0": "verify-on-get", "annotation.ome.zarr/0/0/0/0": "sha256"}
    assert meta["channels"]["image8"]["keys"] == "verify-on-get" and meta["keys"] == "mixed"

    work = clone(ds, tmp_path / "clone")
    env = {"NEUROMIRROR_BOSS_URL": boss.url}
    path = "image8.ome.zarr/0/1/1/1"
    assert get(work, path, env=env).returncode == 0
    assert (work / path).read_bytes() == chunk_bytes(boss.volume(C, E, "image8"), 1, 1, 1)
    # the image changes upstream: a later retrieval of the same key is refused
    git(work, "annex", "drop", "--force", path)
    changed = boss.volume(C, E, "image8").copy()
    changed[8:16, 32:64, 32:64] += 1
    boss.set_volume(C, E, "image8", changed)
    proc = get(work, path, env=env)
    assert proc.returncode != 0 and "upstream data changed" in proc.stdout + proc.stderr
    assert not (work / path).exists()


# ----------------------------------------------------------------------------- options


def test_selection_bbox_time_range(tmp_path: Path) -> None:
    import zarr

    server = BossStandIn(token=TOKEN)
    server.add_collection("lab")
    server.add_coord_frame("f", 40, 40, 10, 2.0, 2.0, 5.0, "micrometers")
    server.add_experiment(
        "lab", "ts", "f", num_time_samples=3, time_step=2, time_step_unit="seconds", num_hierarchy_levels=2
    )
    data = (np.arange(3 * 10 * 40 * 40, dtype=np.uint32) % 65521).astype(np.uint16).reshape(3, 10, 40, 40)
    server.add_channel("lab", "ts", "em", datatype="uint16", data=data)
    server.add_channel("lab", "ts", "other")
    with server:
        cli = Runner(tmp_path / "mirror", server.url)
        cli.ok(
            "sync",
            "boss:lab/ts",
            "--channels",
            "em",
            "--resolutions",
            "0",
            "--bbox",
            "0:20,0:40,0:10",
            "--time-range",
            "1:3",
            "--chunk",
            "4x16x16",
        )
        ds = cli.ds("lab", "ts")
        files = tree(ds)
        assert not any(f.startswith("other.ome.zarr") for f in files)
        assert not any(f.startswith("em.ome.zarr/1/") for f in files)
        chunks = sorted(f for f in files if f.startswith("em.ome.zarr/0/") and not f.endswith(".zarray"))
        # t 1..2, z 3 chunks, y 3 chunks, x chunks 0 and 1 (16..32 meets x < 20)
        assert len(chunks) == 2 * 3 * 3 * 2 and chunks[0] == "em.ome.zarr/0/1/0/0/0"
        zarray = json.loads((ds / "em.ome.zarr/0/.zarray").read_text())
        assert zarray["shape"] == [3, 10, 40, 40] and zarray["chunks"] == [1, 4, 16, 16]
        axes = json.loads((ds / "em.ome.zarr/.zattrs").read_text())["multiscales"][0]["axes"]
        assert [(a["name"], a.get("unit")) for a in axes] == [
            ("t", "second"),
            ("z", "micrometer"),
            ("y", "micrometer"),
            ("x", "micrometer"),
        ]
        sel = json.loads((ds / "boss.json").read_text())["mirror"]
        assert sel["channels"] == ["em"] and sel["time_range"] == [1, 3] and sel["bbox"]["x"] == [0, 20]

        work = clone(ds, tmp_path / "clone")
        proc = get(work, "em.ome.zarr", env={"NEUROMIRROR_BOSS_URL": server.url})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        arr = zarr.open_array(str(work / "em.ome.zarr/0"), mode="r")
        np.testing.assert_array_equal(arr[1:3, :, :, 0:32], data[1:3, :, :, 0:32])
        assert not arr[0].any()  # not mirrored: zarr's fill value


def test_isotropic_levels_odd_extents_frame_offset(tmp_path: Path) -> None:
    """z halves too; odd extents round up; the BOSS serves every level only from the frame's level-0 start."""
    import zarr

    server = BossStandIn(token=TOKEN)
    server.add_collection("c")
    server.add_coord_frame("f", 45, 37, 21, x_start=5, y_start=3, z_start=2)
    server.add_experiment("c", "e", "f", num_hierarchy_levels=3, hierarchy_method="isotropic")
    server.add_channel("c", "e", "img", datatype="uint16")
    with server:
        cli = Runner(tmp_path / "mirror", server.url)
        cli.ok("sync", "boss:c/e", "--chunk", "4x8x16")
        ds = cli.ds("c", "e")
        # the mirror's own dataset can fetch through its special remote too (no clone needed)
        proc = run(["git", "annex", "get", "img.ome.zarr"], cwd=ds, env={"NEUROMIRROR_BOSS_URL": server.url})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        group = zarr.open_group(str(ds / "img.ome.zarr"), mode="r")
        scales = [d["coordinateTransformations"][0]["scale"] for d in group.attrs["multiscales"][0]["datasets"]]
        assert scales == [[1, 1, 1], [2, 2, 2], [4, 4, 4]]
        for res, shape in enumerate([(21, 37, 45), (11, 19, 23), (6, 10, 12)]):
            got, want = group[str(res)][:], server.volume("c", "e", "img", res)
            assert got.shape == want.shape == shape
            np.testing.assert_array_equal(got[2:, 3:, 5:], want[2:, 3:, 5:])
            assert not got[:2].any() and not got[:, :3].any() and not got[:, :, :5].any()


def test_collection_spec_and_reindex(boss: BossStandIn, tmp_path: Path) -> None:
    boss.add_experiment(C, "exp2", "neuromirror_demo_frame", num_hierarchy_levels=1)
    boss.add_channel(C, "exp2", "img")
    cli = Runner(tmp_path / "mirror", boss.url)
    out = cli.ok("sync", f"boss:{C}", "--chunk", "16x64x64")
    assert "2 sources: 2 updated" in out
    assert (cli.ds(C, "exp1") / "boss.json").is_file() and (cli.ds(C, "exp2") / "img.ome.zarr/.zattrs").is_file()
    assert len(tree(cli.ds(C, "exp2"))) == 1 + 3 + 2 * 2 * 2  # boss.json, .zgroup/.zattrs/.zarray, 2 x 2 x 2 chunks

    # the index rebuilt from the datasets alone: same files, same identities, so nothing to do
    with sqlite3.connect(cli.index) as db:
        before = sorted(db.execute("SELECT path, key, urls, checksum_kind, remote_id FROM entries"))
    cli.index.unlink()
    cli.ok("reindex")
    with sqlite3.connect(cli.index) as db:
        after = sorted(db.execute("SELECT path, key, urls, checksum_kind, remote_id FROM entries"))
    assert after == before
    boss.clear_request_log()
    out = cli.ok("sync", f"boss:{C}/exp2", "--chunk", "16x64x64")
    assert "unchanged" in out
    assert cutouts(boss) == []  # the image chunks' keys came from the rebuilt index, not from reading


def test_bad_options_and_names(boss: BossStandIn, tmp_path: Path) -> None:
    cli = Runner(tmp_path / "mirror", boss.url)
    for args, msg in [
        (["--chunk", "8x32"], "--chunk"),
        (["--bbox", "0:10,0:10"], "--bbox"),
        (["--time-range", "3:1"], "--time-range"),
        (["--resolutions", "0,x"], "--resolutions"),
    ]:
        code, _, err = cli("sync", SPEC, *args)
        assert code != 0 and msg in err, (args, err)
    code, _, err = cli("sync", f"boss:{C}/nope")
    assert code != 0 and "not found" in err and "nope" in err
    code, _, err = cli("sync", SPEC, "--channels", "nope")
    assert code != 0 and "no channel nope" in err
    code, _, err = cli("sync", SPEC, "--resolutions", "5")
    assert code != 0 and "levels 0-1" in err


# ----------------------------------------------------------------------------- units


def test_chunk_url_round_trip_and_refusals() -> None:
    from neuromirror.sources.boss.chunks import Chunk
    from neuromirror.sources.boss.source import remote_id_for

    chunk = Chunk("https", "api.bossdb.io", "c", "e", "ch", 1, (32, 64), (0, 16), (8, 16), None, (8, 32, 32), "uint64")
    assert chunk.url == "neuromirror+boss://api.bossdb.io/c/e/ch/1/32:64/0:16/8:16/?chunk=8,32,32&dtype=uint64"
    assert Chunk.parse(chunk.url) == chunk
    assert chunk.nbytes == 8 * 32 * 32 * 8
    timed = Chunk("http", "127.0.0.1:9", "c", "e", "ch", 0, (0, 5), (0, 5), (0, 5), (2, 3), (8, 8, 8), "uint8")
    assert Chunk.parse(timed.url) == timed and timed.url.startswith("neuromirror+boss+http://")
    assert remote_id_for("ch.ome.zarr/1/1/0/1", None, (":" + chunk.url,)) == "c/e/ch/1/32:64/0:16/8:16"
    for bad in [
        "https://api.bossdb.io/c/e/ch/1/0:1/0:1/0:1/?chunk=1,1,1&dtype=uint8",
        "neuromirror+boss://h/c/e/ch/1/0:40/0:1/0:1/?chunk=8,32,32&dtype=uint8",  # crosses a chunk border
        "neuromirror+boss://h/c/e/../1/0:1/0:1/0:1/?chunk=1,1,1&dtype=uint8",
        "neuromirror+boss://h/c/e/ch/1/0:1/0:1/0:1/?chunk=1,1,1&dtype=float64",
    ]:
        with pytest.raises(ValueError):
            Chunk.parse(bad)


def test_find_token_and_trusted_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from neuromirror.sources.boss.api import find_token, scrub, trusted_hosts

    assert find_token() == TOKEN
    monkeypatch.delenv("INTERN_TOKEN")
    assert find_token() is None
    cfg = Path(os.environ["HOME"]) / ".intern" / "intern.cfg"
    cfg.parent.mkdir()
    cfg.write_text(
        "[Default]\nprotocol = https\nhost = boss.example.org\ntoken = from-file\n"
        "[Volume Service]\nprotocol = https\nhost = vol.example.org\ntoken = volume-token\n"
    )
    assert find_token() == "volume-token"
    assert {"api.bossdb.io", "boss.example.org", "vol.example.org"} <= trusted_hosts()
    monkeypatch.setenv("INTERN_TOKEN", "env-wins")
    assert find_token() == "env-wins"
    assert "evil.example" not in trusted_hosts()
    assert scrub(f"GET failed with Token {TOKEN}", TOKEN) == "GET failed with Token <token>"


def test_special_remote_protocol(tmp_path: Path) -> None:
    """The console script speaks the external special remote protocol (claims only its own URLs)."""
    script = Path(VENV_BIN) / "git-annex-remote-neuromirror"
    assert script.exists()
    url = "neuromirror+boss://api.bossdb.io/c/e/ch/0/0:512/0:512/0:16/?chunk=16,512,512&dtype=uint16"
    lines = [
        "EXTENSIONS INFO ASYNC",
        f"CLAIMURL {url}",
        "CLAIMURL https://example.org/x",
        f"CHECKURL {url}",
        "GETAVAILABILITY",
        "TRANSFER STORE SHA256E-s1--00 /dev/null",
    ]
    proc = subprocess.run([str(script)], input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60)
    replies = proc.stdout.splitlines()
    assert replies[0] == "VERSION 1"
    assert replies[2:6] == [
        "CLAIMURL-SUCCESS",
        "CLAIMURL-FAILURE",
        f"CHECKURL-CONTENTS {16 * 512 * 512 * 2}",
        "AVAILABILITY GLOBAL",
    ]
    assert replies[6].startswith("TRANSFER-FAILURE STORE SHA256E-s1--00 the BOSS is read-only")


def test_a_throttling_boss_is_waited_for_and_reported(boss: BossStandIn, tmp_path: Path) -> None:
    """503 with Retry-After from the BOSS: the sync waits and retries through the endpoint's pace, ends
    ok, and its report counts the throttled answers and retries against the BOSS's endpoint."""
    from neuromirror.network import pacing
    from neuromirror.standins.faults import FaultPlan

    pacing.forget()
    boss.faults = FaultPlan(retry_after=1)
    boss.faults.fail_next(2, "503")
    cli = Runner(tmp_path / "mirror", boss.url)
    rep = json.loads(cli.ok("sync", SPEC, "--chunk", CHUNK_ARG, "--json"))
    assert rep["outcome"] == "ok" and rep["unreachable"] == []
    row = next(r for r in rep["network"] if r["endpoint"] == pacing.origin(boss.url))
    assert row["throttled"] == 2 and row["retries"] >= 2 and row["gave_up"] == 0
    assert [r.fault for r in boss.request_log].count("503") == 2
