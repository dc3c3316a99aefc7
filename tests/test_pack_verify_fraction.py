"""``verify --stores --fraction F`` of a packed store, as the service's rolling check runs it: each run re-reads a
share of the store's packs whole and checks every key in each, the copies checked longest ago (or never) first,
so that two runs of 1/2 have read every key; a rotten key is found in the run that reads its pack, chosen or not.

Why: a pack is read whole or not at all (one request, one pass of the bytes), so the share a run reads is a share
of packs, and a rolling check must still reach every key in a bounded number of runs.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from helpers.keep import make_dandiset


def _keys_by_pack(store: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in (store / "index").glob("*.json"):
        doc = json.loads(f.read_text())
        out.setdefault(doc["pack"], set()).update(k[0] for k in doc["keys"])
    return out


def _packed(dandi_archive, tmp_path: Path, files: int):  # noqa: ANN001, ANN202
    """A dandiset of ``files`` files of 6-11 kB kept into a packed store of 16 KiB packs: ~2 keys a pack."""
    sizes = {f"sub-{i:02d}/f.nwb": 6_000 + 500 * i for i in range(files)}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    store = tmp_path / "packed"
    url = f"pack+file://{store}"
    d.run.ok("keep", d.spec, "--to", url, "--pack-size", "16K", "-J", "1")
    return d, store, url, sizes


def test_runs_of_half_the_store_read_whole_packs_and_together_every_key(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    d, store, url, sizes = _packed(dandi_archive, tmp_path, 10)
    packs = _keys_by_pack(store)
    assert len(packs) >= 4, packs
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
        assert all(keys <= read[-1] or not keys & read[-1] for keys in packs.values())  # each pack whole or not
    keys = set().union(*packs.values())
    assert keys - read[0] <= read[1]  # the second run read what the first did not (and, past it, the oldest)


def test_a_slice_finds_rot_in_a_key_it_did_not_choose_but_whose_pack_it_read(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    d, store, url, _ = _packed(dandi_archive, tmp_path, 6)
    d.run.ok("verify", "--stores", "--store", url)  # every copy checked now
    pack, held = next((p, keys) for p, keys in _keys_by_pack(store).items() if len(keys) >= 2)
    chosen, mate = sorted(held)[:2]
    index = sqlite3.connect(d.run.root / ".neuromirror" / "index.sqlite")
    with index:  # one copy checked long ago: the one a slice of one copy chooses
        index.execute("UPDATE store_checks SET checked = 0 WHERE key = ?", (chosen,))
    entries = json.loads((store / "index" / f"{pack}.json").read_text())["keys"]
    offset, length = next((o, n) for k, o, n, _ in entries if k == mate)
    victim = store / "packs" / f"{pack}.pack"
    os.chmod(victim, 0o644)
    data = bytearray(victim.read_bytes())
    data[offset + length // 2] ^= 0xFF
    victim.write_bytes(bytes(data))

    code, out, err = d.run("verify", "--stores", "--store", url, "--fraction", "0.1", "--json")
    assert code == 1, out + err
    report = json.loads(out)
    assert [b["key"] for b in report["bad"]] == [mate] and report["bad"][0]["repaired"], report
    assert report["checked"] == len(held), report  # the one pack read whole: the chosen copy and its mates
    assert d.run("verify", "--stores", "--store", url)[0] == 0  # repaired into a new pack
