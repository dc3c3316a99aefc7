"""LINDI references of a pin's NWB/HDF5 files: made once per git-annex key, read through, searched.

A pinned file's bytes never change, so neither does its LINDI reference (the JSON "reference file system"
of ``NeurodataWithoutBorders/lindi``: the group tree, attributes and small datasets inline, each chunk as
``[pinned URL, offset, length]``): pynwb opens the file from it in one read instead of walking HDF5's
metadata request by request.  :mod:`.make` builds one through ``neuromirror://`` in 32 KiB blocks (a few %
of the file's bytes), every chunk pointing at the key's pinned archive URL; :mod:`.location` keeps it under
the mirror root, one per key (``.neuromirror/lindi/``); :mod:`.reading` opens a file of a pin through it
(h5py-compatible: ``pynwb.NWBHDF5IO(file=...)``), every chunk read through the same read as
``neuromirror://`` (the store when the archive lost the bytes), else through h5py; :mod:`.fields` puts the
session's, subject's and electrodes' fields into the index (``search --nwb-field``); :mod:`.batch` makes
the references of the new keys a sync recorded (``sync --references``, ``references: nwb``).
:mod:`.lindi_env` imports lindi lazily: it pins zarr < 3 (lindi#119), so it lives in an environment of its
own (``pip install 'neuromirror[references]'``). This package registers itself with
:mod:`neuromirror.readers` as the index-time reader ``references`` when imported (its hooks import lindi and
the batch only when called), so the sync, the service and the API's ``open_hdf5``/``reference`` never name it.

May import what :mod:`neuromirror.read` may (``pin``, ``store``, ``engine``, ``index``, ``annex`` and
below) and ``read`` itself; must not import ``keep``, ``verify``, ``commands`` or ``cli``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from neuromirror.read.references.fields import FIELDS, search_all
from neuromirror.read.references.location import ROUTE
from neuromirror.readers import IndexTimeReader, KeptBeside, ViewRoute, register_index_time
from neuromirror.store.lindi import SUFFIX, keep_reference, made_after, may_have_reference, reference_name


def _asks(options: dict) -> bool:
    return options.get("references") == "nwb"


def _why_not() -> str:
    from neuromirror.read.references.lindi_env import why_not

    return why_not()


def _require() -> None:
    from neuromirror.read.references.lindi_env import lindi

    lindi()


def _after_sync(root: Path, index: Optional[Path], pins: list[tuple[str, str]]) -> tuple[dict[str, Any], list[str]]:
    from neuromirror.read.references.batch import make_references

    got = make_references(root, index, pins)
    return got.to_json(), [f"{path}: {error}" for path, error in got.failed]


def _view_body(root: Path, key: str, file_url: Optional[str], **where: Any) -> Optional[bytes]:
    from neuromirror.read.references.served import reference_bytes

    return reference_bytes(root, key, file_url, **where)


def _list_files(
    root: Path, pins: list[Any], paths: Sequence[str], view: Optional[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """``urls --references``: each NWB/HDF5 file with its reference (with ``view``: its URL in the view, Neurosift's)."""
    from neuromirror.read.references.listing import references_of

    rows = [r for pin in pins for r in references_of(root, pin, paths, view)]
    cols = ("path", "url", "neurosift") if view else ("path", "reference")
    return rows, ["\t".join(r[c] for c in cols) for r in rows]


def _opens(target: str, **how: Any) -> Any:
    from neuromirror.read.references.reading import open_hdf5

    return open_hdf5(target, **how)


def _made_for(target: str, **where: Any) -> Optional[Path]:
    from neuromirror.read.references.reading import kept_for

    return kept_for(target, **where)


_MISSING = "no LINDI reference of key {key} (run `neuromirror sync --references` to make them)"
_VIEW = ViewRoute(ROUTE, SUFFIX, _view_body, _MISSING)
register_index_time(
    IndexTimeReader(
        "references",
        _asks,
        _why_not,
        _require,
        _after_sync,
        _VIEW,
        FIELDS,
        search_all,
        list_files=_list_files,
        listed="LINDI reference",
        kept=KeptBeside(may_have_reference, keep_reference, reference_name, made_after, "LINDI reference"),
        opens=_opens,
        made_for=_made_for,
    )
)
