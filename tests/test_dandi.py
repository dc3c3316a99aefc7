"""Mirroring DANDI, as a user would: stand-in archive, CLI, then datalad / git-annex / sqlite."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from conftest import CLI, clone, datalad_get, git, sha256
from neuromirror.demo import build_sample_dandiset

T0 = datetime(2025, 1, 10, 9, 0, tzinfo=timezone.utc)


def tree_paths(ds: Path, rev: str = "HEAD") -> set[str]:
    out = git(ds, "ls-tree", "-r", "--name-only", rev).splitlines()
    return {p for p in out if not p.startswith(".datalad/") and p != ".gitattributes"}


def commits(ds: Path) -> list[str]:
    return git(ds, "rev-list", "HEAD").split()


def test_clone_get_round_trip_and_tags(cli, dandi_archive, tmp_path: Path) -> None:
    sample = build_sample_dandiset(dandi_archive)
    code, out, err = cli("sync", f"dandi:{sample.identifier}")
    assert code == 0, err
    assert "2 new version(s)" in out
    ds = cli.root / "dandi" / sample.identifier
    # registered as a subdataset of the root
    subs = subprocess.run(["datalad", "subdatasets", "-d", str(cli.root)], capture_output=True, text=True).stdout
    assert f"dandi/{sample.identifier}" in subs
    assert git(ds, "status", "--porcelain") == "" and git(cli.root, "status", "--porcelain") == ""

    # the draft: tree equals the draft's assets, every byte retrievable and verified
    assert tree_paths(ds) == set(sample.files) | {"dandiset.yaml"}
    work = clone(ds, tmp_path / "clone")
    datalad_get(work, ".")
    for path, content in sample.files.items():
        assert sha256((work / path).read_bytes()) == sha256(content), path
    assert (work / "README.md").is_file() and not (work / "README.md").is_symlink()  # text in git
    assert (work / "sub-01/sub-01_ses-1_ecephys.nwb").is_symlink()  # annexed
    key = Path(git(work, "annex", "lookupkey", "sub-01/sub-01_ses-1_ecephys.nwb").strip())
    assert str(key).startswith("SHA256E-s300000--") and str(key).endswith(".nwb")

    # the published version: a tag with exactly that version's tree, date, DOI and citation
    assert git(ds, "tag", "-l").split() == [sample.published]
    published_paths = tree_paths(ds, sample.published)
    assert "sub-02/sub-02_ses-1_image.nii.gz" in published_paths
    assert "sub-03/sub-03_ses-1_ecephys.nwb" not in published_paths
    assert git(ds, "log", "-1", "--format=%aI", sample.published).strip() == "2024-03-02T12:00:00+00:00"
    message = git(ds, "tag", "-l", "--format=%(contents)", sample.published)
    assert f"DOI: 10.80507/dandi.{sample.identifier}/{sample.published}" in message
    assert "Citation: " in message
    # the draft commit is dated with the draft's modified time
    assert git(ds, "log", "-1", "--format=%aI").strip().startswith("2024-03-31")

    pin = cli.json("pin", f"dandi:{sample.identifier}@{sample.published}")
    assert pin == {
        "source": f"dandi:{sample.identifier}",
        "version": sample.published,
        "dataset": str(ds),
        "commit": git(ds, "rev-parse", f"{sample.published}^{{commit}}").strip(),
        "tag": sample.published,
        "doi": f"10.80507/dandi.{sample.identifier}/{sample.published}",
    }
    assert cli.json("pin", f"dandi:{sample.identifier}@draft")["commit"] == git(ds, "rev-parse", "HEAD").strip()
    versions = cli.json("versions", f"dandi:{sample.identifier}")
    assert [v["version"] for v in versions] == [sample.published, "draft"]
    assert set(versions[0]) >= {"version", "commit", "tag", "synced_at", "files", "bytes"}
    assert versions[1]["files"] == len(sample.files) + 1


def test_incremental_noop_add_delete_modify(cli, dandi_archive, tmp_path: Path) -> None:
    ident = dandi_archive.create_dandiset(name="incremental", created=T0)
    for i in range(3):
        dandi_archive.put_asset(ident, f"sub-{i}/data.nwb", f"data {i}".encode() * 100, when=T0)
    assert cli("sync", f"dandi:{ident}")[0] == 0
    ds = cli.root / "dandi" / ident
    before = commits(ds)

    # nothing changed upstream: no commit, O(1) API calls
    dandi_archive.reset_request_log()
    code, out, _ = cli("sync", f"dandi:{ident}")
    assert code == 0 and "unchanged" in out
    assert commits(ds) == before
    assert dandi_archive.request_count <= 4

    # one added, one removed, one changed: one commit saying so
    later = T0 + timedelta(days=2)
    dandi_archive.put_asset(ident, "sub-9/new.nwb", b"new" * 50, when=later)
    dandi_archive.delete_asset(ident, "sub-0/data.nwb", when=later)
    dandi_archive.put_asset(ident, "sub-1/data.nwb", b"changed" * 70, when=later)
    code, out, _ = cli("sync", f"dandi:{ident}")
    assert code == 0
    assert len(commits(ds)) == len(before) + 1
    subject = git(ds, "log", "-1", "--format=%s")
    # dandiset.yaml changes with the assets (the archive's assetsSummary) and is counted with them
    assert "1 added, 1 removed, 2 changed" in subject
    assert tree_paths(ds) == {"dandiset.yaml", "sub-1/data.nwb", "sub-2/data.nwb", "sub-9/new.nwb"}
    changed = git(ds, "diff", "--name-only", "HEAD~1", "HEAD").split()
    assert sorted(changed) == ["dandiset.yaml", "sub-0/data.nwb", "sub-1/data.nwb", "sub-9/new.nwb"]
    work = clone(ds, tmp_path / "c")
    datalad_get(work, "sub-1/data.nwb", "sub-9/new.nwb")
    assert (work / "sub-1/data.nwb").read_bytes() == b"changed" * 70


def test_old_tag_retrieves_old_bytes_after_blob_deleted(cli, dandi_archive, tmp_path: Path) -> None:
    ident = dandi_archive.create_dandiset(name="old bytes", created=T0)
    dandi_archive.put_asset(ident, "rec.nwb", b"original bytes" * 100, when=T0)
    version = dandi_archive.publish(ident, when=T0 + timedelta(hours=1))
    old_blob = dandi_archive.asset_at(ident, "rec.nwb").blob.blob_id
    assert cli("sync", f"dandi:{ident}")[0] == 0
    # upstream: the asset changes and the old blob's object is deleted from S3 (a delete marker)
    dandi_archive.put_asset(ident, "rec.nwb", b"replacement" * 100, when=T0 + timedelta(days=1))
    dandi_archive.delete_blob_object(old_blob)
    assert cli("sync", f"dandi:{ident}")[0] == 0
    work = clone(cli.root / "dandi" / ident, tmp_path / "c")
    git(work, "checkout", "-q", version)
    datalad_get(work, "rec.nwb")
    assert (work / "rec.nwb").read_bytes() == b"original bytes" * 100
    git(work, "checkout", "-q", "-")
    datalad_get(work, "rec.nwb")
    assert (work / "rec.nwb").read_bytes() == b"replacement" * 100


def test_pending_sha256_picked_up_later(cli, dandi_archive) -> None:
    ident = dandi_archive.create_dandiset(name="pending", created=T0)
    dandi_archive.put_asset(ident, "ready.nwb", b"ready" * 10, when=T0)
    dandi_archive.put_asset(ident, "slow.nwb", b"slow" * 10, sha256_pending=True, when=T0)
    code, out, _ = cli("sync", f"dandi:{ident}")
    assert code == 0 and "pending slow.nwb" in out
    ds = cli.root / "dandi" / ident
    assert "slow.nwb" not in tree_paths(ds)
    db = sqlite3.connect(cli.root / ".neuromirror" / "index.sqlite")
    assert db.execute("SELECT path FROM pending WHERE source=?", [f"dandi:{ident}"]).fetchall() == [("slow.nwb",)]
    dandi_archive.finalize_sha256(ident, "slow.nwb")
    dandi_archive.put_asset(ident, "other.nwb", b"x" * 10, when=T0 + timedelta(days=1))  # the draft moves on
    assert cli("sync", f"dandi:{ident}")[0] == 0
    assert {"slow.nwb", "other.nwb"} <= tree_paths(ds)
    assert db.execute("SELECT count(*) FROM pending WHERE source=?", [f"dandi:{ident}"]).fetchone() == (0,)


def test_hostile_paths_refused_rest_mirrored(cli, dandi_archive, tmp_path: Path) -> None:
    ident = dandi_archive.create_dandiset(name="hostile", created=T0)
    hostile = [
        "../escape.nwb",
        "/etc/abs.nwb",
        ".git/config",
        "sub/.git/hooks/post-checkout",
        ".datalad/config",
        "sub/../../up.nwb",
        "dandiset.yaml",
    ]
    for p in hostile:
        dandi_archive.put_asset(ident, p, b"evil", when=T0)
    dandi_archive.put_asset(ident, "good/file.nwb", b"good" * 10, when=T0)
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 3 and "item(s) refused" in err, err  # synced; cron sees that items were refused
    for p in hostile:
        assert f"refused {p!r}" in out, (p, out)
    ds = cli.root / "dandi" / ident
    assert tree_paths(ds) == {"dandiset.yaml", "good/file.nwb"}
    assert not (cli.root / "dandi" / "escape.nwb").exists() and not (tmp_path / "up.nwb").exists()
    assert not (ds / "sub").exists()
    assert b"evil" not in (ds / ".git" / "config").read_bytes()
    assert b"evil" not in (ds / ".datalad" / "config").read_bytes()
    runs = json.loads(
        sqlite3.connect(cli.root / ".neuromirror" / "index.sqlite")
        .execute("SELECT report FROM runs WHERE source=? ORDER BY id DESC", [f"dandi:{ident}"])
        .fetchone()[0]
    )
    assert {r["path"] for r in runs["refused"]} == set(hostile)
    # nothing is asked of the archive's S3 for an asset refused: one HEAD, the good file's pin
    s3 = [e for e in runs["network"] if not e["endpoint"].startswith(dandi_archive.api_url.rsplit("/api", 1)[0])]
    assert [e["requests"] for e in s3] == [1], runs["network"]


def test_api_5xx_is_retried(cli, dandi_archive) -> None:
    ident = dandi_archive.create_dandiset(name="flaky", created=T0)
    dandi_archive.put_asset(ident, "a.nwb", b"a" * 10, when=T0)
    dandi_archive.faults.fail_next(2, "503")
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    assert "a.nwb" in tree_paths(cli.root / "dandi" / ident)


def test_unreachable_api_one_line_error_clean_dataset(cli, dandi_archive) -> None:
    ident = dandi_archive.create_dandiset(name="unreachable", created=T0)
    dandi_archive.put_asset(ident, "a.nwb", b"a" * 10, when=T0)
    assert cli("sync", f"dandi:{ident}")[0] == 0
    ds = cli.root / "dandi" / ident
    head = git(ds, "rev-parse", "HEAD")
    code, out, err = cli("sync", f"dandi:{ident}", "--dandi-api", "http://127.0.0.1:9/api")
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "unreachable" in lines[0] and "127.0.0.1:9" in lines[0], err
    assert git(ds, "rev-parse", "HEAD") == head and git(ds, "status", "--porcelain") == ""
    db = sqlite3.connect(cli.root / ".neuromirror" / "index.sqlite")
    assert db.execute("SELECT outcome FROM runs ORDER BY id DESC LIMIT 1").fetchone() == ("failed",)


def dump_index(path: Path) -> dict:
    db = sqlite3.connect(path)
    versions = db.execute(
        'SELECT source, label, kind, "commit", tag, remote_modified, files, bytes, doi, citation FROM versions'
        " ORDER BY source, id"
    ).fetchall()
    files = db.execute(
        'SELECT v.label, v."commit", e.path, e.key, e.size, e.checksum_kind, e.checksum, e.urls, e.remote_id'
        " FROM version_files vf JOIN versions v ON v.id = vf.version_id JOIN entries e ON e.id = vf.entry_id"
        " ORDER BY v.source, v.id, e.path"
    ).fetchall()
    return {"versions": versions, "files": files}


def test_reindex_reproduces_the_index(cli, dandi_archive) -> None:
    sample = build_sample_dandiset(dandi_archive)
    assert cli("sync", f"dandi:{sample.identifier}")[0] == 0
    index = cli.root / ".neuromirror" / "index.sqlite"
    before = dump_index(index)
    for suffix in ("", "-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)
    code, out, err = cli("reindex")
    assert code == 0, err
    assert f"dandi:{sample.identifier}: 2 versions" in out
    assert dump_index(index) == before


def test_unknown_dandiset_fails_and_creates_nothing(cli, dandi_archive) -> None:
    code, out, err = cli("sync", "dandi:999999")
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and "999999" in err
    assert not (cli.root / "dandi" / "999999").exists()
    if (cli.root / ".gitmodules").exists():
        assert "999999" not in (cli.root / ".gitmodules").read_text()


# -- resync: unchanged assets are not asked for their metadata again -------------------------
def mirror_state(root: Path, ident: str) -> dict:
    """What a user sees of a mirrored dandiset: the trees of HEAD and of its tags, git-annex's URLs
    per file, and the index rows of HEAD and of the published versions."""
    ds = root / "dandi" / ident

    def tree(rev: str) -> list[str]:  # .datalad/config holds the dataset's own id
        return [
            line
            for line in git(ds, "ls-tree", "-r", rev).splitlines()
            if not line.split("\t", 1)[1].startswith(".datalad/")
        ]

    urls = {}
    for line in git(ds, "annex", "whereis", "--json").splitlines():
        w = json.loads(line)
        urls[w["file"]] = sorted(u for remote in w["whereis"] for u in remote.get("urls", []))
    rows = (
        sqlite3.connect(root / ".neuromirror" / "index.sqlite")
        .execute(
            "SELECT v.label, e.path, e.key, e.size, e.checksum_kind, e.checksum, e.urls, e.remote_id FROM versions v"
            " JOIN version_files vf ON vf.version_id = v.id JOIN entries e ON e.id = vf.entry_id"
            ' WHERE v.source = ? AND (v."commit" = ? OR v.tag IS NOT NULL) ORDER BY v.label, e.path',
            [f"dandi:{ident}", git(ds, "rev-parse", "HEAD").strip()],
        )
        .fetchall()
    )
    tags = {t: tree(t) for t in git(ds, "tag", "-l").split()}
    return {"tree": tree("HEAD"), "tags": tags, "urls": urls, "rows": rows}


def cold_mirror(tmp_path: Path, capsys, api_url: str, ident: str, name: str) -> dict:  # noqa: ANN001
    """The same archive state mirrored from scratch into a fresh root."""
    fresh = CLI(tmp_path / name, capsys, api_url)
    code, _, err = fresh("sync", f"dandi:{ident}")
    assert code == 0, err
    return mirror_state(fresh.root, ident)


def metadata_requests(archive) -> list[str]:  # noqa: ANN001
    """The asset ids whose metadata was asked for one by one (GET /api/assets/<id>/)."""
    return [
        m.group(1)
        for method, raw in archive.request_log
        if method == "GET" and (m := re.fullmatch(r"/api/assets/([^/?]+)/", raw))
    ]


def listing_requests(archive, ident: str) -> list[str]:  # noqa: ANN001
    return [raw for _, raw in archive.request_log if raw.startswith(f"/api/dandisets/{ident}/versions/draft/assets/")]


def assert_same_but_old_urls(state: dict, cold: dict) -> None:
    """The tree and index rows of a cold mirror; git-annex also keeps the URLs registered before."""
    assert state["tree"] == cold["tree"] and state["tags"] == cold["tags"] and state["rows"] == cold["rows"]
    assert state["urls"].keys() == cold["urls"].keys()
    for path, urls in cold["urls"].items():
        assert set(urls) <= set(state["urls"][path]), path


def test_resync_asks_metadata_only_of_new_assets(cli, dandi_archive, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    ident = dandi_archive.create_dandiset(name="resync by asset id", created=T0)
    for i in range(6):
        dandi_archive.put_asset(ident, f"sub-{i}/sub-{i}_ecephys.nwb", f"recording {i}".encode() * 200, when=T0)
    text = dandi_archive.put_asset(ident, "participants.tsv", b"participant_id\nsub-0\n", when=T0)
    assert cli("sync", f"dandi:{ident}")[0] == 0

    later = T0 + timedelta(days=1)
    added = dandi_archive.put_asset(ident, "sub-9/sub-9_ecephys.nwb", b"added" * 300, when=later)
    dandi_archive.delete_asset(ident, "sub-0/sub-0_ecephys.nwb", when=later)
    changed = dandi_archive.put_asset(ident, "sub-3/sub-3_ecephys.nwb", b"new bytes" * 300, when=later)
    dandi_archive.reset_request_log()
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    subject = git(cli.root / "dandi" / ident, "log", "-1", "--format=%s")
    assert "1 added, 1 removed, 2 changed" in subject  # dandiset.yaml changes with its assets

    # the listing came without metadata; only the new asset ids (and the text file, which goes
    # to git and is identified by its sha256) were asked for theirs, each once
    assert listing_requests(dandi_archive, ident) and not any(
        "metadata=1" in r for r in listing_requests(dandi_archive, ident)
    )
    assert sorted(metadata_requests(dandi_archive)) == sorted([added, changed, text])

    # and the result is exactly what a cold mirror of the same archive state gives
    assert mirror_state(cli.root, ident) == cold_mirror(tmp_path, capsys, dandi_archive.api_url, ident, "cold")

    # a new published version and a change: the version's listing and the draft's reuse the files
    # recorded before (published assets keep their ids), the new asset is asked for once
    dandi_archive.publish(ident, when=later + timedelta(hours=1))
    newer = dandi_archive.put_asset(ident, "sub-10/sub-10_ecephys.nwb", b"newer" * 300, when=later + timedelta(hours=2))
    dandi_archive.reset_request_log()
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    assert sorted(metadata_requests(dandi_archive)) == sorted([newer, text, text])  # text: once per version listed
    assert mirror_state(cli.root, ident) == cold_mirror(tmp_path, capsys, dandi_archive.api_url, ident, "cold-2")


def test_resync_with_many_new_assets_lists_with_metadata(
    cli,
    dandi_archive,
    tmp_path: Path,
    capsys,  # noqa: ANN001
    monkeypatch,
) -> None:
    from neuromirror.sources.dandi import assets

    ident = dandi_archive.create_dandiset(name="mostly new", created=T0)
    for i in range(3):
        dandi_archive.put_asset(ident, f"old-{i}.nwb", f"old {i}".encode() * 100, when=T0)
    assert cli("sync", f"dandi:{ident}")[0] == 0
    for i in range(7):
        dandi_archive.put_asset(ident, f"new-{i}.nwb", f"new {i}".encode() * 100, when=T0 + timedelta(days=1))
    monkeypatch.setattr(assets, "REFETCH_MIN", 2)  # 7 of 10 need their metadata: > 2 and > 10 %
    dandi_archive.reset_request_log()
    code, _, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    # one listing with metadata instead of a GET per new asset
    assert metadata_requests(dandi_archive) == []
    assert any("metadata=1" in r for r in listing_requests(dandi_archive, ident))
    assert mirror_state(cli.root, ident) == cold_mirror(tmp_path, capsys, dandi_archive.api_url, ident, "cold")


def test_resync_after_api_url_change_registers_the_new_urls(tmp_path: Path, capsys, s3) -> None:  # noqa: ANN001
    from neuromirror.standins.dandi.server import DandiStandIn

    with DandiStandIn(s3, bucket=f"nm-moved-{uuid.uuid4().hex[:8]}") as archive:
        ident = archive.create_dandiset(name="api moved", created=T0)
        for i in range(3):
            archive.put_asset(ident, f"rec-{i}.nwb", f"rec {i}".encode() * 100, when=T0)
        assert CLI(tmp_path / "mirror", capsys, archive.api_url)("sync", f"dandi:{ident}")[0] == 0
        old_api = archive.api_url

        # the archive's API moves (here: another port) and the user follows it with --dandi-api
        archive.stop()
        archive.port = 0
        archive.start()
        assert archive.api_url != old_api
        archive.put_asset(ident, "rec-new.nwb", b"new" * 100, when=T0 + timedelta(days=1))
        archive.reset_request_log()
        code, _, err = CLI(tmp_path / "mirror", capsys, archive.api_url)("sync", f"dandi:{ident}")
        assert code == 0, err
        assert len(metadata_requests(archive)) == 4  # no file kept the URLs of the old API
        state = mirror_state(tmp_path / "mirror", ident)
        assert not any(old_api in row[6] for row in state["rows"])
        assert_same_but_old_urls(state, cold_mirror(tmp_path, capsys, archive.api_url, ident, "cold"))


def test_resync_across_embargo_changes_registers_the_right_urls(cli, dandi_archive, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    ident = dandi_archive.create_dandiset(name="embargo flips", created=T0)
    for i in range(3):
        dandi_archive.put_asset(ident, f"rec-{i}.nwb", f"rec {i}".encode() * 100, when=T0)
    dandi_archive.put_asset(ident, "samples.tsv", b"sample_id\ns1\n", when=T0)
    assert cli("sync", f"dandi:{ident}")[0] == 0

    # embargoed (the stand-in allows it for an open dandiset; this one has no access control):
    # every file goes behind the key, the recorded public URLs are not kept
    dandi_archive.set_embargoed(ident, True)
    code, _, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    state = mirror_state(cli.root, ident)
    assert all(json.loads(row[6])[0].startswith("neuromirror+dandi:") for row in state["rows"] if row[4] == "sha256")
    assert_same_but_old_urls(state, cold_mirror(tmp_path, capsys, dandi_archive.api_url, ident, "cold-embargoed"))

    # lifted: public URLs again, as a cold mirror of the open dandiset has them
    dandi_archive.set_embargoed(ident, False)
    code, _, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    state = mirror_state(cli.root, ident)
    assert not any(u.startswith("neuromirror+dandi:") for row in state["rows"] for u in json.loads(row[6]))
    assert_same_but_old_urls(state, cold_mirror(tmp_path, capsys, dandi_archive.api_url, ident, "cold-open"))


def test_resync_listing_that_repeats_or_skips_a_page_commits_nothing(
    cli,
    dandi_archive,
    tmp_path: Path,
    capsys,  # noqa: ANN001
    monkeypatch,
) -> None:
    from neuromirror.sources.dandi import assets

    monkeypatch.setattr(assets, "PAGE_SIZE", 2)  # a few pages for a few assets
    ident = dandi_archive.create_dandiset(name="bad pages", created=T0)
    for i in range(7):
        dandi_archive.put_asset(ident, f"rec-{i}.nwb", f"rec {i}".encode() * 100, when=T0)
    assert cli("sync", f"dandi:{ident}")[0] == 0
    ds = cli.root / "dandi" / ident
    head = git(ds, "rev-parse", "HEAD")
    dandi_archive.put_asset(ident, "rec-new.nwb", b"new" * 100, when=T0 + timedelta(days=1))
    dandi_archive.delete_asset(ident, "rec-2.nwb", when=T0 + timedelta(days=1))

    # the archive's paginator goes wrong on page 2 of the asset list, every time
    plan = dandi_archive.faults
    kinds = plan.kinds
    plan.set_only_paths(rf"^/api/dandisets/{ident}/versions/draft/assets/\?.*[?&]page=2(&|$)")
    plan.set_rate(1.0, ("repeat-page", "skip-page"))
    dandi_archive.reset_request_log()
    try:
        code, _, err = cli("sync", f"dandi:{ident}")
    finally:
        plan.reset()
        plan.set_rate(0.0, kinds)
        plan.set_only_paths(None)
    # listed without metadata, as resyncs are, and checked all the same: nothing committed
    assert code != 0 and "inconsistent asset listing" in err, err
    assert not any("metadata=1" in r for r in listing_requests(dandi_archive, ident))
    assert git(ds, "rev-parse", "HEAD") == head

    code, _, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    assert mirror_state(cli.root, ident) == cold_mirror(tmp_path, capsys, dandi_archive.api_url, ident, "cold")


def test_versions_after_a_large_one_read_its_state_from_the_index(
    cli,
    dandi_archive,
    tmp_path: Path,
    capsys,  # noqa: ANN001
    monkeypatch,
) -> None:  # noqa: ANN001
    """A large version's state is not held through its commit; the next version of the same sync
    reads it back from the index: the same commits and index rows as a sync that kept it."""
    from neuromirror.engine import sync as sync_module

    sample = build_sample_dandiset(dandi_archive)
    assert cli("sync", f"dandi:{sample.identifier}")[0] == 0
    monkeypatch.setattr(sync_module, "KEEP_STATE_BELOW", 1)  # every version counts as large
    other = CLI(tmp_path / "mirror-reread", capsys, dandi_archive.api_url)
    code, out, err = other("sync", f"dandi:{sample.identifier}")
    assert code == 0 and "2 new version(s)" in out, err
    kept, reread = (root / "dandi" / sample.identifier for root in (cli.root, other.root))

    def history(ds: Path) -> list[tuple[str, str]]:  # each commit's message and files (not .datalad: its id differs)
        return [
            (
                git(ds, "log", "-1", "--format=%B", c),
                "\n".join(line for line in git(ds, "ls-tree", "-r", c).splitlines() if "\t.datalad/" not in line),
            )
            for c in commits(ds)
        ]

    assert history(reread) == history(kept) and len(history(kept)) >= 3
    assert git(reread, "tag", "-l") == git(kept, "tag", "-l") != ""

    def rows(root: Path) -> list[tuple]:  # the index's files per version, without the commit ids
        return [r[:1] + r[2:] for r in dump_index(root / ".neuromirror" / "index.sqlite")["files"]]

    assert rows(other.root) == rows(cli.root)


# -- when the dandi client is needed ------------------------------------------------------
SYNC_AND_SAY_IF_CLIENT = (
    "import sys\n"
    "from neuromirror.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('CLIENT', 'dandi.dandiapi' in sys.modules)\n"
    "sys.exit(code)\n"
)


def sync_imports_client(root: Path, api: str, ident: str) -> bool:
    """Sync in a fresh process; whether it imported the dandi client."""
    cmd = [sys.executable, "-c", SYNC_AND_SAY_IF_CLIENT, "--root", str(root), "sync", f"dandi:{ident}"]
    p = subprocess.run([*cmd, "--dandi-api", api, "-q"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return "CLIENT True" in p.stdout


def test_only_an_unchanged_dandiset_is_decided_without_the_dandi_client(dandi_archive, tmp_path: Path) -> None:
    """The client (~1 s to import) makes every request that reads a version; a resync that finds
    nothing new is two plain GETs (the dandiset and its versions) and needs none."""
    ident = dandi_archive.create_dandiset(name="no client", created=T0)
    dandi_archive.put_asset(ident, "a.nwb", b"a" * 100, when=T0)
    root = tmp_path / "mirror"
    assert sync_imports_client(root, dandi_archive.api_url, ident)  # cold
    assert not sync_imports_client(root, dandi_archive.api_url, ident)  # unchanged
    dandi_archive.put_asset(ident, "b.nwb", b"b" * 100, when=T0 + timedelta(hours=1))
    assert sync_imports_client(root, dandi_archive.api_url, ident)  # the draft changed
    assert tree_paths(root / "dandi" / ident) == {"dandiset.yaml", "a.nwb", "b.nwb"}
    version = dandi_archive.publish(ident, when=T0 + timedelta(hours=2))
    assert sync_imports_client(root, dandi_archive.api_url, ident)  # a new published version
    assert version in git(root / "dandi" / ident, "tag").split()
