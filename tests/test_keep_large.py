"""``keep`` of files larger than its read buffer and its write-out window, as a lab's recordings are.

Why: a large file is read into one reused buffer (:data:`neuromirror.keep.transfer.CHUNK`) and its
temp file is handed to the disk every :data:`neuromirror.store.directory.WRITEBACK` bytes while it
streams in; these tests make the file span many buffers and windows, with a tail that fills neither,
so that the bytes a clone reads back through git-annex, and the refusal of bytes that are wrong only
near their end, are those of that path.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from conftest import clone, git
from neuromirror.demo import deterministic_bytes
from neuromirror.keep.transfer import CHUNK, Transfer
from neuromirror.store.directory import TMP_DIR, WRITEBACK, DirectoryStore
from test_keep import STORE_NAME, keep_json, key_of, lose_blobs, make_dandiset, remote_name_of, store_keys

LARGE = 2 * WRITEBACK + 3 * CHUNK + 17  # several windows and buffers, and a tail of neither


def test_a_large_file_is_kept_whole_and_a_clone_gets_it_from_the_store(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/large.nwb": LARGE, "sub-02/small.nwb": 1000})
    store = tmp_path / "store"
    code, report, err = keep_json(d, store, d.spec)
    assert code == 0, err
    assert report["transferred"] == {"files": 2, "bytes": LARGE + 1000} and report["ok"]
    key = key_of(d.ds, "sub-01/large.nwb", d.version)
    assert key in store_keys(store)
    assert not any((store / TMP_DIR).iterdir())  # no temp file left behind

    # the archive loses the bytes; a plain clone gets them from the store, verified by git-annex itself
    lose_blobs(d, list(d.files))
    work = clone(d.ds, tmp_path / "clone")
    git(work, "checkout", "-q", d.version)
    proc = subprocess.run(["git", "annex", "get", "sub-01/large.nwb"], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        hashlib.sha256((work / "sub-01/large.nwb").read_bytes()).digest()
        == hashlib.sha256(d.files["sub-01/large.nwb"]).digest()
    )
    assert STORE_NAME in git(work, "annex", "whereis", "sub-01/large.nwb")
    fsck = subprocess.run(
        ["git", "annex", "fsck", "--from", remote_name_of(store), "sub-01/large.nwb"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_bytes_wrong_only_near_their_end_are_refused_and_nothing_is_placed(s3, tmp_path: Path) -> None:  # noqa: ANN001
    bucket = "keep-large-wrong"
    s3.create_bucket(bucket)
    good = deterministic_bytes("keep-large", LARGE)
    served = good[:-5] + bytes(b ^ 0xFF for b in good[-5:])  # the last buffer differs, nothing before it
    version = s3.put(bucket, "blob", served)
    url = s3.url(bucket, "blob", version)
    key = f"SHA256E-s{LARGE}--{hashlib.sha256(good).hexdigest()}.nwb"
    store = DirectoryStore(tmp_path / "store")
    transfer = Transfer(store)
    try:
        outcome = transfer(key, LARGE, [url])
        assert not outcome.ok and "wrong bytes from URL" in outcome.why and "sha256" in outcome.why
        assert not store.has(key) and not store.key_path(key).exists()
        assert not any((store.path / TMP_DIR).iterdir())  # the temp file is gone with the refusal

        # the same URL serving the key's bytes: kept, and the store's copy is them
        s3.put(bucket, "blob", good)
        outcome = transfer(key, LARGE, [s3.url(bucket, "blob")])
        assert outcome.ok and outcome.placed, outcome.why
        assert store.key_path(key).read_bytes() == good
    finally:
        transfer.close()
