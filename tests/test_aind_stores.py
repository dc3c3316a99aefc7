"""AIND: the Zarr stores inside an asset are subdatasets — made, converted, cloned, searched, kept, reproduced.

A light-sheet asset on the S3 stand-in holds sidecars, a small file and two OME-Zarr
stores.  It is first mirrored with the layout from before stores were datasets
(``NEUROMIRROR_AIND_STORES=files``: every object a file of the asset's dataset), then
an object changes upstream and the next sync converts the mirror in one commit.  Then,
as a lab would: clone the asset (no store comes along), ``datalad get -r`` one store,
``git annex whereis/fsck/info`` inside a store on the mirror host, search by a path
inside a store, reproduce the version mirrored before the conversion from its lock,
keep the latest version in a directory store, and a resync that changes one store
moves that store's dataset and the asset's, and no other.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from helpers.aind import ASSET, LOOPBACK, STORES, clone, datalad_get, store_objects, subdatasets, tree
from helpers.retrieve import Runner, data_files
from neuromirror.demo import deterministic_bytes


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def annexed_paths(ds: Path) -> list[str]:
    """The paths of the dataset's own tree that are annexed (symlinks), subdatasets not entered."""
    return [ln.split("\t", 1)[1] for ln in git(ds, "ls-tree", "-r", "HEAD").splitlines() if ln.startswith("120000")]


@dataclass
class World:
    s3: object
    bucket: str
    run: Runner
    files: list[dict[str, bytes]]  # the asset's files at each version
    versions: list[str]
    heads: list[dict[str, str]]  # per version: dataset (asset or store path) -> HEAD

    @property
    def ds(self) -> Path:
        return self.run.root / "aind" / ASSET

    @property
    def s3_args(self) -> tuple[str, ...]:
        return ("--bucket", self.bucket, "--s3-endpoint", self.s3.endpoint_url)  # type: ignore[attr-defined]

    def put(self, rel: str, data: bytes) -> None:
        self.s3.put(self.bucket, f"{ASSET}/{rel}", data)  # type: ignore[attr-defined]
        self.files[-1][rel] = data

    def sync(self) -> dict:
        report = self.run.json("sync", f"aind:{ASSET}", *self.s3_args)
        assert report["outcome"] == "ok", report
        self.versions.append(report["versions"][0]["label"])
        self.heads.append(
            {"": git(self.ds, "rev-parse", "HEAD").strip()}
            | {s: git(self.ds / s, "rev-parse", "HEAD").strip() for s in STORES if (self.ds / s / ".git").exists()}
        )
        return report


@pytest.fixture(scope="module")
def world(s3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:  # noqa: ANN001
    bucket = f"aind-stores-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(bucket, versioned=True, public=True)
    root = tmp_path_factory.mktemp("stores") / "mirror"
    w = World(s3, bucket, Runner(root), [{}], [], [])
    w.put("data_description.json", json.dumps({"name": ASSET, "subject_id": "111111", "modality": "SPIM"}).encode())
    w.put("subject.json", b'{"subject_id": "111111"}')
    w.put("SPIM/derivatives/summary.bin", deterministic_bytes("summary", 5000))
    for store in STORES:
        for rel, data in store_objects(store).items():
            w.put(rel, data)
    os.environ["NEUROMIRROR_AIND_STORES"] = "files"  # the layout of a mirror made before stores were datasets
    try:
        w.sync()
    finally:
        del os.environ["NEUROMIRROR_AIND_STORES"]
    assert subdatasets(w.ds) == [] and f"{STORES[0]}/0/0" in tree(w.ds)
    w.files.append(dict(w.files[-1]))
    w.put(f"{STORES[0]}/0/5", deterministic_bytes("changed upstream", 4000))
    w.sync()  # the conversion
    yield w


def test_the_next_sync_converts_the_mirror_in_one_commit(world: World) -> None:
    ds = world.ds
    first, second = world.heads[0][""], world.heads[1][""]
    assert git(ds, "rev-list", "--count", f"{first}..{second}").strip() == "1"
    assert subdatasets(ds) == sorted(STORES)
    # the asset's own tree keeps the metadata and the small files; each store's objects are in its dataset
    own = [p for p in git(ds, "ls-tree", "-r", "--name-only", "HEAD").splitlines() if not p.startswith(".datalad/")]
    assert sorted(own) == sorted(
        [
            ".gitattributes",
            ".gitmodules",
            "SPIM/derivatives/summary.bin",
            "data_description.json",
            "subject.json",
            *STORES,
        ]
    )
    assert tree(ds) == sorted(world.files[1])
    for store in STORES:
        assert git(ds / store, "log", "-1", "--format=%(trailers:key=Neuromirror-Store,valueonly)").strip() == store
    assert git(ds, "status", "--porcelain") == "" and not (ds / ".git" / "neuromirror-stores").exists()
    # the version before the conversion keeps its tree: the store's objects as files of the asset
    old = world.versions[0]
    assert f"{STORES[0]}/0/0" in git(ds, "ls-tree", "-r", "--name-only", old)
    assert "160000" not in git(ds, "ls-tree", "-r", old)


def key_of(zds: Path, path: str) -> str:
    """The git-annex key of an annexed file at HEAD, read from git (the host checks out no chunk)."""
    return git(zds, "cat-file", "-p", f"HEAD:{path}").rsplit("/", 1)[-1]


def test_git_annex_works_inside_a_store_on_the_mirror_host(world: World) -> None:
    zds = world.ds / STORES[1]
    # a store's chunks are not checked out on the host (dataset/sparse.py): git-annex reads the branch
    assert not (zds / "0" / "3").exists() and git(zds, "status", "--porcelain") == ""
    where = subprocess.run(["git", "annex", "whereis", "--branch", "HEAD"], cwd=zds, capture_output=True, text=True)
    assert where.returncode == 0 and "web" in where.stdout and f"{ASSET}/{STORES[1]}/0/3" in where.stdout, where.stdout
    fsck = subprocess.run(
        ["git", "annex", "fsck", "--fast", "--quiet", "--branch", "HEAD"], cwd=zds, capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    info = subprocess.run(["git", "annex", "info"], cwd=zds, capture_output=True, text=True)
    assert f"store {STORES[1]}" in info.stdout, info.stdout  # the repository's description names the store


def test_a_clone_brings_no_store_until_asked_and_get_r_installs_one(world: World, tmp_path: Path) -> None:
    c = clone(world.ds, tmp_path / "clone")
    assert subdatasets(c) == sorted(STORES) and not (c / STORES[0] / ".zgroup").exists()
    assert (c / "data_description.json").read_bytes() == world.files[1]["data_description.json"]
    proc = datalad_get(c, "-r", STORES[0])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for rel, data in world.files[1].items():
        if rel.startswith(STORES[0] + "/"):
            assert (c / rel).read_bytes() == data, rel
    assert not (c / STORES[1] / ".zgroup").exists()  # the other store stays uninstalled


def test_search_finds_objects_inside_the_stores(world: World) -> None:
    rows = world.run.json("search", "--path", f"*{STORES[1]}/0/*", "--json")
    assert {r["path"] for r in rows} == {p for p in world.files[1] if p.startswith(f"{STORES[1]}/0/")}
    assert {r["store"] for r in rows} == {STORES[1]} and all(r["source"] == f"aind:{ASSET}" for r in rows)
    changed = world.files[1][f"{STORES[0]}/0/5"]
    import hashlib

    (hit,) = world.run.json("search", "--md5", hashlib.md5(changed).hexdigest(), "--json")
    assert hit["path"] == f"{STORES[0]}/0/5" and hit["version"] == world.versions[1]


def test_the_version_before_the_conversion_reproduces_from_its_lock(world: World, tmp_path: Path) -> None:
    lock = tmp_path / "old.lock"
    world.run.json  # noqa: B018 - the runner, as a user's shell
    code, out, err = world.run("lock", f"aind:{ASSET}@{world.versions[0]}", "-o", str(lock))
    assert code == 0, out + err
    code, out, err = world.run("reproduce", str(lock), "--to", str(tmp_path / "work"), "--allow-ip", "all")
    assert code == 0, out + err
    assert data_files(tmp_path / "work" / "aind" / ASSET) == world.files[0]


def test_the_latest_version_is_kept_reproduced_and_verified_through_the_stores(world: World, tmp_path: Path) -> None:
    spec = f"aind:{ASSET}@{world.versions[1]}"
    store = tmp_path / "kept"
    code, out, err = world.run("keep", spec, "--to", str(store), "--json")
    assert code == 0, out + err
    (v,) = json.loads(out)["versions"]
    annexed = [p for p in world.files[1] if p.split("/")[-1][0].isdigit() or p.endswith(".bin")]
    assert v["kept"] == len(annexed), v
    # recorded in the store's own dataset: a clone of the store finds the kept copy
    where = subprocess.run(
        ["git", "annex", "whereis", "--key", key_of(world.ds / STORES[0], "0/1")],
        cwd=world.ds / STORES[0],
        capture_output=True,
        text=True,
    )
    assert "neuromirror store" in where.stdout or str(store) in where.stdout, where.stdout
    code, out, err = world.run("verify", spec, "--kept")
    assert code == 0, out + err
    lock = tmp_path / "new.lock"
    assert world.run("lock", spec, "-o", str(lock))[0] == 0
    code, out, err = world.run("reproduce", str(lock), "--to", str(tmp_path / "work"), "--allow-ip", "all")
    assert code == 0, out + err
    assert data_files(tmp_path / "work" / "aind" / ASSET) == world.files[1]


def test_an_asset_whose_annexed_content_is_all_in_its_store_finds_its_keep_there(world: World, tmp_path: Path) -> None:
    """The asset's own tree holds only files in git: ``keep`` records the store in the store's
    dataset alone, and ``verify --kept`` and ``lock`` (no --store) still find it there."""
    name = "SmartSPIM_222222_2024-02-02_00-00-00"
    s3 = world.s3
    s3.put(world.bucket, f"{name}/data_description.json", json.dumps({"name": name}).encode())  # type: ignore[attr-defined]
    for rel, data in store_objects("SPIM.ome.zarr").items():
        s3.put(world.bucket, f"{name}/{rel}", data)  # type: ignore[attr-defined]
    report = world.run.json("sync", f"aind:{name}", *world.s3_args)
    assert report["outcome"] == "ok", report
    ds = world.run.root / "aind" / name
    assert subdatasets(ds) == ["SPIM.ome.zarr"] and annexed_paths(ds) == []
    spec = f"aind:{name}@{report['versions'][0]['label']}"
    # versions: the asset's own tree counts the store once; what the store holds is said beside it
    (row,) = world.run.json("versions", f"aind:{name}", "--json")
    objs = store_objects("SPIM.ome.zarr")
    assert row["files"] == 2 and row["inside_subdatasets"] == {
        "subdatasets": 1,
        "files": len(objs),
        "bytes": sum(len(d) for d in objs.values()),
        "unknown": 0,
    }
    store = tmp_path / "kept"
    code, out, err = world.run("keep", spec, "--to", str(store))
    assert code == 0, out + err
    code, out, err = world.run("verify", spec, "--kept")
    assert code == 0 and f"kept in {store}" in out, out + err
    lock = tmp_path / "asset.lock"
    assert world.run("lock", spec, "-o", str(lock))[0] == 0
    assert f'store = "{store}"' in lock.read_text()


def test_a_change_in_one_store_moves_that_store_and_the_asset_only(world: World) -> None:
    before = dict(world.heads[-1])
    world.files.append(dict(world.files[-1]))
    world.put(f"{STORES[1]}/0/2", deterministic_bytes("second change", 2500))
    report = world.sync()
    assert (report["added"], report["removed"], report["changed"]) == (0, 0, 1), report
    after = world.heads[-1]
    assert after[STORES[0]] == before[STORES[0]] and after[STORES[1]] != before[STORES[1]]
    assert git(world.ds / STORES[1], "rev-list", "--count", f"{before[STORES[1]]}..{after[STORES[1]]}").strip() == "1"
    assert git(world.ds, "rev-list", "--count", f"{before['']}..{after['']}").strip() == "1"
    assert tree(world.ds) == sorted(world.files[-1])
    # every version is whole in the dataset and the index
    code, out, err = world.run("verify", f"aind:{ASSET}", "--all-versions")
    assert code == 0, out + err
    env = {**os.environ, **LOOPBACK}
    # on the host, where a store's chunks are not checked out: get by key, read where git-annex put it
    zds, key = world.ds / STORES[1], key_of(world.ds / STORES[1], "0/2")
    get = subprocess.run(["git", "annex", "get", "--key", key], cwd=zds, capture_output=True, text=True, env=env)
    assert get.returncode == 0, get.stdout + get.stderr
    where = git(zds, "annex", "contentlocation", key).strip()
    assert (zds / where).read_bytes() == world.files[-1][f"{STORES[1]}/0/2"]


def test_verify_archive_compares_each_store_with_the_archive(world: World) -> None:
    code, out, err = world.run("verify", f"aind:{ASSET}", "--archive", *world.s3_args)
    assert code == 0, out + err
    # an object of one store changes upstream, not synced yet: that store, and only it, differs
    world.s3.put(world.bucket, f"{ASSET}/{STORES[0]}/0/1", b"changed, not synced")  # type: ignore[attr-defined]
    code, out, err = world.run("verify", f"aind:{ASSET}", "--archive", "--json", *world.s3_args)
    rep = json.loads(out)
    assert code == 1, out + err
    assert [(m["kind"], m["path"]) for m in rep["mismatches"]] == [("archive", STORES[0])], rep["mismatches"]
    assert "not mirrored" in rep["mismatches"][0]["detail"]


def test_publish_to_a_ria_store_carries_the_stores(world: World, tmp_path: Path) -> None:
    ria = tmp_path / "ria"
    code, out, err = world.run("publish", f"aind:{ASSET}", "--to", f"ria+file://{ria}")
    assert code == 0, out + err
    c = tmp_path / "from-ria"
    env = {**os.environ, **LOOPBACK}
    subprocess.run(
        ["datalad", "clone", f"ria+file://{ria}#~aind/{ASSET}", str(c)], check=True, capture_output=True, env=env
    )
    assert subdatasets(c) == sorted(STORES)
    proc = datalad_get(c, "-r", STORES[1])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for rel, data in world.files[-1].items():
        if rel.startswith(STORES[1] + "/"):
            assert (c / rel).read_bytes() == data, rel


def test_each_store_state_has_a_zarr_manifest_in_dandis_format(world: World) -> None:
    """Every store state the mirror recorded has its manifest; each entry's versionId serves its bytes."""
    import hashlib

    import requests
    from zarr_checksum.tree import ZarrChecksumTree

    from helpers.read import manifest_shape

    root = world.run.root / ".neuromirror" / "zarr-manifests"
    by_store: dict[str, list[Path]] = {}
    for side in root.glob("*/*/*/.neuromirror.json"):
        about = json.loads(side.read_text())
        if about["source"] != f"aind:{ASSET}":
            continue  # another asset of this mirror
        store = next(s for s in STORES if about["url"].endswith(f"/{ASSET}/{s}/"))
        assert side.parent.name == str(uuid.uuid5(uuid.NAMESPACE_URL, about["url"]))
        assert (side.parent.parent.name, side.parent.parent.parent.name) == (
            side.parent.name[3:6],
            side.parent.name[:3],
        )
        by_store[store] = sorted(p for p in side.parent.glob("[!.]*.json"))
    assert sorted(by_store) == sorted(STORES)
    assert len(by_store[STORES[1]]) == 2, "the store changed once after the conversion: two states"
    # the newest state's name is the dandi-zarr-checksum of the store as the bucket holds it now
    tree_ = ZarrChecksumTree()
    for rel, data in world.files[-1].items():
        if rel.startswith(STORES[1] + "/"):
            tree_.add_leaf(path=Path(rel[len(STORES[1]) + 1 :]), size=len(data), digest=hashlib.md5(data).hexdigest())
    assert f"{tree_.process()}.json" in [p.name for p in by_store[STORES[1]]]
    for manifests in by_store.values():
        for p in manifests:
            files = manifest_shape(p.read_text())
            base = json.loads((p.parent / ".neuromirror.json").read_text())["url"]
            assert {path for path, _ in files} >= {".zgroup", "0/.zarray", "0/0"}
            for path, (version, _, size, etag) in files:
                data = requests.get(base + path, params={"versionId": version}, timeout=60).content
                assert (len(data), hashlib.md5(data).hexdigest()) == (size, etag), path


def test_zarrs_serves_a_kept_store_chunk_the_archive_lost(world: World, tmp_path: Path) -> None:
    """dandidav's ``/zarrs/`` for an AIND store's state (its manifest: no dataset of the state is looked
    up) streams a chunk whose every S3 version was deleted from the lab's directory store, by its key;
    a chunk no store holds is 410.  Runs last: the loss is the bucket's for good."""
    import requests

    from helpers.read import view_server

    spec = f"aind:{ASSET}@{world.versions[-1]}"
    store = tmp_path / "kept"
    code, out, err = world.run("keep", spec, "--to", str(store), "--include", f"{STORES[1]}/*", "--json")
    assert code == 0, out + err
    chunk = f"{STORES[1]}/0/1"
    for v in world.s3.client().list_object_versions(Bucket=world.bucket, Prefix=f"{ASSET}/{STORES[1]}/0/")[  # type: ignore[attr-defined]
        "Versions"
    ]:
        world.s3.client().delete_object(Bucket=world.bucket, Key=v["Key"], VersionId=v["VersionId"])  # type: ignore[attr-defined]
    manifests = world.run.root / ".neuromirror" / "zarr-manifests"
    states = [
        p
        for p in manifests.rglob("*.json")
        if "entries" in (doc := json.loads(p.read_text())) and "0" in doc["entries"]
    ]
    assert states, "the asset's stores have manifests"
    with view_server(world.run.root) as url:
        served = {}
        for p in states:
            rel = p.relative_to(manifests).with_suffix(".zarr")
            r = requests.get(f"{url}zarrs/{rel}/0/1", timeout=60)
            served[str(rel)] = (r.status_code, r.content)
    expected = world.files[-1][chunk]
    assert (200, expected) in served.values(), {k: s for k, (s, _) in served.items()}  # the kept store's chunk
    # the other store's chunk is not kept: the archive still serves it (a redirect followed), or none
    assert all(status in (200, 410) for status, _ in served.values()), served
