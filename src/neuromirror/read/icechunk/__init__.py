"""A pinned Zarr state as an Icechunk repository (``neuromirror export SPEC@V/PATH.zarr --icechunk DIR_OR_S3``).

Icechunk snapshots are what xarray, zarr-python and GDAL read as versioned Zarr; their virtual chunk references
are safe only over bytes that never change, which is what a pin is.  :mod:`.metadata` turns a state's Zarr
metadata into the v3 documents Icechunk holds and names each chunk object's array and index;
:mod:`.repository` is the repository (its storage, virtual chunk containers, a snapshot per state);
:mod:`.export` picks the states and the form of each reference (the view's URL at the state's commit, or the
bytes in a store that keeps them: a pack by offset and length).  icechunk is imported only when an export runs
(``pip install 'neuromirror[icechunk]'``).

May import what :mod:`neuromirror.read` may (``pin``, ``store``, ``engine``, ``index``, ``annex`` and below)
and ``read`` itself; must not import ``keep``, ``verify``, ``commands`` or ``cli``.
"""
