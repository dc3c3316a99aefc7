"""A key's LINDI reference is kept into the store with the version, and read from there (issue 60).

A dandiset of a pynwb-written file is synced with ``--references`` (a process that sees lindi) and kept into
a real store of each kind (a directory, an S3 bucket on the stand-in, a packed directory); the keep puts the
reference beside the key.  Then the mirror loses its ``.neuromirror/lindi/`` file and the archive every S3
version of the file: ``open_hdf5`` (the API's door, in a lindi process) still opens the file through its
reference, read from the store, every chunk from the store's copy, and pynwb reads the values; the view
answers the reference from the store too (by path and by key) and lindi reads the file through it, for
every kind of store.  And a lab member's plain ``datalad clone`` of the dataset, no mirror root and no view,
takes the reference from the store with its own git-annex by the name docs/reading.md gives, and lindi
reads the file's fields through it, then its values once ``datalad get`` took the file from the store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests

from helpers import lindi_env, nwb
from helpers.keep import Dandiset, lose_blobs
from helpers.read import view_server
from helpers.service import ENV
from neuromirror.read.references.chunks import chunk_urls
from neuromirror.store.lindi import reference_name, reference_path

#: what the ``bucket`` fixture sets (or unsets) for the S3 store, in this process's environment only
STORE_SETTINGS = (
    "NEUROMIRROR_STORE_ENDPOINT",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "NEUROMIRROR_STORE_REGION",
    "NEUROMIRROR_STORE_PUBLIC_URL",
)

#: neuromirror's door on the mirror, in a process with lindi: how it opened, the values pynwb reads
READ_BY_API = """
import json, sys
import numpy as np
from pynwb import NWBHDF5IO
from neuromirror import api

with api.open(sys.argv[1]) as m:
    opened = m.open_hdf5(sys.argv[2], how=True)
    with NWBHDF5IO(file=opened.file, mode="r") as io:
        n = io.read()
        data = n.acquisition["running_speed"].data
        print(json.dumps({"via": opened.via, "head": np.asarray(data[:100]).tolist(),
                          "tail": np.asarray(data[-5:]).tolist(), "session_id": n.session_id}))
"""


def _synced(dandi_archive, root: Path, days: int) -> Dandiset:  # noqa: ANN001
    return lindi_env.synced_timeseries(dandi_archive, root, days, "lindi kept")


@pytest.fixture(params=["directory", "S3", "pack"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store of each kind (an S3 one on the stand-in, whose endpoint and credentials the view's process
    gets too, as a lab's view has its store's settings in its environment)."""
    if request.param == "directory":
        return str(tmp_path / "store")
    if request.param == "pack":
        return f"pack+file://{tmp_path / 'packed'}"
    bucket = request.getfixturevalue("bucket")
    env = request.getfixturevalue("monkeypatch")
    for name in STORE_SETTINGS:
        if name in os.environ:
            env.setitem(ENV, name, os.environ[name])
        else:
            env.delitem(ENV, name, raising=False)
    return f"s3://{bucket}/lab/keep"


def test_a_kept_reference_reads_after_the_mirror_and_the_archive_lost_theirs(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
    store_url: str,
) -> None:
    from neuromirror.store.location import open_store

    d = _synced(dandi_archive, tmp_path / "mirror", 2600)
    url = store_url
    (row,) = d.run.json("urls", d.spec, "--references")
    key, mine = row["key"], Path(row["reference"])
    made = json.loads(mine.read_text())
    code, out, err = d.run("keep", d.spec, "--to", url, "--json")
    assert code == 0, err
    assert json.loads(out)["references"] == 1
    store = open_store(url)
    assert store.has(key) and store.has(reference_name(key))
    with store.open_key(reference_name(key)) as fh:
        assert json.loads(fh.read()) == made  # the mirror's own reference, as it was made
    code, out, _ = d.run("keep", d.spec, "--to", url, "--json")  # a rerun puts nothing again
    assert code == 0 and json.loads(out)["references"] == 0

    mine.unlink()
    lose_blobs(d, [nwb.TIMESERIES])
    target = f"dandi/{d.id}@{d.version}/{nwb.TIMESERIES}"
    got = lindi_env.python(READ_BY_API, str(d.run.root), target)
    assert got == {"via": "reference", **lindi_env.timeseries_values()}
    assert json.loads(reference_path(d.run.root, key).read_text()) == made  # written back under the root

    # the view, with no reference under the root either: by path (chunks through the view's URL of the
    # file, which streams the store's copy) and by key, lindi reading the file through it
    reference_path(d.run.root, key).unlink()
    with view_server(d.run.root) as base:
        by_path = f"{base}dav/dandi/{d.id}/{d.version}/{nwb.TIMESERIES}.lindi.json"
        served = requests.get(by_path, timeout=30)
        assert served.status_code == 200, served.text
        assert chunk_urls(served.json()) == {by_path[: -len(".lindi.json")]}
        assert lindi_env.python(lindi_env.READ_SERVED, by_path) == lindi_env.timeseries_values()
        reference_path(d.run.root, key).unlink()
        by_key = requests.get(f"{base}lindi/{key}.lindi.json", timeout=30)
        assert by_key.status_code == 200, by_key.text
        assert by_key.json() == made


def test_a_store_without_the_reference_leaves_the_file_to_h5py(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """A store kept before the mirror had the reference holds none: the door opens the file by h5py, from the
    store's copy, and says so (no reference invented, no error)."""
    d = _synced(dandi_archive, tmp_path / "mirror", 2700)
    (row,) = d.run.json("urls", d.spec, "--references")
    Path(row["reference"]).unlink()
    code, out, err = d.run("keep", d.spec, "--to", str(tmp_path / "store"), "--json")
    assert code == 0, err
    assert json.loads(out)["references"] == 0
    lose_blobs(d, [nwb.TIMESERIES])
    got = lindi_env.python(READ_BY_API, str(d.run.root), f"dandi/{d.id}@{d.version}/{nwb.TIMESERIES}")
    assert got == {"via": "h5py", **lindi_env.timeseries_values()}


#: a reference made on the first read (the API's door with ``make``), in a process with lindi
MAKE_BY_API = """
import json, sys
from neuromirror import api

with api.open(sys.argv[1]) as m:
    print(json.dumps([m.open_hdf5(sys.argv[2], make=True, how=True).via]))
"""


def test_a_reference_made_after_a_whole_keep_goes_in_with_the_next_keep(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """A version kept whole has a mark, so the next keep does not look at it again; a reference made after
    that mark (on a first read) still reaches the store with the next keep, not only with a later version."""
    d = _synced(dandi_archive, tmp_path / "mirror", 2800)
    (row,) = d.run.json("urls", d.spec, "--references")
    key = row["key"]
    Path(row["reference"]).unlink()
    store_dir = tmp_path / "store"
    code, out, err = d.run("keep", d.spec, "--to", str(store_dir), "--json")
    assert code == 0, err
    assert json.loads(out)["references"] == 0
    code, out, _ = d.run("keep", d.spec, "--to", str(store_dir), "--json")
    assert code == 0 and json.loads(out)["versions"][0]["from_mark"] is True  # whole, by its mark

    target = f"dandi/{d.id}@{d.version}/{nwb.TIMESERIES}"
    assert lindi_env.python(MAKE_BY_API, str(d.run.root), target) == ["reference"]  # made now, on the read
    code, out, err = d.run("keep", d.spec, "--to", str(store_dir), "--json")
    assert code == 0, err
    assert json.loads(out)["references"] == 1
    from neuromirror.store.location import open_store

    store = open_store(str(store_dir))
    with store.open_key(reference_name(key)) as fh:
        assert json.loads(fh.read()) == json.loads(reference_path(d.run.root, key).read_text())
    code, out, _ = d.run("keep", d.spec, "--to", str(store_dir), "--json")  # and then the mark holds again
    assert code == 0 and json.loads(out)["references"] == 0 and json.loads(out)["versions"][0]["from_mark"] is True


#: lindi in a clone, on the reference its git-annex took from the store, its chunks pointed at the clone's own
#: file (``argv[2]``): pynwb's fields, and the values once the file is there (``argv[3]`` == "got")
READ_IN_CLONE = """
import json, sys
import lindi
import numpy as np
from pynwb import NWBHDF5IO

reference, here, got = sys.argv[1:]
with open(reference) as fh:
    rfs = json.load(fh)
rfs["templates"] = {name: here for name in rfs["templates"]}
with NWBHDF5IO(file=lindi.LindiH5pyFile.from_reference_file_system(rfs), mode="r") as io:
    n = io.read()
    data = n.acquisition["running_speed"].data
    out = {"session_id": n.session_id}
    if got == "got":
        out.update(head=np.asarray(data[:100]).tolist(), tail=np.asarray(data[-5:]).tolist())
    else:
        try:
            data[:100]
        except OSError as exc:
            out["chunks"] = type(exc).__name__
print(json.dumps(out))
"""


def test_a_clone_reads_a_lost_file_by_the_reference_its_store_keeps(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
    store_url: str,
) -> None:
    """What docs/reading.md promises a lab member with a plain clone (no mirror root, no view): the clone's own
    git-annex takes ``LINDI--KEY.lindi.json`` from the store it enabled by itself (no dataset records the
    name: ``transferkey``, as the reference has no checksum to verify), lindi reads the file's fields from it
    with no byte of the file, and its values once ``datalad get`` took the file from the store, the archive
    having lost every version of it."""
    from conftest import clone, datalad_get, git

    d = _synced(dandi_archive, tmp_path / "mirror", 2900)
    (row,) = d.run.json("urls", d.spec, "--references")
    made = json.loads(Path(row["reference"]).read_text())
    code, _, err = d.run("keep", d.spec, "--to", store_url)
    assert code == 0, err
    lose_blobs(d, [nwb.TIMESERIES])

    work = clone(d.ds, tmp_path / "clone")
    git(work, "checkout", "-q", d.version)
    (store,) = [name for name in git(work, "remote").split() if name.startswith("neuromirror-store-")]
    assert f"[{store}]" in git(work, "annex", "whereis", nwb.TIMESERIES)  # how a reader learns its name
    name = reference_name(git(work, "annex", "lookupkey", nwb.TIMESERIES).strip())
    unverified = "annex.security.allow-unverified-downloads=ACKTHPPT"
    git(work, "-c", unverified, "annex", "transferkey", name, "--from", store)
    reference = work / git(work, "annex", "contentlocation", name).strip()
    assert json.loads(reference.read_text()) == made

    here = str(work / nwb.TIMESERIES)
    values = lindi_env.timeseries_values()
    before = lindi_env.python(READ_IN_CLONE, str(reference), here, "not got")
    assert before == {"session_id": values["session_id"], "chunks": "FileNotFoundError"}
    datalad_get(work, nwb.TIMESERIES)  # from the store: the archive has none
    assert lindi_env.python(READ_IN_CLONE, str(reference), here, "got") == values


def test_prune_drops_a_dead_keys_reference_with_it(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """``keep --prune``: the reference kept beside a key the kept versions no longer name goes with the key
    (the reader's ``kept`` hook), and a live key's stays."""
    from datetime import timedelta

    from conftest import git
    from helpers.keep import T0, key_of, make_dandiset
    from neuromirror.demo import deterministic_bytes
    from neuromirror.store.location import open_store

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 2_000})
    when = T0 + timedelta(days=400)
    dandi_archive.put_asset(d.id, "c.nwb", deterministic_bytes(f"{d.id}:c-first", 3_000), when=when)  # draft only
    d.run.ok("sync", d.source, "--dandi-api", dandi_archive.api_url)
    old = key_of(d.ds, "c.nwb", git(d.ds, "rev-parse", "HEAD").strip())
    live = key_of(d.ds, "a.nwb", d.version)
    for key in (old, live):  # a reference the mirror made of each (its bytes are not read here)
        made = reference_path(d.run.root, key)
        made.parent.mkdir(parents=True, exist_ok=True)
        made.write_text(json.dumps({"refs": {".zgroup": {"zarr_format": 2}}, "key": key}))
    store_dir = tmp_path / "store"
    code, out, err = d.run("keep", d.source, "--to", str(store_dir), "--json")
    assert code == 0 and json.loads(out)["references"] == 2, err
    store = open_store(str(store_dir))
    assert store.has(reference_name(old)) and store.has(reference_name(live))

    # upstream replaces the draft's file: the old draft state, and its key, are no longer selected
    dandi_archive.put_asset(
        d.id, "c.nwb", deterministic_bytes(f"{d.id}:c-second", 3_000), when=when + timedelta(hours=1)
    )
    d.run.ok("sync", d.source, "--dandi-api", dandi_archive.api_url)
    code, out, err = d.run("keep", d.source, "--to", str(store_dir), "--prune", "--json")
    assert code == 0 and json.loads(out)["prune"]["dead_keys"] == 1, err
    store = open_store(str(store_dir))
    assert not store.has(old) and not store.has(reference_name(old))
    assert store.has(live) and store.has(reference_name(live))
