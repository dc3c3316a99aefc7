"""``keep --dask``: the copies of a keep made by a real ``dask scheduler`` and ``dask worker`` processes on loopback,
into one packed store at once, the recording in the submitting process.

Checked as a user would: the store's key list (its index files) equals a single-host keep's, no key is named twice,
``verify --stores`` reads every copy back right, git-annex's ``whereis`` names the store; a worker killed by SIGKILL
mid-task (at a named point: its pack durable, its index not written) loses nothing and its task is redone elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

from helpers.keep import keep_config, key_of, lose_blobs, make_dandiset
from helpers.restore import restore_json
from helpers.service import run_part, serve

pytest.importorskip("distributed")

from helpers.dask import ENV, Cluster, two_workers, wait_for  # noqa: E402
from neuromirror.network.ports import free_port  # noqa: E402

#: small enough that a dozen files make several tasks (the submitter's batches of keys)
BATCH_ENV = {**ENV, "NEUROMIRROR_KEEP_BATCH": "3"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with two_workers(tmp_path_factory.mktemp("dask-keep")) as c:
        yield c


def index_keys(store: Path) -> Counter[str]:
    """Every key the store's index files name, with how many times (a key in two packs: 2)."""
    counts: Counter[str] = Counter()
    for f in (store / "index").glob("*.json"):
        counts.update(k[0] for k in json.loads(f.read_text())["keys"])
    return counts


def indexed(store: Path) -> dict[str, tuple[str, int, int]]:
    """key -> (pack, offset, length), from the store's index files."""
    out = {}
    for f in (store / "index").glob("*.json"):
        doc = json.loads(f.read_text())
        out.update({k[0]: (doc["pack"], k[1], k[2]) for k in doc["keys"]})
    return out


def keep(root: Path, spec: str, url: str, *args: str) -> dict:
    cmd = [sys.executable, "-m", "neuromirror", "--root", str(root), "keep", spec, "--to", url, "--pack-size", "16K"]
    done = subprocess.run([*cmd, *args, "--json"], env=BATCH_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def whereis_all(ds: Path) -> set[str]:
    out = subprocess.run(["git", "annex", "whereis", "--json"], cwd=ds, capture_output=True, text=True, check=True)
    return {w["description"] for line in out.stdout.splitlines() for w in json.loads(line)["whereis"]}


def test_keep_on_the_cluster_fills_one_packed_store_as_a_single_host_does(
    dandi_archive,  # noqa: ANN001
    cluster: Cluster,
    tmp_path: Path,
) -> None:
    sizes = {f"sub-{i:02d}/f.nwb": 3_000 + 500 * i for i in range(12)}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    one, many = tmp_path / "one-host", tmp_path / "cluster"

    keep(d.run.root, d.spec, f"pack+file://{one}")
    report = keep(d.run.root, d.spec, f"pack+file://{many}", "--dask", cluster.address, "-J", "2")

    (version,) = report["versions"]
    assert version["kept"] == len(sizes) and version["failed"] == []
    assert len(report["tasks"]) >= 4  # 12 keys in batches of 3
    names = cluster.workers()  # address -> name
    assert {names[t["worker"]] for t in report["tasks"]} <= {"w1", "w2"}
    kept = index_keys(many)
    assert set(kept) == set(index_keys(one)) and len(kept) == len(sizes)
    assert max(kept.values()) == 1  # no key stored twice
    assert not list((many / "packs").glob("*")) == []
    code, out, err = d.run("verify", "--stores", "--store", f"pack+file://{many}", "--fraction", "1")
    assert code == 0, out + err
    assert sum("neuromirror packed store" in w for w in whereis_all(d.ds)) == 2  # both stores recorded

    again = keep(d.run.root, d.spec, f"pack+file://{many}", "--dask", cluster.address)
    assert again["transferred"]["files"] == 0 and index_keys(many) == kept  # converged: nothing copied twice


def test_a_worker_killed_mid_keep_loses_nothing_and_its_task_is_redone(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    sizes = {f"sub-{i:02d}/g.nwb": 2_000 + 300 * i for i in range(9)}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    store = tmp_path / "packed"
    (tmp_path / "logs").mkdir()
    c = Cluster(tmp_path / "logs")
    try:
        # the only worker dies by SIGKILL once its first pack is durable and before its index file is written
        c.start_worker("doomed", NEUROMIRROR_CRASH_AT="pack-sealed")
        cmd = [sys.executable, "-m", "neuromirror", "--root", str(d.run.root), "keep", d.spec]
        cmd += ["--to", f"pack+file://{store}", "--dask", c.address, "--json"]
        running = subprocess.Popen(cmd, env=BATCH_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: c.procs["doomed"].poll() is not None, 120, "the doomed worker to die mid-task")
        assert c.procs["doomed"].returncode == -9
        orphans = [p.name for p in (store / "packs").glob("*.pack")]
        assert orphans and not list((store / "index").glob("*.json"))  # a durable pack no index names yet
        # the scheduler reruns the dead worker's tasks here; started as docs/scale-out.md advises for keeps
        c.start_worker("rescue", DASK_DISTRIBUTED__WORKER__PRELOAD='["neuromirror.keep.cluster"]')
        out, err = running.communicate(timeout=300)
        names = c.workers()
    finally:
        c.close()
    assert running.returncode == 0, out + err
    report = json.loads(out)
    (version,) = report["versions"]
    assert version["kept"] == len(sizes) and version["failed"] == []
    assert {names[t["worker"]] for t in report["tasks"]} == {"rescue"}
    assert sum(t["reread"] for t in report["tasks"]) >= 1  # the dead task's keys read back, not copied again
    kept = index_keys(store)
    assert len(kept) == len(sizes) and max(kept.values()) == 1
    code, out, err = d.run("verify", "--stores", "--store", f"pack+file://{store}", "--fraction", "1")
    assert code == 0, out + err


def test_a_task_that_fails_for_good_is_one_line_leaves_no_claim_and_a_rerun_converges(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    """A task the scheduler gives up on (its worker killed more often than Dask allows: here once, with
    ``allowed-failures`` 0): the keep ends in one line naming it, the store keeps no claim of it under
    ``tasks/``, and a rerun on a healthy worker keeps every key once (the dead attempt's durable pack adopted)."""
    sizes = {f"sub-{i:02d}/h.nwb": 2_500 + 300 * i for i in range(6)}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    store = tmp_path / "packed"
    (tmp_path / "logs").mkdir()
    c = Cluster(tmp_path / "logs", DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0")
    try:
        c.start_worker("doomed", NEUROMIRROR_CRASH_AT="pack-sealed")
        cmd = [sys.executable, "-m", "neuromirror", "--root", str(d.run.root), "keep", d.spec]
        cmd += ["--to", f"pack+file://{store}", "--pack-size", "16K", "--dask", c.address]
        failed = subprocess.run(cmd, env=BATCH_ENV, capture_output=True, text=True, timeout=300)
        assert c.procs["doomed"].wait(60) == -9
        assert failed.returncode not in (0, 2), failed.stdout + failed.stderr
        said = [line for line in failed.stderr.splitlines() if line.strip()]
        assert len(said) == 1 and "Traceback" not in failed.stderr, failed.stderr
        assert "neuromirror-keep-" in said[0], said  # names the task that failed for good
        assert list((store / "packs").glob("*.pack")) and not list((store / "tasks").glob("*")), sorted(
            p.name for p in store.rglob("*")
        )
        c.start_worker("healthy", DASK_DISTRIBUTED__WORKER__PRELOAD='["neuromirror.keep.cluster"]')
        report = keep(d.run.root, d.spec, f"pack+file://{store}", "--dask", c.address)
    finally:
        c.close()
    (version,) = report["versions"]
    # the dead attempt's durable pack adopted at the keep's start: its keys read back and hashed, not copied again
    assert version["failed"] == [] and version["kept"] + version["already"] == len(sizes) and version["already"] > 0
    assert report["reread"] == {"files": version["already"], "wrong": 0}
    assert report["transferred"]["files"] == version["kept"]
    kept = index_keys(store)
    assert len(kept) == len(sizes) and max(kept.values()) == 1  # no key stored twice
    assert not list((store / "tasks").glob("*"))
    code, out, err = d.run("verify", "--stores", "--store", f"pack+file://{store}", "--fraction", "1")
    assert code == 0, out + err


def test_verify_stores_on_the_cluster_finds_a_flipped_byte_in_a_pack_and_the_submitter_repairs_it(
    dandi_archive,  # noqa: ANN001
    cluster: Cluster,
    tmp_path: Path,
) -> None:
    sizes = {f"sub-{i:02d}/v.nwb": 4_000 + 100 * i for i in range(8)}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    store = tmp_path / "packed"
    url = f"pack+file://{store}"
    keep(d.run.root, d.spec, url, "--dask", cluster.address)
    code, out, err = d.run("verify", "--stores", "--store", url, "--dask", cluster.address, "--json")
    assert code == 0, out + err
    checked = json.loads(out)
    assert checked["good"] == len(sizes)
    names = cluster.workers()
    assert checked["tasks"] and {names[t["worker"]] for t in checked["tasks"]} <= {"w1", "w2"}

    key = key_of(d.ds, "sub-03/v.nwb", d.version)
    pack, offset, length = indexed(store)[key]
    victim = store / "packs" / f"{pack}.pack"
    os.chmod(victim, 0o644)
    data = bytearray(victim.read_bytes())
    data[offset + length // 2] ^= 0xFF  # rot inside the pack
    victim.write_bytes(bytes(data))

    code, out, err = d.run("verify", "--stores", "--store", url, "--dask", cluster.address, "--json")
    assert code == 1, out + err
    report = json.loads(out)
    assert [b["key"] for b in report["bad"]] == [key] and report["bad"][0]["repaired"]
    assert report["checked"] == len(sizes) and report["good"] == len(sizes) - 1
    assert indexed(store)[key][0] != pack and max(index_keys(store).values()) == 1
    code, out, err = d.run("verify", "--stores", "--store", url, "--dask", cluster.address)
    assert code == 0, out + err


def test_the_service_with_a_dask_executor_keeps_and_checks_on_the_cluster(
    dandi_archive,  # noqa: ANN001
    cluster: Cluster,
    tmp_path: Path,
) -> None:
    sizes = {f"sub-{i:02d}/s.nwb": 2_500 + 100 * i for i in range(7)}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    store = tmp_path / "packed"
    head = f"executor: {{dask: '{cluster.address}'}}\nstore: 'pack+file://{store}'\n"
    cfg = keep_config(tmp_path / "m.yaml", dandi_archive.api_url, d.source, head, interval="2s")
    with serve(d.run.root, cfg, env={"NEUROMIRROR_KEEP_BATCH": "3"}) as svc:
        record = wait_for(lambda: run_part(d.run.root, d.source, "keep"), 180, "the service's keep")
        assert svc.proc.poll() is None
    assert isinstance(record, dict) and record["outcome"] == "ok", record
    assert record["cluster_tasks"] >= 3  # 7 keys in batches of 3, copied by the workers
    assert record["verify"]["ok"] and record["verify"]["tasks"] >= 1  # this cycle's check read there too
    kept = index_keys(store)
    assert len(kept) == len(sizes) and max(kept.values()) == 1


def files_under(where: Path) -> dict[str, bytes]:
    return {str(p.relative_to(where)): p.read_bytes() for p in sorted(where.rglob("*")) if p.is_file()}


def test_restore_on_the_cluster_writes_what_a_single_host_writes_from_the_packs(
    dandi_archive,  # noqa: ANN001
    cluster: Cluster,
    tmp_path: Path,
) -> None:
    sizes = {f"sub-{i:02d}/r.nwb": 3_000 + 200 * i for i in range(7)}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    keep(d.run.root, d.spec, f"pack+file://{tmp_path / 'packed'}", "--dask", cluster.address)
    lose_blobs(d, list(sizes))  # the packs are all that is left

    code, one, err = restore_json(d, "--to", str(tmp_path / "one-host"))
    assert code == 0, err
    code, many, err = restore_json(d, "--to", str(tmp_path / "cluster"), "--dask", cluster.address)
    assert code == 0, err
    assert many["written"] == one["written"] and many["written"]["objects"] == len(sizes) + 1  # and the README
    names = cluster.workers()
    assert many["tasks"] and {names[t["worker"]] for t in many["tasks"]} <= {"w1", "w2"}
    assert files_under(tmp_path / "cluster") == files_under(tmp_path / "one-host")
    assert len(files_under(tmp_path / "cluster")) == len(sizes) + 1

    code, again, err = restore_json(d, "--to", str(tmp_path / "cluster"), "--dask", cluster.address)
    assert code == 0 and again["written"]["objects"] == 0, err  # a rerun finds every object the same


def test_an_unreachable_scheduler_is_one_line_and_nothing_is_kept(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/u.nwb": 1_000})
    store = tmp_path / "packed"
    cmd = [
        sys.executable,
        "-m",
        "neuromirror",
        "--root",
        str(d.run.root),
        "keep",
        d.spec,
        "--to",
        f"pack+file://{store}",
    ]
    address = f"tcp://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [*cmd, "--dask", address], env={**ENV, "NEUROMIRROR_DASK_TIMEOUT": "2"}, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and address in done.stderr
    assert not store.exists()


#: run on a fresh interpreter: the worker's preload, then one task; the modules the task still imported
PRELOADED_TASK = """
import json, sys
from neuromirror.keep.cluster import KeepBatch, dask_setup, keep_batch
from neuromirror.store.location import open_store
open_store(sys.argv[1], create=True).identity  # made by the submitting process, as keep --to makes it
dask_setup()
before = set(sys.modules)
items = tuple((key, size, (url,)) for key, size, url in json.loads(sys.argv[2]))
out = keep_batch(KeepBatch(sys.argv[1], items, jobs=2))
assert all(o.ok for o in out.outcomes) and len(out.outcomes) == len(items), out
roots = ("neuromirror", "urllib3", "botocore", "boto3", "s3transfer", "http", "email", "ssl", "hashlib")
print(json.dumps(sorted(m for m in set(sys.modules) - before if m.split(".")[0] in roots)))
"""


@pytest.mark.parametrize("kind", ["directory", "pack+file", "pack+s3"])
def test_a_preloaded_worker_imports_nothing_more_for_a_keep_task(
    dandi_archive, tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:  # noqa: ANN001
    """``dask worker --preload neuromirror.keep.cluster`` (docs/scale-out.md): its list of imports is the one a
    keep's task needs, so a worker's first task pays no import; a task that imports more fails here."""
    sizes = {f"sub-{i:02d}/f.nwb": 2_000 + 100 * i for i in range(3)}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    blobs = [dandi_archive.asset_at(d.id, path, d.version).blob for path in sizes]
    items = [
        (key_of(d.ds, path, "HEAD"), b.size, dandi_archive.s3.url(b.bucket, b.key, b.version_id))
        for path, b in zip(sizes, blobs)
    ]
    urls = {"directory": str(tmp_path / "d"), "pack+file": f"pack+file://{tmp_path}/p"}
    url = f"pack+s3://{request.getfixturevalue('bucket')}/preload" if kind == "pack+s3" else urls[kind]
    store_env = {k: v for k, v in os.environ.items() if k.startswith(("NEUROMIRROR_STORE_", "AWS_"))}  # bucket's
    done = subprocess.run(
        [sys.executable, "-c", PRELOADED_TASK, url, json.dumps(items)],
        env={**ENV, **store_env},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
