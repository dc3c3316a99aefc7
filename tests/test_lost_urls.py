"""A key whose archive URLs are gone is marked on the git-annex branch: a plain clone goes straight to the store.

Why: git-annex tries a key's web URLs before a store that costs more (an S3 store: 300; a directory store,
150, is read first anyway) and DataLad retries each dead URL, about 1.4 s a file; a 10^4-file version whose
archive bytes are gone then takes hours, and a lost file no store holds should fail at once.
``verify --content`` finds every URL of the key answering 404 (every S3 version deleted, as garbage
collection does: really deleted from the moto stand-in) and records ``web: 0`` in the key's
location log, git-annex's own plumbing. The test reads the stand-ins' request logs: a fresh
``datalad clone`` + ``datalad get`` asks the archive nothing for that key and gets it from the
store, while a key whose URL still serves comes from the archive as before.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import clone, git
from helpers.keep import Dandiset, key_of, lose_blobs, make_dandiset
from neuromirror.annex.keys import hashdir_lower

A, B, C = "sub-01/lost.nwb", "sub-02/served.nwb", "sub-03/unkept.nwb"
WEB = "00000000-0000-0000-0000-000000000001"


def verify(d: Dandiset, *args: str) -> tuple[int, dict, str]:
    code, out, err = d.run("verify", d.spec, "--json", *args)
    return code, json.loads(out), err


def log_of(d: Dandiset, key: str, suffix: str = ".log") -> str:
    return git(d.ds, "show", f"git-annex:{hashdir_lower(key)}{key}{suffix}")


def test_lost_url_marked_and_a_clone_goes_straight_to_the_store(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {A: 20_000, B: 30_001, C: 10_000})
    store = tmp_path / "store"
    # B is left unkept: a kept key comes from a directory store first whether or not the archive serves it
    code, out, err = d.run("keep", d.spec, "--to", str(store), "--exclude", C, "--exclude", B)
    assert code == 0, out + err
    ka, kb, kc = (key_of(d.ds, p, d.version) for p in (A, B, C))
    urls_a = log_of(d, ka, ".log.web")
    b_logs = (log_of(d, kb), log_of(d, kb, ".log.web"))

    # every URL serves: nothing is marked, the branch does not move
    branch = git(d.ds, "rev-parse", "git-annex")
    code, rep, err = verify(d, "--content")
    assert code == 0 and rep["urls_gone"] == {"marked": [], "restored": []}, err
    assert git(d.ds, "rev-parse", "git-annex") == branch

    lose_blobs(d, [A, C])  # garbage collection: every S3 version of A's and C's blobs gone
    code, rep, err = verify(d, "--content")
    assert code == 1 and rep["problem_counts"] == {"wrong-bytes": 0, "lost": 1, "dead-url": 1}, err
    assert [(m["kind"], m["path"]) for m in rep["mismatches"]] == [("lost", C)]  # A verifies from the store
    assert rep["urls_gone"] == {"marked": sorted([ka, kc]), "restored": []}
    assert any("marked on the git-annex branch as no longer on the web" in n for n in rep["notes"])
    assert f"0 {WEB}" in log_of(d, ka)  # git-annex's location log: the web no longer has A
    assert log_of(d, ka, ".log.web") == urls_a  # the URLs where the bytes were stay recorded
    assert (log_of(d, kb), log_of(d, kb, ".log.web")) == b_logs  # no other key changes
    whereis = subprocess.run(
        ["git", "annex", "whereis", "--json", "--key", ka], cwd=d.ds, capture_output=True, text=True, check=False
    ).stdout
    assert [w["uuid"] for w in json.loads(whereis)["whereis"]] != [] and WEB not in whereis
    # a rerun finds the same and writes nothing; without --content the mark alone names the lost file
    branch = git(d.ds, "rev-parse", "git-annex")
    code, rep, err = verify(d, "--content")
    assert code == 1 and rep["urls_gone"] == {"marked": [], "restored": []}, err
    assert git(d.ds, "rev-parse", "git-annex") == branch
    code, out, _ = d.run("verify", d.spec)
    assert code == 1 and f"MISMATCH lost: {C} (10000 bytes): its archive URLs were found gone" in out
    assert f": {A}" not in out and "no-location" not in out

    # a plain DataLad user: no request for A reaches the archive, B still comes from it
    work = clone(d.ds, tmp_path / "clone")
    git(work, "checkout", "-q", d.version)
    s3_log = dandi_archive.s3.log_requests()
    dandi_archive.reset_request_log()
    try:
        proc = subprocess.run(["datalad", "get", A, B], cwd=work, capture_output=True, text=True, check=False)
        lost = subprocess.run(["datalad", "get", C], cwd=work, capture_output=True, text=True, check=False)
    finally:
        dandi_archive.s3.log_requests(False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lost.returncode != 0 and not (work / C).exists()  # lost: said at once, no retries
    assert (work / A).read_bytes() == d.files[A] and (work / B).read_bytes() == d.files[B]
    blob_a = dandi_archive.asset_at(d.id, A, d.version).blob.key
    blob_b = dandi_archive.asset_at(d.id, B, d.version).blob.key
    blob_c = dandi_archive.asset_at(d.id, C, d.version).blob.key
    asset_a = dandi_archive.asset_at(d.id, A, d.version).asset_id
    assert not [r for r in s3_log if blob_a in r[1] or blob_c in r[1]], s3_log
    assert not [r for r in dandi_archive.request_log if asset_a in r[1]], dandi_archive.request_log
    assert [r for r in s3_log if r[0] == "GET" and blob_b in r[1]], s3_log  # B from the archive
    assert "neuromirror-store" in git(work, "annex", "whereis", A)

    # the archive serves A's bytes again (uploaded anew): the next verify undoes the mark
    blob = dandi_archive.asset_at(d.id, A, d.version).blob
    dandi_archive.s3.put(blob.bucket, blob.key, d.files[A])
    code, rep, err = verify(d, "--content")
    assert code == 1 and rep["urls_gone"] == {"marked": [], "restored": [ka]}, err
    assert (
        WEB
        in subprocess.run(
            ["git", "annex", "whereis", "--key", ka], cwd=d.ds, capture_output=True, text=True, check=False
        ).stdout
    )
