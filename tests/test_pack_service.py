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

import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from helpers.keep import T0, keep_config, key_of, lose_blobs, make_dandiset, sha256, whereis
from helpers.service import serve, wait_for
from neuromirror.demo import deterministic_bytes


@pytest.mark.parametrize("published", ["ria", "sibling"])
def test_the_published_copy_names_the_packed_store_by_the_end_of_the_first_cycle(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
    request: pytest.FixtureRequest,
    published: str,
) -> None:
    """Into a RIA store from a ``pack+file://`` store; into a sibling (a directory of bare repositories) from a
    ``pack+s3://`` store, whose endpoint and credentials the service and the stranger's clone take from their
    environment."""
    sizes = {"sub-01/a.nwb": 21_000, "sub-02/b.nwb": 13_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)  # synced once: the service's sync is a no-op
    ria, bare = tmp_path / "ria", tmp_path / "bare"
    if published == "ria":
        store, target, repo, origin = f"pack+file://{tmp_path / 'packed'}", f"ria+file://{ria}", ria / "alias", None
    else:
        store, target, repo = f"pack+s3://{request.getfixturevalue('bucket')}/packed", str(bare), bare
        origin = str(bare / "dandi" / d.id)
    repo = repo / "dandi" / d.id
    cfg = keep_config(
        tmp_path / "m.yaml",
        dandi_archive.api_url,
        d.source,
        f'store: "{store}"\n',
        f'    publish: {{to: "{target}"}}\n',
        interval="2s",
    )
    settings = ("NEUROMIRROR_STORE_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")  # the bucket's, if any
    with serve(d.run.root, cfg, env={k: os.environ[k] for k in settings if k in os.environ}) as svc:
        # one cycle: the keep put the keys into the packs, and the published copy's git-annex branch says so
        def published_knows() -> bool:
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
        ["datalad", "clone", origin or f"ria+file://{ria}#~dandi/{d.id}", str(work)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    subprocess.run(["git", "-C", str(work), "checkout", "-q", d.version], check=True)
    proc = subprocess.run(["datalad", "get", "."], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path, data in d.files.items():
        assert sha256((work / path).read_bytes()) == sha256(data), path


def test_the_service_prunes_a_superseded_draft_state_from_the_packed_store(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """``keep: {versions: published, prune: true}`` for a dandiset with no published version: each cycle
    keeps the latest draft state, and the state the upstream change superseded leaves the store."""
    when = T0 + timedelta(days=800)
    ident = dandi_archive.create_dandiset(name="prune sample", created=when)
    first = deterministic_bytes(f"{ident}:first", 40_000)
    dandi_archive.put_asset(ident, "data.nwb", first, when=when)
    packed = tmp_path / "packed"
    cfg = tmp_path / "m.yaml"
    cfg.write_text(
        f'store: "pack+file://{packed}"\n'
        "defaults:\n"
        "  schedule: {interval: 2s}\n"
        f'  options: {{dandi_api: "{dandi_archive.api_url}"}}\n'
        "sources:\n"
        f'  - spec: "dandi:{ident}"\n'
        "    keep: {versions: published, prune: true}\n"
    )
    root = tmp_path / "mirror"

    def packs_hold(data: bytes) -> bool:
        return any(data in p.read_bytes() for p in packed.glob("packs/*.pack"))

    with serve(root, cfg) as svc:
        wait_for(lambda: packs_hold(first), 180, "the first draft state kept", svc)
        second = deterministic_bytes(f"{ident}:second", 40_000)
        dandi_archive.put_asset(ident, "data.nwb", second, when=when + timedelta(hours=1))
        wait_for(lambda: packs_hold(second) and not packs_hold(first), 180, "the superseded state pruned", svc)
    # the dataset's branch no longer sends a clone to the store for the superseded key
    ds = root / "dandi" / ident
    old = subprocess.run(
        ["git", "log", "--format=%H", "-n", "1", "--skip", "1", "--", "data.nwb"],
        cwd=ds,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert old, "the first draft state is in the dataset's history"
    assert not any("neuromirror" in w for w in whereis(ds, key_of(ds, "data.nwb", old)))
    assert any("neuromirror" in w for w in whereis(ds, key_of(ds, "data.nwb", "HEAD")))
