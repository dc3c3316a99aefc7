"""``keep`` of files larger than its read buffer and its write-out window, as a lab's recordings are.

Why: a large file is read into one reused buffer (:data:`neuromirror.store.transfer.CHUNK`) and its
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
from helpers.keep import STORE_NAME, keep_json, key_of, lose_blobs, make_dandiset, remote_name_of, store_keys
from neuromirror.demo import deterministic_bytes
from neuromirror.store.directory import TMP_DIR, WRITEBACK, DirectoryStore
from neuromirror.store.transfer import CHUNK, Transfer

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


class _StallingArchive:
    """An archive on loopback that sends a large body's headers and first bytes, then stops answering."""

    def __init__(self, data: bytes, sent: int):
        import http.server
        import threading

        release = self.release = threading.Event()
        self.served = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:sent])
                self.wfile.flush()
                outer.served.set()
                release.wait(60)  # stalled: neither more bytes nor a close

            def log_message(self, *args: object) -> None:
                pass

        outer = self
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/blob"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_stalled_archive_fails_the_url_and_the_next_url_serves(s3, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from neuromirror.store import transfer as transfer_module

    monkeypatch.setattr(transfer_module, "TIMEOUT", (5, 1))  # the read timeout, shortened for the test
    good = deterministic_bytes("keep-large-stall", LARGE)
    key = f"SHA256E-s{LARGE}--{hashlib.sha256(good).hexdigest()}.nwb"
    bucket = "keep-large-stall"
    s3.create_bucket(bucket)
    serving = s3.url(bucket, "blob", s3.put(bucket, "blob", good))
    stalled = _StallingArchive(good, 3 * CHUNK)
    store = DirectoryStore(tmp_path / "store")
    transfer = Transfer(store)
    try:
        outcome = transfer(key, LARGE, [stalled.url])
        assert stalled.served.is_set()
        assert not outcome.ok and "reading failed" in outcome.why and "timed out" in outcome.why, outcome.why
        assert "writing to the store" not in outcome.why  # the archive's failure, not the store's
        assert not store.key_path(key).exists() and not any((store.path / TMP_DIR).iterdir())

        outcome = transfer(key, LARGE, [stalled.url, serving])  # the pinned URL stalls, the next one serves
        assert outcome.ok and outcome.origin == serving, outcome.why
        assert store.key_path(key).read_bytes() == good
    finally:
        transfer.close()
        stalled.close()
