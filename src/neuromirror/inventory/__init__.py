"""An archive bucket's S3 Inventory, read as typed rows: the (key, versionId, size, ETag) of every object version.

Why: a cold start that lists every Zarr's versions and HEADs every blob asks the archive for what its
bucket's own daily S3 Inventory already holds (issue 75).  This package finds an inventory's date
(:mod:`.location`: an ``s3://`` destination prefix, a ``manifest.json``, or a local directory of the
same layout), reads its ``manifest.json`` (:mod:`.manifest`), and streams each data file's rows
(:mod:`.rows`, :mod:`.reader`) in bounded memory, each file's MD5 checked before any of its rows is
given out.  May import the base modules (``util``, ``network``, ``errors``); must not import
``sources`` or anything above: the sync, ``audit`` and gap-fill read the rows, never the other way.
"""

from __future__ import annotations

from neuromirror.inventory.manifest import InventoryFile, Manifest
from neuromirror.inventory.reader import Inventory, open_inventory
from neuromirror.inventory.rows import InventoryError, InventoryRow

__all__ = ["Inventory", "InventoryError", "InventoryFile", "InventoryRow", "Manifest", "open_inventory"]
