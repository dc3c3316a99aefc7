"""``maintain``: the git repositories the mirror writes, and those it publishes to, kept packed.

Why: a sync writes through fast-import and git-annex's plumbing, and a publish pushes a few objects
at a time, so git's own ``gc --auto`` never runs: a dataset gains loose objects every sync, and a
RIA store served over dumb HTTP makes a clone fetch each loose object with a request of its own.
:mod:`.git` measures one repository and packs it when worth it (lower thresholds than git's),
never dropping an object; :mod:`.targets` says which repositories belong to a source (its dataset,
its Zarr subdatasets (DANDI Zarr assets, AIND Zarr stores), their copies in RIA stores and bare siblings on this host);
:mod:`.run` takes each source's own sync lock without waiting (a source being synced or published
is skipped, and says so) and reports.

May import ``publish`` (where a dataset was published), ``pin``, ``store``, ``dataset``, ``index``,
``config`` and below; must not import ``service``, ``commands`` or ``cli``.
"""
