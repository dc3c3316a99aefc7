"""A repository's objects read in this process (neuromirror.annex.objects) answer what ``git cat-file --batch``
answers: loose objects, packs with both delta kinds, alternates; and git itself is asked where the files
alone cannot say (a pack written later, replace refs, a SHA-256 repository)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from neuromirror.annex import objects as objects_mod
from neuromirror.util import gitutil


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def _history(repo: Path, commits: int = 6) -> None:
    """Commits whose files change a little each time (so that a repack makes deltas), in a subdirectory too."""
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q")
    for n in range(commits):
        (repo / "sub" / "deeper").mkdir(parents=True, exist_ok=True)
        (repo / "log.txt").write_text("".join(f"line {i} of a file that grows\n" for i in range(40 + n * 5)))
        (repo / "sub" / "deeper" / f"f{n}").write_bytes(os.urandom(100) * 3)
        (repo / "sub" / "same").write_text("x" * 5000 + str(n))
        os.symlink(f"../.git/annex/objects/KEY{n}", repo / f"link{n}")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"commit {n}")


def _specs(repo: Path) -> list[str]:
    head = git(repo, "rev-parse", "HEAD")
    every = git(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split()
    return every + [
        f"{head}^{{tree}}",
        f"{head}:log.txt",
        f"{head}:sub/deeper",
        f"{head}:sub/same",
        f"{head}:",
        f"{head}:no/such/path",
        f"{head}:log.txt/below-a-file",
        "0" * 40,  # not found here: git says it is missing
        "HEAD",  # a name, not an id: git says
    ]


def _same_as_git(repo: Path) -> objects_mod.Objects:
    specs = _specs(repo)
    with objects_mod.Objects(repo) as objects:
        mine = objects.get_few(specs)
        asked = objects._cat
    assert mine == gitutil.cat_buffered(repo, specs)
    assert mine[specs.index("HEAD")] is not None and mine[-2] is None
    return asked  # type: ignore[return-value]


def _pack_kinds(repo: Path) -> set[int]:
    """The object types at every offset of the repository's packs, read from their headers."""
    kinds: set[int] = set()
    for idx in (repo / ".git" / "objects" / "pack").glob("*.idx"):
        out = subprocess.run(["git", "verify-pack", "-v", str(idx)], capture_output=True, text=True, check=True).stdout
        pack = objects_mod._Pack.open(idx)
        assert pack is not None
        try:
            for line in out.splitlines():
                parts = line.split()
                if len(parts) >= 5 and len(parts[0]) == 40:
                    head = pack.pack[int(parts[4]) : int(parts[4]) + 1]
                    kinds.add((head[0] >> 4) & 7)
        finally:
            pack.close()
    return kinds


def test_loose_objects_are_read_as_git_reads_them(tmp_path: Path) -> None:
    repo = tmp_path / "loose"
    _history(repo)
    assert not list((repo / ".git" / "objects" / "pack").glob("*.pack"))
    _same_as_git(repo)


@pytest.mark.parametrize("offsets", ["true", "false"])
def test_packs_with_either_delta_kind_are_read_as_git_reads_them(tmp_path: Path, offsets: str) -> None:
    repo = tmp_path / "packed"
    _history(repo, commits=10)
    git(repo, "-c", f"repack.useDeltaBaseOffset={offsets}", "repack", "-adfq", "--depth=5")
    kinds = _pack_kinds(repo)
    assert (objects_mod.OFS_DELTA if offsets == "true" else objects_mod.REF_DELTA) in kinds, kinds
    assert not list((repo / ".git" / "objects").glob("??/*"))
    asked = _same_as_git(repo)
    assert asked is not None  # only "HEAD" needed git: every id and path was answered here
    with objects_mod.Objects(repo) as objects:
        objects.get_few(_specs(repo)[:-2])  # but the missing id and "HEAD"
        assert objects._cat is None


def test_alternates_are_followed(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    _history(origin)
    git(origin, "gc", "-q")
    shared = tmp_path / "shared"
    subprocess.run(["git", "clone", "-q", "--shared", str(origin), str(shared)], check=True)
    assert (shared / ".git" / "objects" / "info" / "alternates").exists()
    _same_as_git(shared)
    with objects_mod.Objects(shared) as objects:
        head = git(shared, "rev-parse", "HEAD")
        assert objects.get(f"{head}:log.txt") == (origin / "log.txt").read_bytes()
        assert objects._cat is None


def test_a_pack_written_after_the_packs_were_listed_is_asked_of_git(tmp_path: Path) -> None:
    repo = tmp_path / "later"
    _history(repo, commits=2)
    git(repo, "gc", "-q")
    with objects_mod.Objects(repo) as objects:
        first = git(repo, "rev-parse", "HEAD")
        assert objects.get(f"{first}:log.txt") is not None  # the packs are listed now
        (repo / "new.txt").write_text("written after\n")
        git(repo, "add", "new.txt")
        git(repo, "commit", "-q", "-m", "later")
        git(repo, "repack", "-q")  # a new pack beside the listed one
        head = git(repo, "rev-parse", "HEAD")
        assert objects.get(f"{head}:new.txt") == b"written after\n"


def test_replaced_objects_and_sha256_repositories_are_left_to_git(tmp_path: Path) -> None:
    repo = tmp_path / "replaced"
    _history(repo, commits=2)
    head = git(repo, "rev-parse", "HEAD")
    blob = git(repo, "rev-parse", f"{head}:log.txt")
    other = subprocess.run(
        ["git", "-C", str(repo), "hash-object", "-w", "--stdin"], input="replaced\n", capture_output=True, text=True
    ).stdout.strip()
    git(repo, "replace", blob, other)
    with objects_mod.Objects(repo) as objects:
        assert objects.get(blob) == b"replaced\n"  # what git says, not what the pack holds
    wide = tmp_path / "sha256"
    wide.mkdir()
    git(wide, "init", "-q", "--object-format=sha256")
    (wide / "a").write_text("a\n")
    git(wide, "add", "a")
    git(wide, "commit", "-q", "-m", "a")
    head = git(wide, "rev-parse", "HEAD")
    with objects_mod.Objects(wide) as objects:
        assert objects.get(f"{head}:a") == b"a\n"
        assert objects._cat is not None


def test_apply_delta_copies_and_inserts() -> None:
    base = bytes(range(256)) * 300  # 76,800 bytes: a copy of 0x10000 is written as length 0
    # source size, target size (varints), copy(offset 0, length 0x10000), insert b"xyz", copy(offset 5, 3)
    target = base[:0x10000] + b"xyz" + base[5:8]
    delta = _varint(len(base)) + _varint(len(target)) + bytes([0x80]) + bytes([3]) + b"xyz" + bytes([0x91, 5, 3])
    assert objects_mod.apply_delta(base, delta) == target
    with pytest.raises(Exception, match="base of"):
        objects_mod.apply_delta(base[:-1], delta)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_the_buffered_batch_of_verify_stores_reads_what_cat_file_reads(tmp_path: Path) -> None:
    """What git is asked in large batches (a Zarr's 10^4 symlinks where annex/objects.py cannot answer, a
    dataset's URL logs) goes through a ``cat-file --batch --buffer`` of its own: the same objects, in order,
    a missing one None."""
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    for i in range(300):
        (repo / f"f{i}").write_bytes(bytes([i % 256]) * (i * 37))
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "files")
    specs = [f"HEAD:f{i}" for i in range(300)] + ["HEAD:nothing-here"]
    with gitutil.CatFile(repo) as cat:
        expected = list(cat.get_many(specs))
        assert cat.get_few(specs[:5] + specs[-1:]) == expected[:5] + expected[-1:]  # the small batches' way
    assert gitutil.cat_buffered(repo, specs) == expected and expected[-1] is None and expected[7] == bytes([7]) * 259
