"""The service keeps into a packed store and publishes into a RIA store: what it publishes names every copy
the same cycle's keep made, changed dataset or not.

Why: the service published before it kept, and again only after a sync that changed the dataset, so the
keep's location records reached the RIA store one changing sync late, or never for a quiet dandiset;
after the archive lost a file both stores held, a clone from the RIA store saw only the web and failed.
Here: a dandiset that never changes, kept by the service into ``pack+file://``, published into a RIA
store; its blobs lost for good; a stranger's ``datalad clone`` from the RIA store + ``datalad get`` gives
every byte, read from the packs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers.keep import keep_config, lose_blobs, make_dandiset, sha256
from helpers.service import serve, wait_for


def test_the_published_copy_names_the_packed_store_by_the_end_of_the_first_cycle(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    sizes = {"sub-01/a.nwb": 21_000, "sub-02/b.nwb": 13_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)  # synced once: the service's sync is a no-op
    packed, ria = tmp_path / "packed", tmp_path / "ria"
    cfg = keep_config(
        tmp_path / "m.yaml",
        dandi_archive.api_url,
        d.source,
        f'store: "pack+file://{packed}"\n',
        f'    publish: {{to: "ria+file://{ria}"}}\n',
        interval="2s",
    )
    with serve(d.run.root, cfg) as svc:
        # one cycle: the keep put the keys into the packs, and the RIA copy's git-annex branch says so
        def published_knows() -> bool:
            repo = ria / "alias" / "dandi" / d.id
            if not repo.exists():
                return False
            log = subprocess.run(
                ["git", "-C", str(repo.resolve()), "log", "-1", "--format=%H", "git-annex"],
                capture_output=True,
                text=True,
            )
            if log.returncode != 0:
                return False
            remote = subprocess.run(
                ["git", "-C", str(repo.resolve()), "show", "git-annex:remote.log"], capture_output=True, text=True
            ).stdout
            return "externaltype=neuromirror-pack" in remote

        wait_for(published_knows, 180, "the packed store named in the published copy", svc)
    lose_blobs(d, list(sizes))
    work = tmp_path / "stranger"
    proc = subprocess.run(
        ["datalad", "clone", f"ria+file://{ria}#~dandi/{d.id}", str(work)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    subprocess.run(["git", "-C", str(work), "checkout", "-q", d.version], check=True)
    proc = subprocess.run(["datalad", "get", "."], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path, data in d.files.items():
        assert sha256((work / path).read_bytes()) == sha256(data), path
