"""``status --copies --json`` per archive: keys by number of verified copies, by store, age of the last check.

Why: an operator judges a backup by how many verified copies each object has and how stale the
checks are, per archive — not version by version.  Two dandisets are mirrored from the stand-in;
one is kept whole in one store and in part in a second, the other not at all; the per-archive
record counts each distinct key once, per store, and says when the stalest copy was last read right.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers.keep import make_dandiset


def test_status_copies_per_archive(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    root = tmp_path / "mirror"
    d = make_dandiset(dandi_archive, root, {"sub-01/a.nwb": 20_000, "sub-01/b.nwb": 7_001, "sub-02/c.nwb": 3_000})
    other = make_dandiset(dandi_archive, root, {"sub-01/x.nwb": 11_000})
    one, two = tmp_path / "store-one", tmp_path / "store-two"
    d.run.ok("keep", d.spec, "--to", str(one))
    d.run.ok("keep", d.spec, "--to", str(two), "--include", "sub-01/*")

    status = json.loads(d.run.ok("status", "--copies", d.spec, other.spec, "--json"))
    (dandi,) = status["archives"]
    assert dandi["archive"] == "dandi"
    assert dandi["keys"] == 4 and dandi["bytes"] == 20_000 + 7_001 + 3_000 + 11_000
    assert dandi["by_copies"] == {"0": 1, "1": 1, "2": 2}
    assert dandi["fewer_than_wanted"] == 1  # x.nwb: none outside the archive
    by_url = {s["url"]: s for s in dandi["by_store"].values()}
    assert {u: (s["keys"], s["bytes"]) for u, s in by_url.items()} == {
        str(one): (3, 30_001),
        str(two): (2, 27_001),
    }
    for s in by_url.values():
        assert s["oldest_check"] <= s["newest_check"] and s["oldest_check_age_s"] >= 0
    assert dandi["oldest_last_check"] is not None and dandi["oldest_last_check_age_s"] >= 0
    # the version records are as before, beside it
    assert {v["source"] for v in status["versions"]} == {d.source, other.source}


def test_the_per_archive_count_answers_the_same_once_its_keys_are_fingerprints(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch,  # noqa: ANN001
) -> None:
    """An archive of 10^6 keys is counted in ~28 bytes a key (keys sorted as fingerprints past COMPACT_MIN):
    the same record as by name, keys several versions share and stores added later included."""
    import neuromirror.api as api
    from neuromirror.keep import archive_copies

    root = tmp_path / "mirror"
    files = {f"sub-{i:02d}/f.nwb": 1_000 + i for i in range(7)}
    d = make_dandiset(dandi_archive, root, files)
    other = make_dandiset(dandi_archive, root, {"sub-01/x.nwb": 11_000})
    d.run.ok("keep", d.spec, "--to", str(tmp_path / "one"))
    d.run.ok("keep", d.spec, "--to", str(tmp_path / "two"), "--include", "sub-0[135]/*")

    def per_archive(compact_min: int) -> list[dict]:
        monkeypatch.setattr(archive_copies, "COMPACT_MIN", compact_min)
        got = api.open(root).copies([d.spec, other.spec]).to_json()["archives"]
        for a in got:
            a.pop("oldest_last_check_age_s")
            for s in a["by_store"].values():
                s.pop("oldest_check_age_s")
        return got

    by_name = per_archive(10**6)
    assert by_name[0]["by_copies"] == {"0": 1, "1": 4, "2": 3} and by_name[0]["keys"] == 8
    assert per_archive(2) == per_archive(1) == by_name
