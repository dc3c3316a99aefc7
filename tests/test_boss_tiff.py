"""A region of a pinned BOSS state as a TIFF stack (issue 60): what ndpull gives BOSS users, from the pin.

``neuromirror get boss:COLL/EXP@V --region X0:X1,Y0:Y1,Z0:Z1 [--res N] [--channel C] --format tiff --to FILE``
against the stand-in BOSS on loopback, synced with the real flow: the TIFF read back with tifffile equals
intern's own ``get_cutout`` of the same region (values, shape, dtype) at both levels; the user's mistakes
exit 2 with one line and write nothing; after the BOSS rewrote a region, the pinned version's TIFF is still
the pinned state (from the store the sync kept the chunks in), and without a store it is refused, never
the new bytes.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import tifffile
from intern.remote.boss import BossRemote
from intern.resource.boss.resource import ChannelResource

from helpers.boss import CHUNK_ARG, SPEC, TOKEN, C, E, Runner, _base_env, cutouts
from neuromirror import readers
from neuromirror.cli import main
from neuromirror.read.ome import regions
from neuromirror.read.ome.regions import describe
from neuromirror.standins.boss.server import BossStandIn
from neuromirror.standins.boss.tiny import tiny_sample

pytestmark = pytest.mark.usefixtures("hermetic")  # every test: an empty HOME, the stand-in's token

DTYPES = {"image8": "uint8", "image16": "uint16", "annotation": "uint64"}


def cutout(boss: BossStandIn, channel: str, res: int, region: str) -> np.ndarray:
    """intern's own cutout of ``region`` (``X0:X1,Y0:Y1,Z0:Z1``) from the stand-in, as BOSS users read it."""
    (x0, x1), (y0, y1), (z0, z1) = ([int(v) for v in p.split(":")] for p in region.split(","))
    kind = "annotation" if channel == "annotation" else "image"
    resource = ChannelResource(channel, C, E, type=kind, datatype=DTYPES[channel])
    return BossRemote(boss.remote_config()).get_cutout(resource, res, [x0, x1], [y0, y1], [z0, z1])


def tiff(cli: Runner, out: Path, region: str, *args: str, version: str = "", path: str = "") -> dict:
    """``get ... --format tiff --json``: the report; the file must be there and alone (no temp file left)."""
    spec = [f"{SPEC}@{version}" if version else SPEC] + ([path] if path else [])
    out.parent.mkdir(parents=True, exist_ok=True)
    report = json.loads(cli.ok("get", *spec, "--region", region, *args, "--format", "tiff", "--to", str(out), "--json"))
    assert out.is_file() and [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")] == []
    return report


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The tiny sample synced once, without a store: every chunk is read from the BOSS and checked."""
    base = tmp_path_factory.mktemp("boss-tiff")
    with pytest.MonkeyPatch.context() as mp, tiny_sample(token=TOKEN) as boss:
        for k in ("INTERN_HOST", "INTERN_PROTOCOL", "NEUROMIRROR_BOSS_URL", "NEUROMIRROR_BOSS_NO_HASH"):
            mp.delenv(k, raising=False)  # as the hermetic fixture (conftest.py) does, for the whole module
        for k, v in {**_base_env(base / "home"), "INTERN_TOKEN": TOKEN}.items():
            mp.setenv(k, v)
        cli = Runner(base / "mirror", boss.url)
        cli.ok("sync", SPEC, "--chunk", CHUNK_ARG)
        yield {"cli": cli, "boss": boss, "base": base}


@pytest.mark.parametrize(
    "channel, res, region",
    [
        ("image16", 0, "5:70,10:90,3:17"),  # across chunk borders in x, y and z, into the partial edge chunks
        ("image8", 0, "0:80,0:96,0:20"),  # the whole level
        ("image8", 1, "3:40,20:48,7:20"),  # level 1's voxels (x and y halved), its edge chunks
        ("annotation", 1, "0:17,1:2,19:20"),  # uint64, one plane of one row
    ],
)
def test_the_tiff_is_intern_s_cutout(synced: dict, tmp_path: Path, channel: str, res: int, region: str) -> None:
    cli, boss = synced["cli"], synced["boss"]
    out = tmp_path / f"{channel}-{res}.tif"
    report = tiff(cli, out, region, "--channel", channel, "--res", str(res))
    want = cutout(boss, channel, res, region)
    got = tifffile.imread(out)
    assert got.dtype == want.dtype == np.dtype(DTYPES[channel]) and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    with tifffile.TiffFile(out) as tif:
        assert len(tif.pages) == want.shape[0] and tif.series[0].axes == "ZYX"
    about = describe(out)
    assert about["source"] == SPEC and about["image"] == f"{channel}.ome.zarr" and about["level"] == str(res)
    assert about["region_xyz"] == region and about["commit"] == report["commit"]
    assert report["chunks"]["from_boss"] > 0 and report["chunks"]["missing"] == 0  # no store: the BOSS, checked


def test_a_region_wider_than_a_band_is_written_row_by_row(
    synced: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A band (what is assembled and written at once) holds at most ``BAND_BYTES`` of chunks, 64 MiB: a region
    wider than that is cut into bands of fewer chunk columns, whose rows are written into the pages one by one.
    Here one chunk column a band; the TIFF is still intern's cutout."""
    monkeypatch.setattr(regions, "BAND_BYTES", 1)
    cli, boss = synced["cli"], synced["boss"]
    out = tmp_path / "narrow.tif"
    tiff(cli, out, "5:70,10:90,3:17", "--channel", "image16")
    np.testing.assert_array_equal(tifffile.imread(out), cutout(boss, "image16", 0, "5:70,10:90,3:17"))


def test_an_image_named_by_its_path(synced: dict, tmp_path: Path) -> None:
    """Any OME-Zarr image of a pin by its PATH; the BOSS channel's is the same image."""
    cli, boss = synced["cli"], synced["boss"]
    out = tmp_path / "by-path.tif"
    tiff(cli, out, "30:50,60:96,0:9", path="image8.ome.zarr")
    np.testing.assert_array_equal(tifffile.imread(out), cutout(boss, "image8", 0, "30:50,60:96,0:9"))


@pytest.mark.parametrize(
    "args, says",
    [
        (["--region", "0:81,0:96,0:20", "--channel", "image8"], "x 0:81 is outside"),
        (["--region", "0:40,0:49,0:20", "--channel", "image8", "--res", "1"], "whose extent is 0:40,0:48,0:20"),
        (["--region", "0:8,0:8", "--channel", "image8"], "give X0:X1,Y0:Y1,Z0:Z1"),
        (["--region", "0:8,0:x,0:2", "--channel", "image8"], "give X0:X1,Y0:Y1,Z0:Z1"),
        (["--region", "8:8,0:8,0:2", "--channel", "image8"], "x 8:8 is empty"),
        (["--region", "0:8,0:8,0:2", "--channel", "nope"], "no channel 'nope' in this version"),
        (["--region", "0:8,0:8,0:2"], "--channel: name one of this version's channels (annotation, image16, image8)"),
        (["--region", "0:8,0:8,0:2", "--channel", "image8", "--res", "2"], "has no level 2 (levels: 0, 1)"),
        (["--channel", "image8"], "go with --format"),
    ],
)
def test_mistakes_exit_2_with_one_line_and_write_nothing(
    synced: dict, tmp_path: Path, args: list[str], says: str
) -> None:
    cli, boss = synced["cli"], synced["boss"]
    out = tmp_path / "out" / "out.tif"
    out.parent.mkdir()
    boss.clear_request_log()
    fmt = ["--format", "tiff"] if "--region" in args else []
    code, stdout, err = cli("get", SPEC, *args, *fmt, "--to", str(out))
    assert code == 2 and stdout == ""
    assert len(err.strip().splitlines()) == 1 and says in err, err
    assert list(out.parent.iterdir()) == [] and cutouts(boss) == []  # said before a chunk was read


def test_the_pinned_state_after_the_boss_rewrote_a_region(boss: BossStandIn, tmp_path: Path) -> None:
    """Synced with a store: after an upstream rewrite, the first version's TIFF is still its state, read
    from the kept chunks (not one cutout asked of the BOSS), and the new version's is the new state."""
    cli = Runner(tmp_path / "mirror", boss.url)
    cli.ok("sync", SPEC, "--chunk", CHUNK_ARG, "--store", str(tmp_path / "keep"))
    region = "0:40,10:50,2:12"
    old = cutout(boss, "annotation", 0, region)
    first = json.loads(cli.ok("versions", SPEC, "--json"))[0]["version"]

    edited = boss.volume(C, E, "annotation").copy()
    edited[2:6, 3:20, 4:30] = 424242424242
    boss.set_volume(C, E, "annotation", edited)
    assert cli.ok("sync", SPEC, "--chunk", CHUNK_ARG, "--store", str(tmp_path / "keep")).count("new version") == 1
    new = cutout(boss, "annotation", 0, region)
    assert not np.array_equal(old, new)

    boss.clear_request_log()
    report = tiff(cli, tmp_path / "old.tif", region, "--channel", "annotation", version=first)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "old.tif"), old)
    assert report["version"] == first and report["chunks"]["from_boss"] == 0 and report["chunks"]["read"] == 8
    assert cutouts(boss) == []  # every chunk from the store the sync kept it in
    tiff(cli, tmp_path / "new.tif", region, "--channel", "annotation")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "new.tif"), new)


def test_without_a_store_a_rewritten_region_is_refused(boss: BossStandIn, tmp_path: Path) -> None:
    """No store keeps the first version's chunk and the BOSS serves other bytes now: exit 1, one line, no file
    (never the new bytes under the old version's name); its unchanged regions still come."""
    cli = Runner(tmp_path / "mirror", boss.url)
    cli.ok("sync", SPEC, "--chunk", CHUNK_ARG)
    first = json.loads(cli.ok("versions", SPEC, "--json"))[0]["version"]
    unchanged = cutout(boss, "image8", 0, "40:80,40:96,8:20")
    edited = boss.volume(C, E, "image8").copy()
    edited[2:6, 3:20, 4:30] = 7  # chunk 0/0/0 of level 0, whose bytes no other chunk has
    boss.set_volume(C, E, "image8", edited)

    out = tmp_path / "out" / "old.tif"
    out.parent.mkdir()
    code, stdout, err = cli(
        "get", f"{SPEC}@{first}", "--region", "0:40,0:40,0:8", "--channel", "image8", "--format", "tiff",
        "--to", str(out),
    )  # fmt: skip
    assert code == 1 and stdout == "" and len(err.strip().splitlines()) == 1, err
    assert "upstream data changed since this version was mirrored" in err and "no store keeps" in err
    assert list(out.parent.iterdir()) == []
    tiff(cli, out, "40:80,40:96,8:20", "--channel", "image8", version=first)
    np.testing.assert_array_equal(tifffile.imread(out), unchanged)


def test_a_chunk_sharing_its_key_with_a_rewritten_one(boss: BossStandIn, tmp_path: Path) -> None:
    """Chunks of the same bytes share a key, and so its URLs: the annotation's chunks 0/0/0 and 2/2/2 of level 0
    are both all 0.  After 0/0/0 was rewritten upstream, 2/2/2 is still read (by its own URL) and checked."""
    cli = Runner(tmp_path / "mirror", boss.url)
    cli.ok("sync", SPEC, "--chunk", CHUNK_ARG)
    first = json.loads(cli.ok("versions", SPEC, "--json"))[0]["version"]
    region = "64:80,64:96,16:20"  # inside chunk 2/2/2
    before = cutout(boss, "annotation", 0, region)
    assert not before.any()
    edited = boss.volume(C, E, "annotation").copy()
    edited[2:6, 3:20, 4:30] = 424242424242
    boss.set_volume(C, E, "annotation", edited)
    report = tiff(cli, tmp_path / "out" / "z.tif", region, "--channel", "annotation", version=first)
    assert report["chunks"] == {"read": 0, "from_boss": 1, "missing": 0, "unchecked": 0}
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "z.tif"), before)


def test_no_hash_chunks_are_read_and_counted_unchecked(boss: BossStandIn, tmp_path: Path) -> None:
    """A ``--no-hash`` sync's image chunks have VURL keys, no checksum: the TIFF is what the BOSS serves now (here
    still the synced state), and the report counts every one of its chunks as unchecked."""
    cli = Runner(tmp_path / "mirror", boss.url)
    cli.ok("sync", SPEC, "--chunk", CHUNK_ARG, "--no-hash")
    region = "5:70,10:90,3:17"
    report = tiff(cli, tmp_path / "out" / "nohash.tif", region, "--channel", "image8")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "nohash.tif"), cutout(boss, "image8", 0, region))
    chunks = report["chunks"]
    assert chunks["from_boss"] == chunks["unchecked"] == 3 * 3 * 3 and chunks["read"] == chunks["missing"] == 0


def test_an_existing_file_is_replaced_only_with_force(synced: dict, tmp_path: Path) -> None:
    """Tried as a new user: ``get --format tiff`` overwrote an existing file silently."""
    cli = synced["cli"]
    out = tmp_path / "mine.tif"
    out.write_bytes(b"the user's own file")
    code, stdout, err = cli(
        "get", SPEC, "--region", "0:8,0:8,0:2", "--channel", "image8", "--format", "tiff", "--to", str(out)
    )
    assert (
        code == 2
        and stdout == ""
        and err.strip().splitlines() == [f"neuromirror: --force: {out} exists; not replaced without it"]
    ), err
    assert out.read_bytes() == b"the user's own file"
    tiff(cli, out, "0:8,0:8,0:2", "--channel", "image8", "--force")
    assert tifffile.imread(out).shape == (2, 8, 8)
    code, _, err = cli("get", SPEC, "--force", "--to", str(tmp_path / "clone"))
    assert code == 2 and "--force goes with --format" in err, err


@pytest.mark.parametrize("where", ["read-only", "full"])
def test_a_target_that_cannot_hold_the_tiff_is_one_line_and_nothing_half_made(
    synced: dict, tmp_path: Path, where: str
) -> None:
    """A read-only folder and a full disk (real file systems: a read-only bind mount, a 256 KiB tmpfs): on landed
    main a traceback each.  The full disk is said before a chunk is read, with how much more is needed."""
    from helpers.mounts import fill, read_only_bind, tmpfs

    cli, boss = synced["cli"], synced["boss"]
    (tmp_path / "src").mkdir()
    with (
        tmpfs(tmp_path / "small", "256k") if where == "full" else read_only_bind(tmp_path / "src", tmp_path / "ro") as d
    ):
        if where == "full":
            fill(d, 60_000)  # the region below takes 80x96x20 bytes (~150 KiB)
        before = sorted(p.name for p in d.iterdir())
        boss.clear_request_log()
        out = d / "region.tif"
        code, stdout, err = cli(
            "get", SPEC, "--region", "0:80,0:96,0:20", "--channel", "image8", "--format", "tiff", "--to", str(out)
        )
        assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        if where == "full":
            assert f"tmpfs at {d} has " in err and "more needed" in err, err
        else:
            assert f"--to {out}: cannot write in {d}" in err, err
        assert sorted(p.name for p in d.iterdir()) == before and cutouts(boss) == []  # nothing made, nothing read


@dataclass(frozen=True)
class RawReport:
    """What the toy ``raw`` format wrote (the API prints ``line()`` and serialises ``to_json()``)."""

    path: Path
    source: str
    version: str
    shape: tuple[int, ...]

    def line(self) -> str:
        return f"{self.source}@{self.version}: {self.shape} in {self.path}"

    def to_json(self) -> dict:
        return {"path": str(self.path), "source": self.source, "version": self.version, "shape": list(self.shape)}


def _raw(req: regions.RegionRequest) -> RawReport:
    """A format of the test's own: the region's voxels as a .npy file (numpy), as any reader package would."""
    opened, data = regions.read_array(req)
    np.save(req.dest, data, allow_pickle=False)  # dest as given: np.save adds .npy only to a name without it
    return RawReport(req.dest, req.spec.source, opened.pin.version, data.shape)


@pytest.fixture
def raw_format() -> Iterator[None]:
    readers.register(readers.FormatWriter("raw", "the region's voxels as .npy (numpy)", _raw, suffix=".npy"))
    yield
    readers.unregister("raw")


def test_a_format_registered_from_a_test_alone(synced: dict, tmp_path: Path, raw_format: None) -> None:
    """``get --format raw``, a reader registered here and nowhere in the product: its help, its file, the cutout."""
    cli, boss = synced["cli"], synced["boss"]
    with contextlib.redirect_stdout(io.StringIO()) as page, pytest.raises(SystemExit):
        main(["get", "--help"])
    assert "raw: the region's voxels as .npy" in " ".join(page.getvalue().split())
    out = tmp_path / "region.npy"
    report = json.loads(cli.ok("get", SPEC, "--region", "5:70,10:90,3:17", "--channel", "image16", "--format", "raw", "--to", str(out), "--json"))  # fmt: skip
    assert report["shape"] == [14, 80, 65] and report["path"] == str(out)
    np.testing.assert_array_equal(np.load(out), cutout(boss, "image16", 0, "5:70,10:90,3:17"))


def test_an_unknown_format_is_one_line_naming_the_registered_ones(synced: dict, tmp_path: Path) -> None:
    out = tmp_path / "x.nii"
    code, stdout, err = synced["cli"]("get", SPEC, "--region", "0:8,0:8,0:2", "--channel", "image8", "--format", "nifti", "--to", str(out))  # fmt: skip
    assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1, err
    assert "'nifti': not a registered format (tiff)" in err and not out.exists()
