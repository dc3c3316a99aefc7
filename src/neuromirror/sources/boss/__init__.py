"""BOSS (bossdb / neurodata): experiments as OME-Zarr datasets, through ``intern``.

The source's steps, each in its own module because each is a thing of its own
to understand: :mod:`.api` (talking to a BOSS: token, server, intern, errors),
:mod:`.chunks` (a chunk file, the URL that names its cutout, its bytes),
:mod:`.options` (what to mirror), :mod:`.metadata` (what the BOSS says about an
experiment), :mod:`.plan` (which chunks that makes), :mod:`.layout` and
:mod:`.ngff` (the files in git), :mod:`.keys` (a key per chunk, reading and
hashing cutouts), :mod:`.special_remote` (the dataset's git-annex special remote)
and :mod:`.source` (the source itself, what the tool calls: ``expand``,
``add_options``, ``remote_id_for``).  The steps are handed the experiment they
work on as what :mod:`.context` names (which experiment, the settings, the
client), never as the source: none of them imports :mod:`.source` back.

May import ``util``, ``records``, ``spec`` and ``annex.keys``; must not import
``index``, ``dataset``, ``engine`` or anything above them.  ``intern``, ``numpy``
and ``requests`` are imported inside functions only: the command line imports
:mod:`.source` for its options, and must stay quick to start.
"""

from __future__ import annotations

from neuromirror.archives import Archive, register
from neuromirror.sources.boss.chunks import URL_PREFIX
from neuromirror.spec import SpecError


def check_name(text: str, name: str) -> str:
    """A BOSS source is a collection or a collection/experiment; stray slashes are dropped."""
    parts = name.strip("/").split("/")
    if len(parts) > 2 or not all(parts):
        raise SpecError(f"{text!r}: expected boss:COLLECTION or boss:COLLECTION/EXPERIMENT")
    return "/".join(parts)


ARCHIVE = register(
    Archive(
        home_page="https://bossdb.org/project/{first}",
        name="boss",
        source_module="neuromirror.sources.boss.source",
        check_name=check_name,
        publisher="BossDB",
        name_parts=2,  # boss:COLLECTION/EXPERIMENT
        account="the BOSS needs an account to read (every cutout is read with a token)",
        keeps_at_sync=True,  # a chunk is read from the BOSS once, kept as the sync goes
        restores_special_at_path=True,  # a chunk's key in the layout is its path
        channels_document="boss.json",
        image_attrs="boss",  # the provenance layout.py writes into each image's .zattrs
        special_remote=(
            URL_PREFIX,
            "a BOSS cutout: the BOSS keeps no history, so its URL can serve other bytes tomorrow; keep it to pin it",
        ),
    )
)
