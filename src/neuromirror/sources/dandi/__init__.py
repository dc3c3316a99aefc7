"""DANDI: dandisets as snapshots, through the official ``dandi`` client (:mod:`.source`).

The archive's side only: its API (:mod:`.client`), the asset listing and what a resync reuses
(:mod:`.assets`), blob assets as entries (:mod:`.blobs`), embargoed content (:mod:`.embargo`),
and Zarr assets as the archive states them (:mod:`.zarr_assets`, :mod:`.zarr_listing`).  Writing a
Zarr asset's own dataset is the engine's (:mod:`neuromirror.engine.zarr`), which hands the source
its hook through the state of a sync.  May import ``annex.keys``, the other ``sources`` modules and
the base modules; never ``index``, ``dataset``, ``engine`` or above.  Imports nothing heavy here:
``neuromirror --help`` reads this package's options.
"""
