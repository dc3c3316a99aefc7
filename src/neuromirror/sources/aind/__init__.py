"""AIND open data: S3 assets mirrored as datasets, through boto3 (anonymous by default).

:mod:`.source` is the source itself and what the tool calls (``expand``,
``add_options``, ``remote_id_for``); the rest are its parts, each a thing of its
own to understand: :mod:`.options` (which bucket, how to hash), :mod:`.s3`
(reaching S3, reading the few objects a sync reads), :mod:`.listing` (an asset's
listing, and whether it changed), :mod:`.metadata` (what an asset's name and
sidecars say) and :mod:`.entries` (a key, or git, for each object).  The parts
are handed the asset they work on as what :mod:`.context` names (where it is,
how to reach it), never as the source: none of them imports :mod:`.source` back.

May import ``util``, ``records``, ``spec``, ``annex.keys`` and
``sources.s3listing`` / ``sources.s3urls``; must not import ``index``, ``dataset``, ``engine`` or
anything above them.  ``boto3`` is imported inside functions only: the command
line imports :mod:`.source` for its options, and must stay quick to start.
"""

from __future__ import annotations

from neuromirror.archives import Archive, register
from neuromirror.spec import SpecError


def check_name(text: str, name: str) -> str:
    """An AIND asset is a top-level prefix of the bucket."""
    if "/" in name:
        raise SpecError(f"{text!r}: an AIND asset name is a top-level prefix without '/'")
    return name


ARCHIVE = register(
    Archive(
        home_page="https://aind-open-data.s3.amazonaws.com/index.html#{name}/",
        name="aind",
        source_module="neuromirror.sources.aind.source",
        check_name=check_name,
        publisher="Allen Institute for Neural Dynamics",
        citation_file="data_description.json",
    )
)
