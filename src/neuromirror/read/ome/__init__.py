"""A pin's OME-Zarr images read as the field's own tools give them: a region of one level as a TIFF stack.

:mod:`.level` opens one level of an OME-Zarr at a pin (its ``.zattrs``/``.zarray`` and, for a BOSS
mirror, the extents the sync recorded) and reads its chunks through ``neuromirror://`` (the pinned
URL, a store's kept copy), a BOSS chunk no store keeps from the BOSS itself, every chunk checked
against its git-annex key; :mod:`.regions` writes a region of it as a multi-page TIFF, band by band
in place (``neuromirror get SPEC@V --region ... --format tiff``); this package registers that
format with :mod:`neuromirror.readers` when imported.
:mod:`.neuroglancer` builds the Neuroglancer links the view's pages give a pinned image (by the pin's
commit) and finds the ``neuroglancer`` package's client the view serves.

May import what :mod:`neuromirror.read` may (``pin``, ``store``, ``engine``, ``index``, ``annex`` and
below) and ``read`` itself; must not import ``keep``, ``verify``, ``commands`` or ``cli``.
"""

from __future__ import annotations

from typing import Any

from neuromirror.readers import FormatWriter, register


def _tiff(request: Any) -> Any:
    """The region as a multi-page TIFF (imported here: numpy and tifffile load only for a get that writes one)."""
    from neuromirror.read.ome.regions import export_tiff

    return export_tiff(request)


register(FormatWriter("tiff", "a multi-page TIFF (tifffile)", _tiff, suffix=".tif"))
