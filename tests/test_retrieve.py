"""``get``, ``lock``, ``reproduce`` and ``diff`` used as a user would, against the DANDI stand-in.

Why: the point of the mirror is that a version named in a paper can be
rebuilt byte for byte anywhere.  These tests mirror a small dandiset with two
published versions and a draft, then get pinned versions into fresh
directories and compare every byte with what the archive holds, write lock
files and reproduce them elsewhere, and tamper with lock files to see that
reproduction fails loudly and says why.

``build_sample`` and ``Runner`` are imported by the other retrieval test
modules (test_cite, test_verify, test_publish).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.retrieve import ZARR, Sample, build_sample, data_files, git, without_metadata

# git-annex and datalad live next to the interpreter in the venv
_BIN = os.path.dirname(sys.executable)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("DANDI_NO_ET", "1")


@pytest.fixture(scope="module")
def sample(dandi_archive, tmp_path_factory) -> Sample:  # noqa: ANN001
    return build_sample(dandi_archive, tmp_path_factory.mktemp("retrieve") / "mirror", zarr=True)


# -- get ----------------------------------------------------------------------------
def test_get_pinned_version_is_byte_identical_to_the_archive(sample: Sample, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from neuromirror.util import progress

    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)  # off a terminal, a get this short would print no progress
    pin = sample.run.json("pin", f"{sample.source}@{sample.v1}")
    code, out, err = sample.run(
        "get", f"{sample.source}@{sample.v1}", "--to", str(tmp_path / "v1"), "--allow-ip", "all"
    )
    assert code == 0, err
    got = data_files(tmp_path / "v1")
    assert without_metadata(got) == sample.files[sample.v1]  # every byte, every file, nothing else
    assert b"name: Retrieval sample" in got["dandiset.yaml"]
    assert git(tmp_path / "v1", "rev-parse", "HEAD") == pin["commit"]
    # the final line says what was fetched and that git-annex verified it; progress went to stderr
    assert f"{sample.source}@{sample.v1} (commit {pin['commit'][:12]})" in out
    assert "fetched 7 file(s)" in out and "verified by git-annex (MD5E/SHA256E keys)" in out
    assert "1 subdataset(s)" in out  # the Zarr asset, a dataset of its own, installed at the version's commit
    zarr_commit = git(Path(pin["dataset"]), "rev-parse", f"{pin['commit']}:{ZARR}")
    assert git(tmp_path / "v1" / ZARR, "rev-parse", "HEAD") == zarr_commit
    assert "files" in err and "/s" in err
    # the loopback permission lives in this clone's own config and nowhere else
    origin = git(tmp_path / "v1", "config", "--show-origin", "--get", "annex.security.allowed-ip-addresses")
    assert origin.startswith("file:.git/config") and origin.endswith("all")
    fsck = subprocess.run(
        ["git", "-C", str(tmp_path / "v1"), "annex", "fsck", "--fast", "--json"], capture_output=True, text=True
    )
    assert fsck.returncode == 0


def test_get_subset_then_rest_reuses_the_clone(sample: Sample, tmp_path: Path) -> None:
    dest = tmp_path / "v2"
    res = sample.run.json("get", f"{sample.source}@{sample.v2}", "sub-03", "--to", str(dest), "--allow-ip", "all")
    assert res["fetched"] == 1 and res["ok"] and res["version"] == sample.v2
    assert (dest / "sub-03/sub-03_ecephys.nwb").read_bytes() == sample.files[sample.v2]["sub-03/sub-03_ecephys.nwb"]
    assert not (dest / "sub-01/sub-01_ecephys.nwb").exists()  # a dangling symlink: content not fetched
    res = sample.run.json("get", f"{sample.source}@{sample.v2}", "--to", str(dest), "--allow-ip", "all")
    assert res["reused"] and res["present"] == 1 and res["fetched"] == 6 and res["subdatasets"] == 1
    assert without_metadata(data_files(dest)) == sample.files[sample.v2]


def test_get_one_chunk_of_a_zarr(sample: Sample, tmp_path: Path) -> None:
    dest = tmp_path / "z"
    res = sample.run.json("get", f"{sample.source}@{sample.v1}", f"{ZARR}/0/1", "--to", str(dest), "--allow-ip", "all")
    assert res["ok"] and res["fetched"] == 1 and res["subdatasets"] == 1
    assert (dest / ZARR / "0/1").read_bytes() == sample.files[sample.v1][f"{ZARR}/0/1"]
    assert not (dest / ZARR / "0/0").exists() and not (dest / "sub-01/sub-01_ecephys.nwb").exists()
    code, _, err = sample.run(
        "get", f"{sample.source}@{sample.v1}", f"{ZARR}/9/9", "--to", str(dest), "--allow-ip", "all"
    )
    assert code == 1 and "'9/9' is not in this version" in err


def test_get_latest_is_the_draft(sample: Sample, tmp_path: Path) -> None:
    res = sample.run.json("get", sample.source, "sub-04", "--to", str(tmp_path / "d"), "--allow-ip", "all")
    assert res["version"] == "draft" and res["tag"] is None
    assert (tmp_path / "d/sub-04/sub-04_ecephys.nwb").read_bytes() == sample.files["draft"]["sub-04/sub-04_ecephys.nwb"]


def test_get_without_allow_ip_fails_and_says_how(
    sample: Sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEUROMIRROR_ALLOW_IP", raising=False)
    code, out, err = sample.run("get", f"{sample.source}@{sample.v1}", "sub-02", "--to", str(tmp_path / "x"))
    assert code == 1
    assert "not fetched or not verified" in err and "--allow-ip all" in err
    assert (
        subprocess.run(
            ["git", "-C", str(tmp_path / "x"), "config", "--get", "annex.security.allowed-ip-addresses"],
            capture_output=True,
        ).returncode
        == 1
    )
    # the env var is the other way to allow it
    monkeypatch.setenv("NEUROMIRROR_ALLOW_IP", "all")
    code, out, err = sample.run("get", f"{sample.source}@{sample.v1}", "sub-02", "--to", str(tmp_path / "x"))
    assert code == 0, err


def test_get_refuses_unknown_version_path_and_busy_directory(sample: Sample, tmp_path: Path) -> None:
    code, _, err = sample.run("get", f"{sample.source}@9.999999.9999", "--to", str(tmp_path / "a"))
    assert code == 2 and sample.v1 in err and "draft" in err
    code, _, err = sample.run("get", f"{sample.source}@{sample.v1}", "sub-03", "--to", str(tmp_path / "b"))
    assert code == 1 and "'sub-03' is not in this version" in err  # sub-03 came in v2
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "thesis.tex").write_text("x")
    code, _, err = sample.run("get", f"{sample.source}@{sample.v1}", "--to", str(tmp_path / "c"))
    assert code == 1 and "not empty" in err
    code, _, err = sample.run("get", "dandi:999999", "--to", str(tmp_path / "d"))
    assert code == 2 and "--from" in err


# -- lock / reproduce ---------------------------------------------------------------
def test_lock_file_is_small_readable_toml(sample: Sample, tmp_path: Path) -> None:
    import tomllib

    lock = tmp_path / "data.lock"
    out = sample.run.ok("lock", f"{sample.source}@{sample.v1}", "-o", str(lock))
    assert "wrote" in out
    text = lock.read_text()
    assert len(text) < 2000 and text.startswith("# neuromirror lock file")
    data = tomllib.loads(text)
    (d,) = data["dataset"]
    pin = sample.run.json("pin", f"{sample.source}@{sample.v1}")
    assert d["source"] == sample.source and d["version"] == sample.v1 and d["kind"] == "published"
    assert d["commit"] == pin["commit"] and d["tag"] == pin["tag"] == sample.v1 and d["doi"] == pin["doi"]
    assert d["url"] == pin["dataset"] and d["path"] == f"dandi/{sample.id}"
    assert d["files"] == 9 and d["file-list-digest"].startswith("sha256:") and "file-list" not in d
    # the digest is the documented one: sha256 of sorted "PATH\tKEY\n" lines
    from neuromirror.annex.keys import md5e_key
    from neuromirror.pin.filelist import file_list_digest, walk_files

    assert file_list_digest(walk_files(Path(pin["dataset"]), pin["commit"])).digest == d["file-list-digest"]
    lines = []
    for path, data_ in sorted(sample.files[sample.v1].items()):
        if path.startswith(ZARR + "/"):  # the Zarr's files, listed like any other, with their MD5E keys
            lines.append(f"{path}\t{md5e_key(hashlib.md5(data_).hexdigest(), len(data_), path)}\n")
            continue
        key = subprocess.run(
            ["git", "-C", pin["dataset"], "show", f"{pin['commit']}:{path}"], capture_output=True
        ).stdout
        if path == "README.md":
            lines.append(f"{path}\tGIT-SHA256-s{len(data_)}--{hashlib.sha256(data_).hexdigest()}\n")
        else:
            assert hashlib.sha256(data_).hexdigest() in key.decode()
            lines.append(
                f"{path}\tSHA256E-s{len(data_)}--{hashlib.sha256(data_).hexdigest()}.{path.rsplit('.', 1)[1]}\n"
            )
    yaml_bytes = subprocess.run(
        ["git", "-C", pin["dataset"], "show", f"{pin['commit']}:dandiset.yaml"], capture_output=True
    ).stdout
    lines.append(f"dandiset.yaml\tGIT-SHA256-s{len(yaml_bytes)}--{hashlib.sha256(yaml_bytes).hexdigest()}\n")
    lines.sort(key=lambda ln: ln.split("\t")[0].encode())
    assert d["file-list-digest"] == "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()


def test_lock_reproduced_elsewhere_matches(sample: Sample, tmp_path: Path) -> None:
    lock = tmp_path / "data.lock"
    sample.run.ok("lock", f"{sample.source}@{sample.v2}", "--files", "-o", str(lock))
    # reproduce on "another machine": no mirror root at all
    code, out, err = sample.run(
        "reproduce", str(lock), "--to", str(tmp_path / "work"), "--allow-ip", "all", root=tmp_path / "no-mirror-here"
    )
    assert code == 0, out + err
    assert not (tmp_path / "no-mirror-here").exists()
    ds = tmp_path / "work" / "dandi" / sample.id
    assert without_metadata(data_files(ds)) == sample.files[sample.v2]
    assert git(ds, "rev-parse", "HEAD") == sample.run.json("pin", f"{sample.source}@{sample.v2}")["commit"]
    assert "file list (9 files" in out and "reproduced 1 dataset(s)" in out
    # rerun: nothing to fetch, still verified
    code, out, err = sample.run(
        "reproduce", str(lock), "--to", str(tmp_path / "work"), "--json", root=tmp_path / "no-mirror-here"
    )
    assert code == 0 and json.loads(out)["datasets"][0]["present"] == 7


def test_reproduce_paths_are_relative_to_dir(sample: Sample, tmp_path: Path) -> None:
    lock = tmp_path / "data.lock"
    sample.run.ok("lock", f"{sample.source}@{sample.v1}", "-o", str(lock))
    code, out, err = sample.run(
        "reproduce", str(lock), f"dandi/{sample.id}/sub-02", "--to", str(tmp_path / "w"), "--allow-ip", "all"
    )
    assert code == 0, err
    ds = tmp_path / "w" / "dandi" / sample.id
    assert (ds / "sub-02/sub-02_ecephys.nwb").read_bytes() == sample.files[sample.v1]["sub-02/sub-02_ecephys.nwb"]
    assert not (ds / "sub-01/sub-01_ecephys.nwb").exists()
    assert (ds / ZARR / "0/0").read_bytes() == sample.files[sample.v1][f"{ZARR}/0/0"]  # the Zarr below sub-02 too
    code, _, err = sample.run("reproduce", str(lock), "dandi/000000/x", "--to", str(tmp_path / "w2"))
    assert code == 2 and "none of the lock's datasets" in err


def _tamper(lock: Path, dest: Path, old: str, new: str, count: int = 1) -> Path:
    text = lock.read_text()
    assert old in text
    dest.write_text(text.replace(old, new, count))
    return dest


def test_tampered_lock_fails_loudly(sample: Sample, tmp_path: Path) -> None:
    lock = tmp_path / "good.lock"
    sample.run.ok("lock", f"{sample.source}@{sample.v1}", "--files", "-o", str(lock))
    pin = sample.run.json("pin", f"{sample.source}@{sample.v1}")
    v2_commit = sample.run.json("pin", f"{sample.source}@{sample.v2}")["commit"]

    # a commit the dataset never had
    bad = _tamper(lock, tmp_path / "commit.lock", pin["commit"], "0" * 40)
    code, out, err = sample.run("reproduce", str(bad), "--to", str(tmp_path / "a"), "--allow-ip", "all")
    assert code == 1 and "REPRODUCTION FAILED" in err
    assert f"commit {'0' * 40} is not in" in out
    assert not (tmp_path / "a" / "dandi" / sample.id).exists()  # no clone left at some other state

    # another real commit (v2's) under v1's name: the file list gives it away
    bad = _tamper(lock, tmp_path / "other.lock", pin["commit"], v2_commit)
    code, out, err = sample.run("reproduce", str(bad), "--to", str(tmp_path / "b"), "--allow-ip", "all")
    assert code == 1
    assert "missing file: sub-02/sub-02_ecephys.nwb is in the lock, not in the dataset" in out
    assert "extra file: sub-03/sub-03_ecephys.nwb" in out and "changed file: sub-01/sub-01_ecephys.nwb" in out
    assert "file list differs" in out

    # a file dropped from the lock's list
    text = lock.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith('  ["sub-02/sub-02_ecephys.nwb"'))
    bad = _tamper(lock, tmp_path / "missing.lock", line + "\n", "")
    code, out, err = sample.run("reproduce", str(bad), "--to", str(tmp_path / "c"), "--allow-ip", "all")
    assert code == 1 and "extra file: sub-02/sub-02_ecephys.nwb is in the dataset, not in the lock" in out
    assert "does not match its own file-list-digest" in out

    # a file the dataset never had, added to the lock's list
    bad = _tamper(
        lock,
        tmp_path / "added.lock",
        "file-list = [\n",
        'file-list = [\n  ["sub-09/ghost.nwb", "SHA256E-s1--' + "a" * 64 + '.nwb"],\n',
    )
    code, out, _ = sample.run("reproduce", str(bad), "--to", str(tmp_path / "d"), "--allow-ip", "all")
    assert code == 1 and "missing file: sub-09/ghost.nwb is in the lock, not in the dataset" in out

    # only a digest (no file list): a changed digest still fails
    plain = tmp_path / "plain.lock"
    sample.run.ok("lock", f"{sample.source}@{sample.v1}", "-o", str(plain))
    digest = next(ln for ln in plain.read_text().splitlines() if ln.startswith("file-list-digest"))
    bad = _tamper(plain, tmp_path / "digest.lock", digest, 'file-list-digest = "sha256:' + "1" * 64 + '"')
    code, out, _ = sample.run("reproduce", str(bad), "--to", str(tmp_path / "e"), "--allow-ip", "all")
    assert code == 1 and "file list differs: the lock has 9 files" in out

    # broken lock files are refused before anything is cloned
    for text, why in [
        ("lock-version = 7\n", "lock-version 7 is not supported"),
        ("lock-version = 1\n", "names no [[dataset]]"),
        ("not toml [", "not valid TOML"),
    ]:
        (tmp_path / "broken.lock").write_text(text)
        code, _, err = sample.run("reproduce", str(tmp_path / "broken.lock"), "--to", str(tmp_path / "f"))
        assert code == 2 and why in err
    bad = _tamper(lock, tmp_path / "path.lock", f'path = "dandi/{sample.id}"', 'path = "../../etc"')
    code, _, err = sample.run("reproduce", str(bad), "--to", str(tmp_path / "g"))
    assert code == 2 and "relative path without '..'" in err


def test_lock_several_versions_of_one_source_is_refused(sample: Sample, tmp_path: Path) -> None:
    code, _, err = sample.run("lock", f"{sample.source}@{sample.v1}", f"{sample.source}@{sample.v2}")
    assert code == 2 and "named twice" in err


# -- diff ---------------------------------------------------------------------------
def test_diff_between_versions(sample: Sample) -> None:
    d = sample.run.json("diff", f"{sample.source}@{sample.v1}", f"{sample.source}@{sample.v2}")
    _v1, v2 = sample.files[sample.v1], sample.files[sample.v2]
    assert d["from"]["version"] == sample.v1 and d["to"]["version"] == sample.v2
    assert d["added"] == [
        {"path": "sub-03/sub-03_ecephys.nwb", "size": len(v2["sub-03/sub-03_ecephys.nwb"]), "key": d["added"][0]["key"]}
    ]
    assert [(f["path"], f["size"]) for f in d["removed"]] == [("sub-02/sub-02_ecephys.nwb", 70_001)]
    changed = {f["path"]: (f["old_size"], f["new_size"]) for f in d["changed"]}
    assert changed["sub-01/sub-01_ecephys.nwb"] == (300_000, 310_000)
    assert "README.md" not in changed
    assert d["summary"]["added"] == 1 and d["summary"]["removed"] == 1
    text = sample.run.ok("diff", f"{sample.source}@{sample.v2}", "@draft")
    assert f"{sample.v2}" in text and "1 added, 0 removed" in text
    assert "A  sub-04/sub-04_ecephys.nwb" in text and "19.5 KiB" in text
