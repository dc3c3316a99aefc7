"""A pack written by neuromirror itself, with its own index (annex.pack.MemoryPack), read back by git."""

from __future__ import annotations

import subprocess
from pathlib import Path

from neuromirror.annex.pack import BLOB, COMMIT, TREE, MemoryPack, object_id, tree_bytes


def git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True).stdout


def committed(repo: Path, pack: MemoryPack, root: bytes) -> bytes:
    """A commit of ``root`` added to ``pack``, the pack written into ``repo`` and ``main`` set to it;
    git's strictest fsck finds nothing to say."""
    body = b"tree %s\nauthor a <a@b> 0 +0000\ncommitter a <a@b> 0 +0000\n\nm\n" % root.hex().encode()
    commit = pack.add(COMMIT, body)
    pack.write(repo / ".git")
    git(repo, "update-ref", "refs/heads/main", commit.hex())
    fsck = subprocess.run(["git", "-C", str(repo), "fsck", "--strict", "--full"], capture_output=True, text=True)
    assert fsck.returncode == 0 and not fsck.stderr.strip(), fsck.stderr
    return commit


def test_a_pack_written_here_is_read_by_git_object_for_object(tmp_path: Path) -> None:
    """Small objects stored, large ones deflated, each written once however often it is added; git's
    fsck, cat-file and verify-pack read the pack and the index as git would have written them."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    pack = MemoryPack()
    log = b"1700000000s 1 00000000-0000-0000-0000-000000000001\n"
    large = bytes(range(256)) * 40  # 10 KiB: deflated
    blobs = {"a.log": log, "b.log": log, "c.bin": large, "d.txt": b""}
    ids = {name: pack.add(BLOB, data) for name, data in blobs.items()}
    assert pack.add(BLOB, log) == ids["a.log"] == ids["b.log"] == object_id(BLOB, log)
    sub = pack.add(TREE, tree_bytes({n.encode(): (b"100644", oid) for n, oid in ids.items()}))
    root = pack.add(TREE, tree_bytes({b"sub": (b"40000", sub), b"sub.log": (b"100644", ids["a.log"])}))
    commit = committed(repo, pack, root)
    for name, data in blobs.items():
        assert git(repo, "cat-file", "blob", f"main:sub/{name}") == data
    # "sub/" sorts after "sub.log" in git's order: the tree's id is git's own
    assert git(repo, "rev-parse", "main^{tree}").decode().strip() == root.hex()
    assert git(repo, "ls-tree", "--name-only", "main").decode().split() == ["sub.log", "sub"]
    (idx,) = (repo / ".git" / "objects" / "pack").glob("pack-*.idx")
    listed = git(repo, "verify-pack", "-v", str(idx)).decode().splitlines()
    objects = [line.split()[0] for line in listed if len(line.split()) >= 5 and len(line.split()[0]) == 40]
    # a.log and b.log are one blob: 3 blobs under 4 names, 2 trees, 1 commit, each once
    assert sorted(objects) == sorted({*(oid.hex() for oid in ids.values()), sub.hex(), root.hex(), commit.hex()})
    assert len(objects) == 6


def test_trees_made_from_paths_are_in_gits_order(tmp_path: Path) -> None:
    """A directory sorts as "name/": "a-b/" and "a.b" before "a/", "a0" after it (git fsck --strict checks)."""
    from neuromirror.dataset.gitobjects import FILE, ObjectPack

    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    pack = ObjectPack()
    paths = ["a/x", "a.b", "a-b/y", "a0", "é/z", "a/b/c"]
    root = pack.tree_of({p: (FILE, pack.add(BLOB, p.encode())) for p in paths})
    committed(repo, pack, root)
    assert git(repo, "ls-tree", "--name-only", "main").decode().split() == ["a-b", "a.b", "a", "a0", '"\\303\\251"']
    assert sorted(git(repo, "ls-tree", "-r", "--name-only", "-z", "main").decode().split("\0")[:-1]) == sorted(paths)
