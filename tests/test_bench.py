"""scripts/bench still runs end to end (at a toy size: it measures nothing here, it must just work).

The benchmark is not part of the suite's measurements (timings are never asserted); this
checks that every scenario runs, reports the fields docs/performance.md explains, and
evaluates the targets — so that a broken benchmark is found here, not at the next 30-minute run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path


def run_bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``scripts/bench ARGS`` (as ``python -m neuromirror.bench``); its output and JSON, no scenario failed."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "neuromirror.bench", *args, "--out", str(out), "--workdir", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    errors = [r for r in doc["results"] if r.get("error")]
    assert not errors, errors
    return proc, doc


def test_bench_runs_every_scenario_at_a_toy_size(tmp_path: Path) -> None:
    proc, doc = run_bench(
        tmp_path,
        "--sizes",
        "60",
        "--head-rows",
        "40",
        "--batch-rows",
        "60",
        "--addurls-rows",
        "20",
        "--index-rows",
        "2000",
    )
    scenarios = {r["scenario"] for r in doc["results"]}
    assert {
        "head-reference",
        "dandi-cold",
        "dandi-resync",
        "dandi-2changes",
        "dandi-2changes-whole",
        "dandi-3changes",
        "anchor-batch",
        "anchor-addurls",
        "aind-cold",
        "aind-resync",
    } <= scenarios, scenarios
    by = {r["scenario"]: r for r in doc["results"]}
    assert by["dandi-cold"]["outcome"] == "ok" and by["dandi-resync"]["outcome"] == "unchanged"
    assert by["dandi-3changes"]["changes"] >= 3  # 1 added, 1 removed, 1 changed (+ dandiset.yaml)
    # issue 75: read by the draft's changes, one listing page; paged whole, as many as the version holds
    assert by["dandi-2changes"]["listing_pages"] == 1 and by["dandi-2changes-whole"]["listing_pages"] >= 1
    assert by["dandi-cold"]["heads_repeated"] == 0
    for field in ("listing_s", "pinning_s", "registration_commit_s", "annex_branch_s", "index_s", "peak_rss_mb"):
        assert field in by["aind-cold"], field
    later = by["dandi-cold"]["later_git_annex"]
    assert {"whereis_s", "fsck_fast_s", "whereis_again_s", "fsck_fast_again_s", "status_after_touch_s"} <= set(later)
    assert doc["index"]["versions_in_process_ms"] > 0
    assert doc["targets"], "the targets were not evaluated"
    assert "| dandi-cold " in proc.stdout  # the table


def test_bench_scale_scenarios_at_a_toy_size(tmp_path: Path) -> None:
    """zarr-dandiset, aind-zarr, archive and clone-get run by name, with their size options."""
    proc, doc = run_bench(
        tmp_path,
        "--scenarios",
        "zarr-dandiset,aind-zarr,archive,clone-get",
        "--sizes",
        "40",
        "--zarrs",
        "3",
        "--zarr-objects",
        "20",
        "--zarr-blobs",
        "5",
        "--aind-zarr-objects",
        "50",
        "--archive-dandisets",
        "5",
        "--archive-large",
        "30",
    )
    by = {r["scenario"]: r for r in doc["results"]}
    assert {
        "zarr-dandiset-cold",
        "zarr-dandiset-resync",
        "zarr-dandiset-2zarrs1blob",
        "aind-zarr-cold",
        "aind-zarr-resync",
        "archive-cold",
        "archive-3changed",
        "clone-get",
    } <= set(by), set(by)
    assert by["zarr-dandiset-cold"]["dandiset_commits"] == 1 and by["zarr-dandiset-cold"]["outcome"] == "ok"
    assert by["zarr-dandiset-resync"]["outcome"] == "unchanged"
    assert by["zarr-dandiset-2zarrs1blob"]["dandiset_commits"] == 1
    assert by["zarr-dandiset-2zarrs1blob"]["zarr_commits"] == [2, 2, 1]  # the 2 changed Zarrs only
    # issue 40: one boto3 client lists the same 3 x 20 objects; the cold row is measured against it
    assert by["zarr-dandiset-boto3"]["n"] == 60 and by["zarr-dandiset-boto3"]["objects_per_s"] > 0
    cold = by["zarr-dandiset-cold"]
    assert cold["x_one_boto3_client"] > 0 and cold["cpu_us_per_object"] > 0 and cold["bench_process_cpu_s"] >= 0
    assert {t["what"] for t in cold["targets"]} == {
        "CPU us per object, process tree (issue 40)",
        "peak RSS MB (issue 40)",
        "objects/s over one boto3 listing client (issue 40)",
    }
    for field in ("zarr_listing_s", "zarr_commit_s", "peak_rss_mb", "cpu_s", "listing_s", "index_s", "other_s"):
        assert field in by["zarr-dandiset-cold"], field
    assert by["aind-zarr-resync"]["outcome"] == "unchanged" and by["aind-zarr-resync"]["listing_share"] is not None
    assert by["archive-3changed"]["outcome"] == "ok"
    clone = by["clone-get"]
    assert not any(k.endswith("_error") for k in clone), clone
    assert "| zarr-dandiset-cold " in proc.stdout


def test_tree_rss_counts_a_forked_image_once() -> None:
    """A child forked and not yet exec'd shares its parent's pages: the tree's peak is the parent's."""
    from neuromirror.bench.measure import TreeRSS

    code = (
        "import os, time\nb = bytearray(200 << 20)\nb[::4096] = b'x' * len(b[::4096])\npid = os.fork()\n"
        "if pid == 0:\n    time.sleep(1.0)\n    os._exit(0)\nos.waitpid(pid, 0)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    rss = TreeRSS(proc.pid)
    assert proc.wait() == 0
    peak_mb = rss.stop() / 2**20
    assert 200 <= peak_mb < 300, rss.at_peak


def test_bench_keep_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """keep against git annex copy: both sides copy every file; the rerun transfers nothing; targets evaluated."""
    proc, doc = run_bench(
        tmp_path, "--scenarios", "keep", "--keep-small", "12", "--keep-large", "1", "--keep-large-mb", "1"
    )
    by = {r["scenario"]: r for r in doc["results"]}
    assert {
        "keep-small",
        "keep-small-rerun",
        "keep-small-peer",
        "keep-large",
        "keep-large-peer",
        "keep-large-plain",
    } <= set(by), set(by)
    (version,) = by["keep-small"]["report"]["versions"]
    assert version["kept"] == 12 and not version["failed"], version
    assert by["keep-large-plain"]["bytes"] == 1 << 20 and by["keep-large-plain"]["mb_per_s"] > 0
    assert {t["target"] for t in doc["targets"]} >= {
        "keep small files vs git annex copy: files/s",
        "keep large files vs git annex copy: MB/s",
        "keep large files vs a plain copy (curl) of the same objects: MB/s",
        "keep-small again, everything kept",
    }
    assert "| keep-small " in proc.stdout


def test_bench_keep_cluster_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """keep-cluster (issue 75): a keep on this host, on 1 and on 4 real Dask workers, each store read back
    (every key once); each row's CPU whole and busy, its parts apart; the targets evaluated."""
    proc, doc = run_bench(
        tmp_path,
        *("--scenarios", "keep-cluster", "--cluster-zarrs", "2", "--cluster-zarr-objects", "15"),
        *("--cluster-rtt", "0", "--cluster-idle", "0.5"),
    )
    by = {r["scenario"]: r for r in doc["results"]}
    assert {"keep-cluster-host", "keep-cluster-1", "keep-cluster-4"} <= set(by), set(by)
    for row in by.values():  # 30 objects, a few of the same bytes (one key)
        assert 25 <= row["keys_in_store"] == by["keep-cluster-host"]["keys_in_store"] and row["keys_twice"] == 0, row
        assert 0 < row["cpu_us_per_object_busy"] <= row["cpu_us_per_object"], row
    four = by["keep-cluster-4"]
    assert four["cpu_workers_s"] > 0 and four["tasks"] >= 1 and four["cpu_startup_s"] > 0, four
    parts = four["cpu_keep_process_s"] + four["cpu_workers_s"] + four["cpu_scheduler_s"]
    assert abs(four["cpu_s"] - parts) <= 0.02, four
    assert by["keep-cluster-host"]["cpu_workers_s"] == 0 and "x_one_worker" in four, four
    assert {t["target"] for t in doc["targets"]} >= {
        "keep-cluster: 4 workers' objects/s over 1 worker's",
        "keep-cluster: keys stored twice",
        "keep-cluster: CPU per object over the single-host keep's",
    }
    assert "| keep-cluster-4 " in proc.stdout


def test_bench_gap_plan_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """gap-plan: a LIST of 2,000 keys against 30 blobs, 5 of them uncovered: exactly 5 archive requests."""
    proc, doc = run_bench(
        tmp_path, "--scenarios", "gap-plan", "--gap-files", "30", "--gap-list-keys", "2000", "--gap-uncovered", "5"
    )
    (row,) = [r for r in doc["results"] if r["scenario"] == "gap-plan"]
    assert row["covered"] == 25 and row["kept"] == 5 and row["archive_requests"] == 5 and row["requests_exact"]
    assert {t["target"]: t["ok"] for t in doc["targets"] if t["target"].startswith("gap-fill")} == {
        "gap-fill: planning against a 2,000-key LIST < 10 s": True,
        "gap-fill: archive requests only for the uncovered keys (exactly)": True,
    }


def test_bench_inventory_cold_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """inventory-cold (issue 75): the listing path, the inventory path (0 ListObjectVersions) and the floor (the
    same Zarr datasets written from objects in memory) side by side, each side's objects/s against the floor; and
    git's own floor, those datasets' objects through ``git fast-import``, against the 3x target's budget."""
    proc, doc = run_bench(
        tmp_path,
        "--scenarios",
        "inventory-cold",
        "--inventory-zarrs",
        "2",
        "--inventory-zarr-objects",
        "30",
        "--inventory-rtt",
        "0",
    )
    by = {r["scenario"]: r for r in doc["results"]}
    listing, inventory, floor = (by[f"inventory-cold-{s}"] for s in ("listing", "inventory", "floor"))
    assert listing["outcome"] == inventory["outcome"] == "ok" and listing["n"] == inventory["n"] == floor["n"] == 60
    assert listing["list_object_versions"] >= 2 and inventory["list_object_versions"] == 0
    assert floor["zarr_objects_per_s"] > 0 and floor["cpu_s"] > 0 and floor["timings"]["zarr-create"] > 0
    for side in (listing, inventory):
        assert side["of_floor"] == round(side["zarr_objects_per_s"] / floor["zarr_objects_per_s"], 2)
        assert side["cpu_us_per_object"] > 0 and side["cpu_of_floor"] > 0
    git = by["inventory-cold-git-floor"]
    assert git["datasets"] == 2 and git["git_objects"] > 60 and git["wall_s"] > 0 and git["cpu_s"] > 0
    assert git["target_budget_s"] == round(listing["wall_s"] / 3, 3)
    assert git["git_floor_over_budget"] == round((git["wall_s"] + git["startup_s"]) / (listing["wall_s"] / 3), 2)
    assert inventory["of_git_floor"] == round((git["wall_s"] + git["startup_s"]) / inventory["wall_s"], 2)
    assert {t["target"] for t in doc["targets"] if t["target"].startswith("inventory-cold")} == {
        "inventory-cold: objects/s over the listing path",
        "inventory-cold: ListObjectVersions pages",
    }


def test_bench_keep_archive_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """keep-archive (issue 33): kept into two stores, killed part-way, resumed without copying anything
    twice, every key in both stores, a no-op rerun, a verify --stores slice; targets evaluated."""
    proc, doc = run_bench(
        tmp_path, "--scenarios", "keep-archive", "--keep-archive-keys", "400", "--keep-archive-dandisets", "2"
    )
    by = {r["scenario"]: r for r in doc["results"]}
    assert {"keep-archive-killed", "keep-archive-resume", "keep-archive-noop", "keep-archive-verify"} <= set(by)
    killed, resume, noop, verify = (by[f"keep-archive-{s}"] for s in ("killed", "resume", "noop", "verify"))
    assert 0 < sum(killed["copies_at_kill"]) < 800, killed  # killed part-way
    assert resume["recopied"] == 0 and resume["missing"] == 0 and resume["objects_after"] == [400, 400], resume
    assert resume["versions_short"] == [] and resume["reread"][0] >= 0
    assert sum(resume["transferred"]) == 800 - sum(killed["copies_at_kill"])
    assert noop["transferred"] == [0, 0] and noop["wall_at_1e6_s"] > 0
    assert verify["checked"] == 14 and verify["good"] == 14 and verify["cpu_at_1e6_s"] > 0  # ceil(400 / 30)
    assert resume["rss_at_1e6_mb"] > 0
    assert {t["target"] for t in doc["targets"]} >= {
        "keep of 10^6 keys into two stores: peak RSS (MB)",
        "keep resumed after a kill: keys copied again",
        "keep of 10^6 keys, everything kept: rerun (s)",
        "verify --stores of 1/30 of a 10^6-key store: CPU s of the process tree",
    }
    assert "| keep-archive-resume " in proc.stdout


def test_bench_zarr_many_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """zarr-many (issue 25): cold, no-change and 2-changed syncs, one dandiset commit each that changes."""
    proc, doc = run_bench(
        tmp_path, "--scenarios", "zarr-many", "--many-zarrs", "6", "--many-zarr-objects", "3", "--many-zarr-blobs", "2"
    )
    by = {r["scenario"]: r for r in doc["results"]}
    assert {"zarr-many-cold", "zarr-many-resync", "zarr-many-2zarrs1blob"} <= set(by), set(by)
    assert by["zarr-many-cold"]["outcome"] == "ok" and by["zarr-many-cold"]["dandiset_commits"] == 1
    assert by["zarr-many-resync"]["outcome"] == "unchanged" and by["zarr-many-resync"]["dandiset_commits"] == 0
    assert by["zarr-many-2zarrs1blob"]["dandiset_commits"] == 1
    assert by["zarr-many-2zarrs1blob"]["zarr_commits"] == [2, 2, 1]  # the two changed Zarrs, one unchanged
    # issue 75: Zarr ingests read from the asset listing's -modified head, no Zarr list
    assert by["zarr-many-resync"]["zarr_list_pages"] == 0 and by["zarr-many-resync"]["listing_pages"] == 1
    assert by["zarr-many-2zarrs1blob"]["zarr_list_pages"] == 0
    assert {t["what"] for t in by["zarr-many-cold"]["targets"]} == {
        "zarrs_per_s",
        "cpu_ms_per_zarr",
        "peak_rss_mb",
        "wall ms per Zarr (issue 40: 120 s / 20,000)",
    }
    assert {t["what"] for t in by["zarr-many-resync"]["targets"]} >= {"no-change beyond start-up s (issue 40)"}
    assert by["zarr-many-cold"]["cpu_ms_per_zarr"] > 0
    assert "| zarr-many-cold " in proc.stdout


def test_bench_read_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """read (issue 31): the view and neuromirror:// serve every timed request, start no git process once a
    directory is listed, list directories, serve concurrent readers without error; targets evaluated."""
    proc, doc = run_bench(
        tmp_path,
        "--scenarios",
        "read",
        "--read-files",
        "30",
        "--read-rounds",
        "2",
        "--read-readers",
        "4",
        "--read-zarrs",
        "3",
        "--read-zarr-objects",
        "40",
    )
    by = {r["scenario"]: r for r in doc["results"]}
    assert {"read-zarrs", "read-ttfb", "read-listing", "read-readers", "read-zarr-big"} <= set(by), set(by)
    ttfb = by["read-ttfb"]
    assert {"direct", "view", "neuromirror", "fsspec_http_direct"} <= set(ttfb["warm"])
    assert ttfb["warm"]["view"]["n"] == 20 * 2 and ttfb["view_git_processes"] == 0
    assert ttfb["fsspec_git_processes"] == 0
    assert by["read-zarrs"]["listings_ok"] == by["read-zarrs"]["listings"] and by["read-zarrs"]["zattrs_ok"] == 3
    listing = by["read-listing"]["listings"]
    assert listing["root"]["json_entries"] == by["read-listing"]["root_entries"] > 0
    assert listing["root"]["propfind_entries"] == listing["root"]["json_entries"] + 1  # the directory itself
    readers = by["read-readers"]
    assert readers["errors"] == 0 and readers["view"]["requests"] == readers["direct"]["requests"] == 4 * 10
    assert by["read-zarr-big"]["listing"]["json_entries"] > 0
    assert {t["target"] for t in doc["targets"]} >= {
        "first byte through the view: p50 ms more than the archive's",
        "git processes of the view on the request path once listed",
        "view RSS with 20,000 Zarrs (extrapolated): MB",
    }
    assert "| read-ttfb " in proc.stdout


def test_bench_soak_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """soak (issue 32): K syncs with a change each, a publish every Nth, maintain after each; per-cycle counts."""
    proc, doc = run_bench(
        tmp_path, "--scenarios", "soak", "--soak-files", "5", "--soak-syncs", "3", "--soak-publish-every", "2"
    )
    soak = next(r for r in doc["results"] if r["scenario"] == "soak")
    cycles = soak["cycles"]
    assert [c["cycle"] for c in cycles] == [1, 2, 3] and {c["outcome"] for c in cycles} == {"ok"}
    assert [c["published"] for c in cycles] == [False, True, False]
    assert cycles[0]["store_loose"] is None and cycles[1]["store_packs"] is not None
    assert all(c["index_rows"]["runs"] == c["cycle"] + 1 for c in cycles), "one run row per sync"
    assert cycles[-1]["index_rows"]["versions"] > cycles[0]["index_rows"]["versions"]
    assert soak["max_loose"] <= 100 + 50 and soak["fresh_clone_bytes"] > 0 and soak["git_bytes_last"] > 0
    assert soak["fresh_clone_parts"]["index"] > 0 and soak["fresh_clone_parts"]["annex_index"] > 0, "a working clone"
    assert set(soak["nochange_rows"]) <= {"runs"}, "a no-change sync adds its run row and nothing else"
    assert soak["http_requests"] > soak["http_loose_requests"] > 0, "a dumb-HTTP client asks for each loose object"
    assert "| soak " in proc.stdout


def test_bench_restore_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """restore against git annex copy --to S3 and boto3, and the dry run over keys recorded as kept in the index
    (two dandisets, grown to 10^6): every row there, every object would be written, the targets evaluated."""
    proc, doc = run_bench(
        tmp_path,
        "--scenarios",
        "restore",
        "--restore-small",
        "6",
        "--restore-large",
        "1",
        "--restore-large-mb",
        "1",
        "--restore-dry-keys",
        "30",
    )
    by = {r["scenario"]: r for r in doc["results"]}
    assert {"restore-small", "restore-small-peer", "restore-large", "restore-large-boto3"} <= set(by), set(by)
    assert by["restore-small"]["written"] == {"objects": 6, "bytes": 6 * 10_000}
    assert (by["restore-dry-3"]["would_write"], by["restore-dry-30"]["would_write"]) == (3, 30)
    assert by["restore-dry-30"]["cpu_at_1e6_s"] > 0 and by["restore-dry-30"]["rss_at_1e6_mb"] > 0
    assert {t["target"] for t in doc["targets"]} >= {
        "restore small files vs git annex copy --to S3: files/s",
        "restore large files vs boto3 upload_file: MB/s",
        "restore dry run over 10^6 kept keys: wall s",
        "restore dry run over 10^6 kept keys: peak RSS",
    }
    assert "| restore-dry-30 " in proc.stdout


def test_bench_compare_runs_both_commits_alternating(tmp_path: Path) -> None:
    """--compare REV (issue 40): each side's rows in alternating rounds, the ratios, the worktree removed after."""
    args = "--scenarios zarr-many --many-zarrs 2 --many-zarr-objects 2 --many-zarr-blobs 1 --compare HEAD"
    proc, doc = run_bench(tmp_path, *args.split(), "--compare-rounds", "2")
    sides = [(r["round"], r["side"]) for r in doc["results"] if r["scenario"] == "zarr-many-cold"]
    assert sides[0][1] == "this" and sides[-1][1] == "this" and {s.split()[0] for _, s in sides} == {"this", "HEAD"}, (
        sides
    )
    table = {r["scenario"]: r for r in doc["compare"]}
    assert table["zarr-many-cold"]["rounds"] == 2 and table["zarr-many-cold"]["ratio_cpu_s"] > 0
    # user CPU beside the whole: a sync's system CPU is mostly the kernel making the work tree, loud on a shared host
    assert table["zarr-many-cold"]["ratio_cpu_user_s"] > 0 and "user s this/other/ratio" in proc.stdout
    assert "this checkout against HEAD" in proc.stdout
    where = re.search(r"checked out in (\S+);", proc.stderr)
    assert where, proc.stderr[-2000:]
    worktrees = subprocess.run(["git", "worktree", "list"], capture_output=True, text=True).stdout
    assert where.group(1) not in worktrees and not Path(where.group(1)).exists()


def test_bench_read_loss_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """read-loss (issue 39): first bytes measured on every path; after reader A saw a loss, reader B (another
    process) and the view go to the store without asking the archive; never other bytes."""
    proc, doc = run_bench(tmp_path, "--scenarios", "read-loss", "--read-rounds", "1")
    by = {r["scenario"]: r for r in doc["results"]}
    ttfb, spread = by["read-loss-ttfb"], by["read-loss-spread"]
    assert set(ttfb["p50_ms"]) == {"archive", "view", "nm"} and ttfb["rounds"] == 5
    assert (spread["reader_b_archive_requests"], spread["view_archive_requests"], spread["wrong_bytes"]) == (0, 0, 0)
    assert spread["reader_a_archive_requests"] >= 1  # A is the one that found the loss
    assert (spread["reader_b_answer"], spread["view_answer"], spread["view_alone_unkept_answer"]) == (
        "bytes",
        "200 from the view",
        "410",
    )
    assert len(spread["targets"]) == 3 and len(ttfb["targets"]) == 2


def test_bench_network_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """--rtt (issue 50): each sync at RTT 0 and at the RTT in one run, behind the shaping proxies, the RTT
    side with its ratio; --throttle: a throttled cold sync checked against the clean one; targets evaluated."""
    proc, doc = run_bench(
        tmp_path,
        "--rtt",
        "20ms",
        "--throttle",
        "0.2",
        "--throttle-for",
        "5s",
        "--sizes",
        "40",
        "--scenarios",
        "dandi,zarr-many",
        "--many-zarrs",
        "3",
        "--many-zarr-objects",
        "3",
        "--many-zarr-blobs",
        "2",
    )
    by = {r["scenario"]: r for r in doc["results"]}
    for base in ("dandi-cold", "dandi-resync", "dandi-3changes", "zarr-many-cold", "zarr-many-2zarrs1blob"):
        assert {f"{base}@0ms", f"{base}@20ms"} <= set(by), set(by)
        assert by[f"{base}@0ms"]["side"] == "rtt0" and by[f"{base}@20ms"]["rtt_ms"] == 20
        assert by[f"{base}@20ms"]["rtt_ratio"] > 0
        assert by[f"{base}@20ms"]["proxy_requests"]["api"] > 0
    assert by["dandi-cold@0ms"]["outcome"] == "ok" and by["dandi-resync@20ms"]["outcome"] == "unchanged"
    assert by["dandi-cold@20ms"]["heads"] == 40 and by["dandi-cold@20ms"]["heads_repeated"] == 0
    assert any(n["requests"] for n in by["dandi-cold@20ms"]["network"])  # the sync's per-endpoint counters
    t = by["dandi-cold@20ms+throttle"]
    assert t["side"] == "throttled" and t["outcome"] == "ok"
    assert t["differences"] == 0 and t["unpinned"] == 0 and t["annex_s3_urls"] >= 40
    for field in ("throttled_answers", "extra_requests", "extra_per_throttled", "wall_x_clean", "in_flight_before"):
        assert field in t, field
    names = {x["target"] for x in doc["targets"]}
    assert "dandi-cold@20ms N=40: cold wall at the RTT over RTT 0" in names
    assert "dandi-cold@20ms+throttle N=40: throttled: S3 URLs without ?versionId=" in names
    assert "| dandi-cold@20ms+throttle " in proc.stdout


def test_bench_read_nwb_network_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """--scenarios read-nwb --rtt (issue 50): a small NWB file read by remfile and through neuromirror:// in
    fresh processes at the RTT, the same rows, the S3 proxy's requests and bytes per side, the ratios and
    their targets (no timing asserted)."""
    proc, doc = run_bench(tmp_path, "--rtt", "10ms", "--scenarios", "read-nwb", "--nwb-mb", "1", "--nwb-rounds", "2")
    by = {r["scenario"]: r for r in doc["results"]}
    from neuromirror.read.references.lindi_env import overlay

    sides = ("remfile", "neuromirror", *(["reference"] if overlay() else []))  # issue 60: lindi's overlay, if built
    assert set(by) == {f"read-nwb-{side}@10ms" for side in sides}, set(by)
    for side in sides:
        r = by[f"read-nwb-{side}@10ms"]
        assert r["side"] == side and r["base"] == "read-nwb" and r["rounds"] == 2 and r["data_equal"]
        assert r["wall_s"] > 0 and r["requests"] > 0 and r["bytes_down"] > 0, r
        assert len(r["walls_s"]) == len(r["requests_per_round"]) == 2 and r["rtt0_wall_s"] > 0
    assert by["read-nwb-remfile@10ms"]["range_bytes"] > 0 and by["read-nwb-remfile@10ms"]["whole_gets"] == 1
    ours = by["read-nwb-neuromirror@10ms"]
    assert ours["time_over_remfile"] > 0 and ours["bytes_over_remfile"] > 0 and ours["requests_over_remfile"] > 0
    # the floor (issue 60): pynwb on a local copy, read in the same rounds; the time beyond it compared
    assert 0 < ours["floor_wall_s"] and "beyond_floor_over_remfile" in ours, ours
    names = {x["target"] for x in doc["targets"]}
    assert "read-nwb-neuromirror@10ms N=1: neuromirror:// time over remfile's" in names, names
    assert "read-nwb-neuromirror@10ms N=1: bytes over remfile's" in names, names
    assert "| read-nwb-neuromirror@10ms " in proc.stdout
    if overlay():  # through the reference: opening costs no request, making it read a few % of the file
        ref = by["read-nwb-reference@10ms"]
        assert ref["requests"] < ours["requests"] and 0 < ref["make_fraction"] < 0.5, ref
        assert "read-nwb-reference@10ms N=1: through the LINDI reference: time over remfile's" in names, names


def test_bench_lost_get_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """lost-get (issue 53): a clone's datalad get of 24 kept files and of an old Zarr state the archive lost,
    each side in a fresh clone, against git annex get --from the store; requests counted, targets evaluated."""
    proc, doc = run_bench(tmp_path, "--scenarios", "lost-get", "--lost-zarr-chunks", "20", "--lost-rounds", "2")
    by = {r["scenario"]: r for r in doc["results"]}
    files, zarr = by["lost-get-files"], by["lost-get-zarr"]
    assert (files["n"], zarr["n"]) == (24, 20) and files["deleted_versions"] >= 24 and zarr["deleted_versions"] >= 20
    for row in (files, zarr):
        assert len(row["rounds"]) == 4 and {r["side"] for r in row["rounds"]} == {"datalad", "annex"}
        assert (row["datalad_missing"], row["annex_missing"], row["annex_archive_requests"]) == (0, 0, 0), row
        assert row["ratio"] is not None and len(row["targets"]) == 2
    assert min(r["present"] for r in files["rounds"]) == 24 and min(r["present"] for r in zarr["rounds"]) >= 20
    assert sum(t["target"].startswith("lost-get:") for t in doc["targets"]) == 4
    # DataLad's start-up beside it: the least ratio any datalad get could show, and the get beyond it
    assert files["startup_s"] > 0 and files["ratio_floor"] > 1 and files["ratio_beyond_startup"] is not None


def test_bench_keep_pack_scenarios_at_a_toy_size(tmp_path: Path) -> None:
    """keep-pack, keep-pack-s3, verify-pack (issue 57): both shapes kept into a packed store, a directory store,
    a git-annex directory remote, pack+s3:// and s3://, verified; the store's files against the rule, the
    ratios and every target evaluated (no timing asserted)."""
    proc, doc = run_bench(
        tmp_path,
        "--scenarios",
        "keep-pack,keep-pack-s3,verify-pack",
        "--keep-pack-objects",
        "30",
        "--keep-pack-zarr-objects",
        "5",
        "--keep-pack-size",
        "64KiB",
        "--keep-pack-peer-objects",
        "10",
        "--keep-pack-s3-objects",
        "10",
    )
    by = {r["scenario"]: r for r in doc["results"]}
    # git annex copy's sample in the one Zarr: its first folder of chunks (28 of its 30 objects); the s3://
    # side's: the same folder, or the first 2 small Zarrs (10 files, 9 keys: .zgroup is one)
    for shape, keys, peer, sample in (
        ("zarr", 30, 28, 28),
        ("zarrs", 25, 30, 9),
    ):  # the 6 small Zarrs' .zgroup files are one key
        ours = by[f"keep-pack-{shape}"]
        assert (
            ours["n"] == 30
            and ours["transferred"] == keys
            and by[f"keep-pack-{shape}-directory"]["transferred"] == keys
        )
        assert ours["store_files"] <= ours["rule"] and ours["store_files_by_folder"]["packs"] >= 1, ours
        assert ours["x_directory"] > 0 and ours["x_annex"] > 0 and by[f"keep-pack-{shape}-annex"]["n"] == peer
        assert by[f"keep-pack-{shape}-rerun"]["transferred"] == 0
        s3 = by[f"keep-pack-s3-{shape}"]
        assert s3["transferred"] == keys and 0 < s3["store_files"] <= s3["rule"] and s3["x_s3"] > 0
        plain = by[f"keep-pack-s3-{shape}-s3"]
        assert plain["sampled"] and plain["n"] == plain["transferred"] == sample <= plain["bucket_objects"], plain
        verify = by[f"verify-pack-{shape}"]
        assert verify["checked"] == verify["good"] == by[f"verify-pack-{shape}-directory"]["checked"] == keys
        assert verify["x_directory"] > 0
        assert len(ours["targets"]) == 4 and len(s3["targets"]) == 2 and len(verify["targets"]) == 1
    names = {t["target"] for t in doc["targets"]}
    assert "keep-pack zarr: objects/s over git annex copy --to a directory remote" in names, names
    assert "keep-pack-s3 zarrs: objects/s over an s3:// store's" in names
    assert "verify-pack zarr: verify --stores --fraction 1 time over a directory store's" in names


def test_bench_pack_cycles_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """pack-cycles (issue 57): K cycles of 10 small keys into one packed store of small packs, merged on the
    way; files counted and every key read back after each cycle; targets evaluated."""
    proc, doc = run_bench(
        tmp_path, "--scenarios", "pack-cycles", "--pack-cycles", "12", "--pack-cycles-pack-size", "32KiB"
    )
    row = next(r for r in doc["results"] if r["scenario"] == "pack-cycles")
    assert (row["n"], row["keys"], row["reads"]) == (12, 120, 780), row
    assert row["packs_merged"] > 0 and row["write_amplification"] >= 1, "small packs were merged"
    assert row["files_last"] <= row["rule_last"] and row["worst_files_over_rule"] > 0
    assert row["unreadable"] >= 0 and row["lost_at_end"] >= 0  # measured, not asserted: the bench's finding
    assert {t["target"] for t in doc["targets"]} >= {
        "pack-cycles: files in the store / (2 ceil(bytes / pack size) + 16), worst cycle",
        "pack-cycles: reads of a kept key that failed or gave other bytes, over every cycle",
    }


def test_bench_pack_service_cycles_at_a_toy_size(tmp_path: Path) -> None:
    """pack-service-cycles (issue 57): the real ``neuromirror serve`` keeps each cycle's 10 revised files into one
    packed store while a reader process reads every named key; files, reads, losses and verify evaluated."""
    proc, doc = run_bench(
        tmp_path, "--scenarios", "pack-service-cycles", "--pack-service-cycles", "3", "--pack-cycles-pack-size", "32KiB"
    )
    row = next(r for r in doc["results"] if r["scenario"] == "pack-service-cycles")
    assert (row["n"], row["keys"], row["run_outcomes"]) == (3, 40, {"ok": 3}), row  # 10 first, then 10 a cycle
    assert row["verify_rc"] == 0 and row["verify_checked"] == 40 and row["lost_at_end"] == 0, row
    assert row["files_last"] <= row["rule_last"] and row["reads_beside"] > 0, row
    assert row["unreadable"] == row["unreadable_beside"] == 0, row
    assert {t["target"] for t in doc["targets"]} >= {
        "pack-service-cycles: reads beside the running service that failed or gave other bytes",
        "pack-service-cycles: verify --stores exit code after the last cycle",
    }


def test_bench_lost_stores_restore_pack_and_pack_thaw_at_a_toy_size(tmp_path: Path) -> None:
    """lost-stores, restore-pack, pack-thaw (issue 57): a clone's get of lost keys from each store kind, the
    mirror's readers on them; restore from a packed store against a directory store; DEEP_ARCHIVE packs thawed
    once (held in progress, then released); requests counted, targets evaluated (no timing asserted)."""
    proc, doc = run_bench(
        tmp_path,
        "--scenarios",
        "lost-stores,restore-pack,pack-thaw",
        "--lost-stores-chunks",
        "20",
        "--lost-stores-rounds",
        "1",
        "--restore-pack-files",
        "20",
        "--restore-pack-rounds",
        "1",
        "--pack-thaw-files",
        "12",
        "--pack-thaw-pack-size",
        "32KiB",
    )
    by = {r["scenario"]: r for r in doc["results"]}
    for what, kinds in (
        ("files", ("directory", "pack", "pack-s3", "s3")),
        ("chunks", ("directory", "pack", "pack-s3")),
    ):
        for kind in kinds:
            row = by[f"lost-stores-{what}-{kind}"]
            assert (row["missing"], row["archive_requests"]) == (0, 0), row
            assert row["startup_s"] > 0 and row["x_directory"] is not None
            assert (row["store_requests"] > 0) == kind.endswith("s3"), row
    for kind in ("pack", "pack-s3", "s3"):
        read = by[f"lost-stores-read-{kind}"]
        assert read["n"] == 24 + 3 and "fsspec_wrong" in read and "view_store_requests_per_key" in read, read
    restore = by["restore-pack"]
    assert restore["unwritten"] == by["restore-pack-directory"]["unwritten"] == 0 and restore["x_directory"] > 0
    thaw = by["pack-thaw"]
    assert thaw["packs"] >= 2 and thaw["pack_classes"] == ["DEEP_ARCHIVE"], thaw
    assert thaw["exit_codes"] == [0, 75, 75, 0, 0] and thaw["max_restore_requests_per_pack"] == 1, thaw
    assert thaw["rerun_restore_requests"] == thaw["thawed_restore_requests"] == 0 and thaw["unwritten"] == 0
    names = {t["target"] for t in doc["targets"]}
    assert "restore-pack: objects/s from a packed store over a directory store's" in names, names
    assert "pack-thaw: RestoreObject requests per pack (most)" in names


def test_bench_unreachable_store_at_a_toy_size(tmp_path: Path) -> None:
    """unreachable-store (issue 76): a clone's datalad get of lost files with a packed store gone before the clone
    and after it, beside git annex get --from the reachable one; every key got, targets evaluated (no timing
    asserted)."""
    proc, doc = run_bench(tmp_path, "--scenarios", "unreachable-store", "--unreachable-rounds", "1")
    by = {r["scenario"]: r for r in doc["results"]}
    for kind in ("annex", "gone-before", "gone-after", "both"):
        row = by[f"unreachable-store-{kind}"]
        assert row["missing"] == 0 and "error_seen" not in row, row
        assert row["startup_s"] > 0 and row["x_annex"] is not None and row["x_both"] is not None, row
    names = {t["target"] for t in doc["targets"]}
    assert any(n.startswith("unreachable store (gone after enabling)") for n in names), names


def test_bench_service_soak_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """service-soak (issue 59): a one-store and a two-store (directory + S3) ``neuromirror serve`` side by side
    through no-change runs; CPU per minute and RSS of each service process read, targets evaluated."""
    proc, doc = run_bench(
        tmp_path,
        "--scenarios",
        "service-soak",
        "--service-soak-minutes",
        "0.3",
        "--service-soak-runs",
        "10",
        "--service-soak-files",
        "4",
    )
    by = {r["scenario"]: r for r in doc["results"]}
    for side in ("service-soak-dir", "service-soak-dir+s3"):
        row = by[side]
        assert row["runs"] >= 1 and row["outcomes"] == ["unchanged"] and row["kept_runs"] == 0, row
        assert row["cpu_s_per_min"] >= row["own_cpu_s_per_min"] > 0 and row["peak_rss_mb"] > 0, row
    assert (
        by["service-soak"]["x_cpu"] is not None
        and by["service-soak"]["peak_rss_mb"] == by["service-soak-dir+s3"]["peak_rss_mb"]
    )
    names = {t["target"] for t in doc["targets"]}
    assert "service-soak: CPU-s per minute, dir + S3 store over one dir store" in names, names


def test_bench_ceiling_and_audit_scale_at_a_toy_size(tmp_path: Path) -> None:
    """ceiling and audit-scale (issue 59): the sync under a ceiling judged at the counting proxies (-J 4, 2 Dask
    workers, a capped no-change resync beside its start-up), and audit --json over an index of copied real syncs
    with planted findings; every row's fields there and the targets evaluated."""
    proc, doc = run_bench(
        tmp_path, "--scenarios", "ceiling,audit-scale", "--ceiling-dandisets", "3", "--ceiling-files", "2",
        "--ceiling-rounds", "1", "--audit-dandisets", "12", "--audit-planted", "2", "--audit-runs", "3",
        "--audit-rounds", "1",
    )  # fmt: skip
    by = {r["scenario"]: r for r in doc["results"]}
    for name in ("ceiling-j4", "ceiling-dask"):
        row = by[name]
        assert row["outcomes"] == ["ok"] and set(row["endpoints"]) == {"api", "s3"}, row
        assert row["requests"] > 0 and row["most_per_s"] >= 1 and row["most_in_flight"] >= 1, row
    assert by["ceiling-j4"]["named_share"] == 1.0, by["ceiling-j4"]["endpoints"]  # the contact on every request
    assert 1 <= len(by["ceiling-dask"]["workers"]) <= 2, by["ceiling-dask"]  # 3 tasks: the scheduler may use one
    resync = by["ceiling-resync"]
    assert resync["outcomes"] == ["unchanged"] and resync["version_s"] > 0 and resync["uncapped_s"] > 0, resync
    audit = by["audit-scale"]
    assert audit["sources_audited"] == 12 and audit["planted_expected"] == 2 * 7, audit
    assert audit["planted_found"] == audit["planted_expected"] and audit["clean_findings"] == 0, audit
    assert not audit["unexpected"] and audit["wall_s"] > 0 and audit["in_process_s"] > 0, audit
    names = {t["target"] for t in doc["targets"]}
    assert {"ceiling-j4: requests in any 1 s", "ceiling-dask: requests in flight"} <= names, names
    assert {"ceiling-resync: no change at 5/s, s beyond start-up", "audit-scale: audit --json, s"} <= names, names


def test_bench_tiff_region_scenario_at_a_toy_size(tmp_path: Path) -> None:
    """tiff-region (issue 60): a BOSS pin's region written by ``get --format tiff`` beside reading its chunks (the
    same cutout URLs, the same -J) in one run, alternating rounds; the TIFF's sub-regions equal intern's cutout of
    the same boxes from the stand-in; targets evaluated."""
    proc, doc = run_bench(
        tmp_path, "--scenarios", "tiff-region", "--tiff-mb", "1", "--tiff-chunk", "8x64x64", "--tiff-rounds", "2"
    )
    row = next(r for r in doc["results"] if r["scenario"] == "tiff-region")
    # 64 x 128 x 128 voxels, half a chunk in from the frame's origin: 9 x 3 x 3 chunks, partial ones at every edge
    assert (row["region"], row["region_mb"], row["chunks"]) == ("32:160,32:160,4:68", 1.0, 81), row
    assert row["tiff_chunks"] == {"read": 0, "from_boss": 81, "missing": 0, "unchecked": 0}
    assert row["wrong_voxels"] == 0 and row["shape_dtype_ok"] and len(row["checked_boxes"]) == 3
    assert len(row["rounds"]["floor_s"]) == len(row["rounds"]["tiff_s"]) == 2 and row["x_floor"] > 0
    assert row["peak_rss_mb"] > 0 and row["file_mb"] >= 1.0
    names = {t["target"] for t in doc["targets"]}
    assert {
        "tiff-region: TIFF region bytes/s over reading its chunks'",
        "tiff-region: peak RSS of get --format tiff (MB)",
        "tiff-region: voxels of the TIFF unlike intern's cutout",
    } <= names, names


def test_bench_nwb_search_and_references_at_a_toy_size(tmp_path: Path) -> None:
    """nwb-search and nwb-references (issue 60): a dandiset of pynwb-written NWB files, each with its own fields;
    their fields recorded as the references hook records them and searched end to end beside --version (the
    matches checked); with lindi's overlay, every file's reference made at an RTT (made = files, none failed)."""
    from neuromirror.read.references.lindi_env import overlay

    scenarios = "nwb-search,nwb-references" if overlay() else "nwb-search"
    proc, doc = run_bench(
        tmp_path, "--scenarios", scenarios, "--nwb-files", "6", "--nwb-search-rounds", "1", "--nwb-refs-rtt", "0.01"
    )
    by = {r["scenario"]: r for r in doc["results"]}
    search = by["nwb-search"]
    assert (search["n"], search["half_matches"], search["one_matches"], search["species_matches"]) == (6, 3, 1, 6)
    assert search["search_s"] > 0 and search["version_s"] > 0, search
    names = {t["target"] for t in doc["targets"]}
    assert "nwb-search: search --nwb-field over the files' fields, s" in names, names
    if overlay():
        refs = by["nwb-references"]
        assert (refs["n"], refs["rtt_ms"]) == (6, 10) and refs["cpu_s"] > 0 and refs["s_per_1000"] > 0, refs
        assert "nwb-references: 1,000 references at the RTT, s" in names, names


def test_bench_issue78_scenarios_at_a_toy_size(tmp_path: Path) -> None:
    """publish-github: 3 dandisets to the GitHub stand-in beside bare repositories (one create each, 0 calls on the
    rerun, one PATCH for a new title); icechunk-read: a 4-chunk slice through an Icechunk export, a 50-chunk export."""
    proc, doc = run_bench(
        tmp_path,
        "--scenarios",
        "publish-github,icechunk-read",
        "--publish-dandisets",
        "3",
        "--icechunk-slice",
        "4",
        "--icechunk-chunks",
        "50",
        "--icechunk-rtt",
        "0.01",
    )
    by = {r["scenario"]: r for r in doc["results"]}
    assert by["publish-github"]["creates_per_repo"] == 1 and by["publish-github"]["repos"] == 3
    assert by["publish-github-nochange"]["api_calls"] == 0
    assert by["publish-github-retitled"]["calls"] == {"GET /repos/{owner}/{repo}": 1, "PATCH /repos/{owner}/{repo}": 1}
    assert by["publish-github-bare"]["published"] == 3
    assert by["icechunk-read"]["n"] == 4 and by["icechunk-read"]["x_neuromirror"] > 0
    if "icechunk-read-view" in by:  # the view-URL form, where this run may listen on port 80
        assert by["icechunk-read-view"]["n"] == 4 and by["icechunk-read-view"]["x_neuromirror"] > 0
    assert by["icechunk-export"]["n"] == 50 and by["icechunk-export"]["wall_s"] > 0
    targets = {t["target"]: t["ok"] for t in doc["targets"]}
    assert targets["publish-github rerun with nothing new: API calls"] is True
    assert targets["publish-github: creates per repository (exactly 1)"] is True
    assert "icechunk-read: slice via Icechunk --from a pack over neuromirror://" in targets
