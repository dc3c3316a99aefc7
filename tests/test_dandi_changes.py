"""A resync of a DANDI draft reads its changes in O(changes) (issue 75): the ``-modified`` listing's head.

Side by side, two mirrors of one dandiset of 2,500 assets (pages of 1,000): one resyncs by the draft's
changes, the other pages the whole version (``NEUROMIRROR_DANDI_CHANGES=0``, as before).  After each
change upstream both must hold the same commit tree and the same index rows, and the first must have
read at most 2 asset-listing pages at the stand-in.  A deletion that leaves the draft's ``modified``
as it was is seen by the version's asset count, and ``audit`` names the removed path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import git
from helpers.annex import web_urls
from helpers.dandi_full import T0

N = 2500


def sync(root: Path, api: str, ident: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, DANDI_NO_ET="1", **env)
    full.pop("DANDI_API_KEY", None)
    cmd = [
        sys.executable,
        "-m",
        "neuromirror",
        "--root",
        str(root),
        "sync",
        f"dandi:{ident}",
        "--dandi-api",
        api,
        *args,
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return p


def tree(root: Path, ident: str) -> str:
    """The draft commit's tree, but the dataset's own id (.datalad/config: each mirror's dataset has its own)."""
    lines = git(root / "dandi" / ident, "ls-tree", "-r", "HEAD").splitlines()
    return "\n".join(line for line in lines if not line.endswith("\t.datalad/config"))


def rows(root: Path, ident: str) -> list[tuple]:
    """The last draft's file rows in the index, as a user reads them back."""
    from neuromirror.index.db import Index

    index = Index(root / ".neuromirror" / "index.sqlite")
    try:
        draft = [v for v in index.versions(f"dandi:{ident}") if v.label == "draft"][-1]
        return [
            (f.path, f.key, f.size, f.checksum_kind, f.checksum, f.urls, f.remote_id)
            for f in index.version_files(draft.id)
        ]
    finally:
        index.close()


def listing_pages(archive) -> list[str]:  # noqa: ANN001
    return [raw for method, raw in archive.request_log if method == "GET" and "/versions/draft/assets/?" in raw]


@pytest.fixture(scope="module")
def pair(dandi_archive, tmp_path_factory):  # noqa: ANN001, ANN201
    """A dandiset of N blob assets (with their S3 objects) and two mirrors of it, synced."""
    from neuromirror.bench.archives import put_empty_blob
    from neuromirror.bench.moto_patch import moto_bucket_backend

    a = dandi_archive
    ident = a.create_dandiset(name="changes in O(changes)", created=T0)
    be = moto_bucket_backend(a.bucket)
    for i in range(10):  # uploaded over 10 seconds, 250 at a time (each batch sharing its modified time)
        for aid in a.add_synthetic_assets(ident, N // 10, prefix=f"sub-{i}-", when=T0 - timedelta(seconds=10 - i)):
            put_empty_blob(be, a, aid)
    a.put_asset(ident, "README.md", b"# a text file in git\n", when=T0)
    base = tmp_path_factory.mktemp("changes")
    by_changes, whole = base / "by-changes", base / "whole"
    for root in (by_changes, whole):
        sync(root, a.api_url, ident)
    return a, ident, by_changes, whole


def resync_both(pair) -> list[str]:  # noqa: ANN001
    """Resync both mirrors; the asset-listing pages the one by changes read."""
    a, ident, by_changes, whole = pair
    a.reset_request_log()
    sync(by_changes, a.api_url, ident)
    pages = listing_pages(a)
    sync(whole, a.api_url, ident, NEUROMIRROR_DANDI_CHANGES="0")
    assert tree(by_changes, ident) == tree(whole, ident)
    assert rows(by_changes, ident) == rows(whole, ident)
    return pages


def test_two_changed_assets_cost_one_listing_page_and_give_the_whole_listing_s_state(pair) -> None:  # noqa: ANN001
    a, ident, by_changes, _ = pair
    paths = sorted(a.dandiset(ident).draft.assets)
    a.put_asset(ident, "sub-new/sub-new_obj.nwb", b"added upstream\n", when=T0 + timedelta(hours=1))
    a.put_asset(ident, paths[1234], b"new content at an old path\n", when=T0 + timedelta(hours=1, seconds=1))
    pages = resync_both(pair)
    assert 1 <= len(pages) <= 2, pages
    assert all("order=-modified" in p for p in pages), pages
    assert "sub-new/sub-new_obj.nwb" in tree(by_changes, ident)
    # nothing changed since: no asset listing at all
    a.reset_request_log()
    sync(by_changes, a.api_url, ident)
    assert listing_pages(a) == []


def test_equal_times_at_the_watermark_are_read_again_and_none_is_missed(pair) -> None:  # noqa: ANN001
    a, ident, _, _ = pair
    when = T0 + timedelta(hours=2)
    a.put_asset(ident, "sub-tie/first.nwb", b"first at this time\n", when=when)
    resync_both(pair)
    a.put_asset(ident, "sub-tie/second.nwb", b"second, at the same time\n", when=when)  # the draft's modified stays
    a.put_asset(ident, "sub-tie/third.nwb", b"third, a second later\n", when=when + timedelta(seconds=1))
    pages = resync_both(pair)
    assert pages and all("order=-modified" in p for p in pages), pages  # by changes, not listed whole
    assert "sub-tie/second.nwb" in tree(pair[2], ident)


def test_a_move_and_a_deletion_are_listed_whole(pair) -> None:  # noqa: ANN001
    a, ident, _, _ = pair
    paths = sorted(a.dandiset(ident).draft.assets)
    when = T0 + timedelta(hours=3)
    a.delete_asset(ident, paths[10], when=when)  # moved: a new asset at a new path
    a.put_asset(ident, "sub-moved/moved.nwb", b"moved here\n", when=when)
    pages = resync_both(pair)
    assert any("order=path" in p for p in pages), pages  # the count said: listed whole


def test_a_deletion_leaving_modified_unchanged_is_seen_and_audited(pair) -> None:  # noqa: ANN001
    a, ident, by_changes, _ = pair
    gone = sorted(a.dandiset(ident).draft.assets)[20]
    a.delete_asset(ident, gone, touch=False)  # dandi-archive #1871: the draft's modified stays
    resync_both(pair)
    assert gone not in tree(by_changes, ident)
    p = subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(by_changes), "audit", "--json"],
        capture_output=True,
        text=True,
        env=dict(os.environ, DANDI_NO_ET="1"),
        timeout=120,
    )
    assert p.returncode in (0, 1), p.stderr
    found = json.loads(p.stdout)["findings"]
    assert any(f["kind"] == "modified-unchanged" and f["path"] == gone for f in found), found


def masked(text: str) -> str:
    """A tree with the Zarr datasets' commits and .gitmodules' blob left out: each mirror's Zarr datasets are its own."""
    lines = text.splitlines()
    return "\n".join(
        line.split("\t")[-1] if " commit " in line or line.endswith("\t.gitmodules") else line for line in lines
    )


def gitmodules(root: Path, ident: str) -> list[str]:
    """.gitmodules but the Zarr datasets' own ids."""
    text = git(root / "dandi" / ident, "show", "HEAD:.gitmodules")
    return [line for line in text.splitlines() if "datalad-id" not in line]


def zarr_trees(root: Path, ident: str, paths: list[str]) -> dict[str, list[str]]:
    """Each Zarr dataset's tree at its HEAD (but its own id)."""
    found = {}
    for p in paths:
        lines = git(root / "dandi" / ident / p, "ls-tree", "-r", "HEAD").splitlines()
        found[p] = [line for line in lines if not line.endswith("\t.datalad/config")]
    return found


def test_two_zarrs_ingested_are_read_from_the_head_without_the_zarr_list(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """A Zarr ingest moves its asset's ``modified`` (PR #2720): with nothing changed one look at the head
    and no Zarr list; with 2 Zarrs changed, the same Zarr datasets and dandiset tree as a whole listing."""
    from helpers.dandi_full import zarr_files

    a = dandi_archive
    ident = a.create_dandiset(name="zarrs by changes", created=T0)
    paths = [f"sub-{i}/sample-{i}.ome.zarr" for i in range(6)]
    aids = [
        a.add_zarr_asset(ident, p, zarr_files(p, chunks=1), when=T0 + timedelta(seconds=i)) for i, p in enumerate(paths)
    ]
    a.put_asset(ident, "sub-0/sub-0.nwb", b"a blob beside them\n", when=T0)
    by_changes, whole = tmp_path / "by-changes", tmp_path / "whole"
    for root in (by_changes, whole):
        sync(root, a.api_url, ident)
    a.reset_request_log()
    sync(by_changes, a.api_url, ident)
    assert not [raw for _, raw in a.request_log if raw.startswith("/api/zarr/")]  # no Zarr list
    assert len(listing_pages(a)) == 1  # the head's first asset
    for i in (1, 4):
        zid = a.asset(aids[i]).zarr.zarr_id
        a.modify_zarr(zid, put={"0/0/0/0": b"rewritten"}, when=T0 + timedelta(hours=1, seconds=i))
    a.reset_request_log()
    sync(by_changes, a.api_url, ident)
    assert not [raw for _, raw in a.request_log if raw.startswith("/api/zarr/?")]
    assert all("order=-modified" in p for p in listing_pages(a)), listing_pages(a)
    sync(whole, a.api_url, ident, NEUROMIRROR_DANDI_CHANGES="0")
    assert masked(tree(by_changes, ident)) == masked(tree(whole, ident))
    assert gitmodules(by_changes, ident) == gitmodules(whole, ident)
    assert zarr_trees(by_changes, ident, paths) == zarr_trees(whole, ident, paths)
    assert [r[:4] + r[5:] for r in rows(by_changes, ident)] == [r[:4] + r[5:] for r in rows(whole, ident)]
    a.reset_request_log()
    sync(by_changes, a.api_url, ident)  # nothing changed since
    assert len(listing_pages(a)) == 1


def counted(root: Path, api: str, ident: str, **env: str) -> dict[str, int]:
    """A sync with its work counted (``NEUROMIRROR_COUNTS``), the counts of its processes summed."""
    from neuromirror.util import counts

    target = root.parent / f"{root.name}-counts.jsonl"
    target.unlink(missing_ok=True)
    sync(root, api, ident, **env, NEUROMIRROR_COUNTS=str(target))
    return counts.read(str(target))


def test_a_resync_by_changes_writes_only_the_changes_and_equals_a_mirror_synced_once(  # noqa: ANN001
    dandi_archive, tmp_path: Path
) -> None:
    """The resync read from the draft's changes diffs and records only those (the rest of the last state
    carried forward): the same tree, git-annex URLs and index rows as a mirror synced once from scratch,
    also when the resync is killed after its commit or after its index rows and run again."""
    from neuromirror.bench.archives import put_empty_blob
    from neuromirror.bench.moto_patch import moto_bucket_backend

    a = dandi_archive
    ident = a.create_dandiset(name="carried forward", created=T0)
    be = moto_bucket_backend(a.bucket)
    for aid in a.add_synthetic_assets(ident, 300, prefix="sub-c-", when=T0 - timedelta(seconds=5)):
        put_empty_blob(be, a, aid)
    a.put_asset(ident, "README.md", b"# kept in git\n", when=T0)
    mirror = tmp_path / "mirror"
    sync(mirror, a.api_url, ident)
    for i, point in enumerate(["", "after-commit", "after-index"]):
        paths = sorted(p for p in a.dandiset(ident).draft.assets if p.startswith("sub-c-"))
        when = T0 + timedelta(hours=1 + i)
        a.put_asset(ident, f"sub-new/sub-new_{i}.nwb", b"added upstream %d\n" % i, when=when)
        a.put_asset(ident, paths[37 * (i + 1)], b"replaced upstream %d\n" % i, when=when + timedelta(seconds=1))
        a.reset_request_log()
        if point:  # killed there, as a power cut would; the run after it converges
            env = dict(os.environ, DANDI_NO_ET="1", NEUROMIRROR_CRASH_AT=point)
            cmd = [sys.executable, "-m", "neuromirror", "--root", str(mirror), "sync", f"dandi:{ident}"]
            killed = subprocess.run([*cmd, "--dandi-api", a.api_url], capture_output=True, env=env, timeout=600)
            assert killed.returncode == -9, killed.stderr[-2000:]
            sync(mirror, a.api_url, ident)
        else:
            written = counted(mirror, a.api_url, ident)
            # dandiset.yaml, the new and the replaced asset, and README.md: the asset at the watermark, read again
            # (a text file in git records no asset id to tell it by); not the 300 others (a whole listing: 303)
            assert written.get("index-rows-written", 0) == 4, written
        assert all("order=-modified" in p for p in listing_pages(a)), listing_pages(a)
        once = tmp_path / f"once-{i}"
        sync(once, a.api_url, ident)
        assert tree(mirror, ident) == tree(once, ident)
        assert web_urls(mirror / "dandi" / ident) == web_urls(once / "dandi" / ident)
        assert rows(mirror, ident) == rows(once, ident)
        assert f"sub-new/sub-new_{i}.nwb" in tree(mirror, ident)


def test_which_assets_are_text_is_posixpaths_rule() -> None:
    """``is_text_asset`` (string methods, asked of every file of a resync's last state) says what the rule it
    replaced said with ``posixpath``: the last dot's extension unless only dots precede it, else the name."""
    import itertools
    import posixpath
    import random

    from neuromirror.sources.dandi.assets import GIT_MAX_BYTES, TEXT_EXTENSIONS, TEXT_NAMES, is_text_asset

    def by_posixpath(path: str, size: int) -> bool:
        if size > GIT_MAX_BYTES:
            return False
        stem, ext = posixpath.splitext(posixpath.basename(path))
        return ext.lower() in TEXT_EXTENSIONS or stem.upper() in TEXT_NAMES and ext == ""

    parts = ["", ".", "..", "README", "readme", "LICENSE", "x", "a.b", ".md", "MD", ".JSON", "json", "/", "sub-1/"]
    names = {"".join(p) for p in itertools.product(parts, repeat=3)}
    rng = random.Random(75)
    names |= {"".join(rng.choice("./aRdmeEjsonMDx") for _ in range(rng.randint(0, 12))) for _ in range(20_000)}
    for name, size in itertools.product(sorted(names), (0, GIT_MAX_BYTES, GIT_MAX_BYTES + 1)):
        assert is_text_asset(name, size) == by_posixpath(name, size), (name, size)
    assert is_text_asset("sub-1/README", 10) and is_text_asset("a/b.JSON", 10) and not is_text_asset("a/.md", 10)
