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
