"""What ``urls`` and ``search`` hand back: a pin's files with the URL serving each, and what the index holds.

:class:`Urls` streams (a version of a million files is never a list in memory): it is read once, as an
iterator or by :meth:`Urls.write_json` / :meth:`Urls.write_lines`, which write each file as it comes;
afterwards ``counts``, ``lost`` and ``ok`` say what the pass found.  :class:`Listing` (images, references)
and :class:`Found` (search hits) are small and whole.  Each result's ``write_json(out)`` writes the bytes
the command's ``--json`` prints.  Also the search's inputs, checked (:func:`search_filters`,
:func:`search_pairs`): a malformed digest, date or field is :class:`~neuromirror.errors.BadInput` naming it.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Optional, Sequence, TextIO, Union

from neuromirror.errors import BadInput, NoSuchPath
from neuromirror.pin.handout import Printed
from neuromirror.results import Item, Result, Status
from neuromirror.spec import Spec

if TYPE_CHECKING:
    from neuromirror.index.catalog import SearchFilters
    from neuromirror.index.db import Index
    from neuromirror.read.pinned import Pin
    from neuromirror.read.urls import PinnedFile

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")

#: what serves a file, as the count on stderr says it
_LABELS = (
    ("archive", "from the archive"),
    ("store", "from the lab's store"),
    ("git", "in git"),
    ("none", "not streamable"),
)


def urls_spec(spec: Union[str, Spec, None], lock: Optional[object], paths: Sequence[str]) -> Optional[Spec]:
    """What ``urls`` names, checked: one source's version (or a lock file), paths inside it."""
    from neuromirror.api.inputs import spec_of

    if spec is None and lock is None:
        raise BadInput("urls needs a version (SPEC@VERSION) or a lock file")
    s = spec_of(spec) if spec is not None else None
    if s is not None and s.is_glob:
        raise BadInput(f"{s}: urls names one source, not a pattern")
    for path in paths:  # else git's own "fatal: ... outside repository" line came before ours
        if path.startswith("/") or ".." in path.split("/"):
            raise NoSuchPath(f"{path}: a PATH is inside the version, from its top (no leading / and no '..')")
    return s


class Urls(Result):
    """Each file of the pins with the URL serving exactly its bytes, streamed: read once.

    Iterating gives ``(pin, file)`` pairs (:class:`~neuromirror.read.pinned.Pin`,
    :class:`~neuromirror.read.urls.PinnedFile`) as the trees are read; :meth:`write_json` writes ``urls --json``
    row by row (``[``, a line per file, ``]``) and :meth:`write_lines` the text (PATH, TAB, URL), each holding
    one file at a time.  When the pass ends: ``counts`` (files by what serves them), ``lost`` (what ``check``
    found no URL serves any more: ``error`` items) and :meth:`summary`; the losses are recorded for every
    reader.  Paths were given and none matched: :class:`~neuromirror.errors.NoSuchPath` at the end.  ``ok``
    (and ``bool``) asked before the pass reads it through, writing nothing."""

    def __init__(self, pins: list[Pin], paths: list[str], index_path: Path, root: Path, *, check: bool) -> None:
        self.pins, self.paths, self.checking = pins, paths, check
        self._index_path, self._root = index_path, root
        self.counts: dict[str, int] = {}
        self.lost: list[str] = []
        self._bad: list[Item] = []
        self._read = False

    def __iter__(self) -> Iterator[tuple[Pin, PinnedFile]]:
        if self._read:
            raise RuntimeError("a Urls result is read once (iterate it, or write_json/write_lines, once)")
        self._read = True
        return self._stream()

    def _stream(self) -> Iterator[tuple[Pin, PinnedFile]]:
        from neuromirror.read.check import checked
        from neuromirror.read.loss import Losses, source_lock
        from neuromirror.read.urls import pin_files

        losses = Losses(self._index_path, source_lock(self._root, str(self._index_path)))  # what readers found lost
        for pin in self.pins:
            files = map(losses.apply, pin_files(pin, self.paths))
            on_gone = functools.partial(_record_loss, losses, pin.source)
            for f in checked(files, on_gone=on_gone) if self.checking else files:
                self._count(pin, f)
                yield pin, f
        losses.flush()
        if not self.counts and self.paths:
            pin = self.pins[0]
            raise NoSuchPath(f"no file of {pin.source}@{pin.version} under {', '.join(self.paths)}")

    def _count(self, pin: Pin, f: PinnedFile) -> None:
        self.counts[f.served_by] = self.counts.get(f.served_by, 0) + 1
        if f.served_by != "none":
            return
        what = f"{pin.source}@{pin.version}: {f.path}"
        if self.checking:
            self.lost.append(f"{what} ({f.key}): {f.why}")
        self._bad.append(Item(Status.ERROR if self.checking else Status.IMPOSSIBLE, what, f.why or ""))

    def items(self) -> Iterator[Item]:
        """An item per file as it streams (``ok``; ``impossible`` where no URL serves it, ``error`` where
        ``check`` found its URLs dead)."""
        for pin, f in self:
            yield _item(pin, f, self.checking)

    def failures(self) -> list[Item]:
        if not self._read:
            for _ in self:
                pass
        return list(self._bad)

    def to_json(self) -> list[dict[str, Any]]:
        """Every row of ``urls --json``, in memory (a script's convenience; :meth:`write_json` streams)."""
        return [_row(pin, f) for pin, f in self]

    def write_json(self, out: TextIO) -> None:
        """``urls --json`` to ``out``, a row as each file comes."""
        out.write("[")
        first = True
        try:
            for pin, f in self:
                out.write(("\n" if first else ",\n") + json.dumps(_row(pin, f)))
                first = False
        except NoSuchPath:
            out.write("\n]\n")
            raise
        out.write("\n]\n")

    def write_lines(self, out: TextIO) -> None:
        """``urls``'s text to ``out``: PATH<TAB>URL, or PATH<TAB>-<TAB>why none serves it, a file at a time."""
        for _, f in self:
            if f.url:
                out.write(f"{f.path}\t{f.url}\n")
            else:
                note = "in the dataset's git (no URL; a clone or the view serves it)" if f.served_by == "git" else f.why
                out.write(f"{f.path}\t-\t{note}\n")

    def lines(self) -> list[str]:
        from io import StringIO

        text = StringIO()
        self.write_lines(text)
        return text.getvalue().splitlines()

    def summary(self) -> list[str]:
        """The count (and each lost file) the command prints on stderr once the pass is over."""
        parts = [f"{self.counts[k]} {label}" for k, label in _LABELS if self.counts.get(k)]
        head = f"{sum(self.counts.values())} file(s): " + (", ".join(parts) or "none")
        return [head, *(f"not streamable: {line}" for line in self.lost)]


def _row(pin: Pin, f: PinnedFile) -> dict[str, Any]:
    return {"source": pin.source, "version": pin.version, "commit": pin.commit, **f.to_json()}


def _item(pin: Pin, f: PinnedFile, check: bool) -> Item:
    what = f"{pin.source}@{pin.version}: {f.path}"
    if f.served_by != "none":
        return Item(Status.OK, what, f.url or f.served_by)
    return Item(Status.ERROR if check else Status.IMPOSSIBLE, what, f.why or "")


def _record_loss(losses: Any, source: str, f: Any, status: str) -> None:
    losses.record(f, status, source)


class Listing(Printed):
    """``urls --neuroglancer`` (each OME-Zarr image with its links) or ``urls --references`` (each NWB/HDF5 file
    with its LINDI reference): ``rows`` as ``--json`` lists them (written with a one-space indent, as it was)."""

    def __init__(self, kind: str, rows: list[dict[str, Any]], text: Sequence[str]) -> None:
        self.kind, self.rows, self._text = kind, rows, list(text)

    @classmethod
    def images(cls, pins: list[Pin], paths: Sequence[str], base: str) -> Listing:
        from neuromirror.read.ome import neuroglancer as ng

        rows, text = [], []
        for pin in pins:
            for path, image in ng.images_of(pin, paths):
                links = ng.links(base, [image], own_client=True)
                rows.append({"source": pin.source, "version": pin.version, "commit": pin.commit, "path": path,
                             "type": image.kind, "layer_source": ng.source(base, image.path), "neuroglancer": links})  # fmt: skip
                text.append(f"{path}\t{links['public']}")
        if not rows:
            where = f" under {', '.join(paths)}" if paths else ""
            raise NoSuchPath(f"no OME-Zarr image (a *.zarr directory) in {pins[0].source}@{pins[0].version}{where}")
        return cls("image", rows, text)

    @classmethod
    def by_reader(cls, name: str, root: Path, pins: list[Pin], paths: Sequence[str], view: Optional[str]) -> Listing:
        """``urls --NAME``: the files the registered index-time reader ``name`` lists (its ``list_files`` hook)."""
        from neuromirror.readers import index_time_readers

        reader = index_time_readers().get(name)
        if reader is None or reader.list_files is None:
            raise BadInput(f"{name}: no registered reader lists a pin's files by it")
        rows, text = reader.list_files(root, pins, paths, view)
        return cls(reader.listed, rows, text)

    def items(self) -> list[Item]:
        return [Item(Status.OK, f"{r['source']}@{r['version']}: {r['path']}") for r in self.rows]

    def to_json(self) -> list[dict[str, Any]]:
        return self.rows

    def write_json(self, out: TextIO) -> None:
        out.write(json.dumps(self.rows, indent=1) + "\n")

    def lines(self) -> list[str]:
        return self._text

    def write_lines(self, out: TextIO) -> None:
        """The command's text: a line per image (PATH, TAB, link) or reference (PATH, TAB, where)."""
        for line in self._text:
            out.write(line + "\n")

    def summary(self) -> list[str]:
        return [f"{len(self.rows)} {self.kind}(s)"]


class Found(Printed):
    """What ``search`` matched: ``mode`` (``files``, ``versions`` or ``nwb``) and ``rows`` as ``--json`` lists
    them; an ``ok`` item per hit (none matched: no items, and the command exits 1)."""

    def __init__(self, mode: str, rows: list[dict[str, Any]]) -> None:
        self.mode, self.rows = mode, rows

    @classmethod
    def of(cls, index: Index, root: Path, wanted: SearchFilters) -> Found:
        from neuromirror.annex.tree import iter_version
        from neuromirror.index.catalog import search
        from neuromirror.index.zarr_catalog import catalog_zarrs, ensure_schema

        if wanted.of_files:  # the Zarrs' files, catalogued once per new Zarr commit
            catalog_zarrs(index, root, iter_version)
        else:
            ensure_schema(index)
        return cls(*search(index, wanted))

    @classmethod
    def nwb(cls, index: Index, pairs: list[tuple[str, str]], **how: Any) -> Found:
        from neuromirror.readers import searching

        reader = searching(pairs[0][0]) if pairs else None
        if reader is None or reader.search is None or any(searching(f) is not reader for f, _ in pairs):
            raise BadInput("the fields searched are one reader's (search_pairs checks them)")
        limit = how.pop("limit")
        rows = reader.search(index.db.conn, pairs, source=how.pop("source") or "", **how)
        return cls("nwb", rows[:limit] if limit is not None else rows)

    def items(self) -> list[Item]:
        return [Item(Status.OK, f"{r['source']}@{r['version']}" + (f": {r['path']}" if "path" in r else "")) for r in self.rows]  # fmt: skip

    def to_json(self) -> list[dict[str, Any]]:
        return self.rows

    def table(self) -> tuple[list[dict[str, Any]], list[str]]:
        """The rows and columns of the command's table: a file per line, or what a version's metadata says."""
        if self.mode != "versions":
            return self.rows, ["source", "version", "path", "key"]
        table = [
            {
                "source": r["source"],
                "version": r["version"],
                "subject": r["meta"].get("subject_id"),
                "modality": r["meta"].get("modality"),
                "date": r["meta"].get("acquisition_date") or (r["meta"].get("creation_time") or "")[:10] or None,
                "level": r["meta"].get("data_level"),
                "derived_from": r["meta"].get("derived_from"),
                "files": r["files"],
            }
            for r in self.rows
        ]
        return table, ["source", "version", "subject", "modality", "date", "level", "derived_from", "files"]


# -- the search's inputs ----------------------------------------------------------------------------------------
def _hex(value: Optional[str], length: int, what: str) -> Optional[str]:
    if value is None:
        return None
    v = value.strip().lower()
    if len(v) != length or not _HEX.match(v):
        raise BadInput(f"{what} wants {length} hex digits, got {value!r}")
    return v


def _date(value: Optional[str], what: str) -> Optional[str]:
    if value is not None and not _DATE.match(value):
        raise BadInput(f"{what} wants YYYY, YYYY-MM or YYYY-MM-DD, got {value!r}")
    return value


def search_filters(given: dict[str, Optional[str]], **how: Any) -> SearchFilters:
    """``given`` (the filters by name) checked and made a :class:`~neuromirror.index.catalog.SearchFilters`;
    ``how``: ``source``, ``all_versions``, ``limit``."""
    from neuromirror.index.catalog import SearchFilters

    checked = dict(given, sha256=_hex(given["sha256"], 64, "sha256"), md5=_hex(given["md5"], 32, "md5"))
    checked.update(date_from=_date(given["date_from"], "date_from"), date_to=_date(given["date_to"], "date_to"))
    return SearchFilters(**checked, **how)  # type: ignore[arg-type]


def search_pairs(
    fields: Union[Mapping[str, str], Sequence[str]], others: dict[str, Optional[str]]
) -> list[tuple[str, str]]:
    """The NWB fields asked, as (field, value) pairs: a mapping, or ``FIELD=VALUE`` texts; an unknown field, a
    text without ``=`` or a file or asset filter beside them (``others``) is :class:`BadInput`."""
    from neuromirror.readers import search_fields

    FIELDS = search_fields()  # noqa: N806 - the registered readers' (read.references: the NWB files')
    given = list(fields.items()) if isinstance(fields, Mapping) else [_pair(text) for text in fields]
    for name, _ in given:
        if name.strip() not in FIELDS:
            raise BadInput(f"NWB field {name.strip()!r}: give FIELD=VALUE, FIELD one of {', '.join(FIELDS)}")
    if any(others.values()):
        raise BadInput("NWB fields are not combined with file or asset filters yet (only a source and all versions)")
    return [(name.strip(), value) for name, value in given]


def _pair(text: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq:
        raise BadInput(f"NWB field {text!r}: give FIELD=VALUE")
    return name, value
