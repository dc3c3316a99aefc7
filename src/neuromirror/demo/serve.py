"""``neuromirror demo --serve``: a demo mirror that stays up, with lines to paste into another shell.

``scripts/demo`` stops its stand-in archives when it ends, so a newcomer who keeps its mirror
holds URLs that no longer answer.  Here the stand-in DANDI archive (and its S3) and the view
(``serve --no-schedule``) keep running until Ctrl-C.  The mirror holds the sample dandiset (with
a real NWB file, written by pynwb) and a Zarr dandiset with two states: one chunk rewritten in
place upstream between two syncs, so the earlier state is readable by its commit only.  Then it
prints ``mirror: PATH``, ``view: URL`` and one ready-to-paste line per way of reading a pin
(``neuromirror urls``, h5py and zarr-python through ``neuromirror://`` and through the view,
rclone, curl, DataLad), each of which the tests run as printed.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from neuromirror.demo import _run, _say, build_sample_dandiset, fresh_root

#: the real NWB file of the sample dandiset and the series the printed lines read
NWB_PATH = "sub-01/sub-01_ses-1_behavior.nwb"
NWB_SERIES = "acquisition/running_speed/data"
#: the Zarr asset of the second dandiset: an OME-Zarr-like group whose array ``0`` is read
ZARR_PATH = "sample.ome.zarr"
ZARR_SHAPE, ZARR_CHUNKS = (4, 6), (2, 3)
#: what the chunk ``0/0/0`` holds after its rewrite upstream (before: 0, 1, 2 / 6, 7, 8)
REWRITTEN = 900
READY = "== ready: paste any line below into another shell"
SERVING = "== serving until Ctrl-C"
#: what each printed DataLad command passes as ``datalad -c``, which datalad hands to every git and
#: git-annex it starts (GIT_CONFIG_COUNT), subdatasets' clones included: the loopback stand-in archive
#: (git-annex refuses its address unless told, and a ``get -r``'s subdataset never saw a ``git config``
#: made in its superdataset), and an identity for ``git annex init`` on a machine with none
DATALAD_CONFIG = (
    "-c annex.security.allowed-ip-addresses=127.0.0.1 -c user.name=neuromirror-demo"
    " -c user.email=neuromirror-demo@localhost"
)


@dataclass
class DemoMirror:
    """What the printed lines name."""

    root: Path
    work: Path
    sample: str  # the sample dandiset's identifier
    version: str  # its published version
    zarr_dandiset: str
    first: str  # the Zarr dandiset's earlier state: its short commit, as ``versions`` shows it
    reference: bool = False  # the NWB file got its LINDI reference (lindi importable, or its overlay: scripts/_venv.sh)
    lindi_path: str = ""  # the overlay a reader of the reference puts on PYTHONPATH ("" when lindi imports here)
    s3: Any = None  # the stand-in S3 (endpoint, credentials) and the archive's bucket, for the restore line
    bucket: str = ""


def real_nwb() -> bytes:
    """A small NWB file written by pynwb: a 1000-sample ``running_speed`` series (0.0, 0.1, 0.2, ...)."""
    import numpy as np
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    nwb = NWBFile(
        session_description="neuromirror demo: running speed",
        identifier="neuromirror-demo-behavior",
        session_start_time=datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc),
    )
    data = np.arange(1000, dtype="float64") / 10
    nwb.add_acquisition(TimeSeries(name="running_speed", data=data, unit="m/s", rate=100.0))
    with tempfile.TemporaryDirectory(prefix="neuromirror-nwb-") as tmp:
        path = Path(tmp) / "demo.nwb"
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
        return path.read_bytes()


def zarr_files(rewritten: bool = False) -> dict[str, bytes]:
    """A Zarr v2 group with an uncompressed int32 array ``0`` of ``arange(24)``, as zarr-python reads it."""
    import numpy as np

    meta = {
        "zarr_format": 2,
        "shape": list(ZARR_SHAPE),
        "chunks": list(ZARR_CHUNKS),
        "dtype": "<i4",
        "compressor": None,
        "fill_value": 0,
        "filters": None,
        "order": "C",
        "dimension_separator": "/",
    }
    files = {
        ".zgroup": b'{"zarr_format": 2}',
        ".zattrs": json.dumps({"multiscales": [{"version": "0.4", "datasets": [{"path": "0"}]}]}).encode(),
        "0/.zarray": json.dumps(meta).encode(),
    }
    values = np.arange(24, dtype="<i4").reshape(ZARR_SHAPE)
    for i in range(ZARR_SHAPE[0] // ZARR_CHUNKS[0]):
        for j in range(ZARR_SHAPE[1] // ZARR_CHUNKS[1]):
            block = values[i * 2 : i * 2 + 2, j * 3 : j * 3 + 3]
            files[f"0/{i}/{j}"] = block.tobytes()
    if rewritten:
        files["0/0/0"] = (np.arange(6, dtype="<i4") + REWRITTEN).tobytes()
    return files


def _exe(name: str) -> str:
    """``name`` as a user pastes it into another shell, where nothing may be on PATH (a venv not
    activated there, ``scripts/demo`` putting its venv on its own PATH only): the path of ours if we
    have it, else the bare name."""
    ours = Path(sys.executable).parent / name
    return shlex.quote(str(ours)) if ours.exists() else name


def _with_tools(cmd: str) -> str:
    """``cmd`` with the bin directory installed with neuromirror (git-annex, its special remotes) in
    front of PATH, for that command alone: datalad and git find no git-annex in a shell without it."""
    tools = Path(sys.executable).parent
    if not (tools / "git-annex").exists():
        return cmd
    return f'PATH={shlex.quote(str(tools))}:"$PATH" {cmd}'


def build(root: Path, work: Path, dandi: Any, exe: list[str], env: dict) -> DemoMirror:
    """The two dandisets on the stand-in, mirrored into ``root``: the sample, then the Zarr in two states."""
    sample = build_sample_dandiset(dandi, extra={NWB_PATH: real_nwb()})
    spec = f"dandi:{sample.identifier}"
    _say(f"== sample dandiset {sample.identifier}: version {sample.published} (with a real NWB file), then a draft")
    from neuromirror.read.references.lindi_env import available, overlay, with_overlay

    lindi_path = None if available() else overlay()  # lindi pins zarr < 3: scripts/_venv.sh puts it beside the venv
    reference = available() or lindi_path is not None  # the NWB file's LINDI reference, made by the sync
    refs = ["--references"] if reference else []
    _run([*exe, "sync", spec, "--dandi-api", dandi.api_url, "-q", *refs], env=with_overlay(env) if lindi_path else env)
    t0 = datetime(2024, 4, 1, 12, 0, tzinfo=timezone.utc)
    zid = dandi.create_dandiset(None, name="neuromirror demo: a Zarr rewritten in place", created=t0)
    aid = dandi.add_zarr_asset(zid, ZARR_PATH, zarr_files(), when=t0)
    zspec = f"dandi:{zid}"
    _say(f"== Zarr dandiset {zid}: synced, then a chunk rewritten in place upstream, synced again")
    _run([*exe, "sync", zspec, "--dandi-api", dandi.api_url, "-q"], env=env)
    rewritten = {"0/0/0": zarr_files(rewritten=True)["0/0/0"]}
    dandi.modify_zarr(dandi.asset(aid).zarr.zarr_id, put=rewritten, when=t0 + timedelta(days=1))
    _run([*exe, "sync", zspec, "--dandi-api", dandi.api_url, "-q"], env=env)
    versions = json.loads(_run([*exe, "versions", zspec, "--json"], env=env))
    first = versions[0]["commit"][:12]
    return DemoMirror(
        root,
        work,
        sample.identifier,
        sample.published,
        zid,
        first,
        reference,
        str(lindi_path or ""),
        dandi.s3,
        dandi.bucket,
    )


def ready_lines(m: DemoMirror, url: str) -> list[str]:
    """``mirror:``, ``view:`` and a comment and a command per way of reading the demo's pins."""
    q = shlex.quote
    nm = f"{_exe('neuromirror')} --root {q(str(m.root))}"
    py = _exe("python")
    dav = f"{url}dav"
    nwb_pin = f"dandi/{m.sample}@{m.version}/{NWB_PATH}"
    nwb_view = f"{dav}/dandi/{m.sample}/{m.version}/{NWB_PATH}"
    old_view = f"{dav}/dandi/{m.zarr_dandiset}/{m.first}/{ZARR_PATH}/0"
    root_opt = json.dumps({"root": str(m.root)})
    clone, zarr_clone = m.work / "clone", m.work / "zarr-clone"
    datalad = _with_tools(f"{_exe('datalad')} {DATALAD_CONFIG}")

    def python(code: str) -> str:
        return f"{py} -c {q(code)}"

    h5 = f'print(h5py.File(f)["{NWB_SERIES}"][:5])'
    return [
        f"mirror: {m.root}",
        f"view: {url}",
        f"# the files of version {m.version} and the URLs that serve exactly their bytes",
        f"{nm} urls dandi:{m.sample}@{m.version}",
        f"# the states of the Zarr dandiset: the earlier one ({m.first}) only by its commit",
        f"{nm} versions dandi:{m.zarr_dandiset}",
        "# h5py through neuromirror:// (range requests to the pinned URL)",
        python(f'import fsspec, h5py; f = fsspec.open("neuromirror://{nwb_pin}", "rb", root="{m.root}").open(); {h5}'),
        "# zarr-python through neuromirror://: the earlier state, then the draft (chunk 0/0/0 rewritten)",
        python(
            f'import zarr; print(zarr.open_array("neuromirror://dandi/{m.zarr_dandiset}@{m.first}/{ZARR_PATH}/0",'
            f' mode="r", storage_options={root_opt})[:])'
        ),
        python(
            f'import zarr; print(zarr.open_array("neuromirror://dandi/{m.zarr_dandiset}@draft/{ZARR_PATH}/0",'
            f' mode="r", storage_options={root_opt})[:])'
        ),
        "# the same through the view (HTTP, no mirror of your own)",
        python(f'import fsspec, h5py; f = fsspec.open("{nwb_view}", "rb").open(); {h5}'),
        python(f'import zarr; print(zarr.open_array("{old_view}", mode="r")[:])'),
        *(_reference_lines(m, python, nwb_pin, nwb_view) if m.reference else []),
        "# WebDAV: rclone (add --download to rclone check: the view's hash is the ETag, not one rclone knows)",
        f"rclone lsl --webdav-url {dav} :webdav:dandi/{m.sample}/{m.version}",
        "# curl: a file (redirected to its pinned URL), and a listing as JSON",
        f"curl -sSfL {dav}/dandi/{m.sample}/{m.version}/README.md",
        f"curl -sSf '{dav}/dandi/{m.zarr_dandiset}/?format=json'",
        "# DataLad: clone the mirror's dataset, check out the version, get the NWB file (loopback archive allowed)",
        f"{datalad} clone {q(str(m.root / 'dandi' / m.sample))} {q(str(clone))} && cd {q(str(clone))} && "
        f"{_with_tools('git')} checkout -q {m.version} && {datalad} get {NWB_PATH}",
        "# DataLad: the Zarr dandiset at its earlier state, the Zarr (a subdataset) and its chunks with get -r",
        f"{datalad} clone {q(str(m.root / 'dandi' / m.zarr_dandiset))} {q(str(zarr_clone))} && cd {q(str(zarr_clone))}"
        f" && {_with_tools('git')} checkout -q {m.first} && {datalad} get -r {ZARR_PATH}",
        *(_restore_lines(m, nm) if m.s3 is not None else []),
    ]


def _restore_lines(m: DemoMirror, nm: str) -> list[str]:
    """The README's restore into the archive's own bucket, at the stand-in's S3 (its public test credentials)."""
    env = (
        f"NEUROMIRROR_STORE_ENDPOINT={m.s3.endpoint_url} AWS_ACCESS_KEY_ID={m.s3.access_key}"
        f" AWS_SECRET_ACCESS_KEY={m.s3.secret_key}"
    )
    return [
        "# restore into the archive's own bucket (the stand-in's S3): what it would write; nothing while it has every object",
        f"{env} {nm} restore dandi:{m.sample}@{m.version} --to s3://{m.bucket} --dry-run",
    ]


def _reference_lines(m: DemoMirror, python: Any, nwb_pin: str, nwb_view: str) -> list[str]:
    """pynwb through the NWB file's LINDI reference, the reference at the view, and Neurosift's link to it."""
    from neuromirror.read.references.served import neurosift_url

    opened = f'from neuromirror import api; o = api.open("{m.root}").open_hdf5("{nwb_pin}", how=True)'
    read = 'from pynwb import NWBHDF5IO; print(o.via, NWBHDF5IO(file=o.file, mode="r").read().acquisition["running_speed"].data[:5])'
    lindi = f"PYTHONPATH={shlex.quote(m.lindi_path)} " if m.lindi_path else ""  # lindi beside the venv's zarr 3
    return [
        "# pynwb through the NWB file's LINDI reference (opened with no request; neuromirror[references])",
        lindi + python(f"{opened}; {read}"),
        "# the reference as the view serves it; Neurosift reads it (an https page reads an http view on localhost only):",
        f"# {neurosift_url(nwb_view + '.lindi.json')}",
        # cut reads it all (head -c would close the pipe on curl, which then says "Failure writing output")
        f"curl -sSf {nwb_view}.lindi.json | cut -c 1-200",
    ]


def run_serve(root: Optional[Path] = None, keep: bool = False, http: str = "127.0.0.1:0") -> int:
    """Build the demo mirror, serve it until SIGINT/SIGTERM, then stop everything and clean up."""
    from neuromirror import api
    from neuromirror.service.web import start_http
    from neuromirror.standins.dandi.server import DandiStandIn
    from neuromirror.standins.s3 import S3StandIn

    work, root, exe, env = fresh_root(root)
    try:
        with S3StandIn() as s3, DandiStandIn(s3) as dandi:
            _say(f"== stand-in archives on loopback: DANDI API {dandi.api_url}, S3 {s3.endpoint_url}")
            mirror = build(root, work, dandi, exe, env)
            opened = api.open(root)
            view = opened.view()  # the view every pin is served by, as serve --http mounts it
            httpd, url = start_http(None, http, view=view)
            stop = threading.Event()  # Ctrl-C while building is an interrupt; once serving, the way to stop
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda signum, frame: stop.set())
            try:
                _say(READY)
                for line in ready_lines(mirror, url):
                    _say(line)
                _say(SERVING)
                while not stop.wait(0.5):
                    pass
            finally:
                httpd.shutdown()
                httpd.server_close()
                view.tree.close()
                opened.close()
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    _say("== stopped" + (f"; mirror kept at {root}" if keep or not root.is_relative_to(work) else ""))
    return 0
