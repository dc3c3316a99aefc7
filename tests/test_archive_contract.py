"""One contract every registered archive passes with its stand-in: DANDI, AIND and BOSS, as a lab uses them.

Why: each archive brought its own test files, each replaying sync, pin and cite its own way; nothing said what
every archive owes the rest of the house.  Here, for each archive, a small dataset on its stand-in (the DANDI
stand-in, an AIND asset in a moto bucket, the tiny BOSS sample) is mirrored with ``neuromirror sync`` and then:
the first sync records one version, tagged, with the archive's files; a second sync with nothing new upstream
makes no commit; ``pin`` names that version's commit; ``cite`` names the archive's publisher and the commit; and
``restore`` of the kept version into a directory lays each file out under the archive's own key (a DANDI blob's
``blobs/…`` key, an AIND asset's ``ASSET/path``, a BOSS chunk's path), each holding the bytes its key names.

A new archive: add a ``World`` for it (its stand-in, its SOURCE, its sync options, where restore puts two of its
files) to ``WORLDS``.  tests/test_archives.py runs the toy archive, registered from the tests alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import git
from helpers.retrieve import Runner
from neuromirror import archives


@dataclass
class World:
    """An archive's dataset, mirrored once: its SOURCE, its sync options, and where restore lays its files."""

    archive: str
    source: str
    sync_args: tuple[str, ...]
    run: Runner
    first: dict  # the first sync's report
    layout: dict[str, str]  # path in the dataset -> the archive's own key for it

    store: Path  # where the version is kept (restore reads kept copies)

    @property
    def version(self) -> str:
        """The published version the first sync recorded (a DANDI draft is recorded beside it)."""
        versions = self.first["versions"]
        return str(next((v for v in versions if v.get("kind") == "published"), versions[0])["label"])

    @property
    def spec(self) -> str:
        return f"{self.source}@{self.version}"

    @property
    def ds(self) -> Path:
        return self.run.root / self.source.replace(":", "/", 1)

    def sync(self) -> dict:
        return dict(self.run.json("sync", self.source, *self.sync_args))


def _dandi(request: pytest.FixtureRequest, tmp: Path) -> Iterator[World]:
    from datetime import timedelta

    from helpers.keep import T0
    from neuromirror.demo import deterministic_bytes

    archive = request.getfixturevalue("dandi_archive")
    when = T0 + timedelta(days=700)
    ident = archive.create_dandiset(name="contract sample", created=when)
    for i, path in enumerate(("sub-01/a.nwb", "sub-02/b.nwb")):
        archive.put_asset(ident, path, deterministic_bytes(f"{ident}:{path}", 3_000 + i), when=when)
    version = archive.publish(ident, when=when + timedelta(hours=1))
    run, args = Runner(tmp / "mirror"), ("--dandi-api", archive.api_url)
    report = dict(run.json("sync", f"dandi:{ident}", *args))
    layout = {p: archive.asset_at(ident, p, version).blob.key for p in ("sub-01/a.nwb", "sub-02/b.nwb")}
    yield World("dandi", f"dandi:{ident}", args, run, report, layout, tmp / "store")


def _aind(request: pytest.FixtureRequest, tmp: Path) -> Iterator[World]:
    import uuid

    from helpers.keep_aind import ASSET, SIZES
    from neuromirror.demo import deterministic_bytes

    s3, bucket = request.getfixturevalue("s3"), f"contract-aind-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(bucket, versioned=True, public=True)
    s3.put(bucket, f"{ASSET}/data_description.json", b'{"subject_id": "700001", "modality": "ecephys"}')
    for path, n in SIZES.items():
        s3.put(bucket, f"{ASSET}/{path}", deterministic_bytes(f"{bucket}:{path}", n))
    run, args = Runner(tmp / "mirror"), ("--bucket", bucket, "--s3-endpoint", s3.endpoint_url)
    report = dict(run.json("sync", f"aind:{ASSET}", *args))
    yield World("aind", f"aind:{ASSET}", args, run, report, {p: f"{ASSET}/{p}" for p in SIZES}, tmp / "store")


def _boss(request: pytest.FixtureRequest, tmp: Path) -> Iterator[World]:
    from helpers.boss import CHUNK_ARG, SPEC, hermetic_sample

    with hermetic_sample(tmp / "home") as boss:
        run, args = Runner(tmp / "mirror"), ("--boss-url", boss.url, "--chunk", CHUNK_ARG)
        # the BOSS keeps no history: its chunks are kept as the sync reads them (docs/boss.md)
        report = dict(run.json("sync", SPEC, *args, "--store", str(tmp / "store")))
        chunks = ("annotation.ome.zarr/0/0/0/0", "image8.ome.zarr/1/0/0/0")
        yield World("boss", SPEC, args, run, report, {c: c for c in chunks}, tmp / "store")


#: archive -> its world, built once for the module
WORLDS: dict[str, Callable[[pytest.FixtureRequest, Path], Iterator[World]]] = {
    "dandi": _dandi,
    "aind": _aind,
    "boss": _boss,
}


@pytest.fixture(scope="module", params=list(WORLDS))
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from WORLDS[request.param](request, tmp_path_factory.mktemp(request.param))


def test_every_registered_archive_has_a_world_here() -> None:
    assert sorted(WORLDS) == sorted(archives.known())


def test_a_first_sync_records_one_tagged_version_with_the_archives_files(world: World) -> None:
    assert world.first["outcome"] == "ok", world.first
    files = git(world.ds, "ls-tree", "-r", "--name-only", world.version).split()
    assert set(world.layout) <= set(files), files
    assert world.version in git(world.ds, "tag", "--list").split()


def test_a_resync_with_nothing_new_upstream_makes_no_commit(world: World) -> None:
    head = git(world.ds, "rev-parse", "HEAD").strip()
    again = world.sync()
    assert again["outcome"] == "unchanged" and again["versions"] == [], again
    assert git(world.ds, "rev-parse", "HEAD").strip() == head


def test_pin_names_the_versions_commit_and_cite_its_publisher(world: World) -> None:
    pin = dict(world.run.json("pin", world.spec))
    assert pin["commit"] == git(world.ds, "rev-list", "-n", "1", world.version).strip(), pin
    text = world.run.ok("cite", world.spec)
    record = archives.get(world.archive)
    assert record is not None and record.publisher in text and pin["commit"] in text, text


def test_restore_lays_each_file_under_the_archives_own_key(world: World, tmp_path: Path) -> None:
    world.run.ok("keep", world.spec, "--to", str(world.store))
    out = tmp_path / "restored"
    code, text, err = world.run("restore", world.spec, "--to", str(out), "--dry-run", "--json")
    assert code == 0, text + err
    planned = {w["path"]: w["archive_key"] for w in json.loads(text)["writes"]}
    assert {p: planned.get(p) for p in world.layout} == world.layout

    code, text, err = world.run("restore", world.spec, "--to", str(out), "--json")
    assert code == 0 and json.loads(text)["failed"] == [], text + err
    for path, key in world.layout.items():
        annex_key = Path(git(world.ds, "cat-file", "-p", f"{world.version}:{path}")).name
        backend, digest = annex_key.split("-", 1)[0], annex_key.split("--", 1)[1].split(".", 1)[0]
        algorithm = {"SHA256E": "sha256", "SHA256": "sha256", "MD5E": "md5", "MD5": "md5"}[backend]
        assert hashlib.new(algorithm, (out / key).read_bytes()).hexdigest() == digest, path
