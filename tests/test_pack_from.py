"""A packed store as a lab names and checks it, and as the source of a move: ``NEUROMIRROR_STORE=pack+file://``,
``verify --kept`` (and ``--content``: the copies hashed out of the packs), and ``keep --from`` the packed store
into a directory store and into another packed store after the archive lost every byte, then a plain clone
reading the new store alone.

Why: a packed store must be a store like any other wherever one is named or read, including as the store a
lab moves its backup *out of* (to a new tape pool, a new bucket).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers.keep import _flip_a_byte, clone_gets_every_byte, lose_blobs, make_dandiset


def test_a_packed_store_named_by_the_environment_is_kept_and_verified_kept(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 21_000, "sub-02/b.nwb": 4_321})
    store = tmp_path / "packed"
    url = f"pack+file://{store}"
    monkeypatch.setenv("NEUROMIRROR_STORE", url)
    code, out, err = d.run("keep", d.spec, "--pack-size", "1M", "--json")  # no --to: the environment's store
    assert code == 0, out + err
    report = json.loads(out)
    assert report["store"]["kind"] == "pack" and report["store"]["url"] == url and report["versions"][0]["kept"] == 2
    assert json.loads((store / ".neuromirror-store.json").read_text())["pack_size"] == 1_000_000

    code, out, err = d.run("verify", d.spec, "--kept")  # the environment's store again
    assert code == 0, out + err
    code, out, err = d.run("verify", d.spec, "--kept", "--content", "--store", url)
    assert code == 0, out + err

    # a byte flipped inside the pack: the copies hashed out of the packs name the file it breaks
    (pack,) = (store / "packs").glob("*.pack")
    _flip_a_byte(pack)
    code, out, err = d.run("verify", d.spec, "--kept", "--content", "--store", url)
    assert code == 1 and "MISMATCH content" in out, out + err
    assert ("sub-01/a.nwb" in out) != ("sub-02/b.nwb" in out), out  # the one key the flip lies in


@pytest.mark.parametrize("into", ["directory", "pack"])
def test_keep_from_a_packed_store_moves_its_content_and_asks_the_archive_nothing(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
    into: str,
) -> None:
    sizes = {"x/a.nwb": 13_000, "x/b.nwb": 26_000, "y/c.nwb": 39_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    packed = f"pack+file://{tmp_path / 'old-packed'}"
    assert d.run("keep", d.spec, "--to", packed)[0] == 0
    lose_blobs(d, list(sizes))  # every S3 version deleted: only the packed store has the bytes
    new = str(tmp_path / "new-store") if into == "directory" else f"pack+file://{tmp_path / 'new-packed'}"

    log = dandi_archive.s3.log_requests()
    code, out, err = d.run("keep", d.spec, "--to", new, "--from", packed, "--json")
    dandi_archive.s3.log_requests(False)
    assert code == 0, out + err
    assert json.loads(out)["versions"][0]["kept"] == 3
    assert log == []  # not one request to the archive's bucket

    # the old packed store retired: a plain clone reads the new store by itself
    shutil.rmtree(tmp_path / "old-packed")
    clone_gets_every_byte(d, tmp_path / "clone")
    code, out, err = d.run("verify", d.spec, "--kept", "--content", "--store", new)
    assert code == 0, out + err
