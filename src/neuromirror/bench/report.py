"""What a run prints: the table of scenarios and the notes under it; the ratios to the anchors.

The JSON file holds the same rows (``results``) and this text (``report``); the columns
are the fields docs/performance.md explains.
"""

from __future__ import annotations

from typing import Optional

from neuromirror.bench.scenarios.per_size import HEAD_WORKERS


def find(results: list[dict], scenario: str, n: int) -> Optional[dict]:
    for r in results:
        if r["scenario"] == scenario and r["n"] == n:
            return r
    return None


def add_ratios(results: list[dict]) -> None:
    for r in results:
        n = r["n"]
        batch, addurls = find(results, "anchor-batch", n), find(results, "anchor-addurls", n)
        rate = r.get("registration_files_per_s") if r["scenario"] in ("dandi-cold", "aind-cold") else None
        for anchor, key in ((batch, "batch"), (addurls, "addurls")):
            if anchor and anchor.get("files_per_s") and r.get("files_per_s"):
                r[f"x_{key}"] = round(r["files_per_s"] / anchor["files_per_s"], 2)
                if rate:
                    r[f"registration_x_{key}"] = round(rate / anchor["files_per_s"], 1)


COLUMNS = [
    ("scenario", "scenario", "{}"),
    ("n", "N", "{}"),
    ("wall_s", "wall s", "{:.2f}"),
    ("files_per_s", "files/s", "{:,.0f}"),
    ("listing_s", "listing", "{:.2f}"),
    ("pinning_s", "pinning", "{:.2f}"),
    ("registration_commit_s", "reg+commit", "{:.2f}"),
    ("annex_branch_s", "(annex)", "{:.2f}"),
    ("index_s", "index", "{:.2f}"),
    ("setup_s", "setup", "{:.2f}"),
    ("root_register_s", "root", "{:.2f}"),
    ("unnamed_s", "unnamed", "{:.2f}"),
    ("other_s", "other", "{:.2f}"),
    ("zarr_listing_s", "(Zarr list)", "{:.2f}"),
    ("zarr_commit_s", "(Zarr commit)", "{:.2f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    ("cpu_s", "CPU s", "{:.1f}"),
    ("x_batch", "x batch", "{:.2f}"),
    ("x_addurls", "x addurls", "{:.1f}"),
]


def table(results: list[dict]) -> str:
    rows = [[c[1] for c in COLUMNS]]
    for r in results:
        if r["scenario"] in ("index",):
            continue
        rows.append([c[2].format(r[c[0]]) if r.get(c[0]) is not None else "-" for c in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def report(doc: dict) -> str:
    m = doc["machine"]
    out = [
        f"neuromirror bench {doc['started']} on {m.get('cpu', '?')} x{m.get('cpus')} cores, "
        f"{m.get('ram_gb', '?')} GB RAM, {m.get('git')}, git-annex {m.get('git-annex')}, "
        f"load average at start {m.get('loadavg_at_start')}",
        f"start-up (neuromirror --help): {doc['startup']['help_s']:.3f} s (bare python {doc['startup']['python_s']:.3f} s)",
        "",
        table(doc["results"]),
        "",
    ]
    for r in doc["results"]:
        if r.get("error"):
            continue
        if r["scenario"] == "head-reference":
            out.append(
                f"head-reference N={r['n']}: plain concurrent HEAD loop ({HEAD_WORKERS} workers, own process) on "
                f"{r['rows']} of the same S3 objects, before and after the cold mirror: "
                f"{r.get('heads_per_s_before', r['heads_per_s']):.0f} and {r.get('heads_per_s_after', r['heads_per_s']):.0f} "
                f"HEAD/s. Cold DANDI mirrors are bound by this: N / rate = {r['n'] / r['heads_per_s']:.0f} s of "
                f"pinning at N={r['n']}."
            )
        if r["scenario"] == "anchor-addurls":
            out.append(
                f"anchor-addurls N={r['n']}: measured on a subsample of {r['rows']} rows (datalad addurls is too "
                f"slow for all N): {r['files_per_s']:.1f} files/s."
            )
        if r["scenario"] == "anchor-batch" and r["rows"] < r["n"]:
            out.append(f"anchor-batch N={r['n']}: measured on the first {r['rows']} rows.")
    if doc.get("index"):
        i = doc["index"]
        out.append(
            f"index: {i['n']:,} file rows ({i['size_mb']:.0f} MB, {i['versions']} versions): versions "
            f"{i['versions_in_process_ms']:.1f} ms, pin {i['pin_in_process_ms']:.1f} ms in-process (open "
            f"{i['index_open_ms']:.1f} ms); as commands {i['versions_command_s']:.2f} s / {i['pin_command_s']:.2f} s "
            f"(start-up {doc['startup']['help_s']:.2f} s)"
        )
    for r in doc["results"]:
        if r.get("error"):
            out.append(
                f"ERROR {r['scenario']} N={r['n']}: {r['error'].strip().splitlines()[-1] if r['error'].strip() else '?'}"
            )
    out.append("")
    out.append("targets:")
    for t in doc["targets"]:
        out.append(
            f"  [{'PASS' if t['ok'] else 'FAIL'}] {t['target']}: {t['value']} (want {t['limit']})"
            + (f" - {t['note']}" if t["note"] else "")
        )
    return "\n".join(out)
