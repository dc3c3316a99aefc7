"""``neuromirror verify``: the dataset, the index and the archive agree — or a report of each mismatch.

Why: a mirror that silently drifted (an index row lost, a URL no longer
registered, a URL that now serves other bytes) breaks every lock file that
names it.  Each test breaks one thing in a private copy of a mirrored
dandiset and checks that verify exits 1 and names the file and the cause;
the untouched mirror verifies clean, content included.

The realistic content failure: the mirror pins DANDI blobs by
``?versionId=`` (those never change), but a plain S3 URL — what a mirror
registers for an unversioned bucket — follows whatever object is uploaded
there later.  We register the blob's plain URL, replace the blob's object in
S3, and expect ``verify --content`` (which downloads; ``fsck --fast`` only
sends HEAD) to catch it while the pinned URL stays good.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from helpers.retrieve import Runner, Sample, build_sample, git


@pytest.fixture(scope="module")
def sample(dandi_archive, tmp_path_factory) -> Sample:  # noqa: ANN001
    return build_sample(dandi_archive, tmp_path_factory.mktemp("verify") / "mirror", zarr=True)


@pytest.fixture
def copy(sample: Sample, tmp_path: Path) -> tuple[Runner, Path]:
    """A private copy of the mirror (root, datasets, index) to break."""
    dst = tmp_path / "mirror"
    shutil.copytree(sample.root, dst, symlinks=True)
    return Runner(dst), dst / "dandi" / sample.id


def annex(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "annex", *args], capture_output=True, text=True, check=True).stdout


def key_of(repo: Path, path: str, rev: str = "HEAD") -> str:
    target = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{path}"], capture_output=True, text=True).stdout
    return target.rsplit("/", 1)[-1]


def test_clean_mirror_verifies_with_content(sample: Sample) -> None:
    code, out, err = sample.run("verify", sample.source, "--all-versions", "--content")
    assert code == 0, out + err
    assert out.count(": OK") == 3 and "3 version(s) verified: 3 OK, 0 FAILED" in out
    # 5 files + the Zarr's subdataset in the tree; 3 keys with two URLs + the Zarr's 4 with their pinned URL
    assert "tree and index agree: 6 files" in out and "7 keys, 10 URLs (with 1 subdataset(s))" in out
    assert "content matches: 7/7 keys, 10 URLs downloaded and hashed" in out
    rep = sample.run.json("verify", f"{sample.source}@{sample.v1}", "--content", "--sample", "2", "--seed", "1")
    assert (
        rep["ok"] and rep["content"]["keys"] == 2 and rep["content"]["of_keys"] == 7 and rep["content"]["urls"] == 3
    )  # a blob (2 URLs), a Zarr object (1)


def test_url_now_serving_other_bytes_is_caught(sample: Sample, copy: tuple[Runner, Path]) -> None:
    run, ds = copy
    archive = sample.archive
    path = "sub-02/sub-02_ecephys.nwb"
    original = sample.files[sample.v1][path]
    asset = archive.asset_at(sample.id, path, sample.v1)  # type: ignore[attr-defined]
    plain = archive.s3_url(asset.asset_id)  # type: ignore[attr-defined]
    key = key_of(ds, path, sample.v1)
    annex(ds, "registerurl", key, plain)  # as a mirror of an unversioned bucket would have
    rep = run.json("verify", f"{sample.source}@{sample.v1}", "--content")
    assert rep["ok"] and rep["urls"] == 11  # the plain URL serves the right bytes, for now
    blob = asset.blob
    bucket, s3key = blob.bucket, blob.key
    s3 = archive.s3.client()  # type: ignore[attr-defined]
    try:
        s3.put_object(Bucket=bucket, Key=s3key, Body=b"X" * len(original))  # the blob's object replaced
        code, out, err = run("verify", f"{sample.source}@{sample.v1}", "--content")
        assert code == 1
        assert f"MISMATCH content {path}: {plain} serves different bytes" in out
        rep = json.loads(run("verify", f"{sample.source}@{sample.v1}", "--content", "--json")[1])
        # the plain URL and the API's download URL (a redirect to the current object) serve the new bytes;
        # the ?versionId= URL the mirror pinned, and every other file, are still fine
        assert {(m["kind"], m["path"], m["key"]) for m in rep["mismatches"]} == {("content", path, key)}
        bad = {m["url"] for m in rep["mismatches"]}
        assert plain in bad and len(bad) == 2 and not any("versionId" in u for u in bad)
        assert any(u.endswith(f"/assets/{asset.asset_id}/download/") for u in bad)
        # without --content nothing is downloaded, and nothing notices (as with fsck --fast)
        assert run("verify", f"{sample.source}@{sample.v1}")[0] == 0
        # an object of another size is reported as such
        s3.put_object(Bucket=bucket, Key=s3key, Body=b"short")
        code, out, _ = run("verify", f"{sample.source}@{sample.v1}", "--content")
        assert code == 1 and f"{plain} serves 5 bytes, not the key's {len(original)} bytes" in out
        # and a get from such a mirror never accepts the wrong bytes
        annex(ds, "unregisterurl", key, [u for u in _urls(ds, key) if "versionId" in u][0])
        annex(ds, "unregisterurl", key, [u for u in _urls(ds, key) if "/download/" in u][0])
        code, out, err = run(
            "get", f"{sample.source}@{sample.v1}", path, "--to", str(ds.parent.parent.parent / "g"), "--allow-ip", "all"
        )
        assert code == 1 and path in err
    finally:
        s3.put_object(Bucket=bucket, Key=s3key, Body=original)


def _urls(ds: Path, key: str) -> list[str]:
    rec = json.loads(annex(ds, "whereis", "--json", "--key", key))
    return [u for w in rec["whereis"] for u in w.get("urls", [])]


def test_unregistered_url_and_missing_location(sample: Sample, copy: tuple[Runner, Path]) -> None:
    run, ds = copy
    path = "sub-01/sub-01_ecephys.nwb"
    key = key_of(ds, path, sample.v1)
    pinned = [u for u in _urls(ds, key) if "versionId" in u][0]
    annex(ds, "unregisterurl", key, pinned)
    code, out, _ = run("verify", f"{sample.source}@{sample.v1}")
    assert code == 1
    assert f"MISMATCH url-not-registered {path}: {pinned} is in the index but not registered" in out
    # no repository recorded as having the content at all: get would have nowhere to go
    for u in _urls(ds, key):
        annex(ds, "unregisterurl", key, u)
    annex(ds, "setpresentkey", key, "00000000-0000-0000-0000-000000000001", "0")
    code, out, _ = run("verify", f"{sample.source}@{sample.v1}")
    assert code == 1 and f"MISMATCH no-location {path}" in out


def test_index_and_tree_disagreements(sample: Sample, copy: tuple[Runner, Path]) -> None:
    run, ds = copy
    db = sqlite3.connect(ds.parent.parent / ".neuromirror" / "index.sqlite")
    vid = db.execute("SELECT id FROM versions WHERE source=? AND label=?", [sample.source, sample.v1]).fetchone()[0]
    # one file forgotten by the index, another with the wrong size and the archive's checksum changed
    db.execute(  # out of every fileset of the source: the version's included (version_files is a view)
        "DELETE FROM fileset_spans WHERE entry_id IN (SELECT entry_id FROM version_files WHERE version_id=?)"
        " AND entry_id IN (SELECT id FROM entries WHERE path=?)",
        [vid, "sub-02/sub-02 notes (raw).bin"],
    )
    db.execute("UPDATE entries SET size=size+1 WHERE source=? AND path=?", [sample.source, "sub-02/sub-02_ecephys.nwb"])
    db.execute("UPDATE entries SET checksum=? WHERE source=? AND path=?", ["f" * 64, sample.source, "README.md"])
    db.commit()
    db.close()
    code, out, _ = run("verify", f"{sample.source}@{sample.v1}", "--json")
    assert code == 1
    rep = json.loads(out)
    kinds = {(m["kind"], m["path"]) for m in rep["mismatches"]}
    assert ("only-in-dataset", "sub-02/sub-02 notes (raw).bin") in kinds
    assert ("size", "sub-02/sub-02_ecephys.nwb") in kinds
    assert ("checksum", "README.md") in kinds
    assert ("counts", None) in kinds and not rep["ok"]


def test_zarr_subdataset_checked_too(sample: Sample, copy: tuple[Runner, Path]) -> None:
    from helpers.retrieve import ZARR

    run, ds = copy
    zds = ds / ZARR
    key = key_of(zds, "0/0")
    for u in _urls(zds, key):
        annex(zds, "unregisterurl", key, u)
    annex(zds, "setpresentkey", key, "00000000-0000-0000-0000-000000000001", "0")
    code, out, _ = run("verify", f"{sample.source}@{sample.v1}")
    assert code == 1 and f"MISMATCH no-location {ZARR}/0/0" in out
    # the index pins another commit of the Zarr's dataset than the tree
    db = sqlite3.connect(ds.parent.parent / ".neuromirror" / "index.sqlite")
    db.execute("UPDATE entries SET checksum=? WHERE source=? AND path=?", ["2" * 40, sample.source, ZARR])
    db.commit()
    db.close()
    code, out, _ = run("verify", f"{sample.source}@{sample.v1}")
    assert code == 1 and f"MISMATCH subdataset {ZARR}: the dataset pins commit" in out


def test_moved_tag_and_missing_commit(sample: Sample, copy: tuple[Runner, Path]) -> None:
    run, ds = copy
    v2 = git(ds, "rev-parse", f"{sample.v2}^{{commit}}")
    git(ds, "tag", "-f", sample.v1, v2)
    code, out, _ = run("verify", f"{sample.source}@{sample.v1}")
    assert code == 1 and f"MISMATCH tag: tag {sample.v1} points at {v2[:12]}" in out
    db = sqlite3.connect(ds.parent.parent / ".neuromirror" / "index.sqlite")
    db.execute("UPDATE versions SET \"commit\"=? WHERE source=? AND label='draft'", ["1" * 40, sample.source])
    db.commit()
    db.close()
    code, out, _ = run("verify", sample.source)
    assert code == 1 and f"the index names commit {'1' * 40}, which" in out


def test_usage_errors(sample: Sample) -> None:
    code, _, err = sample.run("verify", sample.source, "--sample", "2")
    assert code == 2 and "--sample applies to --content" in err
    code, _, err = sample.run("verify", "dandi:424242")
    assert code == 2 and "not mirrored here" in err
    # verify --stores' slice is checked by the API (verify_stores), said as the command's option, one line
    for args, line in (
        (["--fraction", "0"], "neuromirror: --fraction must be in (0, 1]"),
        (["--older-than", "-1"], "neuromirror: --older-than must be a number of days, 0 or more"),
    ):
        code, out, err = sample.run("verify", "--stores", *args)
        assert (code, out, err.strip()) == (2, "", line)


def test_archive_listed_again(sample: Sample, copy: tuple[Runner, Path]) -> None:
    api = sample.archive.api_url  # type: ignore[attr-defined]
    code, out, err = sample.run("verify", sample.source, "--all-versions", "--archive", "--dandi-api", api)
    assert code == 0, out + err
    assert out.count("archive agrees: listed again") == 3  # v1, v2 and the draft (compared as the current state)
    assert "older" not in out
    # a URL the archive gives that the dataset lost
    run, ds = copy
    key = key_of(ds, "sub-03/sub-03_ecephys.nwb", sample.v2)
    pinned = [u for u in _urls(ds, key) if "versionId" in u][0]
    annex(ds, "unregisterurl", key, pinned)
    code, out, _ = run("verify", f"{sample.source}@{sample.v2}", "--archive", "--dandi-api", api)
    assert (
        code == 1 and f"MISMATCH archive sub-03/sub-03_ecephys.nwb: the archive's URL {pinned} is not registered" in out
    )
    # the archive's draft moves on after the sync: the current state no longer agrees, and verify says why
    sample.archive.delete_asset(sample.id, "sub-04/sub-04_ecephys.nwb")  # type: ignore[attr-defined]
    sample.archive.put_asset(sample.id, "sub-06/new.nwb", b"late data" * 50)  # type: ignore[attr-defined]
    code, out, _ = sample.run("verify", sample.source, "--archive", "--dandi-api", api)
    assert code == 1
    assert (
        "MISMATCH archive sub-06/new.nwb: at the archive, not in the dataset; the archive changed since the last sync"
        in out
    )
    assert "MISMATCH archive sub-04/sub-04_ecephys.nwb: in the dataset, not at the archive" in out
    # published versions are immutable upstream: still fine
    assert sample.run("verify", f"{sample.source}@{sample.v1}", "--archive", "--dandi-api", api)[0] == 0
    # after a sync, the old draft is history: not compared, the new one agrees
    sample.sync()
    code, out, _ = sample.run("verify", sample.source, "--all-versions", "--archive", "--dandi-api", api)
    assert code == 0 and "is an older draft state" in out


def test_boss_content_through_the_special_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BOSS chunks have URLs only the neuromirror special remote can fetch: verify asks git-annex for them."""
    from neuromirror.standins.boss.tiny import SPEC, sync_args, tiny_sample

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.intern
    (tmp_path / "home").mkdir()
    token = "verify-test-token"
    monkeypatch.setenv("INTERN_TOKEN", token)
    for k in ("INTERN_HOST", "INTERN_PROTOCOL", "NEUROMIRROR_BOSS_NO_HASH"):
        monkeypatch.delenv(k, raising=False)
    with tiny_sample(token=token) as boss:
        monkeypatch.setenv("NEUROMIRROR_BOSS_URL", boss.url)  # the host the special remote may send the token to
        run = Runner(tmp_path / "mirror")
        run.ok(*sync_args(boss))
        (old,) = [v["version"] for v in run.json("versions", SPEC)]
        ds = tmp_path / "mirror" / "boss" / SPEC.split(":", 1)[1]
        changed = "annotation.ome.zarr/0/0/0/0"
        changed_key = key_of(ds, changed)
        # every URL is the special remote's: checked through git-annex in a scratch clone
        rep = run.json("verify", SPEC, "--content", "--sample", "3", "--seed", "7")
        assert rep["ok"] and rep["content"]["via_git_annex"] == 3 and rep["content"]["urls"] == 0
        edited = boss.volume(*SPEC.split(":", 1)[1].split("/"), "annotation").copy()
        edited[2:6, 3:20, 4:30] = 424242424242
        boss.set_volume(*SPEC.split(":", 1)[1].split("/"), "annotation", edited)
        run.ok(*sync_args(boss))
        # the first version's chunk now comes back with other bytes: the upstream data changed
        code, out, err = run("verify", f"{SPEC}@{old}", "--content", "--json")
        assert code == 1, err
        rep = json.loads(out)
        bad = {(m["kind"], m["path"], m["key"]) for m in rep["mismatches"]}
        assert ("content", changed, changed_key) in bad
        assert all(kind == "content" and path.startswith("annotation.ome.zarr/") for kind, path, _ in bad)
        assert "upstream data changed" in rep["mismatches"][0]["detail"]
        assert (
            subprocess.run(["git", "-C", str(ds), "status", "--porcelain"], capture_output=True, text=True).stdout == ""
        )
        # the other commands work the same for a BOSS source
        d = run.json("diff", f"{SPEC}@{old}", SPEC)
        assert changed in {f["path"] for f in d["changed"]} and not d["added"] and not d["removed"]
        run.ok("lock", f"{SPEC}@{old}", "-o", str(tmp_path / "boss.lock"))
        assert f'path = "boss/{SPEC.split(":", 1)[1]}"' in (tmp_path / "boss.lock").read_text()
        import bibtexparser
        import yaml

        from neuromirror.pin.citation import check_cff

        assert not bibtexparser.parse_string(run.ok("cite", f"{SPEC}@{old}", "-f", "bibtex")).failed_blocks
        assert check_cff(yaml.safe_load(run.ok("cite", f"{SPEC}@{old}", "-f", "cff"))) == []
