"""``neuromirror search``: files by checksum/key/path and assets by their metadata, across sources.

The index is filled directly (as syncs of DANDI and AIND would fill it), so these
tests pin down the query semantics without any archive stand-in.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from neuromirror.annex.keys import md5e_key, sha256e_key, url_key
from neuromirror.index.db import Index
from neuromirror.records import MD5, SHA256, VERIFY_ON_GET, AnnexEntry, GitEntry

BLOB = b"an nwb file's bytes"
SHA_BLOB = hashlib.sha256(BLOB).hexdigest()
SHA_B = hashlib.sha256(b"b").hexdigest()
README = b"# read me\n"
SHA_README = hashlib.sha256(README).hexdigest()
MD5_X = hashlib.md5(b"x data").hexdigest()
RAW = "ecephys_123456_2022-12-12_05-06-07"
DERIVED = RAW + "_sorted_2023-01-01_00-00-00"
SPIM = "SmartSPIM_654321_2023-03-03_01-02-03"


def blob(path: str, sha: str, size: int = 19) -> AnnexEntry:
    return AnnexEntry(
        path, sha256e_key(sha, size, path), size, (f"https://example.org/{sha[:8]}",), SHA256, sha, sha[:8]
    )


def aind_meta(name: str, subject: str, modalities: list[str], acq: str, level: str, **more: object) -> dict:
    return {
        "name": name,
        "subject_id": subject,
        "modalities": modalities,
        "modality": ",".join(modalities),
        "acquisition_date": acq,
        "creation_time": more.pop("creation_time", acq + "T00:00:00"),
        "data_level": level,
        "project_name": more.pop("project_name", "Ephys Platform"),
        "derived_from": more.pop("derived_from", None),
        "raw_asset": more.pop("raw_asset", None),
        "source_data": more.pop("source_data", []),
        "pinned_upstream": True,
        **more,
    }


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search") / "root"
    idx = Index(root / ".neuromirror" / "index.sqlite")
    n = iter(range(1, 100))

    def record(source: str, label: str, kind: str, entries: list, meta: dict | None = None) -> None:
        archive, remote = source.split(":", 1)
        idx.ensure_source(source, archive, remote, f"{archive}/{remote}")
        idx.record_version(
            source,
            label=label,
            kind=kind,
            commit=f"{next(n):040x}",
            tag=label if kind != "draft" else None,
            remote_modified=None,
            date="2024-01-01T00:00:00+00:00",
            entries=entries,
            meta=meta,
        )

    record(
        "dandi:000027", "0.230629.1955", "published", [blob("sub-01/a.nwb", SHA_BLOB), GitEntry("dandiset.yaml", b"a")]
    )
    record(
        "dandi:000027",
        "draft",
        "draft",
        [blob("sub-01/a.nwb", SHA_BLOB), blob("sub-02/b.nwb", SHA_B), GitEntry("dandiset.yaml", b"b")],
    )
    record("dandi:000003", "draft", "draft", [GitEntry("docs/README.md", README), blob("c.nwb", SHA_B)])
    x_url = f"https://aind.s3/{RAW}/x.bin?versionId=1"
    record(
        f"aind:{RAW}",
        "2024-01-01T00-00-00Z",
        "snapshot",
        [
            AnnexEntry("ecephys/x.bin", md5e_key(MD5_X, 6, "x.bin"), 6, (x_url,), MD5, MD5_X, f"{RAW}/x.bin@1"),
            AnnexEntry("ecephys/gone.bin", md5e_key("0" * 32, 6, "gone.bin"), 6, ("https://aind.s3/g",), MD5, "0" * 32),
            GitEntry("README.md", README),
        ],
        aind_meta(RAW, "123456", ["ecephys"], "2022-12-12", "raw"),
    )
    video_url = f"https://aind.s3/{RAW}/behavior/video.bin?versionId=2"
    record(
        f"aind:{RAW}",
        "2024-02-01T00-00-00Z",
        "snapshot",
        [
            AnnexEntry("ecephys/x.bin", md5e_key(MD5_X, 6, "x.bin"), 6, (x_url,), MD5, MD5_X, f"{RAW}/x.bin@1"),
            blob("behavior/video.bin", SHA_BLOB),
            AnnexEntry("behavior/big.bin", url_key(video_url, 10**9), 10**9, (video_url,), VERIFY_ON_GET, None),
            GitEntry("README.md", README),
        ],
        aind_meta(RAW, "123456", ["ecephys", "behavior-videos"], "2022-12-12", "raw"),
    )
    record(
        f"aind:{DERIVED}",
        "2024-03-01T00-00-00Z",
        "snapshot",
        [blob("sorting/units.bin", SHA_B)],
        aind_meta(
            DERIVED,
            "123456",
            ["ecephys"],
            "2022-12-12",
            "derived",
            derived_from=RAW,
            raw_asset=RAW,
            source_data=[RAW],
            creation_time="2023-01-01T00:00:00",
        ),
    )
    record(
        f"aind:{SPIM}",
        "2024-04-01T00-00-00Z",
        "snapshot",
        [GitEntry("data_description.json", b"{}")],
        aind_meta(SPIM, "654321", ["spim"], "2023-03-03", "raw", project_name="Brain Atlas"),
    )
    idx.close()
    return root


def search(root: Path, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    from neuromirror.cli import main

    capsys.readouterr()
    code = main(["--root", str(root), "search", *args])
    out, err = capsys.readouterr()
    return code, out, err


def hits(root: Path, capsys: pytest.CaptureFixture, *args: str) -> list[dict]:
    code, out, err = search(root, capsys, *args, "--json")
    assert code in (0, 1), err
    return json.loads(out)


def test_sha256_answers_across_sources(root: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = search(root, capsys, "--sha256", SHA_BLOB)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["SOURCE", "VERSION", "PATH", "KEY"]
    assert lines[1].split() == [
        f"aind:{RAW}",
        "2024-02-01T00-00-00Z",
        "behavior/video.bin",
        sha256e_key(SHA_BLOB, 19, "video.bin"),
    ]
    assert lines[2].split() == ["dandi:000027", "draft", "sub-01/a.nwb", sha256e_key(SHA_BLOB, 19, "a.nwb")]
    assert len(lines) == 3  # the newest version holding each file, unless --all-versions


def test_sha256_finds_files_in_git_too(root: Path, capsys: pytest.CaptureFixture) -> None:
    rows = hits(root, capsys, "--sha256", SHA_README.upper())
    assert {(r["source"], r["path"], r["checksum_kind"], r["key"]) for r in rows} == {
        ("dandi:000003", "docs/README.md", "git", None),
        (f"aind:{RAW}", "README.md", "git", None),
    }


def test_all_versions_and_in_latest(root: Path, capsys: pytest.CaptureFixture) -> None:
    rows = hits(root, capsys, "--sha256", SHA_BLOB, "--source", "dandi:*", "--all-versions")
    assert [(r["version"], r["kind"], r["in_latest"]) for r in rows] == [
        ("0.230629.1955", "published", False),
        ("draft", "draft", True),
    ]
    gone = hits(root, capsys, "--md5", "0" * 32)
    assert [(r["path"], r["version"], r["in_latest"]) for r in gone] == [
        ("ecephys/gone.bin", "2024-01-01T00-00-00Z", False)
    ]


def test_md5_key_and_path(root: Path, capsys: pytest.CaptureFixture) -> None:
    rows = hits(root, capsys, "--md5", MD5_X.upper())
    assert [(r["source"], r["path"], r["urls"], r["remote_id"]) for r in rows] == [
        (f"aind:{RAW}", "ecephys/x.bin", [f"https://aind.s3/{RAW}/x.bin?versionId=1"], f"{RAW}/x.bin@1")
    ]
    assert hits(root, capsys, "--sha256", hashlib.sha256(b"x data").hexdigest()) == []  # only its md5 is known
    key = md5e_key(MD5_X, 6, "x.bin")
    assert [r["path"] for r in hits(root, capsys, "--key", key)] == ["ecephys/x.bin"]
    nwb = hits(root, capsys, "--path", "*.nwb")
    assert sorted((r["source"], r["path"]) for r in nwb) == [
        ("dandi:000003", "c.nwb"),
        ("dandi:000027", "sub-01/a.nwb"),
        ("dandi:000027", "sub-02/b.nwb"),
    ]
    assert [r["path"] for r in hits(root, capsys, "--path", "sub-0?/*", "--source", "dandi:000027")] == [
        "sub-01/a.nwb",
        "sub-02/b.nwb",
    ]
    assert {r["source"] for r in hits(root, capsys, "--path", "*", "--source", "dandi")} == {
        "dandi:000027",
        "dandi:000003",
    }
    vurl = hits(root, capsys, "--path", "behavior/big.bin")
    assert vurl[0]["checksum_kind"] == "verify-on-get" and vurl[0]["checksum"] is None


def test_assets_by_subject_modality_date(root: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = search(root, capsys, "--subject", "123456")
    assert code == 0 and out.splitlines()[0].split()[:4] == ["SOURCE", "VERSION", "SUBJECT", "MODALITY"]
    rows = hits(root, capsys, "--subject", "123456")
    assert [(r["source"], r["version"]) for r in rows] == [
        (f"aind:{RAW}", "2024-02-01T00-00-00Z"),
        (f"aind:{DERIVED}", "2024-03-01T00-00-00Z"),
    ]
    assert rows[0]["meta"]["modalities"] == ["ecephys", "behavior-videos"]
    assert [r["source"] for r in hits(root, capsys, "--modality", "SPIM")] == [f"aind:{SPIM}"]
    # the latest version decides, unless --all-versions
    assert [r["source"] for r in hits(root, capsys, "--modality", "behavior-videos")] == [f"aind:{RAW}"]
    assert len(hits(root, capsys, "--subject", "123456", "--source", f"aind:{RAW}", "--all-versions")) == 2
    assert [r["source"] for r in hits(root, capsys, "--date-from", "2023")] == [f"aind:{SPIM}"]
    assert [r["source"] for r in hits(root, capsys, "--date-from", "2022-12-12", "--date-to", "2022-12")] == [
        f"aind:{RAW}",
        f"aind:{DERIVED}",
    ]
    assert [r["source"] for r in hits(root, capsys, "--date-to", "2022-12-11")] == []
    assert [r["source"] for r in hits(root, capsys, "--data-level", "DERIVED")] == [f"aind:{DERIVED}"]
    assert [r["source"] for r in hits(root, capsys, "--derived-from", RAW)] == [f"aind:{DERIVED}"]
    assert [r["source"] for r in hits(root, capsys, "--project", "brain*")] == [f"aind:{SPIM}"]
    # no metadata filter: every source's latest version, DANDI included
    assert len(hits(root, capsys)) == 5


def test_file_and_asset_filters_combine(root: Path, capsys: pytest.CaptureFixture) -> None:
    rows = hits(root, capsys, "--modality", "ecephys", "--path", "*.bin")
    assert sorted((r["source"], r["path"]) for r in rows) == [
        (f"aind:{RAW}", "behavior/big.bin"),
        (f"aind:{RAW}", "behavior/video.bin"),
        (f"aind:{RAW}", "ecephys/gone.bin"),
        (f"aind:{RAW}", "ecephys/x.bin"),
        (f"aind:{DERIVED}", "sorting/units.bin"),
    ]
    rows = hits(root, capsys, "--sha256", SHA_B, "--subject", "123456")
    assert [(r["source"], r["path"]) for r in rows] == [(f"aind:{DERIVED}", "sorting/units.bin")]
    assert len(hits(root, capsys, "--path", "*", "--limit", "2")) == 2


def test_no_match_and_bad_input(root: Path, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, out, err = search(root, capsys, "--sha256", "0" * 64)
    assert code == 1 and out == "" and "no match" in err
    code, out, _ = search(root, capsys, "--sha256", "0" * 64, "--json")
    assert code == 1 and json.loads(out) == []
    code, _, err = search(root, capsys, "--sha256", "abc")
    assert code == 2 and "--sha256 wants 64 hex digits" in err
    code, _, err = search(root, capsys, "--md5", "z" * 32)
    assert code == 2 and "--md5 wants 32 hex digits" in err
    code, _, err = search(root, capsys, "--date-from", "12/12/2022")
    assert code == 2 and "YYYY-MM-DD" in err
    code, _, err = search(tmp_path / "nothing-here", capsys, "--path", "*")
    assert code == 2 and f"no mirror at {tmp_path / 'nothing-here'} (no index" in err
    assert not (tmp_path / "nothing-here").exists()  # a read-only command creates nothing
    assert not (tmp_path / "nothing-here").exists()  # a search creates nothing


def test_staged_version_rows_stay_invisible_until_linked(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync writes a version's rows while its commit is made (short transactions, so a
    parallel sync's writes get through), and links them once the commit exists; a failed
    commit leaves nothing a user can find."""
    import sqlite3

    from neuromirror.index import version_rows

    monkeypatch.setattr(version_rows, "BATCH", 5)
    monkeypatch.setattr(version_rows, "STAGE_TRANSACTION", 10)
    root = tmp_path / "root"
    idx = Index(root / ".neuromirror" / "index.sqlite")
    idx.ensure_source(f"aind:{RAW}", "aind", RAW, f"aind/{RAW}")
    other = sqlite3.connect(
        str(idx.path), timeout=0, isolation_level=None, check_same_thread=False
    )  # another sync: it must not wait
    wrote_between: list[int] = []

    def files(n: int):
        for i in range(n):
            if i == 20:  # 20 rows committed, the next batch not begun: the write lock is free
                other.execute("INSERT OR REPLACE INTO cache (namespace, key, value) VALUES ('t', 'k', 'v')")
                wrote_between.append(i)
            md5 = hashlib.md5(str(i).encode()).hexdigest()
            url = f"https://aind.s3/{RAW}/f{i}.bin?versionId=1"
            yield AnnexEntry(f"f{i}.bin", md5e_key(md5, i, f"f{i}.bin"), i, (url,), MD5, md5, f"{RAW}/f{i}.bin@1")

    aborted = idx.stage_version(f"aind:{RAW}", files(40))
    aborted.abort()  # the commit failed
    assert idx.versions(f"aind:{RAW}") == []
    assert hits(root, capsys, "--path", "f3.bin") == []

    staged = idx.stage_version(f"aind:{RAW}", files(40))
    vid = staged.finish(
        label="2024-01-01T00-00-00Z",
        kind="snapshot",
        commit="c" * 40,
        tag=None,
        remote_modified=None,
        date="2024-01-01T00:00:00+00:00",
    )
    assert 20 in wrote_between
    [v] = idx.versions(f"aind:{RAW}")
    assert (v.id, v.file_count, v.bytes, v.commit) == (vid, 40, sum(range(40)), "c" * 40)
    assert [f.path for f in idx.version_files(vid)] == sorted(f"f{i}.bin" for i in range(40))
    # rows the aborted attempt wrote are the same file states: reused, not doubled
    assert idx.db.conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 40
    [hit] = hits(root, capsys, "--path", "f3.bin")
    assert (hit["path"], hit["commit"]) == ("f3.bin", "c" * 40)
