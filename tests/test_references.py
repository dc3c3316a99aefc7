"""LINDI references of a pin's NWB files (issue 60): made at sync, read through, still read once the archive lost the file.

Real NWB files written by pynwb (a TimeSeries; an ElectricalSeries over an electrodes table; a chunked,
gzip-compressed series) are published in the DANDI stand-in and synced with ``--references`` by the real
CLI, in a process that sees lindi (tests/helpers/lindi_env.py: lindi pins zarr < 3, the venv has zarr 3).
pynwb then reads the same values through the reference (``neuromirror.api``'s door), through remfile on the
pinned URL, and from a ``datalad get`` copy; and, after ``keep`` into a directory store and every S3
version of the files deleted from the stand-in, through the reference again (the chunks from the store).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from conftest import clone
from helpers import lindi_env, nwb
from helpers.keep import T0, Dandiset, lose_blobs
from neuromirror.read.references.chunks import chunk_urls

#: the three shapes, each read back as pynwb gives it (a reader in a lindi process prints these lists)
READ = """
import json, sys
import numpy as np
from pynwb import NWBHDF5IO

def values(f):
    with NWBHDF5IO(file=f, mode="r") as io:
        n = io.read()
        out = {"session_id": n.session_id, "subject": n.subject.subject_id if n.subject else None}
        for name, series in n.acquisition.items():
            data = series.data
            out[name] = np.asarray(data[:]).ravel()[::997].tolist()
            out[name + ":head"] = np.asarray(data[:100]).ravel().tolist()[:20]
        if n.electrodes is not None:
            out["locations"] = list(n.electrodes["location"][:])
        return out
"""

THROUGH_API = (
    READ
    + """
from neuromirror import api
m = api.open(sys.argv[1])
got = {}
for path in sys.argv[3:]:
    opened = m.open_hdf5(f"{sys.argv[2]}/{path}", how=True)
    got[path] = {"via": opened.via, **values(opened.file)}
print(json.dumps(got))
"""
)

THROUGH_REMFILE = (
    READ
    + """
import h5py, remfile
got = {}
for pair in sys.argv[1:]:
    path, url = pair.split("=", 1)
    got[path] = values(h5py.File(remfile.File(url), "r"))
print(json.dumps(got))
"""
)

THROUGH_FILE = (
    READ
    + """
import h5py
print(json.dumps({p: values(h5py.File(where, "r")) for p, where in (a.split("=", 1) for a in sys.argv[1:])}))
"""
)


def expected() -> dict[str, dict]:
    def series(a: np.ndarray) -> tuple[list, list]:
        return a.ravel()[::997].tolist(), a[:100].ravel().tolist()[:20]

    out: dict[str, dict] = {}
    for path, name, data, session, subject in (
        (nwb.TIMESERIES, "running_speed", nwb.speed(), "ses-1", "mouse1"),
        (nwb.ECEPHYS, "ElectricalSeries", nwb.voltages(), "ses-1e", "mouse1"),
        (nwb.CHUNKED, "lick_counts", nwb.counts(), "ses-2", "mouse2"),
    ):
        every, head = series(data)
        out[path] = {"session_id": session, "subject": subject, name: every, f"{name}:head": head}
    out[nwb.ECEPHYS]["locations"] = [nwb.REGIONS[i // 4] for i in range(8)]
    return out


def strip_via(got: dict) -> dict:
    return {p: {k: v for k, v in d.items() if k != "via"} for p, d in got.items()}


@pytest.fixture(scope="module")
def synced(dandi_archive, tmp_path_factory) -> tuple[Dandiset, dict]:  # noqa: ANN001
    """A published dandiset of the three NWB files, synced with --references (by a lindi process); its report."""
    root = tmp_path_factory.mktemp("references") / "mirror"
    when = T0 + timedelta(days=900 + len(dandi_archive.dandiset_ids()))
    ident = dandi_archive.create_dandiset(name="lindi references", created=when)
    files = nwb.files(ident)
    for i, (path, data) in enumerate(files.items()):
        dandi_archive.put_asset(ident, path, data, when=when + timedelta(minutes=i + 1))
    version = dandi_archive.publish(ident, when=when + timedelta(hours=1))
    got = lindi_env.cli(root, "sync", f"dandi:{ident}", "--dandi-api", dandi_archive.api_url, "--references", "--json")
    assert got.returncode == 0, got.stderr
    from helpers.retrieve import Runner

    return Dandiset(dandi_archive, ident, version, files, Runner(root)), json.loads(got.stdout)


def test_sync_makes_one_reference_per_key_reading_few_bytes(synced) -> None:  # noqa: ANN001
    d, report = synced
    made = report["references"]["made"]
    assert {m["path"].split("/", 2)[2] for m in made} == set(d.files), report["references"]
    assert report["references"]["failed"] == []
    urls = {u["path"]: u for u in d.run.json("urls", d.spec)}
    for m in made:
        path = m["path"].split("/", 2)[2]
        assert m["key"] == urls[path]["key"] and "versionId=" in m["url"] and m["url"] == urls[path]["url"]
        ref = json.loads(Path(m["reference"]).read_text())
        assert Path(m["reference"]).is_relative_to(d.run.root / ".neuromirror" / "lindi")
        assert chunk_urls(ref) == {m["url"]}, chunk_urls(ref)  # the pinned URL, nothing else
        # made through 32 KiB blocks: a few % of the file, not lindi's own 105 % (pynwb's cached schema, ~200 KB
        # of text inlined in every reference, is most of it)
        assert m["bytes_read"] <= 0.05 * m["size"], m
        print(f"made {path}: {m['requests']} requests, {m['bytes_read']} of {m['size']} bytes")
    # a second sync with nothing new makes nothing; the references stay
    again = lindi_env.cli(d.run.root, "sync", d.source, "--dandi-api", d.archive.api_url, "--references", "--json")
    assert again.returncode == 0 and "references" not in json.loads(again.stdout), again.stdout


def test_pynwb_reads_the_same_through_the_reference_remfile_and_a_clone(synced, tmp_path: Path) -> None:  # noqa: ANN001
    d, _ = synced
    want = expected()
    paths = list(d.files)
    through = lindi_env.python(THROUGH_API, str(d.run.root), f"dandi/{d.id}@{d.version}", *paths)
    assert {p: g["via"] for p, g in through.items()} == dict.fromkeys(paths, "reference")
    assert strip_via(through) == want
    urls = {u["path"]: u["url"] for u in d.run.json("urls", d.spec)}
    assert lindi_env.python(THROUGH_REMFILE, *(f"{p}={urls[p]}" for p in paths)) == want
    copy = clone(d.ds, tmp_path / "clone")
    subprocess.run(["datalad", "get", *paths], cwd=copy, check=True, capture_output=True)
    assert lindi_env.python(THROUGH_FILE, *(f"{p}={copy / p}" for p in paths)) == want


SLICE = """
import json, sys
import numpy as np
from pynwb import NWBHDF5IO
from neuromirror import api

opened = api.open(sys.argv[1]).open_hdf5(sys.argv[2], reference=sys.argv[3] == "reference", how=True)
with NWBHDF5IO(file=opened.file, mode="r") as io:
    rows = io.read().acquisition["running_speed"].data[500_000:500_100]
print(json.dumps({"via": opened.via, "rows": np.asarray(rows).tolist()}))
"""


def test_a_slice_through_the_reference_costs_only_its_own_reads(synced, s3) -> None:  # noqa: ANN001
    """pynwb opening an 8 MB file and reading 100 rows: through the reference, no request before the slice's own
    read (one range of at most a 256 KiB piece); through h5py over neuromirror://, the metadata walk besides."""
    d, _ = synced
    target = f"dandi/{d.id}@{d.version}/{nwb.TIMESERIES}"
    seen = {}
    for how in ("reference", "h5py"):
        log = s3.log_requests()
        try:
            got = lindi_env.python(SLICE, str(d.run.root), target, how)
        finally:
            s3.log_requests(False)
        assert got == {"via": how, "rows": nwb.speed()[500_000:500_100].tolist()}
        seen[how] = (len(log), s3.bytes_sent)
    requests, sent = seen["reference"]
    assert requests == 1 and sent <= 256 * 1024, seen
    assert seen["h5py"][0] > requests, seen
    print(f"100 rows of an 8 MB NWB file: {seen}")


def test_search_by_nwb_field_answers_from_the_index(synced) -> None:  # noqa: ANN001
    d, _ = synced

    def found(*pairs: str) -> list[str]:
        args = [a for p in pairs for a in ("--nwb-field", p)]
        code, out, err = d.run("search", *args, "--source", d.source, "--json")
        assert code in (0, 1), err
        return sorted(r["path"] for r in json.loads(out))

    assert found("location=CA1") == [nwb.ECEPHYS] == found("location=visp")  # case-insensitive
    assert found("subject_id=mouse2") == [nwb.CHUNKED]
    assert found("species=Mus musculus") == sorted(d.files)
    assert found("subject_id=mouse1", "session_id=ses-1e") == [nwb.ECEPHYS]
    assert found("subject_id=mouse2", "location=CA1") == []
    rows = d.run.json("search", "--nwb-field", "location=CA1", "--source", "dandi")  # the newest version holding it
    assert [(r["version"], r["fields"]) for r in rows] == [("draft", {"location": "CA1"})]
    rows = d.run.json("search", "--nwb-field", "location=CA1", "--source", "dandi", "--all-versions")
    assert sorted(r["version"] for r in rows) == sorted([d.version, "draft"])
    code, out, err = d.run("search", "--nwb-field", "brain_region=CA1")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "FIELD one of" in err, err
    code, _, err = d.run("search", "--nwb-field", "location=nowhere")
    assert code == 1 and "no match" in err


def test_the_reference_still_reads_once_the_archive_lost_every_version(synced, tmp_path: Path) -> None:  # noqa: ANN001
    d, _ = synced
    d.run.ok("keep", d.spec, "--to", str(tmp_path / "store"))
    lose_blobs(d, list(d.files))
    for path in d.files:
        url = d.archive.asset_at(d.id, path, d.version).blob
        assert not d.archive.s3.client().list_object_versions(Bucket=url.bucket, Prefix=url.key).get("Versions")
    through = lindi_env.python(THROUGH_API, str(d.run.root), f"dandi/{d.id}@{d.version}", *d.files)
    assert {p: g["via"] for p, g in through.items()} == dict.fromkeys(d.files, "reference")
    assert strip_via(through) == expected()


def test_references_nwb_in_a_definition_and_without_lindi(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from helpers.retrieve import Runner

    when = T0 + timedelta(days=1500 + len(dandi_archive.dandiset_ids()))
    ident = dandi_archive.create_dandiset(name="lindi by definition", created=when)
    dandi_archive.put_asset(ident, nwb.TIMESERIES, nwb.timeseries_nwb(ident), when=when + timedelta(minutes=1))
    dandi_archive.put_asset(ident, "sub-x/fake.nwb", b"not HDF5 at all\n" * 100, when=when + timedelta(minutes=2))
    root = tmp_path / "mirror"
    # sync --references where lindi does not import (this venv: zarr 3): one line, exit 2, nothing synced
    code, out, err = Runner(root)("sync", f"dandi:{ident}", "--dandi-api", dandi_archive.api_url, "--references")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "neuromirror[references]" in err, (out, err)
    assert not (root / "dandi" / ident).exists()
    definition = lindi_env.definition(tmp_path, ident, dandi_archive.api_url, on_the_source=True)  # as documented
    assert lindi_env.cli(root, "check-config", str(definition)).returncode == 0
    got = lindi_env.cli(root, "sync", "--config", str(definition), "--json")
    assert got.returncode == 0, got.stderr
    refs = json.loads(got.stdout)["references"]
    assert [m["path"].split("/", 2)[2] for m in refs["made"]] == [nwb.TIMESERIES]
    assert [p.split("/", 2)[2] for p in refs["not_hdf5"]] == ["sub-x/fake.nwb"] and refs["failed"] == []
    rows = Runner(root).json("search", "--nwb-field", "identifier=" + f"neuromirror-{ident}-ses-1")
    assert [r["path"] for r in rows] == [nwb.TIMESERIES]


MAKE_ON_READ = """
import json, sys
from neuromirror import api
m = api.open(sys.argv[1])
first = m.open_hdf5(sys.argv[2], make=True, how=True)
first.file.close()
again = m.open_hdf5(sys.argv[2], how=True)
print(json.dumps({"first": first.via, "again": again.via, "reference": str(m.reference(sys.argv[2]))}))
"""


def test_a_reference_made_on_the_first_read(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from helpers.retrieve import Runner

    when = T0 + timedelta(days=1800 + len(dandi_archive.dandiset_ids()))
    ident = dandi_archive.create_dandiset(name="lindi on read", created=when)
    dandi_archive.put_asset(ident, nwb.CHUNKED, nwb.chunked_nwb(ident), when=when + timedelta(minutes=1))
    run = Runner(tmp_path / "mirror")
    run.ok("sync", f"dandi:{ident}", "--dandi-api", dandi_archive.api_url)  # no --references
    target = f"dandi/{ident}@draft/{nwb.CHUNKED}"
    got = lindi_env.python(MAKE_ON_READ, str(run.root), target)
    assert (got["first"], got["again"]) == ("reference", "reference"), got
    assert Path(got["reference"]).is_file() and Path(got["reference"]).is_relative_to(run.root / ".neuromirror")


@pytest.mark.parametrize(
    "entry",
    [
        "references: nwb",
        "options: {references: nwb}",
        "references: nwb\n    options: {dandi_api: 'http://127.0.0.1:9/api'}",
    ],
)
def test_check_config_takes_references_on_the_source_and_in_its_options(entry: str, tmp_path: Path) -> None:
    """docs/reading.md says ``references: nwb`` on a source; ``options: {references: nwb}`` says the same."""
    from helpers.config import write

    good = write(tmp_path, f"sources:\n  - spec: 'dandi:000027'\n    schedule: 6h\n    {entry}\n")
    checked = subprocess.run(
        [sys.executable, "-m", "neuromirror", "check-config", str(good), "--json"], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    assert "nwb" in checked.stdout and json.loads(checked.stdout)
    from neuromirror.config.load import load_config

    (source,) = load_config(good).sources
    assert source.options["references"] == "nwb"


def test_a_definition_names_a_kind_of_reference_it_knows(tmp_path: Path) -> None:
    from helpers.config import errors, write

    for where in ("options: {references: lindi}", "references: lindi"):
        bad = write(
            tmp_path,
            f"""
            sources:
              - spec: "dandi:000027"
                schedule: {{interval: 6h}}
                {where}
            """,
        )
        (issue,) = errors(bad)
        assert "m.yaml:4" in issue and "references: 'lindi' is not a kind of reference made (known: nwb" in issue, issue
    bad = write(tmp_path, "sources:\n  - spec: 'dandi:000027'\n    schedule: 6h\n    referenc: nwb\n")
    (issue,) = errors(bad)
    assert "sources[0]: unknown key 'referenc'" in issue, issue


IN_PROCESSES = """
import json, sys
from pathlib import Path
from neuromirror.read.references.batch import make_references
got = make_references(Path(sys.argv[1]), None, [(sys.argv[2], "draft")], jobs=2, processes=True)
print(json.dumps(got.to_json()))
"""


def test_a_batch_made_in_worker_processes(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """A large batch is made in spawned worker processes (h5py's lock serializes threads): the same references."""
    from helpers.retrieve import Runner

    when = T0 + timedelta(days=2400 + len(dandi_archive.dandiset_ids()))
    ident = dandi_archive.create_dandiset(name="lindi in processes", created=when)
    for i, (path, data) in enumerate(nwb.files(ident).items()):
        dandi_archive.put_asset(ident, path, data, when=when + timedelta(minutes=i + 1))
    run = Runner(tmp_path / "mirror")
    run.ok("sync", f"dandi:{ident}", "--dandi-api", dandi_archive.api_url)
    got = lindi_env.python(IN_PROCESSES, str(run.root), f"dandi:{ident}")
    assert sorted(m["path"].split("/", 2)[2] for m in got["made"]) == sorted(nwb.files(ident)), got
    assert got["failed"] == [] and all(Path(m["reference"]).is_file() for m in got["made"])
    assert [r["path"] for r in run.json("search", "--nwb-field", "location=CA1", "--source", f"dandi:{ident}")] == [
        nwb.ECEPHYS
    ]


def test_the_doors_name_a_wrong_path_as_the_api_does(synced) -> None:  # noqa: ANN001
    """Without lindi (this venv): open_hdf5 reads by h5py; a path the pin lacks, or no pin at all, is the API's error."""
    from neuromirror import api

    d, _ = synced
    with api.open(d.run.root) as m:
        assert m.reference(f"dandi/{d.id}@{d.version}/{nwb.TIMESERIES}") is not None
        opened = m.open_hdf5(f"neuromirror://dandi/{d.id}@{d.version}/{nwb.TIMESERIES}", how=True)
        assert opened.via == "h5py" and opened.file["general/session_id"][()] == b"ses-1"
        opened.file.close()
        for wrong, error in (
            (f"dandi/{d.id}@{d.version}/sub-none/x.nwb", api.NoSuchPath),
            (f"dandi/{d.id}@{d.version}/sub-mouse1", api.NoSuchPath),
            (f"dandi/{d.id}/{nwb.TIMESERIES}", api.BadInput),
        ):
            with pytest.raises(error):
                m.reference(wrong)
        with pytest.raises(api.NoSuchPath):
            m.open_hdf5(f"dandi/{d.id}@{d.version}/sub-none/x.nwb")


def test_open_hdf5_takes_the_clis_spec_form_and_names_a_file_that_is_not_hdf5(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """``dandi:ID@V/PATH`` (as the CLI takes a SPEC) opens the file ``dandi/ID@V/PATH`` does; a file that is
    not HDF5 is one line (BadInput), not h5py's "file signature not found"."""
    from helpers.retrieve import Runner
    from neuromirror import api

    when = T0 + timedelta(days=2300 + len(dandi_archive.dandiset_ids()))
    ident = dandi_archive.create_dandiset(name="open_hdf5 forms", created=when)
    dandi_archive.put_asset(ident, nwb.TIMESERIES, nwb.timeseries_nwb(ident), when=when + timedelta(minutes=1))
    dandi_archive.put_asset(ident, "sub-x/fake.nwb", b"not HDF5 at all\n" * 100, when=when + timedelta(minutes=2))
    version = dandi_archive.publish(ident, when=when + timedelta(hours=1))
    run = Runner(tmp_path / "mirror")
    run.ok("sync", f"dandi:{ident}", "--dandi-api", dandi_archive.api_url)
    with api.open(run.root) as m:
        for form in (f"dandi:{ident}@{version}", f"neuromirror://dandi/{ident}@{version}", f"dandi/{ident}@{version}"):
            f = m.open_hdf5(f"{form}/{nwb.TIMESERIES}", reference=False)
            assert f["general/session_id"][()] == b"ses-1", form
            f.close()
        with pytest.raises(api.BadInput) as info:
            m.open_hdf5(f"dandi:{ident}@{version}/sub-x/fake.nwb")
        assert str(info.value) == f"dandi/{ident}@{version}/sub-x/fake.nwb is not an HDF5 file" + (
            " (it does not start with HDF5's signature)"
        )
        with pytest.raises(api.BadInput, match="name the version"):
            m.open_hdf5(f"dandi:{ident}/{nwb.TIMESERIES}")
