"""``verify --stores --fraction F`` of a packed store, as the service's rolling check runs it: each run re-reads a
share of the store's packs whole and checks every key in each, the copies checked longest ago (or never) first,
so that two runs of 1/2 have read every key.

Why: a pack is read whole or not at all (one request, one pass of the bytes), so the share a run reads is a share
of packs, and a rolling check must still reach every key in a bounded number of runs.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

from helpers.keep import make_dandiset


def _keys_by_pack(store: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in (store / "index").glob("*.json"):
        doc = json.loads(f.read_text())
        out.setdefault(doc["pack"], set()).update(k[0] for k in doc["keys"])
    return out


def test_runs_of_half_the_store_read_whole_packs_and_together_every_key(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    sizes = {f"sub-{i:02d}/f.nwb": 6_000 + 500 * i for i in range(10)}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    store = tmp_path / "packed"
    url = f"pack+file://{store}"
    d.run.ok("keep", d.spec, "--to", url, "--pack-size", "16K", "-J", "1")
    packs = _keys_by_pack(store)
    assert len(packs) >= 4, packs
    # what a run of whole packs can have checked: the key counts of some set of packs
    whole = {
        sum(len(packs[p]) for p in chosen) for n in range(len(packs) + 1) for chosen in itertools.combinations(packs, n)
    }

    index = sqlite3.connect(d.run.root / ".neuromirror" / "index.sqlite")

    def check_times() -> dict[str, float]:
        return dict(index.execute("SELECT key, checked FROM store_checks"))

    read: list[set[str]] = []
    for _ in range(2):
        before = check_times()
        code, out, err = d.run("verify", "--stores", "--store", url, "--fraction", "0.5", "--json")
        assert code == 0, out + err
        report = json.loads(out)
        after = check_times()
        read.append({k for k, t in after.items() if t != before.get(k)})  # the keys this run re-read
        assert 0 < report["checked"] < len(sizes) and report["checked"] == report["good"] == len(read[-1]), report
        assert report["checked"] in whole, (report["checked"], sorted(whole))
        assert all(keys <= read[-1] or not keys & read[-1] for keys in packs.values())  # each pack whole or not
    keys = set().union(*packs.values())
    assert keys - read[0] <= read[1]  # the second run read what the first did not (and, past it, the oldest)
