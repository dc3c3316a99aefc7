"""A lab's mirror as compute nodes see it, and an index that went bad: every command that reads works on a
read-only bind mount of a real mirror (its index opened read-only), each that must write says so in one line
before any work; random bytes, a truncation or an emptied file written over a real index are told apart from
"not mirrored", every command says to run ``reindex``, and ``reindex`` moves the bad file aside and rebuilds.

Tried as a user would, as processes (``python -m neuromirror``): on landed main each read here failed with
"unable to open database file" on the read-only mount, and a damaged index blocked ``reindex`` too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import requests

from helpers.mounts import read_only_bind
from helpers.read import view_server
from helpers.retrieve import Sample, build_sample, git
from helpers.service import neuromirror


@pytest.fixture(scope="module")
def sample(dandi_archive, tmp_path_factory) -> Sample:  # noqa: ANN001
    """Two published versions and a draft, mirrored."""
    return build_sample(dandi_archive, tmp_path_factory.mktemp("read-only") / "mirror", name="read-only sample")


@pytest.fixture(scope="module")
def read_only(sample: Sample, tmp_path_factory) -> Iterator[Path]:  # noqa: ANN001
    """The mirror through a read-only bind mount (needs the right to mount: skipped with the reason otherwise)."""
    with read_only_bind(sample.root, tmp_path_factory.mktemp("mount") / "mirror") as where:
        yield where


def one_line(p: subprocess.CompletedProcess) -> str:
    """The one line a refused command prints: non-zero exit, no traceback, nothing on stdout."""
    lines = p.stderr.strip().splitlines()
    assert p.returncode not in (0, None) and len(lines) == 1 and "Traceback" not in p.stderr, (p.returncode, p.stderr)
    assert p.stdout.strip() == "", p.stdout
    return lines[0]


#: what reads, with {s} the source, {v1}/{v2} its published versions, {out} a writable scratch folder;
#: "same": its output on the read-only mount is its output on the writable root (paths aside)
READS = [
    ("versions", ["versions", "{s}"], True),
    ("pin", ["pin", "{s}@{v1}", "--json"], True),
    ("diff", ["diff", "{s}@{v1}", "{s}@{v2}"], True),
    ("cite", ["cite", "{s}@{v1}"], True),
    ("lock", ["lock", "{s}@{v1}", "-o", "{out}/lock.json"], False),
    ("urls", ["urls", "{s}@{v2}"], True),
    ("urls --check", ["urls", "{s}@{v2}", "--check"], True),
    ("search", ["search", "--path", "*.nwb", "--source", "{s}"], True),
    ("status", ["status", "{s}"], False),
    ("status --copies", ["status", "--copies", "{s}"], True),
    ("status --backup", ["status", "--backup", "{s}"], True),
    ("audit", ["audit", "{s}"], True),
    ("changes", ["changes", "{s}", "--since", "2000-01-01"], True),
    ("get --to elsewhere", ["get", "{s}@{v1}", "--to", "{out}/got", "--allow-ip", "all", "-q"], False),
    ("verify", ["verify", "{s}", "--all-versions"], True),
    ("verify --content", ["verify", "{s}", "--content", "--allow-ip", "all", "-q"], True),
]


def _args(template: list[str], sample: Sample, out: Path) -> list[str]:
    return [a.format(s=sample.source, v1=sample.v1, v2=sample.v2, out=out) for a in template]


@pytest.mark.parametrize("name,template,same", READS, ids=[r[0] for r in READS])
def test_every_command_that_reads_works_on_a_read_only_mount(
    sample: Sample, read_only: Path, tmp_path: Path, name: str, template: list[str], same: bool
) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "r").mkdir()
    writable = neuromirror(sample.root, *_args(template, sample, tmp_path / "w"))
    assert writable.returncode == 0, writable.stderr
    got = neuromirror(read_only, *_args(template, sample, tmp_path / "r"))
    assert got.returncode == 0 and "Traceback" not in got.stderr, got.stderr
    assert "unable to open" not in got.stderr and "read-only" not in got.stderr, got.stderr
    if same:
        assert got.stdout.replace(str(read_only), str(sample.root)) == writable.stdout
    if name == "get --to elsewhere":
        for path, data in sample.files[sample.v1].items():
            assert (tmp_path / "r" / "got" / path).read_bytes() == data, path
    if name == "lock":

        def lock(where: str) -> list[str]:  # TOML, whatever its name; when it was written aside
            text = (tmp_path / where / "lock.json").read_text().replace(str(read_only), str(sample.root))
            return [x for x in text.splitlines() if not x.startswith("created = ")]

        assert lock("r") == lock("w")


def test_the_view_serves_a_read_only_mount(sample: Sample, read_only: Path) -> None:
    with view_server(read_only) as base:
        listing = requests.get(f"{base}dandisets/", timeout=30)
        assert listing.status_code == 200 and sample.id in listing.text
        path = "sub-02/sub-02 notes (raw).bin"
        r = requests.get(f"{base}dav/dandi/{sample.id}/{sample.v1}/{path}", timeout=30)
        assert r.status_code == 200 and r.content == sample.files[sample.v1][path]


#: what must write: each one line naming the read-only mirror, before any work
WRITES = [
    (["sync", "{s}"], "sync writes to it"),
    (["keep", "{s}", "--to", "{out}/store"], "keep writes to it"),
    (["forget", "{s}"], "forget writes to it"),
    (["repair", "{s}"], "repair writes to it"),
    (["verify", "--stores"], "checking the stores' copies writes to it"),
    (["maintain"], "maintain writes to it"),
    (["publish", "{s}", "--to", "{out}/published"], "publish writes to it"),
    (["reindex"], "reindex writes to it: name an index on a writable disk"),
    (["reindex", "--prune"], "pruning the index writes to it"),
    (["restore", "--drill", "{s}", "--to", "{out}/drill"], "a restore drill writes to it"),
]


@pytest.mark.parametrize("template,says", WRITES, ids=[" ".join(w[0][:2]) for w in WRITES])
def test_a_command_that_must_write_says_the_mirror_is_read_only_in_one_line(
    sample: Sample, read_only: Path, tmp_path: Path, template: list[str], says: str
) -> None:
    before = neuromirror(sample.root, "versions", sample.source, "--json").stdout
    line = one_line(neuromirror(read_only, *_args(template, sample, tmp_path)))
    assert "read-only here (read-only file system)" in line and says in line, line
    assert str(read_only) in line, line  # which mirror, as the user named it
    assert not any(tmp_path.iterdir()), list(tmp_path.iterdir())  # nothing made before the refusal
    assert git(sample.root, "status", "--porcelain") == ""
    assert git(sample.root / "dandi" / sample.id, "status", "--porcelain") == ""
    assert neuromirror(sample.root, "versions", sample.source, "--json").stdout == before


def test_reindex_into_an_index_on_a_writable_disk_then_read_with_it(
    sample: Sample, read_only: Path, tmp_path: Path
) -> None:
    """Where the index can go instead: ``--index`` on a writable disk, rebuilt from the read-only datasets."""
    index = tmp_path / "index.sqlite"
    done = neuromirror(read_only, "--index", str(index), "reindex")
    assert done.returncode == 0 and f"reindexed 1 sources into {index}" in done.stdout, done.stderr
    got = neuromirror(read_only, "--index", str(index), "versions", sample.source, "--json")
    assert got.returncode == 0, got.stderr
    want = json.loads(neuromirror(sample.root, "versions", sample.source, "--json").stdout)
    assert [(v["version"], v["commit"]) for v in json.loads(got.stdout)] == [(v["version"], v["commit"]) for v in want]


# ------------------------------------------------------------------------------------------- a damaged index


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _random(p: Path) -> None:
    import os

    p.write_bytes(os.urandom(p.stat().st_size))


def _truncated(p: Path) -> None:
    with p.open("r+b") as fh:
        fh.truncate(p.stat().st_size // 3)


def _overwritten_inside(p: Path) -> None:
    import os

    with p.open("r+b") as fh:  # the header stays: pages past the first hold random bytes
        fh.seek(4096)
        fh.write(os.urandom(p.stat().st_size - 8192))


DAMAGE = [("empty", _empty), ("random bytes", _random), ("truncated", _truncated), ("overwritten", _overwritten_inside)]
#: what every other command says of a damaged index (exit non-zero, one line)
ASKED = [["versions", "{s}"], ["pin", "{s}@{v1}"], ["status"], ["audit"], ["urls", "{s}@{v1}"], ["sync", "{s}"]]


@pytest.fixture(scope="module")
def copy(sample: Sample, tmp_path_factory) -> Path:  # noqa: ANN001
    """A copy of the mirror whose index the damage cases write over (the mirror itself stays as it is)."""
    where = tmp_path_factory.mktemp("damaged") / "mirror"
    shutil.copytree(sample.root, where, symlinks=True)
    return where


@pytest.mark.parametrize("kind,damage", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_index_is_named_as_such_and_reindex_rebuilds_it(
    sample: Sample, copy: Path, tmp_path: Path, kind: str, damage
) -> None:  # noqa: ANN001
    index = copy / ".neuromirror" / "index.sqlite"
    want = json.loads(neuromirror(copy, "versions", sample.source, "--json").stdout)
    head = git(copy / "dandi" / sample.id, "rev-parse", "HEAD")
    damage(index)
    for template in ASKED:
        line = one_line(neuromirror(copy, *_args(template, sample, tmp_path)))
        assert f"the index {index} is damaged" in line and "run `neuromirror reindex`" in line, line
        assert "not mirrored" not in line, line

    done = neuromirror(copy, "reindex")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    aside = sorted(index.parent.glob("index.sqlite.damaged-*"))
    moved = [f for f in aside if not f.name.endswith(("-wal", "-shm"))]
    assert len(moved) == 1 and f"the damaged index was moved aside to {moved[0]}\n" in done.stdout, done.stdout
    got = json.loads(neuromirror(copy, "versions", sample.source, "--json").stdout)
    assert [(v["version"], v["commit"], v["files"]) for v in got] == [
        (v["version"], v["commit"], v["files"]) for v in want
    ]
    assert git(copy / "dandi" / sample.id, "rev-parse", "HEAD") == head  # nothing of the dataset touched
    assert git(copy, "status", "--porcelain") == ""
    for f in aside:  # the next case starts from a whole index again
        f.unlink()


def test_an_empty_index_of_a_root_with_no_dataset_yet_is_a_new_index(tmp_path: Path) -> None:
    """A 0-byte index is damage only where the root has datasets: a fresh root's empty file is just new."""
    from neuromirror.dataset.mirror import Datasets

    (tmp_path / ".neuromirror").mkdir(parents=True)
    (tmp_path / ".neuromirror" / "index.sqlite").write_bytes(b"")
    m = Datasets(tmp_path)
    assert m.index.sources() == []
    m.close()


@pytest.mark.parametrize("template", [["urls", "{s}@{v1}"], ["verify", "{s}"], ["cite", "{s}@{v1}"], ["status"]])
def test_a_mirror_another_user_owns_is_refused_by_git_in_our_words_never_read_as_empty(
    sample: Sample, copy: Path, tmp_path: Path, template: list[str]
) -> None:
    """A lab member reading the lab account's mirror: git refuses repositories another user owns ("dubious
    ownership"). On landed main ``urls`` then said "0 file(s): none" (exit 0) and ``verify`` a mismatch per
    file; now each stops with the reason and the setting that lets git read it.  (Run as root here, the copy
    owned by nobody: git applies the same check to root.)"""
    import os

    if os.geteuid() != 0:
        pytest.skip("needs root to give the copy to another user")
    other = tmp_path / "other"
    shutil.copytree(copy, other, symlinks=True)
    subprocess.run(["chown", "-R", "nobody", str(other)], check=True)
    p = neuromirror(other, *_args(template, sample, tmp_path))
    last = p.stderr.strip().splitlines()[-1]
    assert p.returncode == 2 and "Traceback" not in p.stderr and "0 file(s)" not in p.stdout, (p.stdout, p.stderr)
    assert last.startswith(f"neuromirror: git refuses {other}/") and "safe.directory" in last, p.stderr
