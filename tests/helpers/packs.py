"""The packed-store tests' helpers (tests/test_pack_*.py): a store's files read as a person would (every file under
the directory, every object under the prefix), keys written straight into a ``PackStore``, a byte flipped in a
pack, a clone's view of its special remotes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Iterable

from conftest import clone, git
from helpers.keep import sha256


def held(url: str, s3=None) -> dict[str, bytes]:  # noqa: ANN001
    """Every file (or object) a packed store at ``url`` holds, by its name under the store."""
    kind, _, where = url.partition("://")
    if kind != "pack+s3":
        base = Path(where)
        return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}
    bucket, _, prefix = where.partition("/")
    prefix, client = prefix.rstrip("/") + "/", s3.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"][len(prefix) :]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def indexed(files: dict[str, bytes] | Path) -> dict[str, tuple[str, int, int]]:
    """key -> (pack, offset, length), read from the store's own index files (``held`` or a directory's path)."""
    if isinstance(files, Path):
        files = held(f"pack+file://{files}")
    out = {}
    for name, body in files.items():
        if name.startswith("index/"):
            doc = json.loads(body)
            out.update({key: (doc["pack"], offset, length) for key, offset, length, _ in doc["keys"]})
    return out


def keys_by_pack(store: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for key, (pack, _, _) in indexed(store).items():
        out.setdefault(pack, set()).add(key)
    return out


def blobs(n: int, start: int = 0) -> dict[str, bytes]:
    """``n`` small objects under their git-annex keys."""
    out = {}
    for i in range(start, start + n):
        data = f"object {i} ".encode() * (50 + i % 7)
        out[f"MD5E-s{len(data)}--{hashlib.md5(data).hexdigest()}.bin"] = data
    return out


def put(store, objects: dict[str, bytes]) -> None:  # noqa: ANN001
    """Each key received and committed as keep does, then the store synced (its packs sealed and indexed)."""
    for key, data in objects.items():
        with store.receive(key) as inc:
            inc.write(data)
            assert inc.commit()
    store.sync()


def flip(path: Path, at: int) -> None:
    """Rot: the byte at ``at`` of a (read-only) pack flipped in place."""
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def restores(log: list[tuple[str, str]]) -> list[str]:
    """The RestoreObject requests (thaws asked for) in a stand-in's request log."""
    return [p.split("?")[0] for m, p in log if m == "POST" and "restore" in p]


def cloned(d, where: Path) -> Path:  # noqa: ANN001
    """A plain clone of a mirrored dandiset (``helpers.keep.Dandiset``), its published version checked out."""
    work = clone(d.ds, where)
    git(work, "checkout", "-q", d.version)
    return work


def holds(work: Path, files: dict[str, bytes], paths: Iterable[str] | None = None) -> None:
    """The clone's files (or ``paths`` of them) hold exactly the archive's bytes."""
    for path in files if paths is None else paths:
        assert sha256((work / path).read_bytes()) == sha256(files[path]), path


def enabled_uuids(work: Path) -> set[str]:
    """The special remotes a clone enabled, by their git-annex UUIDs."""
    out = subprocess.run(
        ["git", "config", "--get-regexp", r"^remote\..*\.annex-uuid$"], cwd=work, capture_output=True, text=True
    ).stdout
    return {line.split()[1] for line in out.splitlines()}


def run_in(work: Path, *cmd: str) -> subprocess.CompletedProcess:
    """A command run in a clone as a person would, its output kept."""
    return subprocess.run(list(cmd), cwd=work, capture_output=True, text=True)


def annex_get(work: Path, *args: str) -> subprocess.CompletedProcess:
    """``git annex get`` as ``datalad get`` runs it (``annex.retry=3``), with git-annex's debug log on stderr."""
    return run_in(work, "git", "-c", "annex.retry=3", "annex", "get", "--debug", *args)
