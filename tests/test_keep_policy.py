"""``keep --lock``, the lock's ``store``, and the service keeping by policy — used as a lab would.

Why: a lab keeps the versions its papers cite (``keep --lock``) and nothing else; the lock it
commits names the store, so that whoever reproduces the paper later gets the bytes from it after
the archive lost them — even from a copy of the dataset whose git-annex branch never heard of
the store; and the service keeps what its definition says after each sync, on its own: it keeps before it
publishes (the published copy names the store the same cycle's keep filled, changed dataset or not: it used to
reach a RIA store one changing sync late, or never for a quiet dandiset) and prunes a superseded draft state.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import git
from helpers.keep import (
    T0,
    Dandiset,
    keep_config,
    keep_json,
    kept_in,
    key_of,
    lose_blobs,
    make_dandiset,
    sha256,
    store_keys,
    whereis,
)
from helpers.retrieve import data_files
from neuromirror.demo import deterministic_bytes


def second_version(d: Dandiset, path: str, size: int) -> tuple[str, bytes]:
    """Publish another version with one more file, and sync it: (its version, the new file's bytes)."""
    data = deterministic_bytes(f"{d.id}:{path}:v2", size)
    when = T0 + timedelta(days=100 + len(d.archive.dandiset_ids()))
    d.archive.put_asset(d.id, path, data, when=when)
    version = d.archive.publish(d.id, when=when + timedelta(hours=1))
    d.run.ok("sync", d.source, "--dandi-api", d.archive.api_url)
    return version, data


def test_keep_lock_keeps_only_the_locked_version(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror.pin.lockfile import read

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 20_000})
    v2, extra = second_version(d, "sub-02/new.nwb", 15_000)
    lock = tmp_path / "paper.lock"
    d.run.ok("lock", d.spec, "-o", str(lock))  # the paper cites the first version
    store = tmp_path / "store"
    code, report, err = keep_json(d, store, "--lock", str(lock))
    assert code == 0, err
    assert [v["version"] for v in report["versions"]] == [d.version]
    assert report["transferred"] == {"files": 1, "bytes": 20_000}
    assert store_keys(store) == {key_of(d.ds, "sub-01/a.nwb", d.version)}
    new_key = key_of(d.ds, "sub-02/new.nwb", v2)
    assert new_key not in store_keys(store) and not kept_in(d.ds, new_key)  # the other version's file: not kept
    # the same filters and --json as keep; a rerun is a no-op
    code, again, err = keep_json(d, store, "--lock", str(lock), "--exclude", "*")
    assert code == 0 and again["versions"][0]["excluded"] == 1 and again["transferred"]["files"] == 0

    # a lock naming a state the mirror does not hold is refused, naming it; so is an edited file list
    text = lock.read_text()
    head = git(d.ds, "rev-parse", f"{v2}^{{commit}}").strip()
    bad = tmp_path / "bad.lock"
    bad.write_text(text.replace(read(lock).datasets[0].commit, head))
    code, out, err = d.run("keep", "--lock", str(bad), "--to", str(store))
    assert code == 2 and "does not hold the locked state" in err, err
    digest = next(ln for ln in text.splitlines() if ln.startswith("file-list-digest"))
    bad.write_text(text.replace(digest, 'file-list-digest = "sha256:' + "0" * 64 + '"'))
    code, out, err = d.run("keep", "--lock", str(bad), "--to", str(store))
    assert code == 2 and "file list" in err, err
    code, out, err = d.run("keep", "--to", str(store))
    assert code == 2 and "--lock FILE" in err


def test_lock_names_the_store_and_reproduce_uses_it_where_the_branch_does_not(
    dandi_archive, tmp_path: Path, monkeypatch
) -> None:  # noqa: ANN001
    from neuromirror.pin.lockfile import loads, read

    monkeypatch.delenv("NEUROMIRROR_STORE", raising=False)

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 30_000, "sub-02/b.nwb": 12_345})
    # a copy published before the keep: its git-annex branch never names the store
    pub = tmp_path / "pub"
    subprocess.run(["git", "clone", "-q", "--bare", str(d.ds), str(pub / "dandi" / d.id)], check=True)
    before = tmp_path / "before.lock"
    d.run.ok("lock", d.spec, "-o", str(before), "--url", str(pub))
    assert read(before).datasets[0].store is None and "\nstore = " not in before.read_text()  # nothing kept yet

    store = tmp_path / "store"
    code, _, err = keep_json(d, store, "--lock", str(before))
    assert code == 0, err
    lock = tmp_path / "data.lock"
    out = d.run.ok("lock", d.spec, "-o", str(lock), "--url", str(pub))
    assert f"kept in {store}" in out
    assert read(lock).datasets[0].store == str(store) and f'store = "{store}"' in lock.read_text()
    # an old lock file (no store field) still reads; --store at lock time names a store explicitly
    assert loads(before.read_text()).datasets[0].store is None
    named = d.run.ok("lock", d.spec, "--url", str(pub), "--store", str(tmp_path / "elsewhere"))
    assert f'store = "{tmp_path / "elsewhere"}"' in named

    # the archive loses every byte; reproduce from the copy that does not know the store
    lose_blobs(d, list(d.files))
    remote_log = subprocess.run(
        ["git", "-C", str(pub / "dandi" / d.id), "show", "git-annex:remote.log"], capture_output=True, text=True
    )
    assert "neuromirror-store" not in remote_log.stdout
    work = tmp_path / "work"
    code, out, err = d.run("reproduce", str(lock), "--to", str(work), "--allow-ip", "all")
    assert code == 0, out + err
    got = data_files(work / "dandi" / d.id)
    for path, data in d.files.items():
        assert sha256(got[path]) == sha256(data), path
    assert "neuromirror-store" in git(work / "dandi" / d.id, "annex", "whereis", "sub-01/a.nwb")
    # the lock made before keep names no store: reproduce fails loudly ... unless --store names it
    code, out, err = d.run("reproduce", str(before), "--to", str(tmp_path / "w2"), "--allow-ip", "all")
    assert code == 1 and "sub-01/a.nwb" in out + err
    code, out, err = d.run(
        "reproduce", str(before), "--to", str(tmp_path / "w3"), "--allow-ip", "all", "--store", str(store)
    )
    assert code == 0, out + err
    # get --store too, from the copy; a --store that is no store is a one-line error
    code, out, err = d.run(
        "get", d.spec, "--from", str(pub), "--to", str(tmp_path / "g"), "--allow-ip", "all", "--store", str(store)
    )
    assert code == 0, out + err
    assert (tmp_path / "g" / "sub-02/b.nwb").read_bytes() == d.files["sub-02/b.nwb"]
    branch = git(tmp_path / "g", "rev-parse", "git-annex")
    code, out, err = d.run(
        "get", d.spec, "--from", str(pub), "--to", str(tmp_path / "g"), "--allow-ip", "all", "--store", str(store)
    )
    assert code == 0, out + err
    assert git(tmp_path / "g", "rev-parse", "git-annex") == branch  # again: nothing recorded or enabled twice
    code, out, err = d.run(
        "reproduce", str(lock), "--to", str(tmp_path / "w4"), "--store", str(tmp_path / "nothing-here")
    )
    assert code == 2 and "no neuromirror store" in err


# -- the service keeps by policy ---------------------------------------------------------------
def test_service_keeps_published_versions_after_a_sync(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from helpers.service import get, metric_samples, run_part, serve, wait_for

    ident = dandi_archive.create_dandiset(name="policy sample")
    published = deterministic_bytes(f"{ident}:pub", 9_000)
    dandi_archive.put_asset(ident, "sub-01/pub.nwb", published)
    version = dandi_archive.publish(ident)
    dandi_archive.put_asset(ident, "sub-01/draft-only.nwb", deterministic_bytes(f"{ident}:draft", 7_000))
    sid = f"dandi:{ident}"
    root, store = tmp_path / "mirror", tmp_path / "store"
    cfg = keep_config(tmp_path / "m.yaml", dandi_archive.api_url, sid, f'store: "{store}"\n')

    with serve(root, cfg) as svc:
        keep = wait_for(lambda: run_part(root, sid, "keep"), 90, "a service run that kept", svc)
        assert isinstance(keep, dict)
        assert keep["outcome"] == "ok" and keep["store"] == str(store) and keep["policy"] == "published"
        assert keep["versions"] == [f"{sid}@{version}"] and keep["failed"] == 0
        assert keep["files"] == 1 and keep["bytes"] == 9_000 and keep["transferred"] == {"files": 1, "bytes": 9_000}
        m = metric_samples(get(svc.url("metrics"))[2])
        assert m["neuromirror_kept_files", ("source", sid)] == 1
        assert m["neuromirror_kept_bytes", ("source", sid)] == 9_000
        assert m["neuromirror_keep_runs_total", ("outcome", "ok"), ("source", sid)] == 1

        # what is at risk, counted once the run's keep ended: the published file kept, the draft's own not
        def counted() -> dict | None:
            row = json.loads(get(svc.url("status.json"))[2])["sources"][0]
            return row.get("at_risk_counted")

        record = wait_for(counted, 60, "the at-risk counts of the run", svc)
        assert isinstance(record, dict)
        by_version = {v["version"]: v for v in record["versions"]}
        assert set(by_version) == {version, "draft"}
        assert by_version[version]["kept"] == {"files": 1, "bytes": 9_000}
        assert by_version[version]["pinned"]["files"] == 0
        assert by_version["draft"]["kept"] == {"files": 1, "bytes": 9_000}
        assert by_version["draft"]["pinned"] == {"files": 1, "bytes": 7_000}
        m = metric_samples(get(svc.url("metrics"))[2])
        for kind, files, size in (("kept", 1, 9_000), ("pinned", 0, 0), ("unpinned", 0, 0)):
            assert m["neuromirror_at_risk_files", ("kind", kind), ("source", sid), ("version", version)] == files
            assert m["neuromirror_at_risk_bytes", ("kind", kind), ("source", sid), ("version", version)] == size
        assert m["neuromirror_at_risk_files", ("kind", "pinned"), ("source", sid), ("version", "draft")] == 1
        overview = get(svc.url(""))[2]
        assert "at risk (latest version)" in overview and "1 kept · 1 pinned · 0 mutable" in overview
        page = get(svc.url(f"source/{sid}"))[2]
        assert "<h2>At risk</h2>" in page and "only behind a pinned URL" in page
        assert f'<td>{version}</td><td>published</td><td class="num">1 (8.8 KiB)</td>' in page
    ds = root / "dandi" / ident
    assert store_keys(store) == {key_of(ds, "sub-01/pub.nwb", version)}  # the draft's own file: not kept
    assert kept_in(ds, key_of(ds, "sub-01/pub.nwb", version))


def test_the_service_leaves_the_wanted_count_keep_copies_set(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """A definition naming no ``copies:``: the service's keep counts against the wanted count ``keep --copies 2``
    recorded and leaves it as it is (it used to set it back to 1, so the version looked safe on one copy)."""
    from helpers.retrieve import Runner
    from helpers.service import runs, serve, wait_for

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 6_000})
    one, two = tmp_path / "one", tmp_path / "two"
    root = tmp_path / "served"  # a mirror the service makes itself: its first run is at once
    run = Runner(root)
    # a short interval: the service restarted after the hand keep runs again at once
    cfg = keep_config(tmp_path / "m.yaml", dandi_archive.api_url, d.source, f'store: "{one}"\n', interval="2s")

    def keeps(after: int = 0) -> list[dict]:
        rows = [(r["id"], json.loads(r["report"] or "{}")) for r in runs(root, d.source) if r["id"] > after]
        return [{"run": i, **report["keep"]} for i, report in rows if "keep" in report]

    with serve(root, cfg) as svc:
        (first, *_) = wait_for(keeps, 90, "a service run that kept", svc)  # type: ignore[misc]
        assert first["outcome"] == "ok" and first["copies"]["wanted"] == 1, first
    assert svc.stop() == 0, svc.stderr

    code, out, err = run("keep", d.spec, "--to", str(one), "--copies", "2", "--json")
    assert code == 1 and json.loads(out)["copies"] == 2, out + err  # one copy of the two wanted
    last = max(r["id"] for r in runs(root, d.source))
    with serve(root, cfg) as svc:
        (keep, *_) = wait_for(lambda: keeps(last), 90, "the next service run that kept", svc)  # type: ignore[misc]
        assert keep["outcome"] == "ok" and keep["copies"]["wanted"] == 2, keep
        assert [v["ok"] for v in keep["copies"]["versions"]] == [False]  # still one copy of two
    (counted,) = json.loads(run.ok("status", "--copies", d.spec, "--json"))["versions"]
    assert counted["wanted"] == 2 and counted["enough"]["files"] == 0
    # the second copy, kept by hand without --copies: the count it is held to is still 2, now met
    code, out, err = run("keep", d.spec, "--to", str(two), "--json")
    assert code == 0 and json.loads(out)["copies"] == 2, out + err


@pytest.mark.parametrize("published", ["ria", "sibling"])
def test_the_published_copy_names_the_packed_store_by_the_end_of_the_first_cycle(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
    request: pytest.FixtureRequest,
    published: str,
) -> None:
    """Into a RIA store from a ``pack+file://`` store; into a sibling (a directory of bare repositories) from a
    ``pack+s3://`` store, whose endpoint and credentials the service and the stranger's clone take from their
    environment."""
    from helpers.service import serve, wait_for

    sizes = {"sub-01/a.nwb": 21_000, "sub-02/b.nwb": 13_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)  # synced once: the service's sync is a no-op
    ria, bare = tmp_path / "ria", tmp_path / "bare"
    if published == "ria":
        store, target, repo, origin = f"pack+file://{tmp_path / 'packed'}", f"ria+file://{ria}", ria / "alias", None
    else:
        store, target, repo = f"pack+s3://{request.getfixturevalue('bucket')}/packed", str(bare), bare
        origin = str(bare / "dandi" / d.id)
    repo = repo / "dandi" / d.id
    cfg = keep_config(
        tmp_path / "m.yaml",
        dandi_archive.api_url,
        d.source,
        f'store: "{store}"\n',
        f'    publish: {{to: "{target}"}}\n',
        interval="2s",
    )
    settings = ("NEUROMIRROR_STORE_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")  # the bucket's, if any
    with serve(d.run.root, cfg, env={k: os.environ[k] for k in settings if k in os.environ}) as svc:
        # one cycle: the keep put the keys into the packs, and the published copy's git-annex branch says so
        def published_knows() -> bool:
            if not repo.exists():
                return False
            log = subprocess.run(
                ["git", "-C", str(repo.resolve()), "log", "-1", "--format=%H", "git-annex"],
                capture_output=True,
                text=True,
            )
            if log.returncode != 0:
                return False
            remote = subprocess.run(
                ["git", "-C", str(repo.resolve()), "show", "git-annex:remote.log"], capture_output=True, text=True
            ).stdout
            return "externaltype=neuromirror-pack" in remote

        wait_for(published_knows, 180, "the packed store named in the published copy", svc)
    lose_blobs(d, list(sizes))
    work = tmp_path / "stranger"
    proc = subprocess.run(
        ["datalad", "clone", origin or f"ria+file://{ria}#~dandi/{d.id}", str(work)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    subprocess.run(["git", "-C", str(work), "checkout", "-q", d.version], check=True)
    proc = subprocess.run(["datalad", "get", "."], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path, data in d.files.items():
        assert sha256((work / path).read_bytes()) == sha256(data), path


def test_the_service_prunes_a_superseded_draft_state_from_the_packed_store(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """``keep: {versions: published, prune: true}`` for a dandiset with no published version: each cycle
    keeps the latest draft state, and the state the upstream change superseded leaves the store."""
    from helpers.service import serve, wait_for

    when = T0 + timedelta(days=800)
    ident = dandi_archive.create_dandiset(name="prune sample", created=when)
    first = deterministic_bytes(f"{ident}:first", 40_000)
    dandi_archive.put_asset(ident, "data.nwb", first, when=when)
    packed = tmp_path / "packed"
    cfg = tmp_path / "m.yaml"
    cfg.write_text(
        f'store: "pack+file://{packed}"\n'
        "defaults:\n"
        "  schedule: {interval: 2s}\n"
        f'  options: {{dandi_api: "{dandi_archive.api_url}"}}\n'
        "sources:\n"
        f'  - spec: "dandi:{ident}"\n'
        "    keep: {versions: published, prune: true}\n"
    )
    root = tmp_path / "mirror"

    def packs_hold(data: bytes) -> bool:
        return any(data in p.read_bytes() for p in packed.glob("packs/*.pack"))

    with serve(root, cfg) as svc:
        wait_for(lambda: packs_hold(first), 180, "the first draft state kept", svc)
        second = deterministic_bytes(f"{ident}:second", 40_000)
        dandi_archive.put_asset(ident, "data.nwb", second, when=when + timedelta(hours=1))
        wait_for(lambda: packs_hold(second) and not packs_hold(first), 180, "the superseded state pruned", svc)
    # the dataset's branch no longer sends a clone to the store for the superseded key
    ds = root / "dandi" / ident
    old = subprocess.run(
        ["git", "log", "--format=%H", "-n", "1", "--skip", "1", "--", "data.nwb"],
        cwd=ds,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert old, "the first draft state is in the dataset's history"
    assert not any("neuromirror" in w for w in whereis(ds, key_of(ds, "data.nwb", old)))
    assert any("neuromirror" in w for w in whereis(ds, key_of(ds, "data.nwb", "HEAD")))
