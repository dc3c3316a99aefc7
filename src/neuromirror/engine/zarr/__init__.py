"""Zarrs as DataLad datasets of their own, nested in the dataset of the version that holds them.

:mod:`.dataset` makes, finds, commits and tags such a dataset and knows no archive; :mod:`.job`
is one DANDI Zarr asset's work as a picklable job any executor (a thread pool, Dask) runs;
:mod:`.run` plans a snapshot's Zarr assets and gathers them into the dandiset's commit.  The
archive's side (listing, checksum, objects as entries) stays in the source
(:mod:`neuromirror.sources.dandi.zarr_listing`).  May import ``sources``, ``dataset``, ``index``,
``annex``, the rest of ``engine`` (the URL rule, repair) and the base modules.
"""
