"""``neuromirror demo``: the whole job on an embedded default, offline.

Starts the stand-in archives on free loopback ports, fills them with a
sample dandiset (a published version, then later draft changes), mirrors it
into a fresh root, and then does what a lab would: ``datalad clone`` the
dataset, ``datalad get`` a file, check its sha256, print the pin and the
citation.  Every step prints what it runs, so the output reads like a session.

``demo --serve`` (:mod:`.serve`) builds the same sample (with a real NWB file) and a Zarr dandiset,
then leaves the stand-in archive and the view running, for a newcomer to read pins with any client.

May import anything below the commands (``standins``, ``engine``, ``pin``, ``read``...); must not
import ``commands`` or ``cli`` (``commands.demo`` runs it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from neuromirror.errors import UserError

SAMPLE_NAME = "neuromirror demo: mouse V1 extracellular recordings"


@dataclass
class SampleDandiset:
    identifier: str
    published: str
    files: dict[str, bytes]  # the draft's files after the later changes


def deterministic_bytes(seed: object, size: int) -> bytes:
    """``size`` reproducible pseudo-random bytes for sample files (the same seed, the same bytes)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def build_sample_dandiset(
    dandi: Any, *, identifier: Optional[str] = None, extra: Optional[dict[str, bytes]] = None
) -> SampleDandiset:
    """A small dandiset with history: version 1 published, then the draft moves on.

    ``extra`` files (``demo --serve``'s real NWB file) are in version 1 and the draft."""
    t0 = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
    ident = dandi.create_dandiset(identifier, name=SAMPLE_NAME, created=t0)
    files = {
        "README.md": b"# Demo dandiset\n\nSynthetic recordings for the neuromirror demo.\n",
        "dataset_description.json": json.dumps({"Name": SAMPLE_NAME, "BIDSVersion": "1.9.0"}, indent=2).encode(),
        "sub-01/sub-01_ses-1_ecephys.nwb": deterministic_bytes(1, 300_000),
        "sub-02/sub-02_ses-1_ecephys.nwb": deterministic_bytes(2, 200_000),
        "sub-02/sub-02_ses-1_image.nii.gz": deterministic_bytes(3, 50_000),
        **(extra or {}),
    }
    for i, (path, content) in enumerate(files.items()):
        dandi.put_asset(ident, path, content, when=t0 + timedelta(minutes=i))
    published = dandi.publish(ident, when=t0 + timedelta(days=1))
    later = t0 + timedelta(days=30)
    files["sub-03/sub-03_ses-1_ecephys.nwb"] = deterministic_bytes(4, 120_000)
    dandi.put_asset(ident, "sub-03/sub-03_ses-1_ecephys.nwb", files["sub-03/sub-03_ses-1_ecephys.nwb"], when=later)
    files["README.md"] = files["README.md"] + b"\nSubject 3 added.\n"
    dandi.put_asset(ident, "README.md", files["README.md"], when=later + timedelta(minutes=1))
    del files["sub-02/sub-02_ses-1_image.nii.gz"]
    dandi.delete_asset(ident, "sub-02/sub-02_ses-1_image.nii.gz", when=later + timedelta(minutes=2))
    return SampleDandiset(ident, published, files)


def _say(text: str) -> None:
    print(text, flush=True)


def _run(cmd: list[str], cwd: Optional[Path] = None, env: Optional[dict] = None) -> str:
    shown = " ".join(cmd)
    _say(f"$ {shown}")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).rstrip()
    if output:
        for line in output.splitlines():
            _say(f"  {line}")
    if proc.returncode != 0:
        raise RuntimeError(f"demo step failed: {shown} (exit {proc.returncode})")
    return proc.stdout


def fresh_root(root: Optional[Path]) -> tuple[Path, Path, list[str], dict]:
    """(work directory, mirror root, the command that runs neuromirror on it, its environment) of a demo."""
    os.environ.setdefault("DANDI_NO_ET", "1")
    if root is not None and Path(root).is_dir() and any(Path(root).iterdir()):
        raise UserError(f"{root} is not empty: the demo mirrors into a fresh root")
    work = Path(tempfile.mkdtemp(prefix="neuromirror-demo-"))
    root = Path(root).absolute() if root else work / "mirror"
    return work, root, [sys.executable, "-m", "neuromirror", "--root", str(root)], dict(os.environ, DANDI_NO_ET="1")


def run_demo(root: Optional[Path] = None, keep: bool = False) -> int:
    from neuromirror.standins.dandi.server import DandiStandIn
    from neuromirror.standins.s3 import S3StandIn

    work, root, exe, env = fresh_root(root)
    try:
        with S3StandIn() as s3, DandiStandIn(s3) as dandi:
            _say(f"== stand-in archives on loopback: DANDI API {dandi.api_url}, S3 {s3.endpoint_url}")
            sample = build_sample_dandiset(dandi)
            spec = f"dandi:{sample.identifier}"
            _say(
                f"== sample dandiset {sample.identifier}: version {sample.published} published, then the draft changed"
            )
            _run([*exe, "sync", spec, "--dandi-api", dandi.api_url, "-q"], env=env)
            _run([*exe, "sync", spec, "--dandi-api", dandi.api_url, "-q"], env=env)  # a no-op: nothing changed
            _run([*exe, "versions", spec], env=env)

            _say("== what a lab does: clone the mirror, get a file, check it")
            clone = work / "clone"
            dataset = root / "dandi" / sample.identifier
            _run(["datalad", "-l", "error", "clone", str(dataset), str(clone)], env=env)
            # loopback stand-ins: allow them in this clone only, never in the user's global config
            _run(["git", "-C", str(clone), "config", "annex.security.allowed-ip-addresses", "127.0.0.1"])
            path = "sub-01/sub-01_ses-1_ecephys.nwb"
            _run(["datalad", "-l", "error", "get", path], cwd=clone, env=env)
            got = hashlib.sha256((clone / path).read_bytes()).hexdigest()
            want = hashlib.sha256(sample.files[path]).hexdigest()
            _say(f"sha256 of {path}: {got}")
            if got != want:
                raise RuntimeError(f"{path}: sha256 mismatch: got {got}, archive has {want}")
            _say("sha256 matches the archive's digest")

            _say("== pin and cite the published version")
            pin = json.loads(_run([*exe, "pin", f"{spec}@{sample.published}", "--json"], env=env))
            _say(_citation_text(root, spec, sample.published, pin, env))

        _demo_boss(exe, root, work, env)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    # the last line names only what still exists
    if keep:
        _say(f"== done: mirror at {root}, clones under {work}")
    elif root.is_relative_to(work):
        _say("== done; the temporary mirror and clones are removed (neuromirror demo --keep keeps them)")
    else:
        _say(f"== done: mirror at {root}; the temporary clones are removed (neuromirror demo --keep keeps them)")
    return 0


def _demo_boss(exe: list[str], root: Path, work: Path, env: dict) -> None:
    """A BOSS experiment: volumes become OME-Zarr chunks, fetched through the package's special remote."""
    import numpy as np

    from neuromirror.standins.boss.tiny import SPEC, TINY_CHUNK, sync_args, tiny_sample

    token = "demo-token"  # read from INTERN_TOKEN at sync and at retrieval; never written anywhere
    with tiny_sample(token=token) as boss:
        benv = dict(env, INTERN_TOKEN=token, NEUROMIRROR_BOSS_URL=boss.url)
        _say(f"== a BOSS experiment from the stand-in at {boss.url}: {SPEC}")
        _run([*exe, *sync_args(boss), "-q"], env=benv)
        clone = work / "boss-clone"
        _run(["datalad", "-l", "error", "clone", str(root / SPEC.replace(":", "/", 1)), str(clone)], env=benv)
        chunk = "image8.ome.zarr/0/0/0/0"
        _run(["datalad", "-l", "error", "get", chunk], cwd=clone, env=benv)
        got = np.frombuffer((clone / chunk).read_bytes(), dtype=np.uint8).reshape(TINY_CHUNK)
        want = boss.volume("neuromirror_demo", "exp1", "image8", 0)[: TINY_CHUNK[0], : TINY_CHUNK[1], : TINY_CHUNK[2]]
        if not np.array_equal(got, want):
            raise RuntimeError(f"{chunk}: the chunk does not match the server's volume")
        _say(
            f"{chunk}: {got.nbytes} bytes, equal to the server's volume [0:{TINY_CHUNK[0]}, 0:{TINY_CHUNK[1]}, 0:{TINY_CHUNK[2]}]"
        )


def _citation_text(root: Path, spec: str, version: str, pin: dict, env: dict) -> str:
    """The paper-ready citation: `neuromirror cite` when available, else the index's own fields."""
    proc = subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(root), "cite", f"{spec}@{version}"],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode == 0 and proc.stdout.strip():
        return f"$ neuromirror cite {spec}@{version}\n" + proc.stdout.rstrip()
    from neuromirror.index.db import Index

    index = Index(Path(root) / ".neuromirror" / "index.sqlite")
    row = index.latest_version(spec, version)
    index.close()
    return (
        f"Citation: {(row.citation if row else None) or '-'}\n"
        f"DOI: {pin.get('doi') or '-'}\n"
        f"Mirror: {pin['dataset']} at commit {pin['commit']} (tag {pin['tag']})"
    )
